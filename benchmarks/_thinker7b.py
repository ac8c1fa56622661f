"""The full-size Qwen2.5-Omni-7B thinker config, shared by the benchmarks that build it with random weights."""

from __future__ import annotations


def thinker_7b_config(attn: str = "sdpa", token_ids: dict | None = None):
    """Qwen2.5-Omni-7B's thinker (docs/METHOD.md §11 facts; the library defaults differ for the vision width, and
    have no vision start/end ids, which the checkpoint's config.json adds). ``token_ids``: other special-token
    fields (the tiny tokenizer's, for a model that reads requests made by the tiny processor)."""
    from transformers import Qwen2_5OmniThinkerConfig

    cfg = Qwen2_5OmniThinkerConfig(**({"vision_start_token_id": 151652, "vision_end_token_id": 151653} | (token_ids or {})))
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


def build_seats_7b(device, attn: str = "sdpa"):
    """``Seats`` over the full-size thinker built directly on ``device`` with random bf16 weights (no host copy of
    the weights on a GPU; ``meta`` builds no weights at all and keeps the requests on the CPU, for checks that run no
    layer), with the tiny processor and its token ids. Returns (seats, build seconds)."""
    import time

    import torch
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    from seats_cli.api import Seats
    from seats_cli.config import ModelConfig
    from seats_cli.models.qwen2_5_omni import Qwen25OmniAdapter
    from seats_cli.models.tiny import build_tiny_processor, tiny_special_token_ids

    dev = torch.device(device)
    t0 = time.perf_counter()
    torch.manual_seed(0)
    with dev:
        model = Qwen2_5OmniThinkerForConditionalGeneration._from_config(
            thinker_7b_config(attn, tiny_special_token_ids()), dtype=torch.bfloat16).eval()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    build_s = time.perf_counter() - t0
    ad = Qwen25OmniAdapter(model, build_tiny_processor(), ModelConfig.from_name("qwen2.5-omni-7b"),
                           model_id="random-qwen2.5-omni-7b",
                           device=torch.device("cpu") if dev.type == "meta" else dev)
    return Seats.from_adapter(ad, reuse_media=False), build_s
