"""The adapter interface between a model family and the engine, and loading by ``--model``."""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seats_cli.config import ModelConfig, resolve_config
from seats_cli.layout import TokenLayout
from seats_cli.selection.saliency import frame_query_attention, merge_unit_mean, received_attention, span_bounds

# encoder signals a method may ask for besides Stage I's saliency (EncodedRequest fields of the same names)
ENCODER_SIGNALS = ("video_frame_query", "audio_whole")


class ModelLoadError(RuntimeError):
    """The model or its processor could not be loaded; the message is one line for the user."""


@dataclass
class PreparedRequest:
    """Processor output for one (video, question) on the model's device, plus its token layout."""

    inputs: dict[str, Any]
    layout: TokenLayout
    use_audio_in_video: bool
    positions: torch.Tensor | None = None  # the M-RoPE ids, computed once (OmniAdapter.position_ids)


@dataclass
class EncodedRequest:
    """The full LLM input sequence before any pruning."""

    embeds: torch.Tensor  # (1, S, D)
    position_ids: torch.Tensor  # (3, 1, S) M-RoPE ids, never re-indexed
    next_position: int | float  # position id of the first generated token (float where positions are, Qwen3)
    video_saliency: torch.Tensor | None = None  # (N_v,) attention received in the vision encoder's last layer
    audio_saliency: torch.Tensor | None = None  # (N_a,) same for the audio encoder
    # Qwen3 DeepStack: per early decoder layer, features added to the visual rows after that layer; visual_rank
    # maps each sequence position to its row in those tensors (-1: not a visual token)
    deepstack: tuple[torch.Tensor, ...] = ()
    visual_rank: torch.Tensor | None = None
    # keys of the encoders' last layers per LLM token (head mean, merge-unit / pair mean), recorded with saliency:
    # VisionZip merges non-dominant tokens into the anchors they resemble most by these keys
    video_keys: torch.Tensor | None = None
    audio_keys: torch.Tensor | None = None
    # FastVID: per grid, the grid's mean query's attention over its tokens (last ViT block), per video token
    video_frame_query: torch.Tensor | None = None
    # OmniZip: attention received in the last audio layer over the whole clip (no chunk mask), per audio token
    audio_whole: torch.Tensor | None = None


@dataclass
class MediaFeatures:
    """The encoders' outputs for one video and its sound (question-independent): LLM-width features, Qwen3's
    DeepStack features, and the recorded signals (``found`` keys: video, audio, video_keys, audio_keys,
    video_frame_query, audio_whole). ``key``: the signals asked for (saliency span, vision span, extra)."""

    audio: torch.Tensor | None
    video: torch.Tensor | None
    deepstack: tuple[torch.Tensor, ...]
    signals: dict
    key: tuple


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ModelLoadError(f"unknown --device {device!r} (use auto, cpu, cuda, cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"--device {device} asked for CUDA but no CUDA device is available")
    return dev


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in table:
        raise ModelLoadError(f"unknown --dtype {dtype!r} (use auto, float32, bfloat16, float16)")
    return table[dtype]


class OmniAdapter:
    """Base class of a family adapter. Subclasses implement the family-specific parts."""

    family = ""
    float_positions = False  # Qwen3-Omni: the first generated token's position id is a float

    def __init__(self, model, processor, config: ModelConfig, *, model_id: str, device: torch.device):
        self.model = model
        self.processor = processor
        self.config = config
        self.model_id = model_id
        self.device = device

    # ---- family specific ------------------------------------------------------------------------
    def prepare(self, media, question: str, system_prompt: str | None = None) -> PreparedRequest:
        raise NotImplementedError

    # ---- encoders: once per video, then one assembly per question --------------------------------
    @torch.no_grad()
    def encode_media(self, request: PreparedRequest, *, saliency: str | None = None,
                     video_span_grids: int | None = None, extra: frozenset[str] = frozenset()) -> MediaFeatures:
        """Run the stock encoders on the request's video and sound, recording the signals asked for: with
        ``saliency`` ("official"/"encoder") Stage I's saliency and the encoders' keys; ``video_span_grids``
        overrides the vision statistic's span (VisionZip: 1 grid); ``extra``: further ``ENCODER_SIGNALS``.
        Nothing here depends on the question, so one result serves every question about the same media."""
        inner = self.model.model
        inp = request.inputs
        found: dict[str, torch.Tensor] = {}
        audio = video = None
        deepstack: tuple[torch.Tensor, ...] = ()
        with self._saliency_hooks(inp, found, span=saliency, video_span_grids=video_span_grids, extra=extra):
            if "input_features" in inp:
                audio = inner.get_audio_features(inp["input_features"], inp["feature_attention_mask"],
                                                 return_dict=True).last_hidden_state
            if "pixel_values_videos" in inp:
                out = inner.get_video_features(inp["pixel_values_videos"], inp["video_grid_thw"], return_dict=True)
                video = torch.cat(out.pooler_output, dim=0)
                deepstack = tuple(torch.cat(f, dim=0) for f in (getattr(out, "deepstack_features", None) or ()))
        return MediaFeatures(audio=audio, video=video, deepstack=deepstack, signals=found,
                             key=(saliency, video_span_grids, frozenset(extra)))

    @torch.no_grad()
    def assemble(self, request: PreparedRequest, media: MediaFeatures) -> EncodedRequest:
        """The LLM input of one question: its token embeddings with the media features written into the
        placeholders, and the stock model's M-RoPE ids. ``media`` is read, never modified."""
        inner = self.model.model
        ids = request.inputs["input_ids"]
        embeds = inner.get_input_embeddings()(ids)
        if media.audio is not None:
            _, _, amask = inner.get_placeholder_mask(ids, inputs_embeds=embeds)
            embeds = embeds.masked_scatter(amask, media.audio.to(embeds.device, embeds.dtype))
        if media.video is not None:
            video = media.video.to(embeds.device, embeds.dtype)
            _, vmask, _ = inner.get_placeholder_mask(ids, inputs_embeds=embeds, video_features=video)
            embeds = embeds.masked_scatter(vmask, video)
        position_ids = self.position_ids(request)
        found = media.signals
        rank, deepstack = None, ()
        if media.deepstack:  # Qwen3 DeepStack: features added to the visual rows of the early decoder layers
            is_video = ids[0] == self.model.config.video_token_id
            rank = torch.where(is_video, torch.cumsum(is_video.long(), 0) - 1, torch.full_like(ids[0], -1))
            deepstack = tuple(f.to(embeds.device, embeds.dtype) for f in media.deepstack)
        nxt = float(position_ids.max()) + 1.0 if self.float_positions else int(position_ids.max()) + 1
        return EncodedRequest(
            embeds=embeds, position_ids=position_ids, next_position=nxt,
            video_saliency=found.get("video"), audio_saliency=found.get("audio"),
            video_keys=found.get("video_keys"), audio_keys=found.get("audio_keys"),
            video_frame_query=found.get("video_frame_query"), audio_whole=found.get("audio_whole"),
            deepstack=deepstack, visual_rank=rank,
        )

    def encode(self, request: PreparedRequest, *, saliency: str | None = None,
               video_span_grids: int | None = None, extra: frozenset[str] = frozenset()) -> EncodedRequest:
        """Encoders, embeddings and position ids in one call (``encode_media`` then ``assemble``)."""
        return self.assemble(request, self.encode_media(request, saliency=saliency,
                                                        video_span_grids=video_span_grids, extra=extra))

    def query_scores(self, layer_idx: int, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                     query_row: int) -> torch.Tensor:
        """Softmax attention of the ``query_row`` token over all rows of ``hidden``, mean over heads: (S,)."""
        raise NotImplementedError

    def _vision_qk(self, args, kwargs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
        """Inside a forward pre-hook on the last ViT block: its (q, k, cu_seqlens, scale), q and k (N, heads, d)
        after rotary, in the block's own row order."""
        raise NotImplementedError

    def _vision_unit_order(self, grid_thw, device) -> torch.Tensor | None:
        """The permutation from the block's merge-unit order to LLM token order (None: the same order)."""
        return None

    def _audio_qk(self, args, kwargs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
        """Inside a forward pre-hook on the last audio layer: its (q, k, cu_seqlens, scale), (N, heads, d)."""
        raise NotImplementedError

    def _audio_tokens(self, inp: dict, per_row: torch.Tensor) -> torch.Tensor:
        """Per audio-encoder row values -> per LLM audio token (Qwen2.5: the stride-2 pooling's pair means)."""
        return per_row

    # ---- common to the Qwen omni thinkers -------------------------------------------------------------
    def _run_processor(self, media, question: str, system_prompt: str | None) -> tuple[dict, list[int]]:
        """The stock processor on one video (its own sound interleaved when present): inputs on the model's device
        and the video grid (t, h, w). Frames arrive at the size ``media.plan_resize`` decided (the processor's
        bounds included), so the processor is told not to resize them again, and the grid is checked."""
        system = self.config.system_prompt if system_prompt is None else system_prompt
        conversation = [
            {"role": "system", "content": [{"type": "text", "text": system}]},
            {"role": "user", "content": [{"type": "video", "video": media.path}, {"type": "text", "text": question}]},
        ]
        text = self.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        cached = getattr(self, "_processed", None)
        if cached is not None and cached[0] is media:  # the same media, another question: no second processing
            inputs = self._reprompt(cached[1], cached[2], text)
            if inputs is not None:
                return inputs, cached[3]
        kwargs = dict(videos_kwargs={"fps": float(media.sample_fps), "do_resize": False,
                                     "cap_pixels_per_frame": False})
        if media.audio is not None and len(media.audio) > 0:
            kwargs.update(audio=[media.audio], audio_from_video_indices=[0], load_audio_from_video=True)
        batch = self.processor(text=text, videos=[media.frames], return_tensors="pt", **kwargs)
        grid = batch["video_grid_thw"][0].tolist()
        patch = self.processor.video_processor.patch_size
        height, width = (int(x) for x in media.frames.shape[-2:])
        if (grid[1] * patch, grid[2] * patch) != (height, width):  # one resize per frame, ours
            raise RuntimeError(f"the processor made a {grid[2] * patch}x{grid[1] * patch} grid of "
                               f"{width}x{height} frames")
        inputs = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        for key in ("pixel_values_videos", "input_features"):
            if key in inputs:
                inputs[key] = inputs[key].to(self.dtype)
        self._processed = (media, text, inputs, grid)  # one entry: the last media's processed tensors
        return inputs, grid

    def _reprompt(self, old_text: str, old: dict, text: str) -> dict | None:
        """The processor's output for ``text`` about the media it processed for ``old_text``: the expanded media
        span of the old ids (everything the video placeholder became, sound interleaved) between the new text's
        tokens before and after the placeholder; the media tensors are shared. Both texts split at special tokens
        (``<|vision_bos|>`` / ``<|vision_eos|>``), so tokenizing the parts equals tokenizing the whole (tested
        against the processor). None when the texts do not have exactly one placeholder each."""
        token = getattr(self.processor, "video_token", None)
        if not token or old_text.count(token) != 1 or text.count(token) != 1:
            return None
        tok = self.processor.tokenizer

        def ids(part: str) -> list[int]:
            return tok(part, add_special_tokens=False)["input_ids"]

        old_pre, old_suf = old_text.split(token)
        pre, suf = text.split(token)
        old_ids = old["input_ids"][0]
        start, end = len(ids(old_pre)), old_ids.numel() - len(ids(old_suf))
        media_ids = old_ids[start:end]
        new_ids = torch.cat([torch.tensor(ids(pre), dtype=old_ids.dtype, device=old_ids.device), media_ids,
                             torch.tensor(ids(suf), dtype=old_ids.dtype, device=old_ids.device)])[None]
        out = dict(old)
        out["input_ids"] = new_ids
        out["attention_mask"] = torch.ones_like(new_ids)
        return out

    @torch.no_grad()
    def position_ids(self, request: PreparedRequest) -> torch.Tensor:
        """The stock model's 3-D M-RoPE ids (3, 1, S) of the unpruned request (float on Qwen3), computed once per
        request (the context check and the assembly both read them)."""
        if request.positions is not None:
            return request.positions
        inp = request.inputs
        fam = inp.get("feature_attention_mask")
        position_ids, _ = self.model.model.get_rope_index(
            inp["input_ids"], None, inp.get("video_grid_thw"), inp["attention_mask"], request.use_audio_in_video,
            fam.sum(-1) if fam is not None else None, inp.get("video_second_per_grid"),
        )
        request.positions = position_ids
        return position_ids

    def _vision_hook(self, grid_thw, found: dict, grids_per_span: int | None, *, stat: bool = True,
                     frame_query: bool = False):
        """A forward pre-hook on the last ViT block. ``stat``: attention received over stat windows of
        ``grids_per_span`` temporal grids (None: the block's own ``cu_seqlens``) -> ``found["video"]``, and the
        head-mean, merge-unit-mean keys -> ``found["video_keys"]``; ``frame_query``: FastVID's per-grid mean-query
        attention -> ``found["video_frame_query"]``. All per LLM video token, in token order."""
        visual = self.model.model.visual
        unit = visual.spatial_merge_size ** 2
        _, h, w = (int(x) for x in grid_thw.reshape(-1, 3)[0])

        def hook(module, args, kwargs):
            q, k, cu, scale = self._vision_qk(args, kwargs)
            order = self._vision_unit_order(grid_thw, q.device)

            def put(x):
                return x if order is None else x[order]

            if stat:
                if grids_per_span is not None:
                    cu = span_bounds(q.shape[0], grids_per_span * h * w)
                per_patch = received_attention(q.transpose(0, 1), k.transpose(0, 1), cu, scale)
                found["video"] = put(merge_unit_mean(per_patch, unit))
                found["video_keys"] = put(k.float().mean(dim=1).reshape(-1, unit, k.shape[-1]).mean(dim=1))
            if frame_query:
                found["video_frame_query"] = put(frame_query_attention(q, k, h * w, unit, scale))

        return hook

    def _audio_hook(self, inp: dict, found: dict, tokens_per_span: int | None, *, stat: bool = True,
                    whole: bool = False):
        """A forward pre-hook on the last audio layer. ``stat``: attention received over spans of
        ``tokens_per_span`` encoder rows (None: the layer's own ``cu_seqlens``) -> ``found["audio"]``, and the
        head-mean keys -> ``found["audio_keys"]``; ``whole``: attention received over the whole clip's audio with no
        chunk mask (OmniZip) -> ``found["audio_whole"]``. All per LLM audio token."""

        def hook(module, args, kwargs):
            q, k, cu, scale = self._audio_qk(args, kwargs)
            n = q.shape[0]
            qh, kh = q.transpose(0, 1), k.transpose(0, 1)
            if stat:
                spans = cu if tokens_per_span is None else span_bounds(n, tokens_per_span)
                found["audio"] = self._audio_tokens(inp, received_attention(qh, kh, spans, scale))
                found["audio_keys"] = self._audio_tokens(inp, k.float().mean(dim=1))
            if whole:
                found["audio_whole"] = self._audio_tokens(inp, received_attention(qh, kh, span_bounds(n, n), scale))

        return hook

    @contextmanager
    def _saliency_hooks(self, inp, found: dict, *, span: str | None, video_span_grids: int | None = None,
                        extra: frozenset[str] = frozenset()):
        """Record the encoder signals the method needs while the encoders run. ``span`` (Stage I's saliency and
        the encoders' keys): ``official`` = the Stage I window's span (vision: ``stage1_video_grids`` grids; audio:
        ``saliency_audio_span`` or 2 x ``stage1_audio_tokens`` encoder rows), ``encoder`` = each layer's own span,
        None = not needed; ``video_span_grids`` overrides the vision span (VisionZip: 1 grid). ``extra``: any of
        ``ENCODER_SIGNALS`` (FastVID's frame-query attention, OmniZip's whole-audio attention)."""
        if span is not None and span not in ("official", "encoder"):
            raise ValueError(f"saliency span must be official or encoder, got {span!r}")
        unknown = set(extra) - set(ENCODER_SIGNALS)
        if unknown:
            raise ValueError(f"unknown encoder signal(s) {sorted(unknown)}; known: {', '.join(ENCODER_SIGNALS)}")
        inner = self.model.model
        s = self.config.seats
        handles = []
        want_query, want_whole = "video_frame_query" in extra, "audio_whole" in extra
        if "pixel_values_videos" in inp and (span is not None or want_query):
            grids = video_span_grids or (s.stage1_video_grids if span == "official" else None)
            handles.append(inner.visual.blocks[-1].register_forward_pre_hook(
                self._vision_hook(inp["video_grid_thw"], found, grids, stat=span is not None,
                                  frame_query=want_query), with_kwargs=True))
        if "input_features" in inp and (span is not None or want_whole):
            tokens = (s.saliency_audio_span or 2 * s.stage1_audio_tokens) if span == "official" else None
            handles.append(inner.audio_tower.layers[-1].register_forward_pre_hook(
                self._audio_hook(inp, found, tokens, stat=span is not None, whole=want_whole), with_kwargs=True))
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    @property
    def text_model(self):
        return self.model.model.language_model

    @property
    def layers(self):
        return self.text_model.layers

    @property
    def text_config(self):
        return self.model.config.get_text_config()

    @property
    def attn_implementation(self) -> str:
        return self.text_config._attn_implementation or "eager"

    @property
    def dtype(self) -> torch.dtype:
        return self.model.lm_head.weight.dtype

    @property
    def eos_token_ids(self) -> list[int]:
        tok = self.processor.tokenizer
        ids = {tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")}
        eos = self.model.generation_config.eos_token_id
        ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        return sorted(i for i in ids if isinstance(i, int) and i >= 0)

    def decode_text(self, token_ids: list[int]) -> str:
        if self.config.tiny:  # random bytes: show them readably rather than as replacement characters
            from seats_cli.models.tiny import readable_answer

            return readable_answer(token_ids)
        return self.processor.tokenizer.decode(token_ids, skip_special_tokens=True).strip()

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings of the thinker's text model (decoding)."""
        return self.text_model.embed_tokens(input_ids)

    def final_norm(self, hidden: torch.Tensor) -> torch.Tensor:
        """The text model's last norm, applied after the final decoder layer."""
        return self.text_model.norm(hidden)

    def lm_logits(self, normed: torch.Tensor) -> torch.Tensor:
        """The LM head on normed final hidden states."""
        return self.model.lm_head(normed)

    def after_layer(self, idx: int, hidden: torch.Tensor, live: torch.Tensor, encoded: EncodedRequest) -> torch.Tensor:
        """Per-layer extras after decoder layer ``idx`` on the live rows (Qwen3's DeepStack: the visual features of
        layer ``idx`` added to the surviving visual rows). Nothing for families without them."""
        if idx >= len(encoded.deepstack):
            return hidden
        rows = encoded.visual_rank[live].to(hidden.device)
        keep = rows >= 0
        if not bool(keep.any()):
            return hidden
        hidden = hidden.clone()
        hidden[0, keep] = hidden[0, keep] + encoded.deepstack[idx].to(hidden.device, hidden.dtype)[rows[keep]]
        return hidden

    def rotary(self, hidden: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.text_model.rotary_emb(hidden, position_ids)

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


_FAMILIES: dict[str, type[OmniAdapter]] = {}


def register_family(cls: type[OmniAdapter]) -> type[OmniAdapter]:
    _FAMILIES[cls.family] = cls
    return cls


def load_model(
    model: str = "Qwen/Qwen2.5-Omni-7B",
    *,
    config: str | ModelConfig | None = None,
    device: str = "auto",
    dtype: str = "auto",
    attn_implementation: str = "sdpa",
    revision: str | None = None,
    local_files_only: bool = False,
    cache_dir: str | os.PathLike | None = None,
    device_map: str | None = None,
) -> OmniAdapter:
    """Load a thinker (no talker) and its processor through the normal ``from_pretrained`` path. On CUDA the
    weights go straight to the GPU; ``device_map="auto"`` spreads them over every visible GPU."""
    from seats_cli.models import qwen2_5_omni, qwen3_omni  # noqa: F401  (register the families)

    cfg = config if isinstance(config, ModelConfig) else resolve_config(model, config)
    if cfg.family not in _FAMILIES:
        raise ModelLoadError(f"model family {cfg.family!r} ({cfg.name}) has no adapter yet; "
                             f"`seats profile --analytic` works for it without weights")
    if attn_implementation not in ("sdpa", "eager", "flash_attention_2"):
        raise ModelLoadError(f"unknown --attn-implementation {attn_implementation!r} (sdpa, eager, flash_attention_2)")
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    source = model
    if model == "tiny":
        from seats_cli.models.tiny import tiny_model_dir

        source = str(tiny_model_dir(cache_dir))
    elif model == "tiny-qwen3":
        from seats_cli.models.tiny_qwen3 import tiny_qwen3_model_dir

        source = str(tiny_qwen3_model_dir(cache_dir))
    elif model == "synthetic":
        from seats_cli.models.synthetic import synthetic_model_dir

        source = str(synthetic_model_dir(cache_dir))
    elif Path(model).exists() and not Path(model).is_dir():
        raise ModelLoadError(f"--model {model}: not a folder or hub id")
    if device_map not in (None, "auto"):
        raise ModelLoadError(f"--device-map {device_map!r} is not one of: auto")
    if device_map == "auto" and dev.type != "cuda":
        raise ModelLoadError("--device-map auto spreads a model over GPUs; no CUDA device is in use")
    adapter = _FAMILIES[cfg.family].from_pretrained(
        source, cfg, model_id=model, device=dev, dtype=torch_dtype, attn_implementation=attn_implementation,
        revision=revision, local_files_only=local_files_only, device_map=device_map,
    )
    check_preset(cfg, adapter.text_config)
    return adapter


def check_preset(cfg: ModelConfig, text_config) -> None:
    """The preset's layer boundaries only make sense for the model it describes: refuse a mismatch."""
    from seats_cli.config import ConfigError

    a = cfg.architecture
    have = (text_config.num_hidden_layers, text_config.hidden_size, text_config.num_attention_heads,
            text_config.num_key_value_heads)
    want = (a.num_layers, a.hidden_size, a.num_attention_heads, a.num_key_value_heads)
    if have != want:
        raise ConfigError(f"config {cfg.name} describes layers/hidden/heads/kv-heads {want} but the checkpoint "
                          f"has {have}; pass the matching --config")


def describe_load_failure(model: str, err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if Path(model).is_dir():
        return f"cannot load model from {model}: {text}"
    return (
        f"cannot load {model}: not in the local Hugging Face cache and the hub could not be reached ({text}). "
        f"Download it where there is internet (`hf download {model}`) and set HF_HOME, or pass a local folder "
        f"with --model; `--model tiny` runs offline"
    )
