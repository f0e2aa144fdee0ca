"""Reference systems any table may include: they show what a number means.

- `ConstantChoice`: always the same option (multiple choice); with the footer's chance level it shows what
  answer-position bias alone scores.
- `TrainPrior`: a blind summarizer/captioner that writes the training split's most frequent sentences,
  in their usual order, without looking at the video.
- `PerTask`: one table row served by a different system per task (e.g. a video-to-text model's summarizer
  and its multiple-choice head).
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
        self.text: str | None = None

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
        self.sentences = top
        self.text = " ".join(top)      # joined as the references are (evals.benchmarks.dense.join_sentences)

    def predict(self, samples: Sequence[Sample]) -> Iterator[Prediction]:
        if self.text is None:
            raise RuntimeError("TrainPrior.prepare(benchmark) must run before predict")
        for s in samples:
            t0 = time.perf_counter()
            text = self.text if s.task == SUMMARIZATION else self.sentences[0]
            yield Prediction(uid=s.uid, system=self.name, text=text, seconds=time.perf_counter() - t0,
                             provenance={"rule": "most frequent training sentences"})


class PerTask:
    """`systems`: task -> system config (`_target_`, built here with this row's name) or system object."""

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

    @property
    def needs_video(self) -> bool:
        return any(getattr(s, "needs_video", True) for s in self.by_task.values())

    def identity(self) -> dict:
        from evals.store import config_identity

        return {task: s.identity() if hasattr(s, "identity") else config_identity(self.configs.get(task))
                for task, s in self.by_task.items()}

    def prepare(self, benchmark, samples: Sequence[Sample]) -> None:
        task = samples[0].task if samples else getattr(benchmark, "task", None)
        s = self.by_task.get(task)
        if s is not None and hasattr(s, "prepare"):
            s.prepare(benchmark, samples)

    def predict(self, samples: Sequence[Sample]) -> Iterator[Prediction]:
        for task in dict.fromkeys(s.task for s in samples):
            yield from self.by_task[task].predict([s for s in samples if s.task == task])

    def close(self) -> None:
        for s in self.by_task.values():
            if hasattr(s, "close"):
                s.close()
