"""Loading a thinker by ``--model`` (hub id, local folder, or the offline tiny/synthetic models): device and dtype,
the family's adapter, and the check that the preset describes the checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from seats_cli.config import ModelConfig, resolve_config

if TYPE_CHECKING:
    from seats_cli.models.base import OmniAdapter


class ModelLoadError(RuntimeError):
    """The model or its processor could not be loaded; the message is one line for the user."""


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ModelLoadError(f"unknown --device {device!r} (use auto, cpu, cuda, cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"--device {device} asked for CUDA but no CUDA device is available")
    return dev


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in table:
        raise ModelLoadError(f"unknown --dtype {dtype!r} (use auto, float32, bfloat16, float16)")
    return table[dtype]


_FAMILIES: dict[str, type["OmniAdapter"]] = {}


def register_family(cls: type["OmniAdapter"]) -> type["OmniAdapter"]:
    _FAMILIES[cls.family] = cls
    return cls


def load_model(
    model: str = "Qwen/Qwen2.5-Omni-7B",
    *,
    config: str | ModelConfig | None = None,
    device: str = "auto",
    dtype: str = "auto",
    attn_implementation: str = "sdpa",
    revision: str | None = None,
    local_files_only: bool = False,
    cache_dir: str | os.PathLike | None = None,
    device_map: str | None = None,
) -> "OmniAdapter":
    """Load a thinker (no talker) and its processor through the normal ``from_pretrained`` path. On CUDA the
    weights go straight to the GPU; ``device_map="auto"`` spreads them over every visible GPU."""
    from seats_cli.models import qwen2_5_omni, qwen3_omni  # noqa: F401  (register the families)

    cfg = config if isinstance(config, ModelConfig) else resolve_config(model, config)
    if cfg.family not in _FAMILIES:
        raise ModelLoadError(f"model family {cfg.family!r} ({cfg.name}) has no adapter yet; "
                             f"`seats profile --analytic` works for it without weights")
    if attn_implementation not in ("sdpa", "eager", "flash_attention_2"):
        raise ModelLoadError(f"unknown --attn-implementation {attn_implementation!r} (sdpa, eager, flash_attention_2)")
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    source = model
    if model == "tiny":
        from seats_cli.models.tiny import tiny_model_dir

        source = str(tiny_model_dir(cache_dir))
    elif model == "tiny-qwen3":
        from seats_cli.models.tiny_qwen3 import tiny_qwen3_model_dir

        source = str(tiny_qwen3_model_dir(cache_dir))
    elif model == "synthetic":
        from seats_cli.models.synthetic import synthetic_model_dir

        source = str(synthetic_model_dir(cache_dir))
    elif Path(model).exists() and not Path(model).is_dir():
        raise ModelLoadError(f"--model {model}: not a folder or hub id")
    if device_map not in (None, "auto"):
        raise ModelLoadError(f"--device-map {device_map!r} is not one of: auto")
    if device_map == "auto" and dev.type != "cuda":
        raise ModelLoadError("--device-map auto spreads a model over GPUs; no CUDA device is in use")
    adapter = _FAMILIES[cfg.family].from_pretrained(
        source, cfg, model_id=model, device=dev, dtype=torch_dtype, attn_implementation=attn_implementation,
        revision=revision, local_files_only=local_files_only, device_map=device_map,
    )
    check_preset(cfg, adapter.text_config)
    return adapter


def check_preset(cfg: ModelConfig, text_config) -> None:
    """The preset's layer boundaries only make sense for the model it describes: refuse a mismatch."""
    from seats_cli.config import ConfigError

    a = cfg.architecture
    have = (text_config.num_hidden_layers, text_config.hidden_size, text_config.num_attention_heads,
            text_config.num_key_value_heads)
    want = (a.num_layers, a.hidden_size, a.num_attention_heads, a.num_key_value_heads)
    if have != want:
        raise ConfigError(f"config {cfg.name} describes layers/hidden/heads/kv-heads {want} but the checkpoint "
                          f"has {have}; pass the matching --config")


def describe_load_failure(model: str, err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if Path(model).is_dir():
        return f"cannot load model from {model}: {text}"
    return (
        f"cannot load {model}: not in the local Hugging Face cache and the hub could not be reached ({text}). "
        f"Download it where there is internet (`hf download {model}`) and set HF_HOME, or pass a local folder "
        f"with --model; `--model tiny` runs offline"
    )
