"""The video-first encoder (ViViT with joint space-time attention over 3D tubelets), its random token
masking, and the ImageViT baseline (per-frame ViT + late temporal fusion)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from longvid.model.layers import Attention, Block, Groups


@dataclass
class EncoderConfig:
    image_size: int = 64          # input frames are image_size x image_size
    patch_size: int = 16          # spatial tubelet / patch size
    tubelet_frames: int = 2       # frames per tubelet (Conv3d kernel depth)
    num_frames: int = 16          # frames the temporal positions are trained for (extended by interpolation)
    width: int = 192
    depth: int = 12
    heads: int = 3
    mlp_dim: int = 768
    embed_dim: int = 256          # joint video-text space
    attention: str = "joint"      # "joint" (ViViT joint space-time) | "factorized" (+ gated temporal)
    dropout: float = 0.0
    eps: float = 1e-6             # LayerNorm epsilon (HF ViT uses 1e-12)
    act: str = "gelu"             # MLP activation: "gelu" (ViT) | "quick_gelu" (CLIP)
    pre_norm: bool = False        # LayerNorm on the embedded tokens before the blocks (CLIP's pre_layrnorm)

    def __post_init__(self):
        if self.attention not in ("joint", "factorized"):
            raise ValueError(f"attention must be 'joint' or 'factorized', got {self.attention!r}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.num_frames % self.tubelet_frames:
            raise ValueError(f"num_frames {self.num_frames} is not a multiple of tubelet_frames")

    @property
    def patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


@dataclass
class EncoderOutput:
    tokens: torch.Tensor          # (B, K, D) final-normed tokens that were kept (K = all if unmasked)
    embedding: torch.Tensor       # (B, E) projected mean-pooled embedding (not normalised)
    t_ids: torch.Tensor           # (B, K) time step (tubelet index) of each token
    s_ids: torch.Tensor           # (B, K) spatial position of each token
    grid: tuple[int, int]         # (T', N) tubelets along time, patches per frame


def random_keep(B: int, T: int, N: int, ratio: float, generator: torch.Generator | None = None,
                device=None, tube: bool = False) -> torch.Tensor:
    """Indices (B, K) of the tokens kept, sorted, for masking `ratio` of a T x N token grid.
    K = round(T*N*(1-ratio)) exactly (at least 1); `tube=True` masks whole spatial tubes across time."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
    if tube:
        keep_n = max(1, round(N * (1 - ratio)))
        s = torch.rand(B, N, generator=generator, device=device).argsort(1)[:, :keep_n]  # (B, n)
        idx = (torch.arange(T, device=device)[None, :, None] * N + s[:, None, :]).reshape(B, -1)
        return idx.sort(1).values
    L = T * N
    keep = max(1, round(L * (1 - ratio)))
    return torch.rand(B, L, generator=generator, device=device).argsort(1)[:, :keep].sort(1).values


class VideoEncoder(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        p, t, D = cfg.patch_size, cfg.tubelet_frames, cfg.width
        self.tubelet = nn.Conv3d(3, D, kernel_size=(t, p, p), stride=(t, p, p))   # videos
        self.patch = nn.Conv2d(3, D, kernel_size=p, stride=p)                       # images (not shared)
        self.pos_space = nn.Parameter(torch.randn(cfg.patches, D) * 0.02)           # (N, D)
        self.pos_time = nn.Parameter(torch.zeros(cfg.num_frames // t, D))          # (T', D)
        self.blocks = nn.ModuleList(Block(D, cfg.heads, cfg.mlp_dim, cfg.eps, cfg.dropout,
                                          factorized=cfg.attention == "factorized", act=cfg.act)
                                    for _ in range(cfg.depth))
        self.pre_norm = nn.LayerNorm(D, eps=cfg.eps) if cfg.pre_norm else nn.Identity()
        self.norm = nn.LayerNorm(D, eps=cfg.eps)
        self.proj = nn.Linear(D, cfg.embed_dim)

    def time_positions(self, steps: int) -> torch.Tensor:
        """(steps, D) temporal positions; linearly interpolated when steps differs from training."""
        pt = self.pos_time
        if steps == pt.shape[0]:
            return pt
        return F.interpolate(pt.T[None], size=steps, mode="linear", align_corners=True)[0].T

    def forward(self, video: torch.Tensor, mask_ratio: float = 0.0, generator: torch.Generator | None = None,
                tube: bool = False) -> EncoderOutput:
        """video (B, C, T, H, W) float, normalised. Tokens are dropped *before* the transformer."""
        x = self.tubelet(video)                                         # (B, D, T', H', W')
        B, D, T, Hp, Wp = x.shape
        N = Hp * Wp
        x = x.flatten(3).permute(0, 2, 3, 1)                            # (B, T', N, D)
        x = x + self.pos_space[None, None] + self.time_positions(T)[None, :, None]
        x = x.reshape(B, T * N, D).contiguous()                         # (B, T'*N, D) t-major, row-major
        # (without .contiguous() the residual stream keeps the permuted strides through every block and
        #  each LayerNorm copies it in forward and backward)
        ids = torch.arange(T * N, device=x.device).expand(B, -1)
        grid = (T, N)
        if mask_ratio > 0:
            ids = random_keep(B, T, N, mask_ratio, generator, x.device, tube)  # (B, K)
            x = x.gather(1, ids[..., None].expand(-1, -1, D))           # (B, K, D)
            grid = None
        t_ids, s_ids = ids // N, ids % N
        return self._encode(x, t_ids, s_ids, grid, (T, N))

    def encode_image(self, image: torch.Tensor) -> EncoderOutput:
        """image (B, C, H, W): 2D patches + spatial positions, the same transformer."""
        x = self.patch(image).flatten(2).transpose(1, 2) + self.pos_space[None]  # (B, N, D)
        B, N, _ = x.shape
        ids = torch.arange(N, device=x.device).expand(B, -1)
        return self._encode(x, torch.zeros_like(ids), ids, (1, N), (1, N))

    def _encode(self, x, t_ids, s_ids, grid, full) -> EncoderOutput:
        x = self.pre_norm(x)
        groups = None
        if grid is None and self.cfg.attention == "factorized":  # masked: pack the groups once for all blocks
            groups = (Groups(t_ids, full[0]), Groups(s_ids, full[1]))
        for blk in self.blocks:
            x = blk(x, grid, groups)
        x = self.norm(x)
        return EncoderOutput(x, self.proj(x.mean(1)), t_ids, s_ids, full)


class ImageViT(nn.Module):
    """The paper's baseline: a per-frame image ViT (the same modules as `VideoEncoder`'s image path)
    with late temporal fusion of the frame embeddings: "average" or "attention" pooling."""

    def __init__(self, cfg: EncoderConfig, fusion: str = "average"):
        super().__init__()
        if fusion not in ("average", "attention"):
            raise ValueError(f"fusion must be 'average' or 'attention', got {fusion!r}")
        self.cfg, self.fusion = cfg, fusion
        self.vit = VideoEncoder(EncoderConfig(**{**cfg.__dict__, "attention": "joint"}))
        if fusion == "attention":
            self.query = nn.Parameter(torch.zeros(1, 1, cfg.width))
            self.pool = Attention(cfg.width, cfg.heads)
            self.pool_norm = nn.LayerNorm(cfg.width, eps=cfg.eps)

    def forward(self, video: torch.Tensor, **_) -> EncoderOutput:
        B, C, T, H, W = video.shape
        frames = video.transpose(1, 2).reshape(B * T, C, H, W)        # (B*T, C, H, W)
        out = self.vit.encode_image(frames)
        N = out.tokens.shape[1]
        tokens = out.tokens.view(B, T * N, -1)                          # (B, T*N, D) per-frame tokens
        per_frame = out.tokens.mean(1).view(B, T, -1)                   # (B, T, D)
        if self.fusion == "average":
            pooled = per_frame.mean(1)
        else:  # a learned query attends over [query; frames]; its output is the video
            seq = torch.cat([self.query.expand(B, -1, -1), per_frame], 1)
            pooled = self.pool_norm(self.pool(seq)[:, 0] + per_frame.mean(1))
        ids = torch.arange(T * N, device=video.device).expand(B, -1)
        return EncoderOutput(tokens, self.vit.proj(pooled), ids // N, ids % N, (T, N))


def inflate_patch_kernel(weight2d: torch.Tensor, frames: int) -> torch.Tensor:
    """(D, C, p, p) -> (D, C, t, p, p): repeat along time and divide by t, so a static clip gives the same
    tubelet embedding as the image gives patch embedding (ViViT's "filter inflation")."""
    return weight2d[:, :, None].repeat(1, 1, frames, 1, 1) / frames


def count_params(module: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in module.parameters())
    return sum(p.numel() for p in module.parameters() if p.requires_grad), total


