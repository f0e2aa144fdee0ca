import math

import numpy as np
import pytest

from evals.contracts import MetricResult
from evals.metrics.qa import accuracy
from evals.metrics.retrieval import retrieval_scores
from evals.stats import (Draws, bootstrap_distribution, mcnemar_exact, paired_bootstrap, paired_p,
                         sign_flip_clustered)
from evals.tables import build_table


def test_mcnemar_exact_known_values():
    # 0 vs 5 discordant pairs: p = 2 * 0.5**5
    assert mcnemar_exact([1] * 5 + [1] * 3, [0] * 5 + [1] * 3) == pytest.approx(0.0625)
    assert mcnemar_exact([1, 0, 1, 0], [1, 0, 1, 0]) == 1.0
    # 2 vs 8 discordant: 2 * P(X <= 2 | n=10) = 2 * 56/1024
    a = [1, 1] + [0] * 8
    b = [0, 0] + [1] * 8
    assert mcnemar_exact(a, b) == pytest.approx(2 * 56 / 1024)


def test_mcnemar_exact_at_real_sizes():
    # NExT-QA val has 4,996 questions: two rows that disagree on >= 1,024 of them overflowed 2.0 ** m
    a = [True] * 700 + [False] * 800 + [True] * 3000
    b = [False] * 700 + [True] * 800 + [True] * 3000
    p = mcnemar_exact(a, b)
    assert 0.0 < p < 0.02                      # 700 vs 800 discordant: z = 2.58, two-sided ~0.0105
    assert p == pytest.approx(0.0105, abs=0.001)
    assert mcnemar_exact([True] * 3000, [False] * 3000) == 0.0   # underflows to 0 cleanly, no error
    balanced = mcnemar_exact([True] * 2000 + [False] * 2000, [False] * 2000 + [True] * 2000)
    assert balanced == 1.0


def test_cluster_bootstrap_resamples_videos():
    # 50 videos x 10 questions; within a video the scores are identical (fully correlated)
    rng = np.random.default_rng(0)
    per_video = rng.random(50) < 0.5
    x = np.repeat(per_video.astype(float), 10)
    labels = np.repeat([f"v{i}" for i in range(50)], 10)
    items = bootstrap_distribution(x, 500, 2000, seed=0)
    videos = bootstrap_distribution(x, 500, 2000, seed=0, clusters=labels)
    # resampling questions as if independent understates the spread by ~sqrt(10)
    assert np.std(videos) > 2.5 * np.std(items)
    assert np.std(videos) == pytest.approx(np.sqrt(x.mean() * (1 - x.mean()) / 50), rel=0.15)
    d = Draws(500, 3, 0, labels)
    assert d.n_clusters == 50 and d.clustered
    for idx in d.indices():            # whole videos: every drawn video brings its 10 questions
        assert len(idx) == 500 and all(np.sum(idx == i) == np.sum(idx == i - i % 10 ) for i in idx)
    # a corpus statistic sees the same draws as the vectorised mean
    np.testing.assert_allclose(videos[:50], bootstrap_distribution(lambda i: float(x[i].mean()), 500, 50, 0, labels))


def test_singleton_clusters_are_the_item_bootstrap():
    x = np.random.default_rng(1).random(40)
    np.testing.assert_array_equal(bootstrap_distribution(x, 40, 100, seed=5),
                                  bootstrap_distribution(x, 40, 100, seed=5, clusters=[f"u{i}" for i in range(40)]))
    assert not Draws(40, 10, 0, list(range(40))).clustered


def _brute_force_sign_flip(a, b, labels) -> float:
    import itertools

    d = {}
    for x, y, c in zip(a, b, labels):
        d[c] = d.get(c, 0) + (x and not y) - (y and not x)
    d = [v for v in d.values() if v]
    t = abs(sum(d))
    hits = sum(abs(sum(s * v for s, v in zip(signs, d))) >= t for signs in itertools.product((1, -1), repeat=len(d)))
    return hits / 2 ** len(d)


def test_clustered_sign_flip_test_is_exact():
    rng = np.random.default_rng(7)
    for _ in range(20):                      # 12 videos of 1-6 questions: against all 2**12 sign flips
        sizes = rng.integers(1, 7, size=12)
        labels = np.repeat(np.arange(12), sizes)
        a, b = rng.random(len(labels)) < 0.5, rng.random(len(labels)) < 0.7
        assert sign_flip_clustered(a, b, labels) == pytest.approx(_brute_force_sign_flip(a, b, labels), abs=1e-12)
    # one item per video: it is the exact McNemar test
    a, b = rng.random(300) < 0.4, rng.random(300) < 0.5
    assert sign_flip_clustered(a, b, np.arange(300)) == pytest.approx(mcnemar_exact(a, b), rel=1e-9)
    # B beats A by one question in each of 30 videos, A beats B on 2 questions of one video: 2**-31 * (#|S|>=28)
    a, b, labels = [], [], []
    for v in range(30):
        a += [False, True]; b += [True, True]; labels += [v, v]
    a += [True, True]; b += [False, False]; labels += [99, 99]
    p = sign_flip_clustered(a, b, labels)
    assert 0 < p < 1e-5
    assert paired_p(a, b, labels) == p and paired_p(a, b) == mcnemar_exact(a, b)
    assert sign_flip_clustered([True, False], [True, False], [0, 0]) == 1.0
    # real size: 570 videos, 4,996 questions, in well under a second
    labels = np.repeat(np.arange(570), 9)[:4996]
    a, b = rng.random(4996) < 0.5, rng.random(4996) < 0.52
    assert 0 <= sign_flip_clustered(a, b, labels) <= 1


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


def test_table_with_clusters_says_so_and_widens_the_ci():
    keys = [f"v{i // 6}_q{i % 6}" for i in range(120)]          # 20 videos x 6 questions
    rng = np.random.default_rng(3)
    video_right = rng.random(20) < 0.5
    ref = {k: float(video_right[i // 6]) for i, k in enumerate(keys)}
    new = {k: float(video_right[i // 6] or i // 6 < 4) for i, k in enumerate(keys)}
    scores = {"qa": {"ref": {"accuracy": _mr("accuracy", ref)}, "new": {"accuracy": _mr("accuracy", new)}}}
    plain = build_table(scores, {"qa": ["accuracy"]}, "ref", resamples=500)
    clustered = build_table(scores, {"qa": ["accuracy"]}, "ref", resamples=500,
                            clusters={"qa": {k: k.split("_")[0] for k in keys}})
    p, c = plain.cells[("new", ("qa", "accuracy"))], clustered.cells[("new", ("qa", "accuracy"))]
    assert p.delta.delta == c.delta.delta
    assert (c.delta.high - c.delta.low) > 1.5 * (p.delta.high - p.delta.low)
    assert c.delta.clusters == 20 and p.delta.clusters is None
    assert c.p > p.p
    assert "120 scored items share 20 videos" in clustered.markdown()
    assert "share" not in plain.markdown()
    row = [r for r in clustered.csv().splitlines() if r.startswith("new,")][0].split(",")
    assert row[9] == "20"


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


def _q(uid, answer, category=None, **groups):
    from evals.contracts import MCQA, Sample

    return Sample(uid=uid, benchmark="b", task=MCQA, video=None, question="?", options=("a", "b", "c", "d"),
                  answer=answer, category=category, groups={k: tuple(v) for k, v in groups.items()})


def test_group_accuracies_multi_label_and_the_macro_average():
    """`accuracy/<dim>=<label>` per label (a multi-label item counts in each); a macro average is the unweighted mean
    of group accuracies (MLVU's M-Avg: not the micro average), recomputed exactly on bootstrap draws."""
    from evals.contracts import Prediction
    from evals.metrics.qa import qa_scores

    samples = [_q("a1", 0, task=["A"]), _q("a2", 0, task=["A"]), _q("a3", 0, task=["A"]), _q("b1", 1, task=["B"]),
               _q("m1", 2, task=["A", "B"])]
    preds = {s.uid: Prediction(uid=s.uid, system="x", choice=c) for s, c in zip(samples, [0, 0, 0, 0, 2])}
    res = qa_scores(samples, preds, {"M-Avg": "task"})
    assert res["accuracy"].value == pytest.approx(4 / 5)
    assert res["accuracy/task=A"].value == 1.0 and res["accuracy/task=B"].value == 0.5      # m1 counts in both
    assert res["M-Avg"].value == pytest.approx((1.0 + 0.5) / 2)                             # micro would be 0.8
    resample = res["M-Avg"].info["resample"]
    assert resample(np.array([0, 3, 3])) == pytest.approx((1.0 + 0.0) / 2)                 # a1; b1 twice
    assert resample(np.array([1, 2])) == 1.0                                                # only A drawn
    with pytest.raises(ValueError, match="M-Avg: 1 scored items have no 'task' label \\(e.g. 'z'\\)"):
        qa_scores(samples + [_q("z", 0)], preds, {"M-Avg": "task"})


def test_every_metric_the_suite_computes_is_in_the_table():
    """Columns are recognised through `evals.metrics.metric`, never by their names: every caption metric, accuracy
    and its groups, the official macro averages; the paired test is McNemar's for accuracy only."""
    from evals.metrics import METRICS, metric
    from evals.metrics.caption import ALL

    assert all(metric(m).task == "caption" and metric(m).paired_test is None for m in ALL)
    assert metric("accuracy/duration=long").paired_test == "mcnemar" and metric("accuracy").aggregate == "mean"
    assert metric("M-Avg").aggregate == "macro" and metric("M-Avg").paired_test is None
    assert {m.task for m in METRICS.values()} == {"caption", "mcqa"}
    with pytest.raises(KeyError, match="unknown metric 'WER'"):
        metric("WER")


def test_a_macro_average_in_the_table_gets_a_bootstrap_ci_and_no_mcnemar_p():
    from evals.contracts import Prediction
    from evals.metrics.qa import qa_scores

    samples = [_q(f"{t}{i}", 0, task=[t]) for t in "AB" for i in range(20)]
    right = {s.uid: Prediction(uid=s.uid, system="x", choice=0) for s in samples}
    half = {s.uid: Prediction(uid=s.uid, system="x", choice=0 if s.uid.startswith("A") else 1) for s in samples}
    scores = {"b": {"ref": qa_scores(samples, half, {"M-Avg": "task"}),
                    "new": qa_scores(samples, right, {"M-Avg": "task"})}}
    t = build_table(scores, {"b": ["M-Avg", "accuracy"]}, "ref", resamples=200)
    m_avg, acc = t.cells[("new", ("b", "M-Avg"))], t.cells[("new", ("b", "accuracy"))]
    assert m_avg.delta.delta == pytest.approx(0.5) and m_avg.delta.low > 0 and m_avg.p is None
    assert acc.p is not None and acc.p < 0.001
