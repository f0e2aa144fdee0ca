"""Every metric the suite reports, by the name its column carries: how it aggregates, which way is better, and
which paired test applies. The runner, the tables and the report ask this table (`metric`) instead of recognising
metrics by their names.

A column name is a metric's name, optionally with the group of items it is computed over after a slash:
`accuracy/long-range` (the items of one category), `accuracy/duration=long` (one label of a grouping dimension),
`M-Avg` (a benchmark's official macro average of group accuracies)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str
    aggregate: str               # "mean" of per-item scores | "corpus" (recomputed on each bootstrap resample) |
                                 # "macro" (unweighted mean of group means, recomputed on each resample)
    higher_is_better: bool = True
    paired_test: str | None = None   # "mcnemar": per-item right/wrong, exact (sign-flip over videos if clustered);
                                     # None: the paired bootstrap CI only
    task: str | None = None          # the task whose predictions it scores

    def of_group(self, column: str) -> "Metric":
        return dataclasses.replace(self, name=column)


_CAPTION = "caption"                 # summaries and captions (both scored against references)
METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("BLEU-1", "corpus", task=_CAPTION),
    Metric("BLEU-2", "corpus", task=_CAPTION),
    Metric("BLEU-3", "corpus", task=_CAPTION),
    Metric("BLEU-4", "corpus", task=_CAPTION),
    Metric("METEOR", "corpus", task=_CAPTION),     # Java's aggregate; its CI resamples per-item scores
    Metric("ROUGE-L", "mean", task=_CAPTION),
    Metric("CIDEr", "corpus", task=_CAPTION),
    Metric("SPICE", "mean", task=_CAPTION),
    Metric("accuracy", "mean", paired_test="mcnemar", task="mcqa"),
    Metric("M-Avg", "macro", task="mcqa"),         # MLVU: the unweighted mean of its multiple-choice tasks' accuracies
)}


def metric(column: str) -> Metric:
    """The metric a column shows (`accuracy/<group>` is accuracy over that group); an unknown name is a KeyError
    listing the valid ones."""
    base = column if column in METRICS else column.split("/", 1)[0]
    if base not in METRICS:
        raise KeyError(f"unknown metric {column!r}; valid: {list(METRICS)} (accuracy optionally /<group>)")
    return METRICS[base] if base == column else METRICS[base].of_group(column)
