"""Time every caption metric on N items (default 5,000), as the suite computes them: one PTB tokenizer pass,
then BLEU-1..4, METEOR, ROUGE-L, CIDEr corpus-level; plus the cost of 100 CIDEr bootstrap recomputations.

    python benchmarks/caption_metrics_speed.py [N]
"""
import random
import sys
import time

import numpy as np

from evals.metrics import caption as cap

WORDS = ("a person cuts the onion into small pieces then adds oil to the hot pan and stirs the mixture "
         "slowly before a red square moves left while a blue circle grows and fades away").split()


def main(n: int = 5000) -> None:
    rng = random.Random(0)
    refs = {f"v{i}": [" ".join(rng.choices(WORDS, k=rng.randint(5, 20))) + "." for _ in range(rng.randint(1, 3))]
            for i in range(n)}
    preds = {k: " ".join(rng.choices(WORDS, k=rng.randint(3, 20))) for k in refs}
    times = {}
    t = time.perf_counter()
    res = cap.caption_scores(refs, preds)
    times["all metrics (suite call)"] = time.perf_counter() - t
    for names in (cap.BLEU, ("METEOR",), ("ROUGE-L",), ("CIDEr",)):
        t = time.perf_counter()
        cap.caption_scores(refs, preds, names)
        times[" + ".join(names) + " (incl. tokenize)"] = time.perf_counter() - t
    t = time.perf_counter()
    cap.tokenize({**refs, **{k + "p": [v] for k, v in preds.items()}})
    times["tokenize only"] = time.perf_counter() - t
    idx = np.random.default_rng(0).integers(0, n, size=(100, n))
    t = time.perf_counter()
    for i in idx:
        res["CIDEr"].info["resample"](i)
    times["100 CIDEr bootstrap recomputations"] = time.perf_counter() - t
    print(f"caption metrics on {n} items (values: " +
          ", ".join(f"{k}={v.value:.3f}" for k, v in res.items()) + ")")
    base = times["tokenize only"]
    for k, v in times.items():
        print(f"{k:>42}: {v:7.2f} s  ({v / base:5.1f}x tokenize)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
