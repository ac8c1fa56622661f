"""Several questions about one video: decode and encode once (issue 10 item 5), measured side by side.

    python benchmarks/bench_media_reuse.py [--videos 4] [--questions 3] [--seconds 20] [--model tiny]

Generates ``--videos`` clips (H.264 + AAC, 640x360, ``--seconds`` long) and asks ``--questions`` questions about
each, as `seats batch` / `seats eval` do (rows of one video back to back), once with ``Seats(reuse_media=False)``
(every row decodes the file and runs the encoders) and once with the default reuse, alternating rounds in one
process. Prints the wall time per row of each, where it goes (decode+encode vs prefill+decode) and the ratio.
"""

from __future__ import annotations

import argparse
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
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--questions", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--method", default="seats")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from media_factory import make_clip

    from seats_cli import Seats
    from seats_cli.machine import machine_info

    tmp = Path(tempfile.mkdtemp(prefix="seats-reuse-"))
    clips = [make_clip(tmp / f"v{i}.mp4", width=640, height=360, fps=25, seconds=args.seconds, tone_hz=300 + 100 * i)
             for i in range(args.videos)]
    rows = [(c, f"Question {j + 1}: what happens in this video?") for c in clips for j in range(args.questions)]
    seats = {flag: Seats(args.model, device="cpu", dtype="float32", reuse_media=flag) for flag in (False, True)}
    times = {False: [], True: []}
    split = {False: [], True: []}
    for rnd in range(args.rounds + 1):  # round 0 warms up
        for flag in (False, True):
            s = seats[flag]
            s._decoded = s._features = s._last = None
            t0 = time.perf_counter()
            media_ms = llm_ms = 0.0
            for video, q in rows:
                t1 = time.perf_counter()
                r = s.ask(video, q, method=args.method, max_new_tokens=2)
                total = (time.perf_counter() - t1) * 1000
                llm = r.latency_ms["prefill"] + r.latency_ms["decode"]
                llm_ms += llm
                media_ms += total - llm
            if rnd:
                times[flag].append((time.perf_counter() - t0) / len(rows) * 1000)
                split[flag].append((media_ms / len(rows), llm_ms / len(rows)))
    m = machine_info(torch.device("cpu"))
    print(f"{args.videos} videos x {args.questions} questions, {args.seconds:g} s 640x360 H.264+AAC each, "
          f"--model {args.model} --method {args.method}, {m['cpu']} ({m['threads']} threads), torch {m['torch']}; "
          f"medians of {args.rounds} rounds (1 warm-up left out)")
    print("mode | ms per row (median) | decode+encoders+rest ms/row | prefill+decode ms/row")
    for flag, name in ((False, "every row decodes and encodes"), (True, "reuse (default)")):
        med = statistics.median(times[flag])
        media = statistics.median(x[0] for x in split[flag])
        llm = statistics.median(x[1] for x in split[flag])
        print(f"{name} | {med:.1f} | {media:.1f} | {llm:.1f}")
    print(f"speedup per row: {statistics.median(times[False]) / statistics.median(times[True]):.2f}x "
          f"(ideal with {args.questions} questions per video, if media were all the cost: {args.questions:.2f}x)")


if __name__ == "__main__":
    main()
