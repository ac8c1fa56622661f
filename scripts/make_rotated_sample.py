"""Write samples/rotated.mp4: a 2-s phone-style clip stored landscape (96x54) with a display matrix that turns it
90 degrees clockwise (portrait 54x96 when shown), a red top-left corner and a 440 Hz tone. Deterministic; PyAV only.

    python scripts/make_rotated_sample.py [OUT]
"""

from __future__ import annotations

import math
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

W, H, FPS, SECONDS, RATE = 96, 54, 10, 2.0, 16000


def main(out: Path) -> Path:
    with av.open(str(out), "w", options={"fflags": "+bitexact"}) as c:
        v = c.add_stream("libx264", rate=Fraction(FPS))
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        v.options = {"preset": "ultrafast", "crf": "23", "threads": "1"}
        rotate = getattr(v, "set_display_rotation", None)  # PyAV >= 16; else the header is written below
        if rotate is not None:
            rotate(-90)  # counterclockwise degrees: -90 = shown turned 90 degrees clockwise
        a = c.add_stream("aac", rate=RATE)
        a.layout = "mono"
        for i in range(int(SECONDS * FPS)):
            rgb = np.full((H, W, 3), 60, np.uint8)
            rgb[: H // 4, : W // 4] = (255, 0, 0)  # red top-left corner of the stored frame
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            for p in v.encode(frame):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
        n = int(SECONDS * RATE)
        tone = (0.4 * np.sin(2 * math.pi * 440 * np.arange(n) / RATE)).astype(np.float32)
        step = a.codec_context.frame_size or 1024
        for start in range(0, n, step):
            frame = av.AudioFrame.from_ndarray(tone[None, start:start + step], format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = RATE, start, Fraction(1, RATE)
            for p in a.encode(frame):
                c.mux(p)
        for p in a.encode(None):
            c.mux(p)
    if rotate is None:
        _display_matrix(out, (0, 1 << 16, 0, -(1 << 16), 0, 0, 0, 0, 1 << 30))  # what set_display_rotation(-90) writes
    return out


def _display_matrix(path: Path, matrix: tuple[int, ...]) -> None:
    """Write the video track header's (the first tkhd's, version 0) display matrix: a, b, u, c, d, v, x, y, w."""
    import struct

    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    if at < 0 or data[at + 4] != 0:
        raise SystemExit(f"{path}: no version-0 tkhd box to write the display matrix into")
    data[at + 44:at + 80] = struct.pack(">9i", *matrix)
    path.write_bytes(bytes(data))


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "samples" / "rotated.mp4"
    print(main(target))
