"""Encoder signals read while the stock encoders run: forward pre-hooks on the last ViT block and the last audio
layer recompute that layer's q/k with its own modules and record what a method asks for (Stage I's attention
received and the keys, FastVID's frame-query attention, OmniZip's whole-clip audio attention). Nothing in
transformers is patched. ``EncoderSignals`` is mixed into ``OmniAdapter``; a family supplies the q/k."""

from __future__ import annotations

from contextlib import contextmanager

import torch

from seats_cli.selection.saliency import frame_query_attention, merge_unit_mean, received_attention, span_bounds

# encoder signals a method may ask for besides Stage I's saliency (EncodedRequest fields of the same names)
ENCODER_SIGNALS = ("video_frame_query", "audio_whole")


class EncoderSignals:
    """The hooks; needs ``self.model`` (a Qwen omni thinker) and ``self.config`` (its preset)."""

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
