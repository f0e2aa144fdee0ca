"""Transformer building blocks: one SDPA attention, MLP, pre-norm blocks (joint or factorized)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head self-attention through `scaled_dot_product_attention` (fused kernels where available).

    `groups` (B, L) optional integer ids: a token attends only to tokens with the same id (used for
    spatial-only / temporal-only attention over a masked, ragged token set)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        B, L, D = x.shape
        qkv = self.qkv(x).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # (3, B, h, L, d)
        mask = None if groups is None else (groups[:, None, :, None] == groups[:, None, None, :])  # (B,1,L,L)
        q, k, v = qkv.unbind(0)  # one backward node (indexing qkv[i] thrice allocates three qkv-sized zeros)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, L, D))  # (B, L, D)


class CrossAttention(nn.Module):
    """Multi-head attention of queries x (B, L, D) over a context (B, M, D) through SDPA;
    `mask` (B, M) bool, True = may be attended to."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.q, self.kv = nn.Linear(dim, dim, bias=False), nn.Linear(dim, 2 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, L, D = x.shape
        M, h = ctx.shape[1], self.heads
        q = self.q(x).view(B, L, h, D // h).transpose(1, 2)                      # (B, h, L, d)
        k, v = self.kv(ctx).view(B, M, 2, h, D // h).permute(2, 0, 3, 1, 4)     # 2 x (B, h, M, d)
        m = None if mask is None else mask[:, None, None, :]                     # (B, 1, 1, M)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=m)                # (B, h, L, d)
        return self.proj(y.transpose(1, 2).reshape(B, L, D))                    # (B, L, D)


def reference_attention(attn: Attention, x: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
    """The same computation written out (softmax(QK^T / sqrt(d)) V), for equivalence tests."""
    B, L, D = x.shape
    q, k, v = attn.qkv(x).view(B, L, 3, attn.heads, D // attn.heads).permute(2, 0, 3, 1, 4)
    s = q @ k.transpose(-1, -2) / (D // attn.heads) ** 0.5  # (B, h, L, L)
    if groups is not None:
        s = s.masked_fill(~(groups[:, None, :, None] == groups[:, None, None, :]), float("-inf"))
    return attn.proj((s.softmax(-1) @ v).transpose(1, 2).reshape(B, L, D))


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


ACTIVATIONS = {"gelu": F.gelu, "quick_gelu": quick_gelu}


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float = 0.0, act: str = "gelu"):
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"unknown activation {act!r}; valid: {list(ACTIVATIONS)}")
        self.fc1, self.fc2, self.drop = nn.Linear(dim, hidden), nn.Linear(hidden, dim), nn.Dropout(dropout)
        self.act = ACTIVATIONS[act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        if (self.drop.p == 0 and type(self.fc2) is nn.Linear and torch.is_grad_enabled()
                and not torch.is_autocast_enabled(x.device.type)):
            return _ActLinear.apply(h, self.fc2.weight, self.fc2.bias, self.act)
        return self.drop(self.fc2(self.drop(self.act(h))))


class _ActLinear(torch.autograd.Function):
    """fc2(act(h)) that keeps only h for backward and recomputes act(h) there: one MLP-hidden-sized tensor
    per block less in memory (~25% of a block's saved activations), the same gradients."""

    @staticmethod
    def forward(ctx, h, weight, bias, act):
        ctx.act = act
        ctx.save_for_backward(h, weight)
        return F.linear(act(h), weight, bias)

    @staticmethod
    def backward(ctx, g):
        h, weight = ctx.saved_tensors
        with torch.enable_grad():
            hh = h.detach().requires_grad_(True)
            a = ctx.act(hh)                                              # recomputed activation
        g2 = g.reshape(-1, g.shape[-1])                                  # (B*L, D_out)
        gh = torch.autograd.grad(a, hh, g @ weight)[0] if ctx.needs_input_grad[0] else None
        gw = g2.T @ a.detach().reshape(-1, a.shape[-1]) if ctx.needs_input_grad[1] else None
        gb = g2.sum(0) if ctx.needs_input_grad[2] else None
        return gh, gw, gb, None


class Block(nn.Module):
    """Pre-norm transformer block. `factorized=True` makes the main attention spatial-only (within a
    time step) and adds a temporal attention per spatial position with a residual gate tanh(alpha),
    alpha = 0 at init (so at init the block equals the spatial block it wraps)."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, eps: float = 1e-6, dropout: float = 0.0,
                 factorized: bool = False, act: str = "gelu"):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=eps), Attention(dim, heads, dropout)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=eps), Mlp(dim, mlp_dim, dropout, act)
        self.factorized = factorized
        if factorized:
            self.norm_t, self.attn_t = nn.LayerNorm(dim, eps=eps), Attention(dim, heads, dropout)
            self.gate = nn.Parameter(torch.zeros(()))
            self.init_temporal_from_spatial()
        self.adapter: nn.Module | None = None  # optional module after the MLP (see longvid.model.peft)

    def init_temporal_from_spatial(self) -> None:
        """Temporal attention starts as a copy of the spatial attention (the paper's initialisation)."""
        self.attn_t.load_state_dict(self.attn.state_dict())
        self.norm_t.load_state_dict(self.norm1.state_dict())

    def forward(self, x: torch.Tensor, t_ids: torch.Tensor | None = None, s_ids: torch.Tensor | None = None,
                grid: tuple[int, int] | None = None) -> torch.Tensor:
        """x (B, L, D). Factorized blocks need the token layout: either `grid` = (T, N) when x is the
        full t-major grid (fast reshapes), or t_ids / s_ids (B, L), each token's time step and spatial
        position, for a masked (ragged) token set (attention masks)."""
        if self.factorized:
            x = x + torch.tanh(self.gate) * self._grouped(self.attn_t, self.norm_t(x), s_ids, grid, temporal=True)
            x = x + self._grouped(self.attn, self.norm1(x), t_ids, grid, temporal=False)
        else:
            x = x + self.attn(self.norm1(x))
        h = self.mlp(self.norm2(x))
        if self.adapter is not None:
            h = h + self.adapter(h)
        return x + h

    @staticmethod
    def _grouped(attn: Attention, x: torch.Tensor, ids, grid, temporal: bool) -> torch.Tensor:
        if grid is None:
            return attn(x, groups=ids)
        B, L, D = x.shape
        T, N = grid
        x = x.view(B, T, N, D)
        if temporal:
            y = attn(x.transpose(1, 2).reshape(B * N, T, D))  # (B*N, T, D): attend over time
            return y.view(B, N, T, D).transpose(1, 2).reshape(B, L, D)
        return attn(x.reshape(B * T, N, D)).view(B, L, D)  # (B*T, N, D): attend within a frame
