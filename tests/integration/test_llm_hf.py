"""The HF transformers backend on the real SmolLM2-135M-Instruct: generation, choice constraint, option
scoring against a manual computation, batched == sequential, the response cache."""
import pytest
import torch

from baselines.llm.hf import HFChat
from evals.contracts import Sampling

CONV = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


@pytest.mark.slow
def test_hf_backend_on_smollm2(smollm2_dir, tmp_path):
    llm = HFChat(str(smollm2_dir), dtype="float32", cache=str(tmp_path / "llm.sqlite"))
    conv2 = [{"role": "user", "content": "Name a colour."}]
    out = llm.chat([CONV, conv2], Sampling(max_tokens=8))
    assert "Paris" in out[0] and out[1]
    batched = HFChat(str(smollm2_dir), dtype="float32", batch_size=2)
    batched.lm, batched.tokenizer = llm.lm, llm.tokenizer         # same weights, no second load
    assert batched.chat([CONV, conv2], Sampling(max_tokens=8)) == out
    # choice: the likeliest choice as the reply
    assert llm.chat([CONV], choice=["London", "Paris", "Rome"]) == ["Paris"]
    # score: summed log-probs of the option tokens after the chat prompt, checked by hand
    (row,) = llm.score([CONV], [["Paris", "Berlin"]])
    tok, lm = llm.tokenizer, llm.lm
    prompt = tok(llm.prompt_text(CONV), add_special_tokens=False)["input_ids"]
    opt = tok("Berlin", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = lm(torch.tensor([prompt + opt])).logits.log_softmax(-1)[0]
    manual = sum(float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(opt))
    assert row[1] == (pytest.approx(manual, abs=1e-3), len(opt)) and row[0][0] > row[1][0]
    # cached: a new backend on the same cache answers without loading the model
    again = HFChat("/nonexistent/model", model=llm.model, dtype="float32", cache=str(tmp_path / "llm.sqlite"))
    assert again.chat([CONV, conv2], Sampling(max_tokens=8)) == out and again.lm is None


def test_hf_backend_bad_path_names_it(tmp_path):
    with pytest.raises(ValueError, match="not a model folder"):
        HFChat(str(tmp_path / "missing")).chat([CONV])
    with pytest.raises(ValueError, match="dtype"):
        HFChat(str(tmp_path), dtype="int8")
