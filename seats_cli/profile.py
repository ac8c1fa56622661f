"""What a TRR buys: per-layer token counts, the SEATS schedule, analytic FLOPs and measured latency.

Two halves, kept apart:
* analytic (no weights): the request's token layout from the preset (``seats_cli.shape``), then the per-layer counts of
  the schedule (each modality keeps exactly K_m, the §9 convention) and the engine's own selection replayed
  with uniform window relevance (Stage I per window, Stage II budgets, Stage III); FLOPs per docs/METHOD.md §9;
* measured (a loaded model): ``seats_cli.measure`` times the engine on the same layout.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from seats_cli.config import ModelConfig
from seats_cli.flops import TextModelDims, compare_flops
from seats_cli.methods import SeatsPlan
from seats_cli.request import RequestOptions
from seats_cli.shape import RequestShape, shape_from_frames, shape_from_media
from seats_cli.schedule import achieved_retention, stage1_window_keep, step_keep
from seats_cli.selection import allocate_budgets

FLOPS_CONVENTION = ("analytic LLM prefill FLOPs, docs/METHOD.md §9 (paper convention: one multiply-add = 1 FLOP, "
                    "attention counted as the full S×S square, LM head on the tokens entering the last layer)")


# ----------------------------------------------------------------------------------- analytic counts
def engine_counts(plan: SeatsPlan, video_windows, audio_windows, n_text: int, tau: float) -> list[dict]:
    """Tokens entering each layer as the engine's SEATS pruner produces them when the window relevances are
    uniform (the faithful τ-softmax over ~1e-4 query scores is close to uniform, docs/METHOD.md §7 note).

    Stage I keeps ``stage1_window_keep`` per fixed Stage I window and modality (``plan.video_window``,
    ``plan.audio_window``); where those windows straddle the processor's chunks (``video_windows``/
    ``audio_windows``, the runs Stage II works on), the kept tokens are taken as evenly spread inside each
    Stage I window. At each ``prune_before`` layer K_v, K_a come from ``step_keep`` and are split over the
    Stage II windows (runs of consecutive video/audio tokens, paired in order) by ``allocate_budgets``;
    Stage III keeps text only. Per-layer totals never depend on the scores; the video/audio split can differ
    by a few tokens when real relevances are far from uniform.
    """
    def kept_per_chunk(chunks, window, rho) -> list[int]:
        n = sum(chunks)
        if rho >= 1 or not plan.prunes:
            return list(chunks)
        kept_at = []  # token ranks Stage I keeps, evenly spread in each window
        for start in range(0, n, window):
            w = min(window, n - start)
            k = stage1_window_keep(w, rho)
            kept_at += [start + (2 * i + 1) * w // (2 * k) for i in range(k)]
        bounds = np.cumsum([0, *chunks])
        chunk_of = np.searchsorted(bounds, np.asarray(kept_at, dtype=np.int64), side="right") - 1
        return np.bincount(chunk_of, minlength=len(chunks)).tolist()

    kv = kept_per_chunk(list(video_windows), plan.video_window, plan.video.rho)
    ka = kept_per_chunk(list(audio_windows), plan.audio_window, plan.audio.rho)
    runs: list[list] = []  # [modality, count] in sequence order, adjacent same-modality blocks merged
    for v, a in zip(kv, ka):
        for mod, k in (("v", v), ("a", a)):
            if k:
                if runs and runs[-1][0] == mod:
                    runs[-1][1] += k
                else:
                    runs.append([mod, k])
    vruns = [r for r in runs if r[0] == "v"]
    aruns = [r for r in runs if r[0] == "a"]
    paired = min(len(vruns), len(aruns))
    windows = [(vruns[i], aruns[i]) for i in range(paired)]
    windows += [(r, None) for r in vruns[paired:]] + [(None, r) for r in aruns[paired:]]

    rows = []
    for layer in range(plan.num_layers):
        n_v, n_a = sum(r[1] for r in vruns), sum(r[1] for r in aruns)
        if plan.prunes and plan.text_only_from is not None and layer >= plan.text_only_from:
            n_v = n_a = 0
        elif plan.prunes and layer in plan.prune_before and n_v + n_a > 0:
            i = plan.prune_before.index(layer)
            k_v, k_a = step_keep(n_v, plan.video.keep_ratios[i]), step_keep(n_a, plan.audio.keep_ratios[i])
            if (k_v, k_a) != (n_v, n_a):
                if len(windows) > 1 and n_v > 0 and n_a > 0:
                    zeros = torch.zeros(len(windows), dtype=torch.float64)
                    vb, ab = allocate_budgets(zeros, zeros, [w[0][1] if w[0] else 0 for w in windows],
                                              [w[1][1] if w[1] else 0 for w in windows], k_v, k_a, tau,
                                              rebalance=plan.rebalance)
                    for (vr, ar), bv, ba in zip(windows, vb, ab):
                        if vr:
                            vr[1] = bv
                        if ar:
                            ar[1] = ba
                else:  # one window or one modality: global top-K per modality
                    for rs, k in ((vruns, k_v), (aruns, k_a)):
                        for r in rs:
                            r[1] = 0
                        if rs:
                            rs[0][1] = k
                n_v, n_a = sum(r[1] for r in vruns), sum(r[1] for r in aruns)
        rows.append({"layer": layer, "video": n_v, "audio": n_a, "text": n_text, "total": n_v + n_a + n_text})
    return rows


@dataclass
class ProfileRun:
    """One TRR. ``layers``/``flops``: analytic mode — the schedule's counts, each modality keeping exactly
    K_m at every step (docs/METHOD.md §6, 9, ``SeatsPlan.counts``); measured mode — the counts the engine used.
    ``engine_layers``/``engine_flops`` (analytic, Qwen2.5): the engine's own Stage II replayed with uniform
    window relevance (per-window rounding moves a few tokens between modalities)."""

    trr: float
    layers: list[dict]
    flops: dict
    schedule: dict
    latency: dict | None = None
    engine_layers: list[dict] | None = None
    engine_flops: dict | None = None
    method: str = "seats"
    counts: str | None = None  # baselines: "exact", or how a content-dependent count was made analytic
    method_notes: list[str] | None = None  # baselines (analytic): what a run would note it could not reach

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class ProfileResult:
    """``to_dict``: the input, dims and ``runs`` (one per TRR); with one TRR its keys are also at the top."""

    config: str
    model: str | None
    mode: str  # "analytic" or "measured"
    input: dict
    dims: dict
    runs: list[ProfileRun]
    flops_convention: str = FLOPS_CONVENTION
    machine: dict | None = None
    notes: list[str] = field(default_factory=list)
    requests: list[dict] | None = None  # measured with a video: whole requests, full vs SEATS (measure.whole_requests)

    def to_dict(self) -> dict:
        d = {"config": self.config, "model": self.model, "mode": self.mode, "input": self.input, "dims": self.dims,
             "flops_convention": self.flops_convention, "runs": [r.to_dict() for r in self.runs]}
        if self.machine is not None:
            d["machine"] = self.machine
        if self.requests is not None:
            d["requests"] = self.requests
        d["notes"] = list(self.notes)
        if len(self.runs) == 1:
            d.update(self.runs[0].to_dict())
        return d


def resolve_trr(config: ModelConfig, n_video: int, n_audio: int, trr: float | None, video_trr=None,
                audio_trr=None) -> float:
    """``trr`` as given; else, with both per-modality ratios given, the overall ratio they achieve on this
    request (R·(N_v+N_a) = R_v·N_v + R_a·N_a); else the config's default."""
    if trr is not None:
        return trr
    if video_trr is not None and audio_trr is not None and n_video + n_audio > 0:
        return min(1.0, (video_trr * n_video + audio_trr * n_audio) / (n_video + n_audio))
    return config.seats.default_trr


def with_achieved(schedule: dict, layers: list[dict], request) -> dict:
    """The schedule plus the achieved layer-mean retention of these per-layer counts (overall, per modality)."""
    got = achieved_retention(layers, request.n_video, request.n_audio)
    return schedule | {"achieved_trr": got["overall"], "achieved_video_trr": got["video"],
                       "achieved_audio_trr": got["audio"]}


def baseline_run(method: str, config: ModelConfig, shape: RequestShape, trr: float, *, video_trr=None,
                 audio_trr=None, dims: TextModelDims | None = None, ratio_mode: str | None = None) -> ProfileRun:
    """One baseline's analytic run: per-layer counts from its definition (``methods.counts``), same pair."""
    from seats_cli.methods.baselines import BaselinePlan
    from seats_cli.methods.counts import baseline_layers, baseline_notes
    from seats_cli.schedule import resolve_modality_ratios

    mode = ratio_mode or config.seats.ratio_mode
    ratios = resolve_modality_ratios(trr, shape.n_video, shape.n_audio, config.seats.ratio_table, video_trr,
                                     audio_trr, mode=mode)
    layers, how = baseline_layers(method, config, ratios, shape.n_video, shape.n_audio, shape.n_text,
                                  shape.tokens_per_grid, shape.video_windows, shape.audio_windows)
    plan = BaselinePlan(method, trr, ratios, ratio_mode=mode)
    notes = baseline_notes(method, config, ratios, shape.n_video, shape.n_audio, shape.tokens_per_grid,
                           shape.video_windows, shape.audio_windows)
    return ProfileRun(trr, layers, compare_flops(shape.seq_len, layers, dims or config.architecture),
                      with_achieved(plan.to_dict(), layers, shape), method=method, counts=how, method_notes=notes)


def seats_run(config: ModelConfig, shape: RequestShape, trr: float, *, video_trr=None, audio_trr=None,
              dims: TextModelDims | None = None, ratio_mode: str | None = None) -> ProfileRun:
    dims = dims or config.architecture
    plan = SeatsPlan.build(config, trr, shape.n_video, shape.n_audio, shape.tokens_per_grid, video_trr, audio_trr,
                           ratio_mode=ratio_mode)
    layers = [r | {"total": r["video"] + r["audio"] + r["text"]}
              for r in plan.counts(shape.n_video, shape.n_audio, shape.n_text)]
    run = ProfileRun(trr, layers, compare_flops(shape.seq_len, layers, dims),
                     with_achieved(plan.to_dict(), layers, shape))
    if config.family == "qwen2_5_omni":  # Qwen3 interleaves per grid: its Stage II windows differ
        run.engine_layers = engine_counts(plan, shape.video_windows, shape.audio_windows, shape.n_text,
                                          config.seats.temperature)
        run.engine_flops = compare_flops(shape.seq_len, run.engine_layers, dims)
    return run


def analytic_runs(config: ModelConfig, shape: RequestShape, trrs, *, video_trr=None, audio_trr=None,
                  dims: TextModelDims | None = None, ratio_mode: str | None = None,
                  methods=("seats",)) -> list[ProfileRun]:
    """One run per (TRR, method), TRR-major."""
    runs = []
    for trr in trrs:
        trr = resolve_trr(config, shape.n_video, shape.n_audio, trr, video_trr, audio_trr)
        for method in methods:
            make = seats_run if method == "seats" else lambda *a, **k: baseline_run(method, *a, **k)
            runs.append(make(config, shape, trr, video_trr=video_trr, audio_trr=audio_trr, dims=dims,
                             ratio_mode=ratio_mode))
    return runs


@dataclass(frozen=True)
class ProfileRequest:
    """What to profile: a video file, or a synthetic layout of ``frames`` (with ``aspect``, ``source_height``,
    ``audio_seconds``); the TRRs (empty: the preset's default, or what --video-trr/--audio-trr give); the
    request options (ratios, fps, frames, ratio mode, frame sizing, KV policy, seed)."""

    video: str | None = None
    frames: int | None = None
    aspect: str = "16:9"
    source_height: int = 1080
    audio_seconds: float = 0.0
    text_tokens: int | None = None
    question: str | None = None
    trrs: tuple[float, ...] = ()
    options: RequestOptions = field(default_factory=RequestOptions)
    methods: tuple[str, ...] = ("seats",)  # analytic mode: the baselines too (methods.counts)

    def check(self, config: ModelConfig | None = None) -> "ProfileRequest":
        """The one check of a profile request (the CLI and the library): a video or a frame count, not both; whole
        and finite numbers in range; known methods (``all``: SEATS and every baseline); with ``config``, the
        request options too. Returns the request normalised: TRRs and methods as tuples without repeats."""
        from seats_cli.choices import METHODS
        from seats_cli.request import check_ratio

        def whole(name: str, value, least: int | None = None) -> None:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"{name} must be a whole number (got {value!r})")
            if least is not None and value < least:
                raise ValueError(f"{name} must be at least {least} (got {value})")

        if (self.video is None) == (self.frames is None):
            raise ValueError("give a VIDEO or --frames N (not both)")
        if self.video is not None and (not isinstance(self.video, (str, os.PathLike)) or not str(self.video).strip()):
            raise ValueError(f"the video must be a file path (got {self.video!r})")
        if self.frames is not None:
            whole("--frames", self.frames)  # its range (a positive multiple of 2) is the layout's to say
        if self.text_tokens is not None:
            whole("--text-tokens", self.text_tokens, 1)
        whole("--source-height", self.source_height, 1)
        a = self.audio_seconds
        if isinstance(a, bool) or not isinstance(a, numbers.Real) or not (math.isfinite(a) and a >= 0):
            raise ValueError(f"--audio-seconds must be a finite number >= 0 (got {a})")
        if isinstance(self.trrs, (str, bytes)) or not isinstance(self.trrs, (tuple, list)):
            raise ValueError(f"trrs must be a list of ratios (got {self.trrs!r})")
        for r in self.trrs:
            check_ratio("trr", r)
        baselines = ", ".join(x for x in METHODS if x not in ("seats", "full"))
        if isinstance(self.methods, (str, bytes)) or not isinstance(self.methods, (tuple, list)):
            raise ValueError(f"methods must be a list of names, e.g. ('seats', 'fastv') (got {self.methods!r})")
        methods = []
        for m in self.methods:
            if m == "all":
                methods += [x for x in METHODS if x != "full"]
            elif not isinstance(m, str) or m not in METHODS or m == "full":
                raise ValueError(f"--method {m}: choose seats, all, or a baseline: {baselines}")
            else:
                methods.append(m)
        if not methods:
            raise ValueError(f"no --method to profile: choose seats, all, or a baseline: {baselines}")
        if not isinstance(self.options, RequestOptions):
            raise ValueError(f"options must be a RequestOptions (got {type(self.options).__name__})")
        if config is not None:
            self.options.check(config)
        return dataclasses.replace(self, trrs=tuple(dict.fromkeys(self.trrs)), methods=tuple(dict.fromkeys(methods)))

    def shape(self, config: ModelConfig, media=None, *, n_text=None, text_source=None) -> RequestShape:
        n_text = self.text_tokens if n_text is None else n_text
        if media is not None:
            return shape_from_media(media, config, n_text=n_text, question=self.question, text_source=text_source)
        return shape_from_frames(config, self.options.frame_policy(config), frames=self.frames, aspect=self.aspect,
                                 source_height=self.source_height, audio_seconds=self.audio_seconds, n_text=n_text,
                                 question=self.question)

    def decode(self, config: ModelConfig):
        from seats_cli.media import decode_video

        return None if self.video is None else decode_video(self.video, self.options.frame_policy(config))


def run_analytic(config: ModelConfig, request: ProfileRequest) -> ProfileResult:
    """``seats profile --analytic``: the request's layout from the preset alone (no weights)."""
    request = request.check(config)
    o = request.options
    shape = request.shape(config, request.decode(config))
    return profile_analytic(config, shape, list(request.trrs) or [None], video_trr=o.video_trr,
                            audio_trr=o.audio_trr, ratio_mode=o.ratio_mode, methods=request.methods)


def profile_analytic(config: ModelConfig, shape: RequestShape, trrs, *, video_trr=None,
                     audio_trr=None, ratio_mode: str | None = None, methods=("seats",)) -> ProfileResult:
    dims = config.architecture
    notes = list(shape.notes)
    if not config.calibrated:
        notes.append(f"{config.name}: SEATS layer boundaries are uncalibrated")
    runs = analytic_runs(config, shape, trrs, video_trr=video_trr, audio_trr=audio_trr, dims=dims,
                         ratio_mode=ratio_mode, methods=methods)
    notes += reach_notes(runs) + retention_notes(runs, shape, video_trr=video_trr, audio_trr=audio_trr)
    notes += context_notes(config, shape, runs, dims.max_position_embeddings)
    return ProfileResult(config.name, None, "analytic", shape.to_dict(), asdict(dims), runs, notes=notes)


def context_notes(config: ModelConfig, shape: RequestShape, runs, limit: int | None) -> list[str]:
    """What `seats ask` would refuse: a request over the model's context of ``limit`` tokens (with what each run's
    first layer receives), or whose temporal position ids run past it although its tokens fit."""
    notes = []
    total = shape.n_video + shape.n_audio + shape.n_text
    if limit and total > limit:  # `ask` refuses such a request unless --allow-long-context
        first = ", ".join(f"{r.method if r.method != 'seats' else 'SEATS'}@{r.trr:g}: "
                          f"{sum(r.layers[0][k] for k in ('video', 'audio', 'text'))}" for r in runs if r.trr)
        notes.append(f"the request is {total} tokens, over {config.name}'s context of {limit}; the LLM input "
                     f"after pre-LLM pruning is {first or 'the same'} (`seats ask` refuses what is over, unless "
                     "--allow-long-context)")
    # the temporal position ids follow the clip's time: a long clip runs past the context even when its tokens fit
    last_id = shape.n_text + max(int(max(shape.grids - 1, 0) * shape.seconds_per_grid
                                     * config.media.position_ids_per_second), shape.n_audio)
    if limit and last_id >= limit:
        notes.append(f"the largest position id is about {last_id} (time ids of {shape.grids} grids over "
                     f"{shape.grids * shape.seconds_per_grid:g} s), over {config.name}'s context of {limit}: "
                     "`seats ask` refuses it unless --allow-long-context")
    return notes


def reach_notes(runs) -> list[str]:
    """The runs' reach notes (``ProfileRun.method_notes``), each prefixed with its TRR when there are several."""
    several = len({r.trr for r in runs}) > 1
    return [f"TRR {r.trr:g}: {note}" if several else note for r in runs for note in r.method_notes or ()]


def retention_notes(runs, shape, *, video_trr=None, audio_trr=None) -> list[str]:
    """``seats ask``'s note where the achieved layer-mean retention misses the requested TRR by more than 0.02
    (``api.retention_note``), for each run without a reach note of its own (none where --video-trr and
    --audio-trr are the request: the CLI says --trr was not used), and SEATS's unreachable per-modality targets
    (``api.unreachable_notes``)."""
    from seats_cli.api import retention_note, unreachable_notes

    several_trrs, several_methods = len({r.trr for r in runs}) > 1, len({r.method for r in runs}) > 1
    notes = []
    for r in runs:
        s = r.schedule
        prefix = (f"TRR {r.trr:g}: " if several_trrs else "") + (f"{r.method}: " if several_methods else "")
        if r.method == "seats" and s:  # as ask: whatever other notes the run has
            notes += [prefix + n for n in unreachable_notes(s, len(r.layers))]
        if r.method_notes or s.get("achieved_trr") is None:
            continue
        if video_trr is not None and audio_trr is not None:
            continue
        prunes = r.method != "seats" or s["video"]["rho"] < 1 or s["audio"]["rho"] < 1
        note = retention_note(s["trr"], s["achieved_trr"], s["ratio_mode"], r.method, prunes, video_trr=video_trr,
                              audio_trr=audio_trr, has_audio=shape.n_audio > 0)
        if note:
            notes.append(prefix + note)
    return notes

