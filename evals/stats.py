"""Paired statistics for two systems scored on the same items.

Bootstrap CIs resample *clusters* of items when items share a video (NExT-QA has ~9 questions per video,
EgoSchema one): questions about one video are not independent draws, and resampling them one by one gives
intervals that are too narrow. A cluster bootstrap draws whole videos with replacement and keeps every item of
each drawn video. With one item per cluster (or no clusters given) it is the ordinary item bootstrap, with
exactly the same draws. The draws depend only on (clusters, resamples, seed), so distributions of two systems
computed separately are paired.

Accuracy also gets a p-value, exact at any n: the McNemar test (binomial on the discordant pairs) when items are
independent; when items share a video, its cluster-level form, a sign-flip test on each video's net discordance
(which is the McNemar test again when every video has one item).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Hashable, Sequence

import numpy as np


@dataclass(frozen=True)
class PairedDelta:
    delta: float      # statistic(B) - statistic(A) on all shared items
    low: float        # percentile bootstrap CI of the difference
    high: float
    n: int            # number of shared items
    resamples: int
    clusters: int | None = None   # number of clusters resampled (None: items resampled one by one)


class Draws:
    """`resamples` bootstrap draws of n items, by item or by cluster (`clusters[i]` = item i's cluster label).

    `mean(x)` is the statistic "mean of per-item scores" on every draw (vectorised, also for clusters: sums
    and counts per cluster); `indices()` yields each draw's item indices (with repeats; for clusters the
    lengths vary), for corpus statistics recomputed per draw (BLEU, CIDEr)."""

    def __init__(self, n: int, resamples: int, seed: int, clusters: Sequence[Hashable] | None = None):
        if n <= 0:
            raise ValueError("no items to resample")
        self.n, self.resamples = int(n), int(resamples)
        if clusters is not None and len(clusters) != n:
            raise ValueError(f"{len(clusters)} cluster labels for {n} items")
        ids: dict = {}
        label = np.arange(n) if clusters is None else np.array([ids.setdefault(c, len(ids)) for c in clusters])
        self.n_clusters = int(label.max()) + 1
        self.clustered = self.n_clusters < n
        # cluster c = item c when every cluster is one item (labels follow first appearance): the same draws
        self.draws = np.random.default_rng(seed).integers(0, self.n_clusters, size=(self.resamples, self.n_clusters))
        self.label = label
        self.counts = np.bincount(label, minlength=self.n_clusters)
        if self.clustered:        # item indices of each cluster, for corpus statistics on a draw
            self.members = np.split(np.argsort(label, kind="stable"), np.cumsum(self.counts)[:-1])

    def mean(self, x) -> np.ndarray:
        x = np.asarray(x, float)
        if x.shape != (self.n,):
            raise ValueError(f"expected {self.n} per-item scores, got shape {x.shape}")
        if not self.clustered:
            return x[self.draws].mean(axis=1)
        sums = np.bincount(self.label, weights=x, minlength=self.n_clusters)
        return sums[self.draws].sum(axis=1) / self.counts[self.draws].sum(axis=1)

    def indices(self):
        for d in self.draws:
            yield d if not self.clustered else np.concatenate([self.members[c] for c in d])

    def distribution(self, stat) -> np.ndarray:
        """The statistic on every draw: `stat` is per-item scores (their mean) or a function of indices."""
        if callable(stat):
            return np.array([stat(i) for i in self.indices()], float)
        return self.mean(stat)


def bootstrap_distribution(stat, n: int, resamples: int = 1000, seed: int = 0,
                           clusters: Sequence[Hashable] | None = None) -> np.ndarray:
    """Values of a statistic on `resamples` bootstrap draws of n items (of their clusters, if given). `stat`
    is either per-item scores (statistic = their mean, vectorised) or a function of an index array."""
    return Draws(n, resamples, seed, clusters).distribution(stat)


def paired_delta(full_a: float, full_b: float, boot_a: np.ndarray, boot_b: np.ndarray, n: int,
                 confidence: float = 0.95, clusters: int | None = None) -> PairedDelta:
    """Difference B - A with the percentile CI from two paired bootstrap distributions."""
    deltas = np.asarray(boot_b) - np.asarray(boot_a)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(deltas, [alpha, 1 - alpha])
    return PairedDelta(float(full_b - full_a), float(low), float(high), n, len(deltas), clusters)


def paired_bootstrap(a: Sequence[float] | None = None, b: Sequence[float] | None = None, *,
                     stat_a: Callable[[np.ndarray], float] | None = None,
                     stat_b: Callable[[np.ndarray], float] | None = None, n: int | None = None,
                     resamples: int = 1000, seed: int = 0, confidence: float = 0.95,
                     clusters: Sequence[Hashable] | None = None) -> PairedDelta:
    """CI of the difference B - A by resampling items, or their clusters (paired: one draw for both systems).

    Either per-item scores `a`, `b` (the statistic is their mean: vectorised), or corpus statistics
    `stat_a(indices)`, `stat_b(indices)` recomputed on each resample (e.g. corpus CIDEr, BLEU)."""
    if a is not None:
        a, b = np.asarray(a, float), np.asarray(b, float)
        if a.shape != b.shape or a.ndim != 1:
            raise ValueError(f"paired scores must be two equal-length vectors, got {a.shape}, {b.shape}")
        if len(a) == 0:
            raise ValueError("no shared items to compare")
        draws = Draws(len(a), resamples, seed, clusters)
        d = b - a
        delta, deltas = float(d.mean()), draws.mean(d)
    else:
        if stat_a is None or stat_b is None or not n:
            raise ValueError("give per-item scores a, b or statistics stat_a, stat_b and n > 0")
        draws = Draws(n, resamples, seed, clusters)
        full = np.arange(n)
        delta = stat_b(full) - stat_a(full)
        deltas = np.array([stat_b(i) - stat_a(i) for i in draws.indices()])
    alpha = (1 - confidence) / 2
    low, high = np.quantile(deltas, [alpha, 1 - alpha])
    return PairedDelta(float(delta), float(low), float(high), draws.n, resamples,
                       draws.n_clusters if draws.clustered else None)


def mcnemar_exact(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> float:
    """Two-sided exact McNemar p-value (binomial test on the discordant pairs), exact at any n: the tail is
    summed in integers and divided once (2.0 ** m overflows a float from 1,024 discordant pairs on)."""
    a, b = np.asarray(a_correct, bool), np.asarray(b_correct, bool)
    if a.shape != b.shape:
        raise ValueError("paired outcomes must have equal length")
    n01 = int(np.sum(a & ~b))
    n10 = int(np.sum(~a & b))
    m = n01 + n10
    if m == 0:
        return 1.0
    tail, term = 0, 1                      # sum of C(m, i) for i <= min(n01, n10), term updated in integers
    for i in range(min(n01, n10) + 1):
        tail += term
        term = term * (m - i) // (i + 1)
    return min(1.0, 2 * tail / 2 ** m)     # int / int: correctly rounded, no overflow


def sign_flip_clustered(a_correct: Sequence[bool], b_correct: Sequence[bool],
                        clusters: Sequence[Hashable]) -> float:
    """Exact two-sided p-value for paired outcomes grouped in clusters (questions about one video): a sign-flip
    (randomisation) test on d_k = (#A right, B wrong) - (#A wrong, B right) per cluster. Under the null hypothesis
    each cluster's d_k is as likely to have either sign, so p = P(|sum of +-d_k| >= |sum of d_k|), computed exactly
    by convolution. With one item per cluster it is the exact McNemar test."""
    a, b = np.asarray(a_correct, bool), np.asarray(b_correct, bool)
    if a.shape != b.shape or len(a) != len(clusters):
        raise ValueError("paired outcomes and cluster labels must have equal length")
    ids: dict = {}
    label = np.array([ids.setdefault(c, len(ids)) for c in clusters], dtype=np.int64)
    d = np.bincount(label, weights=(a & ~b).astype(float) - (~a & b).astype(float), minlength=len(ids))
    d = d.round().astype(np.int64)
    t, mags = abs(int(d.sum())), np.abs(d[d != 0])
    if t == 0:
        return 1.0
    total = int(mags.sum())
    dist = np.zeros(2 * total + 1)           # dist[s + total] = P(sum of +-d_k = s)
    dist[total] = 1.0
    for m in mags:
        nxt = np.zeros_like(dist)
        nxt[m:] += dist[:-m]
        nxt[:-m] += dist[m:]
        dist = 0.5 * nxt
    s = np.arange(-total, total + 1)
    return float(min(1.0, dist[np.abs(s) >= t].sum()))


def paired_p(a_correct: Sequence[bool], b_correct: Sequence[bool],
             clusters: Sequence[Hashable] | None = None) -> float:
    """Exact McNemar for independent items; the exact cluster sign-flip test when some items share a cluster."""
    if clusters is not None and len(set(clusters)) < len(clusters):
        return sign_flip_clustered(a_correct, b_correct, clusters)
    return mcnemar_exact(a_correct, b_correct)
