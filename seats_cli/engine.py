"""Our own prefill and decode loops over the stock thinker's decoder layers.

The stock ``generate()`` cannot continue from caches whose layers differ in length, so SEATS drives the
layers itself: a pruning method may drop tokens before the LLM and before chosen layers; every drop gathers
hidden states, rotary cos/sin and the position bookkeeping once; with KV policy ``survivors`` the KV of every
layer is cut to the final survivors once, at the end of prefill. Without drops the loop equals the stock
forward exactly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import torch

from seats_cli.choices import KV_POLICIES
from seats_cli.layout import TokenLayout
from seats_cli.models.base import EncodedRequest, OmniAdapter
from seats_cli.transfer import HostCopy, to_device, to_host



@dataclass
class PruneState:
    """What a method sees before a layer: the live tokens and their hidden states."""

    layer: int
    hidden: torch.Tensor  # (1, S_live, D)
    cos: torch.Tensor  # (1, S_live, head_dim)
    sin: torch.Tensor
    modality: torch.Tensor  # (S_live,) TEXT/VIDEO/AUDIO of the live tokens, on the model's device
    host_modality: torch.Tensor | None = None  # the same on the CPU (no device round trip to read it)
    positions: torch.Tensor | None = None  # (S_live,) original positions of the live tokens, on the CPU


class Pruner(Protocol):
    """A token-reduction method. Returned indices are positions into the *current* live set to keep."""

    name: str
    drop_layers: frozenset[int]

    def before_llm(self, adapter: OmniAdapter, encoded: EncodedRequest,
                   layout: TokenLayout) -> "torch.Tensor | Merge | None":
        """Positions to keep before layer 0 (None: all), or a ``Merge`` for a method that also writes merged
        vectors into some kept slots (VisionZip, OmniZip, FastVID)."""

    def at_layer(self, adapter: OmniAdapter, state: PruneState) -> torch.Tensor | None: ...


@dataclass(frozen=True)
class Merge:
    """A merging method's choice before layer 0: the positions kept (ascending), and new embeddings for some of
    them (``positions`` ⊆ ``keep``, one row of ``vectors`` each). A merged vector takes its anchor's slot and keeps
    the anchor's position ids; the encoded request itself is never modified."""

    keep: torch.Tensor
    positions: torch.Tensor
    vectors: torch.Tensor

    @classmethod
    def of(cls, keep: torch.Tensor, positions: list[torch.Tensor], vectors: list[torch.Tensor]):
        """``keep`` alone when nothing was merged, else the Merge of the concatenated anchors."""
        if not positions:
            return keep
        return cls(keep, torch.cat(positions), torch.cat(vectors))


class NoPruning:
    name = "full"
    drop_layers: frozenset[int] = frozenset()

    def before_llm(self, adapter, encoded, layout):
        return None

    def at_layer(self, adapter, state):
        return None


@dataclass
class PrefillResult:
    logits: torch.Tensor  # (V,) float32 logits of the last prompt position
    cache: object  # transformers DynamicCache, one layer per decoder layer
    layer_live: list[torch.Tensor]  # per layer: original positions that entered it (CPU)
    stage_live: list[tuple[int, torch.Tensor]]  # (layer, live positions) after Stage I (layer 0) and each drop
    prefill_ms: float
    hidden: torch.Tensor | None = None  # (1, S_final, D) normed final hidden states when asked for
    select_ms: float | None = None  # time in the method's selection (before layer 0 and at drops), when timed


def _causal_mask(n: int, like: torch.Tensor) -> torch.Tensor:
    mask = torch.full((n, n), torch.finfo(like.dtype).min, dtype=like.dtype, device=like.device).triu(1)
    return mask[None, None]


def _keep_survivors(cache, layer_live: list[torch.Tensor], survivors: torch.Tensor) -> None:
    """KV policy ``survivors``: every layer keeps the KV of the final survivors only. Earlier layers' caches are
    not read again during prefill, so one cut per layer at the end equals cutting them at every drop. Layers
    between two drops saw the same positions (one tensor): one index, and one copy to each device, per stage."""
    rows: dict[tuple[int, torch.device], torch.Tensor] = {}
    for lay, seen in zip(cache.layers, layer_live):
        if seen.numel() == survivors.numel() or getattr(lay, "keys", None) is None:
            continue
        key = (id(seen), lay.keys.device)
        if key not in rows:  # both ascending; survivors is a subset of what the layer saw
            rows[key] = to_device(torch.searchsorted(seen, survivors), lay.keys.device)
        lay.keys = lay.keys.index_select(2, rows[key])
        lay.values = lay.values.index_select(2, rows[key])


def _on_host(host):
    """The live positions on the host, waiting for their copy from the device if it is still under way."""
    return host.get() if isinstance(host, HostCopy) else host


@torch.no_grad()
def prefill(
    adapter: OmniAdapter,
    encoded: EncodedRequest,
    layout: TokenLayout,
    pruner: Pruner | None = None,
    *,
    kv_policy: str = "survivors",
    return_hidden: bool = False,
    time_selection: bool = False,
) -> PrefillResult:
    """One prefill. The live positions are kept twice, on the device (gathers, merges, DeepStack) and on the CPU
    (what a method reads to plan, and the per-layer record), so a method that selects on the host — SEATS' Stage
    II budgets — costs one device-to-host transfer per drop layer (its scores). In the full and SEATS prefills
    nothing else makes the host wait for the device (seats_cli.transfer): positions chosen on the host go up
    through pinned memory without a wait, and positions chosen on the device (SEATS' Stage I) come down while the
    next layers run.
    ``time_selection`` synchronises around every selection call to report ``select_ms`` (benchmarks)."""
    from transformers import DynamicCache

    if kv_policy not in KV_POLICIES:
        raise ValueError(f"kv_policy must be one of {KV_POLICIES}, got {kv_policy!r}")
    pruner = pruner or NoPruning()
    dev = encoded.embeds.device
    eager = adapter.attn_implementation == "eager"
    adapter.synchronize()
    t0 = time.perf_counter()
    select_s = 0.0

    def timed(call, *args):
        nonlocal select_s
        if not time_selection:
            return call(*args)
        adapter.synchronize()
        t = time.perf_counter()
        out = call(*args)
        adapter.synchronize()
        select_s += time.perf_counter() - t
        return out

    hidden = encoded.embeds
    cos, sin = adapter.rotary(hidden, encoded.position_ids)
    live = torch.arange(hidden.shape[1], device=dev)
    host = torch.arange(hidden.shape[1])  # the same positions on the CPU (or a HostCopy under way)
    modality = to_device(layout.modality, dev)
    stage_live: list[tuple[int, torch.Tensor]] = []

    keep = timed(pruner.before_llm, adapter, encoded, layout)
    merged = None
    if isinstance(keep, Merge):
        keep, merged = keep.keep, keep
    if keep is not None:
        # before layer 0 the live positions are all of them, so the kept positions are the live ones; chosen on the
        # host for a GPU model they are there already, else they come down while the layers run (on a CPU model
        # the same call, which copies nothing, so that tests count the GPU's path)
        host = keep if keep.device.type == "cpu" and dev.type != "cpu" else HostCopy(keep)
        keep = to_device(keep, dev)
        hidden, cos, sin, live = hidden[:, keep], cos[:, keep], sin[:, keep], live[keep]
    if merged is not None and merged.positions.numel():
        anchors = to_device(merged.positions, dev)
        rows = torch.searchsorted(live, anchors)  # each merged vector keeps its anchor's slot
        if not torch.equal(live[rows], anchors):
            raise RuntimeError(f"{pruner.name}: a merged vector's position is not among the kept ones")
        hidden = hidden.clone()  # never write into the encoded request
        hidden[0, rows] = merged.vectors.to(hidden.device, hidden.dtype)
    stage_live.append((0, host))

    cache = DynamicCache(config=adapter.text_config)
    layer_live: list[torch.Tensor] = []
    mask = None  # eager attention only: one causal mask per live length, rebuilt after a drop
    for idx, layer in enumerate(adapter.layers):
        if idx in pruner.drop_layers:
            host = _on_host(host)
            state = PruneState(idx, hidden, cos, sin, modality[live], layout.modality[host], host)
            keep = timed(pruner.at_layer, adapter, state)
            if keep is not None and keep.numel() < live.numel():
                host = host[keep if keep.device.type == "cpu" else to_host(keep)]
                keep = to_device(keep, dev)
                # with --device-map auto the hidden states sit on this layer's GPU, the bookkeeping on ``dev``
                hidden = hidden[:, keep.to(hidden.device)]
                cos, sin, live = cos[:, keep], sin[:, keep], live[keep]
                stage_live.append((idx, host))
        layer_live.append(host)
        if eager and (mask is None or mask.shape[-1] != hidden.shape[1]):
            mask = _causal_mask(hidden.shape[1], hidden)
        hidden = layer(
            hidden,
            attention_mask=mask,
            position_embeddings=(cos, sin),
            cache=cache,
            use_cache=True,
        )
        if encoded.deepstack:
            hidden = adapter.after_layer(idx, hidden, live, encoded)
    host = _on_host(host)
    layer_live = [_on_host(h) for h in layer_live]
    stage_live = [(layer, _on_host(h)) for layer, h in stage_live]
    if kv_policy == "survivors":
        _keep_survivors(cache, layer_live, host)
    hidden = hidden.to(dev)
    final = adapter.final_norm(hidden if return_hidden else hidden[:, -1:])
    logits = adapter.lm_logits(final[:, -1]).float().reshape(-1)
    adapter.synchronize()
    ms = (time.perf_counter() - t0) * 1000
    return PrefillResult(
        logits=logits, cache=cache, layer_live=layer_live, stage_live=stage_live, prefill_ms=ms,
        hidden=final if return_hidden else None, select_ms=select_s * 1000 if time_selection else None,
    )


def _devices(adapter) -> set[str]:
    return {str(d) for d in (getattr(adapter.model, "hf_device_map", None) or {}).values()}


def _graphable(adapter) -> bool:
    """One CUDA device, sdpa/eager attention, and a step the preset says can be captured."""
    return (adapter.device.type == "cuda" and len(_devices(adapter)) <= 1
            and adapter.attn_implementation in ("sdpa", "eager") and adapter.config.architecture.cuda_graph_decode)


def decode_mode_for(adapter: OmniAdapter, mode: str = "auto") -> str:
    """The decode loop ``auto`` picks: a CUDA graph on one CUDA device with sdpa/eager attention when the preset
    says the step is capturable (not the stock MoE block: its expert routing syncs with the host), else in-place
    buffers. An explicit mode is checked here."""
    from seats_cli.choices import DECODE_MODES

    if mode not in DECODE_MODES:
        raise ValueError(f"decode mode must be one of {', '.join(DECODE_MODES)}, got {mode!r}")
    graphable = _graphable(adapter)
    if mode == "auto":
        return "cuda-graph" if graphable else "buffers"
    if mode in ("static", "compiled") and adapter.attn_implementation not in ("sdpa", "eager"):
        raise ValueError(f"decode mode {mode} passes an additive mask: sdpa or eager attention only")
    if mode == "compiled" and len(_devices(adapter)) > 1:
        raise ValueError("decode mode compiled needs the model on one device (not --device-map auto)")
    if mode == "cuda-graph" and not graphable:
        raise ValueError("decode mode cuda-graph needs one CUDA device, sdpa or eager attention and a model whose "
                         f"step is capturable ({adapter.config.name}: cuda_graph_decode="
                         f"{adapter.config.architecture.cuda_graph_decode})")
    return mode


@dataclass
class Decoded:
    tokens: list[int]
    ms: float
    mode: str  # the loop that ran: cuda-graph, static, buffers or dynamic
    setup_ms: float = 0.0  # copying the cache into buffers and capturing the graph (included in ms)
    note: str | None = None  # why a CUDA graph could not be used, when it was asked for


@torch.no_grad()
def decode(
    adapter: OmniAdapter,
    result: PrefillResult,
    next_position: int | float,
    *,
    max_new_tokens: int,
    eos_token_ids: list[int] | None = None,
    mode: str = "auto",
) -> Decoded:
    """Greedy decoding continuing the unpruned prompt's positions (``seats_cli.kvcache`` for the modes;
    ``dynamic`` is the stock DynamicCache loop, kept as the reference)."""
    eos = set(adapter.eos_token_ids if eos_token_ids is None else eos_token_ids)
    mode = decode_mode_for(adapter, mode)
    dev = adapter.device
    tokens: list[int] = []
    adapter.synchronize()
    t0 = time.perf_counter()
    token = int(result.logits.argmax())
    steps = 0 if token in eos else max(0, max_new_tokens - 1)  # forward passes needed at most
    setup_ms = 0.0
    step = note = None
    if steps and mode != "dynamic":
        from seats_cli.kvcache import (
            COMPILED_ROWS, CompiledGraphStep, CompiledStep, GraphStep, KVBuffers, StaticStep,
        )

        buffers = KVBuffers(result.cache, steps, round_to=COMPILED_ROWS if mode == "compiled" else 1)
        if mode == "static":
            step = StaticStep(adapter, buffers, next_position, token)
        elif mode == "compiled":
            import seats_cli.kvcache as kv

            graph = _graphable(adapter)
            try:
                if kv.COMPILE_FAILED:  # a failed compilation is not remembered by torch: do not pay for it again
                    raise RuntimeError(f"it failed earlier in this process: {kv.COMPILE_FAILED}")
                if graph:
                    step = CompiledGraphStep(adapter, buffers, next_position, token)
                else:
                    step = CompiledStep(adapter, buffers, next_position, token)
                    step.prime()
            except Exception as e:  # noqa: BLE001 - compiler missing or failing: the same tokens, uncompiled
                why = " ".join(str(e).split())[:160]
                kv.COMPILE_FAILED = kv.COMPILE_FAILED or why
                note = f"decode ran without compiling ({why})"
                buffers.write_at = None
                mode, step = "buffers", None
                if graph:
                    try:
                        step, mode = GraphStep(adapter, buffers, next_position, token), "cuda-graph"
                    except RuntimeError:
                        pass
                if step is None:
                    buffers.step = None
        elif mode == "cuda-graph":
            try:
                step = GraphStep(adapter, buffers, next_position, token)
            except RuntimeError as e:  # an op that cannot be captured: decode the same tokens without the graph
                note = f"decode ran without a CUDA graph ({' '.join(str(e).split())[:160]})"
                mode, buffers.step = "buffers", None
        adapter.synchronize()
        setup_ms = (time.perf_counter() - t0) * 1000
    cache = result.cache if mode == "dynamic" else (buffers if steps else None)
    pos = next_position
    while max_new_tokens > 0:
        if token in eos:
            break
        tokens.append(token)
        if len(tokens) >= max_new_tokens:
            break
        if step is not None:
            token = step.run()
            continue
        hidden = adapter.embed(torch.tensor([[token]], device=dev))
        # float where the model's positions are float (Qwen3: max + 1 may be fractional), else long
        pids = torch.full((3, 1, 1), pos, dtype=torch.float32 if isinstance(pos, float) else torch.long, device=dev)
        cos, sin = adapter.rotary(hidden, pids)
        for layer in adapter.layers:
            hidden = layer(hidden, attention_mask=None, position_embeddings=(cos, sin), cache=cache, use_cache=True)
        if mode == "buffers":
            cache.written += 1
        logits = adapter.lm_logits(adapter.final_norm(hidden[:, -1]))
        token = int(logits.argmax(-1))
        pos += 1
    adapter.synchronize()
    return Decoded(tokens, (time.perf_counter() - t0) * 1000, mode, setup_ms, note)
