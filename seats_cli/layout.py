"""Token layout of one request: which positions are video, audio and text, and the time windows.

One window = one (V_j, A_j) pair of the processor's time-interleaved sequence (SEATS_SPEC §1): the video
tokens of 2 temporal grids and the 2 s of audio tokens that the processor puts side by side. A video without
audio still gets one window per ``seconds_per_window`` of grids. Nothing here is re-indexed: positions are
indices into the processor's ``input_ids``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

TEXT, VIDEO, AUDIO = 0, 1, 2


@dataclass(frozen=True)
class Window:
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
    windows: tuple[Window, ...]

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

    def counts(self, positions: torch.Tensor | None = None) -> dict[str, int]:
        mod = self.modality if positions is None else self.modality[positions.cpu()]
        return {"video": int((mod == VIDEO).sum()), "audio": int((mod == AUDIO).sum()), "text": int((mod == TEXT).sum())}

    def window_counts(self, positions: torch.Tensor) -> list[tuple[int, int]]:
        """(video kept, audio kept) per window for a set of live sequence positions."""
        pos = torch.as_tensor(positions).cpu()
        out = []
        for w in self.windows:
            v = 0 if w.video is None else int(((pos >= w.video[0]) & (pos < w.video[1])).sum())
            a = 0 if w.audio is None else int(((pos >= w.audio[0]) & (pos < w.audio[1])).sum())
            out.append((v, a))
        return out


def _runs(positions: torch.Tensor) -> list[tuple[int, int]]:
    if positions.numel() == 0:
        return []
    breaks = (torch.nonzero(positions[1:] - positions[:-1] > 1).flatten() + 1).tolist()
    starts = [0] + breaks
    ends = breaks + [positions.numel()]
    return [(int(positions[s]), int(positions[e - 1]) + 1) for s, e in zip(starts, ends)]


def build_layout(
    input_ids: torch.Tensor,
    *,
    video_token_id: int,
    audio_token_id: int,
    video_grid_thw: torch.Tensor | None,
    seconds_per_grid: float | None,
    merge_size: int = 2,
    audio_tokens_per_second: float = 25.0,
    seconds_per_window: float = 2.0,
    duration_s: float | None = None,
) -> TokenLayout:
    ids = input_ids.reshape(-1).cpu()
    modality = torch.zeros(ids.numel(), dtype=torch.int8)
    modality[ids == video_token_id] = VIDEO
    modality[ids == audio_token_id] = AUDIO
    vpos = torch.nonzero(modality == VIDEO).flatten()
    apos = torch.nonzero(modality == AUDIO).flatten()

    # window index of every video token from its temporal grid's time, of every audio token from its rank
    v_win = torch.empty(0, dtype=torch.long)
    if vpos.numel():
        t, h, w = (int(x) for x in video_grid_thw.reshape(-1, 3)[0])
        per_grid = (h // merge_size) * (w // merge_size)
        grid = torch.arange(vpos.numel()) // per_grid
        v_win = torch.floor(grid * float(seconds_per_grid) / seconds_per_window + 1e-6).long()
    a_per_window = int(round(audio_tokens_per_second * seconds_per_window))
    a_win = torch.arange(apos.numel()) // a_per_window

    n_win = int(max(v_win.max().item() + 1 if v_win.numel() else 0, a_win.max().item() + 1 if a_win.numel() else 0))
    windows = []
    for j in range(n_win):
        vr = _runs(vpos[v_win == j])
        ar = _runs(apos[a_win == j])
        if len(vr) > 1 or len(ar) > 1:
            raise ValueError(f"window {j} is not contiguous in the sequence: video runs {vr}, audio runs {ar}")
        start = j * seconds_per_window
        end = (j + 1) * seconds_per_window
        if duration_s is not None:
            end = max(start, min(end, duration_s))
        windows.append(Window(j, round(start, 3), round(end, 3), vr[0] if vr else None, ar[0] if ar else None))
    return TokenLayout(modality=modality, windows=tuple(windows))
