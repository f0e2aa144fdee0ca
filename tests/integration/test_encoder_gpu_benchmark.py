"""The GPU encoder benchmark's CPU side: the same script, a tiny geometry on the CPU (no GPU in CI). It builds ours
and both transformers peers, times them side by side in one process, counts FLOPs and prints every target."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_encoder_gpu_benchmark_runs_on_cpu(tmp_path):
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "encoder_gpu.py"), "--device", "cpu", "--geometry",
                        "tiny", "--frames", "4", "--batch", "2", "--steps", "1", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "encoder_gpu.json").read_text())
    names = [row["name"] for row in res["rows"]]
    assert len(names) == 12 + 1 + 3                      # ours: 2 attentions x 3 masks x 2 tunings; ViViT; VideoMAE x 3
    assert {"vivit/m0.0/f4", "videomae/m0.75/f4", "ours/factorized/m0.75/last4/f4"} <= set(names)
    masked = next(row for row in res["rows"] if row["name"] == "ours/joint/m0.75/full/f4")
    full = next(row for row in res["rows"] if row["name"] == "ours/joint/m0.0/full/f4")
    assert 0 < masked["tflop"] < full["tflop"] and masked["tokens"] < full["tokens"]
    assert len(res["targets"]) == 6 and all(t.split()[0] in ("PASS", "FAIL", "SKIP") for t in res["targets"])
    assert "activation memory vs VivitModel: not measured" in r.stdout     # CUDA's allocator statistics only
