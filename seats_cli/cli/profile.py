"""`seats profile`: per-layer schedule, FLOPs and measured prefill latency."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from seats_cli.cli.common import (
    DEFAULT_MODEL, AttnOpt, AudioTrrOpt, ConfigOpt, DecodeModeOpt, DeviceOpt, DtypeOpt, FpsOpt, FrameSizingOpt,
    JsonOpt, KvOpt, LocalOnlyOpt, MaxFramesOpt, ProcessorFpsOpt, QuietOpt, RatioModeOpt, RevisionOpt, SeedOpt, UsageProblem, VideoTrrOpt, app,
    check_load_options, guarded, print_json, quiet_libraries, show_progress, status, stdout,
)
from seats_cli.tables import Table


SHORT = "Per-layer tokens, schedule and FLOPs for a TRR; with --model, measured latency."


@app.command(short_help=SHORT)
@guarded
def profile(
    video: Optional[Path] = typer.Argument(None, help="Video file whose layout to profile (or use --frames)."),
    trr: Optional[List[float]] = typer.Option(
        None, "--trr", help="Overall token retention ratio; repeat for several (default: the config's 0.35, or "
                            "the ratio --video-trr and --audio-trr achieve together)."),
    video_trr: Optional[float] = VideoTrrOpt, audio_trr: Optional[float] = AudioTrrOpt,
    method: Optional[List[str]] = typer.Option(
        None, "--method", help="seats (default) or a baseline; repeat for several, or 'all' for SEATS and every "
                               "baseline side by side (same (R_v, R_a) pair); with weights each is timed against "
                               "full."),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", envvar="SEATS_MODEL",
        help="Hub id, local folder, or an offline model ('tiny', 'tiny-qwen3', 'synthetic'): measure with these "
             "weights (none given: analytic, from --config or the 7B preset)."),
    config: Optional[str] = ConfigOpt,
    analytic: bool = typer.Option(False, "--analytic", help="No weights even if --model/SEATS_MODEL is set: "
                                  "layout, schedule and FLOPs only."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Sampled frames of a synthetic request."),
    aspect: str = typer.Option("16:9", "--aspect", help="Aspect W:H of the synthetic request's frames."),
    source_height: int = typer.Option(1080, "--source-height", help="Source frame height of the synthetic request."),
    audio_seconds: float = typer.Option(0.0, "--audio-seconds", help="Seconds of audio of the synthetic request."),
    text_tokens: Optional[int] = typer.Option(
        None, "--text-tokens", help="Text tokens (default: counted with the tokenizer if offline, else 100)."),
    question: Optional[str] = typer.Option(None, "--question", help="Question used to count text tokens."),
    fps: Optional[float] = FpsOpt, max_frames: Optional[int] = MaxFramesOpt,
    ratio_mode: Optional[str] = RatioModeOpt, frame_sizing: Optional[str] = FrameSizingOpt,
    processor_fps: Optional[str] = ProcessorFpsOpt,
    repeats: int = typer.Option(5, "--repeats", help="Timed repeats (measured mode); medians are reported."),
    warmup: int = typer.Option(1, "--warmup", help="Untimed warm-up rounds."),
    decode_tokens: int = typer.Option(16, "--decode-tokens", help="Tokens decoded per run to time decoding."),
    device: str = DeviceOpt, dtype: str = DtypeOpt, attn_implementation: str = AttnOpt,
    decode_mode: str = DecodeModeOpt, kv_policy: Optional[str] = KvOpt, seed: int = SeedOpt,
    revision: Optional[str] = RevisionOpt, local_files_only: bool = LocalOnlyOpt,
    json_out: bool = JsonOpt, quiet: bool = QuietOpt,
) -> None:
    """Token counts per layer, SEATS schedule and FLOPs (full vs pruned) for each --trr; with weights also
    the measured prefill latency of full vs SEATS (median over --repeats), the speedup, decode speed and
    peak memory. --json prints one object: `runs` holds one entry per TRR (trr, layers, flops, schedule,
    latency); with a single --trr that entry's keys are also at the top level."""
    from seats_cli import measure
    from seats_cli import profile as prof
    from seats_cli.config import resolve_config
    from seats_cli.request import RequestOptions

    measure.check_timing(repeats, warmup, decode_tokens)  # also where an analytic run ignores them
    # the request is checked in one place (ProfileRequest.check: 'all', repeats, every name), before any loading
    cfg = resolve_config(DEFAULT_MODEL if model is None else model, config)
    context = cfg.architecture.max_position_embeddings
    if context and decode_tokens > context:  # a buffer per layer of this many rows would be allocated
        raise UsageProblem(f"--decode-tokens {decode_tokens} exceeds {cfg.name}'s context of {context} tokens")
    options = RequestOptions(video_trr=video_trr, audio_trr=audio_trr, fps=fps, max_frames=max_frames,
                             kv_policy=kv_policy, ratio_mode=ratio_mode, frame_sizing=frame_sizing,
                             processor_fps=processor_fps, seed=seed).check(cfg)
    check_load_options(device, dtype, attn_implementation, decode_mode=decode_mode)
    quiet_libraries()
    progress = show_progress(quiet)
    request = prof.ProfileRequest(video=video, frames=frames, aspect=aspect, source_height=source_height,
                                  audio_seconds=audio_seconds, text_tokens=text_tokens, question=question,
                                  trrs=tuple(trr or ()), options=options, methods=tuple(method or ["seats"])).check(cfg)
    if analytic or model is None:  # no weights named: from the preset alone, never a download
        with status("computing", progress):
            result = prof.run_analytic(cfg, request)
        if not analytic:
            result.notes.append("no --model given: analytic profile from the preset (give --model to measure)")
    else:
        with status(f"loading {model} and timing full vs {', '.join(request.methods)}", progress):
            result = measure.run_measured(cfg, request, model, repeats=repeats, warmup=warmup,
                                       decode_tokens=decode_tokens, decode_mode=decode_mode,
                                       load=dict(device=device, dtype=dtype, attn_implementation=attn_implementation,
                                                 revision=revision, local_files_only=local_files_only))
    if trr and video_trr is not None and audio_trr is not None:  # the two ratios are the request
        result.notes.append(f"--trr {', '.join(f'{x:g}' for x in trr)} not used: --video-trr and --audio-trr set "
                            "both ratios (the runs' TRR label is only their name)")
    if json_out:
        print_json(result.to_dict())
    else:
        render(result)


def _ranges(rows: list[tuple]) -> list[tuple[str, tuple]]:
    """Consecutive layers with the same counts, as ("a–b", counts)."""
    out: list[list] = []
    for layer, key in rows:
        if out and out[-1][2] == key:
            out[-1][1] = layer
        else:
            out.append([layer, layer, key])
    return [(f"{a}" if a == b else f"{a}–{b}", key) for a, b, key in out]


def _flops(x: float) -> str:
    return f"{x / 1e12:.2f} TFLOPs" if x >= 1e10 else f"{x / 1e9:.3f} GFLOPs"


def render(result) -> None:
    inp = result.input
    tk = inp["tokens"]
    stdout.print(f"[bold]{result.config}[/bold] · {result.mode}" + (f" · {result.model}" if result.model else ""))
    stdout.print(f"input: {inp['source']}: {inp['frames']} frames at {inp['width']}x{inp['height']} "
                 f"({inp['tokens_per_grid']} tokens per grid of 2 frames), {len(inp['windows'])} windows; "
                 f"tokens video {tk['video']}, audio {tk['audio']}, text {tk['text']} ({inp['text_source']}), "
                 f"total {tk['total']}")
    several = len({r.method for r in result.runs}) > 1
    if several:
        _render_methods(result)  # with the full FLOPs and the convention
    else:
        _render_runs(result)
    if result.mode == "measured":
        _render_latency(result)
        if result.requests:
            _render_requests(result.requests)
    if not several:
        stdout.print(f"[dim]{result.flops_convention}[/dim]")
    for note in result.notes:
        stdout.print(f"[yellow]note:[/yellow] {note}")


def _render_runs(result) -> None:
    """One method: per TRR its schedule (SEATS) and the tokens entering each layer, and its FLOPs."""
    for run in result.runs:
        s = run.schedule
        if run.method != "seats":
            _render_baseline(run, result.mode)
            continue
        sched = Table(title=f"TRR {run.trr:g}: schedule (video {s['video_trr']:.4f}, audio {s['audio_trr']:.4f})")
        for col in ("modality", "target R_m", "ρ (Stage I)", "δ", "levels", "keep ratios at " + ", ".join(
                f"L{b}" for b in s["prune_before"])):
            sched.add_column(col, justify="right")
        for m in ("video", "audio"):
            ms = s[m]
            sched.add_row(m, f"{ms['target']:.4f}", f"{ms['rho']:.4f}", f"{ms['delta']:.5f}",
                          " → ".join(f"{x:.4f}" for x in ms["levels"]),
                          ", ".join(f"{x:.4f}" for x in ms["keep_ratios"]))
        stdout.print(sched)
        lt = Table(title=f"TRR {run.trr:g}: tokens entering each layer"
                   + (" (schedule: exact K per modality; engine: its Stage II with uniform window relevance)"
                      if run.engine_layers else " (as the engine ran)" if result.mode == "measured" else ""))
        cols = ["layers", "video", "audio", "text", "total"]
        cols += ["engine video", "engine audio", "engine total"] if run.engine_layers else []
        for col in cols:
            lt.add_column(col, justify="right")
        engine = run.engine_layers or [None] * len(run.layers)
        keys = [(r["layer"], (r["video"], r["audio"], r["text"], r["total"])
                 + ((e["video"], e["audio"], e["total"]) if e else ())) for r, e in zip(run.layers, engine)]
        for label, key in _ranges(keys):
            lt.add_row(label, *(str(x) for x in key))
        stdout.print(lt)
        f = run.flops
        stdout.print(f"FLOPs (analytic, §9): full {_flops(f['full'])}, SEATS {_flops(f['pruned'])}, "
                     f"reduction [bold]{f['reduction']:.2f}x[/bold]; achieved TRR {s['achieved_trr']:.4f}")


def _render_baseline(run, mode: str) -> None:
    s = run.schedule
    counts = _counts(run, mode)
    lt = Table(title=f"{run.method} at TRR {run.trr:g} (pair video {s['video_trr']:.4f}, audio {s['audio_trr']:.4f}; "
               f"counts {counts}): tokens entering each layer")
    for col in ("layers", "video", "audio", "text", "total"):
        lt.add_column(col, justify="right")
    keys = [(r["layer"], (r["video"], r["audio"], r["text"], r["total"])) for r in run.layers]
    for label, key in _ranges(keys):
        lt.add_row(label, *(str(x) for x in key))
    stdout.print(lt)
    f = run.flops
    stdout.print(f"FLOPs (analytic, §9): full {_flops(f['full'])}, {run.method} {_flops(f['pruned'])}, "
                 f"reduction [bold]{f['reduction']:.2f}x[/bold]; achieved TRR {s['achieved_trr']:.4f}")


def _counts(run, mode: str) -> str:
    """How a run's counts were made: the engine's (measured), or from the method's definition (exact, estimate…)."""
    return run.counts or ("measured" if mode == "measured" else "exact")


def _render_methods(result) -> None:
    """Several methods: one row per (TRR, method): video/audio entering layer 0 and the last layer, achieved TRR,
    FLOPs."""
    from seats_cli.methods.counts import HOW

    t = Table(title="Methods side by side (the same (R_v, R_a) pair per TRR)")
    tera = min(r.flops["pruned"] for r in result.runs) >= 1e10  # one unit for the column: the numbers stay short
    for col in ("TRR", "method", "acts", "layer 0 v/a", "last v/a", "achieved", "TFLOPs" if tera else "GFLOPs",
                "reduction", "counts"):
        t.add_column(col, justify="right")
    for run in result.runs:
        first, last = run.layers[0], run.layers[-1]
        acts = {"seats": "both", "fastv": "in-LLM", "fastv-om": "in-LLM"}.get(run.method, "pre-LLM")
        t.add_row(f"{run.trr:g}", run.method, acts, f"{first['video']}/{first['audio']}",
                  f"{last['video']}/{last['audio']}", f"{run.schedule['achieved_trr']:.4f}",
                  f"{run.flops['pruned'] / (1e12 if tera else 1e9):.{2 if tera else 3}f}",
                  f"{run.flops['reduction']:.2f}x", _counts(run, result.mode))
    stdout.print(t)
    stdout.print(f"[dim]full: {_flops(result.runs[0].flops['full'])}; {result.flops_convention}[/dim]")
    for how in sorted({r.counts for r in result.runs if r.counts and r.counts != "exact"}):
        stdout.print(f"[dim]{how}: {HOW[how]}[/dim]")


def _render_requests(requests: list[dict]) -> None:
    t = Table(title=f"Whole request, file to answer (median ms over {requests[0]['repeats']}; media reuse off)")
    for col in ("run", "media", "prepare", "encode", "prefill", "decode", "total", "tokens", "decode tok/s",
                "speedup", "speedup to 1st token"):
        t.add_column(col, justify="right")
    for r in requests:
        m = r["median_ms"]
        tps = r["decode_tok_per_s"]
        t.add_row("full" if r["method"] == "full" else
                  f"{'SEATS' if r['method'] == 'seats' else r['method']} {r['trr']:g}",
                  *(f"{m[k]:.1f}" for k in ("media", "prepare", "encode", "prefill", "decode", "total")),
                  f"{r['generated_tokens']:g}", f"{tps:.1f}" if tps else "-", f"{r['speedup_total']:.2f}x",
                  f"{r['speedup_first_token']:.2f}x")
    stdout.print(t)



def _render_latency(result) -> None:
    m = result.machine
    where = m.get("gpu") or f"{m['cpu']}, {m['threads']} threads"
    t = Table(title=f"Measured on {where} ({m['dtype']}, {m['attn_implementation']}, torch {m['torch']}); "
              f"prefill ms median (min–max) over {result.runs[0].latency['repeats']} repeats, warm-up excluded")
    several = len({r.method for r in result.runs}) > 1
    only = result.runs[0].method
    name = "method" if several else "SEATS" if only == "seats" else only
    for col in (("TRR",) + (("method",) if several else ()) + (
            "FLOPs reduction", "prefill full", f"prefill {name}", "speedup", "speedup / FLOPs", "decode tok/s full",
            f"decode tok/s {name}", "selection ms (share)", "peak memory", f"KV after prefill full/{name}")):
        t.add_column(col, justify="right")

    def ms(x):
        p = x["prefill_ms"]
        return f"{p['median']:.1f} ({p['min']:.1f}–{p['max']:.1f})"

    def tps(x):
        return f"{x['decode_tokens_per_s']:.1f}" if x["decode_tokens_per_s"] else "-"

    def sel(x):
        return f"{x['select_ms']:.1f} ({100 * x['select_share']:.1f}%)" if x.get("select_ms") is not None else "-"

    for run in result.runs:
        lat = run.latency
        pruned = lat[run.method]
        peak = pruned["peak_memory"]
        t.add_row(f"{run.trr:g}", *((run.method,) if several else ()), f"{run.flops['reduction']:.2f}x",
                  ms(lat["full"]), ms(pruned), f"{lat['prefill_speedup']:.2f}x",
                  f"{lat['speedup_over_flops_reduction']:.2f}", tps(lat["full"]), tps(pruned), sel(pruned),
                  f"{peak['mib']:.0f} MiB", f"{lat['full']['kv_cache_mib']:.2f}/{pruned['kv_cache_mib']:.2f} MiB")
    stdout.print(t)
    first = result.runs[0].latency[result.runs[0].method]
    stdout.print(f"[dim]peak memory: {first['peak_memory']['kind']}; {result.runs[0].latency['timer']}; decode loop "
                 f"{first.get('decode_mode') or '-'}; selection: one synchronised prefill per run[/dim]")
