"""A tiny random-weight Qwen2.5-Omni thinker, built deterministically and offline.

It has the real architecture (vision encoder with patch 14 / temporal patch 2 / 2x2 merge and window
attention, Whisper-style audio encoder with 128 mel bins, M-RoPE text decoder with 28 layers) at a tiny
width, a byte-level tokenizer that carries Qwen2.5-Omni's special tokens and chat template, and the real
processor classes.  It is written with ``save_pretrained`` and loaded back through the same
``from_pretrained`` path as a real checkpoint.  Its answers are meaningless: the weights are random.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

TINY_SEED = 1234
TINY_VERSION = "1"  # bump when the recipe below changes; the cache folder name depends on it

# Qwen2.5-Omni's special tokens, in the real vocabulary's order (real ids start at 151643).
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_bos|>", "<|vision_eos|>",
    "<|vision_pad|>", "<|IMAGE|>", "<|VIDEO|>",
]
NUM_BYTE_TOKENS = 256
VOCAB_SIZE = 272  # 256 byte tokens + 14 special tokens, padded to a multiple of 8

# The chat template Qwen2.5-Omni ships with its processor.
CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% set image_count = namespace(value=0) %}"
    "{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant."
    "<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture "
    "{{ image_count.value }}: {% endif %}<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}{% if add_audio_id %}Audio "
    "{{ audio_count.value }}: {% endif %}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video "
    "{{ video_count.value }}: {% endif %}<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _token_id(token: str) -> int:
    return NUM_BYTE_TOKENS + SPECIAL_TOKENS.index(token)


def tiny_special_token_ids() -> dict:
    """The thinker-config fields that name the tiny tokenizer's special tokens (any thinker config that reads
    requests made by :func:`build_tiny_processor` needs them, e.g. the full-size random 7B of the benchmarks)."""
    return dict(
        audio_token_index=_token_id("<|AUDIO|>"), image_token_index=_token_id("<|IMAGE|>"),
        video_token_index=_token_id("<|VIDEO|>"), vision_start_token_id=_token_id("<|vision_bos|>"),
        vision_end_token_id=_token_id("<|vision_eos|>"), audio_start_token_id=_token_id("<|audio_bos|>"),
        audio_end_token_id=_token_id("<|audio_eos|>"), user_token_id=ord("u"),
    )


def tiny_thinker_config(attn_implementation: str = "sdpa", *, text: dict | None = None, vision: dict | None = None,
                        audio: dict | None = None):
    """The tiny thinker's config; ``text``/``vision``/``audio`` override its sub-config fields (the synthetic
    model's widths). The encoders' outputs follow the text width."""
    from transformers import Qwen2_5OmniThinkerConfig

    text = dict(
        vocab_size=VOCAB_SIZE, hidden_size=64, intermediate_size=128, num_hidden_layers=28,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32768,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
        tie_word_embeddings=False, eos_token_id=_token_id("<|im_end|>"), pad_token_id=_token_id("<|endoftext|>"),
    ) | (text or {})
    vision = dict(
        depth=4, hidden_size=32, intermediate_size=64, num_heads=2, in_channels=3, patch_size=14,
        spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[3],
        out_hidden_size=text["hidden_size"],
    ) | (vision or {})
    audio = dict(
        num_mel_bins=128, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64, d_model=32,
        output_dim=text["hidden_size"], n_window=100, max_source_positions=1500,
    ) | (audio or {})
    cfg = Qwen2_5OmniThinkerConfig(
        text_config=text, vision_config=vision, audio_config=audio, **tiny_special_token_ids(),
        position_id_per_seconds=25, seconds_per_chunk=2,
    )
    cfg._attn_implementation = attn_implementation
    return cfg


def build_tiny_tokenizer():
    """Byte-level BPE without merges (every byte is a token) plus Qwen2.5-Omni's special tokens."""
    from transformers import Qwen2TokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    byte_chars = bytes_to_unicode()
    vocab = {byte_chars[b]: i for i, b in enumerate(sorted(byte_chars))}
    extra = {
        "image_token": "<|IMAGE|>", "audio_token": "<|AUDIO|>", "video_token": "<|VIDEO|>",
        "vision_bos_token": "<|vision_bos|>", "vision_eos_token": "<|vision_eos|>",
        "audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>",
    }
    tok = Qwen2TokenizerFast(vocab=vocab, merges=[], unk_token=None, bos_token=None, eos_token=None, pad_token=None)
    tok.add_special_tokens({"extra_special_tokens": SPECIAL_TOKENS})
    tok.add_special_tokens({"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"})
    tok = Qwen2TokenizerFast(
        tokenizer_object=tok.backend_tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        extra_special_tokens=extra,
    )
    for t in SPECIAL_TOKENS:
        if tok.convert_tokens_to_ids(t) != _token_id(t):
            raise RuntimeError(f"tiny tokenizer: {t} got id {tok.convert_tokens_to_ids(t)}, expected {_token_id(t)}")
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_tiny_processor():
    from transformers import (
        Qwen2_5OmniProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        WhisperFeatureExtractor,
    )

    common = dict(
        patch_size=14, temporal_patch_size=2, merge_size=2,
        image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711],
    )
    size = {"shortest_edge": 3136, "longest_edge": 12845056}
    image_processor = Qwen2VLImageProcessor(size=size, **common)
    video_processor = Qwen2VLVideoProcessor(size=size, **common)
    # Qwen2.5-Omni's feature extractor: 128 mel bins, 16 kHz, hop 160, windows of up to 300 s.
    feature_extractor = WhisperFeatureExtractor(
        feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=300, n_fft=400,
        padding_value=0.0, return_attention_mask=True,
    )
    return Qwen2_5OmniProcessor(
        image_processor=image_processor, video_processor=video_processor,
        feature_extractor=feature_extractor, tokenizer=build_tiny_tokenizer(), chat_template=CHAT_TEMPLATE,
    )


def build_tiny_thinker(seed: int = TINY_SEED):
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    torch.manual_seed(seed)
    model = Qwen2_5OmniThinkerForConditionalGeneration(tiny_thinker_config())
    # Random normal weights with a larger scale than the init default, so that activations and the
    # attention patterns are not degenerate (uniform) and tests can tell tokens apart.
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("weight") and p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / p.shape[-1] ** 0.5))
            elif "norm" in name or "ln" in name:
                p.fill_(1.0) if name.endswith("weight") else p.zero_()
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    model.generation_config.eos_token_id = _token_id("<|im_end|>")
    model.generation_config.pad_token_id = _token_id("<|endoftext|>")
    return model.eval()


def default_cache_dir() -> Path:
    base = os.environ.get("SEATS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.join(Path.home(), ".cache")), "seats"
    )
    return Path(base)


def model_dir_once(cache_dir: str | os.PathLike | None, prefix: str, key: str, marker: str, build) -> Path:
    """The folder ``<cache>/<prefix>-<hash(key, transformers version)>`` holding a model written by
    ``save_pretrained``, built once: ``build()`` returns (model, processor, marker metadata). Race-safe: a
    folder is renamed into place whole, and a process that loses the race uses the winner's."""
    import transformers

    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    digest = hashlib.sha256(f"{key}-{transformers.__version__}".encode()).hexdigest()[:12]
    path = root / f"{prefix}-{digest}"
    if (path / marker).exists():
        return path
    model, processor, meta = build()
    tmp = root / f".{path.name}.tmp{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    (tmp / marker).write_text(json.dumps(meta))
    try:
        tmp.rename(path)
    except OSError:  # another process won the race; use its folder
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return path


def tiny_model_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Build (once) and return the folder holding the tiny model, written by ``save_pretrained``."""
    return model_dir_once(cache_dir, "tiny-qwen2.5-omni", f"{TINY_VERSION}-{TINY_SEED}", "seats_tiny.json",
                          lambda: (build_tiny_thinker(), build_tiny_processor(),
                                   {"seed": TINY_SEED, "version": TINY_VERSION}))


def readable_answer(token_ids: list[int]) -> str:
    """The tiny model's (random) bytes as readable text: valid UTF-8 as is, everything else escaped (``\\xe3``),
    special tokens dropped; never a replacement character."""
    raw = bytes(i for i in token_ids if 0 <= i < NUM_BYTE_TOKENS)
    text = raw.decode("utf-8", errors="backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text).strip()
