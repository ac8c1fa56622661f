"""Media decode speed (issue 12 item 4): a naive whole-file reader vs ``seats_cli.media.decode_video``, side by side.

    python benchmarks/bench_media.py [--repeats 3] [--gops default,25] [--json PATH]
    python benchmarks/bench_media.py --quick                 # 6 s and 20 s clips, GOP 25, one repeat (a dry run)
    python benchmarks/bench_media.py --clips a.mp4,b.mp4     # your own files instead of the generated clips
    python benchmarks/bench_media.py --rev HEAD~1            # also time media.py as it was at a git revision

Clips: 60 s and 600 s of 1280x720 at 25 fps, H.264 (libx264 veryfast, crf 20, a textured picture panning with
grain, so decoding costs what camera footage costs) + AAC 48 kHz stereo, made with tests/media_factory.py into
``--clip-dir`` (outside the repository; reused when present). ``--gops``: keyframe interval in frames, ``default``
being x264's (250 frames, 10 s); 25 (1 s) is what phone cameras write.

Readers, each run in a fresh child process (its own timer around the read only, its peak RSS from VmHWM):
- ``naive``: what the official pipeline does (qwen-omni-utils' torchvision backend, ``torchvision.io.read_video``,
  then ``librosa.load(sr=16000)``): every frame decoded with PyAV's default threading (slice threads, which an
  H.264 stream of one slice per frame cannot use: one core) and converted to a full-resolution RGB array kept in
  memory, the arrays stacked, the sampled indices taken and resized together (bicubic, antialias); the whole audio
  track decoded in a second pass, mixed to mono and resampled once (librosa.resample, soxr_hq). When keeping every
  frame would need more than ``--naive-max-gb`` (the 600 s clip: 15000 x 2.76 MB = 41 GB, twice that with the
  stacked copy: more than the machine has), the capped variant ``naive*`` still decodes and converts every frame
  to full-resolution RGB but keeps only the sampled ones: its time is a lower bound of the naive reader's, its
  memory is not the naive reader's (the table says what that would hold).
- ``after``: ``decode_video`` with the Qwen2.5-Omni-7B preset's frame policy (2 fps, at most 128 frames).
- ``rev`` (with ``--rev``): ``decode_video`` from ``seats_cli/media.py`` at that git revision (the modules it
  imports, ``seats_cli.keyframe_runs`` included, are today's).

Rounds alternate the readers (their order flips every round); round 0 warms the page cache and checks that the
naive reader and decode_video give the same sampled indices and bit-identical resized frames; medians of the
other rounds. "s per min" = seconds of decode per minute of video. CPU s = user+system time of the child during
the read (all its threads): on a shared machine it shows the work apart from waiting for a core.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIP_VERSION = 1  # bump when the generated clips change


# ----------------------------------------------------------------------------- clips

def clip_path(clip_dir: Path, seconds: float, gop: int | None) -> Path:
    return clip_dir / f"clip_{seconds:g}s_1280x720_25fps_gop{gop or 'default'}_v{CLIP_VERSION}.mp4"


def ensure_clip(clip_dir: Path, seconds: float, gop: int | None) -> Path:
    """The generated clip, made once (written under a temporary name, then renamed: a killed run leaves no clip)."""
    path = clip_path(clip_dir, seconds, gop)
    if path.exists():
        return path
    sys.path.insert(0, str(ROOT / "tests"))
    from media_factory import make_clip

    clip_dir.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.stem + ".part.mp4")
    t0 = time.perf_counter()
    print(f"generating {path.name} ...", file=sys.stderr, flush=True)
    make_clip(part, width=1280, height=720, fps=25, seconds=seconds, pattern="moving", audio_rate=48000,
              audio_channels=2, video_options={"preset": "veryfast", "crf": "20"}, gop=gop)
    os.replace(part, path)
    print(f"  {time.perf_counter() - t0:.0f} s, {path.stat().st_size / 1e6:.0f} MB", file=sys.stderr, flush=True)
    return path


# ----------------------------------------------------------------------------- readers (run in a child)

def policy():
    from seats_cli.config import ModelConfig
    from seats_cli.request import frame_policy

    return frame_policy(ModelConfig.from_name("qwen2.5-omni-7b"))


def naive_read(path: str, pol, keep_all: bool):
    """The official pipeline's reading, as described in the module docstring; returns (frames, indices, audio,
    frames decoded)."""
    import av
    import librosa
    import numpy as np
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    from seats_cli.frames import frame_indices, plan_frames, plan_resize

    with av.open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        wanted = None
        if not keep_all:  # capped: the sampled indices from the header's count (checked below)
            declared = int(stream.frames)
            wanted = set(frame_indices(declared, plan_frames(declared, fps, pol)))
        frames, count = [], 0
        for frame in container.decode(stream):
            rgb = frame.to_ndarray(format="rgb24")  # read_video: frame.to_rgb().to_ndarray(), every frame
            if keep_all or count in wanted:
                frames.append(rgb)
            count += 1
    if keep_all:
        video = torch.as_tensor(np.stack(frames)).permute(0, 3, 1, 2)  # read_video's (T, C, H, W)
        del frames
        idx = frame_indices(count, plan_frames(count, fps, pol))
        video = video[torch.tensor(idx)]
    else:
        idx = frame_indices(count, plan_frames(count, fps, pol))
        if count != declared:
            raise SystemExit(f"the capped naive reader needs the header's frame count ({declared}) to be right "
                             f"({count} decoded)")
        order = sorted(wanted)
        video = torch.as_tensor(np.stack([frames[order.index(i)] for i in idx])).permute(0, 3, 1, 2)
    h, w = plan_resize(video.shape[2], video.shape[3], len(idx), pol)
    video = F.resize(video, [h, w], interpolation=InterpolationMode.BICUBIC, antialias=True)
    chunks, rate = [], None
    with av.open(path) as container:  # librosa.load: a second read of the file, the audio only
        for frame in container.decode(audio=0):
            rate = frame.sample_rate
            data = frame.to_ndarray()
            chunks.append(data.reshape(-1, len(frame.layout.channels)).T if frame.format.is_packed else data)
    pcm = np.concatenate(chunks, axis=1).astype(np.float32)
    mono = pcm.mean(axis=0)
    audio = librosa.resample(mono, orig_sr=rate, target_sr=pol.audio_sample_rate)
    return video, idx, audio, count


def load_rev(rev: str):
    """seats_cli/media.py as it was at git revision `rev`, as a module (its imports resolve to today's package)."""
    import importlib.util

    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:seats_cli/media.py"], check=True,
                            capture_output=True, text=True).stdout
    tmp = Path(tempfile.mkdtemp(prefix="seats-media-rev-")) / "media_rev.py"
    tmp.write_text(source)
    spec = importlib.util.spec_from_file_location("seats_cli._media_rev", tmp)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith(field + ":")) / 1024  # kB -> MB


def child(args) -> None:
    """One timed read in this (fresh) process, after the same read of a 1 s warm-up clip (lazy imports, librosa's
    first call); prints one JSON line."""
    import torch

    from seats_cli import media

    torch.set_num_threads(args.threads)
    pol = policy()
    module = load_rev(args.rev) if args.reader == "rev" else media

    def read(path: str):
        if args.reader in ("naive", "naive*"):
            return naive_read(path, pol, keep_all=args.reader == "naive")
        m = module.decode_video(path, pol)
        return m.frames, m.frame_indices, m.audio, getattr(m, "frames_decoded", 0) or m.source_frames

    read(args.warmup_clip)
    rss = status_mb("VmRSS")
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    frames, idx, audio, decoded = read(args.child)
    seconds = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    peak = status_mb("VmHWM")
    if args.save:
        torch.save({"frames": frames.contiguous(), "indices": list(idx)}, args.save)
    print(json.dumps({"seconds": seconds, "cpu_s": cpu, "peak_rss_mb": peak, "rss_before_mb": rss,
                      "frames_decoded": decoded, "frames_kept": len(idx),
                      "audio_samples": None if audio is None else int(len(audio))}))


def run_child(reader: str, clip: Path, args, save: Path | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", str(clip), "--reader", reader, "--threads", str(args.threads),
           "--warmup-clip", str(args.warmup_clip)]
    if reader == "rev":
        cmd += ["--rev", args.rev]
    if save is not None:
        cmd += ["--save", str(save)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        sys.exit(f"error: {reader} on {clip.name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- the comparison

def video_info(path: Path) -> dict:
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0]
        keys = [i for i, pk in enumerate(c.demux(v)) if pk.size and pk.is_keyframe]
        return {"seconds": float(v.duration * v.time_base) if v.duration else float(v.frames / v.average_rate),
                "frames": int(v.frames), "width": v.codec_context.width, "height": v.codec_context.height,
                "codec": v.codec_context.name, "keyframes": len(keys),
                "audio": ", ".join(f"{a.codec_context.name} {a.codec_context.sample_rate} Hz "
                                   f"{a.codec_context.layout.name}" for a in c.streams.audio) or "none"}


def compare_frames(a: Path, b: Path) -> str:
    import torch

    x, y = torch.load(a), torch.load(b)
    if x["indices"] != y["indices"]:
        return "DIFFERENT sampled indices"
    if x["frames"].shape != y["frames"].shape:
        return f"DIFFERENT shapes {tuple(x['frames'].shape)} vs {tuple(y['frames'].shape)}"
    diff = (x["frames"].int() - y["frames"].int()).abs().max().item()
    n = len(x["indices"])
    return (f"identical: the same {n} indices, bit-identical resized frames" if diff == 0
            else f"same {n} indices, resized frames differ by at most {diff}/255")


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="6 s and 20 s clips, one repeat: a dry run")
    ap.add_argument("--seconds", default=None, help="clip lengths, comma-separated (default 60,600)")
    ap.add_argument("--gops", default=None,
                    help="keyframe intervals of the generated clips in frames (default: default,25; 25 with --quick)")
    ap.add_argument("--clips", default=None, help="comma-separated files to use instead of generated clips")
    ap.add_argument("--clip-dir", type=Path, default=Path(tempfile.gettempdir()) / "seats-bench-media")
    ap.add_argument("--repeats", type=int, default=None, help="timed rounds after the warm-up (default 3; 1 quick)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads in each reader")
    ap.add_argument("--naive-max-gb", type=float, default=12.0,
                    help="largest memory the naive reader may take (all frames + their stacked copy)")
    ap.add_argument("--rev", default=None, help="also time seats_cli/media.py at this git revision")
    ap.add_argument("--json", type=Path, default=None, help="write all results here")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--reader", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--save", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--warmup-clip", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    if args.clips:
        clips = [Path(c) for c in args.clips.split(",")]
    else:
        lengths = [float(s) for s in (args.seconds or ("6,20" if args.quick else "60,600")).split(",")]
        gops = (args.gops or ("25" if args.quick else "default,25")).split(",")
        gops = [None if g == "default" else int(g) for g in gops]
        clips = [ensure_clip(args.clip_dir, s, g) for g in gops for s in lengths]

    import av
    import torch

    from seats_cli.machine import machine_info

    sys.path.insert(0, str(ROOT / "tests"))
    from media_factory import make_clip

    args.warmup_clip = args.clip_dir / "warmup_1s_64x48.mp4"
    if not args.warmup_clip.exists():
        args.clip_dir.mkdir(parents=True, exist_ok=True)
        make_clip(args.warmup_clip, fps=25, seconds=1, audio_rate=48000, audio_channels=2)

    load_start = loadavg()
    infos = {c: video_info(c) for c in clips}
    naive_kind = {}
    for c, info in infos.items():
        rgb_bytes = info["width"] * info["height"] * 3
        naive_kind[c] = "naive" if 2 * info["frames"] * rgb_bytes <= args.naive_max_gb * 2**30 else "naive*"
    readers = lambda c: [naive_kind[c], "after"] + (["rev"] if args.rev else [])  # noqa: E731
    results = {c: {r: [] for r in readers(c)} for c in clips}
    checks, loads = {}, []  # the 1-minute load average as each read starts
    scratch = Path(tempfile.mkdtemp(prefix="seats-bench-media-"))
    first = 0 if args.quick else 1  # --quick: no warm-up round (the children still warm up on a 1 s clip)
    for rnd in range(1 - first, repeats + 1):
        for c in clips:
            order = readers(c) if rnd % 2 == 0 else readers(c)[::-1]
            for r in order:
                check = rnd == 1 - first and c == clips[0]
                loads.append(float(loadavg().split()[0]))
                res = run_child(r, c, args, scratch / f"{r}.pt" if check else None)
                print(f"round {rnd}{' (warm-up)' if rnd == 0 else ''} {c.name} {r}: {res['seconds']:.2f} s "
                      f"(cpu {res['cpu_s']:.2f} s, peak {res['peak_rss_mb']:.0f} MB)", file=sys.stderr, flush=True)
                if rnd > 0 or first == 0:
                    results[c][r].append(res)
            if rnd == 1 - first and c == clips[0]:
                checks[c.name] = {r: compare_frames(scratch / f"{naive_kind[c]}.pt", scratch / f"{r}.pt")
                                  for r in readers(c)[1:]}
    load_end = loadavg()

    m = machine_info(torch.device("cpu"))
    print(f"Media decode, {m['cpu']} ({m['cpu_count']} cores), torch {m['torch']} ({args.threads} threads), "
          f"PyAV {av.__version__}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"Load average {load_start} at start, {load_end} at end; 1-minute load as each read started: median "
          f"{statistics.median(loads):.2f}, range {min(loads):.2f}-{max(loads):.2f} (the reads themselves add 1 to 2; "
          f"more: other work shared the {m['cpu_count']} cores)")
    print(f"Policy: Qwen2.5-Omni-7B preset (2 fps, at most 128 frames, 16 kHz mono audio, 300 s cap); medians of "
          f"{repeats} round(s){' after a warm-up round' if first else ''}, each read in a fresh process")
    header = ("clip | keyframes | reader | frames decoded | frames kept | seconds | s per min of video | CPU s | "
              "speedup | peak RSS (before the read)")
    print(header)
    rows = []
    for c in clips:
        info = infos[c]
        minutes = info["seconds"] / 60
        med = {r: statistics.median(x["seconds"] for x in results[c][r]) for r in readers(c)}
        base = med[naive_kind[c]]
        for r in readers(c):
            runs = results[c][r]
            row = {"clip": c.name, "video_seconds": info["seconds"], "keyframes": info["keyframes"], "reader": r,
                   "frames_decoded": runs[0]["frames_decoded"], "frames_kept": runs[0]["frames_kept"],
                   "seconds": med[r], "seconds_per_minute": med[r] / minutes,
                   "cpu_s": statistics.median(x["cpu_s"] for x in runs), "speedup": base / med[r],
                   "peak_rss_mb": max(x["peak_rss_mb"] for x in runs), "runs": runs}
            rows.append(row)
            peak = f"{row['peak_rss_mb']:.0f} MB ({runs[0]['rss_before_mb']:.0f})"
            if r == "naive*":
                frames_gib = info["frames"] * info["width"] * info["height"] * 3 / 2**30
                peak += f"; naive: {frames_gib:.0f} GiB of frames + a stacked copy"
            print(f"{c.name} | {info['keyframes']} | {r} | {row['frames_decoded']} | {row['frames_kept']} | "
                  f"{med[r]:.2f} | {row['seconds_per_minute']:.2f} | {row['cpu_s']:.2f} | {row['speedup']:.2f}x | "
                  f"{peak}")
    for name, check in checks.items():
        for r, text in check.items():
            print(f"check on {name}: naive vs {r}: {text}")
    if any(k == "naive*" for k in naive_kind.values()):
        print("naive* = the naive reader capped to fit in memory: every frame still decoded and converted to "
              "full-resolution RGB, only the sampled ones kept (a lower bound of the naive reader's time)")
    if args.json:
        args.json.write_text(json.dumps({
            "machine": m, "pyav": av.__version__, "load_start": load_start, "load_end": load_end, "loads": loads,
            "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), "repeats": repeats,
            "clips": {c.name: infos[c] for c in clips}, "checks": checks, "rows": rows,
            "command": " ".join([Path(sys.executable).name] + sys.argv)}, indent=1))


if __name__ == "__main__":
    main()
