"""Small printing helpers shared by the benchmark scripts."""

from __future__ import annotations

import statistics


def print_medians(label: str, rec: dict[str, list[float]], digits: int = 1) -> dict[str, float]:
    """One ``name | ms median (min)`` row per entry of ``rec`` under a ``label`` header; returns the medians."""
    med = {k: statistics.median(v) for k, v in rec.items()}
    print(f"{label} | ms median (min)")
    for k, v in rec.items():
        print(f"{k} | {med[k]:.{digits}f} ({min(v):.{digits}f})")
    return med
