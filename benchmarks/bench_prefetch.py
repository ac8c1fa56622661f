"""`seats batch` with and without decoding the next row's file ahead (``--prefetch``), side by side.

    python benchmarks/bench_prefetch.py [--rows 6] [--seconds 20] [--width 1280 --height 720] [--model tiny]
    python benchmarks/bench_prefetch.py --gpu [--rows 4] [--seconds 32]   # the full-size 7B thinker, random bf16
                                                                          # weights, on the GPU (as bench_e2e --gpu)

Generates ``--rows`` different clips (H.264 + AAC, 25 fps) and runs the batch runner over one question per clip
(``seats_cli.batch.run_batch``, what `seats batch --backend local` runs) twice per round — with ``Seats.prefetch``
and without — on fresh caches each time, alternating which goes first, one warm-up round left out. Prints the
median wall time per batch, the ratio, how long the rows waited for their media, and whether the answers agree.

What overlaps: the next file's decoding (PyAV, its own threads) with the current row's processor, encoders,
prefill and decode. On a GPU machine the model's part runs on the device and the host is mostly waiting, so the
media part can hide behind it; on this benchmark's CPU run the model and the decoder share the same cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--gpu", action="store_true", help="the full-size 7B thinker (random bf16 weights) on CUDA")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the model (CPU)")
    ap.add_argument("--max-new-tokens", type=int, default=8)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if not args.gpu:  # on a GPU host the processor and the frame resizing keep all of its cores
        torch.set_num_threads(args.threads)
    from media_factory import make_clip

    from seats_cli import Seats
    from seats_cli.batch import parse_rows, run_batch
    from seats_cli.machine import machine_info

    tmp = Path(tempfile.mkdtemp(prefix="seats-prefetch-"))
    t0 = time.perf_counter()
    clips = [make_clip(tmp / f"v{i}.mp4", width=args.width, height=args.height, fps=25, seconds=args.seconds,
                       tone_hz=300 + 100 * i) for i in range(args.rows)]
    print(f"{args.rows} clips of {args.seconds:g} s {args.width}x{args.height} generated in "
          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    rows = parse_rows("\n".join(json.dumps({"id": i, "video": str(c), "question": "What happens in this video?"})
                                for i, c in enumerate(clips)))
    if args.gpu:
        if not torch.cuda.is_available():
            sys.exit("error: --gpu needs a CUDA device")
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from _thinker7b import build_seats_7b

        model, args.model, args.device = build_seats_7b("cuda")[0], "random-qwen2.5-omni-7b", "cuda"
    else:
        model = Seats(args.model, device=args.device, dtype="float32")
    defaults = {"max_new_tokens": args.max_new_tokens}
    rec: dict[str, list[float]] = {"prefetch": [], "no prefetch": []}
    waits: dict[str, list[float]] = {"prefetch": [], "no prefetch": []}
    answers: dict[str, list] = {}
    for rnd in range(args.rounds + 1):  # round 0 warms up (page cache, first-call costs)
        order = ("prefetch", "no prefetch") if rnd % 2 else ("no prefetch", "prefetch")
        for name in order:
            s = Seats.from_adapter(model.adapter, name=args.model, decode_mode=model.decode_mode)  # fresh caches
            lines: list[str] = []
            model.adapter.synchronize()
            t1 = time.perf_counter()
            run_batch(rows, s.ask, lines.append, defaults=defaults,
                      prefetch=s.prefetch if name == "prefetch" else None)
            model.adapter.synchronize()
            ms = (time.perf_counter() - t1) * 1000
            out = [json.loads(line) for line in lines]
            if any("error" in o for o in out):
                sys.exit(f"error: a row failed: {next(o for o in out if 'error' in o)}")
            if rnd:
                rec[name].append(ms)
                waits[name].append(sum(o["latency_ms"]["media"] for o in out))
            answers[name] = [(o["answer"], o["layers"]) for o in out]
            s.close()
    m = machine_info(model.adapter.device)
    med = {k: statistics.median(v) for k, v in rec.items()}
    print(f"{m.get('gpu') or m['cpu']} · torch {m['torch']} · {args.model} on {args.device} · {args.threads} torch "
          f"threads · {args.rows} rows, one {args.seconds:g} s {args.width}x{args.height} clip each · medians of "
          f"{args.rounds} rounds (1 warm-up left out)")
    print("batch | ms median (min) | ms per row | media ms waited (median)")
    for k in rec:
        print(f"{k} | {med[k]:.0f} ({min(rec[k]):.0f}) | {med[k] / args.rows:.0f} | {statistics.median(waits[k]):.0f}")
    print(f"speedup {med['no prefetch'] / med['prefetch']:.2f}x; same answers and layer counts: "
          f"{answers['prefetch'] == answers['no prefetch']}")
    if args.json:
        args.json.write_text(json.dumps({"machine": m, "runs": rec, "media_waited_ms": waits, "args": vars(args)},
                                        default=str))


if __name__ == "__main__":
    main()
