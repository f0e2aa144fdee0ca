"""Parameter-efficient tuning modes and the text tower."""
import pytest
import torch

from longvid.model.encoder import EncoderConfig, VideoEncoder, count_params
from longvid.model.peft import LoRALinear, apply_tuning
from longvid.model.text import TextConfig, TextEncoder, train_tokenizer

TINY = dict(image_size=32, patch_size=8, tubelet_frames=2, num_frames=8, width=32, depth=4, heads=2,
            mlp_dim=64, embed_dim=16)


def trainable(m):
    return {n for n, p in m.named_parameters() if p.requires_grad}


def test_last_k_trains_only_the_last_blocks_and_records_no_graph_before_them():
    enc = apply_tuning(VideoEncoder(EncoderConfig(**TINY)), "last_k", k=2)
    names = trainable(enc)
    assert all(n.startswith(("blocks.2.", "blocks.3.", "norm.", "proj.")) for n in names)
    assert any(n.startswith("blocks.2.") for n in names)
    seen = {}
    enc.blocks[1].register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    enc(torch.randn(2, 3, 8, 32, 32), mask_ratio=0.5).embedding.sum().backward()
    assert not seen["out"].requires_grad          # frozen prefix: no autograd graph, activations freed
    assert enc.blocks[0].attn.qkv.weight.grad is None and enc.blocks[3].attn.qkv.weight.grad is not None
    with_tubelet = apply_tuning(VideoEncoder(EncoderConfig(**TINY)), "last_k", k=2, train_tubelet=True)
    assert "tubelet.weight" in trainable(with_tubelet)


@pytest.mark.parametrize("mode", ["adapters", "lora"])
def test_adapters_and_lora_start_as_identity(mode):
    torch.manual_seed(0)
    enc = VideoEncoder(EncoderConfig(**TINY)).eval()
    v = torch.randn(2, 3, 8, 32, 32)
    before = enc(v).embedding
    apply_tuning(enc, mode, adapter_dim=8, lora_rank=4)
    assert torch.allclose(enc(v).embedding, before, atol=1e-6)
    names = trainable(enc)
    assert "tubelet.weight" in names and "proj.weight" in names
    key = "adapter" if mode == "adapters" else "lora_"
    assert all(key in n or n.startswith(("tubelet", "patch", "proj")) for n in names)
    t, total = count_params(enc)
    assert t < total / 2
    if mode == "lora":
        assert isinstance(enc.blocks[0].attn.qkv, LoRALinear) and isinstance(enc.blocks[0].mlp.fc2, LoRALinear)


def test_temporal_mode_needs_factorized_and_trains_temporal_parts():
    with pytest.raises(ValueError, match="factorized"):
        apply_tuning(VideoEncoder(EncoderConfig(**TINY)), "temporal")
    enc = apply_tuning(VideoEncoder(EncoderConfig(**TINY, attention="factorized")), "temporal")
    names = trainable(enc)
    assert any(".attn_t." in n for n in names) and any(n.endswith(".gate") for n in names)
    assert not any(".attn.qkv" in n or ".mlp." in n for n in names)
    with pytest.raises(ValueError, match="unknown tuning mode"):
        apply_tuning(enc, "prompt")


def test_text_encoder_mean_pools_real_tokens_only(tmp_path):
    tok = train_tokenizer(["a red square spins", "a blue circle grows", "a green cross fades away"] * 5, 60,
                          tmp_path / "tok")
    enc = TextEncoder(TextConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                 embed_dim=16), vocab_size=len(tok)).eval()
    one = tok(["a red square spins"], return_tensors="pt")
    padded = tok(["a red square spins", "a blue circle grows and a green cross fades away"], padding=True,
                 return_tensors="pt")
    with torch.no_grad():
        a = enc(one["input_ids"], one["attention_mask"])
        b = enc(padded["input_ids"], padded["attention_mask"])
    assert a.shape == (1, 16) and torch.allclose(a[0], b[0], atol=1e-5)   # padding changes nothing
    assert tok.decode(one["input_ids"][0], skip_special_tokens=True) == "a red square spins"


def test_tokenizer_vocabulary_is_deterministic_and_spells_unseen_words():
    texts = ["a red square spins", "a blue circle grows", "a green cross fades away", "a red circle spins"] * 3
    a, b = train_tokenizer(texts, 50), train_tokenizer(list(reversed(texts)), 50)
    assert a.get_vocab() == b.get_vocab() and len(a) == 50             # the same ids, whatever the order
    words = [t for t in a.get_vocab() if t.isalpha() and len(t) > 1]
    assert "a" in a.get_vocab() and "red" in words and "spins" in words  # frequent words are whole tokens
    enc = a("a purple square")
    assert a.convert_ids_to_tokens(enc["input_ids"])[2:4] == ["p", "##u"]  # unseen: spelled out, no [UNK]
    assert a.decode(enc["input_ids"], skip_special_tokens=True) == "a purple square"


def test_text_encoder_loads_a_local_pretrained_bert(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64), add_pooling_layer=False).save_pretrained(tmp_path / "bert")
    enc = TextEncoder(TextConfig(pretrained=str(tmp_path / "bert"), embed_dim=8))
    out = enc(torch.tensor([[1, 5, 7, 2]]), torch.ones(1, 4, dtype=torch.long))
    assert out.shape == (1, 8) and enc.bert.config.hidden_size == 32
