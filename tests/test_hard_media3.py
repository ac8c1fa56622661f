"""Hard media, round three: files that are valid but unusual (mirrored or transposed display matrices, holes in the
sound's timestamps, a sound format that changes mid-track, a header that counts a frame too many, a damaged
packet, several video streams, a variable frame rate) are read as they play; files that cannot be read say why in
one line. Each case is made here with PyAV and checked against what it holds (corner colours, tone times)."""

from __future__ import annotations

import os
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from media_factory import disposition, mux_audio, mux_video
from seats_cli.frames import MediaError
from seats_cli.media import decode_video

RED, GREEN, BLUE = (230, 20, 20), (20, 230, 20), (20, 20, 230)


def _corners(h: int = 96, w: int = 160) -> np.ndarray:
    """Grey frame with a red top-left, a green top-right and a blue bottom-left corner block."""
    img = np.full((h, w, 3), 128, np.uint8)
    b = h // 4
    img[:b, :b], img[:b, -b:], img[-b:, :b] = RED, GREEN, BLUE
    return img


def _video(path: Path, frames, *, fps=10, codec="libx264", fmt=None, pts=None, time_base=None) -> Path:
    with av.open(str(path), "w", format=fmt) as c:
        v = c.add_stream(codec, rate=fps)
        v.width, v.height, v.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        if time_base is not None:
            v.codec_context.time_base = v.time_base = time_base
        v.options = {"preset": "ultrafast", "crf": "12", "threads": "1"} if codec == "libx264" else {}
        mux_video(c, v, frames, pts)
    return path


def _set_matrix(path: Path, m: tuple[int, ...]) -> None:
    """Write a display matrix (a, b, u, c, d, v, x, y, w) into the MP4's video track header (tkhd v0)."""
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd") + 4 + 40
    data[at:at + 36] = struct.pack(">9i", *m)
    path.write_bytes(bytes(data))


def _where(frame, colour) -> tuple[str, str]:
    img = frame.permute(1, 2, 0).numpy().astype(int)
    mask = (np.abs(img - np.array(colour)).sum(-1) < 120)
    ys, xs = mask.nonzero()
    h, w = mask.shape
    return ("top" if ys.mean() < h / 2 else "bottom"), ("left" if xs.mean() < w / 2 else "right")


def _expected(m, w: int, h: int, x: float, y: float) -> tuple[str, str]:
    """Where the source point (x, y) is shown: the display matrix maps (x, y) to (a x + c y, b x + d y) (ffmpeg's
    convention); the shown picture is the bounding box of the mapped frame."""
    a, b, c, d = (v / 65536 for v in (m[0], m[1], m[3], m[4]))
    corners = [(a * px + c * py, b * px + d * py) for px, py in ((0, 0), (w, 0), (0, h), (w, h))]
    xs, ys = [p[0] for p in corners], [p[1] for p in corners]
    X, Y = a * x + c * y, b * x + d * y
    return ("top" if Y - min(ys) < (max(ys) - min(ys)) / 2 else "bottom",
            "left" if X - min(xs) < (max(xs) - min(xs)) / 2 else "right")


ONE = 65536
MATRICES = {  # (a, b, c, d) of the display matrix
    "identity": (ONE, 0, 0, ONE), "turn 90 ccw": (0, -ONE, ONE, 0), "turn 90 cw": (0, ONE, -ONE, 0),
    "half turn": (-ONE, 0, 0, -ONE), "mirror": (-ONE, 0, 0, ONE), "upside-down mirror": (ONE, 0, 0, -ONE),
    "transpose": (0, ONE, ONE, 0), "anti-transpose": (0, -ONE, -ONE, 0),
}


@pytest.mark.parametrize("name", list(MATRICES))
def test_display_matrices_rotate_and_mirror_as_a_player_shows_them(tmp_path, name):
    a, b, c, d = MATRICES[name]
    m = (a, b, 0, c, d, 0, 0, 0, 1 << 30)
    path = _video(tmp_path / "m.mp4", [_corners()] * 4)
    _set_matrix(path, m)
    media = decode_video(path)
    frame = media.frames[0]
    h, w = 96, 160
    assert (media.source_width, media.source_height) == ((h, w) if a == 0 else (w, h))
    for colour, (x, y) in ((RED, (1, 1)), (GREEN, (w - 1, 1)), (BLUE, (1, h - 1))):
        assert _where(frame, colour) == _expected(m, w, h, x, y), (name, colour)
    assert (media.flip is not None) == (a * d - b * c < 0)  # a mirror is said in JSON media.flip


def _tone_track(path: Path, codec: str, *, hole: tuple[float, float] | None, rate: int = 16000,
                seconds: float = 6.0, bursts=(1.0, 5.0), video_hole: bool = False, jump: float = 0.0) -> Path:
    """6 s of video (white frames from 5.0 to 5.6 s) with a sound track of 1 kHz bursts (0.2 s) at ``bursts``; no audio
    packets in ``hole`` (no video frames either with ``video_hole``); ``jump``: both tracks' timestamps from 3 s on
    moved this much later (a clock discontinuity)."""
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        v.options = {"preset": "ultrafast", "threads": "1"}
        a = c.add_stream(codec, rate=rate)
        a.layout = "mono"
        shown = [i for i in range(int(seconds * 10)) if not (video_hole and hole and hole[0] <= i / 10 < hole[1])]
        mux_video(c, v, [np.full((48, 64, 3), 255 if 50 <= i < 56 else 0, np.uint8) for i in shown],
                  [i + (int(jump * 10) if i >= 30 else 0) for i in shown])
        t = np.arange(int(seconds * rate)) / rate
        sig = np.zeros_like(t)
        for s in bursts:
            on = (t >= s) & (t < s + 0.2)
            sig[on] = 0.5 * np.sin(2 * np.pi * 1000 * t[on])
        mux_audio(c, a, sig[None], rate, "mono",
                  skip=(lambda start: hole[0] * rate <= start < hole[1] * rate) if hole else None,
                  shift=lambda start: int(jump * rate) if start >= 3 * rate else 0)
    return path


def _onsets(audio: np.ndarray, rate: int = 16000) -> list[float]:
    loud = np.abs(audio) > 0.1
    starts = np.flatnonzero(loud[1:] & ~loud[:-1]) + 1
    out = []
    for s in starts:
        if not out or s / rate - out[-1] > 0.5:
            out.append(s / rate)
    return out


@pytest.mark.parametrize("name, codec", [("gap.mkv", "flac"), ("gap.mp4", "aac")])
def test_a_hole_in_the_sound_keeps_later_sound_at_its_time(tmp_path, name, codec):
    media = decode_video(_tone_track(tmp_path / name, codec, hole=(2.0, 4.0)))
    onsets = _onsets(media.audio)
    assert len(onsets) == 2 and onsets[0] == pytest.approx(1.0, abs=0.03), onsets
    assert onsets[1] == pytest.approx(5.0, abs=0.03), onsets  # it was read at 3.0 s: the hole closed up
    assert media.audio.size == pytest.approx(6.0 * 16000, abs=0.1 * 16000)
    assert np.abs(media.audio[int(2.1 * 16000):int(3.9 * 16000)]).max() == 0.0
    note = next(n for n in media.notes if "hole" in n)
    assert note == ("the sound track has 1 hole in its timestamps where the picture runs on (2.0 s at 2.0 s): "
                    "filled with silence so that later sound stays with its frames")
    whole = decode_video(_tone_track(tmp_path / ("whole" + name), codec, hole=None))
    assert not any("hole" in n for n in whole.notes) and _onsets(whole.audio) == pytest.approx([1.0, 5.0], abs=0.03)


@pytest.mark.parametrize("case", ["both pause", "clock jump"])
def test_sound_that_pauses_with_the_picture_stays_with_its_frames(tmp_path, case):
    """Frames are told to the model by their index, so where the picture has the same hole (a paused recording)
    or both clocks jump (+600 s at 3 s) the sound is joined end to end as the frames are: the beep at 5 s stays with
    the white frames from 5 s, and a jump never becomes 600 s of silence."""
    kw = dict(hole=(2.0, 4.0), video_hole=True) if case == "both pause" else dict(hole=None, jump=600.0)
    media = decode_video(_tone_track(tmp_path / "p.mkv", "flac", **kw))
    white = [i for i, f in zip(media.frame_indices, media.frames) if f.float().mean() > 128]
    assert white
    told = white[0] / media.source_fps  # the time the model is told for the first white frame sampled
    beep = _onsets(media.audio)[-1]
    assert 0 <= told - beep < 0.6, (beep, told)  # the white stretch starts with the beep
    assert not any("hole" in n for n in media.notes)
    assert media.audio.size < 7 * 16000


def _ts_segment(path: Path, rate: int, layout: str) -> Path:
    with av.open(str(path), "w", format="mpegts") as c:
        v = c.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        v.options = {"preset": "ultrafast", "threads": "1"}
        a = c.add_stream("mp2", rate=rate)
        a.layout = layout
        mux_video(c, v, [np.full((48, 64, 3), 60, np.uint8)] * 30)
        channels = 2 if layout == "stereo" else 1
        tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(3 * rate) / rate)
        mux_audio(c, a, np.repeat(tone[None], channels, 0), rate, layout)
    return path


def test_joined_broadcast_segments_whose_sound_format_changes_are_read_whole(tmp_path):
    """Two MPEG-TS recordings joined byte for byte, the first's sound 48 kHz stereo, the second's 44.1 kHz mono:
    the resampler is rebuilt at the change (it refused the second format: "Frame does not match AudioResampler
    setup")."""
    one, two = _ts_segment(tmp_path / "a.ts", 48000, "stereo"), _ts_segment(tmp_path / "b.ts", 44100, "mono")
    joined = tmp_path / "joined.ts"
    joined.write_bytes(one.read_bytes() + two.read_bytes())
    media = decode_video(joined)
    assert media.source_frames == 60
    # the 440 Hz tone throughout, at its level, in both halves
    for lo, hi in ((0.5, 2.5), (3.5, 5.5)):
        part = media.audio[int(lo * 16000):int(hi * 16000)]
        assert np.abs(part).max() == pytest.approx(0.3, abs=0.03), (lo, hi)
        spectrum = np.abs(np.fft.rfft(part))
        assert np.fft.rfftfreq(part.size, 1 / 16000)[spectrum.argmax()] == pytest.approx(440, abs=2)


def test_a_header_counting_a_frame_too_many_is_decoded_not_refused(tmp_path):
    """An AVI whose stream header counts 21 frames where the file holds 20 (PyAV's own AVI writer with an MP3
    track does this; so do recorders that drop frames): "list index out of range" before; now every frame is
    decoded and the difference said."""
    frames = [np.full((48, 64, 3), 10 * i, np.uint8) for i in range(20)]
    path = _video(tmp_path / "m.avi", frames, codec="mpeg4")
    data = bytearray(path.read_bytes())
    at = data.find(b"strh") + 8 + 32  # AVISTREAMHEADER.dwLength
    assert struct.unpack("<I", data[at:at + 4])[0] == 20
    data[at:at + 4] = struct.pack("<I", 21)
    path.write_bytes(bytes(data))
    with av.open(str(path)) as c:
        declared = c.streams.video[0].frames
    assert declared == 21  # the file this test is about
    media = decode_video(path)
    assert media.source_frames == 20
    assert "the header declares 21 frames; 20 were decoded" in media.notes
    levels = [int(f.float().mean()) for f in media.frames]
    assert levels == sorted(levels) and levels[-1] >= 170  # the last sampled frame is the last one written


def test_a_damaged_packet_is_skipped_and_said(tmp_path):
    frames = [np.full((48, 64, 3), 5 * i, np.uint8) for i in range(50)]
    path = _video(tmp_path / "d.mp4", frames)
    with av.open(str(path)) as c:
        target = [p for p in c.demux(video=0) if p.size > 0][20]
        pos, size = target.pos, target.size
    data = bytearray(path.read_bytes())
    for i in range(pos, pos + size):
        data[i] = (i * 131 + 7) & 255
    path.write_bytes(bytes(data))
    media = decode_video(path)
    assert media.source_frames == 49
    assert "1 damaged video packet skipped (the decoder refused it)" in media.notes


def test_the_default_video_stream_is_used_and_said(tmp_path):
    path = tmp_path / "two.mkv"
    with av.open(str(path), "w") as c:
        streams = []
        for (w, h), default in (((64, 48), False), ((160, 96), True)):
            s = c.add_stream("libx264", rate=10)
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            s.options = {"preset": "ultrafast", "threads": "1"}
            s.disposition = disposition(av.stream.Disposition.default) if default else 0
            streams.append(s)
        for i in range(10):
            for s in streams:
                f = av.VideoFrame.from_ndarray(np.zeros((s.height, s.width, 3), np.uint8), format="rgb24")
                f.pts = i
                for pk in s.encode(f):
                    c.mux(pk)
        for s in streams:
            for pk in s.encode(None):
                c.mux(pk)
    media = decode_video(path)
    assert (media.source_width, media.source_height) == (160, 96)
    assert "the file has 2 video streams; using its default, stream #1" in media.notes


def test_a_variable_frame_rate_is_said(tmp_path):
    """5 s at 30 fps then 5 s at 5 fps: sampled by index at the nominal rate (the official reader's rule), so the
    model is told times that differ from the real ones; the note says by how much. A steady clip gets no note."""
    pts = [round(k * 1000 / 30) for k in range(150)] + [5000 + 200 * k for k in range(25)]
    frames = [np.full((48, 64, 3), 100, np.uint8)] * len(pts)
    path = _video(tmp_path / "vfr.mkv", frames, fps=30, pts=pts, time_base=Fraction(1, 1000))
    media = decode_video(path)
    drift = max(abs(t - i / media.source_fps) for t, i in zip(media.frame_times, media.frame_indices))
    assert drift > 1.0
    note = next(n for n in media.notes if n.startswith("the video's frame rate varies"))
    assert note.endswith(f"by up to {drift:.1f} s")
    steady = decode_video(_video(tmp_path / "cfr.mkv", frames, fps=30))
    assert not any("frame rate varies" in n for n in steady.notes)


def test_unreadable_inputs_say_why(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(MediaError, match=r"^.*pipe is not a regular file \(a pipe or a device\); save the video"):
        decode_video(fifo)
    path = _video(tmp_path / "c.mp4", [_corners()] * 4)
    data = bytearray(path.read_bytes())
    at = data.find(b"avc1", data.find(b"stsd"))  # the sample entry (ftyp lists "avc1" as a brand too)
    data[at:at + 4] = b"zzzz"  # a codec no decoder knows
    path.write_bytes(bytes(data))
    with pytest.raises(MediaError, match=r"c\.mp4: no decoder for its video codec"):
        decode_video(path)


def test_a_clip_whose_time_outruns_the_context_is_told_the_fix_that_works(tiny_seats, tmp_path, monkeypatch):
    """Few tokens but a long clip: the position ids follow the clip's real time (25 per second), so fewer frames or
    a lower fps cannot help; the message names --processor-fps official (the processor's default time, as the
    authors' wrappers), and that request then runs."""
    from media_factory import make_clip
    from seats_cli.api import ContextTooLong

    clip = make_clip(tmp_path / "long.mp4", seconds=40, fps=2, audio_rate=None)
    monkeypatch.setattr(tiny_seats.adapter.text_config, "max_position_embeddings", 600)
    with pytest.raises(ContextTooLong) as err:
        tiny_seats.ask(clip, "What?", max_frames=4, max_new_tokens=1)
    message = str(err.value)
    assert message.endswith("but the model reads at most 600; use --processor-fps official (positions in the "
                            "processor's default time, as the authors' wrappers), a shorter clip, a shorter "
                            "question, or --allow-long-context")
    tokens = int(message.split("the LLM input is ")[1].split()[0])
    assert tokens <= 600 < int(message.split("largest position id ")[1].split(")")[0])
    r = tiny_seats.ask(clip, "What?", max_frames=4, max_new_tokens=1, processor_fps="official")
    assert r.context["max_position_id"] < 600
    # already told the processor's time: then fewer frames is the fix (SEATS at 0.1 hands the LLM 221 tokens, the
    # largest position id is 222)
    monkeypatch.setattr(tiny_seats.adapter.text_config, "max_position_embeddings", 222)
    with pytest.raises(ContextTooLong, match=r"use fewer frames \(--max-frames, now 4\), a lower --fps, a shorter "):
        tiny_seats.ask(clip, "What?", max_frames=4, max_new_tokens=1, processor_fps="official", trr=0.1)


@pytest.mark.parametrize("hole, times, silence", [
    ((1.0, 3.0), np.arange(0, 6, 0.1), 2.0),  # the picture runs on at 10 fps: the whole hole
    ((1.0, 1.15), np.arange(0, 6, 0.1), 0.15),  # under two frame intervals: still filled (frames 1.0, 1.1 in it)
    ((1.0, 2.5), np.arange(0, 60, 1.0), 1.5),  # 1 fps: frames 1 and 2 fall in it, capped at the hole
    ((2.0, 4.0), np.r_[np.arange(0, 2, 0.1), np.arange(4, 6, 0.1)], 0.0),  # the picture pauses too: joined
    ((1.0, 2.0), np.arange(3, 9, 0.1), 1.0),  # before the first frame: its real length (trimmed with the lead-in)
    ((3.0, 603.0), np.arange(0, 6, 0.1), 0.0),  # longer than the whole video: a clock jump, joined
])
def test_a_hole_is_filled_as_long_as_the_frames_told_in_it(hole, times, silence):
    """fill_holes on the clock the frames are told by (frame i at i / rate): the silence is the frames inside the
    hole / rate, plus its parts outside the video's span at their real length; what is not filled is joined."""
    from seats_cli.audio_track import fill_holes

    audio = np.ones(10 * 16000, np.float32)
    notes = []
    out, joined = fill_holes(audio, [(16000, *hole)], times, 10.0 if times[1] - times[0] < 1 else 1.0, 16000,
                             10 ** 9, notes, 0.0)
    assert out.size - audio.size == round(silence * 16000)
    assert joined == pytest.approx(hole[1] - hole[0] - silence)
    assert bool(notes) == (silence > 0)
    if silence:
        assert np.all(out[16000:16000 + round(silence * 16000)] == 0) and np.all(out[:16000] == 1)
