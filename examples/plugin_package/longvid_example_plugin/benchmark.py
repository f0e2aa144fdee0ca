"""A benchmark: subclass `evals.benchmarks.base.Benchmark`, set `name` and `task` and implement `items()`, every
sample of the file in its stable order with uids that stay the same across runs (prediction files are keyed by
them); the base class's `load()` checks the uids are unique and applies `limit`. Read files with the suite's
helpers so that errors name the file and the row, and report a file's known noise with `warn_noise` instead of
rejecting it or silently fixing it.

This one reads multiple-choice questions from a CSV: `uid,video,question,option_0,...,option_K,answer` (answer: the
0-based index of the right option; empty where the answers are hidden; trailing empty options are dropped)."""
from __future__ import annotations

import csv
import io

from evals.benchmarks.base import AnnotationError, Benchmark, VideoResolver, read_text, warn_noise
from evals.contracts import MCQA, Sample


class CsvQA(Benchmark):
    task = MCQA

    def __init__(self, file: str, video_root: str | None = None, name: str = "csv_qa", limit: int | None = None):
        self.file, self.name, self.limit = file, name, limit
        self.resolve = VideoResolver(video_root)

    def source(self) -> str:                  # the file errors name
        return self.file

    def items(self) -> list[Sample]:
        rows = list(csv.DictReader(io.StringIO(read_text(self.file))))
        out, unanswered = [], []
        for n, row in enumerate(rows, start=2):               # line 1 is the header
            where = f"line {n}"
            missing = [k for k in ("uid", "video", "question", "answer") if k not in row]
            if missing:
                raise AnnotationError(self.file, where, f"missing column(s) {missing}")
            options = [row[k] for k in sorted((k for k in row if k.startswith("option_")),
                                              key=lambda k: int(k.split("_")[1]))]
            while options and not options[-1]:
                options.pop()
            answer = row["answer"].strip()
            if answer and not (answer.isdigit() and int(answer) < len(options)):
                raise AnnotationError(self.file, where, f"answer {answer!r} is not an index into {len(options)} options")
            if not answer:
                unanswered.append(row["uid"])
            out.append(Sample(uid=row["uid"], benchmark=self.name, task=MCQA, video=self.resolve(row["video"]),
                              video_id=row["video"], question=row["question"], options=tuple(options),
                              answer=int(answer) if answer else None))
        warn_noise(self.file, "questions without an answer", unanswered, "kept (predicted, not scored)")
        return out
