"""The per-request options of ``ask``/``batch``/``Seats.ask`` and the one place that validates them.

The CLI (before loading any model), the library API and every batch row build a :class:`RequestOptions` and
call :meth:`RequestOptions.check`; a bad value raises :class:`~seats_cli.config.ConfigError` with one line that
names the value and the allowed ones. The allowed values are defined here once and reused by ``--help``.
"""

from __future__ import annotations

import dataclasses
import math
import unicodedata
from dataclasses import dataclass

from seats_cli.choices import (ATTN_IMPLEMENTATIONS, DECODE_MODES, DTYPES, FRAME_SIZINGS, KV_POLICIES, METHODS,
                               PROCESSOR_FPS, RATIO_MODES, SALIENCY_SPANS, SCORE_LAYERS)
from seats_cli.config import ConfigError, ModelConfig
from seats_cli.frames import FramePolicy, MediaError

CHOICES = {"method": METHODS, "kv_policy": KV_POLICIES, "score_layer": SCORE_LAYERS, "ratio_mode": RATIO_MODES,
           "saliency_span": SALIENCY_SPANS, "frame_sizing": FRAME_SIZINGS, "processor_fps": PROCESSOR_FPS}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_choice(name: str, value, allowed=None) -> None:
    """``value`` must be one of the allowed values of option ``name`` (None: the preset's default)."""
    if name == "method" and isinstance(value, str) and media_cut_layer(value) is not None:
        return
    allowed = allowed or CHOICES[name]
    if value is not None and value not in allowed:
        raise ConfigError(f"{flag(name)} {value!r} is not one of: {', '.join(allowed)}")


def media_cut_layer(method: str) -> int | None:
    """The layer of the diagnostic method ``media-cut:L`` (every video and audio token dropped before layer L),
    or None for any other method name."""
    head, _, tail = method.partition(":")
    return int(tail) if head == "media-cut" and tail.isdigit() else None


def check_ratio(name: str, value) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not 0 < value <= 1:
        raise ConfigError(f"{flag(name)} {value!r} is out of range: it must satisfy 0 < {name} <= 1")


def check_text(text, where: str = "the question") -> str:
    """Any Unicode text, stripped; refuses non-text, empty text and undecodable bytes (which reach Python as lone
    surrogates, e.g. from a command-line argument that is not UTF-8) with one line naming where."""
    if not isinstance(text, str):
        raise ConfigError(f"{where} must be text, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        code = ord(text[e.start])
        what = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"lone surrogate U+{code:04X}"
        raise ConfigError(f"{where} is not valid UTF-8 text ({what} at character {e.start})") from None
    if not text.strip() or all(unicodedata.category(c) in ("Cf", "Cc", "Zs", "Zl", "Zp") for c in text):
        raise ConfigError(f"{where} is empty")  # also when only invisible characters (zero-width space, BOM)
    return text.strip()


@dataclass(frozen=True)
class RequestOptions:
    """What one question may change; None means the preset's default."""

    method: str = "seats"
    trr: float | None = None
    video_trr: float | None = None
    audio_trr: float | None = None
    fps: float | None = None
    max_frames: int | None = None
    max_new_tokens: int | None = None
    seed: int = 0
    kv_policy: str | None = None
    score_layer: str | None = None
    ratio_mode: str | None = None
    saliency_span: str | None = None
    frame_sizing: str | None = None
    processor_fps: str | None = None  # "sampled" (the true fps) or "official" (none: the processor's default)
    allow_long_context: bool = False  # run even when the LLM input exceeds the model's context length

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def of(cls, given: dict) -> "RequestOptions":
        """From keyword options (``Seats.ask``/``decode``): an unknown name is a ConfigError, None means default."""
        unknown = set(given) - set(cls.names())
        if unknown:
            raise ConfigError(f"unknown option(s) {', '.join(sorted(unknown))}; known: {', '.join(cls.names())}")
        return cls(**{k: v for k, v in given.items() if v is not None})

    def check(self, config: ModelConfig) -> "RequestOptions":
        """Validate every option against ``config``; returns self so calls chain."""
        for name in CHOICES:
            check_choice(name, getattr(self, name))
        cut = media_cut_layer(self.method) if isinstance(self.method, str) else None
        if cut is not None and not 0 <= cut < config.architecture.num_layers:
            raise ConfigError(f"--method {self.method!r}: the layer must be in 0..{config.architecture.num_layers - 1}")
        for name in ("trr", "video_trr", "audio_trr"):
            check_ratio(name, getattr(self, name))
        if self.max_new_tokens is not None and (isinstance(self.max_new_tokens, bool)
                                                or not isinstance(self.max_new_tokens, int)
                                                or self.max_new_tokens < 1):
            raise ConfigError(f"--max-new-tokens {self.max_new_tokens!r} must be a whole number >= 1")
        limit = config.architecture.max_position_embeddings
        if limit and self.max_new_tokens is not None and self.max_new_tokens > limit:
            raise ConfigError(f"--max-new-tokens {self.max_new_tokens} is more than {config.name} can read "
                              f"({limit} tokens of context)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not -2**63 <= self.seed < 2**63:
            raise ConfigError(f"--seed {self.seed!r} must be a whole number in -2^63..2^63-1")
        if not isinstance(self.allow_long_context, bool):
            raise ConfigError(f"--allow-long-context must be true or false, got {self.allow_long_context!r}")
        try:
            self.frame_policy(config)
        except MediaError as e:
            raise ConfigError(str(e)) from None
        return self

    def frame_policy(self, config: ModelConfig) -> FramePolicy:
        """The preset's media policy with this request's --fps / --max-frames / --frame-sizing / --processor-fps."""
        return frame_policy(config, self.fps, self.max_frames, self.frame_sizing, self.processor_fps)

    def new_tokens(self, config: ModelConfig) -> int:
        return config.max_new_tokens if self.max_new_tokens is None else self.max_new_tokens


def frame_policy(config: ModelConfig, fps: float | None = None, max_frames: int | None = None,
                 frame_sizing: str | None = None, processor_fps: str | None = None) -> FramePolicy:
    """The preset's media policy with the given overrides (validated on construction)."""
    base = {f.name: getattr(config.media, f.name) for f in dataclasses.fields(FramePolicy)}
    given = (("fps", fps), ("max_frames", max_frames), ("frame_sizing", frame_sizing),
             ("processor_fps", processor_fps))
    return FramePolicy(**(base | {k: v for k, v in given if v is not None}))



def check_load_options(device: str, dtype: str, attn_implementation: str, device_map: str | None = None,
                       decode_mode: str = "auto") -> None:
    """Model-loading options, checked before anything is decoded or loaded (what only the loaded model can tell,
    such as whether its decode step can be captured, is checked once it is loaded: engine.decode_mode_for). The
    CLI and ``Seats(...)`` both call it: a bad value is a ConfigError with one line naming it."""
    if device_map not in (None, "auto"):
        raise ConfigError(f"--device-map {device_map!r} is not one of: auto")
    if device_map == "auto" and device == "cpu":
        raise ConfigError("--device-map auto spreads a model over GPUs; it cannot be used with --device cpu")
    check_choice("dtype", dtype, DTYPES)
    check_choice("attn_implementation", attn_implementation, ATTN_IMPLEMENTATIONS)
    if device not in ("auto", "cpu", "cuda") and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise ConfigError(f"--device {device!r} is not one of: auto, cpu, cuda, cuda:N")
    check_choice("decode_mode", decode_mode, DECODE_MODES)
    if decode_mode == "compiled" and device_map == "auto":
        raise ConfigError("--decode-mode compiled needs the model on one device (not --device-map auto)")
    if decode_mode == "cuda-graph" and (device == "cpu" or device_map == "auto"):
        raise ConfigError("--decode-mode cuda-graph needs the model on one CUDA device"
                          + (" (not --device cpu)" if device == "cpu" else " (not --device-map auto)"))
    if decode_mode in ("cuda-graph", "compiled", "static") and attn_implementation == "flash_attention_2":
        raise ConfigError(f"--decode-mode {decode_mode} passes an additive mask: --attn-implementation sdpa or "
                          "eager only")


__all__ = ["check_text", "CHOICES", "KV_POLICIES", "METHODS", "PROCESSOR_FPS", "RATIO_MODES", "SALIENCY_SPANS",
           "SCORE_LAYERS",
           "RequestOptions",
           "check_choice", "check_load_options", "check_ratio", "frame_policy"]
