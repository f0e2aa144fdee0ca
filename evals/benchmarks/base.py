"""Shared parts of the benchmark loaders: reading the official files strictly (a malformed file is an error naming
the file and the item; duplicate JSON keys and non-UTF-8 bytes too), warnings for their known noise (one per
kind and file, with the count and the first ids), and safe video resolution."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

from evals.contracts import Sample


class AnnotationError(ValueError):
    """An annotation file is malformed. The message names the file and the item or key."""

    def __init__(self, file: str | os.PathLike, where: str, reason: str):
        self.file, self.where, self.reason = str(file), where, reason
        super().__init__(f"{file}: {where}: {reason}")


class AnnotationWarning(UserWarning):
    """Known noise in an official file, tolerated (repaired or kept) and reported once."""


def warn_noise(file, what: str, ids: Sequence[str], action: str) -> None:
    """One warning for `len(ids)` items of `file` with the same quirk: the count, the first ids, what was done."""
    if ids:
        shown = ", ".join(map(str, ids[:5])) + (", ..." if len(ids) > 5 else "")
        warnings.warn(f"{file}: {len(ids)} {what} ({shown}): {action}", AnnotationWarning, stacklevel=3)


def warn_repeated_options(file, samples: Sequence[Sample]) -> None:
    """Official files have a few questions that list one option's text twice (NExT-QA val: 3, Video-MME: 10): kept
    as they are (scored by index; a reply naming that text is ambiguous, and so is a tie of likelihoods)."""
    warn_noise(file, "questions list the same option text twice", [s.uid for s in samples
                                                                      if len(set(s.options)) < len(s.options)],
               "kept; a reply or likelihood that cannot tell the copies apart is unparseable")


def read_text(path: str | os.PathLike, what: str = "annotation file") -> str:
    """A text file's content, UTF-8 (a leading byte-order mark is dropped); a byte that is not UTF-8 is an
    error naming the file, the line and the byte offset."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise AnnotationError(path, f"line {line} (byte {e.start})",
                              f"not UTF-8: byte {data[e.start:e.start + 1]!r} ({e.reason})") from None


def _unique_keys(file):
    def hook(pairs):
        seen = set()
        for k, _ in pairs:
            if k in seen:   # json.load would keep the last one silently
                raise AnnotationError(file, f"key {k!r}", "appears twice in the same object")
            seen.add(k)
        return dict(pairs)
    return hook


def read_json(path: str | os.PathLike, what: str = "annotation file") -> Any:
    path = Path(path)
    text = read_text(path, what)
    try:
        return json.loads(text, object_pairs_hook=_unique_keys(path))
    except json.JSONDecodeError as e:
        raise AnnotationError(path, f"line {e.lineno} column {e.colno}", f"invalid JSON ({e.msg})") from e


def iter_jsonl(path: str | os.PathLike, what: str = "file"):
    """(line number, object) for every non-blank line of a jsonlines file; errors name the file and line."""
    import jsonlines

    path = Path(path)
    loads = lambda line: json.loads(line, object_pairs_hook=_unique_keys(path))
    for n, line in enumerate(read_text(path, what).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            d = jsonlines.Reader([line], loads=loads).read(type=dict)
        except jsonlines.InvalidLineError as e:
            cause = e.__cause__
            reason = (f"{cause.where} {cause.reason}" if isinstance(cause, AnnotationError) else
                      "expected a JSON object" if cause is None else f"invalid JSON ({cause})")
            raise AnnotationError(path, f"line {n}", reason) from None
        yield n, d


def require(d: Any, key: str, file, where: str, types: type | tuple = object) -> Any:
    """d[key], or an AnnotationError naming the file, the item and the key (also when it has the wrong type:
    a string where a list is expected is an error, never a list of characters)."""
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
    (absolute paths, `..`) are rejected. Containment is decided on the *path*, not on where a symlink points:
    datasets on shared storage are usually folders of symlinks."""

    def __init__(self, root: str | os.PathLike | None, patterns: Sequence[str] = DEFAULT_PATTERNS):
        self.root = None if root is None else Path(os.path.abspath(root))
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
            cand = Path(os.path.normpath(self.root / pattern.format(id=video_id, **fields)))
            if not cand.is_relative_to(self.root):
                raise ValueError(f"video id {video_id!r} would escape the video root {self.root}")
            if cand.is_file():
                return str(cand)
            first = first or str(cand)
        return first


class Benchmark:
    """Base of all loaders. A loader implements `items()`: every sample of its configured split, in the file's
    stable order. `load()`, what everyone calls, adds the generic rules once: uids unique across all items (a
    duplicate is an error naming `source()`, the annotation file), then the first `limit` items."""

    name: str
    task: str
    limit: int | None = None
    aggregates: Mapping[str, str] = {}    # official macro averages: name -> grouping ("category" or a Sample.groups key)
    table_groups: tuple[str, ...] = ()    # Sample.groups dimensions whose per-label accuracies the table shows

    def items(self) -> list[Sample]:
        raise NotImplementedError

    def source(self) -> str:
        """The file that errors about items name."""
        return str(getattr(self, "annotations", None) or self.name)

    def load(self) -> list[Sample]:
        out = list(self.items())
        seen: set[str] = set()
        for s in out:
            if s.uid in seen:
                raise AnnotationError(self.source(), f"item {s.uid!r}", "duplicate uid")
            seen.add(s.uid)
        return out[: self.limit] if self.limit else out

    def train_paragraphs(self) -> list[list[str]]:
        """The sentences of each training video (reference order), for prior baselines (may be empty)."""
        return []

    def submission(self, samples: Sequence[Sample], choices: Mapping[str, int]) -> tuple[str, str] | None:
        """(file name, content) of the official submission file for the answers a row gave (uid -> option index;
        items without one are left out, never filled in), for benchmarks whose answers are hidden; None if none."""
        return None
