"""The library API: load a model once, ask many questions.

>>> from seats_cli import Seats
>>> s = Seats("tiny")                      # or "Qwen/Qwen2.5-Omni-7B", a local folder ...
>>> r = s.ask("samples/sample.mp4", "What is moving?", trr=0.25)
>>> r.answer, r.flops["reduction"], r.to_dict()
"""

from __future__ import annotations

import dataclasses
import os
import random

import numpy as np
import torch

from seats_cli.config import SALIENCY_SPANS, ConfigError, ModelConfig, resolve_config
from seats_cli.engine import decode, prefill
from seats_cli.flops import TextModelDims, prefill_flops
from seats_cli.media import FramePolicy, decode_video
from seats_cli.methods import METHODS, SeatsPlan, build_pruner
from seats_cli.models import load_model
from seats_cli.report import AskResult, layer_rows, stage1_reports, window_reports
from seats_cli.schedule import RATIO_MODES, achieved_retention

TINY_NOTE = "tiny random-weight model: answers are meaningless (use a real checkpoint for real answers)"


def frame_policy(config: ModelConfig, fps: float | None = None, max_frames: int | None = None,
                 frame_sizing: str | None = None) -> FramePolicy:
    """The preset's media policy with the request's --fps / --max-frames / --frame-sizing (validated on
    construction)."""
    base = {f.name: getattr(config.media, f.name) for f in dataclasses.fields(FramePolicy)}
    given = (("fps", fps), ("max_frames", max_frames), ("frame_sizing", frame_sizing))
    return FramePolicy(**(base | {k: v for k, v in given if v is not None}))


def retention_note(requested: float, achieved: float, ratio_mode: str, method: str) -> str | None:
    """A note when the achieved layer-mean retention differs from the requested TRR by more than 0.02."""
    if abs(achieved - requested) <= 0.02:
        return None
    why = ("the official (R_v, R_a) pair weighted by this clip's audio share; --ratio-mode exact targets R"
           if ratio_mode == "table" else "rounding, the 1-token floors and Stage III")
    if method == "seats" and achieved > requested and ratio_mode == "exact":
        why = "Stage I does not run when both modalities keep everything, and Stage III caps the rest"
    return f"requested TRR {requested:g}, achieved {achieved:.3f} ({why})"


def check_question(question: str) -> str:
    if question is None or not str(question).strip():
        raise ValueError("the question is empty")
    return str(question).strip()


class Seats:
    """A loaded thinker plus its processor; ``ask`` answers one question about one video."""

    def __init__(self, model: str = "Qwen/Qwen2.5-Omni-7B", *, config: str | ModelConfig | None = None,
                 device: str = "auto", dtype: str = "auto", attn_implementation: str = "sdpa",
                 revision: str | None = None, local_files_only: bool = False,
                 cache_dir: str | os.PathLike | None = None):
        self.config = config if isinstance(config, ModelConfig) else resolve_config(model, config)
        self.adapter = load_model(model, config=self.config, device=device, dtype=dtype,
                                  attn_implementation=attn_implementation, revision=revision,
                                  local_files_only=local_files_only, cache_dir=cache_dir)
        self.model_name = model
        self.dims = TextModelDims.from_hf_text_config(self.adapter.text_config)

    def ask(self, video: str | os.PathLike, question: str, *, method: str = "seats", trr: float | None = None,
            video_trr: float | None = None, audio_trr: float | None = None, fps: float | None = None,
            max_frames: int | None = None, max_new_tokens: int = 128, seed: int = 0,
            kv_policy: str | None = None, score_layer: str | None = None, ratio_mode: str | None = None,
            saliency_span: str | None = None, frame_sizing: str | None = None,
            system_prompt: str | None = None) -> AskResult:
        question = check_question(question)
        if max_new_tokens < 1:
            raise ValueError("--max-new-tokens must be at least 1")
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
        for name, value in (("trr", trr), ("video_trr", video_trr), ("audio_trr", audio_trr)):
            if value is not None and not 0 < value <= 1:
                raise ConfigError(f"{name} must be in (0, 1], got {value}")
        kv_policy = kv_policy or self.config.seats.kv_policy
        if kv_policy not in ("survivors", "per_layer"):
            raise ConfigError(f"--kv-policy must be survivors or per_layer, got {kv_policy!r}")
        if ratio_mode not in (None, *RATIO_MODES):
            raise ConfigError(f"--ratio-mode must be one of {', '.join(RATIO_MODES)}, got {ratio_mode!r}")
        if saliency_span not in (None, *SALIENCY_SPANS):
            raise ConfigError(f"--saliency-span must be one of {', '.join(SALIENCY_SPANS)}, got {saliency_span!r}")
        _seed_everything(seed)
        media = decode_video(video, frame_policy(self.config, fps, max_frames, frame_sizing))
        ad = self.adapter
        request = ad.prepare(media, question, system_prompt)
        layout = request.layout
        pruner, plan = build_pruner(method, self.config, layout, trr=trr, video_trr=video_trr, audio_trr=audio_trr,
                                    score_layer=score_layer, seed=seed, ratio_mode=ratio_mode,
                                    saliency_span=saliency_span)
        is_seats = isinstance(plan, SeatsPlan)

        ad.synchronize()
        import time

        t0 = time.perf_counter()
        encoded = ad.encode(request, saliency=plan.saliency_span if is_seats and plan.prunes else None)
        ad.synchronize()
        encode_ms = (time.perf_counter() - t0) * 1000
        result = prefill(ad, encoded, layout, pruner, kv_policy=kv_policy)
        tokens, decode_ms = decode(ad, result, encoded.next_position, max_new_tokens=max_new_tokens)

        layers = layer_rows(layout, result.layer_live)
        pruned = [sum(r[k] for k in ("video", "audio", "text")) for r in layers]
        full = [layout.seq_len] * len(layers)
        f_full, f_pruned = prefill_flops(full, self.dims), prefill_flops(pruned, self.dims)
        notes = list(media.notes)
        if self.config.tiny:
            notes.insert(0, TINY_NOTE)
        schedule = None
        if plan is not None:
            achieved = achieved_retention(layers, layout.n_video, layout.n_audio)
            schedule = plan.to_dict() | {"achieved_trr": achieved["overall"], "achieved_video_trr": achieved["video"],
                                         "achieved_audio_trr": achieved["audio"]}
            note = None if achieved["overall"] is None else retention_note(plan.trr, achieved["overall"],
                                                                           plan.ratio_mode, method)
            if note:
                notes.append(note)
        if not self.config.calibrated and not self.config.tiny and method == "seats":
            notes.append(f"{self.config.name}: SEATS layer boundaries are uncalibrated (scaled from the 7B)")
        return AskResult(
            answer=ad.decode_text(tokens), model=self.model_name, method=method,
            trr=None if plan is None else plan.trr,
            tokens={"video": layout.n_video, "audio": layout.n_audio, "text": layout.n_text},
            flops={"full": float(f_full), "pruned": float(f_pruned), "reduction": f_full / f_pruned},
            latency_ms={"encode": encode_ms, "prefill": result.prefill_ms, "decode": decode_ms},
            layers=layers, windows=window_reports(layout, result.stage_live), generated_tokens=len(tokens),
            device=_device_name(ad.device), dtype=str(ad.dtype).replace("torch.", ""), kv_policy=kv_policy,
            schedule=schedule, media=media.to_dict(), notes=notes,
            stage1_windows=stage1_reports(layout, plan, result.stage_live) if is_seats else None,
        )


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
