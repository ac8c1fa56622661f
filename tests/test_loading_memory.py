"""Loading does not copy the weights twice in host memory (issue 12 item 2), on a small random bf16 checkpoint.

The measurement is benchmarks/bench_load.py's: a fresh process calls `load_model` on the folder while a thread
samples its anonymous RSS (memory it owns, as opposed to the checkpoint's mmap'd page cache).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_load  # noqa: E402


def test_load_model_does_not_copy_the_weights_into_host_memory(tmp_path):
    folder = tmp_path / "ckpt"
    cfg = bench_load.thinker_config(small=True, hidden=256)
    bench_load.write_checkpoint(folder, cfg, seed=0, shard_bytes=32 * 2**20)  # ~65 MB in 3 shards
    r = bench_load.measure(folder, period=0.005, dtype="bfloat16", timeout=120)
    weights = r["weights_bytes"]
    assert 40 * 2**20 < weights < 100 * 2**20
    assert r["dtypes"] == ["bfloat16", "float32"]  # bf16 weights; the rotary inv_freq buffers stay fp32
    grew = r["peak"]["RssAnon"] - r["before"]["RssAnon"]
    # the bf16 weights are views of the mmap'd files (measured: 0.14x, the process's own heap); one copy of them
    # in memory the process owns would be >= 1x
    assert grew < 0.6 * weights, f"anonymous RSS grew {grew / 2**20:.0f} MiB loading {weights / 2**20:.0f} MiB"
