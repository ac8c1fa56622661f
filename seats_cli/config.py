"""Model presets: one frozen, validated config object per `configs/*.yaml`.

Model specifics (layer boundaries, token rates, window sizes, ratio tables) live in the YAML files, not in
code. ``ModelConfig.from_name("qwen2.5-omni-7b")`` loads a preset; ``resolve_config`` picks the preset for a
``--model`` value (hub id, local folder, or ``tiny``) unless ``--config`` names one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from seats_cli.flops import TextModelDims
from seats_cli.frames import FramePolicy
from seats_cli.choices import KV_POLICIES, RATIO_MODES, SALIENCY_SPANS, SCORE_LAYERS


class ConfigError(ValueError):
    """A configuration or option value is invalid; the message is one line for the user."""


def configs_dir() -> Path:
    for cand in (Path(__file__).resolve().parents[1] / "configs", Path(sys.prefix) / "share" / "seats" / "configs"):
        if cand.is_dir():
            return cand
    raise ConfigError("cannot find the configs/ folder of seats (is the package installed?)")


@dataclass(frozen=True)
class Architecture(TextModelDims):
    """The thinker text model's dimensions (``intermediate_size`` = the FFN width one token passes through:
    for MoE the active experts' total), plus the MoE facts when there are experts."""

    num_experts: int | None = None
    num_experts_per_tok: int | None = None
    moe_intermediate_size: int | None = None
    cuda_graph_decode: bool = True  # one decode step can be captured as a CUDA graph (no host sync inside)
    max_position_embeddings: int | None = None  # the context length (analytic profiles warn beyond it)
    # a mixture-of-experts model's experts kernel, named rather than left to the transformers default (reproducible
    # runs; docs/METHOD.md §1): "grouped_mm", "batched_mm" or "eager"
    experts_implementation: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.experts_implementation not in (None, "grouped_mm", "batched_mm", "eager"):
            raise ConfigError(f"architecture.experts_implementation must be grouped_mm, batched_mm or eager, got "
                              f"{self.experts_implementation!r}")
        if self.num_experts_per_tok and self.moe_intermediate_size:
            active = self.num_experts_per_tok * self.moe_intermediate_size
            if self.intermediate_size != active:
                raise ConfigError(f"intermediate_size must be the active FFN width {active} "
                                  f"(experts per token x expert width), got {self.intermediate_size}")


@dataclass(frozen=True)
class MediaSettings(FramePolicy):
    """Frame sampling, resize and audio policy (``FramePolicy``) plus the model's token rates."""

    audio_tokens_per_second: int = 25
    position_ids_per_second: int = 25  # M-RoPE temporal ids per second; the processor chunks by these
    seconds_per_window: float = 2.0
    processor_default_fps: float = 2.0  # the fps the stock processor assumes when not told one (Qwen3-Omni: 1)
    interleave: str = "chunks"  # how the processor interleaves video and audio: fixed 2-s "chunks" (Qwen2.5) or
    # whole grids and audio tokens merged by their time ids, "time" (Qwen3-Omni)
    # where the stock processor rescales, normalises and patchifies the frames and computes the log-mel features:
    # "device" (the model's CUDA device when it has one: the frames go up as uint8; the same arithmetic, the STFT on
    # cuFFT) or "cpu" (as the authors' pipeline); a model on the CPU processes there either way
    preprocess_on: str = "device"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.interleave not in ("chunks", "time"):
            raise ConfigError(f"media.interleave must be chunks or time, got {self.interleave!r}")
        if self.preprocess_on not in ("device", "cpu"):
            raise ConfigError(f"media.preprocess_on must be device or cpu, got {self.preprocess_on!r}")
        if not (isinstance(self.processor_default_fps, (int, float)) and self.processor_default_fps > 0):
            raise ConfigError(f"media.processor_default_fps must be > 0, got {self.processor_default_fps!r}")

    def processor_fps_for(self, sample_fps: float, mode: str) -> float:
        """The fps the processor's time arithmetic uses: the true sampling fps ("sampled"), or its default."""
        return float(sample_fps) if mode == "sampled" else float(self.processor_default_fps)


@dataclass(frozen=True)
class SeatsSettings:
    prune_before: tuple[int, ...]
    text_only_from: int
    ratio_table: tuple[tuple[float, float, float], ...]
    default_trr: float = 0.35
    encoder_ratio_scale: float = 1.4
    temperature: float = 0.1
    score_layer: str = "previous"
    kv_policy: str = "survivors"
    ratio_mode: str = "table"  # official (R_v, R_a) pairs; "exact" scales the nearest pair to hit R
    stage1_video_grids: int = 2  # Stage I video window: this many temporal grids (288 tokens at 16:9)
    stage1_audio_tokens: int = 50  # Stage I audio window (2 s at 25 tokens/s)
    saliency_span: str = "official"  # Stage I window's span; "encoder": the encoder layer's own span
    saliency_audio_span: int | None = None  # official audio stat window in encoder rows (None: 2 x stage1_audio_tokens)
    stage2_rebalance: bool = False  # official budget arithmetic; True trims the >=1-per-modality surplus to K
    late_removal: bool = True  # Stage III; switchable only from a config file (tests: R = 1 equals full)


@dataclass(frozen=True)
class BaselineSettings:
    """The baselines' hyperparameters (docs/METHOD.md §10; YAML ``baselines:``): the authors' defaults. Budgets
    come from the request's (R_v, R_a) pair; these only shape how each method spends them."""

    omnizip_contextual: float = 0.05  # audio anchors per audio token (c)
    omnizip_merge_top: int = 3  # tokens merged into each audio anchor (g)
    omnizip_bounds: tuple[float, float] = (0.35, 0.75)  # guided chunks' video pruning ratios (retention 0.25..0.65)
    # a clip with video or audio only: "skip" keeps it all (the authors' Thinker runs OmniZip only when both are
    # there); "core" runs the core function anyway (video: every chunk unguided at rho_v; audio: merged alone)
    omnizip_unpaired: str = "skip"
    fastvid_segments: int = 8  # DySeg: at least c - 1 cuts (c)
    fastvid_tau: float = 0.84  # DySeg: cut below this transition similarity
    fastvid_tau_ignore: float = 0.95  # static sub-segments: cut below this similarity
    fastvid_context_share: float = 0.4  # share of a segment's budget spent on context centres (d)
    fastvid_context_every: int = 4  # context centres on every p-th sub-segment, counted from the end (p)
    fastvid_centre_weight: float = 0.6  # DTM: a centre's weight floor (beta)

    def __post_init__(self) -> None:
        lo, hi = self.omnizip_bounds
        if not 0 <= lo <= hi <= 1:
            raise ConfigError(f"baselines.omnizip_bounds must be 0 <= low <= high <= 1, got {self.omnizip_bounds}")
        for key in ("omnizip_contextual", "fastvid_context_share", "fastvid_centre_weight"):
            if not 0 <= getattr(self, key) <= 1:
                raise ConfigError(f"baselines.{key} must be in [0, 1], got {getattr(self, key)}")
        if self.omnizip_unpaired not in ("skip", "core"):
            raise ConfigError(f"baselines.omnizip_unpaired must be skip or core, got {self.omnizip_unpaired!r}")
        for key in ("omnizip_merge_top", "fastvid_segments", "fastvid_context_every"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ConfigError(f"baselines.{key} must be a whole number >= 1, got {getattr(self, key)!r}")

    @classmethod
    def from_dict(cls, raw: dict | None) -> "BaselineSettings":
        raw = dict(raw or {})
        unknown = set(raw) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown baselines setting(s) {', '.join(sorted(unknown))}")
        if "omnizip_bounds" in raw:
            raw["omnizip_bounds"] = tuple(float(x) for x in raw["omnizip_bounds"])
        return cls(**raw)


@dataclass(frozen=True)
class ModelConfig:
    name: str
    family: str
    hub_id: str
    architecture: Architecture
    media: MediaSettings
    seats: SeatsSettings
    calibrated: bool = True
    tiny: bool = False
    system_prompt: str = "You are a helpful assistant."
    max_new_tokens: int = 128  # default answer length (the tiny demo model: a few tokens)
    baselines: BaselineSettings = field(default_factory=BaselineSettings)
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        s, a = self.seats, self.architecture
        pb = list(s.prune_before)
        if not pb or any(b <= 0 for b in pb) or any(x >= y for x, y in zip(pb, pb[1:])):
            raise ConfigError(f"{self.name}: prune_before must be increasing positive layer indices, got {pb}")
        if not pb[-1] < s.text_only_from <= a.num_layers:
            raise ConfigError(
                f"{self.name}: need prune_before < text_only_from <= num_layers ({a.num_layers}), "
                f"got {pb} and {s.text_only_from}"
            )
        if not 0 < s.default_trr <= 1:
            raise ConfigError(f"{self.name}: default_trr must be in (0, 1], got {s.default_trr}")
        if s.temperature <= 0:
            raise ConfigError(f"{self.name}: temperature must be > 0")
        for key, allowed in (("ratio_mode", RATIO_MODES), ("saliency_span", SALIENCY_SPANS),
                             ("score_layer", SCORE_LAYERS), ("kv_policy", KV_POLICIES)):
            if getattr(s, key) not in allowed:
                raise ConfigError(f"{self.name}: {key} must be one of {', '.join(allowed)}, got {getattr(s, key)!r}")
        for key in ("stage1_video_grids", "stage1_audio_tokens"):
            if not isinstance(getattr(s, key), int) or getattr(s, key) < 1:
                raise ConfigError(f"{self.name}: {key} must be a whole number >= 1, got {getattr(s, key)!r}")

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "ModelConfig":
        try:
            raw = yaml.safe_load(Path(path).read_text())
        except OSError as e:
            raise ConfigError(f"cannot read config {path}: {e.strerror or e}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"config {path} is not valid YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"config {path} must be a YAML mapping")
        try:
            seats = dict(raw["seats"])
            seats["prune_before"] = tuple(int(x) for x in seats["prune_before"])
            seats["ratio_table"] = tuple(tuple(float(v) for v in row) for row in seats["ratio_table"])
            return cls(
                name=raw["name"], family=raw["family"], hub_id=raw.get("hub_id", raw["name"]),
                architecture=Architecture(**raw["architecture"]), media=MediaSettings(**raw.get("media", {})),
                seats=SeatsSettings(**seats), calibrated=bool(raw.get("calibrated", True)),
                tiny=bool(raw.get("tiny", False)), max_new_tokens=int(raw.get("max_new_tokens", 128)),
                system_prompt=" ".join(str(raw.get("system_prompt", cls.system_prompt)).split()),
                baselines=BaselineSettings.from_dict(raw.get("baselines")),
                source=str(path),
            )
        except (KeyError, TypeError) as e:
            raise ConfigError(f"config {path} is missing or has a bad field: {e}") from None

    @classmethod
    def from_name(cls, name: str) -> "ModelConfig":
        wanted = name.lower()
        for p in sorted(configs_dir().glob("*.yaml")):
            cfg = cls.from_yaml(p)
            if wanted in (cfg.name.lower(), cfg.hub_id.lower(), p.stem.lower()):
                return cfg
        raise ConfigError(f"unknown config {name!r}; known: {', '.join(preset_names())}")

    def replace_seats(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, seats=dataclasses.replace(self.seats, **changes))


OFFLINE_MODELS = ("tiny", "tiny-qwen3", "synthetic")  # built by the project, offline (hub_id of their presets)


def preset_names() -> list[str]:
    return [ModelConfig.from_yaml(p).name for p in sorted(configs_dir().glob("*.yaml"))]


def resolve_config(model: str, config: str | None = None) -> ModelConfig:
    """The preset for ``--model`` (or the ``--config`` file/name when given). An empty name is refused, not read
    as the current folder or as no --config."""
    if not str(model).strip():
        raise ConfigError("--model is empty: give a hub id such as Qwen/Qwen2.5-Omni-7B, a checkpoint folder, or "
                          "'tiny'")
    if config is not None and not str(config).strip():
        raise ConfigError(f"--config is empty: give a preset ({', '.join(preset_names())}) or a YAML file")
    if _looks_like_a_path(str(model)) and not Path(model).exists():
        tilde = " (a ~ in a quoted name is not expanded)" if str(model).startswith("~") else ""
        raise ConfigError(f"--model {model}: no such folder{tilde}")
    if config:
        return ModelConfig.from_yaml(config) if Path(config).is_file() else ModelConfig.from_name(config)
    if model in OFFLINE_MODELS:
        return ModelConfig.from_name(model)
    local = Path(model)
    if local.is_dir() and (local / "config.json").is_file():
        return _guess_from_local(local)
    if local.is_dir():
        raise ConfigError(f"--model {model}: a folder but not a checkpoint (it has no config.json); give a "
                          f"checkpoint folder, a hub id such as Qwen/Qwen2.5-Omni-7B, or 'tiny'")
    if local.exists():
        raise ConfigError(f"--model {model}: a file, not a checkpoint folder or hub id")
    try:
        return ModelConfig.from_name(model)
    except ConfigError:
        raise ConfigError(
            f"no preset for model {model!r}; pass --config with one of: {', '.join(preset_names())} or a YAML file"
        ) from None


def _looks_like_a_path(model: str) -> bool:
    """A folder name, not a hub id (``namespace/name``): absolute, relative with ./ or ../, from ~, or deeper."""
    return (model.startswith(("/", "./", "../", "~")) or model in (".", "..") or "\\" in model
            or model.count("/") > 1)


def _guess_from_local(folder: Path) -> ModelConfig:
    """A local checkpoint: match its text model's depth and width against the presets."""
    if (folder / "seats_tiny.json").is_file():
        return ModelConfig.from_name("tiny")
    if (folder / "seats_tiny_qwen3.json").is_file():
        return ModelConfig.from_name("tiny-qwen3")
    if (folder / "seats_synthetic.json").is_file():
        return ModelConfig.from_name("synthetic")
    cfg = json.loads((folder / "config.json").read_text())
    text = cfg.get("thinker_config", cfg).get("text_config", {})
    key = (text.get("num_hidden_layers"), text.get("hidden_size"))
    for p in sorted(configs_dir().glob("*.yaml")):
        preset = ModelConfig.from_yaml(p)
        a = preset.architecture
        if (a.num_layers, a.hidden_size) == key and not preset.tiny:
            return preset
    raise ConfigError(f"{folder}: no preset matches this checkpoint ({key}); pass --config")
