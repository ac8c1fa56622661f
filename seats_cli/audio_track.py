"""A video file's sound track for the model: the stream chosen, decoded to mono float32 at the policy's rate by one
resampler while the file is demuxed (a bounded amount kept), then aligned to the first video frame and capped
(docs/METHOD.md §2). ``seats_cli.media`` drives it; the stream helpers here serve both.
"""

from __future__ import annotations

import math

import numpy as np

from seats_cli.frames import FramePolicy

DEFAULT_DISPOSITION = 0x0001  # AV_DISPOSITION_DEFAULT


def disposition(stream) -> int:
    """A stream's disposition bits: an int on some PyAV versions, a ``Flag`` (no int()) on PyAV 15."""
    d = getattr(stream, "disposition", 0)
    return int(getattr(d, "value", d))


def seconds(value, time_base) -> float | None:
    t = float(value * time_base) if value is not None and time_base else None
    return t if t is not None and math.isfinite(t) else None


GAP_SECONDS = 0.1  # a hole in the audio timestamps longer than this is filled with silence


class Damage:
    """Packets a decoder refused (a damaged stretch of the file): counted, skipped, and said in the notes."""

    def __init__(self):
        self.video = self.audio = 0  # packets refused
        self.tried = {"video": 0, "audio": 0}  # packets given to the decoder

    def decode(self, decode, kind: str, *args) -> list:
        """``decode(*args)``'s frames, or none when the decoder refuses the packet (counted under ``kind``)."""
        import av

        self.tried[kind] += 1
        try:
            return decode(*args)
        except av.error.FFmpegError:
            setattr(self, kind, getattr(self, kind) + 1)
            return []

    def restart(self, kind: str) -> None:
        """The stream is decoded again from its start: count afresh."""
        setattr(self, kind, 0)
        self.tried[kind] = 0

    def check(self, path) -> None:
        """A file whose decoder refused more than a quarter of a stream's packets is damaged, not merely marred."""
        from seats_cli.frames import MediaError

        for kind in ("video", "audio"):
            bad, tried = getattr(self, kind), self.tried[kind]
            if bad and bad * 4 > tried:
                raise MediaError(f"cannot decode {path}: the decoder refused {bad} of its {tried} {kind} packets "
                                 f"(a damaged file)")

    def notes(self) -> list[str]:
        out = []
        for kind, n in (("video", self.video), ("audio", self.audio)):
            if n:
                out.append(f"{n} damaged {kind} packet{'s' if n > 1 else ''} skipped (the decoder refused "
                           f"{'them' if n > 1 else 'it'})")
        return out


class AudioCollector:
    """Decodes the first audio track to mono float32 at the target rate, keeping a bounded amount; a change of
    sample format, layout or rate mid-track (joined broadcast segments) gets a new resampler. A hole in the track's
    timestamps is recorded where it falls in the output (``holes``); ``fill_holes`` decides, once the video's frame
    times are known, which become silence."""

    def __init__(self, stream, policy: FramePolicy, video_start: float):
        self.time_base, self.rate, self.video_start = stream.time_base, policy.audio_sample_rate, video_start
        self.resampler, self.source = None, None  # one resampler per input format (format, layout, rate)
        self.limit = int((policy.max_audio_seconds + 2.0) * self.rate)  # keep the cap + a margin only
        self.chunks: list[np.ndarray] = []
        self.samples, self.start, self.end, self.full = 0, None, None, False
        self.holes: list[tuple[int, float, float]] = []  # (output sample index, last end, next start), seconds

    def _push(self, frames) -> None:
        for out in frames:
            data = out.to_ndarray().astype(np.float32, copy=False)  # planar: (channels, samples)
            mono = data.mean(axis=0) if data.shape[0] > 1 else data[0]
            self.chunks.append(np.ascontiguousarray(mono, dtype=np.float32))
            self.samples += mono.shape[0]

    def _flush(self) -> None:
        if self.resampler is not None:
            self._push(self.resampler.resample(None))
        self.resampler = self.source = None

    def _resample(self, frame) -> None:
        import av

        # channels are averaged here (as librosa does), not by the resampler (which weights by 1/sqrt(2))
        source = (frame.format.name, frame.layout.name, frame.sample_rate)
        if source != self.source:
            self._flush()
            self.resampler, self.source = av.AudioResampler(format="fltp", layout=None, rate=self.rate), source
        self._push(self.resampler.resample(frame))

    def add(self, frame) -> None:
        if self.full:
            return
        t = seconds(frame.pts, self.time_base or frame.time_base)
        if self.start is None:
            self.start = self.video_start if t is None else t
            self.limit += max(0, int((self.video_start - self.start) * self.rate))
        elif t is not None and self.end is not None and t - self.end > GAP_SECONDS:
            self._flush()  # every sample before the hole out: the hole's place in the output is exact
            self.holes.append((self.samples, self.end, t))
        self._resample(frame)
        if t is not None and frame.sample_rate:
            self.end = t + frame.samples / frame.sample_rate
        self.full = self.samples >= self.limit

    def finish(self) -> np.ndarray | None:
        if not self.full and self.start is not None:
            self._flush()
        return np.concatenate(self.chunks) if self.chunks else None


def fill_holes(audio: np.ndarray, holes, video_times, video_rate: float, rate: int, limit: int, notes: list[str],
               video_start: float) -> tuple[np.ndarray, float]:
    """Silence for the holes in the sound's timestamps, as long as the picture runs on through them on the clock the
    frames are told by (frame i at i / ``video_rate``): for the part of a hole inside the video's span, the frames
    that fall in it / ``video_rate`` (a paused recording, where the frames pause too, gets none: the sound is
    joined end to end as the frames are); for the parts before the first or after the last frame, their real
    length. A hole longer than the whole video is a clock jump: joined. ``video_times``: every frame's time
    (seconds, the container's clock). Returns the audio and the seconds joined (holes not filled)."""
    if not holes:
        return audio, 0.0
    times = np.sort(np.asarray(video_times, dtype=np.float64))
    first, last = (float(times[0]), float(times[-1])) if times.size else (0.0, 0.0)
    span = last - first
    parts, at, filled, joined = [], 0, [], 0.0
    for index, end, start in holes:
        length = start - end
        if length > span:
            silence = 0.0
        else:
            outside = max(0.0, min(start, first) - end) + max(0.0, start - max(end, last))
            frames = int(np.count_nonzero((times >= max(end, first)) & (times < min(start, last))))
            # one frame is the edges' rounding (audio frames do not end where video frames do), not the picture
            # running on: a paused recording's first frame after the pause can fall just inside the hole
            silence = min(length, outside + (frames / video_rate if frames > 1 else 0.0))
        joined += length - silence
        samples = int(round(silence * rate))
        if samples > 0:
            parts += [audio[at:index], np.zeros(samples, dtype=np.float32)]
            at = index
            filled.append((end - video_start, silence))
    if filled:
        audio = np.concatenate(parts + [audio[at:]])[:limit]
        where = ", ".join(f"{length:.1f} s at {when:.1f} s" for when, length in filled[:3])
        more = f" and {len(filled) - 3} more" if len(filled) > 3 else ""
        notes.append(f"the sound track has {len(filled)} hole{'s' if len(filled) > 1 else ''} in its timestamps "
                     f"where the picture runs on ({where}{more}): filled with silence so that later sound stays "
                     f"with its frames")
    return audio, joined


def pick_default(streams):
    """The default-disposition stream, else the first; None when there is none (the rule for video and audio)."""
    if not streams:
        return None
    default = [s for s in streams if disposition(s) & DEFAULT_DISPOSITION]
    return (default or list(streams))[0]



def streams_note(kind: str, count: int, stream) -> list[str]:
    """The note when a file has several streams of ``kind``: which one was used."""
    if count <= 1:
        return []
    which = "its default" if disposition(stream) & DEFAULT_DISPOSITION else "the first"
    return [f"the file has {count} {kind} streams; using {which}, stream #{stream.index}"]


def align_audio(raw: np.ndarray, audio_start: float | None, video_start: float, duration: float,
                 policy: FramePolicy, notes: list[str], read_all: bool = True,
                 track_seconds: float | None = None) -> np.ndarray:
    """Align the audio to the first video frame (a late start is padded with silence, an early one trimmed), keep
    the track past the end of the video as qwen-omni-utils does (it reads the whole track), then cap it; every
    cut or extension is said in ``notes``. ``read_all``: the whole track was read (not stopped at the cap)."""
    rate = policy.audio_sample_rate
    offset = 0 if audio_start is None else int(round((video_start - audio_start) * rate))
    audio = raw[offset:] if offset >= 0 else np.concatenate([np.zeros(-offset, dtype=np.float32), raw])
    target = int(round(duration * rate))
    slack = max(int(0.1 * rate), 1)
    if read_all and audio.shape[0] < target - slack:
        notes.append(f"audio track ends {(target - audio.shape[0]) / rate:.1f} s before the video")
    cap = int(round(policy.max_audio_seconds * rate))
    if audio.shape[0] <= target + slack:
        audio = audio[:target]  # codec padding past the last frame (AAC's ~50 ms): not part of the track
    else:
        kept = min(audio.shape[0], cap) / rate
        notes.append(f"the sound track runs past the video ({duration:.1f} s): {kept:.1f} s of audio kept, as "
                     f"qwen-omni-utils reads the whole track; the last {max(0.0, kept - duration):.1f} s reach the "
                     f"model as audio-only windows")
    if audio.shape[0] > cap:
        audio = audio[:cap]
        total = track_seconds if track_seconds and track_seconds > policy.max_audio_seconds else None
        dropped = f"; {total - policy.max_audio_seconds:.1f} s of the {total:.1f} s track dropped" if total else ""
        notes.append(f"audio capped at {policy.max_audio_seconds:g} s{dropped}")
    return np.clip(audio, -1.0, 1.0).astype(np.float32, copy=False)
