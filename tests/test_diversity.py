from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seats_cli.schedule import stage1_window_keep
from seats_cli.selection import (
    cosine_distance_matrix,
    diversity_select,
    diversity_select_batched,
    diversity_select_whole,
    win_div_prune,
)


def reference_select(dist: list[list[float]], sal: list[float], k: int) -> list[int]:
    """Plain-loop greedy saliency-weighted max-min selection over a given distance matrix."""
    w = len(sal)
    if k >= w:
        return list(range(w))
    best, best_score = -1, -math.inf
    for j in range(w):
        m = sorted(dist[i][j] for i in range(w))[1]  # second smallest, diagonal included
        score = sal[j] * m
        if score > best_score:  # strict: ties keep the lowest index
            best, best_score = j, score
    chosen = [best]
    while len(chosen) < k:
        best, best_score = -1, -math.inf
        for j in range(w):
            if j in chosen:
                continue
            score = sal[j] * min(dist[s][j] for s in chosen)
            if score > best_score:
                best, best_score = j, score
        chosen.append(best)
    return sorted(chosen)


def reference_from_features(feats: torch.Tensor, sal: torch.Tensor | None, k: int) -> list[int]:
    """Independent float64 reference: cosine distances computed pair by pair."""
    rows = feats.double().tolist()
    w = len(rows)

    def cos_dist(a, b):
        na = math.sqrt(sum(x * x for x in a))
        nb = math.sqrt(sum(x * x for x in b))
        return 1.0 - sum(x * y for x, y in zip(a, b)) / ((na + 1e-8) * (nb + 1e-8))

    dist = [[cos_dist(rows[i], rows[j]) for j in range(w)] for i in range(w)]
    s = [1.0] * w if sal is None else sal.double().tolist()
    return reference_select(dist, s, k)


def test_cosine_distance_matrix_values():
    f = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0], [1.0, 1.0]])
    d = cosine_distance_matrix(f)
    expected = torch.tensor([
        [0.0, 1.0, 2.0, 1 - 1 / math.sqrt(2)],
        [1.0, 0.0, 1.0, 1 - 1 / math.sqrt(2)],
        [2.0, 1.0, 0.0, 1 + 1 / math.sqrt(2)],
        [1 - 1 / math.sqrt(2), 1 - 1 / math.sqrt(2), 1 + 1 / math.sqrt(2), 0.0],
    ])
    assert d.dtype == torch.float32
    assert torch.allclose(d, expected, atol=1e-6)


def test_cuda_products_run_with_tf32_off_even_when_the_process_turned_it_on(monkeypatch):
    """The method's distances are full fp32 products (TF32 off): a process-wide TF32 flag is switched off for CUDA
    products only and restored after; the distances ask for that with their tensors' device."""
    from seats_cli.selection import diversity

    matmul = torch.backends.cuda.matmul
    before = matmul.allow_tf32
    try:
        matmul.allow_tf32 = True
        with diversity.ieee_fp32_matmul("cuda"):
            assert matmul.allow_tf32 is False
        assert matmul.allow_tf32 is True
        with diversity.ieee_fp32_matmul("cpu"):  # CPU products: nothing to switch
            assert matmul.allow_tf32 is True
    finally:
        matmul.allow_tf32 = before
    asked = []
    real = diversity.ieee_fp32_matmul
    monkeypatch.setattr(diversity, "ieee_fp32_matmul", lambda device: asked.append(str(device)) or real(device))
    cosine_distance_matrix(torch.randn(5, 3))
    assert asked == ["cpu"]


def test_tf32_set_through_the_newer_api_is_switched_off_through_it_too():
    """A process that set ``torch.backends.cuda.matmul.fp32_precision`` (torch >= 2.9) makes the legacy flag
    raise; the switch then uses the newer setting (run in a child process: torch remembers the mix)."""
    code = (
        "import torch\n"
        "from seats_cli.selection import diversity as d\n"
        "m = torch.backends.cuda.matmul\n"
        "m.fp32_precision = 'tf32'\n"
        "with d.ieee_fp32_matmul('cuda'):\n"
        "    inside = m.fp32_precision\n"
        "print(inside, m.fp32_precision)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["ieee", "tf32"]


def test_hand_example_weighted_vs_unweighted():
    # f0 ~ f1 (nearly parallel), f2 orthogonal, f3 opposite f0.
    f = torch.tensor([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0], [-1.0, 0.0]])
    # unweighted: column minima (off-diagonal) ~[5e-5, 5e-5, 0.99, 1.0] -> first 3;
    # then D[3] = [2, ~2, 1] -> 0; then min(D3, D0) on {1, 2} = [5e-5, 1] -> 2
    assert diversity_select(f, 3).tolist() == [0, 2, 3]
    assert diversity_select(f, 2).tolist() == [0, 3]
    # saliency 0.1 on token 3: first scores [5e-5, 5e-5, 0.99, 0.1] -> 2; then
    # a*D[2] = [1, 0.99, -, 0.1] -> 0
    a = torch.tensor([1.0, 1.0, 1.0, 0.1])
    assert diversity_select(f, 2, a).tolist() == [0, 2]


def test_ties_go_to_lowest_index():
    assert diversity_select(torch.ones(6, 4), 3).tolist() == [0, 1, 2]
    assert diversity_select(torch.ones(6, 4), 3, torch.zeros(6)).tolist() == [0, 1, 2]
    # two exact duplicates: tokens 1 and 4 equal, the others orthogonal
    f = torch.eye(5)
    f[4] = f[1]
    # first: min off-diag distances [1, 0, 1, 1, 0] -> 0; then D[0] = [-, 1, 1, 1, 1] -> 1;
    # then running mins [-, -, 1, 1, 0] -> 2, then 3
    assert diversity_select(f, 4).tolist() == [0, 1, 2, 3]


def test_k_at_least_w_and_invalid_k():
    f = torch.randn(5, 3)
    assert diversity_select(f, 5).tolist() == [0, 1, 2, 3, 4]
    assert diversity_select(f, 9).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="k must be >= 1"):
        diversity_select(f, 0)
    with pytest.raises(ValueError):
        diversity_select_batched(f.unsqueeze(0), 2, torch.ones(5))


@settings(max_examples=150, deadline=None)
@given(w=st.integers(2, 12), d=st.integers(1, 6), seed=st.integers(0, 2**31 - 1),
       weighted=st.booleans(), data=st.data())
def test_matches_plain_loop_reference_on_same_distances(w, d, seed, weighted, data):
    k = data.draw(st.integers(1, w))
    g = torch.Generator().manual_seed(seed)
    # small integer features make exact ties and duplicates common
    f = torch.randint(-2, 3, (w, d), generator=g).float()
    sal = torch.randint(0, 4, (w,), generator=g).float() if weighted else None
    dist = cosine_distance_matrix(f).tolist()
    expect = reference_select(dist, [1.0] * w if sal is None else sal.tolist(), k)
    got = diversity_select(f, k, sal)
    assert got.tolist() == expect
    assert got.dtype == torch.long


def test_matches_independent_float64_reference():
    g = torch.Generator().manual_seed(1234)
    for trial in range(60):
        w = int(torch.randint(2, 16, (1,), generator=g))
        k = int(torch.randint(1, w + 1, (1,), generator=g))
        f = torch.randn(w, 8, generator=g)
        sal = torch.rand(w, generator=g) if trial % 2 else None
        assert diversity_select(f, k, sal).tolist() == reference_from_features(f, sal, k), trial


@settings(max_examples=60, deadline=None)
@given(B=st.integers(1, 6), w=st.integers(2, 12), seed=st.integers(0, 2**31 - 1), data=st.data())
def test_batched_equals_unbatched(B, w, seed, data):
    k = data.draw(st.integers(1, w + 1))
    g = torch.Generator().manual_seed(seed)
    # Signed, scaled one-hot features: every cosine distance is exactly 0, 1 or 2 whatever the matmul's
    # reduction order, so batched and unbatched kernels must agree bit for bit (random Gaussian features
    # differ by ~1e-7 between a batched and a single matmul and can flip near-ties).
    axis = torch.randint(0, 5, (B, w), generator=g)
    scale = (torch.rand(B, w, generator=g) + 0.5) * torch.where(torch.rand(B, w, generator=g) < 0.5, -1.0, 1.0)
    f = torch.nn.functional.one_hot(axis, 5).float() * scale[..., None]
    sal = torch.rand(B, w, generator=g)
    got = diversity_select_batched(f, k, sal)
    assert got.shape == (B, min(k, w))
    for b in range(B):
        assert got[b].tolist() == diversity_select(f[b], k, sal[b]).tolist()
    unweighted = diversity_select_batched(f, k, None)
    for b in range(B):
        assert unweighted[b].tolist() == diversity_select(f[b], k).tolist()


def test_windivprune_matches_per_window_selection():
    g = torch.Generator().manual_seed(7)
    sizes = [5, 5, 3, 0, 5, 8, 1]
    n = sum(sizes)
    f = torch.randn(n, 6, generator=g)
    sal = torch.rand(n, generator=g)
    rho = 0.5
    kept = win_div_prune(f, sal, sizes, rho)
    expected, start = [], 0
    for w in sizes:
        if w:
            k = stage1_window_keep(w, rho)  # 5 -> round(2.5)=2, 3 -> 2, 8 -> 4, 1 -> 1
            expected += [start + i for i in diversity_select(f[start:start + w], k, sal[start:start + w]).tolist()]
        start += w
    assert kept.tolist() == expected
    assert len(expected) == 2 + 2 + 2 + 2 + 4 + 1


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 9), min_size=1, max_size=8), rho=st.floats(0.01, 0.99),
       seed=st.integers(0, 2**31 - 1), weighted=st.booleans())
def test_windivprune_invariants(sizes, rho, seed, weighted):
    n = sum(sizes)
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(n, 4, generator=g)
    sal = torch.rand(n, generator=g) if weighted else None
    kept = win_div_prune(f, sal, sizes, rho).tolist()
    assert kept == sorted(set(kept))
    start = 0
    for w in sizes:
        inside = [i for i in kept if start <= i < start + w]
        assert len(inside) == stage1_window_keep(w, rho)
        if w:
            assert len(inside) >= 1
        start += w
    assert len(kept) == sum(stage1_window_keep(w, rho) for w in sizes)


def test_windivprune_keep_all_and_validation():
    f = torch.randn(10, 3)
    assert win_div_prune(f, torch.rand(10), [4, 6], 1.0).tolist() == list(range(10))
    assert win_div_prune(f, None, [4, 6], 1.3).tolist() == list(range(10))
    assert win_div_prune(torch.zeros(0, 3), None, [], 0.5).tolist() == []
    with pytest.raises(ValueError, match="sum to N"):
        win_div_prune(f, None, [4, 5], 0.5)
    with pytest.raises(ValueError, match="saliency"):
        win_div_prune(f, torch.rand(9), [4, 6], 0.5)
    with pytest.raises(ValueError, match="rho"):
        win_div_prune(f, None, [4, 6], 0.0)


def test_no_index_is_picked_twice_when_rounding_undercuts_the_sentinel():
    # near-identical tokens: fp32 1 - cos rounds to tiny negatives, and a huge saliency (an attention sink)
    # magnifies them below the authors' -1 sentinel, where their loop starts re-picking one index
    base = torch.randn(1, 64, generator=torch.Generator().manual_seed(0))
    feats = base.repeat(12, 1) + 1e-7 * torch.randn(12, 64, generator=torch.Generator().manual_seed(1))
    dist = cosine_distance_matrix(feats)
    sal = torch.full((12,), 1e9)
    assert (dist * sal).min().item() < -1  # the quirk's precondition holds here
    got = diversity_select(feats, 6, sal)
    assert got.tolist() == sorted(set(got.tolist())) and got.numel() == 6


def test_nan_saliency_never_wins():
    feats = torch.randn(6, 8, generator=torch.Generator().manual_seed(2))
    sal = torch.tensor([1.0, float("nan"), 1.0, 1.0, 1.0, 1.0])
    got = diversity_select(feats, 3, sal)
    assert 1 not in got.tolist() and got.numel() == 3 and len(set(got.tolist())) == 3


def test_more_nan_tokens_than_room_still_gives_distinct_picks():
    feats = torch.randn(5, 8, generator=torch.Generator().manual_seed(3))
    sal = torch.tensor([1.0, float("nan"), float("nan"), float("nan"), float("nan")])
    got = diversity_select(feats, 3, sal)
    assert got.numel() == 3 and len(set(got.tolist())) == 3 and 0 in got.tolist()


@settings(max_examples=80, deadline=None)
@given(w=st.integers(2, 40), d=st.integers(1, 6), block=st.integers(1, 9), seed=st.integers(0, 2**31 - 1),
       data=st.data())
def test_whole_modality_selection_in_row_blocks_follows_the_rule(w, d, block, seed, data):
    """DivPrune past FULL_MATRIX_MAX_TOKENS never holds the N x N distances: the plain-loop rule on exact
    distances (scaled signed one-hot features: every distance is 0, 1 or 2 whatever the product's shape, so
    duplicates and ties are common) picks the same tokens, with blocks that do and do not divide N."""
    k = data.draw(st.integers(1, w))
    g = torch.Generator().manual_seed(seed)
    axis = torch.randint(0, d, (w,), generator=g)
    scale = (torch.rand(w, generator=g) + 0.5) * torch.where(torch.rand(w, generator=g) < 0.5, -1.0, 1.0)
    f = torch.nn.functional.one_hot(axis, d).float() * scale[:, None]
    dist = cosine_distance_matrix(f).tolist()
    got = diversity_select_whole(f, k, max_full=1, block=block)
    assert got.tolist() == reference_select(dist, [1.0] * w, k)


def test_whole_modality_selection_bound_and_memory(monkeypatch):
    from seats_cli.selection import diversity

    g = torch.Generator().manual_seed(5)
    f = torch.randn(1000, 32, generator=g)
    assert torch.equal(diversity_select_whole(f, 100), diversity_select(f, 100))  # it fits: the same call
    # the matrix and its temporary (8 N^2 bytes) must fit in half the free memory; unknown memory: 16,384 tokens
    free = {"cpu": 8 * 20000 ** 2 * 2}
    monkeypatch.setattr(diversity, "available_bytes", lambda device: free["cpu"])
    assert diversity.full_matrix_fits(20000, "cpu") and not diversity.full_matrix_fits(20001, "cpu")
    free["cpu"] = None
    assert diversity.full_matrix_fits(16384, "cpu") and not diversity.full_matrix_fits(16385, "cpu")
    assert diversity.available_bytes("meta") is None
    with pytest.raises(ValueError, match="k must be >= 1"):
        diversity_select_whole(f, 0, max_full=10)
    # 20,000 tokens: the full matrix (1.6 GB, twice) vs row blocks of 4,096 (0.33 GB), in a fresh process
    code = (
        "import resource, torch\n"
        "from seats_cli.selection.diversity import diversity_select_whole\n"
        "x = torch.randn(20000, 8, generator=torch.Generator().manual_seed(0))\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "diversity_select_whole(x, 200, max_full=16384)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)\n"
    )
    grown = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert grown < 1000, grown  # MiB; the full matrix alone would be 1526


def test_host_memory_counts_the_containers_limit(monkeypatch):
    """Inside a container or a batch job /proc/meminfo shows the whole machine: the cgroup's limit minus its usage
    bounds what DivPrune may hold (cgroup v2, then v1; "max" or v1's huge number mean no limit)."""
    from seats_cli.selection import diversity

    files = {"/sys/fs/cgroup/memory.max": 32 << 30, "/sys/fs/cgroup/memory.current": 10 << 30}
    monkeypatch.setattr(diversity, "_read_int", lambda path: files.get(path))
    assert diversity._cgroup_free() == 22 << 30
    assert diversity.available_bytes("cpu") <= 22 << 30
    files = {"/sys/fs/cgroup/memory/memory.limit_in_bytes": 9223372036854771712,
             "/sys/fs/cgroup/memory/memory.usage_in_bytes": 1 << 30}
    assert diversity._cgroup_free() is None
    files = {"/sys/fs/cgroup/memory/memory.limit_in_bytes": 8 << 30,
             "/sys/fs/cgroup/memory/memory.usage_in_bytes": 3 << 30}
    assert diversity._cgroup_free() == 5 << 30
    assert not diversity.full_matrix_fits(20000, "cpu")  # 8 x 20000^2 = 3.2 GB > half of 5 GiB
