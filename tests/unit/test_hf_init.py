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
