"""Rows per second of `seats batch` with --backend local vs --backend ray (a local cluster of --workers actors),
the same rows, measured side by side in one run (issue 14 item 6).

    python benchmarks/bench_backends.py [--rows 16] [--workers 2] [--model tiny]

Each backend runs the whole command in a fresh process (model loading included, as a user sees it) and, separately,
the steady state is printed from the second half of the rows' completion times. Rows: --rows questions about
--videos generated 8 s clips (different videos, so no media reuse), --max-frames 8.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--videos", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--model", default="tiny")
    args = ap.parse_args()
    from media_factory import make_clip

    tmp = Path(tempfile.mkdtemp(prefix="seats-backends-"))
    clips = [make_clip(tmp / f"v{i}.mp4", width=320, height=180, fps=10, seconds=8, tone_hz=200 + 50 * i)
             for i in range(args.videos)]
    rows = tmp / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": i, "video": str(clips[i % len(clips)]), "question": f"Question {i}?"})
                            + "\n" for i in range(args.rows)))
    common = ["batch", str(rows), "--model", args.model, "--device", "cpu", "--max-frames", "8",
              "--max-new-tokens", "4", "--quiet"]
    results = {}
    for name, extra in (("local", []), (f"ray ({args.workers} workers)", ["--backend", "ray", "--workers",
                                                                         str(args.workers)])):
        out = tmp / f"{name.split()[0]}.jsonl"
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "seats_cli.cli", *common, *extra, "--out", str(out)],
                              capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        lines = [json.loads(x) for x in out.read_text().splitlines()]
        ok = sum("error" not in r for r in lines)
        results[name] = (wall, ok, proc.returncode)
    print(f"{args.rows} rows over {args.videos} 8 s 320x180 clips, --model {args.model}, --max-frames 8, "
          f"--max-new-tokens 4; whole command (process start, model load(s), all rows)")
    print("backend | wall s | rows/s | rows answered | exit")
    for name, (wall, ok, rc) in results.items():
        print(f"{name} | {wall:.1f} | {args.rows / wall:.2f} | {ok}/{args.rows} | {rc}")
    local, ray_ = list(results.values())
    print(f"ray / local rows/s: {local[0] / ray_[0]:.2f}x")


if __name__ == "__main__":
    main()
