"""Full vs SEATS prefill, side by side: analytic FLOPs ratio, measured prefill speedup, their quotient,
decode speedup and peak memory at R in {0.35, 0.25, 0.15, 0.10}.

    python benchmarks/bench_prefill.py --cpu            # 28-layer, 512-wide random model, 32 frames + 16 s
    python benchmarks/bench_prefill.py --gpu            # Qwen2.5-Omni-7B text architecture, bf16, 128 frames + 64 s
    python benchmarks/bench_prefill.py --cpu --methods seats,random,fastv,omnizip,fastvid   # every method, R 0.35/0.10
    python benchmarks/bench_prefill.py --gpu --profile  # also: where one full and one R 0.10 prefill spend time

No checkpoint and no video are needed: a Qwen2_5OmniThinkerForConditionalGeneration is built in memory with
random weights (latency does not depend on weight values) and wrapped in the project's adapter; the request
is synthetic (random embeddings and saliency) with the processor's interleaved layout and the model's own
M-RoPE position ids. Timing follows seats_cli.measure.measure: full and every TRR are run
in the same process, alternating, warm-up rounds left out, device-synchronised, medians over repeats.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from seats_cli.request import frame_policy
from seats_cli.config import ModelConfig
from seats_cli.flops import TextModelDims, compare_flops, layer_flops
from seats_cli.report import layer_rows
from seats_cli.machine import machine_info
from seats_cli.measure import measure, paired_speedup, synthetic_request
from seats_cli.shape import shape_from_frames

TRRS = (0.35, 0.25, 0.15, 0.10)

# text-model sizes: the 7B's own, and a CPU-sized one with the 7B's depth and proportions: intermediate/hidden
# 5.25 (7B: 5.29), GQA, head_dim 64 instead of 128, and the vocabulary scaled with the width (152064 * 512/3584)
# so that the LM head weighs in the §9 FLOPs as much as in the 7B (with the full 152064 words the LM-head term
# would be 27% of the full prefill's analytic FLOPs instead of the 7B's 5.9%; --vocab 152064 reproduces that)
TEXT_7B = dict(hidden_size=3584, intermediate_size=18944, num_attention_heads=28, num_key_value_heads=4,
               head_dim=128, vocab_size=152064, mrope_section=[16, 24, 24])
TEXT_CPU = dict(hidden_size=512, intermediate_size=2688, num_attention_heads=8, num_key_value_heads=2,
                head_dim=64, vocab_size=21760, mrope_section=[8, 12, 12])
LAYOUTS = {"cpu": dict(frames=32, audio_seconds=16.0), "gpu": dict(frames=128, audio_seconds=64.0)}
# Qwen3-Omni-30B-A3B's text model (48 layers, MoE 128 experts x 768, top 8, q width 4096 != hidden 2048), and a
# CPU size with its depth and proportions: head_dim 64, 16 experts of width 0.375 x hidden with the same share
# active (8 of 128 -> 1 of 16 would starve the MoE; 4 of 16 keeps top-k > 1), vocabulary scaled with the width
QWEN3_GPU = dict(hidden_size=2048, num_attention_heads=32, num_key_value_heads=4, head_dim=128, vocab_size=152064,
                 num_experts=128, num_experts_per_tok=8, moe_intermediate_size=768, mrope_section=[24, 20, 20])
QWEN3_CPU = dict(hidden_size=512, num_attention_heads=8, num_key_value_heads=2, head_dim=64, vocab_size=38016,
                 num_experts=16, num_experts_per_tok=4, moe_intermediate_size=192, mrope_section=[12, 10, 10])


def build_thinker(text: dict, attn: str, dtype: torch.dtype, device: torch.device):
    """A random-weight thinker with the wanted 28-layer text model and the tiny model's encoders."""
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    from seats_cli.models.tiny import tiny_thinker_config

    cfg = tiny_thinker_config(attn)
    tc = cfg.text_config
    for key in ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim",
                "vocab_size"):
        setattr(tc, key, text[key])
    tc.num_hidden_layers = 28
    tc.rope_parameters = {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": text["mrope_section"]}
    cfg.vision_config.out_hidden_size = text["hidden_size"]
    cfg.audio_config.output_dim = text["hidden_size"]
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5OmniThinkerForConditionalGeneration._from_config(cfg, dtype=dtype)
    return model.eval()


def build_qwen3_thinker(text: dict, attn: str, dtype: torch.dtype, device: torch.device):
    """A random-weight Qwen3-Omni MoE thinker: the wanted 48-layer text model, the tiny-qwen3 encoders."""
    from transformers import Qwen3OmniMoeThinkerForConditionalGeneration

    from seats_cli.models.tiny_qwen3 import tiny_qwen3_thinker_config

    cfg = tiny_qwen3_thinker_config(attn)
    tc = cfg.text_config
    for key in ("hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size", "num_experts",
                "num_experts_per_tok", "moe_intermediate_size"):
        setattr(tc, key, text[key])
    tc.intermediate_size = text["num_experts_per_tok"] * text["moe_intermediate_size"]
    tc.rope_parameters = dict(tc.rope_parameters, mrope_section=text["mrope_section"])
    cfg.vision_config.out_hidden_size = text["hidden_size"]
    cfg.audio_config.output_dim = text["hidden_size"]
    torch.manual_seed(0)
    from seats_cli.config import ModelConfig

    experts = ModelConfig.from_name("qwen3-omni-30b-a3b").architecture.experts_implementation  # the preset's kernel
    with torch.device(device):
        model = Qwen3OmniMoeThinkerForConditionalGeneration._from_config(cfg, dtype=dtype,
                                                                         experts_implementation=experts)
    return model.eval()


def run(mode: str, attn: str, args) -> dict:
    device = torch.device("cuda" if mode == "gpu" else "cpu")
    dtype = torch.bfloat16 if mode == "gpu" else torch.float32
    t0 = time.perf_counter()
    if args.model_arch == "qwen3-30b-a3b":
        from seats_cli.models.qwen3_omni import Qwen3OmniAdapter
        from seats_cli.models.tiny_qwen3 import build_tiny_qwen3_processor

        text = dict(QWEN3_GPU if mode == "gpu" else QWEN3_CPU)
        if args.vocab:
            text["vocab_size"] = args.vocab
        config = ModelConfig.from_name("qwen3-omni-30b-a3b")  # boundaries 27/31/35/39, ratio table, 13 tokens/s
        model = build_qwen3_thinker(text, attn, dtype, device)
        adapter = Qwen3OmniAdapter(model, build_tiny_qwen3_processor(), config, model_id=f"random-qwen3-{mode}",
                                   device=device)
    else:
        from seats_cli.models.qwen2_5_omni import Qwen25OmniAdapter
        from seats_cli.models.tiny import build_tiny_processor

        text = dict(TEXT_7B if mode == "gpu" else TEXT_CPU)
        if args.vocab:
            text["vocab_size"] = args.vocab
        config = ModelConfig.from_name("qwen2.5-omni-7b")  # SEATS boundaries, ratio table and media policy
        model = build_thinker(text, attn, dtype, device)
        adapter = Qwen25OmniAdapter(model, build_tiny_processor(), config, model_id=f"random-{mode}", device=device)
    layout_kw = LAYOUTS[mode]
    shape = shape_from_frames(config, frame_policy(config), frames=args.frames or layout_kw["frames"],
                              aspect="16:9", audio_seconds=layout_kw["audio_seconds"] if args.audio_seconds is None
                              else args.audio_seconds, n_text=100)
    encoded, layout = synthetic_request(adapter, shape, config, seed=0)
    print(f"[{mode}/{attn}] model built and request prepared in {time.perf_counter() - t0:.1f} s; "
          f"S = {layout.seq_len} (video {layout.n_video}, audio {layout.n_audio}, text {layout.n_text}), "
          f"{len(layout.windows)} windows", file=sys.stderr, flush=True)

    def progress(done, total):
        print(f"\r  run {done}/{total}", end="", file=sys.stderr, flush=True)

    if args.methods:
        return run_methods(adapter, encoded, layout, config, shape, text, args, mode, attn, dtype, progress)
    full, seats = measure(adapter, encoded, layout, config, list(TRRS), repeats=args.repeats, warmup=args.warmup,
                          decode_tokens=args.decode_tokens, progress=progress)
    print(file=sys.stderr)
    dims = TextModelDims.from_hf_text_config(adapter.text_config)
    rows = []
    for trr, m in zip(TRRS, seats):
        layers = layer_rows(layout, m["layer_live"])
        per_layer = [r["video"] + r["audio"] + r["text"] for r in layers]
        f = compare_flops(layout.seq_len, layers, dims)
        executed = _executed_flops([layout.seq_len] * dims.num_layers, dims) / _executed_flops(per_layer, dims)
        speedup = full["prefill_ms"]["median"] / m["prefill_ms"]["median"]
        dec = (full["decode_ms_per_token"]["median"] / m["decode_ms_per_token"]["median"]
               if m["decode_ms_per_token"] else None)
        rows.append({
            "trr": trr, "stage_tokens": _stages(per_layer), "flops_ratio": f["reduction"],
            "flops_ratio_executed": executed,
            "prefill_ms_full": full["prefill_ms"], "prefill_ms_seats": m["prefill_ms"],
            "prefill_speedup": speedup, "speedup_over_flops": speedup / f["reduction"],
            "prefill_speedup_paired": paired_speedup(full["prefill_ms"], m["prefill_ms"]), "decode_speedup": dec,
            "prefill_process_cpu_ms_full": full["prefill_process_cpu_ms"],
            "prefill_process_cpu_ms_seats": m["prefill_process_cpu_ms"],
            "process_cpu_speedup": (full["prefill_process_cpu_ms"]["median"] / m["prefill_process_cpu_ms"]["median"]
                                    if full["prefill_process_cpu_ms"] else None),
            "decode_ms_per_token_full": full["decode_ms_per_token"],
            "decode_ms_per_token_seats": m["decode_ms_per_token"],
            "peak_memory_full": full["peak_memory"], "peak_memory_seats": m["peak_memory"],
            "select_ms": m["select_ms"], "select_share": m["select_share"], "decode_mode": m["decode_mode"],
            "kv_cache_mib_full": full["kv_cache_mib"], "kv_cache_mib_seats": m["kv_cache_mib"],
        })
    out = {"mode": mode, "attn_implementation": attn, "dtype": str(dtype).replace("torch.", ""),
           "model_arch": args.model_arch, "text_model": text | {"num_layers": config.architecture.num_layers},
           "layout": {"frames": shape.frames, "height": shape.height, "width": shape.width,
                      "video": layout.n_video, "audio": layout.n_audio, "text": layout.n_text,
                      "windows": len(layout.windows)},
           "repeats": args.repeats, "warmup": args.warmup, "machine": machine_info(device), "rows": rows}
    if args.profile:
        print_table(out)  # first: a profiler that runs past the step's time limit must not take the table with it
        sys.stdout.flush()
        out["printed"] = True
        out["profile"] = []
        for trr in (None, 0.10):
            try:  # the timed rows above must survive a profiler that fails on some torch build
                out["profile"].append(profile_prefill(adapter, encoded, layout, config, trr))
            except Exception as e:  # noqa: BLE001
                print(f"profile at {trr} failed: {type(e).__name__}: {e}", file=sys.stderr)
                out["profile"].append({"method": "full" if trr is None else f"seats@{trr}", "error": str(e)})
    del adapter, model, encoded
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def profile_prefill(adapter, encoded, layout, config, trr, rows: int = 15) -> dict:
    """One prefill (full, or SEATS at ``trr``) under torch.profiler, after one unprofiled warm-up: wall time, the
    device's kernel time and count (how busy the device was), the time inside the method's selection (the
    ``seats.select`` ranges: before layer 0 and at each drop layer, host view), and the ops that took the most
    device and host time, and (another run) how often the host waited for the device (``host_waits``: the
    full prefill's own synchronisations, plus one per Stage II score read for SEATS). Printed to stderr; the
    summary goes into the JSON."""
    from torch.profiler import ProfilerActivity, profile, record_function

    from seats_cli.engine import prefill
    from seats_cli.methods import build_pruner
    from seats_cli.transfer import count_host_waits

    cuda = adapter.device.type == "cuda"

    def one():
        pruner = None
        if trr is not None:
            pruner, _ = build_pruner("seats", config, layout, trr=trr)
            for name in ("before_llm", "at_layer"):  # label the selection calls (the instance only)
                call = getattr(pruner, name)

                def labelled(*a, _call=call, **k):
                    with record_function("seats.select"):
                        return _call(*a, **k)

                setattr(pruner, name, labelled)
        return prefill(adapter, encoded, layout, pruner)

    one()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    adapter.synchronize()
    with profile(activities=acts) as prof:
        res = one()
        adapter.synchronize()
    events = prof.key_averages()
    dev_us = sum(getattr(e, "self_device_time_total", 0) or 0 for e in events) if cuda else None
    kernels = sum(e.count for e in events if getattr(e, "device_type", None) is not None
                  and "CUDA" in str(e.device_type)) if cuda else None
    select = [e for e in events if e.key == "seats.select"]
    label = "full" if trr is None else f"seats@{trr}"
    _, waits = count_host_waits(one)  # another run: the sync debug mode costs time
    summary = {"method": label, "prefill_ms": res.prefill_ms, "host_waits": waits,
               "device_kernel_ms": dev_us / 1000 if cuda else None, "device_kernels": kernels,
               "select_calls": select[0].count if select else 0,
               "select_host_ms": select[0].cpu_time_total / 1000 if select else 0.0}
    print(f"\n[profile {label}] " + " ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                                           for k, v in summary.items()), file=sys.stderr)
    if cuda:
        try:  # the device sort key's name moved between torch versions
            table = events.table(sort_by="self_device_time_total", row_limit=rows)
        except (KeyError, ValueError, AttributeError):
            table = events.table(sort_by="self_cuda_time_total", row_limit=rows)
        print(table, file=sys.stderr)
    print(events.table(sort_by="self_cpu_time_total", row_limit=rows), file=sys.stderr)
    summary["top"] = [{"op": e.key, "count": e.count, "self_cpu_ms": e.self_cpu_time_total / 1000,
                       "self_device_ms": (getattr(e, "self_device_time_total", 0) or 0) / 1000}
                      for e in sorted(events, key=lambda e: -(getattr(e, "self_device_time_total", 0) or 0)
                                      if cuda else -e.self_cpu_time_total)[:rows]]
    return summary


METHOD_TRRS = (0.35, 0.10)


def run_methods(adapter, encoded, layout, config, shape, text, args, mode, attn, dtype, progress) -> dict:
    """--methods: full and every listed method at R = 0.35 and 0.10 on the same request, rounds alternating.
    A pre-LLM method's own selection is part of its prefill time. The request's embeddings and encoder signals
    are random: FastVID sees no two grids alike (one grid per segment: its largest budget), OmniZip's chunks keep
    random shares of their audio."""
    methods = [m for m in args.methods.split(",") if m]
    full, runs = measure(adapter, encoded, layout, config, list(METHOD_TRRS), repeats=args.repeats,
                         warmup=args.warmup, decode_tokens=1, progress=progress, methods=methods)
    print(file=sys.stderr)
    dims = TextModelDims.from_hf_text_config(adapter.text_config)
    rows = []
    kinds = [(m, t) for t in METHOD_TRRS for m in methods]
    for (method, trr), m in zip(kinds, runs):
        layers = layer_rows(layout, m["layer_live"])
        per_layer = [r["video"] + r["audio"] + r["text"] for r in layers]
        f = compare_flops(layout.seq_len, layers, dims)
        speedup = full["prefill_ms"]["median"] / m["prefill_ms"]["median"]
        rows.append({"method": method, "trr": trr, "stage_tokens": _stages(per_layer), "flops_ratio": f["reduction"],
                     "prefill_ms": m["prefill_ms"], "prefill_speedup": speedup,
                     "prefill_speedup_paired": paired_speedup(full["prefill_ms"], m["prefill_ms"]),
                     "speedup_over_flops": speedup / f["reduction"]})
    return {"mode": mode, "attn_implementation": attn, "dtype": str(dtype).replace("torch.", ""),
            "model_arch": args.model_arch, "text_model": text | {"num_layers": config.architecture.num_layers},
            "layout": {"frames": shape.frames, "height": shape.height, "width": shape.width, "video": layout.n_video,
                       "audio": layout.n_audio, "text": layout.n_text, "windows": len(layout.windows)},
            "repeats": args.repeats, "warmup": args.warmup, "machine": machine_info(adapter.device),
            "prefill_ms_full": full["prefill_ms"], "method_rows": rows}


def print_methods(res: dict) -> None:
    lay, m = res["layout"], res["machine"]
    where = m.get("gpu") or f"{m['cpu']} ({m['cpu_count']} cores, {m['threads']} threads)"
    print(f"\n{res['mode'].upper()} · {res['model_arch']} · {res['attn_implementation']} · {res['dtype']} · "
          f"torch {m['torch']} · {where}")
    print(f"layout {lay['frames']} frames {lay['width']}x{lay['height']}: video {lay['video']}, audio {lay['audio']}, "
          f"text {lay['text']}; full prefill {res['prefill_ms_full']['median']:.1f} ms median "
          f"({res['prefill_ms_full']['min']:.1f} min) of {res['repeats']} repeats")
    print(" | ".join(("method", "R", "tokens per stage", "FLOPs ratio (§9)", "prefill ms median (min)",
                      "speedup", "(paired)", "speedup/FLOPs")))
    for r in res["method_rows"]:
        print(" | ".join([r["method"], f"{r['trr']:.2f}", r["stage_tokens"], f"{r['flops_ratio']:.2f}x",
                          f"{r['prefill_ms']['median']:.1f} ({r['prefill_ms']['min']:.1f})",
                          f"{r['prefill_speedup']:.2f}x", f"{r['prefill_speedup_paired']:.2f}x",
                          f"{r['speedup_over_flops']:.2f}"]))


def _executed_flops(tokens, dims: TextModelDims) -> int:
    """What the engine actually computes, in the §9 units: causal attention (the lower triangle, S^2/2 per
    q·k and attn·v instead of the convention's full square) and the LM head on the last position only. Not
    a replacement for the paper's convention — it says how much of the analytic ratio is reachable at all."""
    body = sum(layer_flops(s, dims) - s * s * dims.q_width for s in tokens)
    return body + dims.hidden_size * dims.vocab_size


def _stages(per_layer: list[int]) -> str:
    out = [per_layer[0]]
    for s in per_layer[1:]:
        if s != out[-1]:
            out.append(s)
    return "→".join(str(x) for x in out)


def print_table(res: dict) -> None:
    lay, m = res["layout"], res["machine"]
    where = m.get("gpu") or f"{m['cpu']} ({m['cpu_count']} cores, {m['threads']} threads)"
    print(f"\n{res['mode'].upper()} · {res['model_arch']} · {res['attn_implementation']} · {res['dtype']} · "
          f"torch {m['torch']} · {where}")
    print(f"text model {res['text_model']}; layout {lay['frames']} frames {lay['width']}x{lay['height']}: "
          f"video {lay['video']}, audio {lay['audio']}, text {lay['text']}, {lay['windows']} windows; "
          f"medians of {res['repeats']} repeats ({res['warmup']} warm-up left out)")
    head = ("R", "tokens per stage", "FLOPs ratio (§9)", "executed-FLOPs ratio", "full ms median (min)",
            "SEATS ms median (min)", "prefill speedup", "speedup/FLOPs", "(paired)", "CPU-time speedup/FLOPs",
            "decode speedup", "SEATS decode ms/token", "selection ms (share)", "peak mem full/SEATS",
            "KV after prefill full/SEATS")
    print(" | ".join(head))
    for r in res["rows"]:
        pf, ps = r["peak_memory_full"], r["peak_memory_seats"]
        print(" | ".join([
            f"{r['trr']:.2f}", r["stage_tokens"], f"{r['flops_ratio']:.2f}x", f"{r['flops_ratio_executed']:.2f}x",
            f"{r['prefill_ms_full']['median']:.1f} ({r['prefill_ms_full']['min']:.1f})",
            f"{r['prefill_ms_seats']['median']:.1f} ({r['prefill_ms_seats']['min']:.1f})",
            f"{r['prefill_speedup']:.2f}x", f"{r['speedup_over_flops']:.2f}",
            f"{r['prefill_speedup_paired'] / r['flops_ratio']:.2f}",
            f"{r['process_cpu_speedup'] / r['flops_ratio']:.2f}" if r["process_cpu_speedup"] else "-",
            f"{r['decode_speedup']:.2f}x" if r["decode_speedup"] else "-",
            f"{r['decode_ms_per_token_seats']['median']:.2f}" if r["decode_ms_per_token_seats"] else "-",
            f"{r['select_ms']:.1f} ({100 * r['select_share']:.1f}%)" if r.get("select_ms") is not None else "-",
            f"{pf['mib']:.0f}/{ps['mib']:.0f} MiB", f"{r['kv_cache_mib_full']:.1f}/{r['kv_cache_mib_seats']:.1f} MiB",
        ]))
    print(f"peak memory: {res['rows'][0]['peak_memory_seats']['kind']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--cpu", action="store_true", help="reduced-width 28-layer model on the CPU, fp32, sdpa")
    g.add_argument("--gpu", action="store_true", help="Qwen2.5-Omni-7B text architecture on CUDA, bf16")
    ap.add_argument("--repeats", type=int, default=None, help="timed rounds (default 7 on CPU, 10 on GPU)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads on CPU (default 2)")
    ap.add_argument("--decode-tokens", type=int, default=16)
    ap.add_argument("--frames", type=int, default=None, help="override the layout's frame count")
    ap.add_argument("--audio-seconds", type=float, default=None, help="override the layout's audio seconds")
    ap.add_argument("--vocab", type=int, default=None, help="override the text model's vocabulary size")
    ap.add_argument("--attn", default=None,
                    help="comma-separated attention implementations (default: sdpa; GPU adds flash_attention_2 "
                         "when flash-attn is installed)")
    ap.add_argument("--model-arch", choices=("qwen2.5-7b", "qwen3-30b-a3b"), default="qwen2.5-7b",
                    help="text architecture: the 7B's (28 layers) or Qwen3-Omni-30B-A3B's (48 layers, MoE, "
                         "DeepStack; reduced width on --cpu)")
    ap.add_argument("--methods", default=None,
                    help="comma-separated methods (e.g. seats,random,divprune,fastv,fastv-om,dycoke,visionzip,"
                         "visionzip-om,omnizip,fastvid): prefill of each at R = 0.35 and 0.10 against full instead "
                         "of the SEATS TRR sweep")
    ap.add_argument("--profile", action="store_true",
                    help="also profile one full and one R 0.10 prefill (torch.profiler; tables on stderr)")
    ap.add_argument("--json", action="store_true", help="also print all results as one JSON object")
    args = ap.parse_args()
    mode = "gpu" if args.gpu else "cpu"
    if mode == "gpu" and not torch.cuda.is_available():
        sys.exit("error: --gpu needs a CUDA device")
    if mode == "cpu":
        torch.set_num_threads(args.threads)
    args.repeats = args.repeats or (10 if mode == "gpu" else 7)
    attns = args.attn.split(",") if args.attn else ["sdpa"]
    if not args.attn and mode == "gpu":
        try:
            import flash_attn  # noqa: F401

            attns.append("flash_attention_2")
        except ImportError:
            print("flash-attn not installed: sdpa only", file=sys.stderr)
    results = []
    with torch.no_grad():
        for attn in attns:
            results.append(run(mode, attn, args))
            if not results[-1].pop("printed", False):
                (print_methods if args.methods else print_table)(results[-1])
    if args.json:
        print(json.dumps({"command": " ".join(sys.argv), "results": results}))


if __name__ == "__main__":
    main()
