"""The README's main command at smoke size: every step for real (contrastive training, video-to-text training on
SmolLM2, the modular baseline through a launched vLLM server, the comparison and its report), a few videos
and two steps each; then a rerun that starts nothing and prints the same table."""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROWS = ["LongViViT", "ShortViViT", "ImageViT", "captions_llm", "oracle_segments_llm", "blind_llm"]


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.java
def test_pipeline_from_nothing_then_all_cached(tmp_path, smollm2_dir):
    pytest.importorskip("vllm")
    cmd = [sys.executable, "-m", "longvid.pipeline", f"paths.root={tmp_path}", f"smollm2_dir={smollm2_dir}",
           "synthetic.n_train=6", "synthetic.n_val=2", "synthetic.n_test=3", "synthetic.max_duration=40",
           "synthetic.min_duration=20", "budget.stage1=2", "budget.stage2=2", "budget.v2t_summarize=2",
           "budget.v2t_qa=2", "budget.v2t_caption=2",
           'module_args.train=["data.batch_size=4","data.image_batch_size=4","trainer.enable_progress_bar=false"]',
           'module_args.train_v2t=["data.batch_size=2","trainer.enable_progress_bar=false","data.limit=4"]',
           'module_args.runner=["stats.resamples=100","metrics.caption=[BLEU-4,ROUGE-L,CIDEr]","progress=false"]']
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=1800)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    table = (tmp_path / "outputs" / "compare" / "pipeline" / "table.md").read_text()
    for row in ROWS:
        assert f"| {row}" in table, table
    assert (tmp_path / "outputs" / "compare" / "pipeline" / "report" / "index.html").exists()
    assert table in first.stdout                                   # printed at the end of the run
    t = time.perf_counter()
    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert time.perf_counter() - t < 60
    ran = re.findall(r"^\[pipeline\] (\S+): \d+ s$", first.stdout, re.M)
    assert len(ran) == 12 and "compare" in ran
    assert re.findall(r"^\[pipeline\] (\S+): done before, skipped$", again.stdout, re.M) == ran
    assert (tmp_path / "outputs" / "compare" / "pipeline" / "table.md").read_text() == table
