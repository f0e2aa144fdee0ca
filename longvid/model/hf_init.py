"""Initialise the video encoder from an image ViT on a local path: HF `ViTModel` or CLIP vision weights.
The 2D patch kernel is copied to the image path and inflated along time for the tubelet Conv3d; spatial
positions come from the image model (its CLS token is dropped: the paper mean-pools), temporal positions
start at zero — so a static video gives the image model's embedding."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from longvid.model.encoder import EncoderConfig, VideoEncoder, inflate_patch_kernel


def _hf(path: str):
    from transformers import AutoConfig, AutoModel, CLIPVisionModel

    conf = AutoConfig.from_pretrained(path, local_files_only=True)
    if conf.model_type == "vit":
        return "vit", AutoModel.from_pretrained(path, local_files_only=True)
    if conf.model_type in ("clip", "clip_vision_model"):
        return "clip", CLIPVisionModel.from_pretrained(path, local_files_only=True)
    raise ValueError(f"{path}: model type {conf.model_type!r} is not a ViT or CLIP vision model")


def encoder_config_from_hf(path: str, **overrides) -> EncoderConfig:
    """An EncoderConfig with the geometry of the image model at `path` (overrides for video fields)."""
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(path, local_files_only=True)
    c = getattr(c, "vision_config", c)
    kind = "clip" if "clip" in type(c).__name__.lower() else "vit"
    base = dict(image_size=c.image_size, patch_size=c.patch_size, width=c.hidden_size,
                depth=c.num_hidden_layers, heads=c.num_attention_heads, mlp_dim=c.intermediate_size,
                eps=c.layer_norm_eps, act="quick_gelu" if kind == "clip" else "gelu", pre_norm=kind == "clip")
    return EncoderConfig(**{**base, **overrides})


def _grid_positions(pos: torch.Tensor, n: int) -> torch.Tensor:
    """(M, D) square-grid positions resized to n patches (bicubic), if the grid differs."""
    m = pos.shape[0]
    if m == n:
        return pos
    a, b = int(round(m ** 0.5)), int(round(n ** 0.5))
    grid = pos.T.reshape(1, -1, a, a)
    return F.interpolate(grid, size=(b, b), mode="bicubic", align_corners=False).reshape(-1, n).T


@torch.no_grad()
def load_image_weights(encoder: VideoEncoder, path: str) -> VideoEncoder:
    kind, hf = _hf(path)
    sd = {k: v for k, v in hf.state_dict().items()}
    p = "vision_model." if any(k.startswith("vision_model.") for k in sd) else ""
    if kind == "vit":
        patch_w, patch_b = sd[f"{p}embeddings.patch_embeddings.projection.weight"], \
            sd[f"{p}embeddings.patch_embeddings.projection.bias"]
        pos = sd[f"{p}embeddings.position_embeddings"][0, 1:]
        layer = lambda i: f"{p}layers.{i}."  # transformers 5 names (it converts older checkpoints on load)
        names = dict(n1="layernorm_before", n2="layernorm_after", q="attention.q_proj", k="attention.k_proj",
                     v="attention.v_proj", o="attention.o_proj", fc1="mlp.fc1", fc2="mlp.fc2")
        final = f"{p}layernorm"
    else:
        patch_w = sd[f"{p}embeddings.patch_embedding.weight"]
        patch_b = torch.zeros(patch_w.shape[0])
        pos = sd[f"{p}embeddings.position_embedding.weight"][1:]
        layer = lambda i: f"{p}encoder.layers.{i}."
        names = dict(n1="layer_norm1", n2="layer_norm2", q="self_attn.q_proj", k="self_attn.k_proj",
                     v="self_attn.v_proj", o="self_attn.out_proj", fc1="mlp.fc1", fc2="mlp.fc2")
        final = f"{p}post_layernorm"
        encoder.pre_norm.weight.copy_(sd[f"{p}pre_layrnorm.weight"])
        encoder.pre_norm.bias.copy_(sd[f"{p}pre_layrnorm.bias"])
    if patch_w.shape != encoder.patch.weight.shape:
        raise ValueError(f"{path}: patch kernel {tuple(patch_w.shape)} does not fit the encoder's "
                         f"{tuple(encoder.patch.weight.shape)}; build it with encoder_config_from_hf")
    encoder.patch.weight.copy_(patch_w)
    encoder.patch.bias.copy_(patch_b)
    encoder.tubelet.weight.copy_(inflate_patch_kernel(patch_w, encoder.cfg.tubelet_frames))
    encoder.tubelet.bias.copy_(patch_b)
    encoder.pos_space.copy_(_grid_positions(pos, encoder.pos_space.shape[0]))
    encoder.pos_time.zero_()
    for i, blk in enumerate(encoder.blocks):
        g = lambda n, w: sd[layer(i) + names[n] + "." + w]
        blk.norm1.weight.copy_(g("n1", "weight")); blk.norm1.bias.copy_(g("n1", "bias"))
        blk.norm2.weight.copy_(g("n2", "weight")); blk.norm2.bias.copy_(g("n2", "bias"))
        blk.attn.qkv.weight.copy_(torch.cat([g(x, "weight") for x in "qkv"]))
        blk.attn.qkv.bias.copy_(torch.cat([g(x, "bias") for x in "qkv"]))
        blk.attn.proj.weight.copy_(g("o", "weight")); blk.attn.proj.bias.copy_(g("o", "bias"))
        blk.mlp.fc1.weight.copy_(g("fc1", "weight")); blk.mlp.fc1.bias.copy_(g("fc1", "bias"))
        blk.mlp.fc2.weight.copy_(g("fc2", "weight")); blk.mlp.fc2.bias.copy_(g("fc2", "bias"))
        if blk.factorized:
            blk.init_temporal_from_spatial()
    encoder.norm.weight.copy_(sd[final + ".weight"])
    encoder.norm.bias.copy_(sd[final + ".bias"])
    return encoder
