"""MSR-VTT (retrieval, captioning: the full `MSRVTT_data.json`, or the 1k-A test split's CSV) and the suite's
generic jsonlines format."""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from numbers import Real
from pathlib import Path
from typing import Sequence

from evals.benchmarks.base import (DEFAULT_PATTERNS, AnnotationError, Benchmark, VideoResolver,
                                   iter_jsonl, read_json, read_text, require)
from evals.contracts import CAPTIONING, MCQA, RETRIEVAL, TASKS, Sample, Segment


class MSRVTT(Benchmark):
    """`{videos: [{video_id, split, ...}], sentences: [{sen_id, video_id, caption}]}`. One sample per video
    of the split, references = all its captions. For retrieval, `first_caption_only` keeps one caption per
    video (the usual 1k-A protocol uses one)."""

    def __init__(self, annotations: str, video_root: str | None = None, split: str = "test",
                 task: str = RETRIEVAL, name: str = "msrvtt", first_caption_only: bool = False,
                 video_ids: str | None = None, video_patterns: Sequence[str] = DEFAULT_PATTERNS,
                 limit: int | None = None):
        if task not in (RETRIEVAL, CAPTIONING):
            raise ValueError(f"MSR-VTT task must be retrieval or captioning, got {task!r}")
        self.annotations, self.split, self.task, self.name = annotations, split, task, name
        self.first_caption_only, self.video_ids, self.limit = first_caption_only, video_ids, limit
        self.resolve = VideoResolver(video_root, video_patterns)

    def items(self) -> list[Sample]:
        f = self.annotations
        data = read_json(f)
        videos = require(data, "videos", f, "top level", list)
        caps = defaultdict(list)
        for j, s in enumerate(require(data, "sentences", f, "top level", list)):
            where = f"sentences[{j}]"
            caps[require(s, "video_id", f, where, str)].append(
                (require(s, "sen_id", f, where), require(s, "caption", f, where, str).strip()))
        wanted = None
        if self.video_ids:  # optional list of ids (e.g. the 1k-A test split), one per line
            wanted = [l.strip() for l in Path(self.video_ids).read_text().splitlines() if l.strip()]
        by_id = {}
        for j, v in enumerate(videos):
            vid = require(v, "video_id", f, f"videos[{j}]", str)
            if wanted is not None or v.get("split") == self.split:
                by_id[vid] = v
        out = []
        for vid in (wanted if wanted is not None else by_id):
            if vid not in by_id:
                raise AnnotationError(self.video_ids, f"video {vid!r}", f"not in {f}")
            refs = [c for _, c in sorted(caps.get(vid, []), key=lambda x: x[0])]
            if not refs:
                raise AnnotationError(f, f"video {vid!r}", "has no sentences")
            if self.first_caption_only:
                refs = refs[:1]
            v = by_id[vid]
            dur = float(v["end time"]) - float(v["start time"]) if "end time" in v else None
            out.append(Sample(uid=vid, benchmark=self.name, task=self.task, video=self.resolve(vid),
                              video_id=vid, duration=dur, references=tuple(refs)))
        return out


class MSRVTTCsv(Benchmark):
    """The 1k-A test split as distributed (`MSRVTT_JSFUSION_test.csv`: `key,vid_key,video_id,sentence`, one row per
    video): one sample per video, its sentences as references, in the file's order."""

    def __init__(self, csv_file: str, video_root: str | None = None, task: str = RETRIEVAL, name: str = "msrvtt_1ka",
                 video_patterns: Sequence[str] = DEFAULT_PATTERNS, limit: int | None = None):
        if task not in (RETRIEVAL, CAPTIONING):
            raise ValueError(f"MSR-VTT task must be retrieval or captioning, got {task!r}")
        self.csv_file, self.task, self.name, self.limit = csv_file, task, name, limit
        self.resolve = VideoResolver(video_root, video_patterns)

    def source(self) -> str:
        return str(self.csv_file)

    def items(self) -> list[Sample]:
        f = self.csv_file
        reader = csv.DictReader(io.StringIO(read_text(f), newline=""))
        missing = [c for c in ("video_id", "sentence") if c not in (reader.fieldnames or [])]
        if missing:
            raise AnnotationError(f, "header", f"missing columns {missing} (expected key,vid_key,video_id,sentence)")
        refs: dict[str, list[str]] = {}
        for line, row in enumerate(reader, start=2):
            if row["video_id"] is None or row["sentence"] is None:
                raise AnnotationError(f, f"line {line}", "row has fewer columns than the header")
            refs.setdefault(row["video_id"].strip(), []).append(" ".join(row["sentence"].split()))
        return [Sample(uid=vid, benchmark=self.name, task=self.task, video=self.resolve(vid), video_id=vid,
                       references=tuple(r)) for vid, r in refs.items()]


class JsonlBenchmark(Benchmark):
    """The suite's generic format, one item per line:
    `{"uid", "video", "task", "references"?, "question"?, "options"?, "answer"?, "category"?,
      "start"?, "end"?, "duration"?}`; `video` is an id (resolved under `video_root` by the patterns)."""

    def __init__(self, file: str, task: str, video_root: str | None = None, name: str = "jsonl",
                 video_patterns: Sequence[str] = DEFAULT_PATTERNS, limit: int | None = None):
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; valid: {TASKS}")
        self.file, self.task, self.name, self.limit = file, task, name, limit
        self.resolve = VideoResolver(video_root, video_patterns)

    def source(self) -> str:
        return str(self.file)

    def items(self) -> list[Sample]:
        f = Path(self.file)
        out = []
        for line_no, d in iter_jsonl(f, "annotation file"):
            where = f"line {line_no}"
            get = lambda key, types, default=None: (require(d, key, f, where, types) if key in d and d[key] is not None
                                                     else default)
            task = get("task", str, self.task)
            if task != self.task:
                raise AnnotationError(f, where, f"task {task!r} but the benchmark is {self.task!r}")
            vid = require(d, "video", f, where, str)
            clip = Segment(float(get("start", Real)), float(get("end", Real))) if "start" in d and "end" in d else None
            opts = _strings(get("options", list, []), f, where, "options")
            ans = get("answer", int)
            if task == MCQA and ans is not None and not 0 <= ans < len(opts):
                raise AnnotationError(f, where, f"answer {ans!r} is not an index into {len(opts)} options")
            try:
                out.append(Sample(uid=str(require(d, "uid", f, where, (str, int))), benchmark=self.name, task=task,
                                  video=self.resolve(vid), video_id=vid, duration=get("duration", Real),
                                  clip=clip, references=_strings(get("references", list, []), f, where, "references"),
                                  question=get("question", str), options=opts, answer=ans,
                                  category=get("category", str)))
            except AnnotationError:
                raise
            except ValueError as e:
                raise AnnotationError(f, where, str(e)) from e
        return out


def _strings(values: list, file, where: str, key: str) -> tuple[str, ...]:
    bad = [v for v in values if not isinstance(v, str)]
    if bad:
        raise AnnotationError(file, where, f"key {key!r} must be a list of strings, has {bad[0]!r}")
    return tuple(values)
