"""Subtitles, the second text channel of a video: read from the benchmarks' files (SRT, and LongVideoBench's JSON
forms) and cut to what a system sees — the lines overlapping a segment (a captioned segment of the modular
baseline) or shown at the timestamps of the frames a model reads (Video-MME's protocol with subtitles).

A system that uses them names it in its identity (so answers with and without subtitles are never mixed) and the
table's footer says which rows read them."""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from evals.benchmarks.base import AnnotationError, read_json, read_text


@dataclass(frozen=True)
class Line:
    start: float      # seconds
    end: float
    text: str


_TIME = re.compile(r"^(\d+):(\d{1,2}):(\d{1,2})(?:[.,](\d+))?$")
_ARROW = re.compile(r"^\s*(\S+)\s*-->\s*(\S+)")


def _seconds(value: str, file, where: str) -> float:
    m = _TIME.match(value.strip())
    if not m:
        raise AnnotationError(file, where, f"time {value!r} is not HH:MM:SS[,mmm]")
    h, mi, s, frac = m.groups()
    return int(h) * 3600 + int(mi) * 60 + int(s) + (float(f"0.{frac}") if frac else 0.0)


def _srt(path: Path) -> list[Line]:
    """SRT blocks: an optional index line, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, then text lines up to a blank line.
    Markup is kept as written; the text lines of a block are joined by spaces."""
    out, block, where = [], None, ""
    for n, raw in enumerate(read_text(path, "subtitle file").splitlines() + [""], start=1):
        line = raw.strip()
        m = _ARROW.match(line)
        if m:
            where = f"line {n}"
            block = [_seconds(m[1], path, where), _seconds(m[2], path, where), []]
        elif not line:
            if block and block[2]:
                out.append(Line(block[0], block[1], " ".join(block[2])))
            block = None
        elif block is not None:
            block[2].append(line)
    return out


def _json(path: Path) -> list[Line]:
    """LongVideoBench's subtitles: a list of `{"timestamp": [start, end], "text"}` (seconds; an `end` that is not
    a number means "to the end": +inf) or `{"start": "HH:MM:SS.xx", "end": ..., "line"}`."""
    data = read_json(path, "subtitle file")
    if not isinstance(data, list):
        raise AnnotationError(path, "top level", "expected a list of subtitle entries")
    out = []
    for i, d in enumerate(data):
        where = f"entry {i}"
        if isinstance(d, dict) and "timestamp" in d and "text" in d:
            start, end = (list(d["timestamp"]) + [None, None])[:2]
            if not isinstance(start, (int, float)):
                raise AnnotationError(path, where, f"timestamp start {start!r} is not a number")
            end = float(end) if isinstance(end, (int, float)) else float("inf")
            out.append(Line(float(start), end, " ".join(str(d["text"]).split())))
        elif isinstance(d, dict) and {"start", "end", "line"} <= set(d):
            out.append(Line(_seconds(str(d["start"]), path, where), _seconds(str(d["end"]), path, where),
                            " ".join(str(d["line"]).split())))
        else:
            raise AnnotationError(path, where, "expected {timestamp: [start, end], text} or {start, end, line}")
    return out


def read_subtitles(path: str | Path, offset: float = 0.0) -> list[Line]:
    """The lines of a subtitle file (.srt or .json), in time order, shifted by `offset` seconds (LongVideoBench's
    `starting_timestamp_for_subtitles`: the subtitle clock starts that far into the video). Read once per file
    version: every question about a video and every row of the process share it."""
    st = os.stat(path)
    return list(_read(str(path), st.st_size, st.st_mtime_ns, float(offset)))


@functools.lru_cache(maxsize=256)
def _read(path: str, size: int, mtime_ns: int, offset: float) -> tuple[Line, ...]:
    lines = _json(Path(path)) if path.endswith(".json") else _srt(Path(path))
    return tuple(sorted((Line(l.start - offset, l.end - offset, l.text) for l in lines if l.text),
                        key=lambda l: (l.start, l.end)))


def check_available(row: str, benchmark, samples) -> None:
    """Before a row that reads subtitles runs: a benchmark none of whose items has a subtitle file is refused."""
    from evals.contracts import ConfigError

    if samples and not any(s.meta.get("subtitles") for s in samples):
        raise ConfigError(f"systems.{row}.subtitles=true but no item of {getattr(benchmark, 'name', '?')} has a "
                          "subtitle file: set the benchmark's subtitle_root (or subtitles=false)")


def overlapping(lines: Iterable[Line], start: float, end: float) -> list[Line]:
    """The lines shown at any moment of [start, end]."""
    return [l for l in lines if l.start <= end and l.end >= start]


def at_times(lines: Iterable[Line], times: Sequence[float]) -> list[Line]:
    """The lines on screen at any of `times` (the timestamps of the frames a model reads)."""
    return [l for l in lines if any(l.start <= t <= l.end for t in times)]


def as_text(lines: Iterable[Line]) -> str:
    """Distinct consecutive lines joined by spaces (a line repeated across segments is said once per segment)."""
    out: list[str] = []
    for l in lines:
        if not out or out[-1] != l.text:
            out.append(l.text)
    return " ".join(out)
