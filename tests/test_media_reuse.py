"""Several questions about one video (eval, batch): the file is decoded once, the processor's media tensors and
the encoders' outputs are reused, and every answer equals the one computed from scratch."""

from __future__ import annotations

import pytest
import torch

from media_factory import make_clip
from seats_cli.media import decode_video
from seats_cli.request import RequestOptions

QUESTIONS = ["What moves?", "Which tone plays while the square is shown? A. low B. high", "数字?\nline two", "x"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("reuse") / "clip.mp4", width=160, height=90, seconds=3.0)


@pytest.mark.parametrize("name", ["tiny", "tiny-qwen3"])
def test_another_question_equals_the_processor_from_scratch(seats_cache, clip, name):
    from seats_cli.models import load_model

    ad = load_model(name, device="cpu", dtype="float32", cache_dir=seats_cache)
    media = decode_video(clip, RequestOptions().frame_policy(ad.config))
    ad.prepare(media, QUESTIONS[0])
    for q, system in zip(QUESTIONS[1:], (None, "Be brief.", "")):
        fast = ad.prepare(media, q, system)
        ad._processed = None  # from scratch
        ref = ad.prepare(media, q, system)
        assert set(fast.inputs) == set(ref.inputs)
        for k, v in ref.inputs.items():
            assert torch.equal(fast.inputs[k], v) if torch.is_tensor(v) else fast.inputs[k] == v, k
        assert fast.layout.windows == ref.layout.windows
        ad.prepare(media, QUESTIONS[0])  # back to the first question's cache entry


@pytest.mark.parametrize("name", ["tiny", "tiny-qwen3"])
def test_the_processor_told_a_device_gives_its_own_output(seats_cache, clip, name, monkeypatch):
    """``media.preprocess_on: device`` hands the model's device to the stock video processor and feature extractor
    (on a GPU: the frames go up as uint8, the STFT runs on cuFFT; tests/test_gpu.py compares the values there).
    Here the device is the CPU, so the output must be the processor's own, key by key and bit for bit: the
    keyword arguments reach both parts of both families' processors without changing anything else."""
    import dataclasses

    from seats_cli.models import load_model
    from seats_cli.models.base import OmniAdapter

    ad = load_model(name, device="cpu", dtype="float32", cache_dir=seats_cache)
    media = decode_video(clip, RequestOptions().frame_policy(ad.config))
    assert ad.preprocess_device is None  # a model on the CPU: the processor's default
    ref = ad.prepare(media, QUESTIONS[1]).inputs
    seen = []
    real = type(ad.processor).__call__

    def spy(self, *a, **kw):
        seen.append((kw["videos_kwargs"].get("device"), kw.get("audio_kwargs", {}).get("device")))
        return real(self, *a, **kw)

    monkeypatch.setattr(type(ad.processor), "__call__", spy)
    monkeypatch.setattr(OmniAdapter, "preprocess_device", property(lambda self: "cpu"))
    ad._processed = None
    told = ad.prepare(media, QUESTIONS[1]).inputs
    assert seen == [("cpu", "cpu")]
    assert set(told) == set(ref)
    for k, v in ref.items():
        assert torch.equal(told[k], v) if torch.is_tensor(v) else told[k] == v, k

    # which device: the model's CUDA device under the default, never with preprocess_on: cpu or a CPU model
    monkeypatch.undo()
    on_gpu = object.__new__(type(ad))
    on_gpu.device, on_gpu.config = torch.device("cuda", 1), ad.config
    assert on_gpu.preprocess_device == "cuda:1"
    on_gpu.config = dataclasses.replace(ad.config, media=dataclasses.replace(ad.config.media, preprocess_on="cpu"))
    assert on_gpu.preprocess_device is None
    from seats_cli.config import ConfigError

    with pytest.raises(ConfigError, match=r"^media.preprocess_on must be device or cpu, got 'gpu'$"):
        dataclasses.replace(ad.config.media, preprocess_on="gpu")


def test_reused_answers_equal_fresh_ones(tiny_dir, clip):
    from seats_cli import Seats

    reuse = Seats("tiny", device="cpu", dtype="float32", cache_dir=tiny_dir.parent)
    fresh = Seats("tiny", device="cpu", dtype="float32", cache_dir=tiny_dir.parent, reuse_media=False)
    for i, q in enumerate(QUESTIONS[:3]):
        for method in ("seats", "fastv", "visionzip"):
            a = reuse.ask(clip, q, method=method, trr=0.35, max_new_tokens=3)
            b = fresh.ask(clip, q, method=method, trr=0.35, max_new_tokens=3)
            assert (a.answer, a.layers, a.flops) == (b.answer, b.layers, b.flops)
            assert b.reused == {"decode": False, "encoders": False, "prefetched": False}
            # the first request decodes; later ones reuse the file, and the encoders once per set of signals
            assert a.reused["decode"] == ((i, method) != (0, "seats"))
            # FastV reads no encoder signal: any earlier run of the encoders on this media serves it
            assert a.reused["encoders"] == (i > 0 or method == "fastv")


def test_a_prefetched_file_gives_the_same_answer_and_reports_the_wait(tiny_dir, clip, tmp_path):
    """Seats.prefetch decodes in a background thread; the ask about that file uses the result, reports only the wait
    as its media time, and answers as without it. A bad file fails the ask as a direct decode does."""
    import shutil

    from seats_cli import Seats
    from seats_cli.media import MediaError
    from seats_cli.prefetch import Prefetcher

    s = Seats("tiny", device="cpu", dtype="float32", cache_dir=tiny_dir.parent)
    fresh = Seats("tiny", device="cpu", dtype="float32", cache_dir=tiny_dir.parent)
    assert s.prefetch(clip, max_frames=4) and not s.prefetch(clip, max_frames=4)  # one decode per file and policy
    a = s.ask(clip, QUESTIONS[0], max_frames=4, max_new_tokens=3)
    b = fresh.ask(clip, QUESTIONS[0], max_frames=4, max_new_tokens=3)
    assert a.reused == {"decode": False, "encoders": False, "prefetched": True}
    assert (a.answer, a.layers, a.media) == (b.answer, b.layers, b.media)
    assert a.latency_ms["media"] <= s._decoded[3].decode_ms + 100.0  # the wait (and a thread's hand-over) only
    assert s.prefetch(clip, max_frames=4)  # the last decoded file: the ask reuses it and drops the prefetch
    assert s.ask(clip, QUESTIONS[1], max_frames=4, max_new_tokens=1).reused["decode"] and not len(s._prefetch)

    other = tmp_path / "other.mp4"
    shutil.copy(clip, other)
    assert s.prefetch(other)  # the default policy: another key than max_frames=4
    assert not s.ask(other, QUESTIONS[0], max_frames=4, max_new_tokens=1).reused["prefetched"]
    assert not s.prefetch(tmp_path / "missing.mp4") and not s.prefetch(clip, trr=7)  # the ask will say what is wrong
    copies = [tmp_path / f"c{i}.mp4" for i in range(3)]
    for c in copies:
        shutil.copy(clip, c)
        assert s.prefetch(c)
    assert len(s._prefetch) == Prefetcher.AHEAD  # the oldest waiting decodes are dropped

    s.close()
    assert not len(s._prefetch) and s._prefetch._pool is None

    # A, B, A: the third request's file is prefetched although the first one decoded it
    s.ask(clip, "x", max_new_tokens=1)
    assert s.prefetch(other)
    s.ask(other, "x", max_new_tokens=1)
    assert s.prefetch(clip)
    assert s.ask(clip, "x", max_new_tokens=1).reused["prefetched"]

    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(clip.read_bytes()[:2000])
    with pytest.raises(MediaError) as direct:
        fresh.ask(corrupt, "x")
    assert s.prefetch(corrupt)
    with pytest.raises(MediaError) as ahead:
        s.ask(corrupt, "x")
    assert str(ahead.value) == str(direct.value)


def test_decode_reuses_the_last_file_and_takes_a_prefetch(tiny_dir, clip, tmp_path):
    import shutil

    from seats_cli import Seats

    s = Seats("tiny", device="cpu", dtype="float32", cache_dir=tiny_dir.parent)
    first = s.decode(clip)
    assert s.decode(clip) is first  # the same unchanged file: no second decode
    other = tmp_path / "other.mp4"
    shutil.copy(clip, other)
    assert s.prefetch(other)
    next(iter(s._prefetch._pending.values())).future.result()  # let it finish: nothing is left to wait for
    ahead = s.decode(other)
    assert torch.equal(ahead.frames, first.frames) and not len(s._prefetch)  # the prefetch was used
    assert ahead.decode_ms < s.decode(other).decode_ms  # the caller is charged the wait, not the decode
    s.close()


def test_a_background_decode_leaves_the_callers_torch_threads_alone(clip, monkeypatch):
    """decode_video narrows torch's threads for its resize (to half the cores) and restores them; run in the
    prefetch thread, that must not narrow the thread that runs the model meanwhile or afterwards."""
    import seats_cli.media as media_mod
    from seats_cli.frames import FramePolicy
    from seats_cli.prefetch import Prefetcher

    monkeypatch.setattr(media_mod, "_resize_threads", lambda threads: 1)  # narrow it whatever the machine
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        p = Prefetcher()
        assert p.start(clip, FramePolicy())
        seen = torch.get_num_threads()
        pending = p.take(next(iter(p._pending)))
        assert pending.future.result().frames.shape[0] >= 4
        assert (seen, torch.get_num_threads()) == (2, 2)
        p.close()
    finally:
        torch.set_num_threads(before)


def test_a_stopped_prefetch_ends_at_its_next_frame_and_a_queued_one_never_runs(clip):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from seats_cli.prefetch import Pending, Stopped
    from seats_cli.frames import FramePolicy

    pool = ThreadPoolExecutor(max_workers=1)
    gate = threading.Event()
    pool.submit(gate.wait, 10)  # holds the worker, as an earlier decode would
    underway = Pending.start(pool, str(clip), FramePolicy())
    queued = Pending.start(pool, str(clip), FramePolicy())
    underway.flag.set()  # what stop() does to a decode that already runs (cancel() cannot reach it)
    queued.stop()
    gate.set()
    # it decoded one frame at most (decode_video wraps what its progress callback raised)
    assert str(Stopped()) in str(underway.future.exception(timeout=10))
    assert queued.future.cancelled()
    pool.shutdown()


def test_the_latency_report_covers_the_whole_request(tiny_dir, clip):
    """load (once per process), media, prepare, encode, prefill, decode, total (the parts add up) and decode tok/s."""
    from seats_cli import Seats

    s = Seats("tiny", device="cpu", dtype="float32", cache_dir=tiny_dir.parent)
    first = s.ask(clip, "What moves?", max_new_tokens=4).latency_ms
    second = s.ask(clip, "What sounds?", max_new_tokens=4).latency_ms
    keys = {"load", "media", "prepare", "encode", "prefill", "decode", "total", "decode_tok_per_s"}
    assert set(first) == set(second) == keys
    assert first["load"] > 0 and second["load"] == 0.0  # reported by the first request only
    assert first["media"] > 0 and second["media"] == 0.0  # the second reuses the decoded file
    for lat in (first, second):
        parts = sum(lat[k] for k in ("media", "prepare", "encode", "prefill", "decode"))
        assert parts <= lat["total"] <= parts + 200  # the rest: layout, context check, bookkeeping
        assert lat["decode_tok_per_s"] is None or lat["decode_tok_per_s"] > 0
