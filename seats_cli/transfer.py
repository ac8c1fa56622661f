"""Host↔device copies of small index tensors that do not make the host wait for the device's queue.

A plain ``cpu_tensor.to("cuda")`` copies from pageable memory and then synchronises the stream: the host waits
until every kernel queued before it has run, so the GPU runs dry while the host launches what comes next. The
same holds for ``torch.tensor(values, device="cuda")`` and for ``device_tensor.cpu()``. In one pruned prefill
these waits cost more than the pruned layers' kernels (benchmarks/RESULTS.md, "Second GPU run").

* :func:`to_device` — through pinned memory with ``non_blocking=True``: the copy is queued behind the work
  before it and the host goes on (PyTorch keeps the pinned block alive until the copy has run).
* :class:`HostCopy` — a device tensor's copy to the host, queued now, waited for only when read; the host
  launches the next layers meanwhile.
* :func:`to_host` — a read the host needs at once (SEATS' Stage II scores): the one kind of wait left, by design.

On a CPU every call returns its argument (no copy). ``COUNTS`` records every call by kind, whatever the device,
so tests can check on a CPU which transfers a prefill asks for; tests/test_gpu.py checks on a GPU that only the
designed reads synchronise.
"""

from __future__ import annotations

from collections import Counter

import torch

COUNTS: Counter = Counter()  # calls per kind: "to_device", "host_copy", "to_host"


def to_device(t: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``t`` on ``device``; a host tensor goes to a CUDA device through pinned memory, without a host wait. The copy
    may still be reading the source when this returns: do not write into ``t`` afterwards (an already pinned ``t``
    is itself the source; every caller here passes a tensor it never touches again)."""
    COUNTS["to_device"] += 1
    device = torch.device(device)
    if t.device == device or (device.index is None and t.device.type == device.type):
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


class HostCopy:
    """A tensor's copy on the host, started at construction, waited for at the first :meth:`get`."""

    def __init__(self, t: torch.Tensor):
        COUNTS["host_copy"] += 1
        self._event = None
        if t.device.type == "cuda":
            self._out = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
            self._out.copy_(t, non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record(torch.cuda.current_stream(t.device))
        else:
            self._out = t.cpu()

    def get(self) -> torch.Tensor:
        if self._event is not None:
            self._event.synchronize()
            self._event = None
        return self._out


def to_host(t: torch.Tensor) -> torch.Tensor:
    """``t`` on the host now (the host waits for the device when ``t`` is on one)."""
    COUNTS["to_host"] += 1
    return t.cpu()


def count_host_waits(call):
    """``(call(), n)``: ``n`` the times the host waited for a CUDA device inside ``call`` (blocking copies,
    reads, ``nonzero``, stream and device synchronisations: what ``torch.cuda.set_sync_debug_mode`` flags; an
    event wait is not flagged). ``n`` is None without CUDA. For tests and benchmarks: the debug mode costs time."""
    import warnings

    if not torch.cuda.is_available():
        return call(), None
    before = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            out = call()
        finally:
            torch.cuda.set_sync_debug_mode(before)
    return out, sum("synchroniz" in str(w.message) for w in caught)
