"""Reference systems any table may include: they show what a number means.

- `ConstantChoice`: always the same option (multiple choice); with the footer's chance level it shows what
  answer-position bias alone scores.
- `TrainPrior`: a blind summarizer/captioner that writes the training split's most frequent sentences,
  in their usual order, without looking at the video.
- `PerTask`: one table row served by a different system per task (e.g. a video-to-text model's summarizer
  and its multiple-choice head).
- `FromPredictions`: a predictions file made elsewhere (another codebase, a published model) as a table row.
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Iterator, Sequence

from evals.contracts import CAPTIONING, MCQA, SUMMARIZATION, ConfigError, Prediction, Sample


class ConstantChoice:
    tasks = frozenset({MCQA})
    needs_video = False

    def __init__(self, name: str = "constant_choice", index: int = 0):
        self.name, self.index = name, int(index)

    def prepare(self, benchmark, samples: Sequence[Sample]) -> None:
        short = [s for s in samples if not 0 <= self.index < len(s.options)]
        if short:
            raise ConfigError(f"systems.{self.name}.index={self.index} is not an option of {len(short)} questions "
                              f"(e.g. {short[0].uid!r} has {len(short[0].options)} options; indices are 0-based)")

    def identity(self) -> dict:
        return {"rule": "constant choice", "index": self.index}

    def predict(self, samples: Sequence[Sample]) -> Iterator[Prediction]:
        for s in samples:
            yield Prediction(uid=s.uid, system=self.name, text=s.options[self.index], choice=self.index,
                             provenance={"rule": f"always option {self.index}"})


class TrainPrior:
    tasks = frozenset({SUMMARIZATION, CAPTIONING})
    needs_video = False

    def __init__(self, name: str = "train_prior", max_sentences: int | None = None):
        self.name, self.max_sentences = name, max_sentences
        self.priors: dict[str, list[str]] = {}     # benchmark name -> its training split's sentences

    def identity(self) -> dict:
        return {"rule": "most frequent training sentences", "max_sentences": self.max_sentences}

    def prepare(self, benchmark, samples: Sequence[Sample] = ()) -> None:
        paragraphs = benchmark.train_paragraphs()
        if not paragraphs:
            raise ValueError(f"TrainPrior needs training references; benchmark {benchmark.name!r} has none "
                             "(set its training annotations)")
        counts, positions, lengths = Counter(), defaultdict(list), []
        for para in paragraphs:
            sents = [" ".join(s.split()) for s in para if s.strip()]
            lengths.append(len(sents))
            for i, s in enumerate(sents):
                counts[s] += 1
                positions[s].append(i / max(1, len(sents) - 1))
        k = self.max_sentences or max(1, sorted(lengths)[len(lengths) // 2])
        top = [s for s, _ in counts.most_common(k)]
        top.sort(key=lambda s: sum(positions[s]) / len(positions[s]))
        self.priors[benchmark.name] = top

    def predict(self, samples: Sequence[Sample]) -> Iterator[Prediction]:
        for s in samples:
            if s.benchmark not in self.priors:
                raise RuntimeError(f"TrainPrior.prepare must run for benchmark {s.benchmark!r} before predict")
            t0 = time.perf_counter()
            top = self.priors[s.benchmark]
            text = " ".join(top) if s.task == SUMMARIZATION else top[0]   # joined as the references are
            yield Prediction(uid=s.uid, system=self.name, text=text, seconds=time.perf_counter() - t0,
                             provenance={"rule": "most frequent training sentences"})


class PerTask:
    """`systems`: task -> system config (`_target_`, built here with this row's name) or system object. The runner
    asks `for_task(task)` for the one it runs on a benchmark (its needs, identity and preparation are that one's)."""

    def __init__(self, systems, name: str = "per_task"):
        from hydra.utils import instantiate
        from omegaconf import DictConfig, OmegaConf

        if not systems:
            raise ValueError(f"PerTask {name!r}: no systems given")
        self.name = name
        self.by_task, self.configs = {}, {}
        for task, sys_ in dict(systems).items():
            if isinstance(sys_, (dict, DictConfig)):
                self.configs[task] = OmegaConf.to_container(sys_, resolve=True) if isinstance(sys_, DictConfig) else sys_
            built = instantiate(sys_, name=name) if isinstance(sys_, (dict, DictConfig)) else sys_
            if task not in built.tasks:
                raise ValueError(f"PerTask {name!r}: the system for {task!r} ({type(built).__name__}) does not "
                                 f"support it (it supports {sorted(built.tasks)})")
            self.by_task[task] = built
        self.tasks = frozenset(self.by_task)

    def for_task(self, task: str):
        """(the system serving `task`, its config or None): the runner checks, identifies and runs that one."""
        return self.by_task[task], self.configs.get(task)

    def predict(self, samples: Sequence[Sample]) -> Iterator[Prediction]:
        for task in dict.fromkeys(s.task for s in samples):
            yield from self.by_task[task].predict([s for s in samples if s.task == task])

    def close(self) -> None:
        for s in self.by_task.values():
            if hasattr(s, "close"):
                s.close()


class FromPredictions:
    """A predictions file made elsewhere as a table row, with the same parsing, statistics and report: jsonlines,
    one item per line, `{"uid": ..., "text": ...}` (a summary, a caption, or a reply for the answer parser) or
    `{"uid": ..., "choice": 2}` (a 0-based option index), or both. An item the file lacks is this row's failure; a
    file without any item of a benchmark is refused before the run. Its identity is the file's content."""

    needs_video = False

    def __init__(self, path: str, name: str = "from_predictions",
                 tasks: Sequence[str] = (SUMMARIZATION, CAPTIONING, MCQA)):
        unknown = [t for t in tasks if t not in (SUMMARIZATION, CAPTIONING, MCQA)]
        if unknown:
            raise ValueError(f"systems.{name}.tasks: unknown {unknown}; valid: {[SUMMARIZATION, CAPTIONING, MCQA]}")
        self.path, self.name, self.tasks = str(path), name, frozenset(tasks)
        self._rows: dict[str, tuple[str | None, int | None]] | None = None

    def _read(self) -> dict[str, tuple[str | None, int | None]]:
        from evals.benchmarks.base import AnnotationError, iter_jsonl, require

        if self._rows is None:
            rows = {}
            for n, d in iter_jsonl(self.path, "predictions file"):
                where = f"line {n}"
                uid = str(require(d, "uid", self.path, where, (str, int)))
                if d.get("text") is None and d.get("choice") is None:
                    raise AnnotationError(self.path, where, "needs a `text` or a `choice`")
                text = require(d, "text", self.path, where, str) if d.get("text") is not None else None
                choice = require(d, "choice", self.path, where, int) if d.get("choice") is not None else None
                if uid in rows:
                    raise AnnotationError(self.path, where, f"uid {uid!r} again")
                rows[uid] = (text, choice)
            self._rows = rows
        return self._rows

    def identity(self) -> dict:
        import hashlib
        import os

        with open(self.path, "rb") as f:
            return {"file": os.path.basename(self.path), "sha1": hashlib.file_digest(f, "sha1").hexdigest()}

    def prepare(self, benchmark, samples: Sequence[Sample]) -> None:
        rows = self._read()
        if not any(s.uid in rows for s in samples):
            raise ConfigError(f"{self.path} has no prediction for any of the {len(samples)} items of "
                              f"{benchmark.name} (its uids look like {samples[0].uid!r})")

    def predict(self, samples: Sequence[Sample]) -> Iterator[Prediction]:
        rows = self._read()
        for s in samples:
            if s.uid not in rows:
                yield Prediction(uid=s.uid, system=self.name, failure=f"no prediction in {self.path}")
                continue
            text, choice = rows[s.uid]
            if choice is not None and not 0 <= choice < len(s.options):
                yield Prediction(uid=s.uid, system=self.name, failure=f"choice {choice} is not an option index "
                                 f"(0..{len(s.options) - 1})")
                continue
            yield Prediction(uid=s.uid, system=self.name, text=text, choice=choice if s.task == MCQA else None)
