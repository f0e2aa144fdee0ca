"""Video-to-text model: time pooling, gate-zero equivalence, KV-cached / beam generation, option scoring,
masking, frozen vs trainable parameters, save / load. A tiny random Llama (head_dim 64) and a tiny encoder."""
import pytest
import torch

from longvid.model.dual import DualConfig, DualEncoder
from longvid.model.encoder import EncoderConfig, ImageViT
from longvid.model.text import TextConfig
from longvid.model.v2t import (GatedCrossAttention, PerceiverResampler, V2TConfig, VideoToText, caption_batch,
                               time_pool)

ENC = dict(image_size=32, patch_size=16, tubelet_frames=2, num_frames=16, width=32, depth=1, heads=2, mlp_dim=64,
           embed_dim=16)  # N = 4 spatial positions
SMALL = dict(latents=4, resampler_depth=1, resampler_heads=2, xattn_heads=2, xattn_ff_mult=2, resampler_ff_mult=2)


def char_tokenizer():
    """Printable ASCII, one token per character, BOS prepended (ids < 100)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    vocab.update({chr(c): 4 + i for i, c in enumerate(range(32, 127))})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("v2t")
    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(hidden_size=128, num_attention_heads=2, num_key_value_heads=2,
                                      num_hidden_layers=2, intermediate_size=256, vocab_size=256,
                                      max_position_embeddings=256, initializer_range=0.3, bos_token_id=1, eos_token_id=2, pad_token_id=0))
    lm.save_pretrained(root / "lm")
    char_tokenizer().save_pretrained(root / "lm")
    dual = DualEncoder(DualConfig(encoder=EncoderConfig(**ENC), vocab_size=100,
                                  text=TextConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                  intermediate_size=64, embed_dim=16)))
    dual.save_pretrained(root / "enc")
    return root


@pytest.fixture(scope="module")
def tok(dirs):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(dirs / "lm"))


def build(dirs, seed=0, **kw) -> VideoToText:
    torch.manual_seed(seed)
    return VideoToText(V2TConfig(encoder_path=str(dirs / "enc"), lm_path=str(dirs / "lm"), **{**SMALL, **kw}))


def open_gates(vt: VideoToText, value=0.7):
    with torch.no_grad():
        for g in vt.xattn:
            g.attn_gate.fill_(value)
            g.ff_gate.fill_(value)
    return vt


def video(B=2, T=8, seed=0):
    return torch.randn(B, 3, T, 32, 32, generator=torch.Generator().manual_seed(seed))


def ids_of(tok, texts):
    return torch.tensor([tok(t).input_ids for t in texts])


def test_time_pool_ragged():
    tokens = torch.arange(12.0).view(1, 6, 2)                   # (1, K=6, D=2)
    s_ids = torch.tensor([[0, 2, 0, 2, 2, 0]])
    pooled, valid = time_pool(tokens, s_ids, 4)
    assert pooled.shape == (1, 4, 2) and valid.tolist() == [[True, False, True, False]]
    assert torch.allclose(pooled[0, 0], tokens[0, [0, 2, 5]].mean(0))
    assert torch.allclose(pooled[0, 2], tokens[0, [1, 3, 4]].mean(0))
    assert pooled[0, 1].abs().sum() == 0 and pooled[0, 3].abs().sum() == 0


def test_time_bins_keep_the_order_of_spans():
    tokens = torch.arange(16.0).view(1, 8, 2)                   # (1, K=8, D=2): 4 time steps x 2 positions
    t_ids, s_ids = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3]]), torch.tensor([[0, 1] * 4])
    pooled, valid = time_pool(tokens, s_ids, 2, t_ids, steps=4, bins=2)
    assert pooled.shape == (1, 4, 2) and valid.all()
    for slot, kept in enumerate([[0, 2], [1, 3], [4, 6], [5, 7]]):     # (first span: s0, s1), (second: s0, s1)
        assert torch.allclose(pooled[0, slot], tokens[0, kept].mean(0))
    assert torch.equal(time_pool(tokens, s_ids, 2)[0], time_pool(tokens, s_ids, 2, t_ids, 4, 1)[0])


def test_fixed_visual_token_count(dirs):
    vt = build(dirs).eval()
    for ratio in (0.0, 0.5):
        g = torch.Generator().manual_seed(0)
        x16, v16 = vt.encode(video(T=16), mask_ratio=ratio, generator=g)
        x256, v256 = vt.encode(video(T=256), mask_ratio=ratio, generator=g)
        assert x16.shape == x256.shape == (2, 4, 128) and v16.shape == v256.shape == (2, 4)
        assert vt.visual_latents(video(T=256), mask_ratio=ratio, generator=g).shape == (2, 4, 128)
    assert v16.all()                                             # 128 time steps at 50%: every position kept
    binned = build(dirs, time_bins=4).eval()                     # the same with order: 4 spans x 4 positions
    x, v = binned.encode(video(T=16))
    assert x.shape == (2, 16, 128) and v.all() and "visual_time" in binned.trainable_state_dict()
    with pytest.raises(ValueError, match="time_bins=64 but the encoder gives"):
        build(dirs, time_bins=64).encode(video(T=16))


def test_resampler_masked_positions_are_ignored():
    torch.manual_seed(0)
    rs = PerceiverResampler(16, latents=3, depth=2, heads=2, ff_mult=2)
    x = torch.randn(1, 5, 16)
    mask = torch.tensor([[True, False, True, True, False]])
    y = x.clone()
    y[:, [1, 4]] = 100.0
    assert torch.allclose(rs(x, mask), rs(y, mask), atol=1e-5) and rs(x, mask).shape == (1, 3, 16)
    assert not torch.allclose(rs(x), rs(y), atol=1e-3)


def test_gate_zero_equivalence(dirs, tok):
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(str(dirs / "lm")).eval()
    vt = build(dirs).eval()
    ids = ids_of(tok, ["a red ball", "xyz moves!"])
    am = torch.ones_like(ids)
    am[1, :2] = 0
    ref = plain(input_ids=ids, attention_mask=am).logits
    for seed in (0, 1):
        assert torch.equal(vt(video(seed=seed), ids, am).logits, ref)
    gca = GatedCrossAttention(8, 2)
    h = torch.randn(2, 3, 8)
    assert torch.equal(gca(h, torch.randn(2, 5, 8)), h)
    with pytest.raises(RuntimeError, match="visual context"):
        vt.lm(input_ids=ids)                                     # the wrapped LM needs a visual context


def test_open_gates_make_video_matter(dirs, tok):
    vt = open_gates(build(dirs)).eval()
    ids = ids_of(tok, ["a red ball"] * 2)
    assert not torch.allclose(vt(video(seed=0), ids).logits, vt(video(seed=1), ids).logits, atol=1e-4)


def test_mask_ratio_zero_is_noop_and_masking_is_seeded(dirs, tok):
    vt = open_gates(build(dirs)).eval()
    ids, v = ids_of(tok, ["hello", "world"]), video()
    base = vt(v, ids).logits
    assert torch.equal(vt(v, ids, mask_ratio=0.0).logits, base)
    run = lambda s: vt(v, ids, mask_ratio=0.3, generator=torch.Generator().manual_seed(s)).logits
    assert torch.equal(run(3), run(3)) and not torch.allclose(run(3), base, atol=1e-5)
    vt.cfg.mask_ratio = 0.3                                      # the config default applies when no arg
    g = torch.Generator().manual_seed(3)
    assert torch.equal(vt(v, ids, generator=g).logits, run(3))


def test_only_connector_trains(dirs, tok):
    vt = build(dirs)
    names = {n for n, p in vt.named_parameters() if p.requires_grad}
    assert names == {n for n, p in vt.named_parameters() if not n.startswith(("encoder.", "lm."))}
    assert names and names <= set(vt.trainable_state_dict())
    assert not any(k.startswith(("encoder.", "lm.")) for k in vt.trainable_state_dict())
    before = {n: p.detach().clone() for n, p in vt.named_parameters()}
    batch = caption_batch(tok, ["Q: what? A:", "Describe:"], [" a ball", " it spins"])
    opt = torch.optim.AdamW([p for p in vt.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    vt.train()
    assert not vt.encoder.training and not vt.lm.training and vt.resampler.training
    for step in range(2):                                        # step 1 moves the gates, step 2 the rest
        loss = vt(video(), **batch).loss
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for n, p in vt.named_parameters():
        if n in names:
            continue
        assert p.grad is None and torch.equal(p, before[n]), n  # frozen: bit-identical, no grads kept
    changed = {n for n in names if not torch.equal(vt.get_parameter(n), before[n])}
    assert {"xattn.0.attn_gate", "xattn.1.ff_gate", "resampler.latents", "in_proj.weight"} <= changed


def test_gate_learning_rate_multiplier(dirs):
    """`optim.lr_mult`: the gates get their own parameter group at lr x mult (one warm-up/cosine schedule for
    all groups); a suffix that names no trainable parameter is refused."""
    from types import SimpleNamespace

    from longvid.lit.optim import adamw_cosine

    vt = build(dirs)
    module = SimpleNamespace(model=vt, trainer=SimpleNamespace(estimated_stepping_batches=10))
    opt = adamw_cosine(module, 1e-3, 0.0, 2, {"attn_gate": 25, "ff_gate": 25})["optimizer"]
    rest, attn, ff = opt.param_groups
    assert attn["initial_lr"] == ff["initial_lr"] == pytest.approx(0.025) and rest["initial_lr"] == pytest.approx(1e-3)
    assert attn["lr"] == pytest.approx(25 * rest["lr"])                 # the same warm-up for every group
    assert len(attn["params"]) == len(ff["params"]) == len(vt.xattn)
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == \
        sum(p.numel() for p in vt.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="no trainable parameter name ends with 'gatee'"):
        adamw_cosine(module, 1e-3, 0.0, 2, {"gatee": 2})


def test_loss_only_on_answer_tokens(dirs, tok):
    vt = open_gates(build(dirs)).eval()
    batch = caption_batch(tok, ["Q: colour? A:"], [" red"], eos=False)
    assert (batch["labels"] != -100).sum() == 4 and batch["labels"][0, -4:].tolist() == tok(" red").input_ids[1:]
    v = video(B=1)
    loss = vt(v, **batch).loss
    score = vt.score_options(v, "Q: colour? A:", [" red"], tok, reduction="mean")
    assert torch.allclose(-loss, score[0, 0], atol=1e-5)


def manual_scores(vt, v, prompt, options, tok):
    """Sum of option-token log-probs, one unpadded forward per (video, option)."""
    out = torch.zeros(v.shape[0], len(options))
    for b in range(v.shape[0]):
        for j, o in enumerate(options):
            p_ids, o_ids = tok(prompt).input_ids, tok(o, add_special_tokens=False).input_ids
            ids = torch.tensor([p_ids + o_ids])
            logp = vt(v[b:b + 1], ids).logits[0, :-1].log_softmax(-1)
            tgt = torch.arange(len(p_ids) - 1, ids.shape[1] - 1)
            out[b, j] = logp[tgt, ids[0, tgt + 1]].sum()
    return out


def test_score_options(dirs, tok):
    vt = open_gates(build(dirs)).eval()
    v = video(B=2)
    opts = [" ab", " a", " abc", " zebra crossing"]
    with torch.no_grad():
        ref = manual_scores(vt, v, "Which? ", opts, tok)
    got = vt.score_options(v, "Which? ", opts, tok, chunk=3)   # ragged options, left-padded, chunked
    assert got.shape == (2, 4) and torch.allclose(got, ref, atol=1e-4)
    assert torch.equal(got.argmax(1), ref.argmax(1))
    assert (got[:, 1] > got[:, 0]).all() and (got[:, 0] > got[:, 2]).all()  # a prefix is always likelier
    per_video = vt.score_options(v, ["Which? ", "Which? "], [opts, opts[::-1]], tok)
    assert torch.allclose(per_video[1], got[1].flip(0), atol=1e-4)
    mean = vt.score_options(v, "Which? ", opts, tok, reduction="mean")
    lens = torch.tensor([len(tok(o, add_special_tokens=False).input_ids) for o in opts], dtype=torch.float)
    assert torch.allclose(mean, got / lens, atol=1e-5)


def greedy_by_hand(vt, v, ids, steps, eos=2):
    seq = ids
    for _ in range(steps):
        nxt = vt(v, seq).logits[:, -1].argmax(-1, keepdim=True)
        seq = torch.cat([seq, nxt], 1)
    out = seq[:, ids.shape[1]:].tolist()
    return [row[:row.index(eos) + 1] if eos in row else row for row in out]


def test_generation_kv_cache_beams_and_left_padding(dirs, tok):
    vt = open_gates(build(dirs)).eval()
    v = video(B=2)
    ids = ids_of(tok, ["say:", "tell"])
    gen = vt.generate(v, ids, max_new_tokens=6)
    with torch.no_grad():
        ref = greedy_by_hand(vt, v, ids, 6)                     # no cache, full recomputation each step
    assert [row[:len(r)] for row, r in zip(gen.tolist(), ref)] == ref
    # ragged prompts left-padded in one batch == each prompt alone
    p = [tok("hi").input_ids, tok("a longer prompt").input_ids]
    L = max(map(len, p))
    padded = torch.tensor([[0] * (L - len(x)) + x for x in p])
    am = (torch.arange(L)[None] >= torch.tensor([L - len(x) for x in p])[:, None]).long()
    batched = vt.generate(v, padded, attention_mask=am, max_new_tokens=5)
    for b in range(2):
        alone = vt.generate(v[b:b + 1], torch.tensor([p[b]]), max_new_tokens=5)
        assert batched[b, :alone.shape[1]].tolist() == alone[0].tolist()
    beams = vt.generate(v, ids, max_new_tokens=5, num_beams=3, num_return_sequences=2)
    assert beams.shape[0] == 4 and 1 <= beams.shape[1] <= 5 and beams.dtype == torch.long
    alone = vt.generate(v[1:], ids[1:], max_new_tokens=5, num_beams=3, num_return_sequences=2)
    assert torch.equal(beams[2:, :alone.shape[1]], alone)      # each beam row sees its own video
    assert len(set(map(tuple, gen.tolist()))) == 2              # the tiny LM is not degenerate


def test_save_load_roundtrip(dirs, tok, tmp_path):
    vt = open_gates(build(dirs, seed=5), 0.5).eval()
    v, ids = video(), ids_of(tok, ["go:", "run"])
    gen = vt.generate(v, ids, max_new_tokens=8)
    vt.save(tmp_path / "ckpt")
    back = VideoToText.load(tmp_path / "ckpt").eval()
    assert back.cfg == vt.cfg
    assert torch.equal(back.generate(v, ids, max_new_tokens=8), gen)
    for k, t in vt.trainable_state_dict().items():
        assert torch.equal(back.trainable_state_dict()[k], t)
    fresh = build(dirs, seed=6)                                  # sanity: different weights differ
    assert not torch.equal(fresh.resampler.latents, back.resampler.latents)


def test_imagevit_encoder_passed_in(dirs, tok):
    torch.manual_seed(0)
    enc = ImageViT(EncoderConfig(**ENC), fusion="average")
    vt = open_gates(VideoToText(V2TConfig(lm_path=str(dirs / "lm"), visual_tokens=4, **SMALL), encoder=enc))
    out = vt(video(T=6), ids_of(tok, ["ab", "cd"]))
    assert out.logits.shape == (2, 3, 256)
    with pytest.raises(ValueError, match="save"):
        vt.save(dirs / "nope")                                   # no encoder_path to reference


def test_config_errors(dirs):
    with pytest.raises(ValueError, match="visual_tokens"):
        build(dirs, visual_tokens=5)
    with pytest.raises(ValueError, match="every"):
        build(dirs, every=0)
    vt = build(dirs, every=2)
    assert len(vt.xattn) == 1
    with pytest.raises(ValueError, match="already"):
        VideoToText(V2TConfig(**SMALL), encoder=vt.encoder, lm=vt.lm)
    with pytest.raises(TypeError, match="model.layers"):
        VideoToText(V2TConfig(**SMALL), encoder=vt.encoder, lm=torch.nn.Linear(2, 2))


def test_qwen2_family_lm(dirs, tok, tmp_path):
    """Any HF causal LM with `model.layers`: a tiny Qwen2 gets the same gate-zero equivalence, trains and
    generates."""
    from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    Qwen2ForCausalLM(Qwen2Config(hidden_size=128, num_attention_heads=2, num_key_value_heads=1,
                                 num_hidden_layers=2, intermediate_size=256, vocab_size=256,
                                 max_position_embeddings=256, bos_token_id=1, eos_token_id=2,
                                 pad_token_id=0)).save_pretrained(tmp_path / "qwen")
    tok.save_pretrained(tmp_path / "qwen")
    plain = AutoModelForCausalLM.from_pretrained(str(tmp_path / "qwen")).eval()
    vt = VideoToText(V2TConfig(encoder_path=str(dirs / "enc"), lm_path=str(tmp_path / "qwen"), **SMALL)).eval()
    ids = ids_of(tok, ["a red ball", "xyz moves!"])
    assert torch.equal(vt(video(), ids).logits, plain(input_ids=ids).logits)
    out = vt(video(), ids, labels=ids)
    out.loss.backward()
    assert all(p.grad is None for p in vt.lm.parameters())
    gen = vt.generate(video(), ids, torch.ones_like(ids), max_new_tokens=3)
    assert gen.shape[0] == 2
