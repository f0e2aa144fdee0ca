"""Multiple-choice accuracy: over items with a known answer; unparseable or failed = wrong (rate reported)."""
from __future__ import annotations

from collections import defaultdict
from typing import Mapping, Sequence

from evals.contracts import MetricResult, Prediction, Sample


def qa_scores(samples: Sequence[Sample], predictions: Mapping[str, Prediction]) -> dict[str, MetricResult]:
    """`accuracy` (per-item 1/0) and `accuracy/<category>` for each question category.

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
    for cat in sorted(by_cat):
        items = by_cat[cat]
        out[f"accuracy/{cat}"] = MetricResult(f"accuracy/{cat}", sum(items.values()) / len(items), items,
                                              {"n_scored": len(items)})
    return out


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
