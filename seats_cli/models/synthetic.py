"""The small trained thinker of the synthetic benchmark (``--model synthetic``).

Same architecture family and tokenizer as ``tiny`` (byte-level, Qwen2.5-Omni's special tokens and chat template)
at a small width with the real 28-layer depth. Its weights are committed (fp16, a few MB) in
``seats_cli/weights/synthetic.safetensors`` together with the key of the recipe that trained them
(``RECIPE``: architecture + training script version); a changed recipe refuses the stale file instead of
loading it. ``synthetic_model_dir`` writes the model with ``save_pretrained`` to the cache, so it loads through
the same ``from_pretrained`` path as a checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from seats_cli.models.tiny import (SPECIAL_TOKENS, VOCAB_SIZE, _token_id, build_tiny_processor, model_dir_once,
                                   tiny_thinker_config)

TRAIN_VERSION = "1"  # bump with any change to scripts/train_tiny.py that changes the weights
WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "synthetic.safetensors"
TEXT = dict(hidden_size=96, intermediate_size=256, num_hidden_layers=28, num_attention_heads=3, num_key_value_heads=1,
            head_dim=32, mrope_section=[4, 6, 6])
VISION = dict(depth=4, hidden_size=64, intermediate_size=128, num_heads=2, fullatt_block_indexes=[3])
AUDIO = dict(encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=128, d_model=64)


def synthetic_thinker_config(attn_implementation: str = "sdpa"):
    """The tiny thinker's layout at the synthetic model's widths (real 28-layer depth)."""
    text = {k: v for k, v in TEXT.items() if k != "mrope_section"} | {
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": TEXT["mrope_section"]}}
    return tiny_thinker_config(attn_implementation, text=text, vision=VISION, audio=AUDIO)


def recipe_key() -> str:
    """Architecture + training version: the key the committed weights must carry."""
    spec = json.dumps({"text": TEXT, "vision": VISION, "audio": AUDIO, "vocab": VOCAB_SIZE,
                       "specials": SPECIAL_TOKENS, "train": TRAIN_VERSION}, sort_keys=True)
    return hashlib.sha256(spec.encode()).hexdigest()[:12]


def new_thinker(seed: int = 0):
    """An untrained thinker: decoder at the stock init, encoders with weights ~ N(0, 1/fan_in) (at the stock
    std 0.02 the tiny audio encoder's output hardly depends on its input, see shared notes)."""
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    torch.manual_seed(seed)
    model = Qwen2_5OmniThinkerForConditionalGeneration(synthetic_thinker_config())
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            encoder = name.startswith(("model.visual.", "model.audio_tower.", "visual.", "audio_tower."))
            if encoder and name.endswith("weight") and p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in ** 0.5)
    model.generation_config.eos_token_id = _token_id("<|im_end|>")
    model.generation_config.pad_token_id = _token_id("<|endoftext|>")
    return model


def save_weights(model, path: Path = WEIGHTS, **meta) -> Path:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"recipe": recipe_key(), **{k: str(v) for k, v in meta.items()}})
    return path


def load_trained(path: Path | None = None):
    """The trained thinker from the committed weights; refuses weights of another recipe."""
    from safetensors import safe_open

    from seats_cli.models.loading import ModelLoadError

    path = Path(path) if path is not None else WEIGHTS
    if not path.is_file():
        raise ModelLoadError(f"no trained synthetic weights at {path}; run `python scripts/train_tiny.py`")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        state = {k: f.get_tensor(k).float() for k in f.keys()}
    if meta.get("recipe") != recipe_key():
        raise ModelLoadError(f"{path} was trained for recipe {meta.get('recipe')!r} but the code expects "
                             f"{recipe_key()!r}: re-run `python scripts/train_tiny.py`")
    model = new_thinker()
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [m for m in missing if "rotary" not in m and "inv_freq" not in m]:
        raise ModelLoadError(f"{path} does not match the synthetic architecture ({missing[:3]}, {unexpected[:3]})")
    return model.eval(), meta


def synthetic_model_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Write (once per weights file) and return the folder holding the trained model, via ``save_pretrained``."""
    digest = hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()[:12] if WEIGHTS.is_file() else "missing"

    def build():
        model, meta = load_trained()
        return model, build_tiny_processor(), {"recipe": recipe_key(), "weights": digest, **meta}

    return model_dir_once(cache_dir, "synthetic-qwen2.5-omni", f"{recipe_key()}-{digest}", "seats_synthetic.json",
                          build)
