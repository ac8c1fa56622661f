"""A plain masked reference for the pruned prefill/decode of ``seats_cli.engine`` (SEATS_SPEC §6).

The engine drops tokens (gathers hidden states, rotary cos/sin and KV). The reference never drops anything:
it runs the *stock* decoder layers over the FULL prompt and hides every dropped token with an explicit
additive attention mask from its drop layer on. At layer ``l`` row ``i`` may attend column ``j`` iff
``j <= i`` and (``j`` in ``layer_live[l]`` or ``j == i``). A dropped row still computes something (it sees
the live tokens and itself) but no live row ever reads it, so the live rows, and the last (query) position in
particular, must come out as the engine's.

Decoding is re-run from scratch (no cache) for every new token: generated token ``k`` has position id
``encoded.next_position + k`` on all 3 M-RoPE axes; at layer ``l`` a generated row attends to the prompt
columns in ``kv_visible[l]`` and to every generated column up to itself.

Everything here is deliberately simple (dense masks, one full forward per token); it is meant for the tiny
model on the CPU.
"""

from __future__ import annotations

from typing import Sequence

import torch

KV_POLICIES = ("survivors", "per_layer")


def _column_mask(live: torch.Tensor, n: int, device) -> torch.Tensor:
    cols = torch.zeros(n, dtype=torch.bool, device=device)
    cols[torch.as_tensor(live, dtype=torch.long).to(device)] = True
    return cols


def allowed_matrix(n_prompt: int, n_generated: int, prompt_live: torch.Tensor, kv_visible: torch.Tensor,
                   device=None) -> torch.Tensor:
    """Bool (S, S), S = n_prompt + n_generated: which column each row may attend at one layer."""
    s = n_prompt + n_generated
    causal = torch.ones(s, s, dtype=torch.bool, device=device).tril()
    eye = torch.eye(s, dtype=torch.bool, device=device)
    cols = torch.zeros(s, s, dtype=torch.bool, device=device)
    # prompt rows: live prompt columns (and themselves)
    cols[:n_prompt, :n_prompt] = _column_mask(prompt_live, n_prompt, device)[None, :]
    # generated rows: the prompt KV this layer keeps, and every generated column
    cols[n_prompt:, :n_prompt] = _column_mask(kv_visible, n_prompt, device)[None, :]
    cols[n_prompt:, n_prompt:] = True
    return causal & (cols | eye)


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(1, 1, S, S) additive mask: 0 where allowed, the dtype's minimum elsewhere."""
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[None, None]


@torch.no_grad()
def _masked_forward(adapter, embeds: torch.Tensor, position_ids: torch.Tensor, n_prompt: int,
                    layer_live: Sequence[torch.Tensor], kv_visible: Sequence[torch.Tensor],
                    encoded=None) -> torch.Tensor:
    """Normed final hidden states (1, S, D) of the full sequence under the per-layer masks. With Qwen3's DeepStack
    (``encoded.deepstack``) the features are added to every visual row after layers 0..2, as the stock model
    does; dropped rows are never read, so only the live ones matter."""
    layers = adapter.layers
    if len(layer_live) != len(layers) or len(kv_visible) != len(layers):
        raise ValueError(f"need one live set per layer ({len(layers)})")
    n_generated = embeds.shape[1] - n_prompt
    hidden = embeds
    cos, sin = adapter.rotary(hidden, position_ids)
    mask, prev = None, None
    for idx, layer in enumerate(layers):
        live, kv = torch.as_tensor(layer_live[idx]).cpu(), torch.as_tensor(kv_visible[idx]).cpu()
        if prev is None or not (torch.equal(live, prev[0]) and torch.equal(kv, prev[1])):  # build once per set
            allowed = allowed_matrix(n_prompt, n_generated, live, kv, device=hidden.device)
            mask, prev = additive_mask(allowed, hidden.dtype), (live, kv)
        hidden = layer(hidden, attention_mask=mask, position_embeddings=(cos, sin))
        if encoded is not None and idx < len(encoded.deepstack):
            rank = torch.full((hidden.shape[1],), -1, dtype=torch.long, device=hidden.device)
            rank[:n_prompt] = encoded.visual_rank
            sel = rank >= 0
            hidden = hidden.clone()
            hidden[0, sel] = hidden[0, sel] + encoded.deepstack[idx][rank[sel]].to(hidden.dtype)
    return adapter.text_model.norm(hidden)


@torch.no_grad()
def masked_reference_logits(adapter, encoded, layer_live: Sequence[torch.Tensor]) -> torch.Tensor:
    """Float32 (V,) logits of the last prompt position of the masked full-sequence forward."""
    n = encoded.embeds.shape[1]
    hidden = _masked_forward(adapter, encoded.embeds, encoded.position_ids, n, layer_live, layer_live, encoded)
    return adapter.model.lm_head(hidden[:, -1]).float().reshape(-1)


def kv_visible_for(policy: str, layer_live: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Prompt KV each layer holds after prefill: its own live set (per_layer) or the final survivors."""
    if policy == "per_layer":
        return list(layer_live)
    if policy == "survivors":
        return [layer_live[-1]] * len(layer_live)
    raise ValueError(f"unknown KV policy {policy!r}")


def _with_generated(adapter, encoded, tokens: Sequence[int]):
    """Prompt embeddings/positions followed by generated ``tokens`` (positions next_position + k on all 3 axes)."""
    if not tokens:
        return encoded.embeds, encoded.position_ids
    dev = encoded.embeds.device
    gen = adapter.text_model.embed_tokens(torch.tensor([list(tokens)], device=dev)).to(encoded.embeds.dtype)
    gen_pos = (encoded.next_position + torch.arange(len(tokens), device=dev)).view(1, 1, -1).expand(3, 1, -1)
    return (torch.cat([encoded.embeds, gen], dim=1),
            torch.cat([encoded.position_ids, gen_pos.to(encoded.position_ids.dtype)], dim=2))


@torch.no_grad()
def masked_reference_generate(adapter, encoded, layer_live: Sequence[torch.Tensor],
                              kv_visible: Sequence[torch.Tensor], n_tokens: int) -> list[int]:
    """Greedy tokens, re-running the whole (prompt + generated) sequence without any cache for each one."""
    n_prompt = encoded.embeds.shape[1]
    tokens: list[int] = []
    for _ in range(n_tokens):
        embeds, position_ids = _with_generated(adapter, encoded, tokens)
        hidden = _masked_forward(adapter, embeds, position_ids, n_prompt, layer_live, kv_visible, encoded)
        logits = adapter.model.lm_head(hidden[:, -1]).float().reshape(-1)
        tokens.append(int(logits.argmax()))
    return tokens


@torch.no_grad()
def masked_reference_greedy_given(adapter, encoded, layer_live: Sequence[torch.Tensor],
                                  kv_visible: Sequence[torch.Tensor], tokens: Sequence[int]) -> list[int]:
    """The reference's greedy choice after each prefix of ``tokens``, from ONE masked forward.

    Row ``n_prompt - 1 + k`` of a forward over prompt + ``tokens[:-1]`` sees exactly what the k-th step of
    :func:`masked_reference_generate` sees when the first k tokens are ``tokens[:k]`` (causal mask, no cache).
    So ``masked_reference_greedy_given(..., t) == t`` holds iff ``masked_reference_generate(..., len(t)) == t``
    (induction on k; the first k where they differ is reported by both). A cheaper way to run the same check.
    """
    tokens = [int(t) for t in tokens]
    n_prompt = encoded.embeds.shape[1]
    embeds, position_ids = _with_generated(adapter, encoded, tokens[:-1])
    hidden = _masked_forward(adapter, embeds, position_ids, n_prompt, layer_live, kv_visible, encoded)
    logits = adapter.model.lm_head(hidden[0, n_prompt - 1:]).float()
    return [int(i) for i in logits.argmax(dim=-1)]


def full_live(encoded, num_layers: int) -> list[torch.Tensor]:
    """Nothing dropped: every layer sees every prompt position."""
    return [torch.arange(encoded.embeds.shape[1])] * num_layers


# ---- shared, cached test inputs (one decode/prepare/encode per adapter, clip and question) ----------------
_CASES: dict = {}


def prepared_case(adapter, path, question: str = "What is moving?"):
    """(media, request, encoded) for a clip, decoded with the adapter's own frame policy; encoded with
    ``saliency=True`` (the hooks only read, so the embeddings are those of a plain encode). Cached."""
    from seats_cli.request import frame_policy
    from seats_cli.media import decode_video

    key = (id(adapter), str(path), question)
    if key not in _CASES:
        media = decode_video(path, frame_policy(adapter.config))
        request = adapter.prepare(media, question)
        encoded = adapter.encode(request, saliency="official")
        _CASES[key] = (adapter, media, request, encoded)  # the adapter is kept so that its id stays unique
    return _CASES[key][1:]


_ADAPTERS: dict = {}


def load_tiny(tiny_dir, attn_implementation: str = "sdpa"):
    """The tiny model from the session's cache folder on the CPU in fp32, loaded once per attention kind."""
    from seats_cli.models import load_model

    key = (str(tiny_dir), attn_implementation)
    if key not in _ADAPTERS:
        _ADAPTERS[key] = load_model("tiny", device="cpu", dtype="float32", attn_implementation=attn_implementation,
                                    cache_dir=tiny_dir.parent)
    return _ADAPTERS[key]


def write_clip(path, *, seconds: float = 4.0, fps: int = 10, width: int = 64, height: int = 48,
               audio: bool = False):
    """A small .mp4 clip (H.264, plus a 16 kHz tone when ``audio``), written by tests/media_factory."""
    from media_factory import make_clip

    return make_clip(path, width=width, height=height, fps=fps, seconds=seconds, audio_rate=16000 if audio else None)


def seats_counts_by_the_rule(plan, layers: Sequence[dict]) -> list[dict]:
    """The per-layer counts a SEATS prefill must show, rebuilt from its own layer-0 counts by the method's rules
    (not from ``plan.counts``, which assumes each step keeps exactly K_v video and K_a audio: the window budgets
    fix only their sum, so the modalities can trade a token, and the next step rounds on the counts that are really
    there): at the i-th Stage II drop K_v = step_keep(video before, keep_ratio_v[i]), likewise audio, the split
    between them free but the sum exact; from ``text_only_from`` text only; unchanged elsewhere."""
    from seats_cli.schedule import step_keep

    out = [dict(layers[0])]
    for i in range(1, len(layers)):
        prev, row = out[-1], dict(layers[i])
        if plan.text_only_from is not None and i >= plan.text_only_from:
            want = {"video": 0, "audio": 0}
        elif i in plan.prune_before:
            j = plan.prune_before.index(i)
            k = step_keep(prev["video"], plan.video.keep_ratios[j]) + step_keep(prev["audio"],
                                                                                 plan.audio.keep_ratios[j])
            assert row["video"] + row["audio"] == k, (i, row, prev, k)
            want = {"video": row["video"], "audio": row["audio"]}
        else:
            want = {"video": prev["video"], "audio": prev["audio"]}
        out.append(row | want | {"text": prev["text"]})
    return out


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """Maximal runs of True as half-open (start, end), by a plain loop."""
    out, start = [], None
    for i, f in enumerate(flags + [False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            out.append((start, i))
            start = None
    return out


def check_stage2_keeps_window_tops(layout, layer_live, scores, drops) -> None:
    """At each Stage II drop (``scores``: the query rows the layer computed, in order), inside every video run and
    every audio run of the live rows (the windows' halves), the kept rows are the best-scored ones (ties: the
    lower row), by a plain loop; there are several windows, and something is dropped."""
    drops = list(drops)
    assert len(scores) == len(drops)
    for s, layer in zip(scores, drops):
        s = s.float().cpu()
        before, after = layer_live[layer - 1].tolist(), set(layer_live[layer].tolist())
        mod = [int(layout.modality[p]) for p in before]
        v_runs, a_runs = _runs([m == 1 for m in mod]), _runs([m == 2 for m in mod])
        assert min(len(v_runs), len(a_runs)) > 1  # windows, not the global top
        dropped = False
        for run in v_runs + a_runs:
            rows = list(range(*run))
            kept = [r for r in rows if before[r] in after]
            best = sorted(rows, key=lambda r: (-float(s[r]), r))[:len(kept)]
            assert sorted(kept) == sorted(best), (layer, run)
            dropped |= len(kept) < len(rows)
        assert dropped
