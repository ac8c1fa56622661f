"""Analytic prefill FLOPs of the LLM (docs/METHOD.md §9, the paper's convention).

One multiply-add counts as 1 FLOP. Per layer with S tokens, hidden size D,
H attention heads and H_kv KV heads of dimension hd, MLP width I:

    F(S) = 2*S*D*(H*hd)      q and o projections
         + 2*S*D*(H_kv*hd)   k and v projections
         + 2*S^2*(H*hd)      q k^T and attn v
         + 3*S*D*I           gate, up, down

which equals the paper's 2SD^2 + 2SD*D_kv + 2S^2 D + 3SDI when hd = D/H.
The LM head adds S_last*D*V with S_last the tokens entering the last layer.
Everything is exact integer arithmetic. Not counted (as in the paper): norms,
rotary, softmax, router logits of MoE models, vision/audio encoders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

__all__ = ["TextModelDims", "layer_flops", "prefill_flops", "compare_flops"]


@dataclass(frozen=True)
class TextModelDims:
    """Shape of a decoder-only text model, as far as FLOPs are concerned.

    ``intermediate_size`` is the MLP width one token passes through: the dense FFN
    width, or for MoE models ``experts_per_token * expert_width`` (active experts).
    ``head_dim`` defaults to ``hidden_size // num_attention_heads``.
    """

    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    head_dim: int | None = None

    def __post_init__(self) -> None:
        if self.head_dim is None:
            if self.hidden_size % self.num_attention_heads:
                raise ValueError("hidden_size is not divisible by num_attention_heads; give head_dim")
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_attention_heads)
        for name in ("num_layers", "hidden_size", "intermediate_size", "num_attention_heads",
                     "num_key_value_heads", "vocab_size", "head_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")

    @property
    def q_width(self) -> int:
        """H * head_dim (the q and o projection width)."""
        return self.num_attention_heads * int(self.head_dim)  # type: ignore[arg-type]

    @property
    def kv_width(self) -> int:
        """H_kv * head_dim (the k and v projection width, D_kv)."""
        return self.num_key_value_heads * int(self.head_dim)  # type: ignore[arg-type]

    @classmethod
    def from_hf_text_config(cls, cfg: Any) -> "TextModelDims":
        """Read a transformers text config (or any object with the same attributes).

        Uses ``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``,
        ``num_key_value_heads`` (default: attention heads), ``head_dim`` (if present
        and not None), ``vocab_size`` and ``intermediate_size``. A config with
        ``num_experts_per_tok`` and ``moe_intermediate_size`` is treated as MoE with
        width ``num_experts_per_tok * moe_intermediate_size`` for every layer
        (dense/shared-expert layers of hybrid configs are not modelled).
        """
        heads = int(getattr(cfg, "num_attention_heads"))
        kv_heads = getattr(cfg, "num_key_value_heads", None)
        head_dim = getattr(cfg, "head_dim", None)
        experts = getattr(cfg, "num_experts_per_tok", None)
        moe_width = getattr(cfg, "moe_intermediate_size", None)
        if experts is not None and moe_width is not None:
            inter = int(experts) * int(moe_width)
        else:
            inter = int(getattr(cfg, "intermediate_size"))
        return cls(
            num_layers=int(getattr(cfg, "num_hidden_layers")),
            hidden_size=int(getattr(cfg, "hidden_size")),
            intermediate_size=inter,
            num_attention_heads=heads,
            num_key_value_heads=int(kv_heads) if kv_heads is not None else heads,
            vocab_size=int(getattr(cfg, "vocab_size")),
            head_dim=int(head_dim) if head_dim is not None else None,
        )


def layer_flops(S: int, dims: TextModelDims) -> int:
    """FLOPs of one decoder layer processing ``S`` tokens (exact integer)."""
    S = int(S)
    if S < 0:
        raise ValueError(f"token count must be >= 0, got {S}")
    D, I = dims.hidden_size, dims.intermediate_size
    return 2 * S * D * dims.q_width + 2 * S * D * dims.kv_width + 2 * S * S * dims.q_width + 3 * S * D * I


def prefill_flops(layer_tokens: Sequence[int], dims: TextModelDims) -> int:
    """Prefill FLOPs with ``layer_tokens[l]`` tokens entering layer l, plus the LM head.

    ``len(layer_tokens)`` must equal ``dims.num_layers``.
    """
    tokens = [int(s) for s in layer_tokens]
    if len(tokens) != dims.num_layers:
        raise ValueError(f"need {dims.num_layers} per-layer token counts, got {len(tokens)}")
    body = sum(layer_flops(s, dims) for s in tokens)
    return body + tokens[-1] * dims.hidden_size * dims.vocab_size


def compare_flops(seq_len: int, layers: Sequence[int] | Sequence[dict], dims: TextModelDims) -> dict[str, float]:
    """The one full-vs-pruned comparison every report uses: ``{"full", "pruned", "reduction"}`` for a request of
    ``seq_len`` tokens whose pruned run had ``layers`` entering each layer (token counts, or rows with
    ``video``/``audio``/``text`` counts). ``reduction = full / pruned`` (inf if pruned == 0)."""
    tokens = [int(x) if not isinstance(x, dict) else int(x["video"]) + int(x["audio"]) + int(x["text"])
              for x in layers]
    full = prefill_flops([int(seq_len)] * dims.num_layers, dims)
    pruned = prefill_flops(tokens, dims)
    return {"full": float(full), "pruned": float(pruned), "reduction": full / pruned if pruned else float("inf")}
