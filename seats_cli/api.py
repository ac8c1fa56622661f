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
import time

import numpy as np
import torch

from seats_cli.config import ConfigError, ModelConfig, resolve_config
from seats_cli.engine import decode, decode_mode_for, prefill
from seats_cli.flops import TextModelDims, compare_flops
from seats_cli.machine import describe_device
from seats_cli.media import DecodedMedia, decode_video
from seats_cli.methods import SeatsPlan, build_pruner, encoder_signals
from seats_cli.methods.counts import PRE_LLM_BASELINES
from seats_cli.models import load_model
from seats_cli.prefetch import Prefetcher, file_key
from seats_cli.report import AskResult, layer_rows, stage1_reports, window_reports
from seats_cli.request import RequestOptions, check_load_options, check_text, frame_policy
from seats_cli.schedule import achieved_retention

TINY_NOTE = "tiny random-weight model: answers are meaningless (use a real checkpoint for real answers)"


def retention_note(requested: float, achieved: float, ratio_mode: str, method: str,
                   prunes: bool = True, *, video_trr: float | None = None, audio_trr: float | None = None,
                   has_audio: bool = True, trr_given: float | None = None) -> str | None:
    """A note when the achieved layer-mean retention differs from the requested TRR by more than 0.02 (with
    --video-trr/--audio-trr given, the request is those ratios: the overall one follows from them)."""
    if video_trr is not None and audio_trr is not None:  # the request is the two ratios: no overall TRR was asked
        return (f"requested --video-trr {video_trr:g}, --audio-trr {audio_trr:g}: overall retention achieved "
                f"{achieved:.3f}" + (f" (--trr {trr_given:g} not used)" if trr_given is not None else ""))
    if abs(achieved - requested) <= 0.02:
        return None
    given = next((f" with {name} {value:g}" for name, value in (("--video-trr", video_trr),
                                                                ("--audio-trr", audio_trr)) if value is not None), "")
    if given:  # one ratio given, the other solved from the TRR
        return f"requested TRR {requested:g}{given}, achieved {achieved:.3f}"
    if not prunes:
        return (f"requested TRR {requested:g}, achieved {achieved:.3f} (both modalities keep everything at Stage I, "
                f"rho_v = rho_a = 1, so nothing is pruned)")
    why = ("the official (R_v, R_a) pair weighted by this clip's audio share; --ratio-mode exact targets R"
           if ratio_mode == "table" else "rounding, the 1-token floors and Stage III")
    if ratio_mode == "table" and not has_audio:
        why = "this clip has no sound, so only the official pair's video ratio R_v applies; --ratio-mode exact " \
              "targets R"
    if method == "seats" and achieved > requested and ratio_mode == "exact":
        why = "Stage I does not run when both modalities keep everything, and Stage III caps the rest"
    return f"requested TRR {requested:g}, achieved {achieved:.3f} ({why})"


def unreachable_notes(schedule: dict, num_layers: int) -> list[str]:
    """SEATS: a modality whose target layer-mean retention is above what Stage III leaves reachable (every video
    and audio token goes at ``text_only_from``, so at most text_only_from / L of them live per layer on average:
    7B 23/28 = 0.821) and was missed by more than 0.02 — the note gives the reached value (docs/METHOD.md §4)."""
    cut = schedule.get("text_only_from")
    if cut is None or not num_layers:
        return []
    cap = cut / num_layers
    notes = []
    for m in ("video", "audio"):
        target, got = schedule.get(f"{m}_trr"), schedule.get(f"achieved_{m}_trr")
        if target is None or got is None or target <= cap or target - got <= 0.02:
            continue
        notes.append(f"{m} retention {target:g} is unreachable: Stage III removes every {m} token from layer {cut} "
                     f"on, so at most {cut}/{num_layers} = {cap:.3f} of them live per layer on average; achieved "
                     f"{got:.3f}")
    return notes


class ContextTooLong(ConfigError):
    """The request's LLM input exceeds the model's context length (exit 2; ``allow_long_context`` runs it)."""


def check_question(question: str) -> str:
    return check_text(question, "the question")


def check_media_policy(decoded, wanted) -> None:
    """Media decoded by the caller must have been sampled as this request would sample them (this model's frame
    policy with the request's fps, max_frames and frame_sizing where it gives them; what the processor is told can
    differ)."""
    differ = [f"{f.name} {getattr(decoded, f.name)!r} vs {getattr(wanted, f.name)!r}"
              for f in dataclasses.fields(wanted) if f.name != "processor_fps"
              and getattr(decoded, f.name) != getattr(wanted, f.name)]
    if differ:
        raise ConfigError(f"the media were decoded otherwise than this request asks ({'; '.join(differ)}): decode "
                          "with this model and the request's options (Seats.decode(path, ...)), or pass the path")


def context_report(adapter, request, layout, plan) -> dict:
    """What the LLM receives against what it can read: its input tokens (after Stage I for SEATS, after the
    selection or merge of a pre-LLM baseline: ``methods.counts``, an upper bound for FastVID; FastV's first layers
    see the whole request), the request's tokens before pruning, the largest position id and the model's
    ``max_position_embeddings``. ``ask`` replaces ``tokens`` by what layer 0 received once it ran."""
    tokens = layout.seq_len
    method = getattr(plan, "method", None)
    if isinstance(plan, SeatsPlan) and plan.prunes:
        tokens = sum(plan.stage1_kept(layout.n_video, layout.n_audio)) + layout.n_text
    elif method in PRE_LLM_BASELINES:
        from seats_cli.methods.counts import ESTIMATE, pre_llm_counts

        k_v, k_a, how = pre_llm_counts(method, adapter.config, plan.ratios, layout.n_video, layout.n_audio,
                                       layout.tokens_per_grid, [w.video_total for w in layout.windows],
                                       [w.audio_total for w in layout.windows])
        if how == ESTIMATE:  # OmniZip's video depends on the content: the check must not let a long one through
            k_v = layout.n_video
        tokens = k_v + k_a + layout.n_text
    limit = getattr(adapter.text_config, "max_position_embeddings", None)
    return {"tokens": tokens, "tokens_before_pruning": layout.seq_len,
            "max_position_id": int(adapter.position_ids(request).max()), "limit": limit}


def check_context(context: dict, media, method: str) -> None:
    limit = context["limit"]
    if limit is None or (context["tokens"] <= limit and context["max_position_id"] < limit):
        return
    # the tokens fit, their real-time positions do not
    if context["tokens"] <= limit and media.processor_fps != "official":
        fixes = ["--processor-fps official (positions in the processor's default time, as the authors' wrappers)",
                 "a shorter clip"]
    else:
        fixes = [f"fewer frames (--max-frames, now {len(media.frame_indices)})", "a lower --fps"]
        if method != "seats" and context["tokens"] > limit:  # Stage I cuts tokens, not the position ids
            fixes.append("--method seats (Stage I prunes before the LLM)")
    raise ContextTooLong(
        f"the LLM input is {context['tokens']} tokens (largest position id {context['max_position_id']}) but the "
        f"model reads at most {limit}; use {', '.join(fixes)}, a shorter question, or --allow-long-context")


class Seats:
    """A loaded thinker plus its processor; ``ask`` answers one question about one video."""

    def __init__(self, model: str = "Qwen/Qwen2.5-Omni-7B", *, config: str | ModelConfig | None = None,
                 device: str = "auto", dtype: str = "auto", attn_implementation: str = "sdpa",
                 revision: str | None = None, local_files_only: bool = False,
                 cache_dir: str | os.PathLike | None = None, device_map: str | None = None,
                 reuse_media: bool = True, decode_mode: str = "auto", prefetcher: Prefetcher | None = None):
        check_load_options(device, dtype, attn_implementation, device_map, decode_mode)  # as the CLI: ConfigError
        self.config = config if isinstance(config, ModelConfig) else resolve_config(model, config)
        t0 = time.perf_counter()
        self.adapter = load_model(model, config=self.config, device=device, dtype=dtype,
                                  attn_implementation=attn_implementation, revision=revision,
                                  local_files_only=local_files_only, cache_dir=cache_dir, device_map=device_map)
        self.adapter.synchronize()
        self.load_ms = (time.perf_counter() - t0) * 1000  # reported once, by the first request
        self._load_pending = True
        self.model_name = model
        self.dims = TextModelDims.from_hf_text_config(self.adapter.text_config)
        # Requests about the same file share work: the last decoded file (path, policy, stat) -> media, and the
        # last media's encoder features (the signals asked for) are kept; one entry each bounds the memory.
        self.reuse_media = reuse_media
        self.decode_mode = decode_mode_for(self.adapter, decode_mode)  # checked once; `auto` resolved per device
        self._decoded = None  # (path, frame policy, (mtime_ns, size), DecodedMedia)
        self._features = None  # (media, {signals asked for: MediaFeatures})
        self._last = None  # (media, question, system prompt, request)
        self._retold = None  # (caller's media, processor_fps, the same media telling the processor that)
        # decodes started ahead (prefetch); ``seats ask`` hands in one it started before loading the model
        self._prefetch = prefetcher if prefetcher is not None else Prefetcher()

    @classmethod
    def from_adapter(cls, adapter, *, name: str | None = None, reuse_media: bool = True,
                     decode_mode: str = "auto") -> "Seats":
        """A ``Seats`` around an adapter built elsewhere (benchmarks: random full-size models built on the device)."""
        self = cls.__new__(cls)
        self.config, self.adapter, self.model_name = adapter.config, adapter, name or adapter.model_id
        self.load_ms, self._load_pending = 0.0, False
        self.dims = TextModelDims.from_hf_text_config(adapter.text_config)
        self.reuse_media, self._decoded, self._features, self._last = reuse_media, None, None, None
        self._retold = None
        self._prefetch = Prefetcher()
        self.decode_mode = decode_mode_for(adapter, decode_mode)
        return self

    def decode(self, video: str | os.PathLike, options: RequestOptions | None = None, **given) -> DecodedMedia:
        """Decode and validate a video with this model's media policy (and the request's overrides, a
        ``RequestOptions`` or the keyword options of :meth:`ask`): the last decoded file's media when it is the same
        unchanged file (``reuse_media``), a :meth:`prefetch`'s result when one was started for it (its ``decode_ms``
        then the time waited for it), else a decode now. Raises ConfigError or MediaError."""
        if given:
            if options is not None:
                raise ConfigError("give a RequestOptions or keyword options, not both")
            options = RequestOptions.of(given)
        if options is not None and not isinstance(options, RequestOptions):
            raise ConfigError(f"options must be a RequestOptions, got {type(options).__name__}")
        options = (options or RequestOptions()).check(self.config)
        media, _, waited = self._media(os.fspath(video), options.frame_policy(self.config))
        # a prefetched file cost the caller only the wait (the ask about it charges ``decode_ms`` to its request)
        return media if waited is None else dataclasses.replace(media, decode_ms=waited)

    def ask(self, video: str | os.PathLike | DecodedMedia, question: str, *, system_prompt: str | None = None,
            **options) -> AskResult:
        """Answer ``question`` about ``video`` (a path, or media from :meth:`decode` / ``decode_video``).

        ``options`` are those of :class:`~seats_cli.request.RequestOptions` (method, trr, video_trr, audio_trr,
        fps, max_frames, max_new_tokens, seed, kv_policy, score_layer, ratio_mode, saliency_span, frame_sizing,
        processor_fps, allow_long_context); None or absent means the preset's default. Media given as such keep the
        sampling they were decoded with (only ``processor_fps`` can be told otherwise). Raises ConfigError (a bad
        option or question; ContextTooLong over the model's context) or MediaError (a file that cannot be
        decoded)."""
        t_start = time.perf_counter()
        question = check_question(question)
        opts = RequestOptions.of(options).check(self.config)
        kv_policy = opts.kv_policy or self.config.seats.kv_policy
        _seed_everything(opts.seed)
        if isinstance(video, DecodedMedia) and video.policy is not None:  # sampled by this model's policy, and
            # as the request's own fps / max_frames / frame_sizing say where it gives them
            d = video.policy
            check_media_policy(d, frame_policy(self.config, d.fps if opts.fps is None else opts.fps,
                                               d.max_frames if opts.max_frames is None else opts.max_frames,
                                               d.frame_sizing if opts.frame_sizing is None else opts.frame_sizing))
        if isinstance(video, DecodedMedia) and opts.processor_fps not in (None, video.processor_fps):
            # the request's option wins; one copy per (media, value), so the next question about it reuses its work
            told = self._retold
            if told is None or told[0] is not video or told[1] != opts.processor_fps:
                told = self._retold = (video, opts.processor_fps,
                                       dataclasses.replace(video, processor_fps=opts.processor_fps))
            video = told[2]
        media, decode_reused, waited_ms = self._media(video, opts.frame_policy(self.config))
        # decoded for this request (here or by the caller), or the wait for what a prefetch had left to do
        media_ms = 0.0 if decode_reused else media.decode_ms if waited_ms is None else waited_ms
        if isinstance(video, DecodedMedia):
            t_start -= media_ms / 1000  # the caller's decode is part of this request's total
        ad = self.adapter
        last = self._last
        same = last is not None and last[0] is media and last[1:3] == (question, system_prompt)
        t_prep = time.perf_counter()
        request = last[3] if same else ad.prepare(media, question, system_prompt)
        ad.synchronize()  # the processor may have run on the device (media.preprocess_on)
        prepare_ms = (time.perf_counter() - t_prep) * 1000
        self._last = (media, question, system_prompt, request)
        layout = request.layout
        pruner, plan = build_pruner(opts.method, self.config, layout, trr=opts.trr, video_trr=opts.video_trr,
                                    audio_trr=opts.audio_trr, score_layer=opts.score_layer, seed=opts.seed,
                                    ratio_mode=opts.ratio_mode, saliency_span=opts.saliency_span)
        is_seats = isinstance(plan, SeatsPlan)
        context = context_report(ad, request, layout, plan)
        if not opts.allow_long_context:
            check_context(context, media, opts.method)

        span, grids, extra = key = encoder_signals(plan)
        if self._features is None or self._features[0] is not media:
            self._features = (media, {})  # a new media: the old features go
        known = self._features[1]  # this media's features, one per set of signals asked for
        if span is None and not extra and known:  # the method reads no signal: any run of the encoders will do
            key = next(iter(known))
        encoders_reused = self.reuse_media and key in known
        ad.synchronize()
        t0 = time.perf_counter()
        if encoders_reused:
            features = known[key]
        else:
            features = ad.encode_media(request, saliency=span, video_span_grids=grids, extra=extra)
            if self.reuse_media:
                known[key] = features
        encoded = ad.assemble(request, features)
        ad.synchronize()
        encode_ms = (time.perf_counter() - t0) * 1000
        result = prefill(ad, encoded, layout, pruner, kv_policy=kv_policy)
        decoded = decode(ad, result, encoded.next_position, max_new_tokens=opts.new_tokens(self.config),
                         mode=self.decode_mode)
        tokens, decode_ms = decoded.tokens, decoded.ms

        layers = layer_rows(layout, result.layer_live)
        context["tokens"] = sum(layers[0][k] for k in ("video", "audio", "text"))  # what the LLM received
        notes = list(media.notes) + ad.prompt_notes(request.inputs) + ([decoded.note] if decoded.note else [])
        if self.config.tiny:
            notes.insert(0, TINY_NOTE)
        schedule = None
        method_notes = list(getattr(pruner, "notes", []))  # what a method could not reach, and why
        notes += method_notes
        if plan is not None:
            achieved = achieved_retention(layers, layout.n_video, layout.n_audio)
            schedule = plan.to_dict() | {"achieved_trr": achieved["overall"], "achieved_video_trr": achieved["video"],
                                         "achieved_audio_trr": achieved["audio"]}
            if hasattr(pruner, "score_layer"):  # SEATS: whose projections scored Stage II (--score-layer)
                schedule["score_layer"] = pruner.score_layer
            note = None if achieved["overall"] is None or method_notes else retention_note(
                plan.trr, achieved["overall"], plan.ratio_mode, opts.method, getattr(plan, "prunes", True),
                video_trr=opts.video_trr, audio_trr=opts.audio_trr, has_audio=layout.n_audio > 0, trr_given=opts.trr)
            if note:
                notes.append(note)
            if opts.method == "seats":
                notes += unreachable_notes(schedule, plan.num_layers)
        if opts.method == "full" and any(x is not None for x in (opts.trr, opts.video_trr, opts.audio_trr)):
            notes.append("--method full prunes nothing: the requested retention ratios were not used")
        if not self.config.calibrated and not self.config.tiny and opts.method == "seats":
            notes.append(f"{self.config.name}: SEATS layer boundaries are uncalibrated (taken from the 7B's; "
                         f"`seats calibrate` fits this model's own)")
        return AskResult(
            answer=ad.decode_text(tokens), model=self.model_name, method=opts.method,
            trr=None if plan is None else plan.trr,
            tokens={"video": layout.n_video, "audio": layout.n_audio, "text": layout.n_text},
            flops=compare_flops(layout.seq_len, layers, self.dims),
            latency_ms=self._latency(t_start, media_ms, prepare_ms, encode_ms, result.prefill_ms, decode_ms,
                                     len(tokens)),
            layers=layers, windows=window_reports(layout, result.stage_live), generated_tokens=len(tokens),
            device=describe_device(ad.device), dtype=str(ad.dtype).replace("torch.", ""), kv_policy=kv_policy,
            schedule=schedule, media=media.to_dict(), notes=notes,
            stage1_windows=stage1_reports(layout, plan, result.stage_live) if is_seats else None,
            random_weights=self.config.tiny, context=context,
            reused={"decode": decode_reused, "encoders": encoders_reused, "prefetched": waited_ms is not None},
            decode_mode=decoded.mode,
        )

    def _latency(self, t_start, media_ms, prepare_ms, encode_ms, prefill_ms, decode_ms, generated) -> dict:
        """Where the request's time went (ms): ``load`` (the model load, reported by the process's first request
        only, so a batch's rows add up), ``media`` (decode + resample; ~0 when reused), ``prepare`` (the
        processor), ``encode`` (encoders + embeddings), ``prefill``, ``decode``, ``total`` (this call, load
        excluded; a caller's decode of the media for this request included), and ``decode_tok_per_s`` (tokens
        after the first / decode time)."""
        load = self.load_ms if self._load_pending else 0.0
        self._load_pending = False
        steps = max(0, generated - 1)
        return {"load": load, "media": media_ms, "prepare": prepare_ms, "encode": encode_ms, "prefill": prefill_ms,
                "decode": decode_ms, "total": (time.perf_counter() - t_start) * 1000,
                "decode_tok_per_s": steps / (decode_ms / 1000) if steps and decode_ms > 0 else None}

    def prefetch(self, video: str | os.PathLike, **options) -> bool:
        """Start decoding ``video`` (a path) in a background thread for a coming :meth:`ask` about it with the
        same media options (fps, max_frames, frame_sizing, processor_fps): that ask then waits only for what is left
        of the decode (its ``latency_ms.media``; ``reused.prefetched``), while the caller goes on — ``seats batch`` decodes the
        next row's file while the model answers the current row. At most ``Prefetcher.AHEAD`` decodes wait to be
        asked for (the oldest is stopped and dropped); :meth:`close` (or ``with Seats(...) as s``) stops them all —
        without it, a process that ends waits for the decodes under way. Returns whether a decode was started; never
        raises: a bad option or an unreadable file is reported by the ask, as without a prefetch."""
        try:
            opts = RequestOptions(**{k: v for k, v in options.items() if v is not None}).check(self.config)
            return self._prefetch.start(video, opts.frame_policy(self.config))
        except Exception:  # noqa: BLE001 - the ask says what is wrong
            return False

    def close(self) -> None:
        """Stop the decodes :meth:`prefetch` started (a running one at its next frame) and let their thread end, so
        that an interrupted batch exits at once. The model stays loaded; a later prefetch starts a new thread."""
        self._prefetch.close()

    def __enter__(self) -> "Seats":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _media(self, video, policy) -> tuple[DecodedMedia, bool, float | None]:
        """``video`` decoded with ``policy``: media given as such, a prefetched decode, or the file decoded (once for
        consecutive requests about the same unchanged file, when ``reuse_media``). Returns (media, reused,
        waited): reused when the media is the previous request's, so nothing was decoded for this one; waited:
        the ms spent waiting for a prefetched decode (None when there was none)."""
        if isinstance(video, DecodedMedia):  # decoded by the caller: reused when it served the last request too
            return video, self._last is not None and self._last[0] is video, None
        path = os.fspath(video)
        key = file_key(path, policy)
        stamp = None if key is None else key[2]  # None: decode_video reports the problem
        d = self._decoded
        pending = self._prefetch.take(key)
        if self.reuse_media and stamp is not None and d is not None and d[:3] == key:
            if pending is not None:  # decoded ahead although it was the last file: not needed
                pending.stop()
            return d[3], True, None
        waited = None
        if pending is not None:
            t0 = time.perf_counter()
            try:
                media = pending.future.result()  # a failed decode raises here what decoding it now would raise
            except BaseException:  # Ctrl-C while waiting: the decode must not outlive the request
                pending.stop()
                raise
            waited = (time.perf_counter() - t0) * 1000
        else:
            media = decode_video(path, policy)
        self._decoded = (path, policy, stamp, media) if self.reuse_media and stamp is not None else None
        return media, False, waited


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
