"""The full-size Qwen2.5-Omni-7B thinker config, shared by the benchmarks that build it with random weights."""

from __future__ import annotations


def thinker_7b_config(attn: str = "sdpa"):
    """Qwen2.5-Omni-7B's thinker (docs/METHOD.md §11 facts; the library defaults differ for the vision width)."""
    from transformers import Qwen2_5OmniThinkerConfig

    cfg = Qwen2_5OmniThinkerConfig()
    v, a, t = cfg.vision_config, cfg.audio_config, cfg.text_config
    v.depth, v.hidden_size, v.intermediate_size, v.num_heads, v.out_hidden_size = 32, 1280, 3420, 16, 3584
    v.patch_size, v.temporal_patch_size, v.spatial_merge_size, v.window_size = 14, 2, 2, 112
    v.fullatt_block_indexes = [7, 15, 23, 31]
    a.encoder_layers, a.d_model, a.encoder_attention_heads, a.encoder_ffn_dim, a.output_dim = 32, 1280, 20, 5120, 3584
    a.num_mel_bins, a.n_window = 128, 100
    assert (t.hidden_size, t.num_hidden_layers, t.intermediate_size, t.vocab_size) == (3584, 28, 18944, 152064)
    for c in (cfg, v, a, t):
        c._attn_implementation = attn
    return cfg
