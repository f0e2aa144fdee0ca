"""The long-video benchmarks papers report in 2026, read from the authors' files unchanged: MLVU, Video-MME,
LongVideoBench, LVBench. Each reports the official aggregate and the official breakdowns (`Sample.groups`), and
tolerates its files' known noise with one warning per kind (never a silent fix, never a rejection)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from evals.benchmarks.base import (AnnotationError, Benchmark, VideoResolver, iter_jsonl, read_json, require,
                                   warn_noise, warn_repeated_options)
from evals.contracts import CAPTIONING, MCQA, SUMMARIZATION, Sample


def _norm(text: str) -> str:
    return " ".join(text.split())


class MLVU(Benchmark):
    """MLVU dev: the authors' `json/` folder, one file per task (`1_plotQA.json` ... `9_summary.json`), each a list of
    `{video, duration, question, candidates, answer, question_type}`. The answer is the correct option's *text*.

    task=mcqa: the 7 multiple-choice tasks (category = question_type); the headline **M-Avg is the unweighted mean of
    the 7 task accuracies** (not the micro average, also shown). The answer's index is the candidate equal to it
    (whitespace collapsed); an answer that matches no candidate, or several (a repeated candidate), is *not* mapped:
    the item is predicted and not scored, and a warning names it. task=summarization: `summary` (the whole video);
    task=captioning: `subPlot` (describe the scene the question names: `Sample.question`, no time span). uids:
    `<question_type>/<index in its file>` (the files have no ids; two ego records repeat a video and question).
    Videos: `<video_root>/<file stem>/<video>` (the download's layout) or `<video_root>/<video>`."""

    GENERATION = {SUMMARIZATION: "summary", CAPTIONING: "subPlot"}
    aggregates = {"M-Avg": "category"}

    def __init__(self, json_dir: str, video_root: str | None = None, task: str = MCQA, name: str = "mlvu",
                 video_patterns: Sequence[str] = ("{folder}/{id}", "{id}"), limit: int | None = None):
        if task not in (MCQA, SUMMARIZATION, CAPTIONING):
            raise ValueError(f"MLVU task must be mcqa, summarization or captioning, got {task!r}")
        self.json_dir, self.task, self.name, self.limit = Path(json_dir), task, name, limit
        self.resolve = VideoResolver(video_root, video_patterns)

    def source(self) -> str:
        return str(self.json_dir)

    def items(self) -> list[Sample]:
        files = sorted(self.json_dir.glob("*.json"))
        if not files:
            raise FileNotFoundError(f"MLVU json folder has no .json files: {self.json_dir}")
        out: list[Sample] = []
        noise: dict[str, list[str]] = {"absent": [], "twice": [], "repeated": [], "empty": [], "spaced": []}
        for f in files:
            records = read_json(f)
            if not isinstance(records, list):
                raise AnnotationError(f, "top level", "expected a list of questions")
            for i, r in enumerate(records):
                where = f"[{i}]"
                qtype = require(r, "question_type", f, where, str)
                generation = "candidates" not in r
                if (self.task == MCQA) == generation or (generation and qtype != self.GENERATION[self.task]):
                    continue
                vid = require(r, "video", f, where, str)
                common = dict(uid=f"{qtype}/{i}", benchmark=self.name, task=self.task, video_id=vid,
                              video=self.resolve(vid, folder=f.stem),
                              duration=float(require(r, "duration", f, where, (int, float))),
                              question=require(r, "question", f, where, str), category=qtype)
                answer = require(r, "answer", f, where, str)
                if generation:
                    out.append(Sample(references=(answer,), meta={"scoring_points": r.get("scoring_points", [])},
                                      **common))
                    continue
                options = tuple(require(r, "candidates", f, where, list))
                if not all(isinstance(o, str) for o in options):
                    raise AnnotationError(f, where, "candidates must be strings")
                hits = [k for k, o in enumerate(options) if _norm(o) == _norm(answer)]
                uid = common["uid"]
                if not common["question"].strip() and not any(o.strip() for o in options):
                    noise["empty"].append(uid)
                if len(set(map(_norm, options))) < len(options):
                    noise["repeated"].append(uid)
                if not hits:
                    noise["absent"].append(uid)
                elif len(hits) > 1:
                    noise["twice"].append(uid)
                elif options[hits[0]] != answer:
                    noise["spaced"].append(uid)
                out.append(Sample(options=options, answer=hits[0] if len(hits) == 1 else None, **common))
        where = str(self.json_dir)
        warn_noise(where, "answers match no candidate", noise["absent"], "kept, not scored (an answer is never "
                   "mapped to a nearby text)")
        warn_noise(where, "answers match two or more candidates", noise["twice"], "kept, not scored (which copy "
                   "is meant cannot be told)")
        warn_noise(where, "questions repeat a candidate's text", noise["repeated"], "kept as they are")
        warn_noise(where, "records have an empty question and empty candidates", noise["empty"], "kept, not scored")
        warn_noise(where, "answers equal their candidate only up to spaces", noise["spaced"], "matched with "
                   "whitespace collapsed (the texts are kept as written)")
        return out


def _subtitle_file(root: Path | None, name) -> str | None:
    """The item's subtitle file under `root` if it exists (some videos have none), else None."""
    f = root / name if root is not None and isinstance(name, str) else None
    return str(f) if f is not None and f.is_file() else None


def _rows(path: Path) -> list:
    """The rows of a parquet file (pyarrow) or of a JSON list with the same fields."""
    if path.suffix == ".parquet":
        if not path.is_file():
            raise FileNotFoundError(f"annotation file not found: {path}")
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    rows = read_json(path)
    if not isinstance(rows, list):
        raise AnnotationError(path, "top level", "expected a list of rows")
    return rows


_LETTERED = re.compile(r"^([A-Z])\. ?(.*)$", re.S)


class VideoMME(Benchmark):
    """Video-MME: the authors' rows (`videomme/test-*.parquet`, or the same rows as JSON): `video_id, duration,
    domain, sub_category, url, videoID, question_id, task_type, question, options, answer`; 900 videos, 2,700
    questions. Options carry their letter ("A. ...": the letter is taken off, and must be the option's own), the
    answer is a letter: items are **scored by letter, never by option text** (a few questions repeat an option's
    text). category = duration (short / medium / long, the table's columns); groups: domain, task_type,
    sub_category (in scores.json). Videos `<videoID>.mp4`; subtitles `<videoID>.srt` under `subtitle_root` (absent
    for some videos: `meta["subtitles"]` is then None)."""

    task = MCQA

    def __init__(self, annotations: str, video_root: str | None = None, subtitle_root: str | None = None,
                 name: str = "videomme", video_patterns: Sequence[str] = ("{id}.mp4", "{id}.mkv", "{id}.webm"),
                 limit: int | None = None):
        self.annotations, self.name, self.limit = Path(annotations), name, limit
        self.subtitle_root = Path(subtitle_root) if subtitle_root else None
        self.resolve = VideoResolver(video_root, video_patterns)

    def items(self) -> list[Sample]:
        f, out = self.annotations, []
        for i, row in enumerate(_rows(f)):
            where = f"row {i}"
            qid = str(require(row, "question_id", f, where, str))
            where = f"question {qid!r}"
            options = []
            for k, o in enumerate(require(row, "options", f, where, (list, tuple))):
                m = _LETTERED.match(o) if isinstance(o, str) else None
                if not m or m[1] != chr(65 + k):
                    raise AnnotationError(f, where, f"option {k} is {o!r}: expected it to start with "
                                                    f"'{chr(65 + k)}. '")
                options.append(m[2])
            letter = require(row, "answer", f, where, str).strip()
            if not (len(letter) == 1 and 0 <= ord(letter) - 65 < len(options)):
                raise AnnotationError(f, where, f"answer {letter!r} is not the letter of one of {len(options)} options")
            vid = require(row, "videoID", f, where, str)
            out.append(Sample(
                uid=qid, benchmark=self.name, task=MCQA, video=self.resolve(vid), video_id=vid,
                question=require(row, "question", f, where, str), options=tuple(options), answer=ord(letter) - 65,
                category=require(row, "duration", f, where, str),
                groups={k: (require(row, k, f, where, str),) for k in ("domain", "task_type", "sub_category")},
                meta={"subtitles": _subtitle_file(self.subtitle_root, f"{vid}.srt"),
                      "video_number": row.get("video_id")}))
        warn_repeated_options(f, out)
        return out


class LongVideoBench(Benchmark):
    """LongVideoBench: `lvb_val.json` (or `lvb_test_wo_gt.json`, without answers: predicted, not scored), a list of
    `{id, video_id, question, candidates, correct_choice, duration_group, question_category, level,
    subtitle_path, starting_timestamp_for_subtitles, duration, ...}`, or the same rows in the parquet files
    (`validation-` / `test-00000-of-00001.parquet`, options as columns option0..option4). Options are bare texts, 4
    or 5 (the parquet pads them with "N/A": trailing "N/A" are dropped); the answer is a 0-based index. category = the duration
    group (15 / 60 / 600 / 3600 s: the table's columns); groups: question_category (17), level. Videos
    `<video_id>.mp4`; subtitles `<subtitle_root>/<subtitle_path>` (JSON)."""

    task = MCQA

    def __init__(self, annotations: str, video_root: str | None = None, subtitle_root: str | None = None,
                 name: str = "longvideobench", video_patterns: Sequence[str] = ("{id}.mp4", "{id}.mkv"),
                 limit: int | None = None):
        self.annotations, self.name, self.limit = Path(annotations), name, limit
        self.subtitle_root = Path(subtitle_root) if subtitle_root else None
        self.resolve = VideoResolver(video_root, video_patterns)

    def items(self) -> list[Sample]:
        f, out, padded = self.annotations, [], []
        for i, r in enumerate(_rows(f)):
            uid = str(require(r, "id", f, f"[{i}]", str))
            where = f"item {uid!r}"
            if "candidates" in r or "option0" not in r:
                options = list(require(r, "candidates", f, where, (list, tuple)))
            else:                                             # the parquet's columns option0 .. option4
                options = [r[k] for k in (f"option{j}" for j in range(5)) if k in r]
            while options and options[-1] == "N/A":
                options.pop()
                padded.append(uid)
            if not all(isinstance(o, str) for o in options) or not 2 <= len(options) <= 5:
                raise AnnotationError(f, where, f"candidates must be 2-5 strings, got {options!r}")
            answer = r.get("correct_choice")
            if answer is not None and (isinstance(answer, bool) or not isinstance(answer, int)
                                       or not 0 <= answer < len(options)):
                raise AnnotationError(f, where, f"correct_choice {answer!r} is not an index into {len(options)} "
                                                "candidates")
            vid = require(r, "video_id", f, where, str)
            out.append(Sample(
                uid=uid, benchmark=self.name, task=MCQA, video=self.resolve(vid), video_id=vid,
                duration=float(r["duration"]) if isinstance(r.get("duration"), (int, float)) else None,
                question=require(r, "question", f, where, str), options=tuple(options), answer=answer,
                category=str(require(r, "duration_group", f, where, (int, str))),
                groups={k: (str(require(r, k, f, where, str)),) for k in ("question_category", "level")},
                meta={"subtitles": _subtitle_file(self.subtitle_root, r.get("subtitle_path")),
                      "subtitle_offset": float(r.get("starting_timestamp_for_subtitles") or 0.0)}))
        warn_noise(f, "option lists padded with \"N/A\"", sorted(set(padded)), "the padding dropped")
        warn_repeated_options(f, out)
        return out


_INLINE = re.compile(r"\n\(([A-Z])\) ?")


class LVBench(Benchmark):
    """LVBench: `video_info.meta.jsonl`, one line per video `{key, type, qa: [{uid, question, answer, question_type,
    time_reference}], ...}`. Options are inline in the question ("...?\\n(A) ...\\n(B) ..."), the answer is a
    letter, `question_type` is a **list**: a question counts in each of its capability columns (groups:
    question_type, shown in the table). Videos are named by the YouTube `key`: `<key>.mp4`."""

    task = MCQA
    table_groups = ("question_type",)

    def __init__(self, annotations: str, video_root: str | None = None, name: str = "lvbench",
                 video_patterns: Sequence[str] = ("{id}.mp4", "{id}.mkv"), limit: int | None = None):
        self.annotations, self.name, self.limit = Path(annotations), name, limit
        self.resolve = VideoResolver(video_root, video_patterns)

    def items(self) -> list[Sample]:
        f, out = self.annotations, []
        for line, v in iter_jsonl(f, "annotation file"):
            key = require(v, "key", f, f"line {line}", str)
            for j, q in enumerate(require(v, "qa", f, f"line {line} ({key})", list)):
                where = f"line {line} ({key}) qa[{j}]"
                text = require(q, "question", f, where, str)
                parts = _INLINE.split(text)
                stem, letters, options = parts[0], parts[1::2], parts[2::2]
                if not options or letters != [chr(65 + k) for k in range(len(letters))]:
                    raise AnnotationError(f, where, "expected the options inline as \"\\n(A) ...\\n(B) ...\"")
                letter = require(q, "answer", f, where, str)
                if letter not in letters:
                    raise AnnotationError(f, where, f"answer {q['answer']!r} is not one of the letters {letters}")
                types = require(q, "question_type", f, where, list)
                out.append(Sample(
                    uid=str(require(q, "uid", f, where, (str, int))), benchmark=self.name, task=MCQA,
                    video=self.resolve(key), video_id=key, question=stem.strip(),
                    options=tuple(o.strip() for o in options), answer=letters.index(letter),
                    groups={"question_type": tuple(str(t) for t in types),
                            **({"video_type": (v["type"],)} if isinstance(v.get("type"), str) else {})},
                    meta={"time_reference": q.get("time_reference")}))
        warn_repeated_options(f, out)
        return out
