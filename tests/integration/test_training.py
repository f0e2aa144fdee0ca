"""The contrastive recipe end to end at tiny sizes: stage 1 -> export -> stage 2 from it; resume; DDP."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from evals import config_dir
from longvid.model.dual import DualEncoder, load_tokenizer
from longvid.train import train

REPO = Path(__file__).resolve().parents[2]
TINY = ["synthetic.n_train=8", "synthetic.n_val=4", "synthetic.n_test=2", "synthetic.max_duration=24",
        "model.encoder.width=32", "model.encoder.depth=2", "model.encoder.heads=2", "model.encoder.mlp_dim=64",
        "model.encoder.embed_dim=16", "model.encoder.image_size=32", "model.encoder.patch_size=16",
        "model.text.hidden_size=32", "model.text.num_attention_heads=2", "model.text.intermediate_size=64",
        "model.text.num_hidden_layers=1", "model.text.embed_dim=16", "model.text.vocab_size=120",
        "data.batch_size=4", "data.image_batch_size=4", "trainer.log_every_n_steps=1",
        "trainer.enable_progress_bar=false"]


def cfg_for(overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("train", overrides=overrides)


@pytest.mark.slow
def test_stage1_then_stage2_then_resume(tmp_path, capsys):
    base = [f"paths.root={tmp_path}", *TINY]
    out1 = train(cfg_for(base + ["experiment=stage1_short", "model.encoder.num_frames=8", "trainer.max_steps=3"]))
    assert "trainable" in capsys.readouterr().out
    model = DualEncoder.from_pretrained(out1).eval()
    tok = load_tokenizer(out1)
    assert model.cfg.encoder.num_frames == 8 and len(tok) <= 120
    again = DualEncoder.from_pretrained(out1).eval()
    v = torch.randn(2, 3, 8, 32, 32)
    ids = tok(["a red square spins", "a blue circle grows"], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model.encode_video(v), again.encode_video(v))
        assert torch.equal(model.encode_text(ids["input_ids"], ids["attention_mask"]),
                           again.encode_text(ids["input_ids"], ids["attention_mask"]))
    # stage 2 starts from stage 1: positions interpolated to more frames; only the last layer trains
    out2 = train(cfg_for(base + ["experiment=stage2_long", "model.encoder.num_frames=16", "tuning.k=1",
                                 "trainer.max_steps=2", f"init_from={out1}"]))
    log = capsys.readouterr().out
    trainable, total = [int(x.replace(",", "")) for x in log.split("parameters: ")[1].split(" total")[0]
                        .replace(" trainable /", "").split()]
    assert trainable < total / 2
    long = DualEncoder.from_pretrained(out2)
    assert long.video.pos_time.shape[0] == 8
    assert load_tokenizer(out2).get_vocab() == tok.get_vocab()   # stage 2 keeps stage 1's tokenizer
    s1 = DualEncoder.from_pretrained(out1)
    assert torch.equal(long.video.blocks[0].attn.qkv.weight, s1.video.blocks[0].attn.qkv.weight)  # frozen
    assert not torch.equal(long.video.blocks[1].attn.qkv.weight, s1.video.blocks[1].attn.qkv.weight)
    # rerun: resumes from last.ckpt at max_steps, so nothing more is trained and the export is identical
    before = (out2 / "model.safetensors").read_bytes()
    train(cfg_for(base + ["experiment=stage2_long", "model.encoder.num_frames=16", "tuning.k=1",
                          "trainer.max_steps=2", f"init_from={out1}"]))
    assert (out2 / "model.safetensors").read_bytes() == before


@pytest.mark.slow
def test_a_crashed_run_resumes_exactly(tmp_path):
    """Crash twice (after the checkpoints at steps 2 and 4, mid-epoch; the image loader cycles at another
    length), resume each time: the model equals the one of an uninterrupted run, bit for bit."""
    base = [*TINY, "synthetic.n_train=12", "experiment=stage1_short", "model.encoder.num_frames=8",
            "trainer.max_steps=7", "checkpoint_every=2", "mask_ratio=0.5", "data.image_batch_size=5"]
    straight = train(cfg_for([f"paths.root={tmp_path / 'a'}", *base]))
    crash = "callbacks=[{_target_:tests.helpers.CrashAtStep,step:%d}]"
    run = [f"paths.root={tmp_path / 'b'}", *base]
    for step in (3, 5):
        with pytest.raises(RuntimeError, match=f"simulated crash at step {step}"):
            train(cfg_for(run + [crash % step]))
        last = tmp_path / "b" / "outputs" / "train" / "stage1_short" / "ckpt" / "last.ckpt"
        assert torch.load(last, weights_only=False)["global_step"] == step - 1   # the checkpoint it resumes from
    resumed = train(cfg_for(run))
    assert (resumed / "model.safetensors").read_bytes() == (straight / "model.safetensors").read_bytes()


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    cmd = [sys.executable, "-m", "longvid.train", f"paths.root={tmp_path}", *TINY, "experiment=eff_short",
           "model.encoder.num_frames=8", "trainer=ddp_cpu", "trainer.max_steps=2", "data.images=null"]
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "training on 2 device(s) (DDPStrategy), global batch 4" in r.stdout, r.stdout[-2000:]
    assert "INFO" not in r.stdout + r.stderr and "Total params" not in r.stdout   # no library chatter
    assert (tmp_path / "outputs" / "train" / "eff_short" / "model" / "model.safetensors").exists()


@pytest.mark.slow
def test_zero_shot_retrieval_of_a_saved_encoder(tmp_path):
    from longvid.retrieval import evaluate_retrieval
    from evals.synthetic import SyntheticBenchmark

    base = [f"paths.root={tmp_path}", *TINY]
    out = train(cfg_for(base + ["experiment=stage1_short", "model.encoder.num_frames=4", "trainer.max_steps=2"]))
    model, tok = DualEncoder.from_pretrained(out), load_tokenizer(out)
    samples = SyntheticBenchmark(str(tmp_path / "data" / "synthetic"), task="captioning", split="val",
                                 generator=dict(n_train=8, n_val=4, n_test=2, max_duration=24)).load()
    res = evaluate_retrieval(model, tok, samples, batch_size=4, progress=False)
    assert res["n_videos"] == len(samples) and res["n_texts"] <= len(samples)
    assert 0 <= res["t2v/R@1"] <= 100 and res["t2v/MdR"] >= 1
    # the CLI path, untrained weights of the same architecture
    r = subprocess.run([sys.executable, "-c", "from longvid.retrieval import main; main()", f"paths.root={tmp_path}",
                        f"checkpoint={out}", "random_init=true", "benchmark=synthetic_captions", "benchmark.split=val",
                        "synthetic.n_train=8", "synthetic.n_val=4", "synthetic.n_test=2", "synthetic.max_duration=24",
                        f"out={tmp_path / 'r.json'}"], cwd=tmp_path, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "t2v/R@1" in (tmp_path / "r.json").read_text()


def test_the_module_is_named_by_the_config_and_checked_first(tmp_path):
    """One training skeleton for both commands: `module` names the LightningModule; one that does not import, or
    lacks the skeleton's methods, is refused before data or model are built."""
    for module, message in (("longvid.nope.Module", "not an importable class"),
                            ("torch.nn.Linear", "a training module needs a `from_config` method")):
        with pytest.raises(ValueError, match=f"module={module}: {message}"):
            train(cfg_for([f"paths.root={tmp_path}", *TINY, f"module={module}"]))
        assert not (tmp_path / "data").exists()
