"""The HF transformers backend on the real SmolLM2-135M-Instruct: generation, choice constraint, option
scoring against a manual computation, batched == sequential, the response cache."""
import os
import time

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
    # cached: a new backend on the same model and cache answers without loading the model
    again = HFChat(str(smollm2_dir), model=llm.model, dtype="float32", cache=str(tmp_path / "llm.sqlite"))
    assert again.chat([CONV, conv2], Sampling(max_tokens=8)) == out and again.lm is None


def test_hf_backend_bad_path_names_it(tmp_path):
    with pytest.raises(ValueError, match="not a model folder"):
        HFChat(str(tmp_path / "missing")).chat([CONV])
    with pytest.raises(ValueError, match="dtype"):
        HFChat(str(tmp_path), dtype="int8")


def test_two_checkpoints_under_one_name_never_share_cached_answers(tmp_path):
    """The default `llm=hf` names the model `SmolLM2-135M-Instruct` whatever the path: the cache key is the
    weights' identity (path, file sizes and times) and dtype, so another checkpoint (or one rewritten in place)
    is asked again."""
    from longvid.model.tiny_lm import build_tiny_lm

    a = build_tiny_lm(tmp_path / "a", seed=0, progress=False)
    b = build_tiny_lm(tmp_path / "b", seed=1, progress=False)
    for d in (a, b):                                            # a minimal chat template for HFChat's prompts
        open(os.path.join(d, "chat_template.jinja"), "w").write("{% for m in messages %}{{ m['content'] }}\n{% endfor %}")
    cache = str(tmp_path / "llm.sqlite")
    conv = [{"role": "user", "content": "a small language model"}]
    first = HFChat(a, model="same-name", dtype="float32", cache=cache)
    other = HFChat(b, model="same-name", dtype="float32", cache=cache)
    (sa,), (sb,) = first.score([conv], [["small", "model"]]), other.score([conv], [["small", "model"]])
    assert sa != sb and other.lm is not None                    # b was really asked, not served a's answer
    assert first.identity()["weights"]["path"] == a and first.identity() != other.identity()
    # the same checkpoint again: answered from the cache, the model never loaded
    again = HFChat(a, model="same-name", dtype="float32", cache=cache)
    assert again.score([conv], [["small", "model"]]) == [sa] and again.lm is None
    # another dtype is another model
    assert HFChat(a, model="same-name", dtype="bfloat16").identity() != first.identity()
    # retrained in place: same path, new files -> asked again
    weights = os.path.join(a, "model.safetensors")
    os.utime(weights, ns=(time.time_ns(), time.time_ns() + 10**9))
    moved = HFChat(a, model="same-name", dtype="float32", cache=cache)
    assert moved.identity() != first.identity()
    moved.score([conv], [["small", "model"]])
    assert moved.lm is not None
