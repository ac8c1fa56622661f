"""lmms-eval plugin: `lmms-eval --model seats --model_args pretrained=Qwen/Qwen2.5-Omni-7B,method=seats,trr=0.1`.

Installed by ``pip install "seats-cli[lmms]"``: the package's entry point ``lmms_eval.models: seats`` hands
lmms-eval ``seats_cli.lmms_manifest.MANIFEST``, so no file of lmms-eval is edited. ``SeatsLMM`` answers
``generate_until``
requests with ``Seats.ask`` (one video per request, its sound interleaved as the paper ran it); requests about the
same video back to back share its decode, processed frames and encoder outputs. Model args: pretrained, config,
method, trr, video_trr, audio_trr, ratio_mode, fps, max_frames, processor_fps, max_new_tokens (default: the
request's), use_audio, system_prompt, seed, device, dtype, attn_implementation, device_map, revision,
local_files_only.

Benchmarks lmms-eval lacks (Daily-Omni, OmniVideoBench, LVOmniBench — and any of ours) become lmms-eval tasks
with ``seats eval export-lmms`` (``seats_cli/lmms_tasks``), used with ``--include_path``.
"""

from __future__ import annotations

from dataclasses import replace

import lmms_eval.models  # noqa: F401  (first: it reads the plugins' manifests, ours among them, as it loads)
from lmms_eval.api.model import lmms

from seats_cli.lmms_manifest import MANIFEST  # noqa: F401  (the entry point's object, importable here too)

_FLOATS = ("trr", "video_trr", "audio_trr", "fps")
_INTS = ("max_frames", "max_new_tokens", "seed")


class SeatsLMM(lmms):
    is_simple = True

    def __init__(self, pretrained: str = "Qwen/Qwen2.5-Omni-7B", method: str = "seats", trr=None, video_trr=None,
                 audio_trr=None, ratio_mode: str | None = None, fps=None, max_frames=None, max_new_tokens=None,
                 processor_fps: str | None = None,
                 use_audio: bool = True, system_prompt: str | None = None, seed: int = 0, config: str | None = None,
                 device: str = "auto", dtype: str = "auto", attn_implementation: str = "sdpa",
                 device_map: str | None = None, revision: str | None = None, local_files_only: bool = False,
                 batch_size: int = 1, **unknown) -> None:
        super().__init__()
        if unknown:
            raise ValueError(f"seats: unknown model_args {', '.join(sorted(unknown))}")
        if int(batch_size) != 1:
            raise ValueError("seats: batch_size must be 1 (the engine runs one request at a time)")
        from seats_cli.api import Seats
        from seats_cli.request import RequestOptions

        given = dict(method=method, trr=trr, video_trr=video_trr, audio_trr=audio_trr, ratio_mode=ratio_mode,
                     fps=fps, max_frames=max_frames, max_new_tokens=max_new_tokens, seed=seed,
                     processor_fps=processor_fps)
        for k in _FLOATS:
            given[k] = None if given[k] is None else float(given[k])
        for k in _INTS:
            given[k] = None if given[k] is None else int(given[k])
        self.options = {k: v for k, v in given.items() if v is not None}
        self.seats = Seats(str(pretrained), config=config, device=device, dtype=dtype,
                           attn_implementation=attn_implementation, device_map=device_map, revision=revision,
                           local_files_only=bool(local_files_only))
        self.request_options = RequestOptions(**self.options).check(self.seats.config)
        self.use_audio = bool(use_audio)
        # "{default}" stands for the model's own system prompt (WorldSense and Daily-Omni append to it)
        self.system_prompt = None if system_prompt is None else str(system_prompt).replace(
            "{default}", self.seats.config.system_prompt)
        self.records: list[dict] = []  # every answer's full `ask` record (FLOPs, latency, tokens per layer)
        self._silent = None  # use_audio=False: (decoded media, the same without its audio)

    def _video(self, visuals):
        videos = [v for v in (visuals if isinstance(visuals, (list, tuple)) else [visuals]) if isinstance(v, str)]
        if len(videos) != 1:
            raise ValueError(f"seats answers questions about one video file; this request has {len(videos)}")
        if self.use_audio:
            return videos[0]
        media = self.seats.decode(videos[0], self.request_options)  # the last file's media again when unchanged
        if self._silent is None or self._silent[0] is not media:  # one silent copy per decoded media, so that the
            self._silent = (media, replace(media, audio=None))  # ask sees the same object and reports the reuse
        return self._silent[1]

    def generate_until(self, requests) -> list[str]:
        out = []
        for req in requests:
            context, gen_kwargs, doc_to_visual, doc_id, task, split = req.args
            visuals = doc_to_visual(self.task_dict[task][split][doc_id])
            gen = dict(gen_kwargs or {})
            until = gen.pop("until", None)
            opts = dict(self.options)
            if "max_new_tokens" in gen and "max_new_tokens" not in opts:
                opts["max_new_tokens"] = int(gen["max_new_tokens"])
            r = self.seats.ask(self._video(visuals), context, system_prompt=self.system_prompt, **opts)
            text = r.answer
            for stop in ([until] if isinstance(until, str) else until or []):
                if stop:
                    text = text.split(stop)[0]
            self.records.append({"task": task, "doc_id": doc_id, **r.to_dict()})
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
            out.append(text)
        return out

    def loglikelihood(self, requests):
        raise NotImplementedError("seats answers generate_until tasks (multiple choice by letter), not loglikelihood")

    def generate_until_multi_round(self, requests):
        raise NotImplementedError("seats answers single-round generate_until tasks")
