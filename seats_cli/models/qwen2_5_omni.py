"""Qwen2.5-Omni (3B / 7B) thinker adapter: stock transformers classes, driven from outside.

Saliency for Stage I is read with forward pre-hooks on the stock encoders' last layers (their inputs and
attention spans), recomputing q/k with the layers' own modules; nothing in transformers is patched.
"""

from __future__ import annotations


import torch

from seats_cli.layout import build_layout
from seats_cli.models.base import OmniAdapter, PreparedRequest
from seats_cli.models.loading import ModelLoadError, describe_load_failure, register_family
from seats_cli.selection.saliency import pair_mean


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    from transformers.models.qwen2_5_omni.modeling_qwen2_5_omni import rotate_half

    return x * cos + rotate_half(x) * sin


@register_family
class Qwen25OmniAdapter(OmniAdapter):
    family = "qwen2_5_omni"

    @classmethod
    def from_pretrained(cls, source, cfg, *, model_id, device, dtype, attn_implementation, revision,
                        local_files_only, device_map=None):
        from transformers import AutoProcessor, Qwen2_5OmniThinkerForConditionalGeneration

        kwargs = dict(revision=revision, local_files_only=local_files_only)
        placement = device_map or ({"": str(device)} if device.type == "cuda" else None)  # straight to the GPU
        try:
            model = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(
                source, dtype=dtype, attn_implementation=attn_implementation, device_map=placement, **kwargs
            )
            processor = AutoProcessor.from_pretrained(source, **kwargs)
        except ImportError as e:  # e.g. flash_attention_2 without the flash-attn package
            raise ModelLoadError(f"cannot load {model_id}: {str(e).splitlines()[0]}") from None
        except torch.cuda.OutOfMemoryError:
            raise ModelLoadError(f"{model_id} does not fit on {device}; try --device-map auto over several GPUs "
                                 f"or --dtype bfloat16") from None
        except (OSError, ValueError) as e:
            raise ModelLoadError(describe_load_failure(model_id, e)) from None
        if placement is None:
            model.to(device)
        model.eval()
        return cls(model, processor, cfg, model_id=model_id, device=device)

    # ---- inputs -------------------------------------------------------------------------------
    def prepare(self, media, question: str, system_prompt: str | None = None) -> PreparedRequest:
        inputs, grid = self._run_processor(media, question, system_prompt)
        with_audio = "input_features" in inputs
        cfg = self.model.config
        layout = build_layout(
            inputs["input_ids"], video_token_id=cfg.video_token_id, audio_token_id=cfg.audio_token_id,
            video_grid_thw=inputs.get("video_grid_thw"),
            # the processor's own expression (a python float), so chunk boundaries match it bit for bit
            seconds_per_grid=self.processor.video_processor.temporal_patch_size
            / self.config.media.processor_fps_for(media.sample_fps, media.processor_fps),
            merge_size=cfg.vision_config.spatial_merge_size,
            position_ids_per_second=cfg.position_id_per_seconds,
            seconds_per_window=self.config.media.seconds_per_window, duration_s=media.duration_s,
        )
        return PreparedRequest(inputs=inputs, layout=layout, use_audio_in_video=with_audio)

    # ---- encoder signals (the base class runs the encoders: OmniAdapter.encode) -----------------
    def _vision_qk(self, args, kwargs):
        """q/k of the last ViT block, recomputed with its own modules (rows in the window permutation's order;
        the permutation acts inside each temporal grid, so whole grids stay contiguous)."""
        from transformers.models.qwen2_5_omni.modeling_qwen2_5_omni import apply_rotary_pos_emb_vision

        block = self.model.model.visual.blocks[-1]
        hidden = args[0] if args else kwargs["hidden_states"]
        cos, sin = kwargs["position_embeddings"]
        x = block.norm1(hidden)
        n = x.shape[0]
        q = block.attn.q(x).reshape(n, block.attn.num_heads, -1)
        k = block.attn.k(x).reshape(n, block.attn.num_heads, -1)
        q, k = apply_rotary_pos_emb_vision(q, k, cos, sin)
        return q, k, kwargs["cu_seqlens"], block.attn.scaling

    def _vision_unit_order(self, grid_thw, device):
        from transformers.vision_utils import get_vision_window_index

        visual = self.model.model.visual
        window_index, _ = get_vision_window_index(
            grid_thw, spatial_merge_size=visual.spatial_merge_size, window_size=visual.window_size,
            patch_size=visual.patch_size,
        )
        return torch.argsort(window_index.to(device))

    def _audio_qk(self, args, kwargs):
        layer = self.model.model.audio_tower.layers[-1]
        hidden = args[0] if args else kwargs["hidden_states"]
        attn = layer.self_attn
        x = layer.self_attn_layer_norm(hidden)
        n = x.shape[0]
        q = attn.q_proj(x).reshape(n, attn.num_heads, -1)
        k = attn.k_proj(x).reshape(n, attn.num_heads, -1)
        return q, k, kwargs["cu_seqlens"], attn.scaling

    def _audio_tokens(self, inp, per_row):
        from transformers.models.qwen2_5_omni.modeling_qwen2_5_omni import get_pool_indices

        first = get_pool_indices(inp["feature_attention_mask"].sum(-1)).to(per_row.device)
        return pair_mean(per_row, first)

    # ---- Stage II query ---------------------------------------------------------------------------
    @torch.no_grad()
    def query_scores(self, layer_idx, hidden, cos, sin, query_row):
        layer = self.layers[layer_idx]
        attn = layer.self_attn
        x = layer.input_layernorm(hidden)
        cos, sin = cos.to(x.device), sin.to(x.device)  # the layer's device (--device-map auto)  # (1, S, D)
        s = x.shape[1]
        q = attn.q_proj(x[:, query_row:query_row + 1]).view(1, 1, -1, attn.head_dim).transpose(1, 2)
        k = attn.k_proj(x).view(1, s, -1, attn.head_dim).transpose(1, 2)  # (1, H_kv, S, d)
        q = _rotate(q, cos[:, query_row:query_row + 1].unsqueeze(1), sin[:, query_row:query_row + 1].unsqueeze(1))
        k = _rotate(k, cos.unsqueeze(1), sin.unsqueeze(1))
        # grouped-query attention without repeating K: head h uses kv head h // groups (repeat_kv's order)
        q = q.reshape(1, k.shape[1], attn.num_key_value_groups, attn.head_dim)
        logits = torch.matmul(q.float(), k.float().transpose(-1, -2)) * attn.scaling  # (1, H_kv, groups, S)
        logits = logits.reshape(1, -1, 1, s)  # (1, H, 1, S)
        return logits.softmax(dim=-1).mean(dim=1).reshape(s)
