"""A synthetic audio-visual QA benchmark whose answers live in one 2-s window (issue 15).

A clip has K windows of 2 s (56×56 frames at 2 fps, mono 16 kHz sound). A window may show one coloured square
and may play one tone. Four multiple-choice kinds, four options each, answer letters balanced:

* ``colour``: one window shows a square, the others are empty; every window plays some tone (distractors).
  "What colour is the square?"                                    (within video)
* ``tone``: one window plays a tone, the others are silent; every window shows some square (distractors).
  "Which tone plays?"                                             (within audio)
* ``tone_while_square``: one window shows a square; every window plays a different tone.
  "Which tone plays while the square is shown?"                   (video → audio)
* ``colour_while_tone``: one window plays a tone; every window shows a square of a different colour.
  "What colour is the square while the tone plays?"               (audio → video)

Everything is a pure function of the seed: ``items(seed, n)`` gives the same questions, clips and answers on
every machine. Training draws from seeds below ``HELD_OUT_SEED``; evaluation uses seeds from it on.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

SIZE, FPS, RATE, WINDOW_S = 56, 2, 16000, 2
COLOURS = (("red", (220, 40, 40)), ("green", (40, 190, 60)), ("blue", (50, 80, 235)), ("yellow", (235, 215, 40)))
TONES = (("low", 300.0), ("middle", 600.0), ("high", 1200.0), ("very high", 2400.0))
KINDS = ("colour", "tone", "tone_while_square", "colour_while_tone")
LETTERS = "ABCD"
HELD_OUT_SEED = 1_000_000  # training seeds are below it, evaluation seeds at or above it
SYSTEM_PROMPT = "Answer with one letter."

_QUESTION = {
    "colour": "What colour is the square?",
    "tone": "Which tone plays?",
    "tone_while_square": "Which tone plays while the square is shown?",
    "colour_while_tone": "What colour is the square while the tone plays?",
}


@dataclass(frozen=True)
class Window:
    colour: int | None  # index into COLOURS, or None: no square
    tone: int | None  # index into TONES, or None: silence
    corner: int = 0  # where the square sits (0..3: top-left, top-right, bottom-left, bottom-right)


@dataclass(frozen=True)
class Item:
    id: str
    kind: str
    windows: tuple[Window, ...]
    target: int  # the window holding the answer
    answer: str  # the letter
    seed: int

    @property
    def question(self) -> str:
        return question_text(self.kind)

    @property
    def seconds(self) -> int:
        return WINDOW_S * len(self.windows)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["question"] = self.question
        return d


def options_for(kind: str) -> tuple[str, ...]:
    names = [n for n, _ in COLOURS] if kind in ("colour", "colour_while_tone") else [n for n, _ in TONES]
    return tuple(names)


def question_text(kind: str) -> str:
    opts = " ".join(f"{letter}. {name}" for letter, name in zip(LETTERS, options_for(kind)))
    return f"{_QUESTION[kind]} {opts}"


def make_item(seed: int, kind: str, answer_index: int, n_windows: int | None = None) -> Item:
    """One question of ``kind`` whose correct option is ``answer_index``, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    k = int(n_windows or rng.integers(2, 5))
    target = int(rng.integers(0, k))
    corners = [int(c) for c in rng.integers(0, 4, size=k)]
    others = [i for i in range(4) if i != answer_index]
    if kind == "colour":
        colours = [None] * k
        colours[target] = answer_index
        tones = [int(t) for t in rng.integers(0, 4, size=k)]
    elif kind == "tone":
        tones = [None] * k
        tones[target] = answer_index
        colours = [int(c) for c in rng.integers(0, 4, size=k)]
    elif kind == "tone_while_square":
        colours = [None] * k
        colours[target] = int(rng.integers(0, 4))
        tones = [int(t) for t in rng.permutation(others)[: k - 1]]
        tones.insert(target, answer_index)
    elif kind == "colour_while_tone":
        tones = [None] * k
        tones[target] = int(rng.integers(0, 4))
        colours = [int(c) for c in rng.permutation(others)[: k - 1]]
        colours.insert(target, answer_index)
    else:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
    windows = tuple(Window(c, t, corner) for c, t, corner in zip(colours, tones, corners))
    return Item(f"{kind}-{seed}", kind, windows, target, LETTERS[answer_index], seed)


def items(seed: int, n: int, kinds=KINDS) -> list[Item]:
    """``n`` items per kind, deterministic in ``seed``; each kind's answers cycle through A–D in a shuffled
    order, so letters are balanced (exactly when ``n`` is a multiple of 4). Training seeds are 0..999 (their items
    stay below ``HELD_OUT_SEED``); at most 250 items per kind keep the kinds' seeds apart."""
    if not 0 <= seed < 1000 and seed < HELD_OUT_SEED:
        raise ValueError(f"seed {seed}: use a training seed in 0..999 or a held-out seed >= {HELD_OUT_SEED}")
    if not 0 < n <= 250:
        raise ValueError(f"n must be in 1..250, got {n}")
    out = []
    for k, kind in enumerate(kinds):
        rng = np.random.default_rng([seed, k])
        answers = np.concatenate([rng.permutation(4) for _ in range(-(-n // 4))])[:n]
        for i, a in enumerate(answers):
            out.append(make_item(int(seed * 1000 + k * 250 + i) if seed < HELD_OUT_SEED else seed + k * 250 + i,
                                 kind, int(a)))
    return out


# ----------------------------------------------------------------------------------------------- rendering
def render(item: Item) -> tuple[np.ndarray, np.ndarray]:
    """(frames uint8 [T, 56, 56, 3], audio float32 [samples]) of the clip, deterministic in the item's seed."""
    rng = np.random.default_rng([item.seed, 7])
    frames, sound = [], []
    side = SIZE // 2
    t = np.arange(WINDOW_S * RATE) / RATE
    for w in item.windows:
        for _ in range(WINDOW_S * FPS):
            img = np.full((SIZE, SIZE, 3), 24, np.uint8) + rng.integers(0, 12, (SIZE, SIZE, 3), dtype=np.uint8)
            if w.colour is not None:
                y, x = (w.corner // 2) * side, (w.corner % 2) * side
                img[y:y + side, x:x + side] = COLOURS[w.colour][1]
            frames.append(img)
        noise = 0.01 * rng.standard_normal(t.size)
        tone = 0.5 * np.sin(2 * math.pi * TONES[w.tone][1] * t) if w.tone is not None else 0.0
        sound.append((tone + noise).astype(np.float32))
    return np.stack(frames), np.concatenate(sound)


def write_clip(item: Item, path: str | Path) -> Path:
    """The item's clip as an .mp4 (H.264 + AAC) that `seats ask` decodes like any user file."""
    import av

    frames, audio = render(item)
    path = Path(path)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=Fraction(FPS * 5))  # 10 fps source: 5 copies of each sampled frame
        v.width = v.height = SIZE
        v.pix_fmt = "yuv444p"
        v.options = {"preset": "ultrafast", "crf": "12", "threads": "1"}
        a = out.add_stream("aac", rate=RATE)
        a.layout = "mono"
        for i, img in enumerate(np.repeat(frames, 5, axis=0)):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = i
            for p in v.encode(frame):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
        step = a.codec_context.frame_size or 1024
        for s in range(0, audio.size, step):
            fr = av.AudioFrame.from_ndarray(audio[None, s:s + step], format="fltp", layout="mono")
            fr.sample_rate, fr.pts, fr.time_base = RATE, s, Fraction(1, RATE)
            for p in a.encode(fr):
                out.mux(p)
        for p in a.encode(None):
            out.mux(p)
    return path


def media_of(item: Item):
    """The item's clip as decoded media (no file, no codec): what `decode_video` would give for its .mp4."""
    import torch

    from seats_cli.media import DecodedMedia

    frames, audio = render(item)
    n = frames.shape[0]
    return DecodedMedia(
        path=f"synthetic:{item.id}", frames=torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous(),
        frame_indices=list(range(n)), frame_times=[i / FPS for i in range(n)], sample_fps=float(FPS),
        duration_s=float(item.seconds), source_width=SIZE, source_height=SIZE, source_fps=float(FPS),
        source_frames=n, height=SIZE, width=SIZE, audio=audio, audio_source_rate=RATE, audio_source_channels=1,
    )


def parse_letter(answer: str) -> str | None:
    """The option letter an answer starts with (``"B"``, ``"B. green"``, ``" b)"``), or None."""
    s = answer.strip().lstrip("(").upper()
    return s[0] if s and s[0] in LETTERS and (len(s) == 1 or not s[1].isalpha()) else None
