"""The vision tower's packed windows in a few batched sdpa calls (seats_cli/models/attention.py) give what the stock
one-call-per-window loop gives: on random windows of mixed lengths against a per-window brute force, and through the
tiny model's vision tower on real decoded clips (the sample, and 448x252 frames: 12 windows per frame pair of three
lengths on Qwen2.5-Omni's windowed tower) against the same tower switched back to stock sdpa, for both families."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seats_cli.media import decode_video
from seats_cli.models.attention import VARLEN_ATTENTION, varlen_sdpa
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
    assert ad.vision_varlen and vcfg._attn_implementation == VARLEN_ATTENTION
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
