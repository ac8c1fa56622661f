"""seats_cli.media: frame/resize policy (vs qwen-omni-utils), decoding real and awkward files, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from seats_cli import keyframe_runs, media
from seats_cli.media import (
    DecodedMedia,
    FramePolicy,
    MediaError,
    decode_video,
    frame_indices,
    plan_frames,
    plan_resize,
)

from media_factory import frame_level, make_clip, make_video_without_frames

import qwen_omni_utils.v2_5.vision_process as ref  # noqa: E402  (the test extra: the reference sizing)

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "sample.mp4"
RATE = 16000


def levels(m: DecodedMedia) -> list[int]:
    """Grey level of each sampled frame (bottom-right patch, away from the red corner)."""
    return [round(v) for v in m.frames[:, :, -8:, -8:].float().mean(dim=(1, 2, 3)).tolist()]


def assert_audio_ok(audio: np.ndarray, samples: int, tol: int = 0) -> None:
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.shape[0] - samples) <= tol, (audio.shape[0], samples)
    assert float(np.abs(audio).max()) <= 1.0
    assert float(np.sqrt(np.mean(audio**2))) > 0.01  # not silent


# ------------------------------------------------------------------ the committed sample

def test_sample_decodes_as_the_policy_says():
    m = decode_video(SAMPLE)
    # 6 s at 25 fps = 150 source frames; 6 s x 2 fps = 12 frames (even, within [4, 128])
    assert (m.source_frames, m.source_fps, m.duration_s) == (150, 25.0, 6.0)
    assert (m.source_width, m.source_height) == (448, 252)
    assert m.frame_indices == [round(i * 149 / 11) for i in range(12)] == frame_indices(150, 12)
    assert m.sample_fps == pytest.approx(12 / 150 * 25)  # = 2.0
    # 448x252 is already 16x9 patches of 28 and 144*28^2 pixels: kept as is (144 tokens per 2-frame grid)
    assert (m.height, m.width) == (252, 448)
    assert m.frames.dtype == torch.uint8 and tuple(m.frames.shape) == (12, 3, 252, 448)
    assert m.frame_times == pytest.approx([i / 25 for i in m.frame_indices])
    # audio: 24 kHz mono AAC -> 16 kHz mono float32, 6 s x 16000 = 96000 samples (+- one video frame)
    assert (m.audio_source_rate, m.audio_source_channels) == (24000, 1)
    assert_audio_ok(m.audio, 96000, tol=RATE // 25)
    assert m.notes == ()


def test_sample_audio_is_aligned_to_its_windows():
    audio = decode_video(SAMPLE).audio
    middle = audio[int(2.3 * RATE) : int(3.7 * RATE)]  # 2-4 s is a pure 660 Hz tone
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(middle.size)))
    assert np.fft.rfftfreq(middle.size, 1 / RATE)[spectrum.argmax()] == pytest.approx(660, abs=2)
    for lo, hi in [(0, 2), (4, 6)]:  # voice (or tone) in the first and last windows
        assert np.sqrt(np.mean(audio[lo * RATE : hi * RATE] ** 2)) > 0.02


# ------------------------------------------------------------------ policy vs the reference

@settings(max_examples=400, deadline=None)
@given(
    total=st.integers(1, 50_000),
    src_fps=st.sampled_from([1, 5, 10, 12.5, 23.976, 24, 25, 29.97, 30, 50, 59.94, 60, 120]),
    fps=st.floats(0.1, 10),
    min_frames=st.integers(1, 16),
    extra=st.integers(0, 800),
)
def test_plan_frames_matches_smart_nframes(total, src_fps, fps, min_frames, extra):
    lowest = math.ceil(min_frames / 2) * 2
    policy = FramePolicy(fps=fps, min_frames=min_frames, max_frames=lowest + extra)
    n = plan_frames(total, src_fps, policy)
    if total >= lowest:
        ele = {"fps": fps, "min_frames": min_frames, "max_frames": lowest + extra}
        assert n == ref.smart_nframes(ele, total_frames=total, video_fps=src_fps)
    else:  # shorter than the minimum: the reference would fail; we repeat frames
        assert n == lowest
    assert n % 2 == 0 and lowest <= n <= max(lowest, policy.max_frames)


def test_plan_frames_examples():
    p = FramePolicy()
    assert plan_frames(150, 25, p) == 12  # 6 s -> 12
    assert plan_frames(4, 10, p) == 4  # 0.4 s -> 0.8, raised to min 4
    assert plan_frames(2, 10, p) == 4  # fewer frames than the minimum: repeats
    assert plan_frames(3000, 25, p) == 128  # 120 s -> 240, capped
    assert plan_frames(3000, 25, FramePolicy(max_frames=9)) == 8  # rounded down to even
    assert plan_frames(101, 1, FramePolicy(fps=2)) == 100  # never more than the source frames


@settings(max_examples=150, deadline=None)
@given(total=st.integers(1, 5000), n=st.integers(1, 400))
def test_frame_indices_match_reference_linspace(total, n):
    got = frame_indices(total, n)
    assert got == torch.linspace(0, total - 1, n).round().long().tolist()
    assert got[0] == 0 and got == sorted(got) and (n == 1 or got[-1] == total - 1)


def _ref_resize(h, w, n, p: FramePolicy):
    """fetch_video's resize for a (T=n) video given min/max/total pixels (qwen-omni-utils)."""
    frame_max = ref.VIDEO_MAX_TOKEN_NUM * 28 * 28
    cap = max(min(frame_max, p.total_pixels / n * ref.FRAME_FACTOR), int(p.min_pixels * 1.05))
    cap = min(p.max_pixels, cap)  # the caller's max_pixels can only lower it
    return ref.smart_resize(h, w, factor=28, min_pixels=p.min_pixels, max_pixels=cap)


@settings(max_examples=400, deadline=None)
@given(
    h=st.integers(8, 4000),
    w=st.integers(8, 4000),
    n=st.integers(1, 1024).map(lambda k: 2 * k),
    budget=st.sampled_from([24576, 16384, 8192, 2048]),
    max_tokens=st.sampled_from([144, 256, 768]),
    sizing=st.sampled_from(["processor", "preset"]),
)
def test_plan_resize_matches_smart_resize(h, w, n, budget, max_tokens, sizing):
    """qwen-omni-utils' sizing, then (frame_sizing "processor") the stock video processor's own resize rule
    with its class-level bounds 128..768 x 28^2, exactly what the authors' pipeline applied to the frames."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as processor_resize

    assume(max(h, w) / min(h, w) <= 200)  # beyond that both refuse
    p = FramePolicy(max_pixels=max_tokens * 28 * 28, total_pixels=budget * 28 * 28, frame_sizing=sizing)
    got = plan_resize(h, w, n, p)
    ref = _ref_resize(h, w, n, p)
    if min(ref) > 0 and sizing == "processor":
        assume(max(ref) / min(ref) <= 200)
        ref = processor_resize(*ref, factor=28, min_pixels=128 * 28 * 28, max_pixels=768 * 28 * 28)
    if min(ref) == 0:
        # extreme aspect ratios: the reference floors the short side to 0 (an unusable frame); we keep one
        # factor's worth instead and agree on the long side
        assert (min(got), max(got)) == (28, max(ref))
    else:
        assert got == ref
    assert got[0] % 28 == 0 and got[1] % 28 == 0 and min(got) >= 28


@pytest.mark.parametrize(
    "hw, expected",
    [((720, 1280), (252, 448)), ((252, 448), (252, 448)), ((1080, 1920), (252, 448)), ((180, 320), (252, 448)),
     ((320, 180), (448, 252)), ((201, 333), (252, 420)), ((480, 640), (280, 364))],
)
def test_plan_resize_examples(hw, expected):
    assert plan_resize(*hw, 12, FramePolicy()) == expected


@pytest.mark.parametrize("sizing, expected", [("processor", (252, 448)), ("preset", (224, 420))])
def test_768_frames_of_16_9_are_upscaled_by_the_processor_bounds(sizing, expected):
    # qwen-omni-utils shares 24576*28^2 pixels over 768 frames -> 224x420 (120 tokens per grid); the stock
    # processor's minimum 128*28^2 brings that back to 252x448 (144 per grid), what the paper's model saw
    assert plan_resize(1080, 1920, 768, FramePolicy(max_frames=768, frame_sizing=sizing)) == expected


def test_pixel_cap_shrinks_with_many_frames():
    p = FramePolicy(max_frames=768)
    # 24576 tokens * 2 / 144 = 341 frames fit the full 144-token cap; 768 frames get 64 tokens each
    # -> raised to the floor int(128 * 28^2 * 1.05)
    assert media.frame_pixel_cap(340, p) == p.max_pixels
    assert media.frame_pixel_cap(768, p) == int(p.min_pixels * 1.05)


@pytest.mark.parametrize(
    "kwargs, words",
    [({"fps": 0}, "--fps must be a finite number > 0 (got 0)"), ({"fps": -1.0}, "--fps must be a finite number > 0"),
     ({"fps": float("nan")}, "--fps"), ({"fps": float("inf")}, "--fps must be a finite number > 0 (got inf)"),
     ({"fps": "2"}, "--fps must be a finite number > 0 (got '2')"),
     ({"max_frames": 2.5}, "--max-frames must be a whole number (got 2.5)"),
     ({"max_frames": 3}, "--max-frames must be at least 4"), ({"min_frames": 0}, "min_frames"),
     ({"min_pixels": 10, "max_pixels": 5}, "max_pixels"), ({"max_audio_seconds": 0}, "max_audio_seconds")],
)
def test_policy_validation(kwargs, words):
    with pytest.raises(MediaError) as e:
        FramePolicy(**kwargs)
    assert words in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------ awkward but valid files

CLIPS = {  # name: (factory kwargs, expected source frames, expected sampled frames)
    "mono16k.mp4": ({}, 10, 4),
    "stereo44k.mp4": ({"audio_rate": 44100, "audio_channels": 2}, 10, 4),
    "mono8k.mov": ({"audio_rate": 8000}, 10, 4),
    "stereo48k.mkv": ({"audio_rate": 48000, "audio_channels": 2, "seconds": 3}, 30, 6),
    "vp9opus.webm": ({"audio_rate": 48000, "audio_channels": 2, "seconds": 2}, 20, 4),
    "stereo44k.ts": ({"audio_rate": 44100, "audio_channels": 2, "seconds": 2}, 20, 4),  # pts start > 0
    "silent.mp4": ({"audio_rate": None}, 10, 4),
    "short4.mp4": ({"seconds": 0.4}, 4, 4),
    "short2.mkv": ({"seconds": 0.2}, 2, 4),
    "odd.mov": ({"width": 333, "height": 201}, 10, 4),
    "portrait.mp4": ({"width": 180, "height": 320, "fps": 25, "seconds": 1}, 25, 4),
    "vfr.mkv": ({"frame_durations": [0.05, 0.15] * 5}, 10, 4),
    "vfr.mp4": ({"frame_durations": [0.05, 0.15] * 5}, 10, 4),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return {name: make_clip(d / name, **kw) for name, (kw, _, _) in CLIPS.items()}


@pytest.mark.parametrize("name", list(CLIPS))
def test_decodes_awkward_clips(clips, name):
    kw, total, n = CLIPS[name]
    m = decode_video(clips[name])
    assert m.source_frames == total and len(m.frame_indices) == n == m.frames.shape[0]
    assert m.frame_indices == frame_indices(total, n)
    width, height = kw.get("width", 64), kw.get("height", 48)
    assert (m.source_width, m.source_height) == (width, height)
    assert (m.height, m.width) == plan_resize(height, width, n, FramePolicy())
    assert tuple(m.frames.shape[1:]) == (3, m.height, m.width) and m.frames.dtype == torch.uint8
    # each sampled frame is the source frame it claims to be
    assert levels(m) == pytest.approx([frame_level(i) for i in m.frame_indices], abs=3)
    rate = kw.get("audio_rate", 16000)
    if rate is None:
        assert m.audio is None and m.audio_source_rate is None and "no audio track" in m.notes
    else:
        assert (m.audio_source_rate, m.audio_source_channels) == (rate, kw.get("audio_channels", 1))
        frame_samples = int(RATE / (total / m.duration_s))
        assert_audio_ok(m.audio, round(m.duration_s * RATE), tol=frame_samples)
    json.dumps(m.to_dict())


def tone_amplitudes(audio: np.ndarray, rate: int, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies, amplitudes) of a Hann-windowed FFT of `seconds` of `audio` taken from its middle (away from
    the codec's start/end transients); a sine of amplitude A on an exact bin reads A."""
    n = int(seconds * rate)
    start = (audio.shape[0] - n) // 2
    window = np.hanning(n)
    spectrum = np.abs(np.fft.rfft(audio[start : start + n] * window)) * 2 / window.sum()
    return np.fft.rfftfreq(n, 1 / rate), spectrum


@pytest.mark.parametrize("name", [n for n, (kw, _, _) in CLIPS.items()
                                  if kw.get("audio_rate", 16000) and kw.get("seconds", 1) >= 1])
def test_channels_are_averaged_to_mono_at_16k(clips, name):
    # media_factory writes a 0.5-amplitude sine per channel: 440 Hz on the left, 880 Hz on the right. The mono
    # track is the mean over channels, 0.25 sin(440) + 0.25 sin(880) for stereo (half a mono tone of the
    # generated amplitude), 0.5 sin(440) for mono; resampled to 16 kHz, the rate the Qwen audio encoders take
    # (a wrong rate would move the peaks). Exact bins: 1 Hz (1 s window) or 2 Hz (0.5 s for the 1-s clips).
    kw = CLIPS[name][0]
    m = decode_video(clips[name])
    assert m.audio_sample_rate == 16000 == RATE and m.to_dict()["audio_sample_rate"] == 16000
    freqs, amp = tone_amplitudes(m.audio, m.audio_sample_rate, 1.0 if m.duration_s >= 2 else 0.5)
    at = {hz: float(amp[np.argmin(np.abs(freqs - hz))]) for hz in (440, 880)}
    if kw.get("audio_channels", 1) == 2:
        assert at[440] == pytest.approx(0.25, rel=0.1) and at[880] == pytest.approx(0.25, rel=0.1), at
        assert at[440] == pytest.approx(at[880], rel=0.1), at  # both channels, equally weighted
    else:
        assert at[440] == pytest.approx(0.5, rel=0.1) and at[880] < 0.01, at
    # nothing else: all energy sits within 4 Hz of the generated tones (the Hann main lobe)
    elsewhere = (np.abs(freqs - 440) > 4) & (np.abs(freqs - 880) > 4)
    assert float(amp[elsewhere].max()) < 0.02


def test_variable_frame_rate_times_come_from_pts(clips):
    m = decode_video(clips["vfr.mkv"])
    starts = np.concatenate([[0], np.cumsum([0.05, 0.15] * 5)])  # frame i starts at starts[i]
    assert m.frame_indices == [0, 3, 6, 9]
    assert m.frame_times == pytest.approx([starts[i] for i in m.frame_indices])


def test_short_clip_repeats_frames(clips):
    m = decode_video(clips["short2.mkv"])  # 2 frames, policy minimum 4
    assert m.frame_indices == [0, 0, 1, 1]
    assert torch.equal(m.frames[0], m.frames[1]) and not torch.equal(m.frames[1], m.frames[2])
    assert any("repeats" in note for note in m.notes)
    assert m.audio is not None and abs(m.audio.shape[0] - 3200) <= 640  # 0.2 s of audio


def test_max_frames_caps_and_notes(tmp_path):
    path = make_clip(tmp_path / "long.mp4", seconds=10, fps=10)  # 100 frames, 20 wanted at 2 fps
    calls = []
    m = decode_video(path, FramePolicy(max_frames=8), progress=lambda i, total: calls.append((i, total)))
    assert m.frame_indices == frame_indices(100, 8) and m.frames.shape[0] == 8
    assert m.sample_fps == pytest.approx(8 / 100 * 10)
    assert any("--max-frames" in note for note in m.notes)
    assert calls[-1] == (100, 100)
    assert m.audio.shape[0] == 10 * RATE


def test_audio_cap(tmp_path):
    m = decode_video(make_clip(tmp_path / "two.mkv", seconds=2), FramePolicy(max_audio_seconds=1.0))
    assert m.audio.shape[0] == RATE
    assert any("audio capped at 1 s" in note for note in m.notes)


def test_late_audio_is_padded_to_stay_aligned(tmp_path):
    # 2 s of sound starting 0.5 s into a 2-s video: padded with 0.5 s of silence, and its last 0.5 s (past the
    # video) kept as qwen-omni-utils would, with a note
    m = decode_video(make_clip(tmp_path / "late.mkv", seconds=2, audio_offset=0.5))
    assert m.audio.shape[0] == int(2.5 * RATE)
    assert np.abs(m.audio[: int(0.49 * RATE)]).max() < 1e-3 < np.abs(m.audio[int(0.51 * RATE) :]).max()
    assert any(n.startswith("the sound track runs past the video (2.0 s): 2.5 s of audio kept") for n in m.notes)


def test_non_ascii_path(tmp_path):
    path = make_clip(tmp_path / "vidéo 日本.mp4")
    m = decode_video(path)
    assert m.path == str(path) and m.frames.shape[0] == 4 and m.audio is not None


def test_only_sampled_frames_are_converted(tmp_path, monkeypatch):
    path = make_clip(tmp_path / "many.mp4", seconds=6, fps=25)  # 150 frames, 12 kept
    converted = []
    real = media._resize
    monkeypatch.setattr(media, "_resize", lambda rgb, size: converted.append(1) or real(rgb, size))
    assert decode_video(path).frames.shape[0] == 12 and len(converted) == 12


def test_counting_path_equals_header_path(clips):
    # files whose header has no frame count are decoded by counting packets first; same result
    path = clips["stereo44k.mp4"]
    a = decode_video(path)
    b = media._decode(Path(path), FramePolicy(), None, count_first=True)
    assert a.frame_indices == b.frame_indices and torch.equal(a.frames, b.frames)
    assert np.array_equal(a.audio, b.audio) and a.frame_times == b.frame_times


# ------------------------------------------------------------------ bad input

def _truncated(tmp_path):
    data = make_clip(tmp_path / "whole.mp4").read_bytes()
    return _write(tmp_path / "truncated.mp4", data[: len(data) // 2])


def _corrupt(tmp_path):
    data = bytearray(make_clip(tmp_path / "whole.mp4").read_bytes())
    for i in range(2000, len(data) - 2000):  # keep the header, scramble the payload
        data[i] = (i * 7) & 255
    return _write(tmp_path / "corrupt.mp4", bytes(data))


def _write(path, data):
    path.write_bytes(data)
    return path


BAD = {
    "missing": (lambda d: d / "nope.mp4", "no such file"),
    "directory": (lambda d: d, "is a directory"),
    "empty": (lambda d: _write(d / "empty.mp4", b""), "is empty"),
    "text": (lambda d: _write(d / "notes.txt", b"hello world\n" * 50), "not a media file"),
    "text named mp4": (lambda d: _write(d / "fake.mp4", b"hello world\n" * 50), "not a readable media file"),
    "binary junk": (lambda d: _write(d / "junk.bin", bytes(range(256)) * 40), "not a media file"),
    "truncated": (_truncated, "truncated.mp4"),
    "corrupt": (_corrupt, "cannot decode"),
    "audio only": (lambda d: make_clip(d / "song.m4a", video=False), "has no video stream"),
    "audio with cover art": (lambda d: make_clip(d / "song.mp3", video=False, cover_art=True), "has no video stream"),
    "no video frames": (lambda d: make_video_without_frames(d / "novideo.mkv"), "no decodable frames"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_gives_one_clear_line(tmp_path, case):
    build, words = BAD[case]
    path = build(tmp_path)
    with pytest.raises(MediaError) as e:
        decode_video(path)
    msg = str(e.value)
    assert words in msg and "\n" not in msg and Path(path).name in msg
    assert isinstance(e.value, ValueError)


# ------------------------------------------------------------------ decoding only what is needed (issue 12 item 4)

def test_plan_runs_examples():
    plan = keyframe_runs.plan_runs
    # three 4-frame GOPs, no reordering: each wanted frame is decoded from its GOP's keyframe
    pts, keys = list(range(12)), [i % 4 == 0 for i in range(12)]
    assert plan(pts, keys, [0, 6, 11]) == [(0, 0, (0,)), (4, 6, (6,)), (8, 11, (11,))]
    assert plan(pts, keys, [0, 1, 4]) == [(0, 1, (0, 1)), (4, 4, (4,))]
    assert plan(pts, keys, [0, 3, 4]) == [(0, 4, (0, 3, 4))]  # touching runs merge
    assert plan(pts, keys, [0, 0, 5, 5]) == [(0, 0, (0,)), (4, 5, (5,))]  # repeats
    # B-frames: packets in file order with pts 0 2 1 | 4 3 5; the frame shown 4th (pts 3) is stored after the
    # second keyframe and predicted from the first GOP (an open GOP): its run starts at the first keyframe
    pts, keys = [0, 2, 1, 4, 3, 5], [True, False, False, True, False, False]
    assert plan(pts, keys, [3]) == [(0, 4, (3,))]
    assert plan(pts, keys, [2, 5]) == [(0, 1, (2,)), (3, 5, (5,))]  # pts 2 is the second packet
    assert plan(pts, keys, [1, 4]) == [(0, 3, (1, 4))]  # pts 1 is the third packet: touches the second GOP
    # what the packets cannot tell: no run plan
    assert plan([0, None, 2], [True, False, False], [0]) is None
    assert plan([0, 1, 1], [True, False, False], [0]) is None
    assert plan([0, 1, 2], [False, True, False], [0]) is None  # frame 0 has no keyframe before it
    assert plan([0, 4, 2], [True, True, True], [0]) is None  # keyframes out of pts order
    assert plan([], [], [0]) is None


def test_h264_droppable_reads_nal_ref_idc():
    from types import SimpleNamespace

    ctx = SimpleNamespace(name="h264", extradata=bytes([1, 0x64, 0, 0x1F, 0xFF, 0xE1, 0]))  # avcC, 4-byte lengths

    def nal(header: int, payload: bytes = b"\x88\x84") -> bytes:
        return (1 + len(payload)).to_bytes(4, "big") + bytes([header]) + payload

    drop = keyframe_runs.h264_droppable(ctx)
    assert drop(nal(0x01)) is True  # non-IDR slice, nal_ref_idc 0
    assert drop(nal(0x06) + nal(0x01) + nal(0x01)) is True  # SEI + two non-reference slices
    assert drop(nal(0x21)) is False and drop(nal(0x41)) is False  # nal_ref_idc 1, 2
    assert drop(nal(0x65)) is False  # IDR
    assert drop(nal(0x01) + nal(0x21)) is False  # one reference slice in the packet: kept
    assert drop(nal(0x06)) is False and drop(b"") is False  # no slice at all
    assert drop(nal(0x14)) is False and drop(nal(0x0E) + nal(0x01)) is False  # MVC / SVC: kept
    assert keyframe_runs.h264_droppable(SimpleNamespace(name="hevc", extradata=ctx.extradata)) is None
    assert keyframe_runs.h264_droppable(SimpleNamespace(name="h264", extradata=b"\x00\x00\x00\x01\x67")) is None  # Annex B
    assert keyframe_runs.h264_droppable(SimpleNamespace(name="h264", extradata=None)) is None


def _naive_frames(path, policy: FramePolicy):
    """The official reading, by brute force: every frame decoded in order and converted to RGB, the sampled ones
    taken from the (T, C, H, W) view and resized together (torchvision, as qwen-omni-utils does)."""
    import av
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        fps = float(stream.average_rate)
        frames = [(f.to_ndarray(format="rgb24"), float(f.pts * f.time_base)) for f in c.decode(stream)]
    idx = frame_indices(len(frames), plan_frames(len(frames), fps, policy))
    video = torch.from_numpy(np.stack([frames[i][0] for i in idx])).permute(0, 3, 1, 2)
    h, w = plan_resize(video.shape[2], video.shape[3], len(idx), policy)
    resized = F.resize(video, [h, w], interpolation=InterpolationMode.BICUBIC, antialias=True)
    return idx, resized, [frames[i][1] - frames[0][1] for i in idx], len(frames)


@pytest.mark.parametrize("gop", [25, None])
def test_decoding_only_keyframe_runs_gives_the_naive_frames(tmp_path, gop):
    # textured, panning 320x180 at 25 fps, x264 veryfast (B-frames, half of them non-reference), 16 s: 400 frames,
    # 32 sampled; with a 1 s GOP whole GOPs and the tail of each are skipped, with x264's 250 only B-frames
    path = make_clip(tmp_path / "pan.mp4", width=320, height=180, fps=25, seconds=16, pattern="moving",
                     video_options={"preset": "veryfast"}, gop=gop)
    policy = FramePolicy()
    m = decode_video(path, policy)
    idx, frames, times, total = _naive_frames(path, policy)
    assert (m.source_frames, m.frame_indices) == (total, idx) and total == 400 and len(idx) == 32
    assert m.frames.dtype == torch.uint8 and torch.equal(m.frames, frames)  # bit-identical
    assert m.frame_times == pytest.approx(times, abs=1e-9)
    assert m.frames_decoded < (300 if gop else 360)  # not every frame
    # the same record as decoding every frame (the counting path)
    every = media._decode(Path(path), policy, None, count_first=True)
    assert every.frames_decoded == 400 and torch.equal(every.frames, m.frames)
    assert every.to_dict() == m.to_dict() and np.array_equal(every.audio, m.audio)


def test_keyframe_runs_fall_back_to_decoding_everything(tmp_path, monkeypatch):
    path = make_clip(tmp_path / "pan.mp4", width=160, height=90, fps=25, seconds=4, pattern="moving", gop=10)
    runs = decode_video(path)
    assert runs.frames_decoded < runs.source_frames == 100
    monkeypatch.setattr(media, "decode_runs", lambda *a: False)  # the file disagrees with its packet list
    every = decode_video(path)
    assert every.frames_decoded == 100 and torch.equal(every.frames, runs.frames)
    assert every.to_dict() == runs.to_dict()


def test_resize_equals_the_official_pipelines():
    # the official pipeline resizes (C, H, W) views of (H, W, C) frames with torchvision; so does _resize, one frame
    # at a time (a planar copy first gives the same values but was no faster on one thread: not done)
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    rng = np.random.default_rng(0)
    for (h, w), size in [((720, 1280), (252, 448)), ((1080, 1920), (336, 588)), ((48, 64), (280, 364)),
                         ((201, 333), (196, 336)), ((320, 180), (448, 252))]:
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        official = F.resize(torch.from_numpy(rgb).permute(2, 0, 1), list(size),
                            interpolation=InterpolationMode.BICUBIC, antialias=True)
        assert torch.equal(media._resize(rgb, size), official)


def test_decode_uses_half_the_cores_for_torch_and_restores(monkeypatch, tmp_path):
    monkeypatch.setattr(media.os, "sched_getaffinity", lambda pid: set(range(2)), raising=False)
    assert media._resize_threads(2) == 1 and media._resize_threads(1) == 1
    monkeypatch.setattr(media.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert media._resize_threads(16) == 8 and media._resize_threads(3) == 3
    monkeypatch.setattr(media.os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    before = torch.get_num_threads()
    seen = []
    try:
        torch.set_num_threads(4)
        decode_video(make_clip(tmp_path / "c.mp4"), progress=lambda i, n: seen.append(torch.get_num_threads()))
        assert set(seen) == {2} and torch.get_num_threads() == 4
        with pytest.raises(MediaError):
            decode_video(tmp_path / "missing.mp4")
        assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)
