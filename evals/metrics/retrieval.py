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


def retrieval_scores(sim, text_to_video: Sequence[int | Sequence[int]] | None = None) -> dict[str, float]:
    """`sim[t, v]` = similarity of text t and video v. `text_to_video[t]` = index of t's video, or the
    indices of all videos it describes (e.g. one sentence shared by several clips); default: the diagonal.
    Text->video ranks the best of a text's videos among all videos; video->text ranks the best of a
    video's texts among all texts."""
    sim = np.asarray(sim, dtype=np.float64)
    if sim.ndim != 2:
        raise ValueError(f"similarity must be a matrix, got shape {sim.shape}")
    n_t, n_v = sim.shape
    if text_to_video is None and n_t != n_v:
        raise ValueError(f"non-square similarity {sim.shape} needs text_to_video")
    t2v = [{t} for t in range(n_t)] if text_to_video is None else \
        [{int(v)} if np.isscalar(v) else {int(x) for x in v} for v in text_to_video]
    if len(t2v) != n_t or any(not s or min(s) < 0 or max(s) >= n_v for s in t2v):
        raise ValueError("text_to_video must give video indices for every text row")
    texts_of = [set() for _ in range(n_v)]
    for t, vs in enumerate(t2v):
        for v in vs:
            texts_of[v].add(t)
    if any(not s for s in texts_of):
        raise ValueError("every video needs at least one text")
    out = {}
    for direction, ranks in (("t2v", _ranks(sim, t2v)),
                             ("v2t", _ranks(sim.T, texts_of))):
        for k in (1, 5, 10):
            out[f"{direction}/R@{k}"] = float(np.mean(ranks <= k) * 100)
        out[f"{direction}/MdR"] = float(np.median(ranks))
    return out


def shared_text_positives(texts: Sequence[str]) -> list[list[int]]:
    """For paired items (text i describes video i): the videos each text describes, counting every item
    whose text is identical (e.g. one sentence shared by several clips) — pass as `text_to_video`."""
    by_text: dict[str, list[int]] = {}
    for i, t in enumerate(texts):
        by_text.setdefault(t, []).append(i)
    return [by_text[t] for t in texts]
