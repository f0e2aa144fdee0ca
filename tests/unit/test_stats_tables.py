import math

import numpy as np
import pytest

from evals.contracts import MetricResult
from evals.metrics.qa import accuracy
from evals.metrics.retrieval import retrieval_scores
from evals.stats import bootstrap_distribution, mcnemar_exact, paired_bootstrap
from evals.tables import build_table


def test_mcnemar_exact_known_values():
    # 0 vs 5 discordant pairs: p = 2 * 0.5**5
    assert mcnemar_exact([1] * 5 + [1] * 3, [0] * 5 + [1] * 3) == pytest.approx(0.0625)
    assert mcnemar_exact([1, 0, 1, 0], [1, 0, 1, 0]) == 1.0
    # 2 vs 8 discordant: 2 * P(X <= 2 | n=10) = 2 * 56/1024
    a = [1, 1] + [0] * 8
    b = [0, 0] + [1] * 8
    assert mcnemar_exact(a, b) == pytest.approx(2 * 56 / 1024)


def test_paired_bootstrap_mean_ci_covers_and_is_paired():
    rng = np.random.default_rng(0)
    a = rng.normal(0.5, 0.2, 400)
    b = a + 0.05 + rng.normal(0, 0.01, 400)   # strongly paired: tiny CI around +0.05
    d = paired_bootstrap(a, b, resamples=2000, seed=1)
    assert d.delta == pytest.approx(np.mean(b - a))
    assert d.low < 0.05 < d.high and d.high - d.low < 0.01
    # unpaired noise of the same size would give a far wider interval
    assert (d.high - d.low) < 0.1 * (2 * 1.96 * 0.2 * math.sqrt(2 / 400))


def test_bootstrap_with_corpus_statistic_matches_vectorised_mean():
    x = np.arange(20, dtype=float)
    v = bootstrap_distribution(x, 20, 50, seed=3)
    c = bootstrap_distribution(lambda idx: float(x[idx].mean()), 20, 50, seed=3)
    np.testing.assert_allclose(v, c)
    d = paired_bootstrap(stat_a=lambda i: float(x[i].sum()), stat_b=lambda i: float(2 * x[i].sum()),
                         n=20, resamples=100)
    assert d.delta == pytest.approx(x.sum())


def test_retrieval_metrics_both_directions():
    sim = np.eye(20) + np.random.default_rng(0).normal(0, 0.01, (20, 20))
    r = retrieval_scores(sim)
    assert r["t2v/R@1"] == 100 and r["v2t/R@1"] == 100 and r["t2v/MdR"] == 1
    # reverse order: the right video is always ranked last
    r = retrieval_scores(-np.eye(10))
    assert r["t2v/R@1"] == 0 and r["t2v/R@10"] == 100 and r["t2v/MdR"] == 10
    # two captions per video: video->text uses the better of its captions
    sim = np.array([[1.0, 0.5], [0.0, 0.1], [0.9, 0.0], [0.95, 0.2]])
    r = retrieval_scores(sim, text_to_video=[0, 1, 0, 1])
    assert r["t2v/R@1"] == 75 and r["v2t/R@1"] == 50
    with pytest.raises(ValueError):
        retrieval_scores(np.ones((3, 2)))


def test_accuracy_on_plain_dicts_parses_text():
    opts = {"q1": ["red", "blue"], "q2": ["cat", "dog"], "q3": ["x", "y"]}
    res = accuracy({"q1": 1, "q2": 0, "q3": 1}, {"q1": "Answer: B", "q2": 0, "q3": "no idea"}, opts)
    assert res.value == pytest.approx(2 / 3) and res.info["n_unparseable"] == 1


def _mr(name, per, **info):
    return MetricResult(name, float(np.mean(list(per.values()))), per, info)


def test_table_formats_and_deltas():
    keys = [f"u{i}" for i in range(30)]
    ref = {k: float(i % 2) for i, k in enumerate(keys)}
    better = {k: 1.0 for k in keys}
    scores = {"qa": {"ref": {"accuracy": _mr("accuracy", ref)}, "new": {"accuracy": _mr("accuracy", better)}},
              "summ": {"ref": {"CIDEr": _mr("CIDEr", {k: 0.2 for k in keys})},
                       "new": {"CIDEr": _mr("CIDEr", {k: 0.3 for k in keys})}}}
    t = build_table(scores, {"qa": ["accuracy"], "summ": ["CIDEr"]}, "ref", resamples=200)
    c = t.cells[("new", ("qa", "accuracy"))]
    assert c.delta.delta == pytest.approx(0.5) and c.delta.low > 0 and c.p < 0.001
    md, csv, tex = t.markdown(), t.csv(), t.latex()
    assert "| ref (ref) |" in md and "+50.0" in md and "p=" in md
    assert csv.splitlines()[0].startswith("system,benchmark,metric,value,delta")
    assert len(csv.splitlines()) == 5 and "\\begin{tabular}" in tex and "new" in tex
    with pytest.raises(ValueError, match="reference"):
        build_table(scores, {"qa": ["accuracy"]}, "nope")


def test_retrieval_with_shared_texts():
    # text 0 describes videos 0 and 2; either counts as a hit
    sim = np.array([[0.1, 0.0, 0.9], [0.0, 0.8, 0.1]])
    r = retrieval_scores(sim, text_to_video=[[0, 2], [1]])
    assert r["t2v/R@1"] == 100 and r["v2t/R@1"] == 100
    with pytest.raises(ValueError):
        retrieval_scores(sim, text_to_video=[[0], [1]])   # video 2 has no text


def test_shared_text_positives():
    from evals.metrics.retrieval import shared_text_positives

    assert shared_text_positives(["a", "b", "a"]) == [[0, 2], [1], [0, 2]]
