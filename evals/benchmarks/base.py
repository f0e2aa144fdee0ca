"""Shared parts of the benchmark loaders: safe video resolution and clear annotation errors."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from evals.contracts import Sample


class AnnotationError(ValueError):
    """An annotation file is malformed. The message names the file and the item or key."""

    def __init__(self, file: str | os.PathLike, where: str, reason: str):
        self.file, self.where = str(file), where
        super().__init__(f"{file}: {where}: {reason}")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise AnnotationError(path, f"line {e.lineno} column {e.colno}", f"invalid JSON ({e.msg})") from e


def iter_jsonl(path: str | os.PathLike, what: str = "file"):
    """(line number, object) for every non-blank line of a jsonlines file; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            raise AnnotationError(path, f"line {n}", f"invalid JSON ({e.msg})") from e
        if not isinstance(d, dict):
            raise AnnotationError(path, f"line {n}", "expected a JSON object")
        yield n, d


def require(d: Any, key: str, file, where: str, types: type | tuple = object) -> Any:
    """d[key], or an AnnotationError naming the file, the item and the key."""
    if not isinstance(d, dict):
        raise AnnotationError(file, where, f"expected an object, got {type(d).__name__}")
    if key not in d:
        raise AnnotationError(file, where, f"missing key {key!r}")
    v = d[key]
    if not isinstance(v, types) or (isinstance(v, bool) and bool not in _as_tuple(types)):
        raise AnnotationError(file, where, f"key {key!r} has type {type(v).__name__}")
    return v


def _as_tuple(t) -> tuple:
    return t if isinstance(t, tuple) else (t,)


DEFAULT_PATTERNS = ("{id}.mp4", "{id}.mkv", "{id}.webm", "{id}.avi", "{id}.mov")


class VideoResolver:
    """Finds a video file under `root` by id. `patterns` are tried in order (format fields: `id` and any
    extra fields a loader passes, e.g. `subset`, `recipe_type`); the first existing file wins, otherwise
    the first candidate is returned and the runner reports it missing. Ids that would escape the root
    (absolute paths, `..`) are rejected."""

    def __init__(self, root: str | os.PathLike | None, patterns: Sequence[str] = DEFAULT_PATTERNS):
        self.root = None if root is None else Path(root).resolve()
        self.patterns = tuple(patterns)
        if not self.patterns:
            raise ValueError("video patterns must not be empty")

    def __call__(self, video_id: str, **fields) -> str | None:
        if self.root is None:
            return None
        if not video_id or "\x00" in video_id or os.path.isabs(video_id) or ".." in Path(video_id).parts:
            raise ValueError(f"video id {video_id!r} would escape the video root {self.root}")
        first = None
        for pattern in self.patterns:
            cand = (self.root / pattern.format(id=video_id, **fields)).resolve()
            if not cand.is_relative_to(self.root):
                raise ValueError(f"video id {video_id!r} would escape the video root {self.root}")
            if cand.is_file():
                return str(cand)
            first = first or str(cand)
        return first


class Benchmark:
    """Base of all loaders: `load()` returns the samples of the configured split, in a stable order."""

    name: str
    task: str

    def load(self) -> list[Sample]:
        raise NotImplementedError

    def train_references(self) -> list[str]:
        """Reference texts of the benchmark's training split, for prior baselines (may be empty)."""
        return []


def check_unique(samples: list[Sample], file) -> list[Sample]:
    seen = set()
    for s in samples:
        if s.uid in seen:
            raise AnnotationError(file, f"item {s.uid!r}", "duplicate uid")
        seen.add(s.uid)
    return samples
