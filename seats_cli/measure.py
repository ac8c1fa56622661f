"""Measured prefill latency of full vs SEATS on one encoded request, and synthetic requests for benchmarks.

Timing discipline: the same encoded input is prefilled by the engine, full and each TRR
alternating, a warm-up left out, device-synchronised (the engine's own timer), medians over repeats; decode
speed and peak memory are reported apart from the analytic FLOPs. A synthetic request (random embeddings, real
position ids, the processor's interleaving) has the layout of a real one: latency does not depend on values.
"""

from __future__ import annotations

import resource
import statistics
import time
from dataclasses import asdict

import torch

from seats_cli.config import ModelConfig
from seats_cli.engine import NoPruning, decode, prefill
from seats_cli.flops import TextModelDims, compare_flops
from seats_cli.machine import machine_info
from seats_cli.layout import TokenLayout
from seats_cli.methods import build_pruner, encoder_signals
from seats_cli.profile import (ProfileResult, ProfileRun, context_notes, reach_notes, resolve_trr,
                               retention_notes, with_achieved)
from seats_cli.shape import RequestShape

# ----------------------------------------------------------------------------------- synthetic input
def synthetic_request(adapter, shape: RequestShape, config: ModelConfig, *, seed: int = 0,
                      question: str = "Describe this video."):
    """(EncodedRequest, TokenLayout) for ``shape``: blank frames of the shape's size and silent audio of its length
    go through the adapter's own processor (so ids, layout and M-RoPE ids are the real ones); the embeddings and
    the saliency are random (latency does not depend on their values)."""
    from types import SimpleNamespace

    from seats_cli.models.base import EncodedRequest

    media = SimpleNamespace(
        path="synthetic", frames=torch.zeros(shape.frames, 3, shape.height, shape.width, dtype=torch.uint8),
        audio=torch.zeros(shape.audio_samples).numpy() if shape.audio_samples else None,
        sample_fps=shape.fps, duration_s=shape.frames / shape.fps,
        processor_fps="sampled",  # shape.fps is already the fps the processor's arithmetic uses (shape.py)
    )
    request = adapter.prepare(media, question)
    layout = request.layout
    pos = adapter.position_ids(request)
    gen = torch.Generator().manual_seed(seed)
    d = adapter.text_config.hidden_size
    embeds = torch.randn(1, layout.seq_len, d, generator=gen).to(adapter.device, adapter.dtype)
    sal_v = torch.rand(layout.n_video, generator=gen).to(adapter.device) if layout.n_video else None
    sal_a = torch.rand(layout.n_audio, generator=gen).to(adapter.device) if layout.n_audio else None

    def rand(n, *shape):  # the other encoder signals the baselines read (random too)
        return torch.rand(n, *shape, generator=gen).to(adapter.device) if n else None

    nxt = float(pos.max()) + 1.0 if pos.is_floating_point() else int(pos.max()) + 1  # Qwen3's ids are float
    enc = EncodedRequest(embeds=embeds, position_ids=pos.to(adapter.device), next_position=nxt,
                         video_saliency=sal_v, audio_saliency=sal_a, video_keys=rand(layout.n_video, 64),
                         audio_keys=rand(layout.n_audio, 64), video_frame_query=rand(layout.n_video),
                         audio_whole=rand(layout.n_audio))
    return enc, layout


# ----------------------------------------------------------------------------------- measurement
def _stats(xs: list[float]) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs), "values": list(xs)}


def paired_speedup(full: dict, seats: dict) -> float:
    """Median over rounds of full/SEATS from the same round (robust to slow drifts of a shared machine)."""
    return statistics.median(f / s for f, s in zip(full["values"], seats["values"]))


def peak_memory(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"kind": "torch.cuda.max_memory_allocated", "mib": torch.cuda.max_memory_allocated(device) / 2**20}
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"kind": "process peak RSS (CPU, whole process: model + all runs so far)", "mib": kib / 1024}


def _cache_mib(cache) -> float:
    """Bytes held by a prefill's KV cache (all layers), in MiB."""
    total = 0
    for lay in getattr(cache, "layers", []):
        for t in (getattr(lay, "keys", None), getattr(lay, "values", None)):
            if torch.is_tensor(t):
                total += t.numel() * t.element_size()
    return total / 2**20


def measure(adapter, encoded, layout: TokenLayout, config: ModelConfig, trrs, *, repeats: int = 5,
            warmup: int = 1, decode_tokens: int = 16, kv_policy: str | None = None, video_trr=None,
            audio_trr=None, progress=None, ratio_mode: str | None = None,
            methods=("seats",), decode_mode: str = "auto", seed: int = 0) -> tuple[dict, list[dict]]:
    """Time ``engine.prefill`` (and greedy decode) of full and each method at each TRR on the same encoded input
    (a pre-LLM method's selection is part of its prefill time).

    Rounds alternate full, (TRR₁, method₁), (TRR₁, method₂), …; the first ``warmup`` rounds are left out; each
    run gets a fresh pruner. ``encoded`` may be one request for all, or ``{method: request}`` (methods that read
    different encoder signals; full takes the first). Returns (full, [per TRR and method, TRR-major]) with prefill
    ms stats, decode
    ms/token, peak memory, the KV cache size right after prefill and the layer counts the engine used. Decode
    ms/token leaves out the once-per-request setup (buffers copied, graph captured), reported as ``decode_setup_ms``.
    The selection's own time (``select_ms``: before layer 0 and at the drop layers) comes from one more prefill per
    run with the device synchronised around each selection call, kept out of the prefill statistics.
    """
    if repeats < 1:
        raise ValueError("--repeats must be at least 1")
    kv_policy = kv_policy or config.seats.kv_policy
    dev = adapter.device
    kinds = [None, *((m, t) for t in trrs for m in methods)]
    rec = {k: {"prefill": [], "cpu": [], "decode": [], "setup": [], "steps": 0, "peak": None, "live": None,
               "kv": 0.0, "mode": None, "notes": []}
           for k in range(len(kinds))}
    inputs = encoded if isinstance(encoded, dict) else None

    def pruner_of(kind):
        return build_pruner(kind[0], config, layout, trr=kind[1], video_trr=video_trr, audio_trr=audio_trr,
                            ratio_mode=ratio_mode, seed=seed)[0]
    total = warmup + repeats
    for rnd in range(total):
        for k, kind in enumerate(kinds):
            pruner = NoPruning() if kind is None else pruner_of(kind)
            if inputs is not None:
                encoded = next(iter(inputs.values())) if kind is None else inputs[kind[0]]
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            cpu0 = time.process_time()
            res = prefill(adapter, encoded, layout, pruner, kv_policy=kv_policy)
            cpu_ms = (time.process_time() - cpu0) * 1000
            kv_mib = _cache_mib(res.cache)
            toks, dec_ms = ([], 0.0)
            if decode_tokens > 1:
                dec = decode(adapter, res, encoded.next_position, max_new_tokens=decode_tokens, eos_token_ids=[],
                             mode=decode_mode)
                toks, dec_ms = dec.tokens, dec.ms - dec.setup_ms
            r = rec[k]
            if rnd >= warmup:
                r["prefill"].append(res.prefill_ms)
                r["cpu"].append(cpu_ms)
                if len(toks) > 1:
                    r["decode"].append(dec_ms / (len(toks) - 1))
                    r["setup"].append(dec.setup_ms)
                    r["steps"], r["mode"] = len(toks) - 1, dec.mode
                if dev.type == "cuda":
                    m = peak_memory(dev)
                    r["peak"] = m if r["peak"] is None or m["mib"] > r["peak"]["mib"] else r["peak"]
            r["live"], r["kv"], r["notes"] = res.layer_live, kv_mib, [n for n in getattr(pruner, "notes", ()) if n]
            del res
            if rnd == total - 1:
                timed = prefill(adapter, encoded, layout, pruner if kind is None else pruner_of(kind),
                                kv_policy=kv_policy, time_selection=True)
                r["select"] = (timed.select_ms, timed.prefill_ms)
                del timed
            if progress is not None:
                progress(rnd * len(kinds) + k + 1, total * len(kinds))
    out = []
    for k in range(len(kinds)):
        r = rec[k]
        dec = _stats(r["decode"]) if r["decode"] else None
        out.append({
            "prefill_ms": _stats(r["prefill"]),
            # process CPU time of the prefill call: on a shared CPU machine with one torch thread it does not
            # count the time the process waits for a core (wall time does); not meaningful on GPU
            "prefill_process_cpu_ms": _stats(r["cpu"]) if dev.type == "cpu" else None,
            "decode_ms_per_token": dec,
            "decode_tokens_per_s": 1000.0 / dec["median"] if dec else None,
            "decode_steps": r["steps"],
            "decode_mode": r["mode"],
            # selection time and its share of that (synchronised) prefill
            "select_ms": r["select"][0] if r.get("select") else None,
            "select_share": r["select"][0] / r["select"][1] if r.get("select") else None,
            "decode_setup_ms": _stats(r["setup"]) if r["setup"] else None,
            "peak_memory": r["peak"] or peak_memory(dev),
            "kv_cache_mib": r["kv"],
            "layer_live": r["live"],
            "notes": r["notes"],  # the method's reach notes (baselines), from its last run
        })
    return out[0], out[1:]


def profile_measured(adapter, encoded, layout: TokenLayout, shape: RequestShape, config: ModelConfig, trrs, *,
                     model: str, repeats: int = 5, warmup: int = 1, decode_tokens: int = 16,
                     kv_policy: str | None = None, video_trr=None, audio_trr=None, progress=None,
                     notes: list[str] | None = None, ratio_mode: str | None = None,
                     decode_mode: str = "auto", methods=("seats",), seed: int = 0) -> ProfileResult:
    """Full vs each method at each TRR (TRR-major), timed by :func:`measure`; a run's ``latency`` holds the full
    prefill's statistics under ``full`` and the method's under its name (``seats``, ``fastv``, ...)."""
    from seats_cli.report import layer_rows

    dims = TextModelDims.from_hf_text_config(adapter.text_config)
    trrs = [resolve_trr(config, layout.n_video, layout.n_audio, t, video_trr, audio_trr) for t in trrs]
    full, timed = measure(adapter, encoded, layout, config, trrs, repeats=repeats, warmup=warmup,
                          decode_tokens=decode_tokens, kv_policy=kv_policy, video_trr=video_trr, ratio_mode=ratio_mode,
                          audio_trr=audio_trr, progress=progress, decode_mode=decode_mode, methods=methods, seed=seed)
    runs = []
    clean = lambda m: {k: v for k, v in m.items() if k not in ("layer_live", "notes")}  # noqa: E731
    for (trr, method), m in zip([(t, x) for t in trrs for x in methods], timed):
        layers = [r | {"total": r["video"] + r["audio"] + r["text"]} for r in layer_rows(layout, m["layer_live"])]
        flops = compare_flops(layout.seq_len, layers, dims)
        speedup = full["prefill_ms"]["median"] / m["prefill_ms"]["median"]
        latency = {
            "full": clean(full), method: clean(m), "prefill_speedup": speedup,
            "prefill_speedup_paired": paired_speedup(full["prefill_ms"], m["prefill_ms"]),
            "speedup_over_flops_reduction": speedup / flops["reduction"],
            "decode_speedup": (full["decode_ms_per_token"]["median"] / m["decode_ms_per_token"]["median"]
                               if full["decode_ms_per_token"] and m["decode_ms_per_token"] else None),
            "repeats": repeats, "warmup": warmup, "kv_policy": kv_policy or config.seats.kv_policy,
            "timer": "engine.prefill wall time, device-synchronised; the method's selection included",
        }
        _, plan = build_pruner(method, config, layout, trr=trr, video_trr=video_trr, audio_trr=audio_trr,
                               ratio_mode=ratio_mode, seed=seed)
        runs.append(ProfileRun(trr, layers, flops, with_achieved(plan.to_dict(), layers, layout), latency,
                               method=method, method_notes=m["notes"] if method != "seats" else None))
    info = machine_info(adapter.device) | {"dtype": str(adapter.dtype).replace("torch.", ""),
                                           "attn_implementation": adapter.attn_implementation}
    all_notes = list(shape.notes) + list(notes or []) + reach_notes(runs) + retention_notes(
        runs, layout, video_trr=video_trr, audio_trr=audio_trr) + context_notes(
        config, shape, runs, getattr(adapter.text_config, "max_position_embeddings", None))
    if not config.calibrated:
        all_notes.insert(0, f"{config.name}: SEATS layer boundaries are uncalibrated")
    if config.tiny:
        all_notes.insert(0, "tiny random-weight model: latency of a 64-wide model says little about real ones")
    return ProfileResult(config.name, model, "measured", shape.to_dict(), asdict(dims), runs, machine=info,
                         notes=all_notes)


PARTS = ("media", "prepare", "encode", "prefill", "decode", "total")


def whole_requests(adapter, video, question: str, trrs, *, repeats: int = 3, decode_tokens: int = 16,
                   options: dict | None = None, decode_mode: str = "auto", methods=("seats",)) -> list[dict]:
    """Where a whole request's time goes, full vs each method at each TRR: each run asks the file from scratch (media
    reuse off), rounds alternating, one warm-up left out; per run the median ms of every ``latency_ms`` part, the
    tokens generated, and the speedup of the whole request and of the time to the first token (everything but
    decoding: the runs may stop at an end token after different numbers of tokens)."""
    from seats_cli.api import Seats

    seats = Seats.from_adapter(adapter, reuse_media=False, decode_mode=decode_mode)
    kinds = [("full", None)] + [(m, t) for t in dict.fromkeys(trrs) for m in methods]
    rec: dict = {k: [] for k in kinds}
    for rnd in range(repeats + 1):
        for method, trr in kinds:
            r = seats.ask(video, question, method=method, trr=trr, max_new_tokens=decode_tokens, **(options or {}))
            if rnd:
                rec[(method, trr)].append(r.latency_ms | {"generated": r.generated_tokens})
    out = []
    for (method, trr), lats in rec.items():
        med = {p: statistics.median(x[p] for x in lats) for p in PARTS}
        tps = [x["decode_tok_per_s"] for x in lats if x["decode_tok_per_s"]]
        out.append({"method": method, "trr": trr, "median_ms": med, "repeats": repeats,
                    "generated_tokens": statistics.median(x["generated"] for x in lats),
                    "decode_tok_per_s": statistics.median(tps) if tps else None})
    base = out[0]["median_ms"]
    for row in out:
        m = row["median_ms"]
        row["speedup_total"] = base["total"] / m["total"]
        row["speedup_first_token"] = (base["total"] - base["decode"]) / (m["total"] - m["decode"])
    return out


def layout_matches(shape: RequestShape, layout: TokenLayout) -> bool:
    """Whether the analytic layout equals the processor's (token counts and windows)."""
    return (shape.n_text == layout.n_text
            and list(shape.video_windows) == [w.video_total for w in layout.windows]
            and list(shape.audio_windows) == [w.audio_total for w in layout.windows])


def encoded_per_method(adapter, prepared, config: ModelConfig, methods, options) -> dict:
    """``{method: EncodedRequest}``: each method's input with the encoder signals its plan asks for (SEATS the
    saliency span, VisionZip a one-grid statistic, OmniZip the whole-clip audio attention, ...), the encoders run
    once per distinct set, as ``Seats.ask`` does."""
    out, by_key = {}, {}
    layout = prepared.layout
    for method in methods:
        _, plan = build_pruner(method, config, layout, trr=None, video_trr=options.video_trr,
                               audio_trr=options.audio_trr, ratio_mode=options.ratio_mode, seed=options.seed)
        key = encoder_signals(plan)
        if key not in by_key:
            by_key[key] = adapter.encode(prepared, saliency=key[0], video_span_grids=key[1], extra=key[2])
        out[method] = by_key[key]
    return out


def check_timing(repeats: int, warmup: int, decode_tokens: int) -> None:
    """The timing counts of a measured profile: at least one repeat and one decoded token, no negative warm-up."""
    for flag, value, least in (("--repeats", repeats, 1), ("--warmup", warmup, 0), ("--decode-tokens", decode_tokens, 1)):
        if value < least:
            raise ValueError(f"{flag} must be at least {least} (got {value})")


def run_measured(config: ModelConfig, request, model: str, *, repeats: int = 5, warmup: int = 1,
                 decode_tokens: int = 16, load: dict | None = None, progress=None,
                 decode_mode: str = "auto") -> ProfileResult:
    """``seats profile --model M``: load the weights, lay the request out (the processor's own layout for a video,
    a synthetic request otherwise) and time full vs each of ``request.methods`` (SEATS by default) at each TRR;
    with a video file the whole request too."""
    from seats_cli.models import load_model
    from seats_cli.shape import DEFAULT_QUESTION

    request = request.check(config)
    o = request.options
    check_timing(repeats, warmup, decode_tokens)
    media = request.decode(config)  # a bad file fails before the weights load
    adapter = load_model(model, config=config, **(load or {}))
    notes = []
    if media is not None:
        prepared = adapter.prepare(media, request.question or DEFAULT_QUESTION)
        layout = prepared.layout
        encoded = encoded_per_method(adapter, prepared, config, request.methods, o)
        shape = request.shape(config, media, n_text=layout.n_text, text_source="processor")
        if not layout_matches(shape, layout):
            notes.append("the analytic window layout differs from the processor's; counts are the processor's")
        if request.text_tokens is not None:
            notes.append("--text-tokens ignored: the processor counted the text tokens")
    else:
        shape = request.shape(config)
        encoded, layout = synthetic_request(adapter, shape, config, seed=o.seed)
        notes.append("synthetic request: random embeddings and saliency, real position ids and layout")
    result = profile_measured(adapter, encoded, layout, shape, config, list(request.trrs) or [None], model=model,
                              repeats=repeats, warmup=warmup, decode_tokens=decode_tokens, kv_policy=o.kv_policy,
                              video_trr=o.video_trr, audio_trr=o.audio_trr, ratio_mode=o.ratio_mode,
                              progress=progress, notes=notes, decode_mode=decode_mode, methods=request.methods,
                              seed=o.seed)
    if media is not None:  # a real file: the whole request too (media, processor, encoders, prefill, decode)
        result.requests = requests = whole_requests(
            adapter, request.video, request.question or DEFAULT_QUESTION, [r.trr for r in result.runs],
            repeats=max(1, min(repeats, 3)), decode_tokens=decode_tokens, decode_mode=decode_mode,
            methods=request.methods,
            options=dict(fps=o.fps, max_frames=o.max_frames, frame_sizing=o.frame_sizing,
                         processor_fps=o.processor_fps, kv_policy=o.kv_policy, seed=o.seed,
                         video_trr=o.video_trr, audio_trr=o.audio_trr, ratio_mode=o.ratio_mode))
        if len({r["generated_tokens"] for r in requests}) > 1:
            result.notes.append("the whole-request runs generated different numbers of tokens (an end token came "
                                "earlier in some): their total speedup compares unequal work; the time to the "
                                "first token does not")
    return result


__all__ = ["layout_matches", "run_measured", "machine_info", "measure", "paired_speedup", "profile_measured",
           "synthetic_request"]
