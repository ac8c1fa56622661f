"""The whole request, full vs SEATS, side by side: media decode, processor, encoders, prefill, decode, total, and
peak memory (issue 12 items 1 and 6).

    python benchmarks/bench_e2e.py --gpu    # Qwen2.5-Omni-7B thinker at full size (text, vision and audio
                                            # encoders), random weights, bf16, a generated 64 s 1280x720 H.264+AAC
                                            # clip -> 128 frames at 2 fps + 64 s of sound
    python benchmarks/bench_e2e.py --cpu    # the same path on the tiny model and an 8 s clip (a dry run)
    python benchmarks/bench_e2e.py --media-only   # the --gpu clip's media decode + processor on this machine's
                                                  # CPU (the 7B's frame policy, no weights): the part of a
                                                  # request that no token selection shortens

No checkpoint is needed: the model is built directly on the device with random weights (latency does not depend
on their values) and wrapped in the project's adapter with a processor that has the real special-token ids and
chat template. Each (method, TRR) runs --repeats times after one warm-up, alternating, with media reuse off (every
request decodes and encodes, as a single `seats ask` does); medians are printed and --json dumps everything.
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

from _tables import print_medians  # noqa: E402  (benchmarks/, the script's own folder)
from _thinker7b import build_seats_7b  # noqa: E402

RUNS = (("full", None), ("seats", 0.35), ("seats", 0.10))
PARTS = ("media", "prepare", "encode", "prefill", "decode", "total")


def build(mode: str, attn: str):
    from seats_cli.api import Seats

    if mode == "cpu":
        seats = Seats("tiny", device="cpu", dtype="float32", attn_implementation=attn, reuse_media=False)
        return seats, 0.0
    return build_seats_7b("cuda", attn)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--gpu", action="store_true")
    g.add_argument("--cpu", action="store_true")
    g.add_argument("--media-only", action="store_true")
    ap.add_argument("--seconds", type=float, default=None, help="clip length (default 64 on GPU, 8 on CPU)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--attn", default="sdpa")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="write all results here")
    args = ap.parse_args()
    if args.media_only:
        return media_only(args)
    mode = "gpu" if args.gpu else "cpu"
    if mode == "gpu" and not torch.cuda.is_available():
        sys.exit("error: --gpu needs a CUDA device")
    if mode == "cpu":
        torch.set_num_threads(args.threads)
    from media_factory import make_clip

    from seats_cli.machine import machine_info

    seconds = args.seconds or (64.0 if mode == "gpu" else 8.0)
    t0 = time.perf_counter()
    clip = make_clip(Path(tempfile.mkdtemp(prefix="seats-e2e-")) / "clip.mp4", width=1280, height=720, fps=25,
                     seconds=seconds)
    clip_s = time.perf_counter() - t0
    seats, build_s = build(mode, args.attn)
    question = "What happens in this video, and which sound plays? Answer in one sentence."
    rec: dict = {f"{m}@{t}": [] for m, t in RUNS}
    peak: dict = {}
    first = None
    with torch.no_grad():
        for rnd in range(args.repeats + 1):
            for method, trr in RUNS:
                key = f"{method}@{trr}"
                if mode == "gpu":
                    torch.cuda.reset_peak_memory_stats()
                r = seats.ask(clip, question, method=method, trr=trr, max_new_tokens=args.new_tokens, seed=0)
                first = first or r
                # each request as it comes (stderr): a run stopped at its time limit keeps what it measured
                print(f"  round {rnd}{' (warm-up)' if not rnd else ''} {key}: " + " ".join(
                    f"{p}={r.latency_ms[p]:.0f}" for p in PARTS if r.latency_ms.get(p) is not None) + " ms",
                      file=sys.stderr, flush=True)
                if rnd:
                    rec[key].append(r.latency_ms | {"flops_reduction": r.flops["reduction"],
                                                    "generated": r.generated_tokens})
                    if mode == "gpu":
                        peak[key] = max(peak.get(key, 0), torch.cuda.max_memory_allocated() / 2**30)
    m = machine_info(seats.adapter.device)
    where = m.get("gpu") or f"{m['cpu']} ({m['threads']} threads)"
    print(f"{mode.upper()} · {seats.model_name} · {args.attn} · {seats.adapter.dtype} · torch {m['torch']} · {where}")
    print(f"clip {seconds:g} s 1280x720 H.264+AAC -> {first.media['frames']} frames {first.media['width']}x"
          f"{first.media['height']}, tokens video {first.tokens['video']} audio {first.tokens['audio']} text "
          f"{first.tokens['text']}; model built in {build_s:.1f} s; medians of {args.repeats} repeats (1 warm-up left "
          f"out), every request decoding and encoding")
    print("run | " + " | ".join(f"{p} ms" for p in PARTS) + " | decode tok/s | FLOPs reduction | speedup (total)"
          + (" | peak GPU GiB" if peak else ""))
    med = {k: {p: statistics.median(x[p] for x in v) for p in PARTS} for k, v in rec.items()}
    for key, v in rec.items():
        tps = [x["decode_tok_per_s"] for x in v if x["decode_tok_per_s"]]
        print(" | ".join([key, *(f"{med[key][p]:.0f}" for p in PARTS), f"{statistics.median(tps):.1f}" if tps else "-",
                          f"{v[0]['flops_reduction']:.2f}x", f"{med['full@None']['total'] / med[key]['total']:.2f}x"]
                         + ([f"{peak[key]:.1f}"] if peak else [])))
    if args.json:
        args.json.write_text(json.dumps({"mode": mode, "machine": m, "clip_seconds": seconds, "clip_build_s": clip_s,
                                         "model_build_s": build_s, "runs": rec, "peak_gib": peak,
                                         "tokens": first.tokens, "media": first.media}, default=str))


def media_only(args) -> None:
    """Media decode and processor of the --gpu request, timed here: --repeats runs after one warm-up, medians."""
    from media_factory import make_clip

    from seats_cli.machine import machine_info
    from seats_cli.media import decode_video
    from seats_cli.request import frame_policy

    torch.set_num_threads(args.threads)
    seconds = args.seconds or 64.0
    clip = make_clip(Path(tempfile.mkdtemp(prefix="seats-e2e-")) / "clip.mp4", width=1280, height=720, fps=25,
                     seconds=seconds)
    seats, _ = build_seats_7b("meta")  # the 7B's config and the processor; no weights, nothing runs a layer
    ad = seats.adapter
    question = "What happens in this video, and which sound plays? Answer in one sentence."
    rec: dict = {"media": [], "prepare": []}
    for rnd in range(args.repeats + 1):
        t0 = time.perf_counter()
        media = decode_video(clip, frame_policy(ad.config))
        t1 = time.perf_counter()
        request = ad.prepare(media, question)
        t2 = time.perf_counter()
        if rnd:
            rec["media"].append((t1 - t0) * 1000)
            rec["prepare"].append((t2 - t1) * 1000)
    m = machine_info(torch.device("cpu"))
    lay = request.layout
    print(f"{m['cpu']} ({m['cpu_count']} cores, torch threads {args.threads}) · torch {m['torch']}")
    print(f"clip {seconds:g} s 1280x720 H.264+AAC -> {media.to_dict()['frames']} frames, tokens video {lay.n_video} "
          f"audio {lay.n_audio} text {lay.n_text}; medians of {args.repeats} (1 warm-up left out)")
    med = print_medians("part", rec, digits=0)
    print(f"media + prepare | {med['media'] + med['prepare']:.0f}")
    if args.json:
        args.json.write_text(json.dumps({"mode": "media-only", "machine": m, "clip_seconds": seconds, "runs": rec,
                                         "tokens": {"video": lay.n_video, "audio": lay.n_audio, "text": lay.n_text}}))


if __name__ == "__main__":
    main()
