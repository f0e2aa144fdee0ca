"""Resumable predictions: `<out>/<benchmark>/<system>/predictions.jsonl`, appended as items finish.

A rerun skips uids that already have a successful prediction; failed items are tried again and their new
line supersedes the old one. A line cut short by a crash (the last one) is dropped and the file repaired.
`run.json` beside it records the system's config hash: continuing with another config is an error."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Mapping

from evals.contracts import Prediction


class PredictionStoreError(RuntimeError):
    pass


def read_predictions(path: str | os.PathLike, repair: bool = False) -> dict[str, Prediction]:
    """uid -> latest prediction in a predictions file. A malformed line other than a truncated last one
    raises an error naming the file and line."""
    path = Path(path)
    if not path.exists():
        return {}
    data = path.read_bytes()
    lines = data.split(b"\n")
    out: dict[str, Prediction] = {}
    good_end = 0
    for i, raw in enumerate(lines):
        if not raw.strip():
            good_end += len(raw) + 1
            continue
        try:
            pred = Prediction.from_dict(json.loads(raw))
        except (json.JSONDecodeError, TypeError, ValueError) as e:
            if i == len(lines) - 1:  # no newline after it: written partially when the run died
                if repair:
                    with open(path, "r+b") as f:
                        f.truncate(good_end)
                break
            raise PredictionStoreError(f"{path}: line {i + 1} is not a valid prediction ({e})") from e
        out[pred.uid] = pred
        good_end += len(raw) + 1
    return out


class PredictionStore:
    def __init__(self, directory: str | os.PathLike, config_hash: str, config: Mapping | None = None):
        self.dir = Path(directory)
        self.path = self.dir / "predictions.jsonl"
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "run.json"
        if meta.exists():
            old = json.loads(meta.read_text()).get("config_hash")
            if old != config_hash and self.path.exists() and self.path.stat().st_size:
                raise PredictionStoreError(
                    f"{self.path} holds predictions of another configuration (hash {old}, now "
                    f"{config_hash}); write to a new output directory or delete that folder")
        meta.write_text(json.dumps({"config_hash": config_hash, "config": config or {}}, indent=1))
        self.predictions = read_predictions(self.path, repair=True)

    def done(self) -> set[str]:
        return {u for u, p in self.predictions.items() if not p.failure}

    def append(self, preds: Iterable[Prediction]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            for p in preds:
                f.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
                f.flush()
                self.predictions[p.uid] = p
