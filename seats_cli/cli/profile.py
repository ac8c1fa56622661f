"""`seats profile`: per-layer schedule, FLOPs and measured prefill latency."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from seats_cli.cli.common import (
    DEFAULT_MODEL, AttnOpt, AudioTrrOpt, ConfigOpt, DeviceOpt, DtypeOpt, FpsOpt, JsonOpt, KvOpt, LocalOnlyOpt,
    MaxFramesOpt, QuietOpt, RevisionOpt, RatioModeOpt, FrameSizingOpt, SeedOpt, UsageProblem, VideoTrrOpt, app, guarded, print_json,
    quiet_libraries, show_progress, status, stdout,
)


@app.command()
@guarded
def profile(
    video: Optional[Path] = typer.Argument(None, help="Video file whose layout to profile (or use --frames)."),
    trr: Optional[List[float]] = typer.Option(
        None, "--trr", help="Overall token retention ratio; repeat for several (default: the config's 0.35, or "
                            "the ratio --video-trr and --audio-trr achieve together)."),
    video_trr: Optional[float] = VideoTrrOpt, audio_trr: Optional[float] = AudioTrrOpt,
    model: Optional[str] = typer.Option(
        None, "--model", "-m", envvar="SEATS_MODEL",
        help="Hub id, local folder or 'tiny' (measured mode; default: the --config's checkpoint, else the 7B)."),
    config: Optional[str] = ConfigOpt,
    analytic: bool = typer.Option(False, "--analytic", help="No weights: layout, schedule and FLOPs only."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Sampled frames of a synthetic request."),
    aspect: str = typer.Option("16:9", "--aspect", help="Aspect W:H of the synthetic request's frames."),
    source_height: int = typer.Option(1080, "--source-height", help="Source frame height of the synthetic request."),
    audio_seconds: float = typer.Option(0.0, "--audio-seconds", help="Seconds of audio of the synthetic request."),
    text_tokens: Optional[int] = typer.Option(
        None, "--text-tokens", help="Text tokens (default: counted with the tokenizer if offline, else 100)."),
    question: Optional[str] = typer.Option(None, "--question", help="Question used to count text tokens."),
    fps: Optional[float] = FpsOpt, max_frames: Optional[int] = MaxFramesOpt,
    ratio_mode: Optional[str] = RatioModeOpt, frame_sizing: Optional[str] = FrameSizingOpt,
    repeats: int = typer.Option(5, "--repeats", help="Timed repeats (measured mode); medians are reported."),
    warmup: int = typer.Option(1, "--warmup", help="Untimed warm-up rounds."),
    decode_tokens: int = typer.Option(16, "--decode-tokens", help="Tokens decoded per run to time decoding."),
    device: str = DeviceOpt, dtype: str = DtypeOpt, attn_implementation: str = AttnOpt,
    kv_policy: Optional[str] = KvOpt, seed: int = SeedOpt,
    revision: Optional[str] = RevisionOpt, local_files_only: bool = LocalOnlyOpt,
    json_out: bool = JsonOpt, quiet: bool = QuietOpt,
) -> None:
    """Token counts per layer, SEATS schedule and FLOPs (full vs pruned) for each --trr; with weights also
    the measured prefill latency of full vs SEATS (median over --repeats), the speedup, decode speed and
    peak memory. --json prints one object: `runs` holds one entry per TRR (trr, layers, flops, schedule,
    latency); with a single --trr that entry's keys are also at the top level."""
    from seats_cli.api import frame_policy
    from seats_cli.config import ConfigError, resolve_config
    from seats_cli.media import decode_video
    from seats_cli import profile as prof

    if (video is None) == (frames is None):
        raise UsageProblem("give a VIDEO or --frames N (not both)")
    trrs = list(trr) if trr else []
    for r in trrs + [x for x in (video_trr, audio_trr) if x is not None]:
        if not 0 < r <= 1:
            raise ConfigError(f"retention ratios must be in (0, 1], got {r}")
    if text_tokens is not None and text_tokens < 1:
        raise UsageProblem("--text-tokens must be at least 1")
    cfg = resolve_config(model or DEFAULT_MODEL, config)
    trrs = trrs or [None]  # the config's default, or the ratio --video-trr/--audio-trr achieve
    policy = frame_policy(cfg, fps, max_frames, frame_sizing)
    from seats_cli.schedule import RATIO_MODES

    if ratio_mode not in (None, *RATIO_MODES):
        raise UsageProblem(f"--ratio-mode must be one of {', '.join(RATIO_MODES)}, got {ratio_mode!r}")
    quiet_libraries()
    progress = show_progress(quiet)

    def shape_for(n_text=None, text_source=None, media=None):
        if media is not None:
            return prof.shape_from_media(media, cfg, n_text=n_text, question=question, text_source=text_source)
        return prof.shape_from_frames(cfg, policy, frames=frames, aspect=aspect, source_height=source_height,
                                      audio_seconds=audio_seconds, n_text=n_text, question=question)

    media = None
    if video is not None:
        with status(f"decoding {video}", progress):
            media = decode_video(video, policy)
    if analytic:
        shape = shape_for(text_tokens, media=media)
        result = prof.profile_analytic(cfg, shape, trrs, video_trr=video_trr, audio_trr=audio_trr,
                                       ratio_mode=ratio_mode)
    else:
        result = _measured(prof, cfg, media, shape_for, trrs, model or (cfg.hub_id if config else DEFAULT_MODEL),
                           dict(video_trr=video_trr, audio_trr=audio_trr, repeats=repeats, warmup=warmup,
                                decode_tokens=decode_tokens, kv_policy=kv_policy, ratio_mode=ratio_mode),
                           dict(device=device, dtype=dtype, attn_implementation=attn_implementation,
                                revision=revision, local_files_only=local_files_only),
                           question, text_tokens, seed, progress)
    if json_out:
        print_json(result.to_dict())
    else:
        render(result)


def _measured(prof, cfg, media, shape_for, trrs, model_name, measure_kw, load_kw, question, text_tokens, seed,
              progress):
    from seats_cli import measure
    from seats_cli.models import load_model

    with status(f"loading {model_name}", progress):
        adapter = load_model(model_name, config=cfg, **load_kw)
    notes = []
    if media is not None:
        request = adapter.prepare(media, question or prof.DEFAULT_QUESTION)
        encoded = adapter.encode(request, saliency=cfg.seats.saliency_span)
        layout = request.layout
        shape = shape_for(layout.n_text, "processor", media=media)
        if not measure.layout_matches(shape, layout):
            notes.append("the analytic window layout differs from the processor's; counts are the processor's")
        if text_tokens is not None:
            notes.append("--text-tokens ignored: the processor counted the text tokens")
    else:
        shape = shape_for(text_tokens)
        encoded, layout = measure.synthetic_request(adapter, shape, cfg, seed=seed)
        notes.append("synthetic request: random embeddings and saliency, real position ids and layout")
    with status("timing full vs SEATS prefill", progress):
        return measure.profile_measured(adapter, encoded, layout, shape, cfg, trrs, model=model_name, notes=notes,
                                     **measure_kw)


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
    for run in result.runs:
        s = run.schedule
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
                     f"reduction [bold]{f['reduction']:.2f}x[/bold]")
    if result.mode == "measured":
        _render_latency(result)
    stdout.print(f"[dim]{result.flops_convention}[/dim]")
    for note in result.notes:
        stdout.print(f"[yellow]note:[/yellow] {note}")


def _render_latency(result) -> None:
    m = result.machine
    where = m.get("gpu") or f"{m['cpu']}, {m['threads']} threads"
    t = Table(title=f"Measured on {where} ({m['dtype']}, {m['attn_implementation']}, torch {m['torch']}); "
              f"prefill ms median (min–max) over {result.runs[0].latency['repeats']} repeats, warm-up excluded")
    for col in ("TRR", "FLOPs reduction", "prefill full", "prefill SEATS", "speedup", "speedup / FLOPs",
                "decode tok/s full", "decode tok/s SEATS", "peak memory", "KV after prefill full/SEATS"):
        t.add_column(col, justify="right")

    def ms(x):
        p = x["prefill_ms"]
        return f"{p['median']:.1f} ({p['min']:.1f}–{p['max']:.1f})"

    def tps(x):
        return f"{x['decode_tokens_per_s']:.1f}" if x["decode_tokens_per_s"] else "-"

    for run in result.runs:
        lat = run.latency
        peak = lat["seats"]["peak_memory"]
        t.add_row(f"{run.trr:g}", f"{run.flops['reduction']:.2f}x", ms(lat["full"]), ms(lat["seats"]),
                  f"{lat['prefill_speedup']:.2f}x", f"{lat['speedup_over_flops_reduction']:.2f}", tps(lat["full"]),
                  tps(lat["seats"]), f"{peak['mib']:.0f} MiB",
                  f"{lat['full']['kv_cache_mib']:.2f}/{lat['seats']['kv_cache_mib']:.2f} MiB")
    stdout.print(t)
    stdout.print(f"[dim]peak memory: {result.runs[0].latency['seats']['peak_memory']['kind']}; "
                 f"{result.runs[0].latency['timer']}[/dim]")
