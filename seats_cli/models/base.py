"""The adapter interface between a model family and the engine: preparing a request (the processor), running
the encoders once per video, assembling one question's LLM input, and the thinker's parts the engine drives.
Loading lives in ``models.loading``, the encoders' hooks in ``models.signals``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from seats_cli.config import ModelConfig
from seats_cli.layout import TokenLayout
from seats_cli.models.signals import EncoderSignals


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


class OmniAdapter(EncoderSignals):
    """Base class of a family adapter. Subclasses implement the family-specific parts."""

    family = ""
    float_positions = False  # Qwen3-Omni: the first generated token's position id is a float

    def __init__(self, model, processor, config: ModelConfig, *, model_id: str, device: torch.device):
        self.model = model
        self.processor = processor
        self.config = config
        self.model_id = model_id
        self.device = device
        from seats_cli.models.attention import use_for_encoders

        # the encoders' windows in a few batched sdpa calls instead of one per window (models/attention.py)
        self.encoder_varlen = use_for_encoders(model)

    # ---- family specific ------------------------------------------------------------------------
    def prepare(self, media, question: str, system_prompt: str | None = None) -> PreparedRequest:
        raise NotImplementedError

    # ---- encoders: once per video, then one assembly per question --------------------------------
    @torch.no_grad()
    def encode_media(self, request: PreparedRequest, *, saliency: str | None = None,
                     video_span_grids: int | None = None, extra: frozenset[str] = frozenset()) -> MediaFeatures:
        """Run the stock encoders on the request's video and sound, recording the signals asked for: with
        ``saliency`` ("official"/"encoder") Stage I's saliency and the encoders' keys; ``video_span_grids``
        overrides the vision statistic's span (VisionZip: 1 grid); ``extra``: further ``signals.ENCODER_SIGNALS``.
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
        videos_kwargs = {"do_resize": False, "cap_pixels_per_frame": False}
        if media.processor_fps == "sampled":  # else, as the authors' wrappers, no fps: the processor's default
            videos_kwargs["fps"] = float(media.sample_fps)
        kwargs = dict(videos_kwargs=videos_kwargs)
        where = self.preprocess_device
        if where is not None:  # the frames go up as uint8; rescale, normalise, patchify and the STFT run there
            videos_kwargs["device"] = where
            kwargs["audio_kwargs"] = {"device": where}
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

    @property
    def preprocess_device(self) -> str | None:
        """Where the stock processor computes the pixel values and log-mel features (``media.preprocess_on``): the
        model's CUDA device, or None (the processor's own default, the CPU)."""
        if self.config.media.preprocess_on == "device" and self.device.type == "cuda":
            return str(self.device)
        return None

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

    def prompt_notes(self, inputs: dict) -> list[str]:
        """A note when the chat template puts anything after the assistant header: Stage II (and FastV) take the
        prompt's last token as the query, as the official code does, which the method means to be the newline
        after ``assistant`` (SEATS_SPEC 7.6)."""
        header = "<|im_start|>assistant\n"
        tail = self.processor.tokenizer.decode(inputs["input_ids"][0, -64:].tolist())
        if tail.endswith(header):
            return []
        after = tail.rsplit(header, 1)[1] if header in tail else tail[-40:]
        return [f"the chat template puts {after!r} after {header!r}: the query that scores Stage II is the prompt's "
                f"last token, as in the official code"]

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


