"""A system: a class with `name`, `tasks` and `predict(samples)` yielding one `Prediction` per sample. Optional:
`needs_video = False` (reads no frames: never refused or failed for videos), `prepare(benchmark, samples)` (load
weights, check everything before the first item: raise `evals.contracts.ConfigError` naming the key),
`identity()` (what it *is*: guards resumed prediction files), `close()`.

This one answers every question with its longest option (in characters; of equally long ones, the first): a
text-only bias any table can show next to chance."""
from __future__ import annotations

from evals.contracts import MCQA, Prediction


class LongestOption:
    tasks = frozenset({MCQA})
    needs_video = False

    def __init__(self, name: str = "longest_option"):
        self.name = name

    def identity(self) -> dict:
        return {"rule": "longest option", "version": 1}

    def predict(self, samples):
        for s in samples:
            choice = max(range(len(s.options)), key=lambda i: len(s.options[i]))
            yield Prediction(uid=s.uid, system=self.name, choice=choice, text=s.options[choice])
