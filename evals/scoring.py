"""Score predictions of one system on one benchmark's samples, by task."""
from __future__ import annotations

from typing import Mapping, Sequence

from evals.contracts import CAPTIONING, MCQA, SUMMARIZATION, MetricResult, Prediction, Sample
from evals.metrics.caption import DEFAULT as CAPTION_DEFAULT
from evals.metrics.caption import caption_scores
from evals.metrics.qa import qa_scores
from evals.parsing import parse_choice


def with_choice(pred: Prediction, sample: Sample) -> Prediction:
    """Fill a multiple-choice prediction's `choice` from its text with the one parser, if it has none."""
    if sample.task != MCQA or pred.failure or pred.choice is not None or not pred.text:
        return pred
    from dataclasses import replace

    return replace(pred, choice=parse_choice(pred.text, sample.options))


def score(samples: Sequence[Sample], predictions: Mapping[str, Prediction],
          caption_metrics: Sequence[str] = CAPTION_DEFAULT, meteor_timeout: float = 600.0,
          aggregates: Mapping[str, str] | None = None) -> dict[str, MetricResult]:
    """Metrics of one system. Failed or missing items count: empty text for captions, wrong for QA. `aggregates`:
    the benchmark's official macro averages (name -> grouping dimension), multiple choice only."""
    tasks = {s.task for s in samples}
    if len(tasks) != 1:
        raise ValueError(f"samples of one task expected, got {sorted(tasks)}")
    (task,) = tasks
    if task in (SUMMARIZATION, CAPTIONING):
        refs = {s.uid: list(s.references) for s in samples}
        texts = {u: p.text or "" for u, p in predictions.items() if u in refs and not p.failure}
        return caption_scores(refs, texts, caption_metrics, meteor_timeout)
    if task == MCQA:
        by_uid = {s.uid: s for s in samples}
        preds = {u: with_choice(p, by_uid[u]) for u, p in predictions.items() if u in by_uid}
        return qa_scores(samples, preds, aggregates)
    raise ValueError(f"task {task!r} is scored from similarity matrices (evals.metrics.retrieval), "
                     "not from per-item predictions")
