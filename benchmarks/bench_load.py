"""Peak host memory while loading a checkpoint through the project's own loader (issue 12 item 2).

    python benchmarks/bench_load.py            # the Qwen2.5-Omni-7B thinker at full size: random bf16 weights written
                                               # once as a hub-style sharded checkpoint (~18 GB of disk), then loaded
    python benchmarks/bench_load.py --small    # a scaled-down thinker (~0.2 GB): a dry run in well under a minute

The checkpoint is written from a model built on the meta device (no memory): its parameter names are the ones
`save_pretrained` writes (the hub's), each tensor comes from its own seeded generator and is written shard by shard,
so writing holds about one shard in host memory. The folder (config.json, model-0000N-of-0000M.safetensors,
model.safetensors.index.json, and the tiny model's processor files so that `AutoProcessor` works) lives outside the
repository and is reused while it matches; --cleanup removes it afterwards.

A fresh child process then calls `seats_cli.models.load_model(folder, config=..., device="cpu", dtype="bfloat16")`
while a thread samples /proc/self/status every --period seconds. Reported: RSS, anonymous RSS (RssAnon: the
process's own heap, i.e. copies of the weights) and file-backed RSS (RssFile: pages of the mmap'd safetensors,
which count toward RSS but are page cache the kernel can drop and re-read), before, at their sampled peaks and
after loading; the kernel's exact peak RSS (VmHWM); the weights' bytes (numel x element size of the loaded model's
parameters and buffers); how many of those bytes still live in the checkpoint's file mapping; and the load time.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

MARKER = "seats_bench_load.json"  # written last: the folder is complete and was made by this script
PARTIAL = ".seats_bench_load.partial"  # written first: the folder is this script's, maybe half written
PRESET = "qwen2.5-omni-7b"
STATUS_KEYS = ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM")
GIB = 2**30


# ---- the models -----------------------------------------------------------------------------------
def thinker_config(small: bool, hidden: int = 512):
    """The thinker to write: the 7B at full size, or the same architecture scaled down (the 7B's 28 text layers,
    so the preset's SEATS boundaries still fit, at width ``hidden``; 4 vision blocks and 2 audio layers)."""
    if not small:
        from _thinker7b import thinker_7b_config

        cfg = thinker_7b_config("sdpa")
    else:
        from seats_cli.models.tiny import tiny_thinker_config

        heads = hidden // 64
        cfg = tiny_thinker_config("sdpa", text=dict(
            hidden_size=hidden, intermediate_size=3 * hidden, num_attention_heads=heads,
            num_key_value_heads=max(1, heads // 4), vocab_size=21760, tie_word_embeddings=False,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [8, 12, 12]},
        ), vision=dict(hidden_size=256, intermediate_size=512, num_heads=4),
            audio=dict(d_model=256, encoder_ffn_dim=512, encoder_attention_heads=4))
    cfg.architectures = ["Qwen2_5OmniThinkerForConditionalGeneration"]
    return cfg


def preset_for(folder: Path):
    """The project's preset for the checkpoint: the 7B's, with its text dimensions taken from the checkpoint when
    they differ (the --small model), so `check_preset` passes."""
    from seats_cli.config import Architecture, ModelConfig

    preset = ModelConfig.from_name(PRESET)
    t = json.loads((folder / "config.json").read_text())["text_config"]
    arch = Architecture(
        num_layers=t["num_hidden_layers"], hidden_size=t["hidden_size"], intermediate_size=t["intermediate_size"],
        num_attention_heads=t["num_attention_heads"], num_key_value_heads=t["num_key_value_heads"],
        vocab_size=t["vocab_size"], head_dim=t["hidden_size"] // t["num_attention_heads"],
    )
    if arch == preset.architecture:
        return preset
    return dataclasses.replace(preset, name=f"{PRESET}-scaled-down", architecture=arch)


def checkpoint_tensors(cfg):
    """(name, shape, dtype) of every tensor of the checkpoint, with the names `save_pretrained` would write,
    from a model on the meta device (no memory)."""
    import torch
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration
    from transformers.core_model_loading import revert_weight_conversion

    with torch.device("meta"):
        model = Qwen2_5OmniThinkerForConditionalGeneration._from_config(cfg, dtype=torch.bfloat16)
    named = revert_weight_conversion(model, model.state_dict())
    return [(name, tuple(t.shape), t.dtype) for name, t in named.items()]


def random_tensor(name: str, shape: tuple, dtype, seed: int):
    """Random weights of a plausible scale; each tensor has its own generator, so sharding does not change them."""
    import torch

    if len(shape) == 1 and name.endswith("weight") and ("norm" in name or "ln" in name):
        return torch.ones(shape, dtype=dtype)
    gen = torch.Generator().manual_seed(seed)
    std = shape[-1] ** -0.5 if len(shape) >= 2 else 0.02
    return torch.empty(shape, dtype=dtype).normal_(0.0, std, generator=gen)


def fingerprint(cfg, seed: int, shard_bytes: int) -> str:
    import transformers

    text = json.dumps([cfg.to_dict(), seed, shard_bytes, transformers.__version__], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_checkpoint(folder: Path, cfg, *, seed: int, shard_bytes: int) -> dict:
    """Write (or reuse) the random-weight checkpoint; returns what was done."""
    from safetensors.torch import save_file

    from seats_cli.models.tiny import build_tiny_processor

    key = fingerprint(cfg, seed, shard_bytes)
    marker = folder / MARKER
    if marker.is_file() and json.loads(marker.read_text()).get("fingerprint") == key:
        return {"written": False, "write_s": 0.0}
    if folder.exists() and any(folder.iterdir()) and not (marker.is_file() or (folder / PARTIAL).is_file()):
        sys.exit(f"error: {folder} exists, is not empty and was not written by this script; pick another --dir")
    tensors = checkpoint_tensors(cfg)
    total = sum(_nbytes(shape, dtype) for _, shape, dtype in tensors)
    need = total + GIB
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free + _our_files_bytes(folder)
    if free < need:
        sys.exit(f"error: {folder}: {need / GIB:.1f} GiB of disk needed, {free / GIB:.1f} GiB free")
    marker.unlink(missing_ok=True)
    (folder / PARTIAL).write_text("")
    for old in folder.glob("model*.safetensors*"):
        old.unlink()
    shards, size = [[]], 0
    for item in tensors:
        nbytes = _nbytes(item[1], item[2])
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(item)
        size += nbytes
    t0 = time.perf_counter()
    weight_map, index = {}, {n: i for i, (n, _, _) in enumerate(tensors)}
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        data = {name: random_tensor(name, shape, dtype, seed + index[name]) for name, shape, dtype in shard}
        save_file(data, str(folder / fname), metadata={"format": "pt"})
        del data
        weight_map.update({name: fname for name, _, _ in shard})
        print(f"  wrote {fname} ({sum(_nbytes(s, d) for _, s, d in shard) / GIB:.2f} GiB, "
              f"{time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    cfg.dtype = "bfloat16"
    cfg.save_pretrained(folder)
    build_tiny_processor().save_pretrained(folder)
    marker.write_text(json.dumps({"fingerprint": key, "seed": seed, "total_size": total, "shards": len(shards)}))
    (folder / PARTIAL).unlink()
    return {"written": True, "write_s": round(time.perf_counter() - t0, 1)}


def _nbytes(shape: tuple, dtype) -> int:
    n = 1
    for s in shape:
        n *= s
    return n * dtype.itemsize


def _our_files_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("model*.safetensors"))


# ---- the measurement (child process) --------------------------------------------------------------------
def read_status() -> dict[str, int]:
    """This process's memory counters from /proc/self/status, in bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in STATUS_KEYS:
                out[key] = int(rest.split()[0]) * 1024
    return out


class Sampler(threading.Thread):
    """Reads /proc/self/status every ``period`` seconds and keeps the largest value of each counter."""

    def __init__(self, period: float):
        super().__init__(daemon=True)
        self.period, self.peak, self.samples = period, read_status(), 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self._take()
            self._stop_event.wait(self.period)

    def _take(self) -> None:
        now = read_status()
        self.peak = {k: max(v, now.get(k, 0)) for k, v in self.peak.items()}
        self.samples += 1

    def stop(self) -> dict[str, int]:
        self._stop_event.set()
        self.join()
        self._take()
        return self.peak


def mapped_bytes(tensors, suffix: str = ".safetensors") -> int:
    """How many of these tensors' bytes lie inside a file mapping whose path ends with ``suffix``."""
    ranges = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and parts[5].endswith(suffix):
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                ranges.append((lo, hi))
    total = 0
    for t in tensors:
        p = t.data_ptr()
        if any(lo <= p < hi for lo, hi in ranges):
            total += t.numel() * t.element_size()
    return total


def touch(tensors) -> None:
    """Read one element of every memory page of every tensor, as a first forward pass reads them all."""
    import torch

    with torch.no_grad():
        for t in tensors:
            flat = t.detach().reshape(-1)
            flat[:: max(1, 4096 // t.element_size())].float().sum()


def child(folder: Path, period: float, dtype: str, device: str) -> dict:
    import gc
    import importlib

    # everything imported before the baseline, so that imports do not count as loading
    transformers = importlib.import_module("transformers")
    for name in ("AutoProcessor", "Qwen2_5OmniThinkerForConditionalGeneration"):  # lazy attributes: import them now
        getattr(transformers, name)
    importlib.import_module("seats_cli.models.qwen2_5_omni")
    from seats_cli.models import load_model

    preset = preset_for(folder)
    config = PRESET if preset.name == PRESET else preset
    gc.collect()
    before = read_status()
    sampler = Sampler(period)
    sampler.start()
    t0 = time.perf_counter()
    adapter = load_model(str(folder), config=config, device=device, dtype=dtype)
    load_s = time.perf_counter() - t0
    peak = sampler.stop()
    samples = sampler.samples
    gc.collect()
    after = read_status()
    model = adapter.model
    tensors = list(model.parameters()) + list(model.buffers())
    in_mapping = mapped_bytes(tensors)
    sampler = Sampler(period)
    sampler.start()
    t0 = time.perf_counter()
    touch(tensors)
    touch_s = time.perf_counter() - t0
    peak_use = sampler.stop()
    used = read_status()
    return {
        "load_s": round(load_s, 2), "touch_s": round(touch_s, 2), "samples": samples, "period_s": period,
        "dtype": dtype, "weights_bytes": sum(t.numel() * t.element_size() for t in tensors),
        "weights_in_file_mapping_bytes": in_mapping,
        "dtypes": sorted({str(t.dtype).removeprefix("torch.") for t in tensors}),
        "before": before, "peak": peak, "after": after, "peak_use": peak_use, "after_use": used,
        "preset": preset.name, "device": str(tensors[0].device),
    }


def measure(folder: Path, *, period: float = 0.05, dtype: str = "bfloat16", device: str = "cpu",
            timeout: float = 1800) -> dict:
    """Load the checkpoint in a fresh child process and return its measurements."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(folder), "--period", str(period),
           "--dtype", dtype, "--device", device]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"loading child failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- report --------------------------------------------------------------------------------------
def mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def ratios(r: dict) -> dict:
    w, b, p, u = r["weights_bytes"], r["before"], r["peak"], r["after_use"]
    return {
        "peak_rss_over_weights": u["VmHWM"] / w,  # loading and first use, interpreter and libraries included
        "peak_rss_load_over_weights": p["VmHWM"] / w,
        "peak_anon_growth_over_weights": (max(p["RssAnon"], u["RssAnon"]) - b["RssAnon"]) / w,
        "rss_after_use_over_weights": u["VmRSS"] / w,
    }


def render(r: dict) -> str:
    w, b = r["weights_bytes"], r["before"]
    q = ratios(r)
    cols = (("before", b), ("load peak", r["peak"]), ("after load", r["after"]), ("after use", r["after_use"]))
    rows = (("RSS (VmRSS)", "VmRSS"), ("  anonymous (RssAnon)", "RssAnon"), ("  file-backed (RssFile)", "RssFile"),
            ("kernel peak RSS (VmHWM)", "VmHWM"))
    lines = [
        f"weights (parameters + buffers): {w / GIB:.2f} GiB ({', '.join(r['dtypes'])}) on {r['device']}, of which "
        f"{r['weights_in_file_mapping_bytes'] / GIB:.2f} GiB are the checkpoint's mmap'd file pages, not copies",
        f"load_model: {r['load_s']:.1f} s ({r['samples']} samples of /proc/self/status, every "
        f"{r['period_s'] * 1000:.0f} ms); then every weight page read once (a first forward's reads): "
        f"{r['touch_s']:.1f} s",
        "",
        f"{'GiB':<26}" + "".join(f"{c:>12}" for c, _ in cols) + f"{'peak/weights':>14}",
    ]
    for label, k in rows:
        lines.append(f"{label:<26}" + "".join(f"{v[k] / GIB:>12.2f}" for _, v in cols)
                     + f"{max(r['peak'][k], r['peak_use'][k]) / w:>14.2f}")
    lines += [
        "",
        f"peak RSS / weights = {q['peak_rss_over_weights']:.2f} through loading and first use "
        f"({q['peak_rss_load_over_weights']:.2f} during load_model itself; VmHWM, interpreter and libraries "
        f"included); anonymous growth / weights = {q['peak_anon_growth_over_weights']:.2f}",
        "RssAnon is memory the process owns (a copy of the weights would live there). RssFile counts the pages of "
        "mapped files that the process has touched: the mmap'd safetensors (and the libraries' code) are the "
        "kernel's page cache, clean, shared and reclaimable (dropped and re-read from disk under memory pressure), "
        "so they count toward RSS without being a second copy. The sampled peaks of the two need not coincide; "
        "VmHWM is the kernel's exact peak of their sum. Weights left in the file mapping are read from disk (or "
        "the page cache) when first used, not by load_model: the 'after use' column reads every page once.",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="a scaled-down thinker (dry run)")
    ap.add_argument("--dir", type=Path, default=None,
                    help="checkpoint folder (default: $SEATS_CACHE/../bench-load/<full|small>)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shard-gib", type=float, default=2.0, help="largest shard written (host memory while writing)")
    ap.add_argument("--period", type=float, default=0.05, help="sampling period in seconds")
    ap.add_argument("--dtype", default="bfloat16", help="load_model's dtype (bfloat16: the checkpoint's own)")
    ap.add_argument("--device", default="cpu", help="load_model's device (host memory is measured either way)")
    ap.add_argument("--min-available-gib", type=float, default=None,
                    help="refuse to load unless MemAvailable is at least this (default 20 full-size, 2 --small)")
    ap.add_argument("--cleanup", action="store_true", help="remove the checkpoint folder afterwards")
    ap.add_argument("--json", type=Path, default=None, help="write everything here")
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.period, args.dtype, args.device)))
        return

    from seats_cli.models.tiny import default_cache_dir

    folder = args.dir or default_cache_dir().parent / "bench-load" / ("small" if args.small else "full")
    cfg = thinker_config(args.small)
    print(f"checkpoint: {folder}", file=sys.stderr, flush=True)
    wrote = write_checkpoint(folder, cfg, seed=args.seed, shard_bytes=int(args.shard_gib * GIB))
    if wrote["written"]:
        print(f"  written in {wrote['write_s']:.0f} s", file=sys.stderr)
    need = (args.min_available_gib if args.min_available_gib is not None else (2 if args.small else 20)) * GIB
    avail = mem_available()
    if avail < need:
        sys.exit(f"error: only {avail / GIB:.1f} GiB of memory available, {need / GIB:.0f} GiB wanted for the load "
                 f"(others share this machine?); retry later, or lower --min-available-gib")
    load_before = os.getloadavg()
    r = measure(folder, period=args.period, dtype=args.dtype, device=args.device)
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{_cpu_name()}, {os.cpu_count()} CPUs, {_mem_total() / GIB:.1f} GiB",
        "load_average_before": [round(x, 2) for x in load_before],
        "mem_available_before_gib": round(avail / GIB, 1),
        "checkpoint": str(folder), "small": args.small, "checkpoint_written": wrote,
        "checkpoint_bytes": json.loads((folder / MARKER).read_text())["total_size"],
        "versions": _versions(),
    }
    print(f"{'scaled-down' if args.small else 'full-size'} Qwen2.5-Omni-7B thinker, random bf16 weights, "
          f"{info['checkpoint_bytes'] / GIB:.2f} GiB checkpoint at {folder}")
    print(f"load_model(folder, config={r['preset']!r}, device={args.device!r}, dtype={args.dtype!r}) in a fresh "
          f"process; "
          f"{info['date']}; load average before {info['load_average_before']}")
    print(render(r))
    if args.json:
        args.json.write_text(json.dumps(info | {"result": r, "ratios": ratios(r)}, indent=2))
    if args.cleanup and (folder / MARKER).is_file():
        shutil.rmtree(folder)
        print(f"removed {folder}", file=sys.stderr)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def _mem_total() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _versions() -> dict:
    import safetensors
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "safetensors": safetensors.__version__}


if __name__ == "__main__":
    main()
