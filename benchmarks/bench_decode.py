"""Greedy decode, ms per token, by decode loop, side by side: the stock DynamicCache loop (`dynamic`, before issue
12) against in-place KV buffers (`buffers`), the static-shape step (`static`) and, on GPU, that step replayed as a
CUDA graph (`cuda-graph`), after full and SEATS prefills (issue 12 item 3). `compiled`: the
static step's core under torch.compile (replayed as a CUDA graph on GPU); its compilations, one per buffer shape,
fall in the warm-up round, and its setup column holds the graph capture only.

    python benchmarks/bench_decode.py --cpu     # the tiny model and bench_prefill's 28-layer CPU model, fp32
    python benchmarks/bench_decode.py --gpu     # the Qwen2.5-Omni-7B text model (random weights, bf16), 128 frames,
                                                # with the memory-bandwidth bound per token

Per (model, method) one prefill per round, then every loop decodes the same prompt (`dynamic` last: it grows the
prefill cache); rounds repeat --repeats times after one warm-up; medians. ms/token leaves out the once-per-request
setup (the cache copied into the buffers, the graph captured), shown apart. The tokens of every loop are compared.
On GPU the bound is (bytes of the text model's weights read per token + the KV cache) / the device's copy bandwidth
measured here (2 x bytes / time of a 1 GiB device-to-device copy).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_prefill import LAYOUTS, TEXT_7B, TEXT_CPU, build_thinker  # noqa: E402

from seats_cli.config import ModelConfig  # noqa: E402
from seats_cli.engine import NoPruning, decode, prefill  # noqa: E402
from seats_cli.machine import machine_info  # noqa: E402
from seats_cli.measure import synthetic_request  # noqa: E402
from seats_cli.methods import build_pruner  # noqa: E402
from seats_cli.request import frame_policy  # noqa: E402
from seats_cli.shape import shape_from_frames  # noqa: E402

RUNS = (("full", None), ("seats", 0.35), ("seats", 0.10))


def models(mode: str, which: list[str]):
    """(name, adapter, config, frames, audio seconds) for each model asked for."""
    from seats_cli.models import load_model
    from seats_cli.models.qwen2_5_omni import Qwen25OmniAdapter
    from seats_cli.models.tiny import build_tiny_processor

    dev = torch.device("cuda" if mode == "gpu" else "cpu")
    for name in which:
        if name == "tiny":
            ad = load_model("tiny", device=str(dev), dtype="float32")
            yield name, ad, ad.config, 16, 8.0
        else:
            text = TEXT_7B if mode == "gpu" else TEXT_CPU
            dtype = torch.bfloat16 if mode == "gpu" else torch.float32
            cfg = ModelConfig.from_name("qwen2.5-omni-7b")
            ad = Qwen25OmniAdapter(build_thinker(text, "sdpa", dtype, dev), build_tiny_processor(), cfg,
                                   model_id=f"random-{name}", device=dev)
            yield name, ad, cfg, LAYOUTS[mode]["frames"], LAYOUTS[mode]["audio_seconds"]


def copy_bandwidth(dev: torch.device) -> float:
    """Bytes per second of a 1 GiB device-to-device copy (read + write), best of 5."""
    x = torch.empty(2**30, dtype=torch.uint8, device=dev)
    y = torch.empty_like(x)
    best = float("inf")
    for _ in range(6):
        torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        y.copy_(x)
        torch.cuda.synchronize(dev)
        best = min(best, time.perf_counter() - t0)
    del x, y
    return 2 * 2**30 / best


def text_weight_bytes(adapter) -> int:
    """Weights a decode step reads: every decoder layer, the final norm and the LM head (one embedding row)."""
    tm = adapter.text_model
    parts = [tm.layers, tm.norm, adapter.model.lm_head]
    return sum(p.numel() * p.element_size() for m in parts for p in m.parameters())


def bench(name, adapter, config, frames, audio_s, loops, args) -> list[dict]:
    shape = shape_from_frames(config, frame_policy(config), frames=frames, aspect="16:9", audio_seconds=audio_s)
    encoded, layout = synthetic_request(adapter, shape, config, seed=0)
    print(f"[{name}] S = {layout.seq_len} (video {layout.n_video}, audio {layout.n_audio}, text {layout.n_text})",
          file=sys.stderr, flush=True)
    rec = {(m, t, lp): {"ms": [], "setup": [], "tokens": None, "ran": None, "note": None} for m, t in RUNS
           for lp in loops}
    kv = {}
    for rnd in range(args.repeats + 1):
        for method, trr in RUNS:
            pruner = NoPruning() if method == "full" else build_pruner(method, config, layout, trr=trr)[0]
            res = prefill(adapter, encoded, layout, pruner)
            kv[(method, trr)] = sum(lay.keys.numel() * lay.keys.element_size() * 2 for lay in res.cache.layers)
            for lp in loops:  # dynamic is last in `loops`: it appends to the prefill cache
                d = decode(adapter, res, encoded.next_position, max_new_tokens=args.new_tokens, eos_token_ids=[],
                           mode=lp)
                r = rec[(method, trr, lp)]
                r["tokens"] = d.tokens
                r["ran"], r["note"] = d.mode, d.note  # a loop that fell back says so in the table
                if lp == "dynamic" and any(rec[(method, trr, o)]["tokens"] != d.tokens for o in loops):
                    print(f"\n{method}@{trr} round {rnd}: " + str({o: rec[(method, trr, o)]["tokens"] for o in loops}), file=sys.stderr)
                if rnd:
                    r["ms"].append((d.ms - d.setup_ms) / (len(d.tokens) - 1))
                    r["setup"].append(d.setup_ms)
                # each timing as it comes (stderr): a run stopped at its time limit keeps what it measured
                print(f"\n  {method}@{trr} {lp}{'' if rnd else ' (warm-up)'}: "
                      f"{(d.ms - d.setup_ms) / max(1, len(d.tokens) - 1):.2f} ms/token, setup {d.setup_ms:.0f} ms"
                      + ("" if d.mode == lp else f", ran {d.mode}"), end="", file=sys.stderr, flush=True)
            del res
        print(f"\r  round {rnd}/{args.repeats}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    rows = []
    weights = text_weight_bytes(adapter)
    bw = copy_bandwidth(adapter.device) if adapter.device.type == "cuda" else None
    for method, trr in RUNS:
        ref = rec[(method, trr, "dynamic")]
        for lp in loops:
            r = rec[(method, trr, lp)]
            ms = statistics.median(r["ms"])
            bound = (weights + kv[(method, trr)]) / bw * 1000 if bw else None
            ran = r["ran"] if r["ran"] == lp else f"{lp} -> {r['ran']} ({r['note']})"
            rows.append({"model": name, "method": method, "trr": trr, "loop": lp, "ran": ran, "ms_per_token": ms,
                         "ms_per_token_min": min(r["ms"]), "setup_ms": statistics.median(r["setup"]),
                         "speedup_vs_dynamic": statistics.median(ref["ms"]) / ms,
                         "same_tokens_as_dynamic": r["tokens"] == ref["tokens"],
                         "kv_mib": kv[(method, trr)] / 2**20, "bound_ms": bound,
                         "share_of_bound": bound / ms if bound else None})
    meta = {"seq_len": layout.seq_len, "weights_bytes": weights, "copy_bandwidth_gb_s": bw / 1e9 if bw else None}
    return [r | meta for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--cpu", action="store_true")
    g.add_argument("--gpu", action="store_true")
    ap.add_argument("--models", default=None, help="comma list of tiny, bench (default: both on CPU, bench on GPU)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--loops", default=None,
                    help="comma list of decode loops (default: cuda-graph,buffers,dynamic on GPU; "
                         "compiled,static,buffers,dynamic on CPU); dynamic is always added last")
    ap.add_argument("--runs", default=None, help="comma list among full, seats@0.35, seats@0.1 (default: all)")
    ap.add_argument("--json", type=Path, default=None, help="write all rows here (- : to stdout)")
    args = ap.parse_args()
    mode = "gpu" if args.gpu else "cpu"
    if mode == "gpu" and not torch.cuda.is_available():
        sys.exit("error: --gpu needs a CUDA device")
    if mode == "cpu":
        torch.set_num_threads(args.threads)
    which = (args.models or ("bench" if mode == "gpu" else "tiny,bench")).split(",")
    # on GPU the eager static step (launch-bound, 29-38 ms/token on the first H200 run) is left out, and the
    # compiled step (its compilation: tens of seconds per buffer shape) runs as its own step of gpu_check.sh
    loops = (args.loops.split(",") if args.loops else
             ["cuda-graph", "buffers"] if mode == "gpu" else ["compiled", "static", "buffers"])
    loops = [lp for lp in loops if lp != "dynamic"] + ["dynamic"]  # the reference, last: it grows the cache
    global RUNS
    if args.runs:
        known = {f"{m}@{t}" if t else m: (m, t) for m, t in RUNS}
        RUNS = tuple(known[r] for r in args.runs.split(","))
    rows = []
    with torch.no_grad():
        for name, ad, cfg, frames, audio_s in models(mode, which):
            rows += bench(name, ad, cfg, frames, audio_s, loops, args)
            dev = ad.device
            del ad
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    info = machine_info(torch.device("cuda" if mode == "gpu" else "cpu"))
    print(f"{info.get('gpu') or info['cpu']} · torch {info['torch']} · {info['threads']} threads · "
          f"{args.new_tokens} new tokens · medians of {args.repeats} (1 warm-up left out)")
    head = "model | S | method | loop | ms/token median (min) | setup ms | vs dynamic | same tokens | KV MiB"
    print(head + (" | bound ms | share of bound" if mode == "gpu" else ""))
    for r in rows:
        meth = r["method"] if r["trr"] is None else f"{r['method']}@{r['trr']}"
        shown = r["loop"] if r["ran"] == r["loop"] else r["ran"]
        line = (f"{r['model']} | {r['seq_len']} | {meth} | {shown} | {r['ms_per_token']:.2f} "
                f"({r['ms_per_token_min']:.2f}) | {r['setup_ms']:.1f} | {r['speedup_vs_dynamic']:.2f}x | "
                f"{'yes' if r['same_tokens_as_dynamic'] else 'NO'} | {r['kv_mib']:.1f}")
        if mode == "gpu":
            line += f" | {r['bound_ms']:.2f} | {r['share_of_bound']:.2f}"
        print(line)
    if mode == "gpu":
        print(f"bound = (text weights {rows[0]['weights_bytes'] / 2**30:.2f} GiB + KV) / measured copy bandwidth "
              f"{rows[0]['copy_bandwidth_gb_s']:.0f} GB/s")
    if args.json:
        doc = json.dumps({"mode": mode, "machine": info, "repeats": args.repeats, "new_tokens": args.new_tokens,
                          "rows": rows}, indent=1)
        if str(args.json) == "-":
            print(doc)
        else:
            args.json.write_text(doc)


if __name__ == "__main__":
    main()
