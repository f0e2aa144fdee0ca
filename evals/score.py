"""`longvid-score`: score an existing predictions file (jsonlines of uid + text or choice) against a
benchmark, so a model outside the suite is scored by the same metrics."""
from __future__ import annotations

import json
import math
from pathlib import Path

from evals.benchmarks.base import iter_jsonl
from evals.contracts import Prediction
from evals.scoring import score


def read_external(path: str | Path, system: str = "external") -> dict[str, Prediction]:
    """uid -> Prediction from lines {"uid", "text"?, "choice"?}. Errors name the file and line."""
    out = {}
    for n, d in iter_jsonl(path, "predictions file"):
        if "uid" not in d:
            raise ValueError(f"{path}: line {n}: expected an object with a 'uid'")
        choice = d.get("choice")
        if choice is not None and (isinstance(choice, bool) or not isinstance(choice, int)):
            raise ValueError(f"{path}: line {n}: 'choice' must be an integer option index, got {choice!r}")
        text = d.get("text")
        if text is not None and not isinstance(text, str):
            raise ValueError(f"{path}: line {n}: 'text' must be a string")
        uid = str(d["uid"])
        if uid in out:
            raise ValueError(f"{path}: line {n}: duplicate uid {uid!r}")
        out[uid] = Prediction(uid=uid, system=system, text=text, choice=choice)
    return out


def score_file(benchmark, predictions_path, caption_metrics, meteor_timeout=600.0) -> dict:
    samples = benchmark.load()
    preds = read_external(predictions_path)
    known = {s.uid for s in samples}
    unknown = sorted(set(preds) - known)
    if unknown:
        raise ValueError(f"{predictions_path}: {len(unknown)} uids are not in benchmark {benchmark.name!r}, "
                         f"e.g. {unknown[:3]}")
    results = score(samples, preds, caption_metrics, meteor_timeout)
    out = {m: r.value for m, r in results.items()}
    out["n_items"] = len(samples)
    out["n_missing"] = len(known - set(preds))
    if "accuracy" in results:
        out.update({k: v for k, v in results["accuracy"].info.items()})
    return out


def main() -> None:
    from hydra.utils import instantiate

    from evals import hydra_main

    def _main(cfg) -> None:
        res = score_file(instantiate(cfg.benchmark), cfg.predictions, list(cfg.metrics.caption),
                         float(cfg.metrics.meteor_timeout))
        for k, v in res.items():
            print(f"{k:>28}: {v:.4f}" if isinstance(v, float) and not math.isnan(v) else f"{k:>28}: {v}")
        if cfg.out:
            Path(cfg.out).write_text(json.dumps(res, indent=1))

    hydra_main("score", _main)


if __name__ == "__main__":
    main()
