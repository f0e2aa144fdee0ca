"""Initialisation from a local image ViT / CLIP vision checkpoint (tiny random models saved to disk)."""
import pytest
import torch

from longvid.model.encoder import VideoEncoder
from longvid.model.hf_init import encoder_config_from_hf, load_image_weights


def tiny_vit(path):
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    m = ViTModel(ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=2, intermediate_size=64), add_pooling_layer=False)
    m.save_pretrained(path)
    return m


def tiny_clip(path):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    m = CLIPVisionModel(CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                         num_attention_heads=2, intermediate_size=64))
    m.save_pretrained(path)
    return m


def hf_patch_tokens(kind, hf, img):
    """The image model's patch tokens (no CLS: the paper mean-pools) through its own modules."""
    if kind == "vit":
        emb = hf.embeddings.patch_embeddings(img)
        x = emb + hf.embeddings.position_embeddings[:, 1:]
        for layer in hf.layers:
            x = layer(x)
            x = x[0] if isinstance(x, tuple) else x
        return hf.layernorm(x)
    vm = getattr(hf, "vision_model", hf)
    x = vm.embeddings.patch_embedding(img).flatten(2).transpose(1, 2)
    x = vm.pre_layrnorm(x + vm.embeddings.position_embedding.weight[1:])
    for layer in vm.encoder.layers:
        x = layer(x, None)
        x = x[0] if isinstance(x, tuple) else x
    return vm.post_layernorm(x)


@pytest.mark.parametrize("kind,make", [("vit", tiny_vit), ("clip", tiny_clip)])
def test_loaded_encoder_matches_the_image_model_and_static_video(tmp_path, kind, make):
    hf = make(tmp_path / kind).eval()
    cfg = encoder_config_from_hf(str(tmp_path / kind), num_frames=8, tubelet_frames=2, embed_dim=16)
    enc = load_image_weights(VideoEncoder(cfg), str(tmp_path / kind)).eval()
    img = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ours = enc.encode_image(img)
        assert torch.allclose(ours.tokens, hf_patch_tokens(kind, hf, img), atol=1e-5)
        static = enc(img[:, :, None].expand(-1, -1, 8, -1, -1))
        assert torch.allclose(static.embedding, ours.embedding, atol=1e-5)


def test_factorized_encoder_loads_with_temporal_init(tmp_path):
    tiny_vit(tmp_path / "vit")
    cfg = encoder_config_from_hf(str(tmp_path / "vit"), attention="factorized", num_frames=4)
    enc = load_image_weights(VideoEncoder(cfg), str(tmp_path / "vit"))
    for blk in enc.blocks:
        assert torch.equal(blk.attn_t.qkv.weight, blk.attn.qkv.weight) and blk.gate.item() == 0


def test_wrong_geometry_is_a_clear_error(tmp_path):
    tiny_vit(tmp_path / "vit")
    cfg = encoder_config_from_hf(str(tmp_path / "vit"), patch_size=16)
    with pytest.raises(ValueError, match="patch kernel"):
        load_image_weights(VideoEncoder(cfg), str(tmp_path / "vit"))


def test_a_saved_imagevit_inflates_into_the_vivit_of_stage_one(tmp_path):
    """`image_init=<an ImageViT export>`: the paper's stage 1 starts from the image-text model. A static clip
    then embeds exactly as the ImageViT embeds it, and the text tower is the ImageViT's."""
    from longvid.lit.contrastive import ContrastiveModule
    from longvid.model.dual import DualConfig, DualEncoder, is_image_dual
    from longvid.model.text import train_tokenizer

    tok = train_tokenizer(["a red square moves left", "a blue circle spins"] * 20, 64, tmp_path / "tok")
    enc = dict(image_size=32, patch_size=8, width=32, depth=2, heads=2, mlp_dim=64, num_frames=4,
               tubelet_frames=2, embed_dim=16)
    text = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, embed_dim=16)
    torch.manual_seed(0)
    image = DualEncoder(DualConfig.from_dict(dict(encoder=enc, text=text, video_model="imagevit",
                                                  vocab_size=len(tok)))).eval()
    image.save_pretrained(tmp_path / "imagevit", tok)
    assert is_image_dual(tmp_path / "imagevit") and not is_image_dual(tmp_path / "tok")
    module = ContrastiveModule(model=dict(encoder=enc, text=text), tokenizer_dir=str(tmp_path / "imagevit/tokenizer"),
                               image_init=str(tmp_path / "imagevit"))
    video_model = module.model.eval()
    clip = torch.randn(2, 3, 1, 32, 32).expand(-1, -1, 4, -1, -1)     # a static 4-frame clip
    ids = torch.tensor([[1, 5, 7, 2]])
    with torch.no_grad():
        assert torch.allclose(video_model.encode_video(clip), image.encode_video(clip), atol=1e-5)
        am = torch.ones_like(ids)
        assert torch.equal(video_model.encode_text(ids, am), image.encode_text(ids, am))
        moving = torch.randn(2, 3, 4, 32, 32)                         # frames differ: the models do too
        assert not torch.allclose(video_model.encode_video(moving), image.encode_video(moving), atol=1e-3)
    video_model.save_pretrained(tmp_path / "vivit", tok)
    with pytest.raises(ValueError, match="image_init=.*vivit.*init_from"):
        is_image_dual(tmp_path / "vivit")
