"""Video-to-text prompts, frames, the tiny LM builder and the systems (summarizer, captioner, QA) on a tiny saved
model: likelihood QA picks the best-scored option, generation QA goes through the suite's parser, the
captioner's `caption(clips)` agrees with its `predict`, unreadable videos fail only their own item."""
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from evals.contracts import CAPTIONING, MCQA, SUMMARIZATION, Clip, Sample, Segment
from longvid.data.v2t import Prompts, encoder_geometry, left_pad, video_tensor
from tests.helpers import make_video, save_tiny_v2t

TEXTS = ["a red square spins. a blue circle grows.", "a green cross moves left.", "it spun", "What colour was it?"]


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    from longvid.model.tiny_lm import build_tiny_lm

    root = tmp_path_factory.mktemp("tinylm")
    (root / "texts.txt").write_text("\n".join(TEXTS * 5))
    return build_tiny_lm(root / "lm", [root / "texts.txt"], hidden_size=128, num_layers=2, num_heads=2,
                         intermediate_size=128, vocab_size=300, pretrain_steps=0, progress=False)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, lm_dir):
    root = tmp_path_factory.mktemp("v2t_sys")
    out = Path(save_tiny_v2t(root, lm_dir, task="mcqa", mask_ratio=0.3, gate=0.8))
    for i in range(3):
        make_video(root / "videos" / f"v{i}.mp4", n_frames=10, size=64, seed=i)
    return out, root / "videos"


def qa_sample(videos, i, n=5, video=None):
    opts = tuple(["it spun", "it grew", "red", "blue", "3"][:n])
    return Sample(uid=f"q{i}", benchmark="b", task=MCQA, video=video or str(videos / f"v{i % 3}.mp4"),
                  question="What did the red square do?", options=opts, answer=0)


def test_prompts(lm_dir):
    from transformers import AutoTokenizer

    p = Prompts()
    s = Sample(uid="a", benchmark="b", task=MCQA, video=None, question="Q?", options=("x", "y"), answer=1)
    assert p.user(s) == "Q?\nOptions:\n(A) x\n(B) y\nAnswer with the text of the correct option."
    assert Prompts.targets(s) == ["y"] and Prompts.targets(replace(s, answer=None)) == []
    summ = Sample(uid="v", benchmark="b", task=SUMMARIZATION, video=None, references=("a b.", " "))
    assert Prompts.targets(summ) == ["a b."] and p.user(summ) == p.summarization
    tok = AutoTokenizer.from_pretrained(lm_dir)                  # no chat template: user text + newline
    assert p.render(tok, summ) == p.summarization + "\n"
    assert Prompts.continuation("x\n", " y ") == "y" and Prompts.continuation("Answer:", "y") == " y"
    tok.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
                         "{% if add_generation_prompt %}<assistant>\n{% endif %}")
    assert p.render(tok, summ) == f"<user>{p.summarization}<assistant>\n"
    assert Prompts(chat=False).render(tok, summ) == p.summarization + "\n"
    assert Prompts(system="Be brief.").render(tok, summ).startswith("<system>Be brief.<user>")
    with pytest.raises(ValueError, match="unknown prompt fields"):
        Prompts.from_dict({"summary": "x"})
    assert Prompts().version() != Prompts(mcqa="{question} {options}").version()


def test_video_tensor_resizes_and_fixes_length():
    frames = np.random.default_rng(0).integers(0, 255, (5, 48, 48, 3), dtype=np.uint8)
    x = video_tensor(frames, 8, 32)
    assert x.shape == (3, 8, 32, 32) and -1 <= x.min() and x.max() <= 1
    assert torch.equal(video_tensor(frames[:, :32, :32], 5, 32)[:, 0], video_tensor(frames[:1, :32, :32], 1, 32)[:, 0])


def test_tiny_lm_is_cached_and_encodes_any_text(lm_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from longvid.model.tiny_lm import build_tiny_lm

    lm = AutoModelForCausalLM.from_pretrained(lm_dir)
    assert lm.config.hidden_size // lm.config.num_attention_heads == 64
    tok = AutoTokenizer.from_pretrained(lm_dir)
    text = "Ünïcode & unseen words: zebra 42!"
    ids = tok(text).input_ids
    assert ids[0] == tok.bos_token_id and tok.decode(ids, skip_special_tokens=True) == text
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in TEXTS))
    a = build_tiny_lm(tmp_path / "c", [tmp_path / "t.jsonl"], intermediate_size=64, vocab_size=300,
                      pretrain_steps=3, batch_size=2, progress=False)
    stamp = (tmp_path / "c").stat().st_mtime_ns
    assert build_tiny_lm(tmp_path / "c", [tmp_path / "t.jsonl"], intermediate_size=64, vocab_size=300,
                         pretrain_steps=3, batch_size=2, progress=False) == a
    assert (tmp_path / "c").stat().st_mtime_ns == stamp         # built once
    assert build_tiny_lm(tmp_path / "c", [tmp_path / "t.jsonl"], intermediate_size=64, vocab_size=300,
                         pretrain_steps=4, batch_size=2, progress=False) != a


def test_qa_likelihood_picks_the_best_scored_option(ckpt):
    from longvid.systems import V2TQA

    out, videos = ckpt
    qa = V2TQA(str(out), name="qa", batch_size=4, mask_ratio=0.0)
    samples = [qa_sample(videos, 0), qa_sample(videos, 1, n=3), qa_sample(videos, 2)]   # mixed option counts
    preds = {p.uid: p for p in qa.predict(samples)}
    assert set(preds) == {"q0", "q1", "q2"}
    for s in samples:
        p = preds[s.uid]
        assert p.failure is None and len(p.extra["option_scores"]) == len(s.options)
        assert p.choice == int(np.argmax(p.extra["option_scores"])) and p.text == s.options[p.choice]
        assert p.provenance["method"] == "likelihood" and p.provenance["mask_ratio"] == 0.0
    # the recorded scores are the model's option log-likelihoods
    qa.load()
    s = samples[0]
    prompt = qa.prompts.render(qa.tokenizer, s)
    from longvid.data.video import read_frames

    v = qa._tensor(read_frames(s.video, qa.sampling).array)[None]
    ref = qa.model.score_options(v, prompt, [Prompts.continuation(prompt, o) for o in s.options], qa.tokenizer,
                                 mask_ratio=0.0)
    assert np.allclose(preds["q0"].extra["option_logprob_sum"], ref[0].tolist(), atol=1e-3)
    # batching does not change a result
    alone = next(iter(V2TQA(str(out), name="qa", batch_size=1, mask_ratio=0.0).predict([samples[2]])))
    assert np.allclose(alone.extra["option_scores"], preds["q2"].extra["option_scores"], atol=1e-3)
    mean = {p.uid: p for p in V2TQA(str(out), reduction="mean", mask_ratio=0.0).predict(samples)}
    assert all(mean[u].choice == int(np.argmax(mean[u].extra["option_logprob_mean"])) for u in mean)


def test_qa_generate_uses_the_parser_and_bad_video_fails_alone(ckpt, tmp_path):
    from evals.parsing import parse_choice
    from longvid.systems import V2TQA

    out, videos = ckpt
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    samples = [qa_sample(videos, 0), qa_sample(videos, 1, video=str(tmp_path / "bad.mp4"))]
    preds = {p.uid: p for p in V2TQA(str(out), method="generate", max_new_tokens=6).predict(samples)}
    assert preds["q1"].failure and "bad.mp4" in preds["q1"].failure
    p = preds["q0"]
    assert p.failure is None and isinstance(p.text, str) and p.choice == parse_choice(p.text, samples[0].options)
    assert p.provenance["method"] == "generate"


def test_summarizer_and_captioner(ckpt):
    from longvid.data.video import VideoSampling, read_frames
    from longvid.systems import V2TCaptioner, V2TSummarizer, load_v2t

    out, videos = ckpt
    summ = V2TSummarizer(str(out), name="s", max_new_tokens=5, video={"fps": 1.0, "max_frames": 256})
    s = Sample(uid="v0", benchmark="b", task=SUMMARIZATION, video=str(videos / "v0.mp4"), references=("x",))
    (p,) = list(summ.predict([s]))
    assert p.failure is None and isinstance(p.text, str) and p.seconds > 0
    assert p.extra["prompt"] == summ.prompts.summarization + "\n"
    assert summ.model is load_v2t(str(out))[0]                  # shared by systems of one process
    cap = V2TCaptioner(str(out), name="c", max_new_tokens=6, mask_ratio=0.0)
    clip = Sample(uid="v1/0", benchmark="b", task=CAPTIONING, video=str(videos / "v1.mp4"), clip=Segment(2.0, 6.0),
                  references=("x",))
    (pc,) = list(cap.predict([clip]))
    f = read_frames(clip.video, VideoSampling(), 2.0, 6.0)
    assert f.array.shape[0] == 4
    assert cap.caption([Clip(f.array, 2.0, 6.0)]) == [pc.text]   # the Captioner protocol gives the same text
    assert len(cap.caption([Clip(f.array, 2.0, 6.0)] * 3)) == 3


def test_untrained_connector_is_the_same_model_reading_no_video(ckpt):
    """`connector: untrained` (the pipeline's reference row): the checkpoint's encoder and LM with the connector as
    initialised, gates at zero, so its scores do not depend on the video; the trained one's do, and the two
    rows never share cached answers."""
    from longvid.systems import V2TQA

    out, videos = ckpt
    trained, untrained = (V2TQA(str(out), name=c, connector=c, mask_ratio=0.0) for c in ("trained", "untrained"))
    for sys_ in (trained, untrained):
        sys_.load()
    assert all(g.attn_gate.item() == 0 for g in untrained.model.xattn)
    assert all(g.attn_gate.item() != 0 for g in trained.model.xattn)
    assert trained.identity() != untrained.identity()
    opts, vids = ("it spun", "it grew"), [torch.rand(1, 3, 8, 32, 32), torch.rand(1, 3, 8, 32, 32)]
    def scores(sys_):
        return [sys_.model.score_options(v, "What did the red square do?", list(opts), sys_.tokenizer) for v in vids]
    a, b = scores(untrained)
    assert torch.allclose(a, b)
    a, b = scores(trained)
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="q: connector must be"):
        V2TQA(str(out), name="q", connector="random")


def test_bad_checkpoint_fails_on_prepare(tmp_path):
    from longvid.systems import V2TSummarizer

    sys_ = V2TSummarizer(str(tmp_path / "nothing"))              # building is cheap
    with pytest.raises(FileNotFoundError, match="not a saved VideoToText"):
        sys_.prepare(None)


def test_cuda_means_this_process_gpu_under_a_launcher(monkeypatch):
    from longvid.systems import V2TSummarizer, local_device

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert local_device("cuda") == "cuda"
    monkeypatch.setenv("LOCAL_RANK", "3")                     # torchrun: one process per GPU
    assert local_device("cuda") == "cuda:3" and local_device("cpu") == "cpu" and local_device("cuda:0") == "cuda:0"
    assert V2TSummarizer(checkpoint="unused", device="cuda").device == "cuda:3"


def test_left_pad_and_geometry(ckpt, lm_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(lm_dir)
    ids, am = left_pad(tok, ["a", "a red square"])
    assert ids.shape == am.shape and am[0, 0] == 0 and am[1].all() and ids[0, -1] == tok("a").input_ids[-1]
    out, _ = ckpt
    cfg = json.loads((out / "v2t_config.json").read_text())
    assert encoder_geometry(cfg["encoder_path"]) == {"num_frames": 8, "image_size": 32}


def test_subtitles_shown_at_the_frames_read_go_before_the_question(ckpt, tmp_path):
    """subtitles=true: the lines on screen at the timestamps of the frames the model reads precede the task text
    (a line between two sampled frames is not seen); the identity says so; no subtitle file anywhere is refused."""
    from dataclasses import replace

    from evals.contracts import ConfigError
    from longvid.data.video import read_frames
    from longvid.systems import V2TQA

    out, videos = ckpt
    s = qa_sample(videos, 0)
    qa = V2TQA(str(out), name="qa", mask_ratio=0.0, subtitles=True, video={"fps": 0.5, "max_frames": 256})
    times = read_frames(s.video, qa.sampling).timestamps
    assert len(times) >= 2 and times[1] - times[0] > 1.2
    srt = tmp_path / "s.srt"
    t0, t1 = float(times[0]), float(times[1])
    srt.write_text(f"1\n00:00:0{int(t0)},000 --> 00:00:0{int(t0)},900\nseen first\n\n"
                   f"2\n00:00:0{int(t0)},950 --> 00:00:0{int(t1) - 1},999\nbetween frames\n\n"
                   f"3\n00:00:0{int(t1)},000 --> 00:00:0{int(t1)},500\nseen second\n")
    with_subs = replace(s, meta={"subtitles": str(srt)})
    (p,) = list(qa.predict([with_subs]))
    assert "Subtitles: seen first seen second\n" in p.extra["prompt"] and "between frames" not in p.extra["prompt"]
    assert p.extra["prompt"].index("Subtitles:") < p.extra["prompt"].index(s.question)
    assert qa.identity()["subtitles"] is True and p.provenance["subtitles"] is True
    plain = V2TQA(str(out), name="qa", mask_ratio=0.0)
    assert "subtitles" not in plain.identity() and "Subtitles:" not in next(iter(plain.predict([s]))).extra["prompt"]
    with pytest.raises(ConfigError, match="no item of .* has a subtitle file"):
        qa.prepare(None, [s])
