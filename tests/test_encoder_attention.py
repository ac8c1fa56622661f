"""The encoders' packed windows in a few batched sdpa calls (seats_cli/models/attention.py) give what the stock
one-call-per-window loops give: on random windows of mixed lengths against a per-window brute force; through the
tiny model's vision tower on real decoded clips (the sample, and 448x252 frames: 12 windows per frame pair of three
lengths on Qwen2.5-Omni's windowed tower) against the same tower switched back to stock sdpa; and through both
towers at once (the audio tower's chunks of two lengths), features and recorded signals, for both families."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seats_cli.media import decode_video
from seats_cli.models.attention import VARLEN_ATTENTION, varlen_sdpa, window_bounds
from seats_cli.request import frame_policy


def test_varlen_sdpa_equals_one_call_per_window():
    g = torch.Generator().manual_seed(0)
    lengths = [64, 64, 16, 64, 16, 4, 64, 4]
    n, heads, d = sum(lengths), 3, 8
    q, k, v = (torch.randn(1, heads, n, d, generator=g, dtype=torch.float64) for _ in range(3))
    cu = torch.tensor([0] + torch.tensor(lengths).cumsum(0).tolist(), dtype=torch.int32)
    out, weights = varlen_sdpa(None, q, k, v, scaling=0.25, cu_seq_lens_q=cu, cu_seq_lens_k=cu)
    assert out.shape == (1, n, heads, d) and weights is None
    for a, b in zip(cu[:-1].tolist(), cu[1:].tolist()):
        want = F.scaled_dot_product_attention(q[:, :, a:b], k[:, :, a:b], v[:, :, a:b], scale=0.25)
        assert torch.allclose(out[0, a:b], want[0].transpose(0, 1), atol=1e-12)
    same = torch.tensor([0, 16, 32, 48], dtype=torch.int32)  # one length: the no-gather path
    out2, _ = varlen_sdpa(None, q[:, :, :48], k[:, :, :48], v[:, :, :48], scaling=0.25, cu_seq_lens_q=same)
    want = F.scaled_dot_product_attention(q[:, :, 16:32], k[:, :, 16:32], v[:, :, 16:32], scale=0.25)
    assert torch.allclose(out2[0, 16:32], want[0].transpose(0, 1), atol=1e-12)
    # the boundaries were read to the host once per tensor (a tower hands the same one to each layer)
    assert window_bounds(cu) is window_bounds(cu) and window_bounds(cu) == cu.tolist()
    assert window_bounds(cu.clone()) is not window_bounds(cu)


def _video_features(adapter, media):
    request = adapter.prepare(media, "What is moving?")
    inner = adapter.model.model
    inp = request.inputs
    with torch.no_grad():
        out = inner.get_video_features(inp["pixel_values_videos"], inp["video_grid_thw"], return_dict=True)
    return torch.cat(out.pooler_output, dim=0), inp["video_grid_thw"]


@pytest.mark.parametrize("model", ["tiny", "tiny-qwen3"])
def test_tiny_vision_tower_equals_the_stock_window_loop(model, seats_cache, sample_path, tmp_path):
    from media_factory import make_clip

    from seats_cli.models import load_model

    ad = load_model(model, device="cpu", dtype="float32", cache_dir=seats_cache)
    vcfg = ad.model.model.visual.config
    assert "vision" in ad.encoder_varlen and vcfg._attn_implementation == VARLEN_ATTENTION
    wide = make_clip(tmp_path / "wide.mp4", width=448, height=252, fps=4, seconds=2.0)
    grids = []
    for clip in (sample_path, wide):
        media = decode_video(clip, frame_policy(ad.config))
        ours, grid = _video_features(ad, media)
        vcfg._attn_implementation = "sdpa"
        try:
            stock, _ = _video_features(ad, media)
        finally:
            vcfg._attn_implementation = VARLEN_ATTENTION
        assert torch.allclose(ours, stock, atol=1e-5, rtol=1e-5), (ours - stock).abs().max()
        grids.append(grid[0].tolist())
    assert grids[1][1] >= 16 and grids[1][2] >= 16  # 448x252 frames: many windows per frame, of several lengths


@pytest.mark.parametrize("model", ["tiny", "tiny-qwen3"])
def test_tiny_encoders_with_batched_windows_equal_the_stock_loops(model, seats_cache, tmp_path):
    """Both towers switched (the audio tower's chunks too): 13 s of sound gives audio windows of two lengths on
    both families (Qwen2.5: 2 s chunks, 6 x 100 + 50 tokens; Qwen3: 8-chunk windows, 104 + 65), and the encoders'
    features and every recorded signal (saliency over the official span, the baselines' keys, FastVID's frame
    query, OmniZip's whole-clip audio attention) equal the stock per-window loops'."""
    from media_factory import make_clip

    from seats_cli.models import load_model

    ad = load_model(model, device="cpu", dtype="float32", cache_dir=seats_cache)
    assert ad.encoder_varlen == ("vision", "audio")
    inner = ad.model.model
    towers = (inner.visual.config, inner.audio_tower.config)
    clip = make_clip(tmp_path / "clip.mp4", width=96, height=54, fps=2, seconds=13.0)
    request = ad.prepare(decode_video(clip, frame_policy(ad.config)), "What is moving?")
    assert request.layout.n_audio > 0

    def encode():
        return ad.encode_media(request, saliency="official",
                               extra=frozenset({"video_frame_query", "audio_whole"}))

    from transformers import AttentionInterface

    lengths: dict[str, set] = {"audio": set(), "vision": set()}

    def spy(module, *args, cu_seq_lens_q=None, **kwargs):  # which tower called, with which window lengths
        tower = "audio" if "Audio" in type(module).__name__ else "vision"
        lengths[tower] |= set((cu_seq_lens_q[1:] - cu_seq_lens_q[:-1]).tolist())
        return varlen_sdpa(module, *args, cu_seq_lens_q=cu_seq_lens_q, **kwargs)

    AttentionInterface.register(VARLEN_ATTENTION, spy)
    try:
        ours = encode()
    finally:
        AttentionInterface.register(VARLEN_ATTENTION, varlen_sdpa)
    assert len(lengths["audio"]) >= 2 and lengths["vision"], lengths  # both towers batched, mixed chunk lengths
    for cfg in towers:
        cfg._attn_implementation = "sdpa"
    try:
        stock = encode()
    finally:
        for cfg in towers:
            cfg._attn_implementation = VARLEN_ATTENTION
    for name in ("audio", "video"):
        a, b = getattr(ours, name), getattr(stock, name)
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5, rtol=1e-5), name
    assert set(ours.signals) == set(stock.signals) >= {"video", "audio", "video_keys", "audio_keys", "audio_whole"}
    for key, value in ours.signals.items():
        assert torch.allclose(value, stock.signals[key], atol=1e-5, rtol=1e-5), key
