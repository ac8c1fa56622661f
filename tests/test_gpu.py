"""GPU tier (``-m gpu``; CI runs without a GPU and deselects these). Same properties as the CPU tests, on
CUDA: the engine equals the stock model, SEATS equals the masked reference, bf16 and flash-attention run."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from seats_cli.request import frame_policy
from seats_cli.engine import decode, prefill
from seats_cli.media import decode_video
from seats_cli.methods import build_pruner
from seats_cli.models import load_model
from reference import masked_reference_logits

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cuda():
    if not torch.cuda.is_available():
        pytest.fail("-m gpu needs a CUDA device")
    return "cuda"


def _case(tiny_dir, sample_path, dtype, attn="sdpa"):
    ad = load_model("tiny", device="cuda", dtype=dtype, attn_implementation=attn, cache_dir=tiny_dir.parent)
    request = ad.prepare(decode_video(sample_path, frame_policy(ad.config)), "What is moving?")
    return ad, request


def test_engine_equals_stock_on_cuda_fp32(cuda, tiny_dir, sample_path):
    ad, request = _case(tiny_dir, sample_path, "float32")
    encoded = ad.encode(request)
    res = prefill(ad, encoded, request.layout, return_hidden=True)
    with torch.no_grad():
        stock = ad.model(**request.inputs, use_audio_in_video=request.use_audio_in_video).logits
    assert (ad.model.lm_head(res.hidden) - stock).abs().max().item() <= 1e-4
    tokens, _ = decode(ad, res, encoded.next_position, max_new_tokens=8, eos_token_ids=[])
    with torch.no_grad():
        gen = ad.model.generate(**request.inputs, use_audio_in_video=request.use_audio_in_video, max_new_tokens=8,
                                do_sample=False, eos_token_id=None)
    assert tokens == gen[0, request.inputs["input_ids"].shape[1]:].tolist()


ATTN = ["sdpa"] + (["flash_attention_2"] if importlib.util.find_spec("flash_attn") else [])


@pytest.mark.parametrize("attn", ATTN)
def test_seats_equals_masked_reference_on_cuda_bf16(cuda, tiny_dir, sample_path, attn):
    ad, request = _case(tiny_dir, sample_path, "bfloat16", attn)
    encoded = ad.encode(request, saliency=True)
    pruner, _ = build_pruner("seats", ad.config, request.layout, trr=0.1)
    res = prefill(ad, encoded, request.layout, pruner)
    ref = masked_reference_logits(ad, encoded, res.layer_live)
    assert torch.allclose(res.logits.float(), ref.float(), atol=5e-2, rtol=5e-2)
