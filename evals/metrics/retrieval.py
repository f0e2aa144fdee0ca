"""Retrieval metrics from a similarity matrix: R@1/5/10 and median rank, both directions."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _ranks(sim: np.ndarray, positives: list[set[int]]) -> np.ndarray:
    """1-based rank of the best-ranked positive column for each row (ties broken pessimistically)."""
    ranks = np.empty(len(sim), dtype=np.int64)
    for i, row in enumerate(sim):
        best = max(row[j] for j in positives[i])
        ranks[i] = 1 + int(np.sum(row > best)) + (int(np.sum(row == best)) - 1)
    return ranks


def retrieval_scores(sim, text_to_video: Sequence[int] | None = None) -> dict[str, float]:
    """`sim[t, v]` = similarity of text t and video v. `text_to_video[t]` = index of t's video (default:
    the diagonal, one text per video). Text->video ranks each text's video among all videos;
    video->text ranks the best of a video's texts among all texts."""
    sim = np.asarray(sim, dtype=np.float64)
    if sim.ndim != 2:
        raise ValueError(f"similarity must be a matrix, got shape {sim.shape}")
    n_t, n_v = sim.shape
    t2v = np.arange(n_t) if text_to_video is None else np.asarray(text_to_video)
    if len(t2v) != n_t or (n_t and (t2v.min() < 0 or t2v.max() >= n_v)):
        raise ValueError("text_to_video must give a video index for every text row")
    if text_to_video is None and n_t != n_v:
        raise ValueError(f"non-square similarity {sim.shape} needs text_to_video")
    texts_of = [set() for _ in range(n_v)]
    for t, v in enumerate(t2v):
        texts_of[int(v)].add(t)
    if any(not s for s in texts_of):
        raise ValueError("every video needs at least one text")
    out = {}
    for direction, ranks in (("t2v", _ranks(sim, [{int(v)} for v in t2v])),
                             ("v2t", _ranks(sim.T, texts_of))):
        for k in (1, 5, 10):
            out[f"{direction}/R@{k}"] = float(np.mean(ranks <= k) * 100)
        out[f"{direction}/MdR"] = float(np.median(ranks))
    return out
