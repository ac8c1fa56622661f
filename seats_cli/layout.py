"""Token layout of one request: which positions are video, audio and text, and the two kinds of window.

* Time chunks (``TokenLayout.windows``, reported as ``windows[]``): one (V_j, A_j) pair of the processor's
  time-interleaved sequence, i.e. the runs Stage II allocates budgets over. At 2 fps a chunk holds 2 temporal
  grids and 2 s of audio; below 1 fps the processor's chunking fragments grids (V144 A50 V1 A50 V143 ...). A
  video without audio still gets one chunk per ``seconds_per_window`` of grids (reported so; Stage II, with one
  modality, keeps its global top-K over the single run).
* Stage I windows (``fixed_windows``): fixed per modality, in token order, whatever the clip length:
  ``stage1_video_grids`` temporal grids of video, ``stage1_audio_tokens`` audio tokens.
Nothing here is re-indexed: positions are indices into the processor's ``input_ids``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

TEXT, VIDEO, AUDIO = 0, 1, 2


@dataclass(frozen=True)
class TimeChunk:
    index: int
    start_s: float
    end_s: float
    video: tuple[int, int] | None  # [start, end) sequence positions
    audio: tuple[int, int] | None

    @property
    def video_total(self) -> int:
        return 0 if self.video is None else self.video[1] - self.video[0]

    @property
    def audio_total(self) -> int:
        return 0 if self.audio is None else self.audio[1] - self.audio[0]


@dataclass(frozen=True)
class TokenLayout:
    modality: torch.Tensor  # int8 (S,), TEXT / VIDEO / AUDIO per position (CPU)
    windows: tuple[TimeChunk, ...]
    tokens_per_grid: int = 0  # LLM video tokens per temporal grid (0 without video)

    @property
    def seq_len(self) -> int:
        return int(self.modality.numel())

    @property
    def n_video(self) -> int:
        return int((self.modality == VIDEO).sum())

    @property
    def n_audio(self) -> int:
        return int((self.modality == AUDIO).sum())

    @property
    def n_text(self) -> int:
        return int((self.modality == TEXT).sum())

    @property
    def query_index(self) -> int:
        """The last prompt token (the newline after ``assistant``) is SEATS' query."""
        return self.seq_len - 1

    def modality_counts(self, positions: torch.Tensor | None = None) -> dict[str, int]:
        mod = self.modality if positions is None else self.modality[positions.cpu()]
        return {"video": int((mod == VIDEO).sum()), "audio": int((mod == AUDIO).sum()), "text": int((mod == TEXT).sum())}

    def fixed_window_counts(self, positions: torch.Tensor, modality: int, window: int) -> list[tuple[int, int]]:
        """(total, kept) per Stage I window of ``modality``: its tokens in sequence order cut into consecutive
        windows of ``window`` tokens (the last one shorter), kept = how many are among ``positions``."""
        pos = torch.nonzero(self.modality == modality).flatten()
        if pos.numel() == 0:
            return []
        live = torch.zeros(self.seq_len, dtype=torch.bool)
        live[torch.as_tensor(positions).cpu()] = True
        rank = torch.arange(pos.numel()) // window
        kept = torch.bincount(rank[live[pos]], minlength=int(rank[-1]) + 1)
        total = torch.bincount(rank)
        return [(int(t), int(k)) for t, k in zip(total, kept)]

    def window_counts(self, positions: torch.Tensor) -> list[tuple[int, int]]:
        """(video kept, audio kept) per window for a set of live sequence positions."""
        pos = torch.as_tensor(positions).cpu()
        out = []
        for w in self.windows:
            v = 0 if w.video is None else int(((pos >= w.video[0]) & (pos < w.video[1])).sum())
            a = 0 if w.audio is None else int(((pos >= w.audio[0]) & (pos < w.audio[1])).sum())
            out.append((v, a))
        return out


def chunk_ranges(values, per_chunk: int) -> list[tuple[int, int]]:
    """Split monotone token time indices into 2-s chunks exactly as the Qwen-Omni processor does when it
    interleaves video and audio (``get_chunked_index``): a new chunk starts at the first value reaching the next
    multiple of ``per_chunk``, and the cut moves on by one chunk per token, so a grid longer than a chunk
    (sampling below 1 fps) shifts the later chunks rather than leaving empty ones. Ranges index ``values``."""
    out, start, current = [], 0, 1
    for i, v in enumerate(values):
        if v >= current * per_chunk:
            out.append((start, i))
            start, current = i, current + 1
    out.append((start, len(values)))
    return out


def window_token_ranges(n_video: int, tokens_per_grid: int, seconds_per_grid: float, n_audio: int, *,
                        position_ids_per_second: float = 25, seconds_per_window: float = 2.0):
    """Per window, the [start, end) ranges into the video tokens and into the audio tokens (in token order),
    with the window's first token time in seconds. Windows are the processor's chunks (docs/METHOD.md §3, §7)."""
    per_chunk = int(position_ids_per_second * seconds_per_window)
    grid = np.arange(n_video) // max(tokens_per_grid, 1)
    v_times = grid * seconds_per_grid * position_ids_per_second  # float64, the processor's arithmetic
    v_chunks = chunk_ranges(v_times, per_chunk) if n_video else []
    a_chunks = chunk_ranges(np.arange(n_audio), per_chunk) if n_audio else []
    windows = []
    for j in range(max(len(v_chunks), len(a_chunks))):
        v = v_chunks[j] if j < len(v_chunks) and v_chunks[j][1] > v_chunks[j][0] else None
        a = a_chunks[j] if j < len(a_chunks) and a_chunks[j][1] > a_chunks[j][0] else None
        starts = ([v_times[v[0]]] if v else []) + ([a[0]] if a else [])
        windows.append((v, a, float(min(starts)) / position_ids_per_second if starts else j * seconds_per_window))
    return windows


def build_layout(
    input_ids: torch.Tensor,
    *,
    video_token_id: int,
    audio_token_id: int,
    video_grid_thw: torch.Tensor | None,
    seconds_per_grid: float | None,
    merge_size: int = 2,
    position_ids_per_second: float = 25.0,
    seconds_per_window: float = 2.0,
    duration_s: float | None = None,
) -> TokenLayout:
    ids = input_ids.reshape(-1).cpu()
    modality = torch.zeros(ids.numel(), dtype=torch.int8)
    modality[ids == video_token_id] = VIDEO
    modality[ids == audio_token_id] = AUDIO
    vpos = torch.nonzero(modality == VIDEO).flatten()
    apos = torch.nonzero(modality == AUDIO).flatten()
    per_grid = 0
    if vpos.numel():
        _, h, w = (int(x) for x in video_grid_thw.reshape(-1, 3)[0])
        per_grid = (h // merge_size) * (w // merge_size)
    ranges = window_token_ranges(
        vpos.numel(), per_grid, float(seconds_per_grid or 0.0), apos.numel(),
        position_ids_per_second=position_ids_per_second, seconds_per_window=seconds_per_window,
    )
    windows = []
    for j, (vr, ar, start) in enumerate(ranges):
        spans = []
        for pos, r in ((vpos, vr), (apos, ar)):
            if r is None:
                spans.append(None)
                continue
            first, last = int(pos[r[0]]), int(pos[r[1] - 1])
            if last - first != r[1] - r[0] - 1:
                raise RuntimeError(f"window {j} is not contiguous in the token sequence (processor layout changed?)")
            spans.append((first, last + 1))
        last_end = start + seconds_per_window if duration_s is None else duration_s
        last_end = max(last_end, apos.numel() / position_ids_per_second,  # sound may run past the picture
                       vpos.numel() // max(per_grid, 1) * (seconds_per_grid or 0.0))  # grids past it (no fps told)
        end = ranges[j + 1][2] if j + 1 < len(ranges) else last_end
        windows.append(TimeChunk(j, round(start, 3), round(max(start, end), 3), spans[0], spans[1]))
    return TokenLayout(modality=modality, windows=tuple(windows), tokens_per_grid=per_grid)


def time_interleaved_runs(grids: int, tokens_per_grid: int, seconds_per_grid: float, n_audio: int,
                          position_ids_per_second: float) -> list[tuple[int, int]]:
    """(video, audio) tokens of each paired run when the processor merges whole grids (time id
    t * seconds_per_grid * rate) and audio tokens (time id i) by time, video first on ties (Qwen3-Omni)."""
    events = sorted([(t * seconds_per_grid * position_ids_per_second, 0, tokens_per_grid) for t in range(grids)]
                    + [(float(i), 1, 1) for i in range(n_audio)], key=lambda e: (e[0], e[1]))
    runs: list[list[int]] = []  # [kind, count]
    for _, kind, n in events:
        if runs and runs[-1][0] == kind:
            runs[-1][1] += n
        else:
            runs.append([kind, n])
    v = [n for k, n in runs if k == 0]
    a = [n for k, n in runs if k == 1]
    return [(v[j] if j < len(v) else 0, a[j] if j < len(a) else 0) for j in range(max(len(v), len(a)))]


def grids_per_window(seconds_per_window: float, seconds_per_grid: float) -> int:
    """Whole grids in one reporting window of a clip without sound (one window per 2 s, docs/METHOD.md §7): as many as
    fit in the window, at least one."""
    return max(1, math.floor(seconds_per_window / seconds_per_grid + 1e-9)) if seconds_per_grid > 0 else 1


def split_video_run(n_tokens: int, tokens_per_grid: int, grids: int) -> list[int]:
    """A video-only run cut into windows of ``grids`` grids (the last one shorter)."""
    step = max(1, tokens_per_grid) * max(1, grids)
    return [step] * (n_tokens // step) + ([n_tokens % step] if n_tokens % step else [])


def _runs_of(mask: torch.Tensor) -> list[tuple[int, int]]:
    m = mask.to(torch.int8)
    edges = torch.diff(torch.cat([torch.zeros(1, dtype=torch.int8), m, torch.zeros(1, dtype=torch.int8)]))
    return list(zip((edges == 1).nonzero().flatten().tolist(), (edges == -1).nonzero().flatten().tolist()))


def build_layout_from_runs(input_ids: torch.Tensor, *, video_token_id: int, audio_token_id: int,
                           tokens_per_grid: int, seconds_per_grid: float, audio_tokens_per_second: float,
                           duration_s: float | None = None, seconds_per_window: float = 2.0) -> TokenLayout:
    """A layout whose time chunks are the processor's own runs (Qwen3-Omni interleaves grids and audio by their
    time ids, with no fixed chunks): the i-th maximal video run paired with the i-th audio run, surplus runs
    alone. A chunk's start is its first grid's time (or its first audio token's). A clip without sound has one
    video run; it is reported in windows of ``seconds_per_window`` (whole grids), as docs/METHOD.md §7 says."""
    ids = input_ids.reshape(-1).cpu()
    modality = torch.zeros(ids.numel(), dtype=torch.int8)
    modality[ids == video_token_id] = VIDEO
    modality[ids == audio_token_id] = AUDIO
    v_runs, a_runs = _runs_of(modality == VIDEO), _runs_of(modality == AUDIO)
    if not a_runs:
        per = grids_per_window(seconds_per_window, seconds_per_grid)
        pieces = []
        for start, end in v_runs:
            for n in split_video_run(end - start, tokens_per_grid, per):
                pieces.append((start, start + n))
                start += n
        v_runs = pieces
    v_seen = a_seen = 0
    chunks = []
    for j in range(max(len(v_runs), len(a_runs))):
        v = v_runs[j] if j < len(v_runs) else None
        a = a_runs[j] if j < len(a_runs) else None
        starts = ([v_seen // max(tokens_per_grid, 1) * seconds_per_grid] if v else []) + \
                 ([a_seen / audio_tokens_per_second] if a else [])
        chunks.append((v, a, min(starts)))
        v_seen += 0 if v is None else v[1] - v[0]
        a_seen += 0 if a is None else a[1] - a[0]
    windows = []
    for j, (v, a, start) in enumerate(chunks):
        # the last chunk ends where the clip, its sound or its grids end (in the processor's time: with no fps
        # passed, --processor-fps official, the grids may run past the real duration)
        last_end = max(start if duration_s is None else duration_s, a_seen / audio_tokens_per_second,
                       v_seen // max(tokens_per_grid, 1) * seconds_per_grid)
        end = chunks[j + 1][2] if j + 1 < len(chunks) else last_end
        windows.append(TimeChunk(j, round(start, 3), round(max(start, end), 3), v, a))
    return TokenLayout(modality=modality, windows=tuple(windows), tokens_per_grid=tokens_per_grid)
