"""Paired statistics for two systems scored on the same items."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np


@dataclass(frozen=True)
class PairedDelta:
    delta: float      # statistic(B) - statistic(A) on all shared items
    low: float        # percentile bootstrap CI of the difference
    high: float
    n: int            # number of shared items
    resamples: int


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) item indices drawn with replacement; the same draws serve both systems."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def bootstrap_distribution(stat, n: int, resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """Values of a statistic on `resamples` bootstrap draws of n items. `stat` is either per-item scores
    (statistic = their mean, vectorised) or a function of an index array (a corpus statistic). The draws
    depend only on (n, resamples, seed), so distributions of two systems computed separately are paired."""
    idx = bootstrap_indices(n, resamples, seed)
    if callable(stat):
        return np.array([stat(i) for i in idx], float)
    x = np.asarray(stat, float)
    if x.shape != (n,):
        raise ValueError(f"expected {n} per-item scores, got shape {x.shape}")
    return x[idx].mean(axis=1)


def paired_delta(full_a: float, full_b: float, boot_a: np.ndarray, boot_b: np.ndarray, n: int,
                 confidence: float = 0.95) -> PairedDelta:
    """Difference B - A with the percentile CI from two paired bootstrap distributions."""
    deltas = np.asarray(boot_b) - np.asarray(boot_a)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(deltas, [alpha, 1 - alpha])
    return PairedDelta(float(full_b - full_a), float(low), float(high), n, len(deltas))


def paired_bootstrap(a: Sequence[float] | None = None, b: Sequence[float] | None = None, *,
                     stat_a: Callable[[np.ndarray], float] | None = None,
                     stat_b: Callable[[np.ndarray], float] | None = None, n: int | None = None,
                     resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> PairedDelta:
    """CI of the difference B - A by resampling items (paired: one draw of items for both systems).

    Either per-item scores `a`, `b` (the statistic is their mean: vectorised), or corpus statistics
    `stat_a(indices)`, `stat_b(indices)` recomputed on each resample (e.g. corpus CIDEr, BLEU)."""
    if a is not None:
        a, b = np.asarray(a, float), np.asarray(b, float)
        if a.shape != b.shape or a.ndim != 1:
            raise ValueError(f"paired scores must be two equal-length vectors, got {a.shape}, {b.shape}")
        n = len(a)
        if n == 0:
            raise ValueError("no shared items to compare")
        idx = bootstrap_indices(n, resamples, seed)
        d = b - a
        deltas = d[idx].mean(axis=1)
        delta = float(d.mean())
    else:
        if stat_a is None or stat_b is None or not n:
            raise ValueError("give per-item scores a, b or statistics stat_a, stat_b and n > 0")
        idx = bootstrap_indices(n, resamples, seed)
        full = np.arange(n)
        delta = stat_b(full) - stat_a(full)
        deltas = np.array([stat_b(i) - stat_a(i) for i in idx])
    alpha = (1 - confidence) / 2
    low, high = np.quantile(deltas, [alpha, 1 - alpha])
    return PairedDelta(float(delta), float(low), float(high), n, resamples)


def mcnemar_exact(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> float:
    """Two-sided exact McNemar p-value (binomial test on the discordant pairs)."""
    a, b = np.asarray(a_correct, bool), np.asarray(b_correct, bool)
    if a.shape != b.shape:
        raise ValueError("paired outcomes must have equal length")
    n01 = int(np.sum(a & ~b))
    n10 = int(np.sum(~a & b))
    m = n01 + n10
    if m == 0:
        return 1.0
    k = min(n01, n10)
    tail = sum(math.comb(m, i) for i in range(k + 1)) / 2.0 ** m
    return min(1.0, 2.0 * tail)
