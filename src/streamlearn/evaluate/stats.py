"""Statistics for Day-0 vs Day-N: clustered bootstrap CIs, McNemar's exact test, Cohen's kappa."""

from __future__ import annotations

from math import comb

import numpy as np


def cluster_bootstrap(correct: list[bool], clusters: list[str], n_boot: int = 2000, seed: int = 0,
                      alpha: float = 0.05) -> tuple[float, float, float]:
    """(accuracy, low, high): resample whole clusters (e.g. chunks) with replacement, so items that
    share evidence do not count as independent."""
    if not correct:
        return float("nan"), float("nan"), float("nan")
    acc = float(np.mean(correct))
    groups: dict[str, list[bool]] = {}
    for c, g in zip(correct, clusters):
        groups.setdefault(g, []).append(c)
    sums = np.array([sum(v) for v in groups.values()], dtype=float)
    sizes = np.array([len(v) for v in groups.values()], dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(sums), size=(n_boot, len(sums)))
    stats = sums[idx].sum(axis=1) / sizes[idx].sum(axis=1)
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return acc, float(lo), float(hi)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (b: only the first condition
    right, c: only the second right)."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def cohen_kappa(a: list, b: list) -> float:
    labels = sorted(set(a) | set(b), key=str)
    n = len(a)
    if n == 0:
        return float("nan")
    po = sum(x == y for x, y in zip(a, b)) / n
    pe = sum((a.count(lab) / n) * (b.count(lab) / n) for lab in labels)
    return 1.0 if pe == 1 else (po - pe) / (1 - pe)
