"""The contracts every system, benchmark and metric of the suite implements.

`evals` imports nothing else of ours: the video-first model (`longvid`) and the modular baseline
(`baselines`) implement these protocols, and the runner builds them from config by `_target_`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Protocol, Sequence, runtime_checkable

# Task names. A benchmark produces samples of one task; a system declares the tasks it supports.
SUMMARIZATION = "summarization"  # whole video -> free text, scored against reference summaries
CAPTIONING = "captioning"        # one clip (a segment of a video) -> one sentence
MCQA = "mcqa"                    # video + question + options -> option index
RETRIEVAL = "retrieval"          # video <-> text; scored over a similarity matrix
TASKS = (SUMMARIZATION, CAPTIONING, MCQA, RETRIEVAL)


class ConfigError(ValueError):
    """A run cannot start as configured: the message names the key, file or `_target_` to fix. Raised before the
    first item is predicted; nothing is recorded."""


class InfrastructureError(RuntimeError):
    """Something the whole run depends on failed (a cache file, a server gone after retries, a full disk). Not an
    item's failure: the run stops with the file or URL named, and a rerun resumes where it stopped."""


@dataclass(frozen=True)
class Segment:
    """A time span of a video in seconds, with its annotated sentence if the benchmark has one."""

    start: float
    end: float
    sentence: str | None = None


@dataclass(frozen=True)
class Sample:
    """One evaluation item. `uid` is stable across runs: predictions files are keyed by it."""

    uid: str
    benchmark: str
    task: str
    video: str | None                  # absolute path of the video file (may not exist: reported)
    video_id: str | None = None        # the benchmark's own id of the video
    duration: float | None = None      # seconds, from the annotations
    clip: Segment | None = None        # for captioning: the segment to describe
    segments: tuple[Segment, ...] = ()  # annotated segments, in time order
    references: tuple[str, ...] = ()   # reference texts (summaries, captions)
    question: str | None = None
    options: tuple[str, ...] = ()
    answer: int | None = None          # None where the benchmark hides the answer
    category: str | None = None        # question type / kind (e.g. "local", "long-range")
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)   # more groupings for per-group accuracy:
                                       # dimension -> labels (several where an item has several, e.g. LVBench's types)
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"sample {self.uid!r}: unknown task {self.task!r}; valid: {TASKS}")
        if self.answer is not None and not 0 <= self.answer < len(self.options):
            raise ValueError(
                f"sample {self.uid!r}: answer index {self.answer} out of range for "
                f"{len(self.options)} options")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Prediction:
    """What a system said about one sample. A failed item has `failure` set and no output."""

    uid: str
    system: str
    text: str | None = None            # raw output text (summary, caption, or an answer's text)
    choice: int | None = None          # parsed option index for multiple choice; None = unparseable
    failure: str | None = None         # why no output was produced (missing video, system error, ...)
    seconds: float = 0.0               # wall time spent on this item
    provenance: Mapping[str, Any] = field(default_factory=dict)  # config hash, prompt version, model
    extra: Mapping[str, Any] = field(default_factory=dict)       # e.g. captions used, option scores

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Prediction":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"prediction for {d.get('uid')!r} has unknown keys {sorted(unknown)}")
        return cls(**d)


@runtime_checkable
class System(Protocol):
    """Takes samples, yields exactly one prediction per sample, in any order.

    Optional members the runner uses when present (generic defaults in brackets):
    - `needs_video: bool` — reads frames [True]; a row that reads none is never failed for a missing video;
    - `prepare(benchmark, samples)` — build plug-ins, load weights, check what can be checked (capabilities,
      option counts, caches) before the first item; raise `ConfigError` naming the key to fix;
    - `identity() -> dict` — what the system *is* (weights, prompts, sampling, plug-ins' identities), which guards a
      resume [its config without the keys that say how it runs: device, batch size, URLs, timeouts, ...];
    - `for_task(task) -> (system, config)` — a row served by one system per task: the runner checks, identifies
      and prepares the one serving the benchmark's task;
    - `close()` — release servers and engines."""

    name: str
    tasks: frozenset[str]

    def predict(self, samples: Sequence[Sample]) -> Iterator[Prediction]: ...


@dataclass(frozen=True)
class Clip:
    """Frames of one segment: uint8 array (T, H, W, 3) and its span in seconds."""

    frames: Any
    start: float
    end: float


@runtime_checkable
class Captioner(Protocol):
    """Clips -> one caption each (an empty caption is a failure, never cached). Optional: `identity()` — what keys
    its cached captions (weights, prompt, sampling) [`describe()`, else its config with file stamps]; `check()`."""

    def caption(self, clips: Sequence[Clip]) -> list[str]: ...


@dataclass(frozen=True)
class Sampling:
    """Decoding settings for an LLM. Deterministic by default."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    ignore_eos: bool = False   # always generate max_tokens (throughput benchmarks: equal output lengths)


# What an LLM backend can do (`LLMBackend.capabilities`)
CHAT = "chat"        # free text replies
SCORE = "score"      # log-likelihood of given option texts as the reply (multiple choice by likelihood)
CHOICE = "choice"    # a reply constrained to one of given strings (multiple choice by letter)


@runtime_checkable
class LLMBackend(Protocol):
    """An LLM behind any engine. It states what it can do, so a system checks `capabilities` against its task and
    mode before the first item instead of failing on every item; `identity()` names the model exactly (weights,
    dtype, ...: never just a display name) and keys every cached answer; `check()` opens caches, reaches servers
    and loads weights, raising an error that names the file or URL."""

    capabilities: frozenset[str]

    def identity(self) -> Mapping[str, Any]: ...

    def check(self) -> None: ...

    def chat(self, conversations: Sequence[Sequence[Mapping[str, str]]], sampling: Sampling,
             choice: Sequence[str] | None = None) -> list[str]: ...

    def score(self, conversations: Sequence[Sequence[Mapping[str, str]]], options: Sequence[Sequence[str]]
              ) -> list[list[tuple[float, int]]]: ...


@dataclass(frozen=True)
class MetricResult:
    """A corpus-level value and the per-item scores behind it (for paired statistics)."""

    name: str
    value: float
    per_item: Mapping[str, float]      # uid -> score (missing uid = item not scored)
    info: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Metric(Protocol):
    name: str

    def __call__(self, samples: Iterable[Sample], predictions: Mapping[str, Prediction]
                 ) -> list[MetricResult]: ...
