"""A request's token layout from the preset alone (no weights): frames and resize from ``frames.plan_resize``,
``(H/factor)·(W/factor)`` tokens per temporal grid of 2 frames, audio tokens from the sample count with the
feature extractor's arithmetic, the processor's interleaved windows, and the text tokens (the tokenizer when it is
cached offline, else an estimate). ``seats profile --analytic`` and the benchmarks lay requests out with it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from seats_cli.config import ModelConfig
from seats_cli.frames import FramePolicy, plan_resize
from seats_cli.layout import grids_per_window, split_video_run, time_interleaved_runs, window_token_ranges

TEXT_ESTIMATE = 100
DEFAULT_QUESTION = "Describe this video."


# ----------------------------------------------------------------------------------- request layout
@dataclass(frozen=True)
class RequestShape:
    """Token layout of one request as the processor builds it; windows are the engine's (V_j, A_j) pairs."""

    source: str
    frames: int
    height: int
    width: int
    fps: float  # the fps the processor's time arithmetic uses (the sampling fps, or its default: --processor-fps)
    seconds_per_grid: float
    tokens_per_grid: int
    audio_samples: int
    mel_frames: int
    n_text: int
    text_source: str  # "given", "tokenizer", "processor" or "estimate"
    video_windows: tuple[int, ...]
    audio_windows: tuple[int, ...]
    audio_exact: bool = True
    notes: tuple[str, ...] = ()
    sample_rate: int = 16000

    @property
    def grids(self) -> int:
        return self.frames // 2

    @property
    def n_video(self) -> int:
        return sum(self.video_windows)

    @property
    def n_audio(self) -> int:
        return sum(self.audio_windows)

    @property
    def seq_len(self) -> int:
        return self.n_video + self.n_audio + self.n_text

    def to_dict(self) -> dict:
        return {
            "source": self.source, "frames": self.frames, "height": self.height, "width": self.width,
            "fps": self.fps, "seconds_per_grid": self.seconds_per_grid, "grids": self.grids,
            "tokens_per_grid": self.tokens_per_grid, "audio_samples": self.audio_samples,
            "audio_seconds": self.audio_samples / self.sample_rate, "mel_frames": self.mel_frames,
            "tokens": {"video": self.n_video, "audio": self.n_audio, "text": self.n_text, "total": self.seq_len},
            "text_source": self.text_source, "audio_formula_exact": self.audio_exact,
            "windows": [{"index": j, "video": v, "audio": a}
                        for j, (v, a) in enumerate(zip(self.video_windows, self.audio_windows))],
            "notes": list(self.notes),
        }


def audio_token_count(samples: int, config: ModelConfig) -> tuple[int, int, bool]:
    """(mel frames, LLM audio tokens, formula verified) for ``samples`` at the config's sample rate.

    Qwen2.5-Omni: WhisperFeatureExtractor padded to 300 s (a multiple of the 160-sample hop), so the frame
    mask has ceil(samples/160) ones; then the processor's ``_get_feat_extract_output_lengths``:
    (x-1)//2+1, then (x-2)//2+1 → 25 tokens/s. Qwen3-Omni: padding=True gives samples//160 frames; 13 tokens per
    100 frames plus the remainder's conv arithmetic (checked against the stock Qwen3-Omni processor in the tests).
    """
    if samples <= 0:
        return 0, 0, True
    hop = config.media.audio_sample_rate // 100
    if config.family == "qwen3_omni":
        mel = samples // hop
        leave = mel % 100
        feat = (leave - 1) // 2 + 1
        return mel, ((feat - 1) // 2 + 1 - 1) // 2 + 1 + (mel // 100) * 13, True
    mel = min(-(-samples // hop), 300 * 100)  # the extractor's chunk_length: 300 s of 100 frames/s
    x = (mel - 1) // 2 + 1
    return mel, (x - 2) // 2 + 1, True


def window_sizes(grids: int, tokens_per_grid: int, seconds_per_grid: float, n_audio: int,
                 config: ModelConfig) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Video and audio tokens of each window, chunked exactly as the processor interleaves them
    (``layout.window_token_ranges``, shared with ``build_layout``)."""
    if config.media.interleave == "time":  # Qwen3-Omni: whole grids and audio tokens merged by their time ids
        pairs = time_interleaved_runs(grids, tokens_per_grid, seconds_per_grid, n_audio,
                                      config.media.position_ids_per_second)
        if n_audio == 0:  # one video run, reported per 2 s as build_layout_from_runs does
            per = grids_per_window(config.media.seconds_per_window, seconds_per_grid)
            video = tuple(x for v, _ in pairs for x in split_video_run(v, tokens_per_grid, per))
            return video, (0,) * len(video)
        return tuple(v for v, _ in pairs), tuple(a for _, a in pairs)
    ranges = window_token_ranges(grids * tokens_per_grid, tokens_per_grid, seconds_per_grid, n_audio,
                                 position_ids_per_second=config.media.position_ids_per_second,
                                 seconds_per_window=config.media.seconds_per_window)
    video = tuple(0 if v is None else v[1] - v[0] for v, _, _ in ranges)
    audio = tuple(0 if a is None else a[1] - a[0] for _, a, _ in ranges)
    return video, audio


def text_token_count(config: ModelConfig, question: str | None, has_audio: bool) -> int | None:
    """Exact text tokens (everything but video/audio placeholders) when a tokenizer is available offline:
    the project's own models' (tiny, tiny-qwen3, synthetic: one byte-level tokenizer with the chat template), or
    a real checkpoint's already in the local Hugging Face cache; else None."""
    from seats_cli.config import OFFLINE_MODELS

    tok = None
    try:
        if config.hub_id in OFFLINE_MODELS:
            from seats_cli.models.tiny import build_tiny_tokenizer

            tok = build_tiny_tokenizer()
        else:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(config.hub_id, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached / not loadable: the caller estimates
        return None
    if not getattr(tok, "chat_template", None):
        return None
    conversation = [
        {"role": "system", "content": [{"type": "text", "text": config.system_prompt}]},
        {"role": "user", "content": [{"type": "video", "video": "video.mp4"},
                                     {"type": "text", "text": question or DEFAULT_QUESTION}]},
    ]
    text = tok.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    ids = tok(text)["input_ids"]
    n_video_placeholders = ids.count(tok.convert_tokens_to_ids(getattr(tok, "video_token", None) or "<|VIDEO|>"))
    # the processor replaces <|VIDEO|> by <|audio_bos|> V0 A0 ... <|audio_eos|> when the video has audio
    return len(ids) - n_video_placeholders + (2 if has_audio else 0)


def _shape(config: ModelConfig, *, source: str, frames: int, height: int, width: int, fps: float,
           samples: int, n_text: int | None, question: str | None, notes: list[str]) -> RequestShape:
    factor = config.media.image_factor
    spg = config.media.frame_factor / fps
    tpg = (height // factor) * (width // factor)
    mel, n_audio, exact = audio_token_count(samples, config)
    if not exact:
        notes.append(f"{config.name}: audio token formula is approximate (13 tokens/s, not checked against "
                     "a checkpoint's processor)")
    vw, aw = window_sizes(frames // config.media.frame_factor, tpg, spg, n_audio, config)
    if n_text is not None:
        text_source = "given"
    else:
        n_text = text_token_count(config, question, n_audio > 0)
        text_source = "tokenizer" if n_text is not None else "estimate"
        if n_text is None:
            n_text = TEXT_ESTIMATE
            notes.append(f"text tokens estimated at {TEXT_ESTIMATE} ({config.hub_id}'s tokenizer is not in the "
                         "local Hugging Face cache; pass --text-tokens, or --question with the tokenizer cached)")
    return RequestShape(source, frames, height, width, fps, spg, tpg, samples, mel, n_text, text_source, vw, aw,
                        exact, tuple(notes), config.media.audio_sample_rate)


def shape_from_media(media, config: ModelConfig, *, n_text: int | None = None, question: str | None = None,
                     text_source: str | None = None) -> RequestShape:
    """The layout of a decoded video (``media.decode_video`` with ``api.frame_policy(config)``)."""
    samples = 0 if media.audio is None else int(media.audio.shape[0])
    shape = _shape(config, source=media.path, frames=len(media.frame_indices), height=media.height,
                   width=media.width, fps=config.media.processor_fps_for(media.sample_fps, media.processor_fps),
                   samples=samples, n_text=n_text,
                   question=question, notes=list(media.notes))
    if text_source:
        shape = dataclasses.replace(shape, text_source=text_source)
    return shape


def parse_aspect(aspect: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in aspect.replace("x", ":").split(":"))
        if w <= 0 or h <= 0:
            raise ValueError
    except ValueError:
        raise ValueError(f"--aspect must look like 16:9, got {aspect!r}") from None
    return w, h


def shape_from_frames(config: ModelConfig, policy: FramePolicy, *, frames: int, aspect: str = "16:9",
                      source_height: int = 1080, audio_seconds: float = 0.0, n_text: int | None = None,
                      question: str | None = None) -> RequestShape:
    """The layout of ``frames`` sampled frames of a ``source_height``-line video of ``aspect`` sampled at the
    policy's fps, with ``audio_seconds`` of sound (0: no audio track)."""
    if frames < policy.frame_factor or frames % policy.frame_factor:
        raise ValueError(f"--frames must be a positive multiple of {policy.frame_factor}, got {frames}")
    if audio_seconds < 0:
        raise ValueError(f"--audio-seconds must be >= 0, got {audio_seconds}")
    aw, ah = parse_aspect(aspect)
    src_w = max(1, round(source_height * aw / ah))
    height, width = plan_resize(source_height, src_w, frames, policy)
    notes = []
    if frames > policy.max_frames:
        notes.append(f"{frames} frames is more than the config's max_frames ({policy.max_frames})")
    seconds = min(audio_seconds, policy.max_audio_seconds)
    if seconds < audio_seconds:
        notes.append(f"audio capped at {policy.max_audio_seconds:g} s")
    samples = int(round(seconds * policy.audio_sample_rate))
    return _shape(config, source=f"{frames} frames {aspect} ({src_w}x{source_height} source)"
                  + (f" + {audio_seconds:g} s audio" if samples else ", no audio"),
                  frames=frames, height=height, width=width,
                  fps=config.media.processor_fps_for(policy.fps, policy.processor_fps), samples=samples, n_text=n_text,
                  question=question, notes=notes)
