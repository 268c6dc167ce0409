"""Statistics for Day-0 vs Day-N on clustered, paired items: cluster bootstrap CIs (of an accuracy and of a
paired difference), the cluster sign-flip test, Holm's adjustment, Cohen's kappa (judges vs humans)."""

from __future__ import annotations

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


def cohen_kappa(a: list, b: list) -> float:
    labels = sorted(set(a) | set(b), key=str)
    n = len(a)
    if n == 0:
        return float("nan")
    po = sum(x == y for x, y in zip(a, b)) / n
    pe = sum((a.count(lab) / n) * (b.count(lab) / n) for lab in labels)
    return 1.0 if pe == 1 else (po - pe) / (1 - pe)


def _cluster_sums(base: list[bool], new: list[bool], clusters: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per cluster: the sum of (new - base) over its items, and its number of items."""
    diff: dict[str, list[int]] = {}
    for b, n, g in zip(base, new, clusters):
        diff.setdefault(g, []).append(int(n) - int(b))
    return (np.array([sum(v) for v in diff.values()], dtype=float),
            np.array([len(v) for v in diff.values()], dtype=float))


def paired_cluster_bootstrap(base: list[bool], new: list[bool], clusters: list[str], n_boot: int = 2000,
                             seed: int = 0, alpha: float = 0.05) -> tuple[float, float, float]:
    """(difference new - base in accuracy, low, high): whole clusters resampled with replacement,
    each keeping its items' pairing (both conditions answered the same items)."""
    if not base:
        return float("nan"), float("nan"), float("nan")
    sums, sizes = _cluster_sums(base, new, clusters)
    diff = float(sums.sum() / sizes.sum())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(sums), size=(n_boot, len(sums)))
    stats = sums[idx].sum(axis=1) / sizes[idx].sum(axis=1)
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return diff, float(lo), float(hi)


def cluster_signflip_p(base: list[bool], new: list[bool], clusters: list[str], n_random: int = 20000,
                       seed: int = 0, exact_up_to: int = 16) -> float:
    """Two-sided p-value of a cluster-level sign-flip (permutation) test of no difference: under the
    null, each cluster's summed difference is as likely to have either sign. Exact (every sign
    pattern) for up to `exact_up_to` clusters with a difference, Monte Carlo beyond (seeded)."""
    sums, _ = _cluster_sums(base, new, clusters)
    sums = sums[sums != 0]  # clusters without a difference add nothing to any pattern
    if len(sums) == 0:
        return 1.0
    observed = abs(sums.sum())
    if len(sums) <= exact_up_to:
        signs = 1 - 2 * ((np.arange(2 ** len(sums))[:, None] >> np.arange(len(sums))) & 1)
    else:
        signs = np.random.default_rng(seed).choice([-1, 1], size=(n_random, len(sums)))
    stats = np.abs(signs @ sums)
    return float(np.mean(stats >= observed - 1e-9))


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment: the family-wise error stays at alpha over several comparisons."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    out = [1.0] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        out[i] = running
    return out
