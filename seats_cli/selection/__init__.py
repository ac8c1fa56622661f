"""Token selection math of SEATS: Stage I diversity selection and Stage II window budgets."""

from __future__ import annotations

from .budgets import (
    Stage2Result,
    RunPair,
    allocate_budgets,
    find_runs,
    pair_windows,
    select_top_in_windows,
    stage2_select,
    window_relevance,
)
from .diversity import (cosine_distance_matrix, diversity_select, diversity_select_batched, diversity_select_whole,
                        win_div_prune)

__all__ = [
    "Stage2Result",
    "RunPair",
    "allocate_budgets",
    "cosine_distance_matrix",
    "diversity_select",
    "diversity_select_whole",
    "diversity_select_batched",
    "find_runs",
    "pair_windows",
    "select_top_in_windows",
    "stage2_select",
    "win_div_prune",
    "window_relevance",
]
