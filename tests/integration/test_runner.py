"""The paired runner end to end: resumable after SIGKILL, per-item failures recorded, never a crash."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from evals import config_dir
from evals.runner import run_compare
from evals.store import read_predictions
from tests.helpers import make_video

REPO = Path(__file__).resolve().parents[2]
TINY = ["synthetic.n_train=6", "synthetic.n_val=2", "synthetic.n_test=6", "synthetic.max_duration=32"]


def cfg_for(overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("compare", overrides=overrides)


def _cmd(root, out, log, delay):
    return [sys.executable, "-c", "from evals.runner import main; main()", f"paths.root={root}",
            f"out_dir={out}", "batch_size=1", "progress=false", "stats.resamples=200", *TINY,
            "~systems.first_option", "+systems.slow._target_=tests.helpers.SlowEcho",
            f"+systems.slow.delay={delay}", f"+systems.slow.log={log}", "reference=slow"]


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}


@pytest.mark.slow
@pytest.mark.java
def test_sigkill_then_resume_gives_the_same_table(tmp_path):
    root = tmp_path / "home"
    # uninterrupted reference run
    subprocess.run(_cmd(root, tmp_path / "full", tmp_path / "full.log", 0.0), check=True, env=_env(),
                   cwd=tmp_path, capture_output=True)
    # interrupted run: SIGKILL once a few QA predictions are on disk
    out, log = tmp_path / "killed", tmp_path / "killed.log"
    proc = subprocess.Popen(_cmd(root, out, log, 0.25), env=_env(), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    qa = out / "synthetic_qa" / "slow" / "predictions.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and not (qa.exists() and qa.read_text().count("\n") >= 4):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = set(read_predictions(qa))
    assert 4 <= len(before) < 12, "kill landed mid-way"
    calls_before = log.read_text().splitlines()
    r = subprocess.run(_cmd(root, out, log, 0.25), env=_env(), cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    calls_after = log.read_text().splitlines()[len(calls_before):]
    assert not before & set(calls_after), "finished items were recomputed"
    lines = [json.loads(l) for l in qa.read_text().splitlines()]
    uids = [l["uid"] for l in lines]
    assert len(uids) == len(set(uids)) == 12  # 6 videos x 2 questions, none lost or duplicated
    assert (out / "table.md").read_text() == (tmp_path / "full" / "table.md").read_text()
    assert (out / "table.csv").read_text() == (tmp_path / "full" / "table.csv").read_text()


@pytest.mark.java
def test_bad_videos_and_system_errors_are_recorded_per_item(tmp_path):
    vids = tmp_path / "videos"
    make_video(vids / "good1.mp4", n_frames=6)
    make_video(vids / "good2.mp4", n_frames=6, seed=1)
    (vids / "empty.mp4").write_bytes(b"")
    (vids / "garbage.mp4").write_bytes(os.urandom(3000))
    data = open(make_video(tmp_path / "long.mp4", n_frames=40, size=64), "rb").read()
    (vids / "truncated.mp4").write_bytes(data[: len(data) // 3])
    items = tmp_path / "items.jsonl"
    with open(items, "w") as f:
        for vid in ["good1", "good2", "empty", "garbage", "truncated", "missing"]:
            f.write(json.dumps({"uid": vid, "video": vid, "question": "q?", "options": ["a", "b", "c", "d", "e"],
                                "answer": 1, "category": "x"}) + "\n")
    flag = tmp_path / "fail.flag"
    flag.write_text("on")
    ov = [f"paths.root={tmp_path}", f"out_dir={tmp_path / 'out'}", "progress=false", "stats.resamples=100",
          "~benchmarks.synthetic_summary", "~benchmarks.synthetic_qa", "~systems.train_prior",
          "+benchmarks.items._target_=evals.benchmarks.other.JsonlBenchmark", f"+benchmarks.items.file={items}",
          "+benchmarks.items.task=mcqa", f"+benchmarks.items.video_root={vids}",
          "+systems.decoding._target_=tests.helpers.DecodingSystem", "+systems.decoding.video=${video}",
          "+systems.echo._target_=tests.helpers.SlowEcho", "+systems.echo.fail_uids=[good2]",
          f"+systems.echo.fail_flag={flag}"]
    res = run_compare(cfg_for(ov))
    fails = {s: {p.uid: p.failure for p in ps} for (_, s), ps in res["failures"].items()}
    assert fails["first_option"] == {}           # reads no frames: never failed for a missing or broken video
    for system in ("decoding", "echo"):
        assert set(fails[system]) >= {"empty", "garbage", "truncated", "missing"}
        assert "video not found" in fails[system]["missing"]
        assert "empty.mp4" in fails[system]["empty"] and "garbage.mp4" in fails[system]["garbage"]
    assert "deliberate failure on good2" in fails["echo"]["good2"]
    assert "good1" not in fails["echo"] and "good1" not in fails["decoding"]
    md = res["table"].markdown()
    assert "items / echo: 6 items, 5 failed" in md and "items / decoding: 6 items, 4 failed" in md
    acc = res["scores"]["items"]["echo"]["accuracy"]
    assert acc.info["n_failed"] == 5 and acc.info["n_scored"] == 6
    # a rerun fills in the item whose failure has gone, and only that one
    flag.unlink()
    res = run_compare(cfg_for(ov))
    fails = {s: {p.uid for p in ps} for (_, s), ps in res["failures"].items()}
    assert "good2" not in fails["echo"] and len(fails["echo"]) == 4
    path = tmp_path / "out" / "items" / "echo" / "predictions.jsonl"
    preds = read_predictions(path)
    assert preds["good2"].failure is None and preds["good2"].choice is not None
    lines = [json.loads(l)["uid"] for l in path.read_text().splitlines()]
    assert lines.count("missing") == 1 and lines.count("good2") == 2   # unchanged failures not rewritten


def test_changed_config_refuses_to_mix_predictions(tmp_path):
    ov = [f"paths.root={tmp_path}", f"out_dir={tmp_path / 'out'}", "progress=false", *TINY,
          "~benchmarks.synthetic_summary", "~systems.train_prior", "stats.resamples=50"]
    run_compare(cfg_for(ov))
    with pytest.raises(Exception, match="holds predictions of another system or benchmark"):
        run_compare(cfg_for(ov + ["systems.first_option.index=2"]))


def test_truncated_last_line_is_repaired(tmp_path):
    from evals.contracts import Prediction
    from evals.store import PredictionStore, PredictionStoreError

    store = PredictionStore(tmp_path, "h")
    store.append([Prediction(uid="a", system="s", text="x"), Prediction(uid="b", system="s", failure="boom")])
    with open(store.path, "a") as f:
        f.write('{"uid": "c", "sys')
    again = PredictionStore(tmp_path, "h")
    assert set(again.predictions) == {"a", "b"} and again.done() == {"a"}
    assert store.path.read_text().endswith("\n")
    store.path.write_text('{"uid": "a"\n{"uid": "b", "system": "s"}\n')
    with pytest.raises(PredictionStoreError, match="line 1"):
        read_predictions(store.path)


def _table(argv, capsys):
    from evals.runner import table_main

    try:
        table_main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr()


@pytest.mark.slow
@pytest.mark.java
def test_longvid_table_rebuilds_from_the_folder_and_from_predictions_adds_a_row(tmp_path, capsys):
    """A predictions file made elsewhere is a row (text parsed, choices checked, missing items failed); the
    folder's table is rebuilt from its predictions and saved config without building any system — also after the
    file is gone —, with another reference or statistics; a partial folder exits 1; what cannot change is refused."""
    import shutil

    from evals.synthetic import SyntheticBenchmark

    ov = [f"paths.root={tmp_path}", *TINY, "progress=false", "report=false", "stats.resamples=200",
          "metrics.caption=[ROUGE-L,CIDEr]", "table.columns.summarization=[ROUGE-L,CIDEr]"]
    qa = SyntheticBenchmark(f"{tmp_path}/data/synthetic", "mcqa", generator=dict(
        cfg_for(ov).synthetic)).load()
    summ = SyntheticBenchmark(f"{tmp_path}/data/synthetic", "summarization", generator=dict(
        cfg_for(ov).synthetic)).load()
    lines = [{"uid": qa[0].uid, "choice": qa[0].answer}, {"uid": qa[1].uid, "text": "The answer is (B)."},
             {"uid": qa[2].uid, "choice": 9}, *[{"uid": s.uid, "text": s.references[0]} for s in summ]]
    ext = tmp_path / "elsewhere" / "preds.jsonl"
    ext.parent.mkdir()
    ext.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "out"
    cfg = cfg_for([*ov, f"out_dir={out}", "+system@systems.theirs=from_predictions", f"systems.theirs.path={ext}"])
    first = run_compare(cfg)
    preds = read_predictions(out / "synthetic_qa" / "theirs" / "predictions.jsonl")
    assert preds[qa[0].uid].choice == qa[0].answer and preds[qa[1].uid].choice == 1
    assert "not an option index" in preds[qa[2].uid].failure and "no prediction in" in preds[qa[3].uid].failure
    assert first["scores"]["synthetic_summary"]["theirs"]["ROUGE-L"].value > 0.9      # its own references back
    table = (out / "table.md").read_text()

    ext.unlink()                                                   # the "model" is gone: the table still renders
    (out / "table.md").unlink()
    code, io = _table([out], capsys)
    assert code == 1 and (out / "table.md").read_text() == table   # the same table (theirs fails most QA items)
    assert "longvid-table: FAILED" in io.err and "theirs on synthetic_qa" in io.err
    code, io = _table([out, "reference=theirs", "stats.resamples=300", "stats.confidence=0.9"], capsys)
    assert "| theirs (ref) |" in io.out and "90% paired-bootstrap CI" in io.out

    part = tmp_path / "partial"                                    # a partial run: missing items are named
    shutil.copytree(out, part)
    f = part / "synthetic_summary" / "train_prior" / "predictions.jsonl"
    f.write_text("".join(f.read_text().splitlines(keepends=True)[:2]))
    code, io = _table([part], capsys)
    assert code == 1 and "train_prior on synthetic_summary: 4 of 6 items not predicted (an interrupted run" in io.err
    assert "synthetic_summary / train_prior: 6 items, 0 failed, 4 not predicted" in io.out

    code, io = _table([out, "systems.theirs.path=x"], capsys)
    assert code == 2 and "cannot change ['systems']" in io.err
    code, io = _table([tmp_path / "nope"], capsys)
    assert code == 2 and "config.yaml not found" in io.err
    code, io = _table([out, "reference=nobody"], capsys)
    assert code == 2 and "reference='nobody' is not a system" in io.err


def test_frame_budget_sweep_shares_frames_reuses_predictions_and_plots(tmp_path, capsys):
    """`sweep.frames=[...]`: one comparison per budget (N frames per video for every row), in frames_<N>/; a rerun
    predicts nothing again; sweep.{md,json,png}; the plot is a figure of the largest budget's report."""
    from evals.runner import cli

    log = tmp_path / "calls.log"
    ov = [f"paths.root={tmp_path}", *TINY, "progress=false", "stats.resamples=100", "~benchmarks.synthetic_summary",
          "+systems.decoding._target_=tests.helpers.DecodingSystem", "+systems.decoding.video=${video}",
          "+systems.slow._target_=tests.helpers.SlowEcho", f"+systems.slow.log={log}", "+systems.slow.delay=0",
          "sweep.frames=[4,2]", "report_options.thumbnails=1"]
    assert cli(cfg_for(ov)) == 0
    out = tmp_path / "outputs" / "compare" / "synthetic"
    for n in (2, 4):
        preds = read_predictions(out / f"frames_{n}" / "synthetic_qa" / "decoding" / "predictions.jsonl")
        assert preds and all(p.failure is None for p in preds.values())
        assert f"max_frames: {n}" in (out / f"frames_{n}" / "config.yaml").read_text()
    sweep = json.loads((out / "sweep.json").read_text())
    assert sweep["synthetic_qa"]["metric"] == "accuracy" and sweep["synthetic_qa"]["frames"] == [2, 4]
    assert set(sweep["synthetic_qa"]["systems"]) == {"first_option", "decoding", "slow"}
    v, lo, hi = sweep["synthetic_qa"]["systems"]["decoding"]["4"]
    assert lo <= v <= hi
    assert (out / "sweep.png").stat().st_size > 5000 and "| decoding |" in (out / "sweep.md").read_text()
    report = (out / "frames_4" / "report" / "index.html").read_text()
    assert "headline metric vs frames per video" in report and not (out / "frames_2" / "report").exists()
    assert "frame sweep:" in capsys.readouterr().out
    calls = log.read_text().splitlines()
    assert cli(cfg_for(ov)) == 0 and log.read_text().splitlines() == calls      # nothing predicted again


def test_shards_predict_disjoint_shares_at_once_and_longvid_table_merges_them(tmp_path, capsys):
    """`shard=I/N`: N processes on one out_dir (at once: each holds its own shard's lock) predict disjoint shares
    covering every item; `longvid-table` merges them into the unsharded run's table; a missing shard is named."""
    from evals.runner import cli

    base = [f"paths.root={tmp_path}", *TINY, "progress=false", "stats.resamples=100", "report=false",
            "~benchmarks.synthetic_summary"]
    full = tmp_path / "full"
    assert cli(cfg_for([*base, f"out_dir={full}"])) == 0
    out = tmp_path / "sharded"
    procs = [subprocess.Popen([sys.executable, "-c", "from evals.runner import main; main()", *base, f"out_dir={out}",
                               f"shard={i}/3"], env=_env(), cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    assert all(f"shard {i}/3 done" in o[0] and f"longvid-table {out}" in o[0] for i, o in enumerate(outs))
    shares = [set(read_predictions(out / "synthetic_qa" / "first_option" / f"predictions.shard-{i}-of-3.jsonl"))
              for i in range(3)]
    everything = set(read_predictions(full / "synthetic_qa" / "first_option" / "predictions.jsonl"))
    assert all(shares) and set().union(*shares) == everything and sum(map(len, shares)) == len(everything)
    assert not (out / "table.md").exists() and "shard: null" in (out / "config.yaml").read_text()
    assert cli(cfg_for([*base, f"out_dir={out}", "shard=1/3"])) == 0          # a rerun of a shard: nothing to do

    capsys.readouterr()
    code, io = _table([out], capsys)
    assert code == 0 and (out / "table.md").read_text() == (full / "table.md").read_text()
    odd = out / "synthetic_qa" / "first_option" / "run.shard-0-of-3.json"      # a shard made by another system
    good = odd.read_text()
    odd.write_text(good.replace(json.loads(good)["identity_hash"], "0123456789ab"))
    code, io = _table([out], capsys)
    assert code == 2 and "its parts were made by different systems (identity_hash: run.shard-0-of-3.json " \
                         "0123456789ab" in io.err
    odd.write_text(good)
    (out / "synthetic_qa" / "first_option" / "predictions.shard-2-of-3.jsonl").unlink()
    code, io = _table([out], capsys)
    assert code == 1 and f"{len(shares[2])} not predicted" in io.out
    broken = [*base, f"out_dir={tmp_path / 'broken'}", "shard=0/2", "+systems.broken._target_=tests.helpers.FromFile",
              f"+systems.broken.checkpoint={tmp_path / 'no_weights'}"]
    assert cli(cfg_for(broken)) == 1                       # a shard that failed wholesale does not exit 0
    assert "FAILED (shard 0/2): broken on synthetic_qa:" in capsys.readouterr().err
    assert cli(cfg_for([*base, f"out_dir={out}", "shard=3/3"])) == 2
    assert "shard='3/3': expected \"I/N\" with 0 <= I < N" in capsys.readouterr().err


def test_shard_auto_reads_the_launcher(monkeypatch):
    """`shard=auto`: torchrun's RANK / WORLD_SIZE, or a SLURM array's task id counted from its first task; with
    neither (or a stepped array) it is refused, naming what to give instead."""
    from omegaconf import OmegaConf

    from evals.runner import ConfigError, _shard

    for var in ("RANK", "WORLD_SIZE", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
                "SLURM_ARRAY_TASK_STEP"):
        monkeypatch.delenv(var, raising=False)
    auto = OmegaConf.create({"shard": "auto"})
    with pytest.raises(ConfigError, match="no launcher found .* give shard=I/N"):
        _shard(auto)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "5")                  # --array=5-8
    assert _shard(auto) == (2, 4)
    monkeypatch.setenv("SLURM_ARRAY_TASK_STEP", "2")
    with pytest.raises(ConfigError, match="step other than 1"):
        _shard(auto)
    monkeypatch.setenv("RANK", "3")                                   # torchrun wins when both are set
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert _shard(auto) == (3, 8)
    monkeypatch.setenv("RANK", "8")
    with pytest.raises(ConfigError, match="0 <= I < N"):
        _shard(auto)
