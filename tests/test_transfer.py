"""Which host↔device transfers a prefill asks for (seats_cli.transfer), counted on the CPU.

On a GPU every blocking transfer makes the host wait for the device's queue, and the GPU then runs dry while the
host launches what comes next (benchmarks/RESULTS.md, "Second GPU run"). The design: SEATS' Stage II reads its
scores once per drop layer that selects (the host plans the budgets), and nothing else in a prefill waits —
Stage I's choice comes down while the layers run, positions chosen on the host go up without a wait. The counts
here are the design's; tests/test_gpu.py checks on a GPU that the waits are exactly those reads.
"""

from __future__ import annotations

import pytest
import torch

from reference import load_tiny, prepared_case
from seats_cli import engine, transfer
from seats_cli.methods import build_pruner


def test_helpers_on_the_host_return_their_argument_and_count_each_call():
    t = torch.arange(5)
    before = dict(transfer.COUNTS)
    assert transfer.to_device(t, "cpu") is t
    assert transfer.HostCopy(t).get() is t
    assert transfer.to_host(t) is t
    delta = {k: transfer.COUNTS[k] - before.get(k, 0) for k in ("to_device", "host_copy", "to_host")}
    assert delta == {"to_device": 1, "host_copy": 1, "to_host": 1}


def _counted(call):
    before = dict(transfer.COUNTS)
    out = call()
    return out, {k: transfer.COUNTS[k] - before.get(k, 0) for k in ("to_device", "host_copy", "to_host")}


@pytest.fixture(scope="module")
def case(tiny_dir, sample_path):
    adapter = load_tiny(tiny_dir)
    _, request, encoded = prepared_case(adapter, sample_path)
    return adapter, request, encoded


def test_full_prefill_reads_nothing_back(case):
    adapter, request, encoded = case
    _, n = _counted(lambda: engine.prefill(adapter, encoded, request.layout))
    assert n == {"to_device": 1, "host_copy": 0, "to_host": 0}  # the token modalities, once, without a wait


@pytest.mark.parametrize("trr", [0.35, 0.1])
def test_seats_prefill_reads_one_score_vector_per_stage2_drop(case, trr):
    """Tiny config: Stage II before layers 16, 18, 20, Stage III at 23. Stage I: the text, video and audio
    positions go up (3) with each modality's window starts (one window size each on this clip: 2); its choice
    comes down once, asynchronously. Each of the 3 Stage II drops reads its scores (3 reads) and sends its
    choice up (3); Stage III sends the text rows up (1); the survivors' KV cut sends one index per stage up (4:
    the layers after Stage I, and after each Stage II drop — Stage III's layers already hold only survivors)."""
    adapter, request, encoded = case
    pruner, plan = build_pruner("seats", adapter.config, request.layout, trr=trr)
    assert plan.prune_before == (16, 18, 20) and plan.text_only_from == 23
    res, n = _counted(lambda: engine.prefill(adapter, encoded, request.layout, pruner))
    stages = [layer for layer, _ in res.stage_live]
    assert stages == [0, 16, 18, 20, 23]  # every drop selected something on this clip
    assert n == {"to_device": 1 + 3 + 2 + 1 + 3 + 1 + 4, "host_copy": 1, "to_host": 3}
    # the host copy of Stage I's choice is what Stage I chose, and what the first 16 layers saw
    chosen = pruner.before_llm(adapter, encoded, request.layout)
    assert res.layer_live[0].dtype == torch.long and torch.equal(res.layer_live[0], chosen)
    assert all(res.layer_live[i] is res.layer_live[0] for i in range(16)) and res.layer_live[16].numel() < len(chosen)


def test_stage1_choice_is_read_on_the_host_only_at_the_first_drop_layer(case, monkeypatch):
    """The host reads Stage I's choice (HostCopy.get) once, when it plans the first Stage II drop: after layers
    0-15 were launched, so on a GPU the copy has long finished while they ran."""
    adapter, request, encoded = case
    pruner, _ = build_pruner("seats", adapter.config, request.layout, trr=0.1)
    ran, reads = [], []
    hooks = [layer.register_forward_pre_hook(lambda *a, i=i: ran.append(i)) for i, layer in enumerate(adapter.layers)]
    get = transfer.HostCopy.get
    monkeypatch.setattr(transfer.HostCopy, "get", lambda self: reads.append(len(ran)) or get(self))
    try:
        engine.prefill(adapter, encoded, request.layout, pruner)
    finally:
        for h in hooks:
            h.remove()
    assert reads[0] == 16 and len(ran) == len(adapter.layers)
