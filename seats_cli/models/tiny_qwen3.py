"""A tiny random-weight Qwen3-Omni-30B-A3B thinker, built deterministically and offline.

It has the real architecture at a tiny width: a 48-layer MoE text decoder (q/k norm, GQA, top-k routed
SwiGLU experts in every layer, no shared expert, interleaved M-RoPE), a ViT with patch 16 / temporal
patch 2 / 2x2 merge and DeepStack taps, and the AuT audio encoder with 128 mel bins and the real
n_window 50 / n_window_infer 800 framing (13 tokens per second).  A byte-level tokenizer carries
Qwen3-Omni's special tokens in the real vocabulary order, and the processor is the stock
``Qwen3OmniMoeProcessor``.  It is written with ``save_pretrained`` and loaded back through the same
``from_pretrained`` path as a real checkpoint.  Its answers are meaningless: the weights are random.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from seats_cli.models.tiny import NUM_BYTE_TOKENS, model_dir_once, readable_answer

TINY_QWEN3_SEED = 4321
TINY_QWEN3_VERSION = "1"  # bump when the recipe below changes; the cache folder name depends on it
MARKER = "seats_tiny_qwen3.json"

REAL_FIRST_SPECIAL_ID = 151643
# Qwen3-Omni's added tokens 151643..151675, in the real vocabulary's order (tiny id = 256 + real id - 151643).
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
    "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>",
    "</tool_response>", "<think>", "</think>", "<|audio_start|>", "<|audio_end|>", "<tts_pad>",
    "<tts_text_bos>", "<tts_text_eod>", "<tts_text_bos_single>", "<|audio_pad|>",
]
# As in Qwen2.5/Qwen3's tokenizer: these added tokens are plain text (not "special"; decoding keeps them).
NON_SPECIAL_TOKENS = frozenset(SPECIAL_TOKENS[14:26])  # <tool_call> .. </think> (real ids 151657-151668)
VOCAB_SIZE = 296  # 256 byte tokens + 33 added tokens, padded to a multiple of 8

# The processor reads these tokenizer attributes (``processing_qwen3_omni_moe.py``).
PROCESSOR_TOKENS = {
    "image_token": "<|image_pad|>", "audio_token": "<|audio_pad|>", "video_token": "<|video_pad|>",
    "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>",
    "audio_bos_token": "<|audio_start|>", "audio_eos_token": "<|audio_end|>",
}

# Qwen3-Omni-style chat template (the real Instruct template was not available; see SEATS_SPEC §7.6):
# no default system turn, media written as <|vision_start|><|video_pad|><|vision_end|> (the processor
# expands it and interleaves the video's audio), nothing after "<|im_start|>assistant\n".
CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% set image_count = namespace(value=0) %}"
    "{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture "
    "{{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}{% if add_audio_id %}Audio "
    "{{ audio_count.value }}: {% endif %}<|audio_start|><|audio_pad|><|audio_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video "
    "{{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _token_id(token: str) -> int:
    return NUM_BYTE_TOKENS + SPECIAL_TOKENS.index(token)


def tiny_qwen3_thinker_config(attn_implementation: str = "sdpa"):
    from transformers import Qwen3OmniMoeThinkerConfig

    text = dict(
        vocab_size=VOCAB_SIZE, hidden_size=64, num_hidden_layers=48, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, intermediate_size=64, max_position_embeddings=32768,
        # head_dim 16 -> 8 rotary frequencies; the stock rotary interleaves them: H drives 1,4 and W drives 2,5
        # (mrope_section[1|2] * 3 bounds the stride-3 slices), T the rest (0,3,6,7), as [24,20,20] for 64.
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [4, 2, 2],
                         "interleaved": True, "mrope_interleaved": True},
        rms_norm_eps=1e-6, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, norm_topk_prob=True,
        decoder_sparse_step=1, mlp_only_layers=[], attention_bias=False, tie_word_embeddings=False,
        eos_token_id=_token_id("<|im_end|>"), pad_token_id=_token_id("<|endoftext|>"),
    )
    vision = dict(
        # depth 5 with DeepStack taps after blocks 1,2,3: like the real 8,16,24 of 27, the last block is no tap
        depth=5, hidden_size=32, intermediate_size=64, num_heads=2, in_channels=3, patch_size=16,
        spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=64, num_position_embeddings=2304,
        deepstack_visual_indexes=[1, 2, 3], hidden_act="gelu_pytorch_tanh",
    )
    audio = dict(
        num_mel_bins=128, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64, d_model=32,
        output_dim=64, n_window=50, n_window_infer=800, conv_chunksize=500, downsample_hidden_size=16,
        max_source_positions=1500,
    )
    cfg = Qwen3OmniMoeThinkerConfig(
        text_config=text, vision_config=vision, audio_config=audio,
        # Every id explicitly: the class defaults are Qwen2.5's (audio 151646, audio_start 151647, 25 ids/s),
        # and get_rope_index reads vision_start_token_id, which is no declared field (SEATS_SPEC §7.6).
        audio_token_id=_token_id("<|audio_pad|>"), image_token_id=_token_id("<|image_pad|>"),
        video_token_id=_token_id("<|video_pad|>"), vision_start_token_id=_token_id("<|vision_start|>"),
        vision_end_token_id=_token_id("<|vision_end|>"), audio_start_token_id=_token_id("<|audio_start|>"),
        audio_end_token_id=_token_id("<|audio_end|>"), user_token_id=ord("u"),
        position_id_per_seconds=13, seconds_per_chunk=2, tie_word_embeddings=False,
    )
    cfg._attn_implementation = attn_implementation
    return cfg


def build_tiny_qwen3_tokenizer():
    """Byte-level BPE without merges (every byte is a token) plus Qwen3-Omni's added tokens."""
    from transformers import AddedToken, Qwen2TokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    byte_chars = bytes_to_unicode()
    vocab = {byte_chars[b]: i for i, b in enumerate(sorted(byte_chars))}
    tok = Qwen2TokenizerFast(vocab=vocab, merges=[], unk_token=None, bos_token=None, eos_token=None, pad_token=None)
    # one call, so the ids follow the list's (the real vocabulary's) order
    tok.add_tokens([AddedToken(t, special=t not in NON_SPECIAL_TOKENS, normalized=False) for t in SPECIAL_TOKENS])
    tok = Qwen2TokenizerFast(
        tokenizer_object=tok.backend_tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        extra_special_tokens=PROCESSOR_TOKENS,
    )
    for t in SPECIAL_TOKENS:
        if tok.convert_tokens_to_ids(t) != _token_id(t):
            raise RuntimeError(f"tiny tokenizer: {t} got id {tok.convert_tokens_to_ids(t)}, expected {_token_id(t)}")
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_tiny_qwen3_processor():
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        Qwen3OmniMoeProcessor,
        WhisperFeatureExtractor,
    )

    # The classes AutoProcessor maps qwen3_omni_moe to; patch 16 x merge 2 (factor 32).  Mean/std 0.5 as
    # the Qwen3-VL family's vision tower (not checked against the real preprocessor_config.json).
    common = dict(patch_size=16, temporal_patch_size=2, merge_size=2, image_mean=[0.5, 0.5, 0.5],
                  image_std=[0.5, 0.5, 0.5])
    image_processor = Qwen2VLImageProcessor(size={"shortest_edge": 65536, "longest_edge": 16777216}, **common)
    # the bounds the stock processor applies to videos anyway (128..768 x 32^2)
    video_processor = Qwen2VLVideoProcessor(size={"shortest_edge": 128 * 32 * 32, "longest_edge": 768 * 32 * 32},
                                            **common)
    # Whisper log-mel: 128 bins, 16 kHz, hop 160 (100 frames/s); the processor pads and never truncates
    feature_extractor = WhisperFeatureExtractor(
        feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=300, n_fft=400,
        padding_value=0.0, return_attention_mask=True,
    )
    return Qwen3OmniMoeProcessor(
        image_processor=image_processor, video_processor=video_processor,
        feature_extractor=feature_extractor, tokenizer=build_tiny_qwen3_tokenizer(), chat_template=CHAT_TEMPLATE,
    )


def build_tiny_qwen3_thinker(seed: int = TINY_QWEN3_SEED):
    from transformers import Qwen3OmniMoeThinkerForConditionalGeneration

    torch.manual_seed(seed)
    model = Qwen3OmniMoeThinkerForConditionalGeneration(tiny_qwen3_thinker_config())
    # Random normal weights scaled 1/sqrt(fan_in), larger than the init default, so that activations, the
    # attention patterns and the routing are not degenerate (uniform) and tests can tell tokens apart.
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith(("experts.gate_up_proj", "experts.down_proj")):  # fused (experts, out, in)
                p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / p.shape[-1] ** 0.5))
            elif name.endswith("weight") and p.dim() >= 2:  # linear (out, in), conv (out, in, *kernel), tables
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / fan_in ** 0.5))
            elif "norm" in name or "ln" in name:
                p.fill_(1.0) if name.endswith("weight") else p.zero_()
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    model.generation_config.eos_token_id = _token_id("<|im_end|>")
    model.generation_config.pad_token_id = _token_id("<|endoftext|>")
    return model.eval()


def tiny_qwen3_model_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Build (once) and return the folder holding the tiny Qwen3-Omni thinker, written by ``save_pretrained``."""
    return model_dir_once(cache_dir, "tiny-qwen3-omni", f"{TINY_QWEN3_VERSION}-{TINY_QWEN3_SEED}", MARKER,
                          lambda: (build_tiny_qwen3_thinker(), build_tiny_qwen3_processor(),
                                   {"seed": TINY_QWEN3_SEED, "version": TINY_QWEN3_VERSION}))


__all__ = ["SPECIAL_TOKENS", "TINY_QWEN3_SEED", "TINY_QWEN3_VERSION", "VOCAB_SIZE", "build_tiny_qwen3_processor",
           "build_tiny_qwen3_thinker", "build_tiny_qwen3_tokenizer", "readable_answer", "tiny_qwen3_model_dir",
           "tiny_qwen3_thinker_config"]
