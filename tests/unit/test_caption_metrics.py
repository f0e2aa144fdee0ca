"""Caption metrics equal direct pycocoevalcap calls; corpus-level statistics are used, not per-item means."""
import math
import os
import random

import numpy as np
import pytest

from evals.metrics.caption import ALL, BLEU, caption_scores, spice_status, tokenize

pytestmark = pytest.mark.java

WORDS = ("a person cuts the onion into small pieces then adds oil to the hot pan and stirs the "
         "mixture slowly before the red square moves left while a blue circle grows").split()


def corpus(n=60, seed=0):
    rng = random.Random(seed)
    refs, preds = {}, {}
    for i in range(n):
        k = rng.randint(1, 4)
        rs = [" ".join(rng.choices(WORDS, k=rng.randint(3, 25))) + rng.choice([".", "!", "", "?"])
              for _ in range(k)]
        refs[f"v{i}"] = [r.capitalize() if j % 2 else r for j, r in enumerate(rs)]
        mode = i % 5
        if mode == 0:
            preds[f"v{i}"] = rs[0]                       # exact copy
        elif mode == 1:
            preds[f"v{i}"] = ""                          # empty output
        elif mode == 2:
            preds[f"v{i}"] = "Well,\nthe " + " ".join(rng.choices(WORDS, k=rng.randint(1, 30)))  # newline
        else:
            preds[f"v{i}"] = " ".join(rng.choices(WORDS, k=rng.randint(2, 15))) + ", ok."
    return refs, preds


def direct(refs, preds):
    """The reference computation: pycocoevalcap's own classes, called directly."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": r} for r in v] for k, v in refs.items()})
    res = tok.tokenize({k: [{"caption": " ".join(preds[k].split())}] for k in refs})
    out = {}
    b, bper = Bleu(4).compute_score(gts, res, verbose=0)
    for i, name in enumerate(BLEU):
        out[name] = (b[i], bper[i])
    m = Meteor()
    out["METEOR"] = m.compute_score(gts, res)
    out["ROUGE-L"] = Rouge().compute_score(gts, res)
    out["CIDEr"] = Cider().compute_score(gts, res)
    return out, gts, res


@pytest.fixture(scope="module")
def both():
    refs, preds = corpus()
    ours = caption_scores(refs, preds, metrics=BLEU + ("METEOR", "ROUGE-L", "CIDEr"))
    theirs, gts, res = direct(refs, preds)
    return refs, preds, ours, theirs, gts, res


def test_equal_to_direct_pycocoevalcap(both):
    refs, _, ours, theirs, _, _ = both
    assert len(refs) >= 50
    for name, (value, per) in theirs.items():
        assert ours[name].value == pytest.approx(value, abs=1e-9), name
        assert list(ours[name].per_item) == list(refs)
        np.testing.assert_allclose(list(ours[name].per_item.values()), per, atol=1e-9, err_msg=name)


def test_bleu_orders_differ(both):
    values = [both[2][n].value for n in BLEU]
    assert len(set(values)) == 4
    assert values == sorted(values, reverse=True)


def test_corpus_cider_differs_from_mean_of_per_item_calls(both):
    from pycocoevalcap.cider.cider import Cider

    refs, _, ours, _, gts, res = both
    singles = [Cider().compute_score({k: gts[k]}, {k: res[k]})[0] for k in refs]
    assert abs(np.mean(singles) - ours["CIDEr"].value) > 0.05
    # and the suite reports the corpus value: the mean of its per-item scores (shared idf)
    assert ours["CIDEr"].value == pytest.approx(np.mean(list(ours["CIDEr"].per_item.values())))


def test_corpus_bleu_is_not_mean_of_items(both):
    ours = both[2]
    assert abs(ours["BLEU-4"].value - np.mean(list(ours["BLEU-4"].per_item.values()))) > 1e-3


def test_resample_functions_recompute_corpus_values(both):
    refs, _, ours, _, gts, res = both
    n = len(refs)
    full = np.arange(n)
    for name in BLEU + ("CIDEr",):
        assert ours[name].info["resample"](full) == pytest.approx(ours[name].value, abs=1e-12), name
    np.testing.assert_allclose(ours["CIDEr"].info["resample"].item_scores(np.ones(n)),
                               list(ours["CIDEr"].per_item.values()), atol=1e-9)
    # a resample with repeats equals a direct call on the duplicated corpus
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    idx = np.random.default_rng(1).integers(0, n, n)
    keys = list(refs)
    g = {j: gts[keys[i]] for j, i in enumerate(idx)}
    r = {j: res[keys[i]] for j, i in enumerate(idx)}
    assert ours["CIDEr"].info["resample"](idx) == pytest.approx(Cider().compute_score(g, r)[0], abs=1e-9)
    assert ours["BLEU-4"].info["resample"](idx) == pytest.approx(Bleu(4).compute_score(g, r, verbose=0)[0][3],
                                                                 abs=1e-9)


def test_missing_prediction_scores_as_empty():
    refs = {"a": ["the cat sat on the mat"], "b": ["a dog runs in the park"]}
    with_empty = caption_scores(refs, {"a": "the cat sat on the mat", "b": ""}, metrics=("CIDEr", "ROUGE-L"))
    missing = caption_scores(refs, {"a": "the cat sat on the mat"}, metrics=("CIDEr", "ROUGE-L"))
    for m in ("CIDEr", "ROUGE-L"):
        assert with_empty[m].value == missing[m].value
        assert missing[m].per_item["b"] == 0


def test_cider_resamples_a_system_that_shares_no_ngram():
    """e.g. a row whose items all failed (empty text): CIDEr 0 in every resample, not a crash."""
    refs = {"a": ["the cat sat on the mat"], "b": ["a dog runs in the park"]}
    for preds in ({"a": "", "b": ""}, {"a": "zebra", "b": "quokka"}):
        cider = caption_scores(refs, preds, metrics=("CIDEr",))["CIDEr"]
        assert cider.value == 0 and cider.info["resample"](np.array([0, 1, 1])) == 0


def test_bad_inputs_name_the_item():
    with pytest.raises(ValueError, match="unknown caption metrics"):
        caption_scores({"a": ["x"]}, {"a": "x"}, metrics=("BLEU-5",))
    with pytest.raises(ValueError, match="'b'"):
        caption_scores({"a": ["x"], "b": []}, {"a": "x"})
    with pytest.raises(ValueError, match="without references"):
        caption_scores({"a": ["x"]}, {"a": "x", "zzz": "y"})


def test_spice_reported_unavailable_without_jars():
    reason = spice_status()
    out = caption_scores({"a": ["a cat"]}, {"a": "a cat"}, metrics=("SPICE",))
    if reason is None:
        assert not math.isnan(out["SPICE"].value)
    else:
        assert "CoreNLP" in reason and math.isnan(out["SPICE"].value)
        assert out["SPICE"].info["unavailable"] == reason


def test_meteor_timeout_is_reported(monkeypatch):
    import evals.metrics.caption as cap

    def slow(gts, res, timeout):
        return cap._run_with_timeout(lambda: __import__("time").sleep(5), 0.2, lambda: None, "METEOR")

    monkeypatch.setattr(cap, "_meteor", slow)
    out = caption_scores({"a": ["a cat"]}, {"a": "a cat"}, metrics=("METEOR",))
    assert math.isnan(out["METEOR"].value) and "did not finish" in out["METEOR"].info["unavailable"]


def test_tokenize_lowercases_and_strips_punctuation():
    assert tokenize({"x": ["Hello, World!\nAgain."]})["x"] == ["hello world again"]
    assert set(ALL) >= set(BLEU)


@pytest.mark.java
def test_meteor_java_dies_with_the_run(tmp_path):
    """A run killed (SIGKILL) while METEOR's Java child is up leaves no Java process behind."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    script = ("import os, signal, sys\n"
              f"sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})\n"
              "from evals.metrics.caption import meteor_scorer\n"
              "m = meteor_scorer()\n"
              "print(m.meteor_p.pid, flush=True)\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == -signal.SIGKILL, r.stderr
    java = int(r.stdout.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(java, 0)
            if open(f"/proc/{java}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        except (ProcessLookupError, FileNotFoundError):
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"METEOR's Java process {java} outlived the killed run")
