#!/usr/bin/env python
"""Write samples/sample.mp4: 6 s, 448x252 (16:9), 25 fps H.264 + mono 24 kHz AAC. Deterministic.

Picture: a red ball rolls from left to right over the whole clip; a blue square bounces once a second.
Sound, one part per 2-second window (Qwen2.5-Omni's SEATS window at 2 fps):
  0-2 s  a voice: "The red ball rolls to the right."   (espeak-ng; a 440 Hz tone if it is missing)
  2-4 s  a 660 Hz tone
  4-6 s  a voice: "The blue square bounces."           (espeak-ng; an 880 Hz tone if it is missing)
Needs only PyAV and numpy (+ the optional espeak-ng program). Usage: python scripts/make_sample.py [OUT]
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import tempfile
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

WIDTH, HEIGHT, FPS, SECONDS = 448, 252, 25, 6
AUDIO_RATE = 24000
WINDOWS = [  # (start s, text or None, fallback tone Hz)
    (0.0, "The red ball rolls to the right.", 440.0),
    (2.0, None, 660.0),
    (4.0, "The blue square bounces.", 880.0),
]
OUT = Path(__file__).resolve().parent.parent / "samples" / "sample.mp4"


def draw_frame(i: int) -> np.ndarray:
    """RGB frame `i` (uint8, HEIGHT x WIDTH x 3)."""
    t = i / FPS
    y = np.arange(HEIGHT)[:, None]
    x = np.arange(WIDTH)[None, :]
    img = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    shade = (40 + 50 * y / HEIGHT).astype(np.uint8)  # dark sky gradient, static
    img[..., 0] = shade
    img[..., 1] = shade
    img[..., 2] = (shade * 1.4).astype(np.uint8)
    img[HEIGHT - 30 :] = (40, 120, 50)  # green ground
    # red ball: left to right over the whole clip, on the ground
    r = 26
    cx = r + 8 + (WIDTH - 2 * r - 16) * t / SECONDS
    cy = HEIGHT - 30 - r
    img[(x - cx) ** 2 + (y - cy) ** 2 <= r * r] = (220, 30, 30)
    # blue square: bounces once per second near the middle top
    side = 44
    top = int(round(HEIGHT - 30 - side - 150 * abs(math.sin(math.pi * t))))
    left = WIDTH // 2 - side // 2
    img[top : top + side, left : left + side] = (40, 70, 230)
    return img


def tone(hz: float, seconds: float) -> np.ndarray:
    n = int(round(seconds * AUDIO_RATE))
    t = np.arange(n) / AUDIO_RATE
    fade = np.minimum(1.0, np.minimum(t, seconds - t) / 0.05)  # 50 ms fades, no clicks
    return (0.3 * np.sin(2 * math.pi * hz * t) * fade).astype(np.float32)


def speak(text: str) -> np.ndarray | None:
    """Speech from espeak-ng resampled to AUDIO_RATE, or None if espeak-ng is not installed."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run([exe, "-v", "en-us", "-s", "165", "-w", str(wav), text], check=True)
        with wave.open(str(wav)) as w:
            rate, data = w.getframerate(), w.readframes(w.getnframes())
    pcm = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    frame = av.AudioFrame.from_ndarray(pcm[None, :], format="flt", layout="mono")
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
    out = resampler.resample(frame) + resampler.resample(None)
    speech = np.concatenate([f.to_ndarray().reshape(-1) for f in out])
    return (0.7 * speech / max(1e-6, float(np.abs(speech).max()))).astype(np.float32)


def soundtrack() -> tuple[np.ndarray, list[str]]:
    track = np.zeros(SECONDS * AUDIO_RATE, dtype=np.float32)
    parts = []
    for start, text, hz in WINDOWS:
        clip = speak(text) if text else None
        if clip is None:
            clip, label = tone(hz, 2.0), f"{hz:g} Hz tone"
        else:
            label = f"voice: {text!r}"
        clip = clip[: 2 * AUDIO_RATE]
        s = int(start * AUDIO_RATE)
        track[s : s + clip.shape[0]] += clip
        parts.append(f"{start:g}-{start + 2:g} s {label}")
    return np.clip(track, -1.0, 1.0), parts


def main(out: Path = OUT) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    audio, parts = soundtrack()
    with av.open(str(out), "w", options={"fflags": "+bitexact"}) as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = {"preset": "slow", "crf": "30", "threads": "1", "g": "50"}
        sound = container.add_stream("aac", rate=AUDIO_RATE)
        sound.layout = "mono"
        sound.bit_rate = 48000
        for i in range(FPS * SECONDS):
            frame = av.VideoFrame.from_ndarray(draw_frame(i), format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        chunk = sound.codec_context.frame_size or 1024
        for start in range(0, audio.shape[0], chunk):
            frame = av.AudioFrame.from_ndarray(audio[None, start : start + chunk], format="fltp", layout="mono")
            frame.sample_rate = AUDIO_RATE
            frame.pts = start
            frame.time_base = Fraction(1, AUDIO_RATE)
            container.mux(sound.encode(frame))
        container.mux(sound.encode(None))
    print(f"wrote {out} ({out.stat().st_size} bytes): {SECONDS} s {WIDTH}x{HEIGHT} {FPS} fps; "
          f"audio {AUDIO_RATE} Hz mono: " + "; ".join(parts))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
