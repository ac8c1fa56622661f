"""Decode a video file into sampled, resized frames and its audio track (PyAV only, no ffmpeg binary).

The sampling and sizing policy is ``seats_cli.frames`` (docs/METHOD.md §2). Video and audio packets are
demuxed together. When the sampled frames are sparse (a long clip: 2 fps of 25 fps keeps one frame in 12), the
video is then decoded only from the keyframe before each sampled frame up to it, without the H.264 pictures
nothing refers to (seats_cli.keyframe_runs); otherwise every frame is decoded while demuxing. Either way only the
sampled frames are converted and resized, once each, and the audio is mixed to mono and resampled to 16 kHz by one
resampler (seats_cli.audio_track).
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from seats_cli.audio_track import AudioCollector, Damage, align_audio, fill_holes, pick_default, streams_note
from seats_cli.audio_track import disposition as _disposition
from seats_cli.audio_track import seconds as _seconds
from seats_cli.keyframe_runs import SPARSE, decode_runs, plan_runs
from seats_cli.frames import (  # noqa: F401  (the policy's names are part of this module's API too)
    FramePolicy, MediaError, _ceil_by, _floor_by, _smart_resize, frame_indices, frame_pixel_cap, plan_frames,
    plan_resize,
)

# Demuxers/codecs that "open" arbitrary text or binary files as a rendered-text video.
_TEXT_FORMATS = {"tty", "bin", "adf", "idf", "xbin", "ansi", "bintext"}
# Demuxers of still images (an image renamed .mp4 opens as a one-frame "video")
_IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "webp_pipe", "tiff_pipe", "jpegls_pipe",
                  "j2k_pipe", "pgm_pipe", "ppm_pipe", "pam_pipe", "qoi_pipe", "svg_pipe", "dpx_pipe", "exr_pipe",
                  "gif_pipe", "psd_pipe", "xbm_pipe", "xpm_pipe", "sgi_pipe", "sunrast_pipe", "pcx_pipe"}
_ATTACHED_PIC = 0x0400  # AV_DISPOSITION_ATTACHED_PIC: cover art, not a video


@dataclass(frozen=True)
class DecodedMedia:
    path: str
    frames: torch.Tensor  # uint8 (T, 3, height, width)
    frame_indices: list[int]  # indices of the sampled frames in the decoded source stream
    frame_times: list[float]  # presentation time of each sampled frame, seconds from the first frame
    sample_fps: float  # nframes / source_frames * source_fps: the fps the processor must be given
    duration_s: float  # span of the video stream (first frame to end of last frame)
    source_width: int
    source_height: int
    source_fps: float
    source_frames: int
    height: int
    width: int
    audio: np.ndarray | None  # float32 mono at the policy's rate, aligned to frame_times' zero
    audio_source_rate: int | None
    audio_source_channels: int | None
    notes: tuple[str, ...] = field(default=())
    audio_sample_rate: int = 16000  # rate of `audio`
    rotation: int = 0  # counterclockwise degrees applied to bring the frames upright (display matrix)
    flip: str | None = None  # then mirrored ("horizontal" / "vertical") as the display matrix says, or None
    audio_stream: int | None = None  # container index of the audio stream used
    audio_streams: int = 0  # audio streams in the file
    decode_ms: float = field(default=0.0, compare=False)  # wall time decode_video took (frames + audio resample)
    frames_decoded: int = field(default=0, compare=False)  # video frames decoded (fewer than source_frames when
    # only the keyframe runs holding sampled frames were decoded)
    processor_fps: str = "sampled"  # what the processor is told of the time (FramePolicy.processor_fps)
    policy: FramePolicy | None = field(default=None, compare=False, repr=False)  # what decode_video sampled with

    def to_dict(self) -> dict:
        """Metadata only (no arrays), JSON-serialisable."""
        samples = None if self.audio is None else int(self.audio.shape[0])
        return {
            "path": self.path, "frames": len(self.frame_indices), "frame_indices": list(self.frame_indices),
            "frame_times": [round(t, 6) for t in self.frame_times], "sample_fps": self.sample_fps,
            "processor_fps": self.processor_fps,
            "duration_s": self.duration_s, "height": self.height, "width": self.width,
            "source": {"width": self.source_width, "height": self.source_height,
                       "fps": self.source_fps, "frames": self.source_frames},
            "audio_samples": samples, "audio_sample_rate": self.audio_sample_rate,
            "audio_seconds": None if samples is None else samples / self.audio_sample_rate,
            "audio_source_rate": self.audio_source_rate, "audio_source_channels": self.audio_source_channels,
            "rotation": self.rotation, "flip": self.flip, "audio_stream": self.audio_stream,
            "audio_streams": self.audio_streams,
            "notes": list(self.notes),
        }


# ----------------------------------------------------------------------------- decoding

def _resize(rgb: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)
    if tuple(t.shape[1:]) == size:
        return t.contiguous()
    return F.resize(t, list(size), interpolation=InterpolationMode.BICUBIC, antialias=True).contiguous()


class _FrameSampler:
    """Receives decoded frames in order and keeps (resized) only the planned indices."""

    def __init__(self, total: int, fps: float, policy: FramePolicy, progress, time_base):
        self.total, self.fps, self.policy, self.progress, self.time_base = total, fps, policy, progress, time_base
        self.n = plan_frames(total, fps, policy)
        self.indices = frame_indices(total, self.n)
        self.wanted = set(self.indices)
        self.kept: dict[int, tuple[torch.Tensor, float]] = {}  # index -> (resized frame, time)
        self.count = self.decoded = 0  # frames seen in order; frames the decoder gave
        self.size = self.source_size = self.first_t = self.last_t = self.last_dur = None
        self.rotation, self.flip = 0, None
        self.times: list[float] = []  # every frame's time (seconds, the container's clock), in display order

    def add(self, frame) -> None:
        i, self.count = self.count, self.count + 1
        self.decoded += 1
        tb = self.time_base or frame.time_base  # flushed frames may lack their own time base
        t = _seconds(frame.pts, tb)
        if t is None or (self.last_t is not None and t <= self.last_t):
            t = (self.last_t + 1.0 / self.fps) if self.last_t is not None else 0.0
        self.first_t = t if self.first_t is None else self.first_t
        self.last_t = t
        self.times.append(t)
        self.last_dur = _seconds(getattr(frame, "duration", None), tb) or None
        if i in self.wanted:
            self._keep(frame, i, t)
        if self.progress is not None:
            self.progress(self.count, self.total)

    def add_at(self, frame, i: int) -> None:
        """Keep `frame` as source frame `i` (display order), when only some frames are decoded: the frames
        come in display order, the first and the last are always among them, their pts are all valid."""
        t = _seconds(frame.pts, self.time_base or frame.time_base)
        self.first_t = t if self.first_t is None else self.first_t
        if i == self.total - 1:
            self.last_t = t
            self.last_dur = _seconds(getattr(frame, "duration", None), self.time_base or frame.time_base) or None
        self._keep(frame, i, t)
        if self.progress is not None:
            self.progress(i + 1, self.total)

    def _keep(self, frame, i: int, t: float) -> None:
        turns, flip = _orientation(frame)
        if self.size is None:
            self.rotation, self.flip = turns * 90, flip
            h, w = (frame.width, frame.height) if turns % 2 else (frame.height, frame.width)
            self.source_size = (h, w)  # as displayed: sizes are computed after rotation
            self.size = plan_resize(h, w, self.n, self.policy)
        rgb = frame.to_ndarray(format="rgb24")
        if turns:
            rgb = np.rot90(rgb, k=turns)  # counterclockwise, as the display matrix says
        if flip == "vertical":
            rgb = rgb[::-1]
        elif flip == "horizontal":
            rgb = rgb[:, ::-1]
        self.kept[i] = (_resize(rgb, self.size), t - self.first_t)


def _display_matrix(frame) -> np.ndarray | None:
    """The frame's 3x3 display matrix (16.16 fixed point, row-major), or None."""
    try:
        for side in frame.side_data:
            if "DISPLAYMATRIX" in str(side.type):
                m = np.frombuffer(bytes(side), dtype=np.int32)
                return m if m.size == 9 else None
    except Exception:  # a PyAV without side data access: the rotation alone below
        return None
    return None


def _orientation(frame) -> tuple[int, str | None]:
    """How to show a decoded frame as its display matrix says (phone videos, mirrored recordings): counterclockwise
    quarter turns, then a flip (None, "vertical" or "horizontal"), as the ffmpeg command line's autorotation does
    (fftools: transpose clock / cclock, with the flipped variants when the matrix mirrors, hflip / vflip at 180 and
    0 degrees); an angle that is not a quarter turn is rounded to the nearest one."""
    m = _display_matrix(frame)
    if m is None:
        try:
            degrees = float(getattr(frame, "rotation", 0) or 0)
        except (TypeError, ValueError):
            return 0, None
        return int(round(degrees / 90.0)) % 4, None
    s0, s1 = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
    if s0 == 0 or s1 == 0:
        return 0, None
    theta = round(math.degrees(math.atan2(m[1] / s1, m[0] / s0)))  # clockwise display angle
    quarter = int(round(theta / 90.0)) % 4
    if quarter == 1:  # transpose "clock", or "cclock_flip" (the plain transpose) when the matrix mirrors
        return (1, "vertical") if m[3] > 0 else (3, None)
    if quarter == 3:  # transpose "cclock", or "clock_flip"
        return (3, "vertical") if m[3] < 0 else (1, None)
    h, v = bool(m[0] < 0), bool(m[4] < 0)
    if h == v:  # both mirrored is a half turn; neither, a half turn only where the angle says so
        return (2 if h or quarter == 2 else 0), None
    return 0, "horizontal" if h else "vertical"


def _stream_rate(stream) -> float | None:
    for rate in (getattr(stream, "average_rate", None), getattr(stream, "guessed_rate", None),
                 getattr(stream, "base_rate", None)):
        if rate and float(rate) > 0 and math.isfinite(float(rate)):
            return float(rate)
    return None


def _check_path(path) -> Path:
    raw = os.fspath(path)
    if not raw:
        raise MediaError("the video path is empty")
    p = Path(raw)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise MediaError(f"no such file: {p}") from None
    except OSError as e:  # a name too long, a folder the user may not enter, a loop of links
        raise MediaError(f"cannot open {p}: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise MediaError(f"{p} is a directory, not a video file")
    if not stat.S_ISREG(st.st_mode):  # a pipe, a socket, a device: the decoder reads a file twice (packets, frames)
        raise MediaError(f"{p} is not a regular file (a pipe or a device); save the video to a file first")
    if st.st_size == 0:
        raise MediaError(f"{p} is empty (0 bytes)")
    if not os.access(p, os.R_OK):
        raise MediaError(f"cannot open {p}: Permission denied")
    return p


def _pick_video(p: Path, container):
    """The default-disposition video stream, else the first (cover art is not video); MediaError when there is none
    or its codec has no decoder here."""
    videos = [s for s in container.streams.video if not _disposition(s) & _ATTACHED_PIC]
    if not videos:
        kind = "an audio-only file" if container.streams.audio else "not a video file"
        raise MediaError(f"{p} has no video stream ({kind})")
    vstream = pick_default(videos)
    if vstream.codec_context is None:
        tag = getattr(vstream, "codec_tag", None) or "unknown"
        raise MediaError(f"{p}: no decoder for its video codec ({tag}) in this PyAV build")
    _refuse_non_video(p, container, vstream)
    return vstream, len(videos)


def _refuse_non_video(p: Path, container, vstream) -> None:
    names = set(str(getattr(container.format, "name", "")).split(",")) | {vstream.codec_context.name}
    if names & _TEXT_FORMATS:
        raise MediaError(f"{p} is not a media file (it looks like text or binary data)")
    if names & _IMAGE_FORMATS:
        raise MediaError(f"{p} is a still image, not a video")


def probe_video(path: str | os.PathLike) -> None:
    """A cheap check that ``path`` is a media file with a video stream (no frame is decoded); MediaError if not."""
    import av

    p = _check_path(path)
    try:
        with av.open(str(p), mode="r", metadata_errors="ignore") as container:
            _pick_video(p, container)
    except MediaError:
        raise
    except Exception as e:  # av errors for unreadable files
        reason = " ".join(str(getattr(e, "strerror", None) or e).split()) or type(e).__name__
        raise MediaError(f"{p} is not a readable media file ({reason})") from None


def decode_video(path: str | os.PathLike, policy: FramePolicy = FramePolicy(),
                 progress: Callable[[int, int], None] | None = None) -> DecodedMedia:
    """Decode `path` into sampled frames and its audio track; any problem raises MediaError.

    `progress(decoded, expected_total)` is called after each decoded video frame when given.
    """
    p = _check_path(path)
    # torchvision's first import (≈ 1 s: it pulls in torch._dynamo) is the process's start-up, like importing torch,
    # not this file's decode: done before the clock starts
    importlib.import_module("torchvision.transforms.functional")

    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    try:
        # torch resizes one frame at a time on at most half the cores, the decoder's threads have the rest
        # (torch threads competing with them for a core cost several times the work); restored below
        if _resize_threads(threads) != threads:
            torch.set_num_threads(_resize_threads(threads))
        media = _decode(p, policy, progress, count_first=False)
        return dataclasses.replace(media, decode_ms=(time.perf_counter() - t0) * 1000, policy=policy)
    except MediaError as e:
        if str(p) in str(e):
            raise
        raise MediaError(f"{p}: {e}") from None
    except Exception as e:  # av errors, decoder failures, anything from a broken file
        reason = " ".join(str(e).split()) or type(e).__name__
        raise MediaError(f"cannot decode {p}: {reason}") from None
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _resize_threads(threads: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(threads, cores // 2))


def _decode(p: Path, policy: FramePolicy, progress, count_first: bool) -> DecodedMedia:
    import av

    try:
        container = av.open(str(p), mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as e:
        reason = " ".join(str(getattr(e, "strerror", None) or e).split())
        raise MediaError(f"{p} is not a readable media file ({reason})") from None
    with container:
        vstream, n_videos = _pick_video(p, container)
        audio_streams = list(container.streams.audio)
        astream = pick_default(audio_streams)
        # read now: after the container closes, a stream's fields are freed memory (garbage on PyAV 15)
        astream_index = None if astream is None else int(astream.index)
        vstream.thread_type = "AUTO"
        declared, rate = int(vstream.frames or 0), _stream_rate(vstream)
        video_start = _seconds(vstream.start_time, vstream.time_base) or 0.0
        audio = AudioCollector(astream, policy, video_start) if astream is not None else None
        notes: list[str] = []
        # With a frame count in the header the sampled frames are known before decoding: when they are sparse
        # this pass lists the video packets (and decodes the audio), then only the runs from a keyframe to a
        # sampled frame are decoded (seats_cli.keyframe_runs); else the frames are decoded while demuxing.
        # Without a count, the (compressed) video packets are kept, counted, then decoded.
        direct = declared > 0 and rate is not None and not count_first
        sampler = _FrameSampler(declared, rate, policy, progress, vstream.time_base) if direct else None
        sparse = direct and sampler.n * SPARSE <= declared
        packets, listed, damage = [], [], Damage()
        for packet in container.demux([vstream] + ([astream] if astream is not None else [])):
            if packet.stream is vstream:
                if sparse:
                    if packet.size > 0:
                        listed.append((packet.pts, packet.dts, packet.is_keyframe))
                elif direct:
                    for frame in damage.decode(packet.decode, "video"):
                        sampler.add(frame)
                elif packet.size > 0:
                    packets.append(packet)
            elif audio is not None and not audio.full:
                for frame in damage.decode(packet.decode, "audio"):
                    audio.add(frame)
        if sparse:
            runs = None if len(listed) != declared else plan_runs([x[0] for x in listed], [x[2] for x in listed],
                                                                  sampler.indices)
            if runs is None or not decode_runs(p, vstream.index, listed, runs, sampler):
                return _decode(p, policy, progress, count_first=True)  # decode every frame, counting them
            sampler.count = declared
            sampler.times = sorted(float(x[0] * vstream.time_base) for x in listed)
        if direct and 0 < sampler.count != declared:  # the header was wrong: count first
            return _decode(p, policy, progress, count_first=True)
        if packets:
            rate = rate or _packet_rate(packets)
            damage.restart("video")
            sampler = _decode_packets(vstream, packets, len(packets), rate, policy, progress, damage)
            if 0 < sampler.count != len(packets):  # decoder output differs from packets: redo
                vstream.codec_context.flush_buffers()
                damage.restart("video")
                sampler = _decode_packets(vstream, packets, sampler.count, rate, policy, progress, damage)
            if declared and declared != sampler.count:
                notes.append(f"the header declares {declared} frames; {sampler.count} were decoded")
        if sampler is None or sampler.count == 0 or len(sampler.kept) != len(sampler.wanted):
            raise MediaError(f"{p} has a video stream with no decodable frames")
        notes += streams_note("video", n_videos, vstream)
        raw_audio = audio.finish() if audio is not None else None
        damage.check(p)
        notes += damage.notes()
        joined = 0.0  # seconds of holes in the sound joined end to end, as the frames are there
        if raw_audio is not None and audio.holes:
            raw_audio, joined = fill_holes(raw_audio, audio.holes, sampler.times, rate, policy.audio_sample_rate,
                                           audio.limit, notes, sampler.first_t)
        audio_rate = audio_channels = None
        audio_total_s = None
        if astream is not None:
            ctx = astream.codec_context
            audio_rate = int(ctx.sample_rate or 0) or None
            layout = getattr(ctx, "layout", None)
            audio_channels = getattr(layout, "nb_channels", None) or getattr(ctx, "channels", None)
            audio_total_s = _seconds(astream.duration, astream.time_base)
            notes += streams_note("audio", len(audio_streams), astream)

    total, n = sampler.count, sampler.n
    span = sampler.last_t - sampler.first_t
    duration = span + (sampler.last_dur or (span / (total - 1) if total > 1 else 1.0 / rate))
    (h, w), (src_h, src_w) = sampler.size, sampler.source_size
    wanted = total / rate * policy.fps
    if total < _ceil_by(policy.min_frames, policy.frame_factor):
        notes.append(f"video has only {total} frame(s); sampled {n} with repeats (minimum {policy.min_frames})")
    elif n < _floor_by(min(wanted, total), policy.frame_factor):  # only --max-frames can cause this
        notes.append(f"video has {total} frames ({duration:.1f} s) at {policy.fps:g} fps would give "
                     f"{wanted:.0f}; sampled {n} (--max-frames {policy.max_frames})")
    elif wanted > total:  # more frames asked for than the file has: it runs at a lower frame rate
        notes.append(f"sampling at {policy.fps:g} fps asks for more frames than the video's {rate:g} fps has: "
                     f"sampled {n} of its {total} frames ({n / total * rate:g} fps)")
    times = [sampler.kept[i][1] for i in sampler.indices]
    drift = max(abs(t - i / rate) for t, i in zip(times, sampler.indices))
    if drift > max(0.25, 0.5 * total / (n * rate)):  # more than half a sampled frame's interval
        notes.append(f"the video's frame rate varies: frames are sampled by index at its nominal {rate:g} fps, as "
                     f"the official reader does, so a sampled frame's real time differs from the time the model is "
                     f"told by up to {drift:.1f} s")
    if frame_pixel_cap(n, policy) < policy.max_pixels:
        first = _smart_resize(src_h, src_w, policy.image_factor, policy.min_pixels, frame_pixel_cap(n, policy))
        if first == (h, w):
            notes.append(f"frames resized to {w}x{h} to fit the total pixel budget of {n} frames")
        else:
            notes.append(f"the total pixel budget of {n} frames gives {first[1]}x{first[0]}; the processor's "
                         f"bounds make it {w}x{h} (frame sizing 'processor', as in the official pipeline)")
    final_audio = None
    if astream is None:
        notes.append("no audio track")
    elif raw_audio is None or raw_audio.size == 0:
        notes.append("audio track is empty")
    else:
        final_audio = align_audio(raw_audio, audio.start, sampler.first_t, max(0.0, duration - joined), policy,
                                  notes, read_all=not audio.full, track_seconds=audio_total_s)
    return DecodedMedia(
        path=str(p), frames=torch.stack([sampler.kept[i][0] for i in sampler.indices]),
        frame_indices=list(sampler.indices), frame_times=times,
        sample_fps=n / total * rate, duration_s=duration, source_width=src_w, source_height=src_h,
        source_fps=rate, source_frames=total, height=h, width=w, audio=final_audio,
        audio_source_rate=audio_rate, audio_source_channels=audio_channels, notes=tuple(notes),
        audio_sample_rate=policy.audio_sample_rate, rotation=sampler.rotation, flip=sampler.flip,
        audio_stream=astream_index, audio_streams=len(audio_streams), frames_decoded=sampler.decoded,
        processor_fps=policy.processor_fps,
    )


def _decode_packets(vstream, packets, total, rate, policy, progress, damage: Damage) -> _FrameSampler:
    sampler = _FrameSampler(total, rate, policy, progress, vstream.time_base)
    for packet in packets:
        for frame in damage.decode(vstream.decode, "video", packet):
            sampler.add(frame)
    for frame in damage.decode(vstream.decode, "video", None):  # drain the decoder
        sampler.add(frame)
    return sampler


def _packet_rate(packets) -> float:
    times = sorted(float(pk.pts * pk.time_base) for pk in packets if pk.pts is not None and pk.time_base)
    if len(times) > 1 and times[-1] > times[0]:
        return (len(times) - 1) / (times[-1] - times[0])
    raise MediaError("the video's frame rate is unknown")
