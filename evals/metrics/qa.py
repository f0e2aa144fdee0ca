"""Multiple-choice accuracy: over items with a known answer; unparseable or failed = wrong (rate reported)."""
from __future__ import annotations

from collections import defaultdict
from typing import Mapping, Sequence

from evals.contracts import MetricResult, Prediction, Sample


def qa_scores(samples: Sequence[Sample], predictions: Mapping[str, Prediction],
              aggregates: Mapping[str, str] | None = None) -> dict[str, MetricResult]:
    """`accuracy` (per-item 1/0), `accuracy/<category>` for each question category, `accuracy/<dim>=<label>` for
    each label of each grouping dimension (`Sample.groups`; an item with several labels counts in each), and the
    benchmark's official macro averages: `aggregates` name -> dimension ("category" or a `groups` key), the
    unweighted mean of that dimension's group accuracies (MLVU's M-Avg), recomputed on each bootstrap resample.

    info: n_scored, n_hidden (answer not public: predicted, not scored), n_missing (no prediction),
    n_failed, n_unparseable, unparseable_rate, chance (mean 1/#options)."""
    scored = [s for s in samples if s.answer is not None]
    per: dict[str, float] = {}
    failed = unparseable = missing = 0
    for s in scored:
        p = predictions.get(s.uid)
        if p is None:
            missing += 1
        elif p.failure:
            failed += 1
        elif p.choice is None:
            unparseable += 1
        per[s.uid] = float(p is not None and not p.failure and p.choice == s.answer)
    n = len(scored)
    info = dict(n_scored=n, n_hidden=len(samples) - n, n_missing=missing, n_failed=failed,
                n_unparseable=unparseable, unparseable_rate=unparseable / n if n else 0.0,
                chance=sum(1 / len(s.options) for s in scored) / n if n else float("nan"))
    out = {"accuracy": MetricResult("accuracy", sum(per.values()) / n if n else float("nan"), per, info)}
    by_cat = defaultdict(dict)
    for s in scored:
        if s.category is not None:
            by_cat[s.category][s.uid] = per[s.uid]
        for dim, labels in s.groups.items():
            for label in labels:
                by_cat[f"{dim}={label}"][s.uid] = per[s.uid]
    for cat in sorted(by_cat):
        items = by_cat[cat]
        out[f"accuracy/{cat}"] = MetricResult(f"accuracy/{cat}", sum(items.values()) / len(items), items,
                                              {"n_scored": len(items)})
    for name, dim in (aggregates or {}).items():
        out[name] = macro_accuracy(name, scored, per, dim)
    return out


def macro_accuracy(name: str, scored: Sequence[Sample], per: Mapping[str, float], dim: str) -> MetricResult:
    """The unweighted mean over the labels of `dim` of their accuracies; `resample(indices)` recomputes it on a
    bootstrap draw of items (indices into `per`'s order; a label absent from the draw is left out)."""
    import numpy as np

    labels = {s.uid: ((s.category,) if dim == "category" else tuple(s.groups.get(dim, ()))) for s in scored}
    unlabelled = [u for u, ls in labels.items() if not ls or None in ls]
    if unlabelled:
        raise ValueError(f"{name}: {len(unlabelled)} scored items have no {dim!r} label (e.g. {unlabelled[0]!r})")
    uids = list(per)
    names = sorted({l for ls in labels.values() for l in ls})
    member = np.array([[l in labels[u] for l in names] for u in uids], bool)   # (items, labels)
    right = np.array([per[u] for u in uids], float)

    def resample(idx) -> float:
        m, r = member[idx], right[idx]
        n = m.sum(0)
        return float(((r @ m)[n > 0] / n[n > 0]).mean())

    value = resample(np.arange(len(uids))) if uids else float("nan")
    return MetricResult(name, value, dict(per), {"resample": resample, "over": dim, "groups": len(names),
                                                 "n_scored": len(uids)})


def accuracy(answers: Mapping[str, int], predictions: Mapping[str, int | str | None],
             options: Mapping[str, Sequence[str]] | None = None) -> MetricResult:
    """Accuracy on plain dicts: uid -> gold index, uid -> predicted index or free text (parsed with the
    suite's parser against `options[uid]`). Missing or unparseable predictions count as wrong."""
    from evals.parsing import parse_choice

    per, unparseable = {}, 0
    for uid, gold in answers.items():
        p = predictions.get(uid)
        if isinstance(p, str):
            if options is None or uid not in options:
                raise ValueError(f"item {uid!r}: text prediction needs options to parse it")
            p = parse_choice(p, options[uid])
        unparseable += p is None
        per[uid] = float(p == gold)
    n = len(per)
    return MetricResult("accuracy", sum(per.values()) / n if n else float("nan"), per,
                        {"n_scored": n, "n_unparseable": unparseable})
