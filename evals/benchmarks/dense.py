"""Dense-caption benchmarks: YouCook2 and ActivityNet Captions, read from their official files.

Summarization target = the video's segment sentences ordered by start time, joined (the paper's
full-video summarization). Captioning = one sample per annotated segment.
"""
from __future__ import annotations

import numbers
from typing import Sequence

from evals.benchmarks.base import (DEFAULT_PATTERNS, AnnotationError, Benchmark, VideoResolver,
                                   check_unique, read_json, require)
from evals.contracts import CAPTIONING, SUMMARIZATION, Sample, Segment


def join_sentences(sentences: Sequence[str]) -> str:
    out = []
    for s in sentences:
        s = " ".join(s.split())
        if s and s[-1] not in ".!?":
            s += "."
        out.append(s)
    return " ".join(out)


def _span(seg, file, where) -> tuple[float, float]:
    if (not isinstance(seg, (list, tuple)) or len(seg) != 2
            or not all(isinstance(x, numbers.Real) and not isinstance(x, bool) for x in seg)):
        raise AnnotationError(file, where, f"segment must be [start, end] numbers, got {seg!r}")
    start, end = float(seg[0]), float(seg[1])
    if end < start:
        raise AnnotationError(file, where, f"segment ends before it starts: {seg!r}")
    return start, end


def _samples(name, task, file, vid, duration, segments: list[Segment], video, meta) -> list[Sample]:
    segments = sorted(segments, key=lambda s: (s.start, s.end))
    common = dict(benchmark=name, video=video, video_id=vid, duration=duration, meta=meta)
    if task == SUMMARIZATION:
        return [Sample(uid=vid, task=task, segments=tuple(segments),
                       references=(join_sentences([s.sentence for s in segments]),), **common)]
    return [Sample(uid=f"{vid}/{i}", task=task, clip=s, segments=tuple(segments),
                   references=(s.sentence,), **common) for i, s in enumerate(segments)]


class YouCook2(Benchmark):
    """`youcookii_annotations_trainval.json`: database -> id -> {duration, subset, recipe_type,
    annotations: [{segment: [s, e], id, sentence}], video_url}."""

    def __init__(self, annotations: str, video_root: str | None = None, split: str = "validation",
                 task: str = SUMMARIZATION, name: str = "youcook2",
                 video_patterns: Sequence[str] = DEFAULT_PATTERNS, limit: int | None = None):
        if task not in (SUMMARIZATION, CAPTIONING):
            raise ValueError(f"YouCook2 task must be summarization or captioning, got {task!r}")
        self.annotations, self.split, self.task, self.name, self.limit = annotations, split, task, name, limit
        self.resolve = VideoResolver(video_root, video_patterns)

    def _items(self, split: str):
        f = self.annotations
        db = require(read_json(f), "database", f, "top level", dict)
        for vid, item in db.items():
            where = f"database[{vid!r}]"
            if require(item, "subset", f, where, str) != split:
                continue
            segs = []
            for j, ann in enumerate(require(item, "annotations", f, where, list)):
                w = f"{where}.annotations[{j}]"
                start, end = _span(require(ann, "segment", f, w), f, w)
                segs.append(Segment(start, end, require(ann, "sentence", f, w, str)))
            yield vid, item, segs

    def load(self) -> list[Sample]:
        out = []
        for vid, item, segs in self._items(self.split):
            dur = float(require(item, "duration", self.annotations, f"database[{vid!r}]", (int, float)))
            video = self.resolve(vid, subset=item["subset"], recipe_type=item.get("recipe_type", ""))
            out += _samples(self.name, self.task, self.annotations, vid, dur, segs, video,
                            {"recipe_type": item.get("recipe_type")})
            if self.limit and len(out) >= self.limit:
                out = out[: self.limit]
                break
        if not out:
            raise AnnotationError(self.annotations, f"split {self.split!r}", "no videos in this split")
        return check_unique(out, self.annotations)

    def train_references(self) -> list[str]:
        if self.split == "training":
            return []
        return [join_sentences([s.sentence for s in sorted(segs, key=lambda s: s.start)])
                for _, _, segs in self._items("training")]


class ActivityNetCaptions(Benchmark):
    """`train.json` / `val_1.json` / `val_2.json`: id -> {duration, timestamps, sentences}."""

    def __init__(self, annotations: str, video_root: str | None = None, task: str = SUMMARIZATION,
                 name: str = "activitynet", video_patterns: Sequence[str] = DEFAULT_PATTERNS,
                 train_annotations: str | None = None, limit: int | None = None):
        if task not in (SUMMARIZATION, CAPTIONING):
            raise ValueError(f"ActivityNet task must be summarization or captioning, got {task!r}")
        self.annotations, self.task, self.name, self.limit = annotations, task, name, limit
        self.train_annotations = train_annotations
        self.resolve = VideoResolver(video_root, video_patterns)

    @staticmethod
    def _items(f):
        data = read_json(f)
        if not isinstance(data, dict):
            raise AnnotationError(f, "top level", "expected an object id -> {duration, timestamps, sentences}")
        for vid, item in data.items():
            where = f"[{vid!r}]"
            ts = require(item, "timestamps", f, where, list)
            sents = require(item, "sentences", f, where, list)
            if len(ts) != len(sents):
                raise AnnotationError(f, where, f"{len(ts)} timestamps but {len(sents)} sentences")
            segs = [Segment(*_span(t, f, f"{where}.timestamps[{j}]"), s.strip())
                    for j, (t, s) in enumerate(zip(ts, sents))]
            yield vid, item, segs

    def load(self) -> list[Sample]:
        out = []
        for vid, item, segs in self._items(self.annotations):
            dur = float(require(item, "duration", self.annotations, f"[{vid!r}]", (int, float)))
            out += _samples(self.name, self.task, self.annotations, vid, dur, segs, self.resolve(vid), {})
            if self.limit and len(out) >= self.limit:
                out = out[: self.limit]
                break
        return check_unique(out, self.annotations)

    def train_references(self) -> list[str]:
        if not self.train_annotations:
            return []
        return [join_sentences([s.sentence for s in sorted(segs, key=lambda s: s.start)])
                for _, _, segs in self._items(self.train_annotations)]
