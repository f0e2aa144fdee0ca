"""The video-to-text model end to end at tiny sizes: Lightning training (summarization, QA) on the synthetic
benchmark with a tiny encoder and a tiny text-pretrained LM -> export -> systems -> the paired runner."""
import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from safetensors.torch import load_file

from evals import config_dir
from longvid.model.dual import DualConfig, DualEncoder
from longvid.model.encoder import EncoderConfig
from longvid.model.text import TextConfig

SYN = ["synthetic.n_train=6", "synthetic.n_val=2", "synthetic.n_test=3", "synthetic.max_duration=24"]
LM = ["lm=tiny", "lm.pretrain_steps=30", "lm.batch_size=8", "lm.intermediate_size=256", "lm.vocab_size=400",
      "lm.progress=false"]
SMALL = ["model.latents=4", "model.resampler_depth=1", "model.resampler_heads=2", "model.xattn_heads=2",
         "model.every=1", "data.batch_size=4", "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false",
         "trainer.val_check_interval=1.0", "optim.lr=3e-3", "optim.warmup_steps=1"]


def tiny_encoder(path: Path) -> str:
    torch.manual_seed(0)
    enc = EncoderConfig(image_size=32, patch_size=16, tubelet_frames=2, num_frames=8, width=32, depth=1, heads=2,
                        mlp_dim=64, embed_dim=16)
    DualEncoder(DualConfig(encoder=enc, vocab_size=100, text=TextConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, embed_dim=16))
    ).save_pretrained(path)
    return str(path)


def compose_cfg(name, overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(name, overrides=overrides)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("v2t_home")
    return root, tiny_encoder(root / "encoder")


def train_cfg(home, exp, steps, extra=()):
    root, enc = home
    return compose_cfg("train_v2t", [f"paths.root={root}", f"encoder_path={enc}", f"experiment_v2t={exp}",
                                     f"trainer.max_steps={steps}", *SYN, *LM, *SMALL, *extra])


@pytest.fixture(scope="module")
def summarize_run(home):
    """Trains 4 steps (one epoch of the 6 training videos + validation) and exports; returns (out, log)."""
    import contextlib
    import io

    from longvid.train import train

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        out = train(train_cfg(home, "summarize", 4))
    return out, buf.getvalue()


@pytest.mark.slow
def test_training_updates_only_the_connector_and_logs_counts(summarize_run):
    from longvid.model.v2t import VideoToText

    out, log = summarize_run
    line = next(l for l in log.splitlines() if l.startswith("parameters:"))
    trainable, total = (int(x.replace(",", "")) for x in line.split()[1:5:3])
    assert 0 < trainable < total and "frozen: encoder" in line
    run_dir = out.parent
    counts = json.loads((run_dir / "params.json").read_text())
    assert counts["trainable"] == trainable and counts["total"] == total
    assert counts["total"] == counts["trainable"] + counts["encoder"] + counts["lm"]
    model = VideoToText.load(out)
    cfg = json.loads((out / "v2t_config.json").read_text())
    # frozen parts are bit-identical to their saved folders
    lm_saved = load_file(str(Path(cfg["lm_path"]) / "model.safetensors"))
    for k, v in model.lm.state_dict().items():
        k = k.replace(".layer.", ".")                       # GatedLayer wraps each decoder layer
        if k in lm_saved:
            assert torch.equal(v, lm_saved[k].to(v.dtype)), k
    enc_saved = load_file(str(Path(cfg["encoder_path"]) / "model.safetensors"))
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(v, enc_saved["video." + k]), k
    # trained parts moved from their initialisation (gates start at exactly 0)
    assert all(g.attn_gate.item() != 0 and g.ff_gate.item() != 0 for g in model.xattn)
    # the checkpoint holds only the trainable tensors (and optimizer state for them only)
    ck = torch.load(run_dir / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ck["state_dict"] and all(not k.startswith(("model.encoder.", "model.lm.")) for k in ck["state_dict"])
    n_opt = sum(v.numel() for st in ck["optimizer_states"][0]["state"].values() for k, v in st.items()
                if k == "exp_avg")
    assert n_opt == trainable
    assert (out / "prompts.json").is_file() and json.loads((out / "prompts.json").read_text())["task"] == "summarization"
    metrics = (run_dir / "logs" / "version_0" / "metrics.csv").read_text()
    assert "train/loss" in metrics and "val/loss" in metrics


@pytest.mark.slow
def test_load_from_checkpoint_and_resume(summarize_run, home):
    from longvid.lit.v2t import V2TModule
    from longvid.model.v2t import VideoToText
    from longvid.train import train

    out, _ = summarize_run
    mod = V2TModule.load_from_checkpoint(out.parent / "ckpt" / "last.ckpt", map_location="cpu")
    saved = VideoToText.load(out)
    for k, v in saved.trainable_state_dict().items():
        assert torch.equal(mod.model.trainable_state_dict()[k], v), k
    before = (out / "v2t.safetensors").read_bytes()
    train(train_cfg(home, "summarize", 4))                  # resumes at max_steps: nothing more, same export
    assert (out / "v2t.safetensors").read_bytes() == before


@pytest.fixture(scope="module")
def untrained(home):
    from longvid.train import train

    return train(train_cfg(home, "summarize", 0, ["run_name=untrained"]))


@pytest.fixture(scope="module")
def qa_run(home, summarize_run):
    """QA training starting from the summarization run's connector."""
    from longvid.train import train

    return train(train_cfg(home, "qa", 3, [f"init_from={summarize_run[0]}"]))


def compare_cfg(home, extra):
    root, _ = home
    return compose_cfg("compare", [f"paths.root={root}", f"out_dir={root / 'compare'}", "progress=false",
                                   "stats.resamples=50", "batch_size=2", *SYN, *extra])


@pytest.mark.slow
@pytest.mark.java
def test_export_to_runner_summaries_and_qa(home, summarize_run, untrained, qa_run):
    from evals.runner import run_compare
    from evals.store import read_predictions

    out, _ = summarize_run
    res = run_compare(compare_cfg(home, [
        "+system@systems.v2t=v2t_summarizer", f"systems.v2t.checkpoint={out}", "systems.v2t.max_new_tokens=24",
        "+system@systems.v2t_untrained=v2t_summarizer", f"systems.v2t_untrained.checkpoint={untrained}",
        "systems.v2t_untrained.max_new_tokens=24",
        "+system@systems.v2t_qa=v2t_qa", f"systems.v2t_qa.checkpoint={qa_run}",
        "+system@systems.v2t_qa_gen=v2t_qa", f"systems.v2t_qa_gen.checkpoint={qa_run}",
        "systems.v2t_qa_gen.method=generate", "systems.v2t_qa_gen.max_new_tokens=8"]))
    scores = res["scores"]
    for s in ("v2t", "v2t_untrained"):
        assert set(scores["synthetic_summary"][s]) >= {"ROUGE-L", "CIDEr"}
        assert len(scores["synthetic_summary"][s]["ROUGE-L"].per_item) == 3
    acc = scores["synthetic_qa"]["v2t_qa"]["accuracy"]
    assert acc.info["n_unparseable"] == 0 and acc.info["n_failed"] == 0     # likelihood: always a choice
    assert "v2t_qa_gen" in scores["synthetic_qa"]
    md = res["table"].markdown()
    assert "v2t_untrained" in md and "v2t_qa" in md
    base = Path(res["out"])
    preds = read_predictions(base / "synthetic_qa" / "v2t_qa" / "predictions.jsonl")
    assert len(preds) == 6
    for p in preds.values():
        assert p.failure is None and p.choice is not None and len(p.extra["option_scores"]) == 5
        assert p.choice == max(range(5), key=lambda i: p.extra["option_scores"][i])
        assert p.provenance["method"] == "likelihood" and p.provenance["prompt_version"]
    summ = read_predictions(base / "synthetic_summary" / "v2t" / "predictions.jsonl")
    assert len(summ) == 3 and all(p.text is not None and p.failure is None for p in summ.values())
    # the untrained export is the plain LM (gates at zero): its summaries equal the LM's own greedy text
    from longvid.systems import load_v2t

    model, _ = load_v2t(str(untrained))
    assert all(g.attn_gate.item() == 0 and g.ff_gate.item() == 0 for g in model.xattn)


@pytest.mark.slow
def test_caption_experiment_trains_and_captions_clips(home):
    from hydra.utils import instantiate

    from longvid.systems import V2TCaptioner
    from longvid.train import train

    out = train(train_cfg(home, "caption", 2, ["data.limit=8"]))
    root, _ = home
    cfg = compose_cfg("compare", [f"paths.root={root}", *SYN, "+benchmark@probe=synthetic_captions"])
    samples = instantiate(cfg.probe).load()[:3]
    cap = V2TCaptioner(str(out), name="cap", max_new_tokens=8)
    preds = list(cap.predict(samples))
    assert [p.uid for p in preds] == [s.uid for s in samples]
    assert all(p.failure is None and isinstance(p.text, str) for p in preds)
    assert json.loads((out / "prompts.json").read_text())["task"] == "captioning"


def test_a_missing_encoder_is_named_before_training(tmp_path):
    from longvid.train import train

    with pytest.raises(Exception, match=r"encoder_path=.*nowhere: not a saved DualEncoder"):   # (Hydra wraps it)
        train(compose_cfg("train_v2t", [f"paths.root={tmp_path}", f"encoder_path={tmp_path / 'nowhere'}"]))
