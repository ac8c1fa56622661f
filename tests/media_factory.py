"""Write small synthetic media files with PyAV for the tests (no ffmpeg binary needed).

Every video frame is a flat grey whose level encodes its index (see `frame_level`), so a test can
tell which source frames were sampled. The audio is a sine tone (one frequency per channel).
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# container suffix -> (video codec, audio codec, video encoder options)
DEFAULT_CODECS = {
    ".mp4": ("libx264", "aac"),
    ".mov": ("libx264", "aac"),
    ".mkv": ("libx264", "flac"),
    ".webm": ("libvpx-vp9", "libopus"),
    ".m4a": (None, "aac"),
    ".mka": (None, "flac"),
    ".mp3": (None, "libmp3lame"),
    ".ts": ("libx264", "aac"),
}
VIDEO_OPTIONS = {
    "libx264": {"preset": "ultrafast", "crf": "18", "threads": "1"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "crf": "20", "b": "0", "threads": "1"},
}


def frame_level(index: int) -> int:
    """Grey level (0..255) of source frame `index`; distinct for the first 24 frames."""
    return 16 + (index * 9) % 224


def _audio_chunk(signal: np.ndarray, fmt: str) -> np.ndarray:
    """(channels, n) float32 in [-1, 1] -> the array layout AudioFrame.from_ndarray wants for `fmt`."""
    planar = fmt.endswith("p")
    base = fmt.rstrip("p")
    if base == "s16":
        data = np.clip(np.round(signal * 32767.0), -32768, 32767).astype(np.int16)
    elif base == "s32":
        data = np.clip(np.round(signal * 2147483647.0), -2147483648, 2147483647).astype(np.int32)
    elif base == "flt":
        data = signal.astype(np.float32)
    elif base == "dbl":
        data = signal.astype(np.float64)
    else:  # pragma: no cover - not produced by the encoders used here
        raise ValueError(f"unsupported sample format {fmt}")
    if planar:
        return np.ascontiguousarray(data)
    return np.ascontiguousarray(data.T.reshape(1, -1))


def mux_video(container, stream, frames, pts=None) -> None:
    """Encode and mux RGB ``frames`` ((h, w, 3) uint8 each) on video ``stream``, stamped ``pts`` (default: their
    index), then drain the encoder."""
    for i, img in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = i if pts is None else pts[i]
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def mux_audio(container, stream, signal: np.ndarray, rate: int, layout: str, skip=None, shift=None) -> None:
    """Encode and mux ``signal`` ((channels, n) float in [-1, 1]) on audio ``stream`` in the encoder's frame size,
    stamped by sample index (plus ``shift(start)`` samples); ``skip(start)`` true leaves that frame's packets out
    (a hole in the timestamps)."""
    fmt = stream.codec_context.format.name
    step = stream.codec_context.frame_size or 1024
    for start in range(0, signal.shape[1] - step + 1, step):  # whole frames (mp2 takes no short last one)
        if skip is not None and skip(start):
            continue
        frame = av.AudioFrame.from_ndarray(_audio_chunk(signal[:, start:start + step], fmt), format=fmt,
                                           layout=layout)
        frame.sample_rate, frame.time_base = rate, Fraction(1, rate)
        frame.pts = start + (shift(start) if shift is not None else 0)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def make_clip(
    path: str | Path,
    *,
    width: int = 64,
    height: int = 48,
    fps: float = 10,
    seconds: float = 1.0,
    video: bool = True,
    audio_rate: int | None = 16000,
    audio_channels: int = 1,
    audio_seconds: float | None = None,
    vcodec: str | None = None,
    acodec: str | None = None,
    frame_durations: list[float] | None = None,
    tone_hz: float = 440.0,
    audio_offset: float = 0.0,
    pix_fmt: str | None = None,
    cover_art: bool = False,
    gop: int | None = None,
    pattern: str = "flat",
    video_options: dict[str, str] | None = None,
) -> Path:
    """Write a clip to `path`; the container comes from the suffix (.mp4 .mov .mkv .webm .m4a .mka).

    `frame_durations` (seconds, one per frame) makes a variable-frame-rate clip instead of
    `fps` x `seconds`. `audio_rate=None` writes no audio track; `video=False` writes audio only.
    `audio_offset` (seconds) starts the audio later than the video. Odd sizes use yuv444p.
    `cover_art=True` (with video=False, .mp3) adds a still picture marked as attached cover art.
    `gop` sets the keyframe interval in frames (the encoder's default otherwise). `pattern="moving"` draws a
    textured picture panning across the frame (costs the decoder what camera footage costs, unlike flat grey),
    still with the red corner and the index-coded grey patch bottom right. `video_options` are merged onto
    the encoder options (e.g. {"preset": "veryfast"}).
    """
    path = Path(path)
    default_v, default_a = DEFAULT_CODECS[path.suffix.lower()]
    vcodec = vcodec or default_v
    acodec = acodec or default_a
    if frame_durations is not None:
        starts = np.concatenate([[0.0], np.cumsum(frame_durations)[:-1]])
        seconds = float(np.sum(frame_durations))
    else:
        n_frames = max(1, int(round(seconds * fps)))
        starts = np.arange(n_frames) / fps
    audio_seconds = seconds if audio_seconds is None else audio_seconds

    with av.open(str(path), "w") as out:
        vstream = astream = None
        if video:
            if frame_durations is not None:
                vstream = out.add_stream(vcodec, rate=max(1, round(len(starts) / seconds)))
                vstream.codec_context.time_base = Fraction(1, 1000)
                vstream.time_base = Fraction(1, 1000)
            else:
                vstream = out.add_stream(vcodec, rate=Fraction(fps).limit_denominator(1001))
            vstream.width, vstream.height = width, height
            odd = width % 2 or height % 2
            vstream.pix_fmt = pix_fmt or ("yuv444p" if odd else "yuv420p")
            vstream.options = dict(VIDEO_OPTIONS.get(vcodec, {})) | dict(video_options or {})
            if gop is not None:
                vstream.codec_context.gop_size = int(gop)
        if audio_rate is not None:
            astream = out.add_stream(acodec, rate=audio_rate)
            astream.layout = "mono" if audio_channels == 1 else "stereo"
        if cover_art:
            cover = out.add_stream("mjpeg", rate=1)
            cover.width, cover.height, cover.pix_fmt = 64, 64, "yuvj420p"
            cover.disposition = disposition(av.stream.Disposition.attached_pic)
            picture = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 200, np.uint8), format="rgb24")
            picture.pts = 0
            for packet in list(cover.encode(picture)) + list(cover.encode(None)):
                out.mux(packet)

        if vstream is not None:
            if pattern not in ("flat", "moving"):
                raise ValueError(f"unknown pattern {pattern!r}")
            texture = _texture(height, width) if pattern == "moving" else None
            grain = None if texture is None else [np.random.default_rng(k).integers(0, 16, (height, width, 3),
                                                                                    dtype=np.uint8) for k in range(5)]
            for i, start in enumerate(starts):
                if texture is None:
                    rgb = np.full((height, width, 3), frame_level(i), dtype=np.uint8)
                else:  # pan 3 px right and 1 px down per frame over a periodic texture
                    x, y = (3 * i) % width, i % height
                    rgb = texture[y : y + height, x : x + width] + grain[i % len(grain)]  # sensor-like grain
                    rgb[-max(1, height // 6):, -max(1, width // 6):] = frame_level(i)
                rgb[: max(1, height // 8), : max(1, width // 8)] = (255, 0, 0)  # a red corner
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                if frame_durations is not None:
                    frame.pts = int(round(start * 1000))
                    frame.time_base = Fraction(1, 1000)
                else:
                    frame.pts = i
                for packet in vstream.encode(frame):
                    out.mux(packet)
            for packet in vstream.encode(None):
                out.mux(packet)

        if astream is not None:
            total = int(round(audio_seconds * audio_rate))
            t = np.arange(total) / audio_rate
            channels = [0.5 * np.sin(2 * math.pi * tone_hz * (c + 1) * t) for c in range(audio_channels)]
            signal = np.stack(channels).astype(np.float32)
            ctx = astream.codec_context
            chunk = ctx.frame_size or 1024
            fmt = ctx.format.name
            layout = "mono" if audio_channels == 1 else "stereo"
            for start in range(0, total, chunk):
                part = signal[:, start : start + chunk]
                frame = av.AudioFrame.from_ndarray(_audio_chunk(part, fmt), format=fmt, layout=layout)
                frame.sample_rate = audio_rate
                frame.pts = start + int(round(audio_offset * audio_rate))
                frame.time_base = Fraction(1, audio_rate)
                for packet in astream.encode(frame):
                    out.mux(packet)
            for packet in astream.encode(None):
                out.mux(packet)
    return path


def _texture(height: int, width: int) -> np.ndarray:
    """A (2h, 2w, 3) uint8 picture, periodic with period (h, w): colour gradients, 16-pixel blocks, fine noise
    (values at most 230, so a grain of up to 15 added per frame does not wrap)."""
    rng = np.random.default_rng(0)
    yy, xx = np.meshgrid(np.arange(height) / height, np.arange(width) / width, indexing="ij")
    ramp = np.stack([np.sin(2 * math.pi * (xx + yy)), np.cos(2 * math.pi * xx), np.sin(4 * math.pi * yy)], -1)
    blocks = rng.integers(0, 70, (height // 16 + 1, width // 16 + 1, 3))
    blocks = np.repeat(np.repeat(blocks, 16, axis=0), 16, axis=1)[:height, :width]
    pic = 80 + 60 * ramp + blocks + rng.integers(0, 21, (height, width, 3))
    return np.tile(np.clip(pic, 0, 255).astype(np.uint8), (2, 2, 1))


def make_video_without_frames(path: str | Path, audio_rate: int = 16000) -> Path:
    """An .mkv that declares a video stream but holds no video frame (audio only inside)."""
    path = Path(path)
    with av.open(str(path), "w") as out:
        vstream = out.add_stream("libx264", rate=10)
        vstream.width, vstream.height = 64, 48
        vstream.pix_fmt = "yuv420p"
        astream = out.add_stream("flac", rate=audio_rate)
        astream.layout = "mono"
        signal = np.zeros((1, audio_rate), dtype=np.float32)
        fmt = astream.codec_context.format.name
        for start in range(0, audio_rate, 1024):
            frame = av.AudioFrame.from_ndarray(
                _audio_chunk(signal[:, start : start + 1024], fmt), format=fmt, layout="mono"
            )
            frame.sample_rate = audio_rate
            frame.pts = start
            frame.time_base = Fraction(1, audio_rate)
            for packet in astream.encode(frame):
                out.mux(packet)
        for packet in astream.encode(None):
            out.mux(packet)
        for packet in vstream.encode(None):
            out.mux(packet)
    return path


def disposition(flag) -> int:
    """A Disposition flag as the int every PyAV version's setter takes (PyAV 15's Flag has no int())."""
    return int(getattr(flag, "value", flag))
