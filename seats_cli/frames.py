"""Frame sampling and sizing policy (pure math): how many frames a clip gives, which ones, and the one size the
model receives — qwen-omni-utils' policy (`smart_nframes` / `smart_resize`), then, with frame_sizing "processor",
the stock processor's own bounds (docs/METHOD.md §2). No decoding here (``seats_cli.media`` decodes)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from seats_cli.choices import FRAME_SIZINGS, PROCESSOR_FPS

_MAX_ASPECT = 200


class MediaError(ValueError):
    """Bad or unreadable input; str(e) is one clear line for the user."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


@dataclass(frozen=True)
class FramePolicy:
    """Frame sampling, resize and audio policy; defaults are Qwen2.5-Omni's (configs pass their own)."""

    fps: float = 2.0
    min_frames: int = 4
    max_frames: int = 128
    frame_factor: int = 2
    image_factor: int = 28
    min_pixels: int = 128 * 28 * 28
    max_pixels: int = 144 * 28 * 28
    total_pixels: int = 24576 * 28 * 28
    audio_sample_rate: int = 16000
    max_audio_seconds: float = 300.0
    # The stock processor's own video size bounds (its class-level default, which the authors' pipeline
    # applies after qwen-omni-utils' sizing). frame_sizing "processor" applies them too (the official LLM
    # input); "preset" keeps qwen-omni-utils' size (min/max/total_pixels above) as it is.
    processor_min_pixels: int = 128 * 28 * 28
    processor_max_pixels: int = 768 * 28 * 28
    frame_sizing: str = "processor"
    # what the processor is told of the time: "sampled" = the true sampling fps (positions follow real time), or
    # "official" = nothing, as the authors' wrappers: it assumes its default (Qwen2.5: 2, Qwen3: 1 fps)
    processor_fps: str = "sampled"

    def __post_init__(self) -> None:
        def positive(x) -> bool:
            return isinstance(x, (int, float)) and math.isfinite(x) and x > 0

        if not positive(self.fps) or isinstance(self.fps, bool):
            raise MediaError(f"--fps must be a finite number > 0 (got {self.fps!r})")
        for name in ("frame_factor", "image_factor", "min_frames", "min_pixels", "audio_sample_rate"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise MediaError(f"{name} must be a whole number >= 1 (got {getattr(self, name)})")
        lowest = _ceil_by(self.min_frames, self.frame_factor)
        if not isinstance(self.max_frames, int) or isinstance(self.max_frames, bool):
            raise MediaError(f"--max-frames must be a whole number (got {self.max_frames!r})")
        if self.max_frames < lowest:
            raise MediaError(f"--max-frames must be at least {lowest} (got {self.max_frames})")
        if not (positive(self.max_pixels) and self.max_pixels >= self.min_pixels):
            raise MediaError(f"max_pixels ({self.max_pixels}) must be >= min_pixels ({self.min_pixels})")
        for name in ("total_pixels", "max_audio_seconds"):
            if not positive(getattr(self, name)):
                raise MediaError(f"{name} must be > 0 (got {getattr(self, name)})")
        if self.frame_sizing not in FRAME_SIZINGS:
            raise MediaError(f"--frame-sizing must be one of {', '.join(FRAME_SIZINGS)} (got {self.frame_sizing!r})")
        if self.processor_fps not in PROCESSOR_FPS:
            raise MediaError(f"--processor-fps must be one of {', '.join(PROCESSOR_FPS)} (got {self.processor_fps!r})")
        if not (positive(self.processor_min_pixels) and self.processor_max_pixels >= self.processor_min_pixels):
            raise MediaError(f"processor_max_pixels ({self.processor_max_pixels}) must be >= processor_min_pixels "
                             f"({self.processor_min_pixels}) > 0")


# ----------------------------------------------------------------------------- policy (pure math)

def _round_by(x: float, f: int) -> int:
    return round(x / f) * f


def _ceil_by(x: float, f: int) -> int:
    return math.ceil(x / f) * f


def _floor_by(x: float, f: int) -> int:
    return math.floor(x / f) * f


def plan_frames(total_frames: int, source_fps: float, policy: FramePolicy) -> int:
    """Number of frames to sample from a stream of `total_frames` frames at `source_fps`."""
    if total_frames < 1:
        raise MediaError("the video has no frames")
    if not (math.isfinite(source_fps) and source_fps > 0):
        raise MediaError(f"the video's frame rate is unusable ({source_fps})")
    f, lo = policy.frame_factor, _ceil_by(policy.min_frames, policy.frame_factor)
    if total_frames < lo:  # too short: repeat frames to reach the minimum
        return lo
    wanted = total_frames / source_fps * policy.fps  # duration x fps
    return _floor_by(min(max(wanted, lo), _floor_by(min(policy.max_frames, total_frames), f)), f)


def frame_indices(total_frames: int, n: int) -> list[int]:
    """`linspace(0, total-1, n)` rounded (torch float32, as the reference); repeats when total < n."""
    return torch.linspace(0, max(total_frames - 1, 0), n).round().long().tolist()


def _smart_resize(height: int, width: int, factor: int, min_pixels: float, max_pixels: float) -> tuple[int, int]:
    if height < 1 or width < 1:
        raise MediaError(f"the video has an invalid frame size {width}x{height}")
    if max(height, width) / min(height, width) > _MAX_ASPECT:
        raise MediaError(f"the video's aspect ratio {width}x{height} is too extreme (max {_MAX_ASPECT}:1)")
    h, w = max(factor, _round_by(height, factor)), max(factor, _round_by(width, factor))
    if h * w > max_pixels:  # scale down, sides rounded down
        beta = math.sqrt(height * width / max_pixels)
        h, w = max(factor, _floor_by(height / beta, factor)), max(factor, _floor_by(width / beta, factor))
    elif h * w < min_pixels:  # scale up, sides rounded up
        beta = math.sqrt(min_pixels / (height * width))
        h, w = _ceil_by(height * beta, factor), _ceil_by(width * beta, factor)
    return h, w


def frame_pixel_cap(nframes: int, policy: FramePolicy) -> float:
    """Per-frame pixel cap: max_pixels, shrunk to share total_pixels among `nframes` frames."""
    shared = policy.total_pixels / max(nframes, 1) * policy.frame_factor
    return max(min(policy.max_pixels, shared), int(policy.min_pixels * 1.05))


def plan_resize(height: int, width: int, nframes: int, policy: FramePolicy) -> tuple[int, int]:
    """(height, width) the model receives for `nframes` sampled frames of a height x width video: the one
    place that decides frame size. qwen-omni-utils' policy (per-frame cap shared over the frames), then, with
    frame_sizing "processor", the processor's own bounds on that size, as the stock processor would apply them
    (768 frames of 16:9: 224x420, then 252x448). Frames are resized once, straight to this size."""
    h, w = _smart_resize(height, width, policy.image_factor, policy.min_pixels, frame_pixel_cap(nframes, policy))
    if policy.frame_sizing == "processor":
        h, w = _smart_resize(h, w, policy.image_factor, policy.processor_min_pixels, policy.processor_max_pixels)
    return h, w
