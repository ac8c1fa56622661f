"""The encoders on a 128-frame request, side by side in one run: each tower's packed windows (the vision tower's
windows, the audio tower's chunks) in a few batched sdpa calls (seats_cli/models/attention.py, the default) against
the stock one-call-per-window loop (the tower's config switched back to sdpa), alternating, one warm-up round left
out, medians; the outputs are compared.

    python benchmarks/bench_encode.py --cpu     # the tiny model's tower (depth 4, width 32), 1 torch thread
    python benchmarks/bench_encode.py --gpu     # Qwen2.5-Omni-7B's tower at full size (depth 32, width 1280),
                                                # random bf16 weights, straight on the GPU

The clip is generated once: 64 s of 448x252 at 4 fps (sampled at 2 fps: 128 frames, 64 x 18 x 32 patches, 768
windows per windowed layer), so the frames need no resizing, with 64 s of sound (32 audio chunks per layer).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _tables import print_medians  # noqa: E402
from _thinker7b import build_seats_7b  # noqa: E402
from media_factory import make_clip  # noqa: E402

from seats_cli.machine import machine_info  # noqa: E402
from seats_cli.media import decode_video  # noqa: E402
from seats_cli.models.attention import VARLEN_ATTENTION  # noqa: E402
from seats_cli.request import frame_policy  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--cpu", action="store_true")
    g.add_argument("--gpu", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.gpu and not torch.cuda.is_available():
        sys.exit("error: --gpu needs a CUDA device")
    if args.cpu:
        from seats_cli import Seats

        torch.set_num_threads(args.threads)
        ad = Seats("tiny", device="cpu", dtype="float32").adapter
    else:
        ad = build_seats_7b("cuda")[0].adapter
    clip = make_clip(Path(tempfile.mkdtemp(prefix="seats-enc-")) / "clip.mp4", width=448, height=252, fps=4,
                     seconds=64.0)
    media = decode_video(clip, frame_policy(ad.config))
    inp = ad.prepare(media, "What happens?").inputs
    pixels, grid = inp["pixel_values_videos"].to(ad.device), inp["video_grid_thw"].to(ad.device)
    inner = ad.model.model
    feats, fmask = inp["input_features"].to(ad.device, ad.dtype), inp["feature_attention_mask"].to(ad.device)
    assert ad.encoder_varlen == ("vision", "audio")
    towers = {  # tower -> (its config, one forward on this request's input)
        "vision tower": (inner.visual.config,
                         lambda: torch.cat(inner.get_video_features(pixels, grid, return_dict=True).pooler_output)),
        "audio tower": (inner.audio_tower.config,
                        lambda: inner.get_audio_features(feats, fmask, return_dict=True).last_hidden_state),
    }

    def run(tower: str, impl: str):
        cfg, forward = towers[tower]
        cfg._attn_implementation = impl
        ad.synchronize()
        t0 = time.perf_counter()
        try:
            with torch.no_grad():
                out = forward()
            ad.synchronize()
        finally:
            cfg._attn_implementation = VARLEN_ATTENTION
        return (time.perf_counter() - t0) * 1000, out

    rec = {tower: {"batched": [], "stock loop": []} for tower in towers}
    diff = {}
    pairs = {"vision tower": 1, "audio tower": 5}  # the audio tower takes ~1/25 of the vision tower's time
    for rnd in range(args.repeats + 1):
        for tower in towers:
            for _ in range(pairs[tower]):
                ms_b, ours = run(tower, VARLEN_ATTENTION)
                ms_s, stock = run(tower, "sdpa")
                if rnd:
                    rec[tower]["batched"].append(ms_b)
                    rec[tower]["stock loop"].append(ms_s)
                diff[tower] = (ours.float() - stock.float()).abs().max().item()
    m = machine_info(ad.device)
    print(f"{m.get('gpu') or m['cpu']} · torch {m['torch']} · {ad.dtype} · {media.to_dict()['frames']} frames, grid "
          f"{grid[0].tolist()}, {pixels.shape[0]} patches; {media.duration_s:.0f} s of sound, "
          f"{int(fmask.sum())} mel frames; medians of {args.repeats} rounds (1 warm-up left out), the audio tower "
          f"timed {pairs['audio tower']} times per round")
    for tower in towers:
        med = print_medians(tower, rec[tower])
        print(f"{tower}: speedup {med['stock loop'] / med['batched']:.2f}x; largest output difference "
              f"{diff[tower]:.2e}")
    if args.json:
        args.json.write_text(json.dumps({"machine": m, "runs": rec, "max_abs_diff": diff}))


if __name__ == "__main__":
    main()
