from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seats_cli.flops import TextModelDims, compare_flops, layer_flops, prefill_flops

DIMS_7B = TextModelDims(num_layers=28, hidden_size=3584, intermediate_size=18944,
                        num_attention_heads=28, num_key_value_heads=4, vocab_size=152064)


def test_7b_per_layer_coefficients():
    assert DIMS_7B.head_dim == 128
    for s in (0, 1, 2, 100, 10916):
        assert layer_flops(s, DIMS_7B) == 233_046_016 * s + 7168 * s * s


def test_worked_example():
    pruned = [1636] * 16 + [1528] * 2 + [1236] * 2 + [440] * 3 + [100] * 5
    rep = compare_flops(9216 + 1600 + 100, pruned, DIMS_7B)
    assert rep["full"] == 28 * (233_046_016 * 10916 + 7168 * 10916**2) + 10916 * 3584 * 152064
    assert rep["full"] == pytest.approx(101.09e12, abs=0.01e12)
    assert rep["pruned"] == pytest.approx(8.23e12, abs=0.01e12)
    assert rep["reduction"] == pytest.approx(12.3, abs=0.05)
    assert rep["reduction"] == rep["full"] / rep["pruned"]
    rows = [{"video": n - 100, "audio": 0, "text": 100} for n in pruned]  # per-layer rows give the same
    assert compare_flops(10916, rows, DIMS_7B) == rep


def test_lm_head_uses_last_layer_tokens():
    base = sum(layer_flops(s, DIMS_7B) for s in [1636] * 27 + [100])
    assert prefill_flops([1636] * 27 + [100], DIMS_7B) == base + 100 * 3584 * 152064


def test_prefill_requires_one_count_per_layer():
    with pytest.raises(ValueError, match="28 per-layer"):
        prefill_flops([100] * 27, DIMS_7B)
    with pytest.raises(ValueError, match=">= 0"):
        layer_flops(-1, DIMS_7B)


def test_from_hf_text_config_dense():
    cfg = SimpleNamespace(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                          num_attention_heads=28, num_key_value_heads=4, vocab_size=152064)
    assert TextModelDims.from_hf_text_config(cfg) == DIMS_7B
    cfg.head_dim = None  # present but unset -> hidden/heads
    assert TextModelDims.from_hf_text_config(cfg).head_dim == 128


def test_from_hf_text_config_moe_qwen3():
    cfg = SimpleNamespace(hidden_size=2048, intermediate_size=768, moe_intermediate_size=768,
                          num_experts_per_tok=8, num_experts=128, num_hidden_layers=48,
                          num_attention_heads=32, num_key_value_heads=4, head_dim=128, vocab_size=152064)
    d = TextModelDims.from_hf_text_config(cfg)
    assert (d.intermediate_size, d.head_dim, d.num_layers) == (6144, 128, 48)
    # q/o: 2*2048*4096 = 16,777,216; k/v: 2*2048*512 = 2,097,152; MLP: 3*2048*6144 = 37,748,736
    # attention: 2*S^2*4096
    for s in (1, 7, 1000):
        assert layer_flops(s, d) == 56_623_104 * s + 8192 * s * s


def test_dims_validation():
    with pytest.raises(ValueError, match="head_dim"):
        TextModelDims(2, 100, 10, 3, 1, 10)
    with pytest.raises(ValueError, match="positive"):
        TextModelDims(0, 64, 10, 4, 1, 10)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 64), st.integers(1, 8), st.integers(1, 4), st.integers(1, 5000),
       st.integers(0, 5000))
def test_matches_paper_formula_when_head_dim_is_hidden_over_heads(hd, heads, kv_div, inter, s):
    kv = max(1, heads // kv_div)
    D = hd * heads
    dims = TextModelDims(1, D, inter, heads, kv, 10)
    d_kv = kv * D // heads
    paper = 2 * s * D * D + 2 * s * D * d_kv + 2 * s * s * D + 3 * s * D * inter
    assert layer_flops(s, dims) == paper
