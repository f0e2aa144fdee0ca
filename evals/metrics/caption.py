"""Caption metrics through pycocoevalcap: PTB-tokenize once, then BLEU-1..4, METEOR, ROUGE-L, CIDEr (and
SPICE when its CoreNLP jars are present), all corpus-level over the whole split in one call each.

Every metric also gives per-item scores (for paired statistics). For corpus statistics that are not a
mean of per-item scores (BLEU, CIDEr) a `resample(indices)` function recomputes the corpus value on a
bootstrap resample of items: BLEU from its summed n-gram statistics, CIDEr by re-running the CIDEr scorer
(document frequencies change with the resample). METEOR's corpus value is Java's aggregate; its CI uses the
per-item mean (noted in the result's info).
"""
from __future__ import annotations

import math
import os
import threading
from typing import Mapping, Sequence

import numpy as np

from evals.contracts import MetricResult

BLEU = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4")
ALL = BLEU + ("METEOR", "ROUGE-L", "CIDEr", "SPICE")
DEFAULT = BLEU + ("METEOR", "ROUGE-L", "CIDEr")


class MetricUnavailable(RuntimeError):
    pass


def tokenize(texts: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """PTB-tokenize (lower-case, punctuation removed) with pycocoevalcap's Java tokenizer, in one call."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    data = {k: [{"caption": " ".join(str(t).split())} for t in v] for k, v in texts.items()}
    if not data:
        return {}
    out = PTBTokenizer().tokenize(data)
    # an empty string comes back missing if it is the very last line: restore every key
    return {k: out.get(k, [""] * len(v)) for k, v in data.items()}


def spice_status() -> str | None:
    """None if SPICE can run offline, else the reason it cannot."""
    import pycocoevalcap.spice as sp

    jar = os.path.join(os.path.dirname(sp.__file__), "lib", "stanford-corenlp-3.6.0.jar")
    if not os.path.exists(jar):
        return (f"SPICE needs Stanford CoreNLP 3.6.0 jars at {os.path.dirname(jar)} "
                "(stanford-corenlp-3.6.0.jar and -models.jar); pycocoevalcap would download them, "
                "which this suite never does. Copy them there to enable SPICE.")
    return None


def _run_with_timeout(fn, timeout: float, on_timeout, what: str):
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        on_timeout()
        raise MetricUnavailable(f"{what} did not finish within {timeout:.0f} s and was stopped")
    if "error" in box:
        raise box["error"]
    return box["value"]


def meteor_scorer():
    """pycocoevalcap's Meteor, its Java child started so that it dies with this process (PR_SET_PDEATHSIG): a run
    killed mid-METEOR leaves no Java process behind. The same command and folder as `Meteor()`."""
    import signal
    import subprocess

    from pycocoevalcap.meteor import meteor as mod

    from evals.process import die_with_parent

    m = mod.Meteor.__new__(mod.Meteor)
    m.meteor_cmd = ["java", "-jar", "-Xmx2G", mod.METEOR_JAR, "-", "-", "-stdio", "-l", "en", "-norm"]
    m.meteor_p = subprocess.Popen(m.meteor_cmd, cwd=os.path.dirname(os.path.abspath(mod.__file__)),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  preexec_fn=die_with_parent(signal.SIGKILL))
    m.lock = threading.Lock()
    return m


def _meteor(gts, res, timeout):
    m = meteor_scorer()
    try:
        return _run_with_timeout(lambda: m.compute_score(gts, res), timeout, m.meteor_p.kill, "METEOR")
    finally:
        try:
            m.meteor_p.kill()
            m.meteor_p.wait(timeout=10)
        except Exception:
            pass


class _BleuStats:
    """Per-item BLEU statistics from pycocoevalcap's scorer; corpus BLEU of any resample of items."""

    def __init__(self, gts, res, keys):
        from pycocoevalcap.bleu.bleu_scorer import BleuScorer

        sc = BleuScorer(n=4)
        for k in keys:
            sc += (res[k][0], gts[k])
        self.testlen = np.array([c["testlen"] for c in sc.ctest], float)
        self.reflen = np.array([sc._single_reflen(c["reflen"], "closest", c["testlen"])
                                for c in sc.ctest], float)
        self.guess = np.array([c["guess"] for c in sc.ctest], float)      # (N, 4)
        self.correct = np.array([c["correct"] for c in sc.ctest], float)  # (N, 4)

    def corpus(self, idx: np.ndarray) -> np.ndarray:
        """BLEU-1..4 of the items `idx` (with repeats), exactly as BleuScorer.compute_score sums them."""
        small, tiny = 1e-9, 1e-15
        g, c = self.guess[idx].sum(0), self.correct[idx].sum(0)
        testlen, reflen = self.testlen[idx].sum(), self.reflen[idx].sum()
        bleus, b = [], 1.0
        for k in range(4):
            b *= float(c[k] + tiny) / (g[k] + small)
            bleus.append(b ** (1.0 / (k + 1)))
        ratio = (testlen + tiny) / (reflen + small)
        if ratio < 1:
            bleus = [x * math.exp(1 - 1 / ratio) for x in bleus]
        return np.array(bleus)


class _CiderResampler:
    """Corpus CIDEr-D of any resample of items (with repeats), exactly as pycocoevalcap's CiderScorer would
    compute it on that resampled corpus, but fast: document frequencies change with the resample, and every
    quantity CIDEr-D needs is linear in the squared idf weights, so each resample is a few weighted sums
    over precomputed n-gram statistics instead of a full re-scoring (checked against pycocoevalcap in the
    tests). Uses pycocoevalcap's own n-gram counting."""

    def __init__(self, gts, res, keys, sigma: float = 6.0):
        from pycocoevalcap.cider.cider_scorer import CiderScorer

        sc = CiderScorer(n=4, sigma=sigma)
        for k in keys:
            sc += (res[k][0], gts[k])
        vocab: dict = {}
        gid = lambda g: vocab.setdefault(g, len(vocab))
        m_item, m_g = [], []                     # (item, ngram) pairs: ngram occurs in the item's refs
        num = ([], [], [])                       # rows (i, j, n), ngram ids, coefficients
        nr = ([], [], [])                        # ||ref||^2 rows (i, j, n)
        nc = ([], [], [])                        # ||hyp||^2 rows (i, n)
        pen, item_of_ref, n_refs = [], [], []
        row = 0
        for i, (test, refs) in enumerate(zip(sc.ctest, sc.crefs)):
            for g in {g for r in refs for g in r}:
                m_item.append(i)
                m_g.append(gid(g))
            for g, tf in test.items():
                nc[0].append(4 * i + len(g) - 1); nc[1].append(gid(g)); nc[2].append(tf * tf)
            len_h = sum(tf for g, tf in test.items() if len(g) == 2)  # pycocoevalcap's "length": bigrams
            for r in refs:
                for g, tf in r.items():
                    nr[0].append(4 * row + len(g) - 1); nr[1].append(gid(g)); nr[2].append(tf * tf)
                for g, tf in test.items():
                    if g in r:
                        num[0].append(4 * row + len(g) - 1); num[1].append(gid(g))
                        num[2].append(min(tf, r[g]) * r[g])
                len_r = sum(tf for g, tf in r.items() if len(g) == 2)
                pen.append(np.exp(-((len_h - len_r) ** 2) / (2 * sigma ** 2)))
                item_of_ref.append(i)
                row += 1
            n_refs.append(len(refs))
        # typed: a hypothesis sharing no n-gram with its references (e.g. failed = empty) leaves lists empty
        arr = lambda t: (np.asarray(t[0], np.int64), np.asarray(t[1], np.int64), np.asarray(t[2], float))
        self.num, self.nr, self.nc = arr(num), arr(nr), arr(nc)
        self.m_item, self.m_g = np.asarray(m_item), np.asarray(m_g)
        self.pen, self.item_of_ref = np.asarray(pen), np.asarray(item_of_ref)
        self.n_refs, self.rows, self.items, self.G = np.asarray(n_refs, float), row, len(keys), len(vocab)

    def item_scores(self, weights: np.ndarray) -> np.ndarray:
        """Per-item CIDEr-D under document frequencies of a corpus holding item i `weights[i]` times."""
        df = np.bincount(self.m_g, weights=weights[self.m_item], minlength=self.G)
        idf2 = (np.log(weights.sum()) - np.log(np.maximum(1.0, df))) ** 2
        s = lambda t, size: np.bincount(t[0], weights=t[2] * idf2[t[1]], minlength=size)
        num = s(self.num, 4 * self.rows).reshape(-1, 4)
        denom = np.sqrt(s(self.nr, 4 * self.rows).reshape(-1, 4) *
                        s(self.nc, 4 * self.items).reshape(-1, 4)[self.item_of_ref])
        val = np.where(denom > 0, num / np.where(denom > 0, denom, 1.0), 0.0) * self.pen[:, None]
        per_item = np.bincount(self.item_of_ref, weights=val.mean(1), minlength=self.items)
        return 10.0 * per_item / self.n_refs

    def __call__(self, idx: np.ndarray) -> float:
        w = np.bincount(np.asarray(idx), minlength=self.items).astype(float)
        return float((w * self.item_scores(w)).sum() / w.sum())


class _Lazy:
    """Builds the resampler on first use: plain scoring never pays for bootstrap statistics."""

    def __init__(self, build):
        self._build, self._obj = build, None

    def _get(self):
        if self._obj is None:
            self._obj = self._build()
        return self._obj

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._get(), name)

    def __call__(self, idx):
        return self._get()(idx)


def caption_scores(references: Mapping[str, Sequence[str]], predictions: Mapping[str, str],
                   metrics: Sequence[str] = DEFAULT, meteor_timeout: float = 600.0
                   ) -> dict[str, MetricResult]:
    """Corpus-level caption metrics over all items of `references` (uid -> reference texts).

    `predictions` maps uid -> text; an item without a prediction is scored as the empty string (a system
    cannot raise its score by failing). Returns name -> MetricResult; a metric that cannot run (SPICE
    without jars, METEOR timing out) comes back with value NaN and the reason in `info["unavailable"]`."""
    unknown = [m for m in metrics if m not in ALL]
    if unknown:
        raise ValueError(f"unknown caption metrics {unknown}; valid: {list(ALL)}")
    keys = list(references)
    if not keys:
        raise ValueError("no items to score")
    for k in keys:
        if not references[k] or not all(isinstance(r, str) for r in references[k]):
            raise ValueError(f"item {k!r}: references must be a non-empty list of strings")
    extra = sorted(set(predictions) - set(references))
    if extra:
        raise ValueError(f"predictions for {len(extra)} items without references, e.g. {extra[:3]}")
    # one tokenizer call for references and predictions together
    tok = tokenize({**{f"r{i}": list(references[k]) for i, k in enumerate(keys)},
                    **{f"p{i}": [predictions.get(k) or ""] for i, k in enumerate(keys)}})
    gts = {i: tok[f"r{i}"] for i in range(len(keys))}
    res = {i: tok[f"p{i}"] for i in range(len(keys))}
    order = list(range(len(keys)))
    out: dict[str, MetricResult] = {}

    def put(name, value, per_item, **info):
        out[name] = MetricResult(name, float(value), dict(zip(keys, map(float, per_item))), info)

    if any(m in metrics for m in BLEU):
        from pycocoevalcap.bleu.bleu import Bleu

        values, per = Bleu(4).compute_score(gts, res, verbose=0)
        stats = _BleuStats(gts, res, order)
        for k, name in enumerate(BLEU):
            if name in metrics:
                put(name, values[k], per[k], resample=lambda idx, k=k: float(stats.corpus(idx)[k]))
    if "METEOR" in metrics:
        try:
            value, per = _meteor(gts, res, meteor_timeout)
            put("METEOR", value, per, ci="bootstrap of the per-item mean (corpus value is Java's aggregate)")
        except MetricUnavailable as e:
            put("METEOR", math.nan, [math.nan] * len(keys), unavailable=str(e))
    if "ROUGE-L" in metrics:
        from pycocoevalcap.rouge.rouge import Rouge

        value, per = Rouge().compute_score(gts, res)
        put("ROUGE-L", value, per)
    if "CIDEr" in metrics:
        from pycocoevalcap.cider.cider import Cider

        value, per = Cider().compute_score(gts, res)
        put("CIDEr", value, per, resample=_Lazy(lambda: _CiderResampler(gts, res, order)))
    if "SPICE" in metrics:
        reason = spice_status()
        if reason is None:
            from pycocoevalcap.spice.spice import Spice

            value, per = Spice().compute_score(gts, res)
            put("SPICE", value, [p["All"]["f"] for p in per])
        else:
            put("SPICE", math.nan, [math.nan] * len(keys), unavailable=reason)
    return {m: out[m] for m in metrics}
