"""Qwen3-Omni (30B-A3B MoE) thinker adapter: stock transformers classes, driven from outside.

Differences from Qwen2.5 handled here (SEATS_SPEC §7): DeepStack visual features added after decoder layers 0-2
(``EncodedRequest.deepstack``, applied by ``OmniAdapter.after_layer`` to the surviving visual rows), q/k norms
before rotary in the Stage II scores, float M-RoPE position ids (decoding continues at max + 1 as a float),
13 audio tokens per second with no pooling, time chunks = the processor's runs (a clip without sound: per 2 s),
the experts kernel named by the preset, weights loaded straight onto the GPU (``device_map``). Nothing in transformers is patched.
"""

from __future__ import annotations


import torch

from seats_cli.layout import build_layout_from_runs
from seats_cli.models.base import OmniAdapter, PreparedRequest
from seats_cli.models.loading import ModelLoadError, describe_load_failure, register_family


@register_family
class Qwen3OmniAdapter(OmniAdapter):
    family = "qwen3_omni"
    float_positions = True

    @classmethod
    def from_pretrained(cls, source, cfg, *, model_id, device, dtype, attn_implementation, revision,
                        local_files_only, device_map=None):
        from transformers import AutoProcessor, Qwen3OmniMoeThinkerForConditionalGeneration

        kwargs = dict(revision=revision, local_files_only=local_files_only)
        experts = {"experts_implementation": cfg.architecture.experts_implementation} \
            if cfg.architecture.experts_implementation else {}  # the preset names the kernel (SEATS_SPEC 7.1)
        # a 30B checkpoint goes straight to its GPU(s): no full copy in host memory first
        placement = device_map or ({"": str(device)} if device.type == "cuda" else None)
        try:
            model = Qwen3OmniMoeThinkerForConditionalGeneration.from_pretrained(
                source, dtype=dtype, attn_implementation=attn_implementation, device_map=placement, **experts,
                **kwargs
            )
            processor = AutoProcessor.from_pretrained(source, **kwargs)
        except ImportError as e:
            raise ModelLoadError(f"cannot load {model_id}: {str(e).splitlines()[0]}") from None
        except torch.cuda.OutOfMemoryError:
            raise ModelLoadError(f"{model_id} does not fit on {device}; try --device-map auto over several GPUs, "
                                 f"or --dtype bfloat16") from None
        except (OSError, ValueError) as e:
            if experts and "experts_implementation" in str(e):  # the named kernel, not a missing checkpoint
                raise ModelLoadError(f"cannot load {model_id} with the experts kernel {experts['experts_implementation']}"
                                     f": {str(e).splitlines()[0]}; name another in a config file "
                                     f"(architecture.experts_implementation: eager)") from None
            raise ModelLoadError(describe_load_failure(model_id, e)) from None
        if placement is None:
            model.to(device)
        return cls(model.eval(), processor, cfg, model_id=model_id, device=device)

    # ---- inputs -------------------------------------------------------------------------------
    def prepare(self, media, question: str, system_prompt: str | None = None) -> PreparedRequest:
        inputs, grid = self._run_processor(media, question, system_prompt)
        cfg = self.model.config
        merge = cfg.vision_config.spatial_merge_size
        layout = build_layout_from_runs(
            inputs["input_ids"], video_token_id=cfg.video_token_id, audio_token_id=cfg.audio_token_id,
            tokens_per_grid=(grid[1] // merge) * (grid[2] // merge),
            seconds_per_grid=self.processor.video_processor.temporal_patch_size
            / self.config.media.processor_fps_for(media.sample_fps, media.processor_fps),
            audio_tokens_per_second=self.config.media.audio_tokens_per_second, duration_s=media.duration_s,
            seconds_per_window=self.config.media.seconds_per_window,
        )
        # the model flag follows the ids: <|vision_start|> directly followed by <|audio_start|>
        ids = inputs["input_ids"][0]
        starts = (ids[:-1] == cfg.vision_start_token_id) & (ids[1:] == cfg.audio_start_token_id)
        return PreparedRequest(inputs=inputs, layout=layout, use_audio_in_video=bool(starts.any()))

    # ---- encoder signals (the base class runs the encoders: OmniAdapter.encode) -----------------
    def _vision_qk(self, args, kwargs):
        """q/k of the last ViT block; patches are grouped by merge unit already (no window permutation), so 4
        consecutive patches make one LLM token."""
        from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import apply_rotary_pos_emb_vision

        block = self.model.model.visual.blocks[-1]
        hidden = args[0] if args else kwargs["hidden_states"]
        cos, sin = kwargs["position_embeddings"]
        x = block.norm1(hidden)
        n = x.shape[0]
        q, k, _ = block.attn.qkv(x).reshape(n, 3, block.attn.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
        q, k = apply_rotary_pos_emb_vision(q, k, cos, sin)
        cu = kwargs.get("cu_seqlens", args[1] if len(args) > 1 else None)
        return q, k, cu, block.attn.scaling

    def _audio_qk(self, args, kwargs):
        layer = self.model.model.audio_tower.layers[-1]
        hidden = args[0] if args else kwargs["hidden_states"]
        attn = layer.self_attn
        x = layer.self_attn_layer_norm(hidden)
        n = x.shape[0]
        q = attn.q_proj(x).reshape(n, attn.num_heads, -1)
        k = attn.k_proj(x).reshape(n, attn.num_heads, -1)
        cu = kwargs.get("cu_seqlens", args[1] if len(args) > 1 else None)  # Qwen3 passes it positionally
        return q, k, cu, attn.scaling

    # ---- Stage II query ---------------------------------------------------------------------------
    @torch.no_grad()
    def query_scores(self, layer_idx, hidden, cos, sin, query_row):
        """Softmax attention of the query row over all rows with layer ``layer_idx``'s own q/k projections and
        q/k norms (before rotary, as the stock attention), mean over heads."""
        from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import rotate_half

        layer = self.layers[layer_idx]
        attn = layer.self_attn
        x = layer.input_layernorm(hidden)
        cos, sin = cos.to(x.device), sin.to(x.device)  # the layer's device (--device-map auto)
        s, hd = x.shape[1], attn.head_dim
        q = attn.q_norm(attn.q_proj(x[:, query_row:query_row + 1]).view(1, 1, -1, hd)).transpose(1, 2)
        k = attn.k_norm(attn.k_proj(x).view(1, s, -1, hd)).transpose(1, 2)
        cq, sq = cos[:, query_row:query_row + 1].unsqueeze(1), sin[:, query_row:query_row + 1].unsqueeze(1)
        q = q * cq + rotate_half(q) * sq
        k = k * cos.unsqueeze(1) + rotate_half(k) * sin.unsqueeze(1)
        q = q.reshape(1, k.shape[1], attn.num_key_value_groups, hd)
        logits = torch.matmul(q.float(), k.float().transpose(-1, -2)) * attn.scaling
        return logits.reshape(1, -1, 1, s).softmax(dim=-1).mean(dim=1).reshape(s)
