"""The README's main command at smoke size: every step for real (contrastive training, video-to-text training on
SmolLM2, the modular baseline through a launched vLLM server, the comparison and its report), a few videos
and two steps each. Then: a rerun starts nothing and prints the same table; and a second pipeline killed three
times (SIGKILL in a training step, SIGTERM in another, SIGKILL in the comparison) and rerun ends with the
same table as the uninterrupted one, leaving no process behind."""
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROWS = ["LongViViT", "ShortViViT", "ImageViT", "untrained_connector", "captions_llm", "oracle_segments_llm",
        "blind_llm"]
SMOKE = ["synthetic.n_train=6", "synthetic.n_val=2", "synthetic.n_test=3", "synthetic.max_duration=40",
         "synthetic.min_duration=20", "budget.stage1=2", "budget.stage2=2", "budget.v2t_summarize=2",
         "budget.v2t_qa=2", "budget.v2t_caption=2",
         'module_args.train=["data.batch_size=4","data.image_batch_size=4","trainer.enable_progress_bar=false",'
         '"checkpoint_every=1"]',
         'module_args.train_v2t=["data.batch_size=2","trainer.enable_progress_bar=false","data.limit=4",'
         '"checkpoint_every=1"]',
         'module_args.runner=["stats.resamples=100","metrics.caption=[ROUGE-L,CIDEr]","progress=false"]',
         "steps.encoder_memory.args=[--frames,16,32,--tunings,full,--no-peers,--no-peak,--steps,1,--budget,1,--ab-rounds,0,"
         "--skip,'ours/factorized/*','ours/*/m0.5/*',--out,'${paths.outputs}/pipeline/encoder_memory']"]
pytestmark = [pytest.mark.slow, pytest.mark.vllm, pytest.mark.java]


def pipeline(root, smollm2_dir):
    return [sys.executable, "-m", "longvid.pipeline", f"paths.root={root}", f"smollm2_dir={smollm2_dir}", *SMOKE]


def table_of(root) -> str:
    return (Path(root) / "outputs" / "compare" / "pipeline" / "table.md").read_text()


@pytest.fixture(scope="module")
def straight(tmp_path_factory, smollm2_dir):
    pytest.importorskip("vllm")
    root = tmp_path_factory.mktemp("straight")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.run(pipeline(root, smollm2_dir), cwd=root, capture_output=True, text=True, env=env,
                           timeout=1800)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return root, first.stdout, env


def test_pipeline_from_nothing_then_all_cached(straight, smollm2_dir):
    root, stdout, env = straight
    table = table_of(root)
    for row in ROWS:
        assert f"| {row}" in table, table
    report = root / "outputs" / "compare" / "pipeline" / "report"
    assert (report / "index.html").exists()
    assert (report / "plots" / "figure0_encoder_memory_curve.png").exists()   # made by the pipeline's memory step
    assert table in stdout                                          # printed at the end of the run
    t = time.perf_counter()
    again = subprocess.run(pipeline(root, smollm2_dir), cwd=root, capture_output=True, text=True, env=env,
                           timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert time.perf_counter() - t < 60
    ran = re.findall(r"^\[pipeline\] (\S+): \d+ s$", stdout, re.M)
    assert len(ran) == 13 and "compare" in ran and "encoder_memory" in ran
    assert re.findall(r"^\[pipeline\] (\S+): done before, skipped$", again.stdout, re.M) == ran
    assert table_of(root) == table


def test_every_trained_video_first_model_reads_the_video(straight):
    """Two different test videos give different outputs from every video-to-text model the pipeline trained (3
    encoders x summaries / QA, and the segment captioner): the log-likelihoods of fixed answers given each video;
    the same model with its connector untrained (the untrained_connector row: gates at zero) gives equal ones."""
    import torch

    from evals.contracts import MCQA, Sample
    from longvid.systems import V2TQA

    root, _, _ = straight
    videos = sorted((root / "data" / "synthetic").glob("*/videos/syn_test_*.mp4"))[:2]
    runs = sorted(p.parent for p in (root / "outputs" / "train").glob("v2t_*/model/v2t.safetensors"))
    assert len(videos) == 2 and len(runs) == 7, (videos, runs)    # 3 encoders x (summaries, QA) + the captioner
    answers = ["a red square spins.", "a blue circle grows.", "two"]
    for run in runs:
        scores = {}
        for connector in ("trained", "untrained"):
            qa = V2TQA(str(run), connector=connector, mask_ratio=0.0)
            qa.load()
            read, failed = qa._read([Sample(uid=v.stem, benchmark="b", task=MCQA, video=str(v), question="q",
                                            options=tuple(answers), answer=0) for v in videos])
            assert not failed
            clips = torch.stack([t for _, t in read])
            scores[connector] = qa.model.score_options(clips, qa.prompts.summarization, answers, qa.tokenizer)
        assert not torch.allclose(scores["trained"][0], scores["trained"][1]), run
        assert torch.allclose(scores["untrained"][0], scores["untrained"][1]), run


def _ours(tag: str) -> list[int]:
    """Live processes carrying our tag in their environment (the pipeline, its steps, a vLLM server)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                alive = (d / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"     # not a zombie
                if alive and tag.encode() in (d / "environ").read_bytes():
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


def _interrupted(cmd, root, env, when, sig) -> str:
    """Run the pipeline until `when(output so far)` holds, send `sig`, wait for it to end; return its output."""
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 1200
    while not when("".join(out)) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the pipeline ended before the kill point:\n" + "".join(out)[-3000:]
    proc.send_signal(sig)
    proc.wait(timeout=120)
    reader.join(timeout=30)
    return "".join(out)


def test_killed_anywhere_and_rerun_gives_the_same_table(straight, tmp_path, smollm2_dir):
    root, _, _ = straight
    tag = f"LONGVID_KILL_TEST={uuid.uuid4().hex}"
    env = {**os.environ, "PYTHONPATH": str(REPO), tag.split("=")[0]: tag.split("=")[1]}
    cmd = pipeline(tmp_path, smollm2_dir)
    ckpt = tmp_path / "outputs" / "train" / "stage1_short" / "ckpt" / "last.ckpt"
    preds = tmp_path / "outputs" / "compare" / "pipeline" / "synthetic_summary" / "captions_llm" / "predictions.jsonl"
    kills = [  # (kill point, signal)
        (lambda out: ckpt.exists(), signal.SIGKILL),                                  # mid-training, checkpointed
        (lambda out: "[pipeline] v2t_short_summarize:" in out, signal.SIGTERM),       # as a step starts
        (lambda out: preds.exists() and preds.stat().st_size > 0, signal.SIGKILL),    # mid-comparison, LLM up
    ]
    for when, sig in kills:
        out = _interrupted(cmd, tmp_path, env, when, sig)
        deadline = time.monotonic() + 60               # the running step (and a vLLM server) die with it
        while _ours(tag) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _ours(tag), f"processes left after {sig!r}: {_ours(tag)}\n{out[-2000:]}"
    final = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=1800)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    assert "[pipeline] short: done before, skipped" in final.stdout        # finished steps were not redone
    assert table_of(tmp_path) == table_of(root)
