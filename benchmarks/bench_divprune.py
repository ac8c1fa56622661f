"""DivPrune-om over a whole modality, side by side in one run: the full N x N distance matrix
(``diversity_select``) against the row-wise path that never holds it (``diversity_select_whole`` past its bound,
docs/METHOD.md §10), each in a fresh process so that its peak resident memory is its own; the picks are compared.

    python benchmarks/bench_divprune.py                    # 20,000 tokens of width 3584 (the 7B's), R = 0.1
    python benchmarks/bench_divprune.py --n 9216 --d 3584  # the 7B's 128 frames of 16:9

Features are random (seeded) fp32 rows; the cost does not depend on their values.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, sys, time, torch
from seats_cli.selection.diversity import diversity_select, diversity_select_whole
n, d, k, mode, threads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
torch.set_num_threads(threads)
x = torch.randn(n, d, generator=torch.Generator().manual_seed(0))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
picks = diversity_select(x, k) if mode == "full" else diversity_select_whole(x, k, max_full=0)
s = time.perf_counter() - t
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
print(json.dumps({"seconds": s, "peak_mib": grown, "picks": picks.tolist()}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="tokens of the modality")
    ap.add_argument("--d", type=int, default=3584, help="feature width (the LLM's hidden size)")
    ap.add_argument("--trr", type=float, default=0.1, help="kept share: k = round(R N)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    k = max(1, round(args.trr * args.n))
    runs = {}
    for mode in ("full", "rows"):
        out = subprocess.run([sys.executable, "-c", CHILD, str(args.n), str(args.d), str(k), mode,
                              str(args.threads)], capture_output=True, text=True, cwd=ROOT, check=True)
        runs[mode] = json.loads(out.stdout)
        print(f"{mode:5s} {runs[mode]['seconds']:8.1f} s   peak +{runs[mode]['peak_mib']:8.0f} MiB", flush=True)
    same = runs["full"]["picks"] == runs["rows"]["picks"]
    matrix = 4 * args.n * args.n / 2**20
    print(f"N = {args.n}, d = {args.d}, k = {k}: one fp32 matrix is {matrix:.0f} MiB; rows / full: "
          f"{runs['rows']['seconds'] / runs['full']['seconds']:.2f}x the time, "
          f"{runs['rows']['peak_mib'] / runs['full']['peak_mib']:.2f}x the memory; same picks: {same}")


if __name__ == "__main__":
    main()
