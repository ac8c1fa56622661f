"""The layer-dependence analysis behind SEATS's boundaries, and a calibration that turns it into a preset (issue 17).

``analyze`` measures, per decoder layer, (1) the attention mass the last prompt token puts on the video, audio and
text tokens (that layer's own q/k, the full unpruned forward), and (2) how the answer survives when all video, all
audio, or both are dropped before that layer (accuracy when the questions carry answers, else agreement with the
full model's own greedy first token). ``calibrate`` reads the media-drop curve: ``text_only_from`` is the first
layer from which dropping all media keeps the answers within a tolerance of ``full``; the three ``prune_before``
layers split the block where that dependence falls. The schedule's math (δ, keep ratios) is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from seats_cli.engine import NoPruning, prefill
from seats_cli.layout import AUDIO, TEXT, VIDEO
from seats_cli import jsonl


class ModalityCut:
    """Diagnostic pruner: every token of ``modalities`` dropped before layer ``layer`` (0: before the LLM)."""

    def __init__(self, layer: int, modalities: tuple[int, ...]):
        self.layer, self.modalities = layer, modalities
        self.name = f"cut{modalities}@{layer}"
        self.drop_layers = frozenset({layer}) if layer > 0 else frozenset()

    def _keep(self, modality: torch.Tensor) -> torch.Tensor:
        drop = torch.zeros_like(modality, dtype=torch.bool)
        for m in self.modalities:
            drop |= modality == m
        return torch.nonzero(~drop).flatten()

    def before_llm(self, adapter, encoded, layout):
        return self._keep(layout.modality) if self.layer == 0 else None

    def at_layer(self, adapter, state):
        return self._keep(state.modality)


@dataclass
class Analysis:
    """Per layer: mean attention mass on video/audio/text, and the answers' score with video / audio / both
    dropped from that layer (score = accuracy with gold answers, else agreement with the full model)."""

    layers: list[int]
    attention: dict[str, list[float]]
    dropped: dict[str, list[float]]
    full_score: float
    chance: float | None
    items: int
    scored_by: str  # "accuracy" or "agreement with full"
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"layers": self.layers, "attention": self.attention, "dropped": self.dropped,
                "full_score": self.full_score, "chance": self.chance, "items": self.items,
                "scored_by": self.scored_by, "notes": self.notes}


@torch.no_grad()
def attention_profile(adapter, encoded, layout) -> dict[str, list[float]]:
    """Attention mass of the last prompt token on each modality at every layer of the full forward."""
    hidden = encoded.embeds
    cos, sin = adapter.rotary(hidden, encoded.position_ids)
    live = torch.arange(hidden.shape[1], device=hidden.device)
    mod = layout.modality.to(hidden.device)
    out = {"video": [], "audio": [], "text": []}
    for idx, layer in enumerate(adapter.layers):
        scores = adapter.query_scores(idx, hidden, cos, sin, hidden.shape[1] - 1).float()
        for name, m in (("video", VIDEO), ("audio", AUDIO), ("text", TEXT)):
            out[name].append(float(scores[mod == m].sum()))
        hidden = layer(hidden, attention_mask=None, position_embeddings=(cos, sin))
        if encoded.deepstack:
            hidden = adapter.after_layer(idx, hidden, live, encoded)
    return out


def _first_token(adapter, encoded, layout, pruner) -> int:
    return int(prefill(adapter, encoded, layout, pruner).logits.argmax())


def analyze_case(seats, media, question: str, gold, layers: list[int], options=None) -> dict:
    """One question's contribution: attention mass per layer and modality, and for each analysed layer whether
    the answer survives dropping video / audio / both from it (``gold`` letter, or agreement with full when None).
    ``options``: the question's option texts (real benchmarks; the letter is read with ``extract_letter``)."""
    from seats_cli.benchmarks import extract_letter
    from seats_cli.synthetic import parse_letter

    ad = seats.adapter
    request = ad.prepare(media, question)
    encoded = ad.encode(request)
    layout = request.layout
    att = attention_profile(ad, encoded, layout)
    full_tok = _first_token(ad, encoded, layout, NoPruning())

    def letter(tok: int):
        text = ad.decode_text([tok])
        return extract_letter(text, options) if options else parse_letter(text)

    def score(tok: int) -> bool:
        return tok == full_tok if gold is None else letter(tok) == gold

    hits = {key: [score(_first_token(ad, encoded, layout, ModalityCut(layer, mods))) for layer in layers]
            for key, mods in (("video", (VIDEO,)), ("audio", (AUDIO,)), ("both", (VIDEO, AUDIO)))}
    return {"attention": att, "hits": hits, "graded": gold is not None,
            "full_hit": score(full_tok) if gold is not None else True}


def aggregate(cases: list[dict], layers: list[int], n_layers: int) -> Analysis:
    """Means over the per-question results of ``analyze_case``."""
    n = max(1, len(cases))
    attention = {k: [sum(c["attention"][k][j] for c in cases) / n for j in range(n_layers)]
                 for k in ("video", "audio", "text")}
    dropped = {k: [sum(c["hits"][k][j] for c in cases) / n for j in range(len(layers))]
               for k in ("video", "audio", "both")}
    by_accuracy = bool(cases) and all(c["graded"] for c in cases)
    return Analysis(
        layers=layers, attention=attention, dropped=dropped,
        full_score=sum(c["full_hit"] for c in cases) / n if by_accuracy else 1.0,
        chance=0.25 if by_accuracy else None, items=len(cases),
        scored_by="accuracy" if by_accuracy else "agreement with full",
    )


def analyze(seats, cases, *, layers: list[int] | None = None, progress=None, checkpoint=None) -> Analysis:
    """``cases``: (media or a callable returning it, question, gold letter or None[, key[, options]]); media are
    decoded one at a time. ``checkpoint``: a JSONL file that keeps each question's result as soon as it is done;
    an analysis started again with the same file (and layers) skips the questions it holds. Each record names the
    model and preset that made it; a checkpoint of another model is refused (ValueError), never mixed in."""
    import json
    from pathlib import Path

    n_layers = len(seats.adapter.layers)
    layers = list(range(n_layers)) if layers is None else sorted(set(layers))
    if not layers or layers[0] < 0 or layers[-1] >= n_layers:
        raise ValueError(f"layers must be in 0..{n_layers - 1}, got {layers}")
    cases = list(cases)
    if not cases:
        raise ValueError("no questions to analyse")
    made_by = f"{seats.model_name} ({seats.config.name})"
    done: dict[str, dict] = {}
    if checkpoint is not None and Path(checkpoint).is_file():
        for line in jsonl.lines(Path(checkpoint).read_text(encoding="utf-8")):
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line: that question runs again
            if not isinstance(r, dict) or "key" not in r:
                raise ValueError(f"--checkpoint {checkpoint} is not an analysis checkpoint")
            if "model" not in r:
                raise ValueError(f"--checkpoint {checkpoint} was written by an older seats that did not record its "
                                 "model: delete it or give another file")
            if r["model"] != made_by:
                raise ValueError(f"--checkpoint {checkpoint} holds results of {r['model']}, not of {made_by}: give "
                                 "another file")
            if r.get("layers") == layers:
                done[r["key"]] = r
    sink = open(checkpoint, "a", encoding="utf-8") if checkpoint is not None else None
    results, reused = [], 0
    try:
        for i, case in enumerate(cases):
            media, question, gold = case[:3]
            # a result is read back only for the same question about the same item with the same gold answer
            key = json.dumps([str(case[3]) if len(case) > 3 else str(i), question, gold], ensure_ascii=False)
            options = case[4] if len(case) > 4 else None
            if key in done:
                results.append(done[key])
                reused += 1
            else:
                r = analyze_case(seats, media() if callable(media) else media, question, gold, layers, options)
                r = {"key": key, "model": made_by, "layers": layers, **r}
                results.append(r)
                if sink is not None:
                    sink.write(json.dumps(r) + "\n")
                    sink.flush()
            if progress is not None:
                progress(i + 1, len(cases))
    finally:
        if sink is not None:
            sink.close()
    analysis = aggregate(results, layers, n_layers)
    if reused:
        analysis.notes.append(f"{reused} of {len(cases)} questions read back from {checkpoint}")
    return analysis


def calibrate_boundaries(analysis: Analysis, *, tolerance: float = 0.02, num_layers: int) -> tuple[list[int], int]:
    """(prune_before, text_only_from) from the both-modalities drop curve.

    ``text_only_from`` = the first analysed layer L such that dropping all media from L on, and from every later
    analysed layer, scores within ``tolerance`` of ``full``. The block where the dependence falls starts at the
    first layer whose drop score recovers half of the way from its minimum to ``full``; the three ``prune_before``
    layers split [start, text_only_from) evenly (at least one layer apart, before text_only_from)."""
    import math

    if num_layers < 4:
        raise ValueError(f"three prune_before layers and text_only_from need a model of at least 4 layers, got "
                         f"{num_layers}")
    if not (math.isfinite(tolerance) and 0 <= tolerance < 1):
        raise ValueError(f"tolerance must be a score difference in [0, 1), got {tolerance}")
    layers, both, full = analysis.layers, analysis.dropped["both"], analysis.full_score
    ok = [s >= full - tolerance for s in both]
    text_only = num_layers
    for j in range(len(layers) - 1, -1, -1):
        if not ok[j]:
            break
        text_only = layers[j]
    text_only = max(4, min(text_only, num_layers))
    low = min(both)
    half = low + 0.5 * (full - low)
    start = next((layer for layer, s in zip(layers, both) if s >= half and layer < text_only), text_only - 3)
    start = max(1, min(start, text_only - 3))
    span = text_only - start
    pb = sorted({start + round(i * span / 3) for i in range(3)})
    while len(pb) < 3:  # degenerate spans: one layer apart, below text_only_from
        pb = [text_only - 3, text_only - 2, text_only - 1]
    return pb, text_only
