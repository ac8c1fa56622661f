"""`seats ask VIDEO QUESTION`: one answer and what it cost."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from seats_cli.cli.common import (
    AttnOpt, AudioTrrOpt, ConfigOpt, DecodeModeOpt, DeviceMapOpt, DeviceOpt, DtypeOpt, FpsOpt, FrameSizingOpt, JsonOpt,
    KvOpt, LocalOnlyOpt, LongContextOpt, MaxFramesOpt, MaxNewOpt, MethodOpt, ModelOpt, ProcessorFpsOpt, QuietOpt,
    RatioModeOpt, RevisionOpt,
    SaliencySpanOpt, ScoreLayerOpt, SeedOpt, TrrOpt, VideoTrrOpt, app, check_load_options, guarded, print_json,
    quiet_libraries, read_question, show_progress, status, stdout,
)


SHORT = "Answer a question about a video and report what it cost."


@app.command(short_help=SHORT)
@guarded
def ask(
    video: Path = typer.Argument(..., help="Video file (its own sound track is used)."),
    question: str = typer.Argument(..., help="The question; '-' reads it from stdin."),
    model: str = ModelOpt, config: Optional[str] = ConfigOpt, method: str = MethodOpt,
    trr: Optional[float] = TrrOpt, video_trr: Optional[float] = VideoTrrOpt, audio_trr: Optional[float] = AudioTrrOpt,
    device: str = DeviceOpt, device_map: Optional[str] = DeviceMapOpt, dtype: str = DtypeOpt,
    attn_implementation: str = AttnOpt, decode_mode: str = DecodeModeOpt,
    fps: Optional[float] = FpsOpt, max_frames: Optional[int] = MaxFramesOpt, max_new_tokens: Optional[int] = MaxNewOpt,
    seed: int = SeedOpt, kv_policy: Optional[str] = KvOpt, score_layer: Optional[str] = ScoreLayerOpt,
    ratio_mode: Optional[str] = RatioModeOpt, saliency_span: Optional[str] = SaliencySpanOpt,
    frame_sizing: Optional[str] = FrameSizingOpt, processor_fps: Optional[str] = ProcessorFpsOpt,
    allow_long_context: bool = LongContextOpt,
    revision: Optional[str] = RevisionOpt, local_files_only: bool = LocalOnlyOpt,
    json_out: bool = JsonOpt, quiet: bool = QuietOpt,
) -> None:
    """Answer QUESTION about VIDEO and report what it cost (tokens, FLOPs, latency, per-window budgets)."""
    from seats_cli.api import Seats
    from seats_cli.config import resolve_config
    from seats_cli.media import decode_video, probe_video
    from seats_cli.prefetch import Prefetcher
    from seats_cli.request import RequestOptions

    question = read_question(question)
    cfg = resolve_config(model, config)
    given = dict(fps=fps, max_frames=max_frames, method=method, trr=trr, video_trr=video_trr, audio_trr=audio_trr,
                 max_new_tokens=max_new_tokens, seed=seed, kv_policy=kv_policy, score_layer=score_layer,
                 ratio_mode=ratio_mode, saliency_span=saliency_span, frame_sizing=frame_sizing,
                 processor_fps=processor_fps, allow_long_context=allow_long_context)
    options = RequestOptions(**{k: v for k, v in given.items() if v is not None}).check(cfg)
    check_load_options(device, dtype, attn_implementation, device_map, decode_mode)
    quiet_libraries()
    progress = show_progress(quiet)
    ahead = Prefetcher()
    if _on_gpu(device, device_map):  # the model loads onto the GPU while the CPU decodes: both at once
        probe_video(video)  # a missing or non-video file is reported before any model is loaded
        ahead.start(video, options.frame_policy(cfg))
        media = video
    else:  # on the CPU both would share the same cores (measured slower): decode, then load
        with status(f"decoding {video}", progress):  # a bad file is reported before any model is loaded
            media = decode_video(video, options.frame_policy(cfg))
    try:
        with status(f"loading {model}", progress):
            seats = Seats(model, config=cfg, device=device, dtype=dtype, attn_implementation=attn_implementation,
                          revision=revision, local_files_only=local_files_only, device_map=device_map,
                          decode_mode=decode_mode, prefetcher=ahead)
        with status("answering", progress):
            result = seats.ask(media, question, **given)
    finally:
        ahead.close()
    if json_out:
        print_json(result.to_dict())
    else:
        from seats_cli.report import render

        render(result, stdout)


def _on_gpu(device: str, device_map: str | None) -> bool:
    """Whether the model will load onto a GPU (an unusable device is reported by the load itself)."""
    import torch

    from seats_cli.models.loading import resolve_device

    if device_map is not None:
        return torch.cuda.is_available()
    try:
        return resolve_device(device).type == "cuda"
    except Exception:  # noqa: BLE001
        return False
