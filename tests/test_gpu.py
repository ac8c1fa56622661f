"""GPU tier (``-m gpu``; CI runs without a GPU and deselects these). Same properties as the CPU tests, on
CUDA: the engine equals the stock model, SEATS equals the masked reference, bf16 and flash-attention run.

``SEATS_GPU_TIER_DEVICE=cpu`` runs the same test bodies on the CPU (the CUDA graph replaced by the same static step
run eagerly; the full-size 7B, marked cuda_only, deselected): the GPU check's dry run does that, so a test that only
a GPU would run cannot rot unseen (the first GPU run found two such)."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

from seats_cli.request import frame_policy
from seats_cli import transfer
from seats_cli.engine import decode, prefill
from seats_cli.media import decode_video
from seats_cli.methods import build_pruner
from seats_cli.models import load_model
from reference import check_stage2_keeps_window_tops, masked_reference_logits, seats_counts_by_the_rule

pytestmark = pytest.mark.gpu


DEVICE = os.environ.get("SEATS_GPU_TIER_DEVICE", "cuda")
GRAPH = "cuda-graph" if DEVICE == "cuda" else "static"  # the captured step, or the same step run eagerly


@pytest.fixture(scope="module")
def cuda():
    if DEVICE == "cuda" and not torch.cuda.is_available():
        pytest.fail("-m gpu needs a CUDA device (SEATS_GPU_TIER_DEVICE=cpu runs the tier's bodies on the CPU)")
    return DEVICE


def _case(tiny_dir, sample_path, dtype, attn="sdpa"):
    ad = load_model("tiny", device=DEVICE, dtype=dtype, attn_implementation=attn, cache_dir=tiny_dir.parent)
    request = ad.prepare(decode_video(sample_path, frame_policy(ad.config)), "What is moving?")
    return ad, request


def test_engine_equals_stock_on_cuda_fp32(cuda, tiny_dir, sample_path):
    ad, request = _case(tiny_dir, sample_path, "float32")
    encoded = ad.encode(request)
    res = prefill(ad, encoded, request.layout, return_hidden=True)
    with torch.no_grad():
        stock = ad.model(**request.inputs, use_audio_in_video=request.use_audio_in_video).logits
    assert (ad.model.lm_head(res.hidden) - stock).abs().max().item() <= 1e-4
    tokens = decode(ad, res, encoded.next_position, max_new_tokens=8, eos_token_ids=[]).tokens
    with torch.no_grad():
        gen = ad.model.generate(**request.inputs, use_audio_in_video=request.use_audio_in_video, max_new_tokens=8,
                                do_sample=False, eos_token_id=None)
    assert tokens == gen[0, request.inputs["input_ids"].shape[1]:].tolist()


@pytest.mark.parametrize("trr", [0.35, 0.1])
def test_seats_equals_masked_reference_on_cuda_fp32(cuda, tiny_dir, sample_path, trr, monkeypatch):
    """The CPU suite's exactness on the device: SEATS's last logits equal the stock layers run with each dropped
    token masked from its drop layer on, within 1e-4 in fp32 (a row given another's rotary moves them by more than
    1e-3 on this model), and each Stage II drop keeps every window's best-scored rows by the device's own scores."""
    ad, request = _case(tiny_dir, sample_path, "float32")
    pruner, plan = build_pruner("seats", ad.config, request.layout, trr=trr)
    encoded = ad.encode(request, saliency=plan.saliency_span)
    scores, real = [], ad.query_scores

    def spy(*args):
        out = real(*args)
        scores.append(out.clone())
        return out

    monkeypatch.setattr(ad, "query_scores", spy)
    res = prefill(ad, encoded, request.layout, pruner)
    ref = masked_reference_logits(ad, encoded, res.layer_live)
    assert (res.logits - ref).abs().max().item() <= 1e-4
    check_stage2_keeps_window_tops(request.layout, res.layer_live, scores, ad.config.seats.prune_before)


@pytest.mark.parametrize("attn", ["sdpa", "flash_attention_2"])
def test_seats_equals_masked_reference_on_cuda_bf16(cuda, tiny_dir, sample_path, attn):
    """In bf16 the engine's logits sit within twice bf16's own rounding noise (the masked reference in bf16 vs in
    fp32) of the masked reference: a bound on the bf16 kernels (sdpa, flash-attention) with packed masks; which
    tokens are kept is checked in fp32 above. Where flash-attn is not installed, asking for it is a clear load
    error naming the missing package (the log says the flash-attention path itself was not run)."""
    if attn == "flash_attention_2" and not importlib.util.find_spec("flash_attn"):
        from seats_cli.models.loading import ModelLoadError

        with pytest.raises(ModelLoadError, match="FlashAttention2 .*not.* installed"):
            _case(tiny_dir, sample_path, "bfloat16", attn)
        print("flash-attn is not installed: the flash-attention numbers were not checked")
        return
    ad, request = _case(tiny_dir, sample_path, "bfloat16", attn)
    pruner, plan = build_pruner("seats", ad.config, request.layout, trr=0.1)
    encoded = ad.encode(request, saliency=plan.saliency_span)
    res = prefill(ad, encoded, request.layout, pruner)
    ref = masked_reference_logits(ad, encoded, res.layer_live).float()
    ad32, request32 = _case(tiny_dir, sample_path, "float32")
    ref32 = masked_reference_logits(ad32, ad32.encode(request32, saliency=plan.saliency_span), res.layer_live).float()
    noise = (ref - ref32).abs().max().item()
    assert 0 < noise < 0.5
    assert (res.logits.float() - ref).abs().max().item() <= 2 * noise


def test_pruned_prefill_waits_for_the_device_only_at_its_stage2_reads(cuda, tiny_dir, sample_path):
    """The host waits for the GPU in a SEATS prefill exactly once more per Stage II score read than in the full
    prefill (seats_cli.transfer): Stage I's choice and every index sent up go without a wait. On the CPU the
    reads are counted (3: the tiny config's drops before layers 16, 18 and 20), the waits cannot be."""
    ad, request = _case(tiny_dir, sample_path, "bfloat16")
    pruner, plan = build_pruner("seats", ad.config, request.layout, trr=0.1)
    encoded = ad.encode(request, saliency=plan.saliency_span)
    waits = {}
    for name, method in (("full", None), ("seats", pruner)):
        prefill(ad, encoded, request.layout, method)  # warm-up: allocations and pinned blocks
        reads = transfer.COUNTS["to_host"]
        _, waits[name] = transfer.count_host_waits(lambda: prefill(ad, encoded, request.layout, method))
        reads = transfer.COUNTS["to_host"] - reads
    assert reads == 3
    if DEVICE == "cuda":
        assert waits["full"] <= 2, waits  # at most the prefill's own two synchronisations around its timing
        assert waits["seats"] - waits["full"] == reads, waits


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cuda_graph_decode_equals_stock_generate(cuda, tiny_dir, sample_path, dtype):
    """The captured decode step gives the stock generate()'s greedy tokens, and the in-place loop's."""
    ad, request = _case(tiny_dir, sample_path, dtype)
    encoded = ad.encode(request)
    with torch.no_grad():
        gen = ad.model.generate(**request.inputs, use_audio_in_video=request.use_audio_in_video, max_new_tokens=12,
                                do_sample=False, eos_token_id=None)
    stock = gen[0, request.inputs["input_ids"].shape[1]:].tolist()
    runs = {}
    for mode in (GRAPH, "buffers", "dynamic"):
        res = prefill(ad, encoded, request.layout)
        out = decode(ad, res, encoded.next_position, max_new_tokens=12, eos_token_ids=[], mode=mode)
        assert out.mode == mode and out.note is None
        runs[mode] = out.tokens
    assert runs[GRAPH] == runs["buffers"] == runs["dynamic"]
    if dtype == "float32":
        assert runs[GRAPH] == stock


def test_seats_decode_under_per_layer_kv_with_a_graph(cuda, tiny_dir, sample_path):
    """Layers of different cache lengths (per_layer) each get their own mask inside the graph."""
    ad, request = _case(tiny_dir, sample_path, "float32")
    encoded = ad.encode(request, saliency=build_pruner("seats", ad.config, request.layout, trr=0.1)[1].saliency_span)
    runs = {}
    for mode in (GRAPH, "dynamic"):
        pruner, _ = build_pruner("seats", ad.config, request.layout, trr=0.1)
        res = prefill(ad, encoded, request.layout, pruner, kv_policy="per_layer")
        out = decode(ad, res, encoded.next_position, max_new_tokens=12, eos_token_ids=[], mode=mode)
        assert out.mode == mode and out.note is None  # the graph ran (a failed capture falls back to buffers)
        runs[mode] = out.tokens
    assert runs[GRAPH] == runs["dynamic"]


def test_batched_encoder_windows_equal_the_stock_loops_on_the_device(cuda, tiny_dir, sample_path):
    """Both towers' packed windows in batched sdpa calls (seats_cli.models.attention) give the stock per-window
    loops' features and Stage I saliency on this device's attention kernels, in fp32."""
    from seats_cli.models.attention import VARLEN_ATTENTION

    ad, request = _case(tiny_dir, sample_path, "float32")
    assert ad.encoder_varlen == ("vision", "audio")
    inner = ad.model.model
    towers = (inner.visual.config, inner.audio_tower.config)
    ours = ad.encode_media(request, saliency="official")
    for cfg in towers:
        cfg._attn_implementation = "sdpa"
    try:
        stock = ad.encode_media(request, saliency="official")
    finally:
        for cfg in towers:
            cfg._attn_implementation = VARLEN_ATTENTION
    for name in ("audio", "video"):
        a, b = getattr(ours, name), getattr(stock, name)
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-4, rtol=1e-4), (name, (a - b).abs().max())
    assert set(ours.signals) == set(stock.signals) >= {"video", "audio"}
    for key, value in ours.signals.items():
        assert torch.allclose(value, stock.signals[key], atol=1e-4, rtol=1e-4), key


def test_the_processor_on_the_device_equals_it_on_the_cpu(cuda, tiny_dir, sample_path, monkeypatch):
    """``media.preprocess_on: device`` (the default) runs the stock processor's rescale, normalise, patchify and
    log-mel on the model's device: the same token ids and pixel values bit for bit (elementwise IEEE arithmetic), the
    log-mel features within 1e-4 of the CPU's (cuFFT vs the CPU's FFT; transformers quotes 1e-5)."""
    from seats_cli.models.base import OmniAdapter

    ad = load_model("tiny", device=DEVICE, dtype="float32", cache_dir=tiny_dir.parent)
    media = decode_video(sample_path, frame_policy(ad.config))
    assert ad.preprocess_device == (str(ad.device) if DEVICE == "cuda" else None)
    there = ad.prepare(media, "What is moving?").inputs
    monkeypatch.setattr(OmniAdapter, "preprocess_device", property(lambda self: None))
    ad._processed = None
    here = ad.prepare(media, "What is moving?").inputs
    assert set(there) == set(here)
    for key, value in here.items():
        if key == "input_features":
            assert there[key].shape == value.shape and (there[key] - value).abs().max().item() <= 1e-4
        elif torch.is_tensor(value):
            assert torch.equal(there[key], value), key
        else:
            assert there[key] == value, key


@pytest.mark.cuda_only  # the dry run deselects it (tests/test_thinker7b_build.py checks its build on meta)
def test_full_size_7b_thinker_runs_a_128_frame_request_end_to_end(cuda, tmp_path):
    """Qwen2.5-Omni-7B's thinker at full size (random bf16 weights, full-size encoders) on a 64 s 720p clip: 128
    frames, the layer counts SEATS planned, the graph decode, and the peak memory (bench_e2e.py times it)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_e2e import build
    from media_factory import make_clip

    from seats_cli.methods.seats import SeatsPlan

    clip = make_clip(tmp_path / "clip.mp4", width=1280, height=720, fps=25, seconds=64)
    seats, _ = build("gpu", "sdpa")
    weights = sum(p.numel() * p.element_size() for p in seats.adapter.model.parameters())
    peaks = {}
    for method, trr in (("full", None), ("seats", 0.35), ("seats", 0.10)):
        torch.cuda.reset_peak_memory_stats()
        r = seats.ask(clip, "What happens?", method=method, trr=trr, max_new_tokens=8, seed=0)
        assert r.decode_mode == "cuda-graph"  # the loop that ran (a failed capture would say buffers)
        assert r.media["frames"] == 128 and r.tokens["video"] == 64 * 144  # 64 grids of 144 tokens
        assert r.latency_ms["prefill"] > 0 and r.latency_ms["encode"] > 0
        peaks[(method, trr)] = torch.cuda.max_memory_allocated()
        # activations, encoders' outputs and the KV cache of 11k tokens stay well below the weights' own size
        # (the H200 run: 19.2 GiB peak for ≈ 16 GiB of bf16 weights)
        assert peaks[(method, trr)] < 1.5 * weights, (peaks, weights)
        kept = [row["video"] + row["audio"] + row["text"] for row in r.layers]
        if method == "full":
            assert set(kept) == {r.tokens["video"] + r.tokens["audio"] + r.tokens["text"]}
        else:
            n = r.tokens
            plan = SeatsPlan.build(seats.config, trr, n["video"], n["audio"], tokens_per_grid=144)
            stage1 = plan.counts(n["video"], n["audio"], n["text"])[0]  # Stage I's counts are exact
            assert {k: r.layers[0][k] for k in ("video", "audio", "text")} == {k: stage1[k] for k in
                                                                              ("video", "audio", "text")}
            # later layers: by the method's rules from the real counts (the H200 run found the analytic counts
            # one token off at a drop: the budgets fix K_v + K_a, not each)
            assert r.layers == seats_counts_by_the_rule(plan, r.layers)
            assert r.flops["reduction"] > (3.0 if trr == 0.35 else 8.0)
            assert peaks[(method, trr)] <= 1.01 * peaks[("full", None)]  # pruning costs no memory (1 %: the
            # encoders, the same in both, may set both peaks)
