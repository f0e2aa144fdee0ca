"""Dense-caption benchmarks: YouCook2 and ActivityNet Captions, read from their official files.

Summarization target (the paper's full-video summarization) = one paragraph per video, the paragraph the
community evaluates against, with nothing added: each sentence's whitespace normalised, joined by single spaces.
- YouCook2: the segment sentences in start-time order (the official file already has them so; a stable sort);
- ActivityNet Captions: the sentences in the annotation file's order (ActivityNet-Entities' paragraph files,
  `anet_entities_val_{1,2}_para.json`, are exactly this; sorting by time would change ~6% of val_1's paragraphs).
`Sample.segments` are always in time order (what a system that captions segments reads).
Captioning = one sample per annotated segment, uid `<video id>/<index in the file>`.

Known noise in ActivityNet's `train.json` is repaired, never rejected, with one warning per kind: reversed spans
(end < start, 2 events) are swapped; zero-length spans (2 events) are kept for summaries and, as captioning clips,
widened to `min_clip` seconds around their instant.
"""
from __future__ import annotations

import numbers
from typing import Sequence

from evals.benchmarks.base import (DEFAULT_PATTERNS, AnnotationError, Benchmark, VideoResolver,
                                   read_json, require, warn_noise)
from evals.contracts import CAPTIONING, SUMMARIZATION, Sample, Segment

# ActivityNet ids carry a "v_" prefix; downloads are often named by the bare YouTube id
ANET_PATTERNS = DEFAULT_PATTERNS + tuple(p.replace("{id}", "{youtube_id}") for p in DEFAULT_PATTERNS)


def join_sentences(sentences: Sequence[str]) -> str:
    """One paragraph: each sentence's whitespace runs collapsed (the official files have leading spaces and
    embedded newlines), joined by single spaces; nothing added, nothing reordered."""
    return " ".join(t for t in (" ".join(s.split()) for s in sentences) if t)


def _span(seg, file, where) -> tuple[float, float]:
    if (not isinstance(seg, (list, tuple)) or len(seg) != 2
            or not all(isinstance(x, numbers.Real) and not isinstance(x, bool) for x in seg)):
        raise AnnotationError(file, where, f"segment must be [start, end] numbers, got {seg!r}")
    return float(seg[0]), float(seg[1])


class _Dense(Benchmark):
    """Shared by the two loaders: items -> samples, noise repaired and reported once per load."""

    min_clip = 1.0
    file_order = False      # the reference paragraph keeps the file's sentence order (else start-time order)

    def _in_reference_order(self, segments: list[Segment]) -> list[Segment]:
        return segments if self.file_order else sorted(segments, key=lambda s: s.start)   # stable: ties keep order

    def _segments(self, vid: str, spans: list[tuple[float, float]], sentences: list[str], noise: dict
                  ) -> list[Segment]:
        out = []
        for j, ((start, end), sent) in enumerate(zip(spans, sentences)):
            if end < start:
                noise["reversed"].append(f"{vid}[{j}]")
                start, end = end, start
            elif end == start:
                noise["zero"].append(f"{vid}[{j}]")
            out.append(Segment(start, end, sent))
        return out

    def _report(self, file, noise: dict) -> None:
        warn_noise(file, "events end before they start", noise["reversed"], "start and end swapped")
        warn_noise(file, "events have zero length", noise["zero"],
                   "kept in summaries" + (f"; as captioning clips widened to {self.min_clip:g} s around the instant"
                                          if self.task == CAPTIONING else ""))

    def _samples(self, vid: str, duration: float, segments: list[Segment], video, meta) -> list[Sample]:
        in_time = sorted(segments, key=lambda s: s.start)      # stable: ties keep the file's order
        common = dict(benchmark=self.name, video=video, video_id=vid, duration=duration, meta=meta,
                      segments=tuple(in_time))
        if self.task == SUMMARIZATION:
            paragraph = join_sentences([s.sentence for s in self._in_reference_order(segments)])
            return [Sample(uid=vid, task=SUMMARIZATION, references=(paragraph,), **common)]
        return [Sample(uid=f"{vid}/{j}", task=CAPTIONING, clip=self._clip(s, duration),
                       references=(join_sentences([s.sentence]),), **common) for j, s in enumerate(segments)]

    def _clip(self, s: Segment, duration: float) -> Segment:
        if s.end > s.start:
            return s
        half = self.min_clip / 2
        start = max(0.0, min(s.start - half, duration - self.min_clip))
        return Segment(start, min(duration, start + self.min_clip), s.sentence)


class YouCook2(_Dense):
    """`youcookii_annotations_trainval.json`: database -> id -> {duration, subset, recipe_type,
    annotations: [{segment: [s, e], id, sentence}], video_url}."""

    def __init__(self, annotations: str, video_root: str | None = None, split: str = "validation",
                 task: str = SUMMARIZATION, name: str = "youcook2",
                 video_patterns: Sequence[str] = DEFAULT_PATTERNS, limit: int | None = None):
        if task not in (SUMMARIZATION, CAPTIONING):
            raise ValueError(f"YouCook2 task must be summarization or captioning, got {task!r}")
        self.annotations, self.split, self.task, self.name, self.limit = annotations, split, task, name, limit
        self.resolve = VideoResolver(video_root, video_patterns)

    def _items(self, split: str) -> list[tuple[str, dict, list[Segment]]]:
        f = self.annotations
        db = require(read_json(f), "database", f, "top level", dict)
        noise, out = {"reversed": [], "zero": []}, []
        for vid, item in db.items():
            where = f"database[{vid!r}]"
            if require(item, "subset", f, where, str) != split:
                continue
            spans, sents = [], []
            for j, ann in enumerate(require(item, "annotations", f, where, list)):
                w = f"{where}.annotations[{j}]"
                spans.append(_span(require(ann, "segment", f, w), f, w))
                sents.append(require(ann, "sentence", f, w, str))
            out.append((vid, item, self._segments(vid, spans, sents, noise)))
        self._report(f, noise)
        return out

    def items(self) -> list[Sample]:
        out = []
        for vid, item, segs in self._items(self.split):
            dur = float(require(item, "duration", self.annotations, f"database[{vid!r}]", (int, float)))
            video = self.resolve(vid, subset=item["subset"], recipe_type=item.get("recipe_type", ""))
            out += self._samples(vid, dur, segs, video, {"recipe_type": item.get("recipe_type")})
        if not out:
            raise AnnotationError(self.annotations, f"split {self.split!r}", "no videos in this split")
        return out

    def train_paragraphs(self) -> list[list[str]]:
        if self.split == "training":
            return []
        return [[s.sentence for s in self._in_reference_order(segs)] for _, _, segs in self._items("training")]


class ActivityNetCaptions(_Dense):
    """`train.json` / `val_1.json` / `val_2.json`: id -> {duration, timestamps, sentences}."""

    file_order = True

    def __init__(self, annotations: str, video_root: str | None = None, task: str = SUMMARIZATION,
                 name: str = "activitynet", video_patterns: Sequence[str] = ANET_PATTERNS,
                 train_annotations: str | None = None, limit: int | None = None, min_clip: float = 1.0):
        if task not in (SUMMARIZATION, CAPTIONING):
            raise ValueError(f"ActivityNet task must be summarization or captioning, got {task!r}")
        if not min_clip > 0:
            raise ValueError(f"min_clip must be > 0 seconds, got {min_clip}")
        self.annotations, self.task, self.name, self.limit = annotations, task, name, limit
        self.train_annotations, self.min_clip = train_annotations, float(min_clip)
        self.resolve = VideoResolver(video_root, video_patterns)

    def _items(self, f) -> list[tuple[str, dict, list[Segment]]]:
        data = read_json(f)
        if not isinstance(data, dict):
            raise AnnotationError(f, "top level", "expected an object id -> {duration, timestamps, sentences}")
        noise, out = {"reversed": [], "zero": []}, []
        for vid, item in data.items():
            where = f"[{vid!r}]"
            ts = require(item, "timestamps", f, where, list)
            sents = require(item, "sentences", f, where, list)
            if len(ts) != len(sents):
                raise AnnotationError(f, where, f"{len(ts)} timestamps but {len(sents)} sentences")
            for j, s in enumerate(sents):
                if not isinstance(s, str):
                    raise AnnotationError(f, f"{where}.sentences[{j}]", f"expected a string, got {type(s).__name__}")
            spans = [_span(t, f, f"{where}.timestamps[{j}]") for j, t in enumerate(ts)]
            out.append((vid, item, self._segments(vid, spans, sents, noise)))
        self._report(f, noise)
        return out

    def items(self) -> list[Sample]:
        out = []
        for vid, item, segs in self._items(self.annotations):
            dur = float(require(item, "duration", self.annotations, f"[{vid!r}]", (int, float)))
            video = self.resolve(vid, youtube_id=vid.removeprefix("v_"))
            out += self._samples(vid, dur, segs, video, {})
        return out

    def train_paragraphs(self) -> list[list[str]]:
        if not self.train_annotations:
            return []
        return [[s.sentence for s in self._in_reference_order(segs)]
                for _, _, segs in self._items(self.train_annotations)]
