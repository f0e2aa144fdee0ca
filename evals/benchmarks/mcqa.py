"""Multiple-choice QA benchmarks, read from their official files: EgoSchema, NExT-QA, Perception Test."""
from __future__ import annotations

import csv
import io
import numbers
from typing import Mapping, Sequence

from evals.benchmarks.base import (DEFAULT_PATTERNS, AnnotationError, Benchmark, VideoResolver,
                                   read_json, read_text, require, warn_noise,
                                   warn_repeated_options)
from evals.contracts import MCQA, Sample


def _answer(value, n_options: int, file, where) -> int:
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, str)):
        raise AnnotationError(file, where, f"answer must be an option index, got {value!r}")
    try:
        idx = int(value)
    except ValueError:
        raise AnnotationError(file, where, f"answer must be an option index, got {value!r}") from None
    if not 0 <= idx < n_options:
        raise AnnotationError(file, where, f"answer index {idx} out of range for {n_options} options")
    return idx


class EgoSchema(Benchmark):
    """`questions.json`: [{q_uid, google_drive_id, question, "option 0".."option 4"}] and
    `subset_answers.json`: {q_uid: 0..4}. Questions without a public answer are kept (answer=None):
    they are predicted but not scored, and counted in the table footer. Videos are `<q_uid>.mp4`."""

    def __init__(self, questions: str, answers: str | None = None, video_root: str | None = None,
                 name: str = "egoschema", only_answered: bool = False,
                 video_patterns: Sequence[str] = DEFAULT_PATTERNS, limit: int | None = None,
                 categories: str | None = None, video_field: str = "q_uid"):
        self.questions, self.answers, self.name = questions, answers, name
        self.video_field = video_field  # official: videos are named by q_uid
        self.only_answered, self.limit, self.categories = only_answered, limit, categories
        self.task = MCQA
        self.resolve = VideoResolver(video_root, video_patterns)

    def source(self) -> str:
        return str(self.questions)

    def items(self) -> list[Sample]:
        f = self.questions
        qs = read_json(f)
        if not isinstance(qs, list):
            raise AnnotationError(f, "top level", "expected a list of questions")
        answers = {}
        if self.answers:
            answers = read_json(self.answers)
            if not isinstance(answers, dict):
                raise AnnotationError(self.answers, "top level", "expected an object q_uid -> answer")
        # Optional sidecar (not part of EgoSchema): q_uid -> category, e.g. the synthetic kinds.
        cats = read_json(self.categories) if self.categories else {}
        out = []
        for i, q in enumerate(qs):
            where = f"question [{i}]"
            uid = require(q, "q_uid", f, where, str)
            where = f"question {uid!r}"
            opts = tuple(require(q, f"option {k}", f, where, str).strip() for k in range(5))
            ans = None
            if uid in answers:
                ans = _answer(answers[uid], 5, self.answers, f"answer for {uid!r}")
            elif self.only_answered:
                continue
            vid = require(q, self.video_field, f, where, str)
            out.append(Sample(uid=uid, benchmark=self.name, task=MCQA, video=self.resolve(vid),
                              video_id=vid, question=require(q, "question", f, where, str).strip(),
                              options=opts, answer=ans, category=cats.get(uid)))
        stray = set(answers) - {q.get("q_uid") for q in qs if isinstance(q, dict)}
        if stray:
            raise AnnotationError(self.answers, f"answers for {sorted(stray)[:3]}",
                                  f"{len(stray)} answers name questions not in {f}")
        warn_repeated_options(f, out)
        return out


    def submission(self, samples: Sequence[Sample], choices: Mapping[str, int]) -> tuple[str, str]:
        """The Kaggle file of the full set (competition `egoschema-public`): `q_uid,answer`, answer 0-4."""
        return "submission.csv", "q_uid,answer\n" + "".join(f"{s.uid},{choices[s.uid]}\n" for s in samples
                                                              if s.uid in choices)


class NExTQA(Benchmark):
    """CSV with columns video,frame_count,width,height,question,answer,qid,type,a0..a4.
    `category` = the question's group as papers report it: causal (CW, CH), temporal (TN, TC, TP), descriptive
    (DL, DC, DO); groups: type (the eight, in scores.json). Videos: `<video_root>/<video>.mp4`, or with the official
    `map_vid_vidorID.json` (`video_map`: video -> "0101/2909445186") in its sub-folders."""

    GROUPS = {"C": "causal", "T": "temporal", "D": "descriptive"}

    def __init__(self, csv_file: str, video_root: str | None = None, name: str = "nextqa",
                 video_patterns: Sequence[str] = DEFAULT_PATTERNS, limit: int | None = None,
                 video_map: str | None = None):
        self.csv_file, self.name, self.limit, self.task, self.video_map = csv_file, name, limit, MCQA, video_map
        self.resolve = VideoResolver(video_root, video_patterns)

    def source(self) -> str:
        return str(self.csv_file)

    def items(self) -> list[Sample]:
        f = self.csv_file
        where_of = read_json(self.video_map, "NExT-QA video map") if self.video_map else None
        if where_of is not None and not isinstance(where_of, dict):
            raise AnnotationError(self.video_map, "top level", "expected an object video id -> folder/video id")
        need = ["video", "question", "answer", "qid", "type"] + [f"a{k}" for k in range(5)]
        out = []
        reader = csv.DictReader(io.StringIO(read_text(f), newline=""))
        missing = [c for c in need if c not in (reader.fieldnames or [])]
        if missing:
            raise AnnotationError(f, "header", f"missing columns {missing}")
        for line, row in enumerate(reader, start=2):
            where = f"line {line}"
            absent = [c for c in need if row.get(c) is None]
            if absent:
                raise AnnotationError(f, where, f"row has no value for columns {absent}")
            vid = row["video"].strip()
            path = vid
            if where_of is not None:
                if vid not in where_of or not isinstance(where_of[vid], str):
                    raise AnnotationError(self.video_map, f"video {vid!r}", f"not in the map (asked by {f} {where})")
                path = where_of[vid]
            opts = tuple(row[f"a{k}"].strip() for k in range(5))
            out.append(Sample(uid=f"{vid}_{row['qid'].strip()}", benchmark=self.name, task=MCQA,
                              video=self.resolve(path), video_id=vid,
                              question=row["question"].strip(), options=opts,
                              answer=_answer(row["answer"].strip(), 5, f, where),
                              category=self.GROUPS.get(row["type"].strip()[:1]),
                              groups={"type": (row["type"].strip(),)} if row["type"].strip() else {}))
        warn_repeated_options(f, out)
        return out


class PerceptionTestMC(Benchmark):
    """`mc_question` part of Perception Test: id -> {metadata: {video_id, ...}, mc_question:
    [{id, question, options, answer_id, area, reasoning, tag}]}. `category` = the question's area.
    Without answers (the held-out split) `answer_id` is absent: predicted, not scored."""

    def __init__(self, annotations: str, video_root: str | None = None, name: str = "perception_test",
                 video_patterns: Sequence[str] = DEFAULT_PATTERNS, limit: int | None = None):
        self.annotations, self.name, self.limit, self.task = annotations, name, limit, MCQA
        self.resolve = VideoResolver(video_root, video_patterns)

    def items(self) -> list[Sample]:
        f = self.annotations
        data = read_json(f)
        if not isinstance(data, dict):
            raise AnnotationError(f, "top level", "expected an object id -> video annotations")
        out = []
        for key, item in data.items():
            vid = require(require(item, "metadata", f, f"[{key!r}]", dict), "video_id", f,
                          f"[{key!r}].metadata", str)
            for j, q in enumerate(item.get("mc_question", [])):
                where = f"[{key!r}].mc_question[{j}]"
                opts = tuple(str(o) for o in require(q, "options", f, where, list))
                ans = q.get("answer_id")
                out.append(Sample(uid=f"{vid}/{require(q, 'id', f, where)}", benchmark=self.name,
                                  task=MCQA, video=self.resolve(vid), video_id=vid,
                                  question=require(q, "question", f, where, str), options=opts,
                                  answer=None if ans is None else _answer(ans, len(opts), f, where),
                                  category=q.get("area")))
        return out
