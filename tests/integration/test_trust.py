"""The rules that keep a table from misleading, end to end through `longvid-compare` (a subprocess where the exit
code matters, `evals.runner.cli` in-process elsewhere):
- real sizes: 5,000 NExT-QA-format questions over 500 videos (clustered CIs) and 3,000 one-question-per-video items
  (exact McNemar past 1,024 discordant pairs), with no video file on disk, rows that read no frames;
- what can be checked before the first item is: exit 2, the key / file / `_target_` named, nothing recorded;
- a row that fails wholesale (or above `max_failure_rate`) exits 1 after the table, the reason on the last line;
- an infrastructure error (a full disk, a store gone) stops the run (exit 3), and a rerun resumes;
- one run per output folder; a resume is guarded by what the systems are, not by how they run;
- a finished read-only folder is scored again without writing anything."""
from __future__ import annotations

import builtins
import csv
import errno
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from evals import config_dir
from evals.runner import EXIT_FAILED, EXIT_REFUSED, EXIT_STOPPED, cli
from evals.store import read_predictions

REPO = Path(__file__).resolve().parents[2]
COMMAND = Path(sys.executable).parent / "longvid-compare"
OPTS = ["a knife", "a spoon", "a cup", "a plate", "a bowl"]


def _items(path: Path, n: int = 6, videos: int = 3) -> Path:
    """A generic-format multiple-choice file: n questions about `videos` videos."""
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"uid": f"q{i}", "video": f"v{i % videos}", "question": f"what is picked up ({i})?",
                                "options": OPTS, "answer": i % 5}) + "\n")
    return path


def _base(tmp_path: Path, *extra: str, video_root: Path | None = None) -> list[str]:
    items = _items(tmp_path / "items.jsonl")
    return [f"paths.root={tmp_path}", f"out_dir={tmp_path / 'out'}", "progress=false", "report=false",
            "stats.resamples=50", "~benchmarks.synthetic_summary", "~benchmarks.synthetic_qa", "~systems.train_prior",
            "+benchmarks.items._target_=evals.benchmarks.other.JsonlBenchmark", f"+benchmarks.items.file={items}",
            "+benchmarks.items.task=mcqa", f"+benchmarks.items.video_root={video_root or tmp_path / 'videos'}",
            *extra]


def cfg_for(overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("compare", overrides=overrides)


def _run(overrides, capsys) -> tuple[int, str]:
    from baselines import aggregator

    aggregator._SHARED.clear()
    code = cli(cfg_for(overrides))
    return code, capsys.readouterr().err


def _command(args, cwd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(COMMAND), *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, **kw)


def _predictions(tmp_path: Path) -> list[Path]:
    return list((tmp_path / "out").rglob("predictions.jsonl")) if (tmp_path / "out").exists() else []


# --- real sizes ------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_full_size_tables_through_the_command(tmp_path):
    """NExT-QA val's size (4,996 questions, 570 videos; here 5,000 over 500) and an EgoSchema-format set of 3,000
    one-question videos, two rows that read no frames, no video file anywhere: the table comes out with videos
    resampled where questions share them, and exact McNemar p-values where 1,200 pairs disagree."""
    rng = random.Random(0)
    answers = []
    with open(tmp_path / "val.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow("video,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4".split(","))
        for v in range(500):
            for q in range(10):
                answers.append(rng.randrange(5))
                w.writerow([str(4_000_000_000 + v), 600, 640, 360, f"what happens ({q}) in {v}", answers[-1], q,
                            rng.choice(["CW", "TN", "DL"])] + [f"option {k} of {v}.{q}" for k in range(5)])
    ego_q, ego_a = [], {}
    for i in range(3000):
        uid = f"{i:08d}-0000-0000-0000-000000000000"
        ego_q.append({"q_uid": uid, "google_drive_id": "x", "question": f"What does c do ({i})?",
                      **{f"option {k}": f"c does thing {k}" for k in range(5)}})
        ego_a[uid] = (0, 4)[i % 2] if i < 2400 else 2      # 2,400 questions where the two rows disagree
    (tmp_path / "questions.json").write_text(json.dumps(ego_q))
    (tmp_path / "answers.json").write_text(json.dumps(ego_a))
    t0 = time.monotonic()
    r = _command([f"paths.root={tmp_path}", f"out_dir={tmp_path / 'out'}", "progress=false",
                  "~benchmarks.synthetic_summary", "~benchmarks.synthetic_qa", "~systems.train_prior",
                  "+benchmark@benchmarks.nextqa=nextqa", f"benchmarks.nextqa.csv_file={tmp_path / 'val.csv'}",
                  f"benchmarks.nextqa.video_root={tmp_path / 'no_videos'}",
                  "+benchmark@benchmarks.egoschema=egoschema", f"benchmarks.egoschema.questions={tmp_path / 'questions.json'}",
                  f"benchmarks.egoschema.answers={tmp_path / 'answers.json'}",
                  f"benchmarks.egoschema.video_root={tmp_path / 'no_videos'}",
                  "+system@systems.last_option=constant_choice", "systems.last_option.index=4"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    seconds = time.monotonic() - t0
    md = (tmp_path / "out" / "table.md").read_text()
    assert "nextqa: 5000 scored items share 500 videos: CIs resample videos (cluster bootstrap)" in md
    assert not any(line.startswith("- egoschema:") and "share" in line for line in md.splitlines())
    rows = {(r["system"], r["benchmark"], r["metric"]): r for r in csv.DictReader(open(tmp_path / "out" / "table.csv"))}
    nq = rows[("last_option", "nextqa", "accuracy")]
    assert float(rows[("first_option", "nextqa", "accuracy")]["value"]) == pytest.approx(
        100 * answers.count(0) / 5000)
    assert nq["clusters"] == "500" and nq["mcnemar_p"] != "" and nq["n"] == "5000"
    eg = rows[("last_option", "egoschema", "accuracy")]
    assert eg["clusters"] == "" and eg["n"] == "3000"
    assert float(eg["mcnemar_p"]) == pytest.approx(1.0)     # 1,200 vs 1,200 discordant pairs: exact, no overflow
    assert float(rows[("first_option", "egoschema", "accuracy")]["value"]) == pytest.approx(40.0)
    print(f"full-size comparison: {seconds:.1f} s")


# --- refusals before the first item ----------------------------------------------------------------------------------
def _locked_cache(path: Path):
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), timeout=0.1)
    db.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
    db.commit()
    db.execute("BEGIN EXCLUSIVE")
    return db


BLIND = ["+system@systems.blind=blind_llm", "llm._target_=tests.helpers.FakeLLM", "~llm.path", "~llm.dtype",
         "~llm.device", "~llm.batch_size", "~llm.retries"]
REFUSALS = {   # case -> (overrides, what the message must name)
    "wrong video_root": (["+systems.reader._target_=tests.helpers.DecodingSystem"],
                         "benchmarks.items: none of its 3 videos is under"),
    "unknown _target_": (["+systems.mine._target_=my_lab.captioners.Nope"],
                         "systems.mine: cannot build 'my_lab.captioners.Nope'"),
    "unknown LLM _target_": (["+system@systems.blind=blind_llm", "llm._target_=my_lab.llms.Missing"],
                             "systems.blind.llm: cannot build 'my_lab.llms.Missing'"),
    "LLM cannot score": ([*BLIND, "+llm.capabilities=[chat,choice]"],
                         "cannot ['score'] (it declares capabilities ['chat', 'choice']), which mcqa=likelihood needs; "
                         "set systems.blind.mcqa=letter"),
    "LLM can only chat": ([*BLIND, "+llm.capabilities=[chat]"],
                          "cannot ['score'] (it declares capabilities ['chat']), which mcqa=likelihood needs; use a "
                          "backend that declares it"),
    "corrupt cache": ([*BLIND, "llm.cache=${paths.root}/garbage.sqlite"], "garbage.sqlite: cannot open it"),
    "locked cache": ([*BLIND, "llm.cache=${paths.root}/locked.sqlite"], "locked.sqlite: cannot open it (database is locked): another process holds it locked"),
    "option index out of range": (["systems.first_option.index=5"],
                                  "systems.first_option.index=5 is not an option of 6 questions"),
    "unknown reference": (["reference=nope"], "reference='nope' is not a system of this comparison"),
    "unknown metric": (["metrics.caption=[BLUE-4]"], "metrics.caption: unknown metrics ['BLUE-4']"),
    "column not computed": (["+benchmark@benchmarks.summ=synthetic_summary", "metrics.caption=[CIDEr]",
                             "synthetic.n_train=2", "synthetic.n_val=1", "synthetic.n_test=1",
                             "synthetic.max_duration=16"],
                            "table.columns.summarization: ['ROUGE-L', 'BLEU-4', 'METEOR'] are not computed"),
    "no video root at all": (["+systems.reader._target_=tests.helpers.DecodingSystem", "benchmarks.items.video_root=null"],
                             "benchmarks.items: no video root is set, and ['reader'] read videos"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_what_can_be_checked_is_checked_before_the_first_item(case, tmp_path, capsys, monkeypatch):
    overrides, named = REFUSALS[case]
    (tmp_path / "garbage.sqlite").write_bytes(b"this is not a database " * 100)
    lock = _locked_cache(tmp_path / "locked.sqlite") if case == "locked cache" else None
    if lock is not None:
        import baselines.cache as cache

        monkeypatch.setattr(cache.DiskCache.__init__, "__defaults__", (0.2,))   # wait 0.2 s for the lock, not 30
    try:
        code, err = _run(_base(tmp_path, *overrides), capsys)
    finally:
        if lock is not None:
            lock.rollback()
    assert code == EXIT_REFUSED, err
    assert "refused before any item ran" in err and named in err, err
    assert not (tmp_path / "out").exists()                       # nothing recorded, not even the folder


def test_refusal_exit_code_through_the_command(tmp_path):
    r = _command(_base(tmp_path, "+systems.mine._target_=my_lab.Nope"), tmp_path)
    assert r.returncode == EXIT_REFUSED and "systems.mine: cannot build 'my_lab.Nope'" in r.stderr.splitlines()[-1]
    assert not _predictions(tmp_path) and "Traceback" not in r.stderr


def test_video_free_rows_run_without_videos_and_video_rows_fail_item_by_item(tmp_path, capsys):
    from tests.helpers import make_video

    make_video(tmp_path / "videos" / "v0.mp4", n_frames=4)        # v1, v2 are missing: 4 of 6 items
    code, err = _run(_base(tmp_path, "+systems.reader._target_=tests.helpers.DecodingSystem",
                           "+system@systems.blind=blind_llm", "llm._target_=tests.helpers.FakeLLM", "~llm.path",
                           "~llm.dtype", "~llm.device", "~llm.batch_size", "~llm.retries", "~llm.cache",
                           "max_failure_rate=0.9"), capsys)
    assert code == 0, err
    fails = {s: len(read_predictions(tmp_path / "out" / "items" / s / "predictions.jsonl")) for s in ("reader", "blind")}
    assert fails == {"reader": 6, "blind": 6}
    failed = [json.loads(x) for x in (tmp_path / "out" / "failures.jsonl").read_text().splitlines()]
    assert {(f["system"], f["uid"]) for f in failed} == {("reader", u) for u in ("q1", "q2", "q4", "q5")}


# --- failures during the run ---------------------------------------------------------------------------------------------
def test_a_row_that_fails_wholesale_exits_1_after_writing_the_table(tmp_path):
    every = "+systems.echo.fail_uids=[q0,q1,q2,q3,q4,q5]"
    echo = ["+systems.echo._target_=tests.helpers.SlowEcho", "+systems.echo.needs_video=false"]
    r = _command(_base(tmp_path, *echo, every), tmp_path)
    assert r.returncode == EXIT_FAILED, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("longvid-compare: FAILED") and "echo on items: 6 of 6 items failed (all" in last
    assert "deliberate failure on q0" in last
    assert "| echo |" in (tmp_path / "out" / "table.md").read_text()       # the table is written first
    # above max_failure_rate (2 of 6 > 0.25) also fails; at the default 0.5 it does not
    some = _base(tmp_path, *echo, "+systems.echo.fail_uids=[q0,q1]", f"out_dir={tmp_path / 'out2'}")
    r = _command(some + ["max_failure_rate=0.25"], tmp_path)
    assert r.returncode == EXIT_FAILED and "> max_failure_rate=0.25" in r.stderr.splitlines()[-1]
    r = _command(some, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]


def test_an_infrastructure_error_stops_the_run_and_a_rerun_resumes(tmp_path, capsys):
    flag, log = tmp_path / "store_down", tmp_path / "calls.log"
    flag.write_text("on")
    ov = _base(tmp_path, "+systems.echo._target_=tests.helpers.SlowEcho", "+systems.echo.infra_after=2",
               f"+systems.echo.fail_flag={flag}", f"+systems.echo.log={log}", "+systems.echo.needs_video=false",
               "batch_size=1")
    code, err = _run(ov, capsys)
    assert code == EXIT_STOPPED and "stopped: the shared store went away at q2 (deliberate)" in err
    preds = tmp_path / "out" / "items" / "echo" / "predictions.jsonl"
    assert set(read_predictions(preds)) == {"q0", "q1"}               # not 4 items recorded as failed
    assert not (tmp_path / "out" / "table.md").exists()
    flag.unlink()
    calls = len(log.read_text().splitlines())
    code, err = _run(ov, capsys)
    assert code == 0, err
    assert log.read_text().splitlines()[calls:] == ["q2", "q3", "q4", "q5"]   # resumed, nothing redone
    assert all(p.failure is None for p in read_predictions(preds).values())


def test_a_full_disk_names_the_file_and_a_rerun_resumes(tmp_path, capsys, monkeypatch):
    import evals.store

    written = []
    real_open = builtins.open

    def full_disk(path, mode="r", *a, **kw):
        if str(path).endswith("predictions.jsonl") and "a" in mode:
            written.append(path)
            if len(written) > 3:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_open(path, mode, *a, **kw)

    ov = _base(tmp_path, "+systems.echo._target_=tests.helpers.SlowEcho", "+systems.echo.needs_video=false",
               "batch_size=1", "~systems.first_option")
    monkeypatch.setattr(evals.store, "open", full_disk, raising=False)
    code, err = _run(ov, capsys)
    assert code == EXIT_STOPPED
    assert "predictions.jsonl: the disk is full" in err and "rerun the same command to resume" in err
    monkeypatch.undo()
    preds = tmp_path / "out" / "items" / "echo" / "predictions.jsonl"
    assert len(read_predictions(preds)) == 3
    code, err = _run(ov, capsys)
    assert code == 0 and len(read_predictions(preds)) == 6


# --- output folders ------------------------------------------------------------------------------------------------------
def test_one_run_per_output_folder(tmp_path, capsys):
    """Two runs on one folder used to write every uid twice; the second is now refused while the first works."""
    ov = _base(tmp_path, "+systems.echo._target_=tests.helpers.SlowEcho", "+systems.echo.delay=0.4",
               "+systems.echo.needs_video=false", "batch_size=1", "~systems.first_option")
    first = subprocess.Popen([str(COMMAND), *ov], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    preds = tmp_path / "out" / "items" / "echo" / "predictions.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (preds.exists() and preds.read_text()):
        time.sleep(0.05)
    code, err = _run(ov, capsys)
    assert code == EXIT_REFUSED and "another run is writing to" in err and str(tmp_path / "out") in err
    _, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err
    uids = [json.loads(x)["uid"] for x in preds.read_text().splitlines()]
    assert sorted(uids) == [f"q{i}" for i in range(6)]               # each once


def test_a_resume_is_guarded_by_what_a_system_is_not_how_it_runs(tmp_path, capsys):
    """The README's "a first look with limit=2, then the full run" with another batch size resumes; another
    system under the same row name is refused."""
    log = tmp_path / "calls.log"
    echo = ["+systems.echo._target_=tests.helpers.SlowEcho", f"+systems.echo.log={log}",
            "+systems.echo.needs_video=false", "~systems.first_option"]
    code, err = _run(_base(tmp_path, *echo, "+benchmarks.items.limit=2", "batch_size=1"), capsys)
    assert code == 0, err
    code, err = _run(_base(tmp_path, *echo, "batch_size=4", "+systems.echo.delay=0.01"), capsys)
    assert code == 0, err
    assert log.read_text().split() == ["q0", "q1", "q2", "q3", "q4", "q5"]      # q0, q1 not asked again
    code, err = _run(_base(tmp_path, "+systems.echo._target_=evals.systems.ConstantChoice", "~systems.first_option"),
                     capsys)
    assert code == EXIT_REFUSED and "holds predictions of another system or benchmark" in err


def test_a_finished_read_only_folder_is_scored_again_without_writing(tmp_path, capsys, monkeypatch):
    ov = _base(tmp_path, "+systems.echo._target_=tests.helpers.SlowEcho", "+systems.echo.needs_video=false")
    code, err = _run(ov, capsys)
    assert code == 0, err
    out = tmp_path / "out"
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    real_open, real_replace = builtins.open, os.replace

    def read_only(path, mode="r", *a, **kw):         # the folder is read-only (root ignores chmod: simulate it)
        if str(path).startswith(str(out)) and any(c in mode for c in "wax+"):
            raise PermissionError(errno.EACCES, "Read-only file system", str(path))
        return real_open(path, mode, *a, **kw)

    def no_replace(src, dst, *a, **kw):
        if str(dst).startswith(str(out)):
            raise PermissionError(errno.EACCES, "Read-only file system", str(dst))
        return real_replace(src, dst, *a, **kw)

    monkeypatch.setattr(builtins, "open", read_only)
    monkeypatch.setattr(os, "replace", no_replace)
    code, err = _run(ov, capsys)
    monkeypatch.undo()
    assert code == 0, err
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()} == before


def test_a_finished_folder_is_scored_again_offline_but_not_under_other_settings(tmp_path, capsys):
    """Nothing left to predict: no video, model or server is needed (the videos are gone here), only the recorded
    settings must match; another setting on the same row is refused even so."""
    from tests.helpers import make_video

    for v in range(3):
        make_video(tmp_path / "videos" / f"v{v}.mp4", n_frames=4, seed=v)
    ov = _base(tmp_path, "+systems.reader._target_=tests.helpers.DecodingSystem")
    code, err = _run(ov, capsys)
    assert code == 0, err
    table = (tmp_path / "out" / "table.md").read_text()
    import shutil

    shutil.rmtree(tmp_path / "videos")
    code, err = _run(ov, capsys)
    assert code == 0, err
    assert (tmp_path / "out" / "table.md").read_text() == table
    code, err = _run(ov + ["systems.first_option.index=3"], capsys)
    assert code == EXIT_REFUSED and "first_option/predictions.jsonl holds predictions of another system" in err


def test_a_finished_folder_notices_weights_retrained_in_place(tmp_path, capsys):
    ckpt = tmp_path / "model.bin"
    ckpt.write_bytes(b"weights v1")
    ov = _base(tmp_path, "+systems.mine._target_=tests.helpers.FromFile", f"+systems.mine.checkpoint={ckpt}")
    code, err = _run(ov, capsys)
    assert code == 0, err
    table = (tmp_path / "out" / "table.md").read_text()
    ckpt.rename(tmp_path / "elsewhere.bin")                       # scored again where the weights are not
    code, err = _run(ov, capsys)
    assert code == 0 and (tmp_path / "out" / "table.md").read_text() == table, err
    ckpt.write_bytes(b"weights v2, retrained")                   # the same path, other weights
    code, err = _run(ov, capsys)
    assert code == EXIT_REFUSED and f"{ckpt} changed since they were made" in err


def test_a_limited_look_at_a_full_folder_counts_only_its_items(tmp_path, capsys):
    ov = _base(tmp_path, "+systems.echo._target_=tests.helpers.SlowEcho", "+systems.echo.needs_video=false",
               "+systems.echo.fail_uids=[q4,q5]", "~systems.first_option")
    code, err = _run(ov, capsys)
    assert code == 0, err                                         # 2 of 6 failed: under max_failure_rate
    code, err = _run(ov + ["+benchmarks.items.limit=3"], capsys)
    assert code == 0, err
    assert "items / echo: 3 items, 0 failed" in (tmp_path / "out" / "table.md").read_text()
    assert (tmp_path / "out" / "failures.jsonl").read_text() == ""


def test_a_row_of_unparseable_answers_is_not_a_result(tmp_path, capsys):
    ckpt = tmp_path / "model.bin"
    ckpt.write_bytes(b"w")
    code, err = _run(_base(tmp_path, "+systems.mine._target_=tests.helpers.FromFile", f"+systems.mine.checkpoint={ckpt}",
                           "+systems.mine.reply='I am not sure.'"), capsys)
    assert code == EXIT_FAILED
    assert "mine on items: 6 of 6 items failed or unparseable (6 unparseable) (all)" in err.strip().splitlines()[-1]


def test_a_per_task_row_needs_what_its_task_needs(tmp_path, capsys):
    """A row with a video-reading summarizer and a video-free multiple-choice head runs multiple choice without
    videos (the runner asks the row which system serves the task)."""
    code, err = _run(_base(tmp_path, "+systems.row._target_=evals.systems.PerTask",
                           "+systems.row.systems.mcqa._target_=evals.systems.ConstantChoice",
                           "+systems.row.systems.mcqa.index=1",
                           "+systems.row.systems.summarization._target_=tests.helpers.DecodingSystem",
                           "+systems.row._recursive_=false", "~systems.first_option"), capsys)
    assert code == 0, err
    assert read_predictions(tmp_path / "out" / "items" / "row" / "predictions.jsonl")["q1"].choice == 1


def test_caption_metrics_without_java_are_refused_up_front(tmp_path, capsys, monkeypatch):
    import shutil

    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **kw: None if name == "java" else real(name, *a, **kw))
    code, err = _run(_base(tmp_path, "+benchmark@benchmarks.summ=synthetic_summary", "synthetic.n_train=2",
                           "synthetic.n_val=1", "synthetic.n_test=1", "synthetic.max_duration=16"), capsys)
    assert code == EXIT_REFUSED and "benchmarks.summ: its caption metrics need Java 17" in err
    assert not (tmp_path / "out").exists()                        # a refused run leaves no folder behind


def test_a_row_that_writes_nothing_fails_wholesale(tmp_path, capsys):
    """An empty summary is scored as empty, and counted as a failure: a row of them is not a table of zeros."""
    ov = ["synthetic.n_train=2", "synthetic.n_val=1", "synthetic.n_test=2", "synthetic.max_duration=16",
          f"paths.root={tmp_path}", f"out_dir={tmp_path / 'out'}", "progress=false", "report=false",
          "stats.resamples=20", "~benchmarks.synthetic_qa", "~systems.first_option",
          "+systems.mute._target_=tests.helpers.SlowEcho", "+systems.mute.reply=' '", "+systems.mute.needs_video=false"]
    code, err = _run(ov, capsys)
    assert code == EXIT_FAILED
    assert "mute on synthetic_summary: 2 of 2 items failed (all; e.g. " in err and "returned an empty text" in err
    assert "| mute |" in (tmp_path / "out" / "table.md").read_text()
