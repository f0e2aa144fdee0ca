"""Scoring a model outside the suite: the `longvid-score` command, Python on plain dicts, `evaluate`."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evals.score import read_external, score_file
from evals.synthetic import SyntheticBenchmark

pytestmark = pytest.mark.java
TINY = dict(n_train=4, n_val=2, n_test=4, max_duration=32)


@pytest.fixture(scope="module")
def qa(tmp_path_factory):
    return SyntheticBenchmark(str(tmp_path_factory.mktemp("syn")), task="mcqa", generator=TINY, workers=1)


def test_score_file_mcqa(qa, tmp_path):
    samples = qa.load()
    f = tmp_path / "p.jsonl"
    lines = [{"uid": s.uid, "choice": s.answer} for s in samples[:3]]
    lines[1] = {"uid": samples[1].uid, "text": f"The answer is {'ABCDE'[samples[1].answer]}."}
    f.write_text("\n".join(json.dumps(l) for l in lines) + "\n")
    res = score_file(qa, f, ["CIDEr"])
    n = len(samples)
    assert res["accuracy"] == pytest.approx(3 / n) and res["n_missing"] == n - 3


def test_score_file_rejects_bad_lines(qa, tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"uid": "nope", "choice": 1}\n')
    with pytest.raises(ValueError, match="not in benchmark"):
        score_file(qa, f, ["CIDEr"])
    f.write_text('{"uid": "a"}\n{"uid": "b", "choice": "B"}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_external(f)
    f.write_text('{"uid": "a"}\nnot json\n')
    with pytest.raises(ValueError, match="p.jsonl: line 2"):
        read_external(f)


@pytest.mark.slow
def test_score_command(tmp_path):
    bench = SyntheticBenchmark(str(tmp_path / "data" / "synthetic"), task="summarization", generator=TINY,
                               workers=1)
    samples = bench.load()
    f = tmp_path / "p.jsonl"
    f.write_text("\n".join(json.dumps({"uid": s.uid, "text": s.references[0]}) for s in samples) + "\n")
    overrides = [f"synthetic.{k}={v}" for k, v in TINY.items()]
    r = subprocess.run([sys.executable, "-c", "from evals.score import main; main()", f"paths.root={tmp_path}",
                        f"predictions={f}", f"out={tmp_path / 's.json'}", *overrides],
                       capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "s.json").read_text())
    assert res["ROUGE-L"] == pytest.approx(1.0) and res["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
    assert "CIDEr" in r.stdout


def test_evaluate_module_loads_offline_from_local_path(monkeypatch):
    import evaluate

    import evals.metrics.hf as hf
    from evals.metrics.caption import caption_scores

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    preds = ["a cat sits on a mat", "a dog", "two birds fly over the red house"]
    refs = [["a cat sits on the mat"], ["a dog runs", "the dog"], ["birds fly over a house", "two birds"]]
    m = evaluate.load(hf.CAPTION_METRICS)
    got = m.compute(predictions=preds, references=refs, metrics=["BLEU-4", "CIDEr", "ROUGE-L"])
    want = caption_scores({str(i): r for i, r in enumerate(refs)}, {str(i): p for i, p in enumerate(preds)},
                          ("BLEU-4", "CIDEr", "ROUGE-L"))
    assert got == {k: v.value for k, v in want.items()}
