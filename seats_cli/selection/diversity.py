"""Stage I of SEATS: saliency-weighted max-min diversity selection (win_div_prune, docs/METHOD.md §5).

For one window of ``w`` tokens with features f and saliency a, the cosine distance
``D_ij = 1 - cos(f_i, f_j)`` is computed in fp32 and tokens are picked greedily:

* first pick: ``argmax_j a_j * min_{i != j} D_ij``;
* then repeatedly ``argmax_j a_j * min_{s in S} D_sj`` over the unselected tokens,
  updating the running minimum after every pick.

Ties go to the lowest index (``torch.argmax`` returns the first maximum). With
``saliency=None`` every ``a_j = 1``, which is plain DivPrune (a baseline).

Semantic notes (as the authors' code unless said):
* the first pick takes each column's second-smallest entry, diagonal included (≈ the
  minimum over i != j; they differ only where rounding puts an off-diagonal distance
  below the diagonal's numerically-zero value, e.g. duplicated tokens);
* cosine uses ``f / (||f|| + 1e-8)``, so an all-zero feature has distance 1 to
  everything;
* a picked token is never picked again (the authors' sentinel of -1 can be undercut by
  fp32 rounding magnified by the saliency factor, after which their loop re-picks; ours
  uses -inf, identical otherwise);
* ``a_j * min_s D_sj`` equals the official ``min_s (D_sj * a_j)`` bit-for-bit for
  a_j >= 0, and the official 1e6 rescaling of a does not change any argmax; saliency
  is expected to be >= 0 (attention mass).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch

from ..schedule import stage1_window_keep
from ..transfer import to_device

__all__ = [
    "cosine_distance_matrix",
    "diversity_select",
    "diversity_select_batched",
    "diversity_select_whole",
    "ieee_fp32_matmul",
    "win_div_prune",
]


_TF32_LOCK = threading.Lock()  # the switch below is process-wide: one selection at a time flips and restores it


@contextmanager
def ieee_fp32_matmul(device: torch.device | str = "cuda") -> Iterator[None]:
    """CUDA fp32 matrix products without TF32 inside the block, as the method requires, whatever the process chose
    (an evaluation harness or a user script may turn TF32 on); only the CUDA matmul setting is touched, through the
    API the process used (torch refuses a mix of its legacy flag and the newer ``fp32_precision``), and restored
    after. CPU products are full fp32 unless a process asked oneDNN otherwise: nothing to switch there."""
    if torch.device(device).type != "cuda":
        yield
        return
    matmul = torch.backends.cuda.matmul
    with _TF32_LOCK:
        try:
            legacy = matmul.allow_tf32  # raises once the newer setting was used
        except RuntimeError:
            legacy = None
        if legacy is not None:
            matmul.allow_tf32 = False
            try:
                yield
            finally:
                matmul.allow_tf32 = legacy
            return
        before = matmul.fp32_precision
        matmul.fp32_precision = "ieee"
        try:
            yield
        finally:
            matmul.fp32_precision = before


def cosine_distance_matrix(features: torch.Tensor) -> torch.Tensor:
    """Pairwise ``1 - cos`` in fp32 (TF32 off) for features of shape ``[..., w, d]`` → ``[..., w, w]``."""
    f = features.float()
    normed = f / (f.norm(dim=-1, keepdim=True) + 1e-8)
    with ieee_fp32_matmul(normed.device):
        return 1.0 - normed @ normed.transpose(-1, -2)


def diversity_select_batched(
    features: torch.Tensor, k: int, saliency: torch.Tensor | None = None
) -> torch.Tensor:
    """Greedy saliency-weighted max-min selection for ``B`` windows of equal size at once.

    Args:
        features: ``[B, w, d]`` token features of each window.
        k: tokens to keep per window (``k >= w`` keeps all; ``k <= 0`` is an error).
        saliency: ``[B, w]`` non-negative weights, or None for all ones.

    Returns:
        ``LongTensor[B, min(k, w)]`` kept indices per window, sorted ascending.
        Identical, window by window, to :func:`diversity_select`.
    """
    if features.dim() != 3:
        raise ValueError(f"features must be [B, w, d], got shape {tuple(features.shape)}")
    if k <= 0:
        raise ValueError(f"k must be >= 1, got {k}")
    B, w, _ = features.shape
    device = features.device
    if k >= w:
        return torch.arange(w, device=device).unsqueeze(0).expand(B, w).clone()
    dist = cosine_distance_matrix(features)  # [B, w, w]
    if saliency is not None and tuple(saliency.shape) != (B, w):
        raise ValueError(f"saliency must be [B, w] = {(B, w)}, got {tuple(saliency.shape)}")

    # The scores are kept weighted: a_j * min_{s in S} D_sj as min_{s in S} (a_j * D_sj), the same float for
    # a_j >= 0 (rounding is monotone). After the first pick the diagonal of the weighted matrix is -inf:
    # taking the minimum with a picked token's row also marks that token as taken, so each pick costs three
    # small kernels (argmax, row gather, minimum) and no host sync.
    weighted = dist if saliency is None else dist.mul_(saliency.float().unsqueeze(1))  # [B, w, w]: a_j * D_sj
    # a NaN score never wins, yet stays above the picked tokens' -inf (so nothing is ever picked twice)
    weighted.nan_to_num_(nan=torch.finfo(weighted.dtype).min)
    # first pick: argmax_j of column j's second-smallest entry, diagonal included (the authors' rule)
    first = torch.argmax(torch.topk(weighted, 2, dim=1, largest=False).values[:, 1], dim=-1)
    weighted.diagonal(dim1=1, dim2=2).fill_(float("-inf"))
    rows = torch.arange(B, device=device)
    score = weighted[rows, first]  # [B, w]
    picks = [first]
    for step in range(1, k):
        nxt = torch.argmax(score, dim=-1)
        picks.append(nxt)
        if step + 1 < k:
            score = torch.minimum(score, weighted[rows, nxt])
    return torch.stack(picks, dim=1).sort(dim=-1).values


def diversity_select(
    features: torch.Tensor, k: int, saliency: torch.Tensor | None = None
) -> torch.Tensor:
    """Greedy saliency-weighted max-min selection in one window.

    Args:
        features: ``[w, d]`` token features.
        k: tokens to keep (``k >= w`` keeps all; ``k <= 0`` is an error).
        saliency: ``[w]`` non-negative weights, or None (plain DivPrune).

    Returns:
        ``LongTensor[min(k, w)]`` kept indices, sorted ascending.
    """
    if features.dim() != 2:
        raise ValueError(f"features must be [w, d], got shape {tuple(features.shape)}")
    sal = None if saliency is None else saliency.reshape(1, -1)
    return diversity_select_batched(features.unsqueeze(0), k, sal)[0]


FULL_MATRIX_MAX_TOKENS = 16384  # where the free memory cannot be read: above this (1 GiB of fp32), go by rows


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().split()
    except OSError:
        return None
    return int(text[0]) if text and text[0].isdigit() else None  # cgroup v2 writes "max" for no limit


def _cgroup_free() -> int | None:
    """What this process's memory cgroup still allows (a container's or a batch job's limit), or None."""
    for limit, used in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
                        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        cap, now = _read_int(limit), _read_int(used)
        if cap is not None and now is not None and cap < 1 << 60:  # v1 writes a huge number for no limit
            return max(0, cap - now)
    return None


def available_bytes(device: torch.device | str) -> int | None:
    """Free memory on ``device``: the GPU's free memory; on the host, MemAvailable (Linux) or what the process's
    memory cgroup still allows, whichever is less (inside a container /proc/meminfo shows the whole machine);
    None where unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    free = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
    except OSError:
        pass
    limit = _cgroup_free()
    return free if limit is None else limit if free is None else min(free, limit)


def full_matrix_fits(n: int, device: torch.device | str) -> bool:
    """Whether :func:`diversity_select` may hold the N x N fp32 distances and their temporary (8 N^2 bytes): when
    they take at most half the device's free memory. Holding them is faster (a pick reads one row of N floats,
    where the row-wise path recomputes it from all N x d features: 2x the time at N = 20,000, d = 3,584 on this
    CPU), so rows are the fallback for what does not fit."""
    free = available_bytes(device)
    if free is None:
        return n <= FULL_MATRIX_MAX_TOKENS
    return 8 * n * n <= free // 2


def diversity_select_whole(features: torch.Tensor, k: int, *, max_full: int | None = None,
                           block: int = 4096) -> torch.Tensor:
    """Plain max-min selection (all a_j = 1, DivPrune) over a whole modality, in memory linear in N when needed.

    Up to ``max_full`` tokens (None: :func:`full_matrix_fits`) this is :func:`diversity_select` (one N x N
    matrix). Above it the distances are never held whole (SEATS_SPEC §10.5: 46,080 tokens would need 8.5 GB):
    each column's two smallest entries come from ``block`` rows at a time, and each pick computes only the picked
    token's row. The rule is the same; the distances come from products of other shapes, so they can differ from
    the full matrix's in the last bit, which only moves exact near-ties.
    """
    if features.dim() != 2:
        raise ValueError(f"features must be [N, d], got shape {tuple(features.shape)}")
    if k <= 0:
        raise ValueError(f"k must be >= 1, got {k}")
    n = features.shape[0]
    if (full_matrix_fits(n, features.device) if max_full is None else n <= max_full):
        return diversity_select(features, k)
    device = features.device
    if k >= n:
        return torch.arange(n, device=device)
    f = features.float()
    normed = f / (f.norm(dim=-1, keepdim=True) + 1e-8)
    lowest = torch.finfo(torch.float32).min

    def rows(index: torch.Tensor | slice) -> torch.Tensor:  # a tensor index stays on the device (no host wait)
        picked = normed[index] if isinstance(index, slice) else normed.index_select(0, index.view(1))
        return (1.0 - picked @ normed.T).nan_to_num_(nan=lowest)

    with ieee_fp32_matmul(device):
        two = None  # each column's two smallest entries so far, diagonal included (the first-pick rule)
        for start in range(0, n, block):
            part = rows(slice(start, min(n, start + block)))
            part = torch.topk(part, min(2, part.shape[0]), dim=0, largest=False).values
            two = part if two is None else torch.topk(torch.cat([two, part]), 2, dim=0, largest=False).values
        first = torch.argmax(two[1])
        score = rows(first)[0].index_fill_(0, first.view(1), float("-inf"))  # a picked token is never picked again
        picks = [first]
        for step in range(1, k):
            nxt = torch.argmax(score)
            picks.append(nxt)
            if step + 1 < k:
                score = torch.minimum(score, rows(nxt)[0]).index_fill_(0, nxt.view(1), float("-inf"))
    return torch.stack(picks).sort().values


def win_div_prune(
    features: torch.Tensor,
    saliency: torch.Tensor | None,
    window_sizes: Sequence[int],
    rho: float,
) -> torch.Tensor:
    """Stage I over consecutive windows of one modality.

    Args:
        features: ``[N, d]`` features of all tokens of the modality, in sequence order.
        saliency: ``[N]`` encoder attention received per token (None → DivPrune weights).
        window_sizes: sizes of the consecutive windows; must sum to ``N`` (zeros allowed).
        rho: Stage I retention ratio; each window keeps ``stage1_window_keep(w, rho)``.

    Returns:
        ``LongTensor`` of kept token indices (global, ascending). ``rho >= 1`` keeps all.
        Windows of equal size are processed in one batched call.
    """
    n = features.shape[0]
    sizes = [int(s) for s in window_sizes]
    if any(s < 0 for s in sizes) or sum(sizes) != n:
        raise ValueError(f"window sizes {sizes} must be >= 0 and sum to N={n}")
    if saliency is not None and tuple(saliency.shape) != (n,):
        raise ValueError(f"saliency must have shape ({n},), got {tuple(saliency.shape)}")
    if not rho > 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    device = features.device
    if rho >= 1.0:
        return torch.arange(n, device=device)

    groups: dict[int, list[int]] = {}
    start = 0
    for s in sizes:
        if s > 0:
            groups.setdefault(s, []).append(start)
        start += s

    kept: list[torch.Tensor] = []
    for w, starts in groups.items():
        k = stage1_window_keep(w, rho)
        starts_t = to_device(torch.tensor(starts, dtype=torch.long), device)  # no host wait (seats_cli.transfer)
        if k >= w:
            kept.append((starts_t.unsqueeze(1) + torch.arange(w, device=device)).reshape(-1))
            continue
        if all(b - a == w for a, b in zip(starts, starts[1:])):  # back-to-back windows: a view, no gather
            span = slice(starts[0], starts[0] + len(starts) * w)
            feats = features[span].reshape(len(starts), w, -1)
            sal = None if saliency is None else saliency[span].reshape(len(starts), w)
        else:
            idx = starts_t.unsqueeze(1) + torch.arange(w, device=device)  # [B, w] global indices
            feats, sal = features[idx], None if saliency is None else saliency[idx]
        local = diversity_select_batched(feats, k, sal)
        kept.append((starts_t.unsqueeze(1) + local).reshape(-1))
    if not kept:
        return torch.zeros(0, dtype=torch.long, device=device)
    return torch.cat(kept).sort().values
