"""The decode-time KV cache: each layer's prefill K/V copied once into a buffer with room for the answer.

transformers' ``DynamicCache`` appends a token with ``torch.cat`` of the whole layer cache, so every generated token
copies the full KV (for an unpruned 128-frame request on the 7B: ~600 MiB per token). ``KVBuffers`` writes the new
row in place instead. It speaks the one method the stock attention modules call (``update(k, v, layer_idx, ...)``)
and keeps layers of different lengths (KV policy ``per_layer``) apart, each with its own base length.

Ways to run a step over it (docs/METHOD.md §8; ``dynamic`` is the stock DynamicCache loop, kept as the reference):

* ``buffers`` (CPU, multi-GPU, flash-attention): attention reads a view of the first ``n + 1`` rows; no mask.
* ``static``: fixed shapes and no host sync inside a step — attention reads the whole buffer with an additive mask
  that admits rows ``<= base + step``, and the write position and the positions are device tensors. Runs eagerly
  (what the tests check on the CPU).
* ``cuda-graph`` (one CUDA device, sdpa or eager attention): the ``static`` step (embedding, rotary, every layer,
  norm, LM head, argmax, the step counter) captured once per request as a CUDA graph and replayed per token: one
  host sync per token (the EOS check), no kernel-launch overhead (gpt-fast's ``decode_one_token``). flash-attention
  never gets the additive mask: it stays on ``buffers``.
* ``compiled`` (opt-in): the ``static`` step's core under ``torch.compile`` (fused elementwise kernels; captured as a
  CUDA graph on one GPU). Buffers are rounded up to ``COMPILED_ROWS`` and the lengths, positions and masks enter as
  tensors, so a compiled graph serves every request of the same rounded shape; each new shape compiles once.
"""

from __future__ import annotations

import torch

# the compiled step's buffers are rounded up to a multiple of this many rows, so that requests of nearby lengths share
# one compiled graph (torch.compile specialises on shapes)
COMPILED_ROWS = 256


class KVBuffers:
    """Per-layer K/V buffers of ``length_i + extra`` rows, filled with the prefill cache's rows."""

    def __init__(self, cache, extra: int, round_to: int = 1):
        """``round_to``: each buffer's rows rounded up to a multiple of it (the compiled step: requests of nearby
        lengths then share one compiled graph; the extra rows stay masked)."""
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.base: list[int] = []
        for lay in cache.layers:
            k, v = lay.keys, lay.values
            b, h, n, d = k.shape
            rows = -(-(n + extra) // round_to) * round_to
            kb = k.new_empty(b, h, rows, d)
            vb = v.new_empty(b, h, rows, v.shape[-1])
            kb[:, :, :n].copy_(k)
            vb[:, :, :n].copy_(v)
            # static mode reads the unwritten rows too (masked): stale memory there could hold NaN, and a NaN
            # score stays NaN under any mask
            kb[:, :, n:].zero_()
            vb[:, :, n:].zero_()
            self.keys.append(kb)
            self.values.append(vb)
            self.base.append(n)
        self.written = 0  # rows appended so far (buffers mode)
        self.step: torch.Tensor | None = None  # device counter (cuda-graph mode)
        self.write_at: list[torch.Tensor] | None = None  # compiled step: each layer's write row, set per step
        self._rows: dict[torch.device, torch.Tensor] = {}

    @property
    def capacity(self) -> list[int]:
        return [k.shape[2] for k in self.keys]

    def static(self, device: torch.device) -> None:
        """Switch to static shapes: writes at ``base + step`` (a device tensor), reads the whole buffer."""
        self.step = torch.zeros(1, dtype=torch.long, device=device)

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        k, v = self.keys[layer_idx], self.values[layer_idx]
        if self.write_at is not None:  # compiled step: the rows come in as tensors (no guard on the lengths)
            idx = self.write_at[layer_idx]
            k.index_copy_(2, idx, key_states)
            v.index_copy_(2, idx, value_states)
            return k, v
        if self.step is not None:
            idx = self.step + self.base[layer_idx]
            k.index_copy_(2, idx, key_states)
            v.index_copy_(2, idx, value_states)
            return k, v
        n = self.base[layer_idx] + self.written
        k[:, :, n:n + 1].copy_(key_states)
        v[:, :, n:n + 1].copy_(value_states)
        return k[:, :, :n + 1], v[:, :, :n + 1]

    def masks(self, dtype: torch.dtype) -> list[torch.Tensor]:
        """Static mode: per layer the additive (1, 1, 1, capacity) mask of the rows written so far (this step's
        included). Layers with the same base and capacity share one tensor."""
        shared: dict[tuple[int, int], torch.Tensor] = {}
        out = []
        for k, base in zip(self.keys, self.base):
            cap = k.shape[2]
            if (base, cap) not in shared:
                rows = self._rows.get(k.device)
                if rows is None or rows.numel() < cap:
                    rows = self._rows[k.device] = torch.arange(max(self.capacity), device=k.device)
                seen = rows[:cap] <= self.step.to(k.device) + base
                mask = torch.zeros(cap, dtype=dtype, device=k.device).masked_fill(~seen, torch.finfo(dtype).min)
                shared[(base, cap)] = mask[None, None, None]
            out.append(shared[(base, cap)])
        return out


class StaticStep:
    """One greedy decode step over static ``KVBuffers`` (fixed shapes, no host sync): ``run()`` feeds the last
    token and returns the next; positions continue from ``first_position``. Runs eagerly (what the tests check on
    the CPU); ``GraphStep`` captures the same step as a CUDA graph."""

    def __init__(self, adapter, buffers: KVBuffers, first_position: int | float, first_token: int):
        dev = adapter.device
        self.adapter, self.buffers = adapter, buffers
        buffers.static(dev)
        pos_dtype = torch.float32 if isinstance(first_position, float) else torch.long
        self.pos0 = torch.full((1,), first_position, dtype=pos_dtype, device=dev)
        self.token = torch.full((1, 1), first_token, dtype=torch.long, device=dev)

    def _step(self) -> None:
        buf = self.buffers
        pids = (self.pos0 + buf.step).reshape(1, 1, 1).expand(3, 1, 1)
        masks = buf.masks(self.adapter.dtype)
        nxt = self._forward()(self.adapter, buf, self.token, pids, masks)
        self.token.copy_(nxt)
        buf.step.add_(1)

    def _forward(self):
        return self._core

    @staticmethod
    def _core(ad, buf, token, pids, masks):
        """Embedding, rotary, every layer over the buffers, norm, LM head, argmax: the next token (1, 1)."""
        hidden = ad.embed(token)
        cos, sin = ad.rotary(hidden, pids)
        for layer, mask in zip(ad.layers, masks):
            hidden = layer(hidden, attention_mask=mask, position_embeddings=(cos, sin), cache=buf, use_cache=True)
        logits = ad.lm_logits(ad.final_norm(hidden[:, -1]))
        return logits.argmax(-1).reshape(1, 1)

    def run(self) -> int:
        self._step()
        return int(self.token)


_COMPILED = None
COMPILE_FAILED: str | None = None  # why compiling the step failed in this process (engine.decode stops trying)


def _compiled_core():
    """``StaticStep._core`` under torch.compile, once per process: every request whose buffers have the same
    (rounded) capacities reuses its graph; the step's lengths, positions and masks enter as tensors."""
    global _COMPILED
    if _COMPILED is None:
        import torch._dynamo.config as dynamo

        # each rounded capacity (and model) is one more graph of the same function: dynamo's default of 8 would
        # silently run later shapes eagerly; 64 covers 16k rows in steps of 256
        name = "recompile_limit" if hasattr(dynamo, "recompile_limit") else "cache_size_limit"  # torch < 2.7
        setattr(dynamo, name, max(getattr(dynamo, name), 64))
        _COMPILED = torch.compile(StaticStep._core, dynamic=False)
    return _COMPILED


class CompiledStep(StaticStep):
    """``StaticStep`` with its core (embedding to argmax) compiled by torch.compile, so that the elementwise work of a
    layer (norms, rotary, residuals, the MLP's gate) runs as a few fused kernels. The first request of a shape pays
    the compilation (tens of seconds); the eager bookkeeping (masks, write rows, positions) stays outside."""

    def prime(self) -> None:
        """Compile now (one step, then undone: its row base+0 is written again with the same values by the first
        real step), so that a failure shows before the first token rather than in the middle of the answer."""
        first = int(self.token)
        self._step()
        self.buffers.step.zero_()
        self.token.fill_(first)

    def _forward(self):
        buf = self.buffers
        buf.write_at = [buf.step + b for b in buf.base]  # the rows as tensors: no guard on the lengths
        return _compiled_core()


class GraphStep(StaticStep):
    """``StaticStep`` captured once as a CUDA graph and replayed per token."""

    def __init__(self, adapter, buffers: KVBuffers, first_position: int | float, first_token: int):
        super().__init__(adapter, buffers, first_position, first_token)
        dev = adapter.device
        # warm-up off the capture stream (cuBLAS workspaces, lazy inits); it writes row base+0, which the first
        # replay overwrites with the same values, and its counter increment is undone
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):
            self._step()
        torch.cuda.current_stream(dev).wait_stream(side)
        buffers.step.zero_()
        self.token.fill_(first_token)
        # captured on the side stream with capture_begin/end rather than ``with torch.cuda.graph``: that context
        # synchronises and empties the device's and the pinned host memory caches on entry, so every request's
        # decode would make the next prefill allocate afresh; "thread_local" lets another thread (a file decoded
        # ahead, seats_cli.prefetch) free tensors while this one captures
        self.graph = torch.cuda.CUDAGraph()
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):
            self.graph.capture_begin(capture_error_mode="thread_local")
            try:
                self._step()
            except BaseException:
                try:
                    self.graph.capture_end()
                except RuntimeError:
                    pass  # the capture was already invalidated: report the step's own error
                raise
            self.graph.capture_end()
        torch.cuda.current_stream(dev).wait_stream(side)

    def run(self) -> int:
        self.graph.replay()
        return int(self.token)


class CompiledGraphStep(GraphStep, CompiledStep):
    """The compiled step captured once per request as a CUDA graph (gpt-fast's compiled ``decode_one_token``)."""
