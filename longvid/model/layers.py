"""Transformer building blocks: one SDPA attention, MLP, pre-norm blocks (joint or factorized)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def add_scalar(module: nn.Module, name: str, value: float, learnable: bool = True) -> None:
    """A scalar (a gate, a log-temperature) kept as a 1-element tensor: FSDP refuses 0-dim parameters. Checkpoints
    that saved it 0-dim (before) still load: their value is reshaped to (1,)."""
    t = torch.full((1,), float(value))
    if learnable:
        module.register_parameter(name, nn.Parameter(t))
    else:
        module.register_buffer(name, t)

    def reshape_old(state_dict, prefix, *_):
        key = prefix + name
        if key in state_dict and state_dict[key].dim() == 0:
            state_dict[key] = state_dict[key].reshape(1)

    module._register_load_state_dict_pre_hook(reshape_old)


class Attention(nn.Module):
    """Multi-head self-attention through `scaled_dot_product_attention` (fused kernels where available).
    `mask` optional bool attention mask broadcastable to (B, h, L, L), True = may be attended to."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, groups: "Groups | None" = None
                ) -> torch.Tensor:
        """x (B, L, D). With `groups`, attention runs within each group: q/k/v are packed into the groups'
        padded rows after the projection (so only q/k/v and the attention output carry padding)."""
        B, L, D = x.shape
        qkv = self.qkv(x)                                                        # (B, L, 3D)
        if groups is not None:
            qkv, mask = groups.pack(qkv), groups.mask                            # (rows, P, 3D)
        R, P = qkv.shape[:2]
        q, k, v = qkv.view(R, P, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4).unbind(0)  # (R, h, P, d)
        # (unbind: one backward node; indexing qkv[i] thrice allocates three qkv-sized zeros)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(R, P, D)
        return self.proj(groups.unpack(y) if groups is not None else y)         # (B, L, D)


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


class Groups:
    """A partition of a ragged token set (B, L) into groups by integer ids (a time step, or a spatial
    position), packed as padded rows: attention within each group is then one batched SDPA over
    (rows, P) with a key-padding mask — memory and compute grow with the groups' sizes, not with L^2 (an
    (L, L) same-group mask would be materialised as float by SDPA and saved per attention call).
    Built once per forward and shared by all blocks. Empty groups get no row."""

    def __init__(self, ids: torch.Tensor, num_groups: int):
        B, L = ids.shape
        flat = (ids + num_groups * torch.arange(B, device=ids.device)[:, None]).flatten()  # (B*L,) global group
        counts = torch.bincount(flat, minlength=B * num_groups)
        row = (counts > 0).cumsum(0) - 1                 # compact row of each non-empty group
        order = torch.argsort(flat, stable=True)
        starts = counts.cumsum(0) - counts               # first sorted position of each group
        rank = torch.empty_like(flat)
        rank[order] = torch.arange(B * L, device=ids.device) - starts[flat[order]]
        sizes = counts[counts > 0]
        self.rows, self.width = int(sizes.numel()), int(sizes.max())
        self.index = row[flat] * self.width + rank       # (B*L,) slot of each token in the padded layout
        self.source = torch.full((self.rows * self.width,), B * L, device=ids.device)  # token of each slot
        self.source[self.index] = torch.arange(B * L, device=ids.device)            # (B*L = a zero row)
        self.shape = (B, L)
        self.mask = None if bool((sizes == self.width).all()) else \
            (torch.arange(self.width, device=ids.device) < sizes[:, None])[:, None, None, :]  # (rows,1,1,P)

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, C) -> (rows, P, C), zeros in the padding slots. (A gather: its backward keeps only the
        index, where index_copy's would keep the whole source.)"""
        C = x.shape[-1]
        src = torch.cat([x.reshape(-1, C), x.new_zeros(1, C)])
        return src.index_select(0, self.source).view(self.rows, self.width, C)

    def unpack(self, y: torch.Tensor) -> torch.Tensor:
        """(rows, P, C) -> (B, L, C)."""
        C = y.shape[-1]
        return y.reshape(-1, C).index_select(0, self.index).view(*self.shape, C)


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
        if self.drop.p == 0 and type(self.fc2) is nn.Linear and torch.is_grad_enabled():
            w, b, device = self.fc2.weight, self.fc2.bias, x.device.type
            if not torch.is_autocast_enabled(device):
                return _ActLinear.apply(h, w, b, self.act)
            dt = torch.get_autocast_dtype(device)       # autocast's cast of fc2, done here: the Function then
            with torch.autocast(device, enabled=False):  # runs in that dtype and still recomputes act(h)
                return _ActLinear.apply(h.to(dt), w.to(dt), b.to(dt), self.act)
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
            add_scalar(self, "gate", 0.0)
            self.init_temporal_from_spatial()
        self.adapter: nn.Module | None = None  # optional module after the MLP (see longvid.model.peft)

    def init_temporal_from_spatial(self) -> None:
        """Temporal attention starts as a copy of the spatial attention (the paper's initialisation)."""
        self.attn_t.load_state_dict(self.attn.state_dict())
        self.norm_t.load_state_dict(self.norm1.state_dict())

    def forward(self, x: torch.Tensor, grid: tuple[int, int] | None = None,
                groups: tuple[Groups, Groups] | None = None) -> torch.Tensor:
        """x (B, L, D). Factorized blocks need the token layout: either `grid` = (T, N) when x is the
        full t-major grid (fast reshapes), or `groups` = (by time step, by spatial position) for a
        masked (ragged) token set."""
        if self.factorized:
            by_time, by_space = groups if groups is not None else (None, None)
            x = x + torch.tanh(self.gate) * self._grouped(self.attn_t, self.norm_t(x), by_space, grid, temporal=True)
            x = x + self._grouped(self.attn, self.norm1(x), by_time, grid, temporal=False)
        else:
            x = x + self.attn(self.norm1(x))
        h = self.mlp(self.norm2(x))
        if self.adapter is not None:
            h = h + self.adapter(h)
        return x + h

    @staticmethod
    def _grouped(attn: Attention, x: torch.Tensor, groups: Groups | None, grid, temporal: bool) -> torch.Tensor:
        if grid is None:
            if groups is None:
                raise ValueError("a factorized block needs the token layout: grid=(T, N) or groups")
            return attn(x, groups=groups)
        B, L, D = x.shape
        T, N = grid
        x = x.view(B, T, N, D)
        if temporal:
            y = attn(x.transpose(1, 2).reshape(B * N, T, D))  # (B*N, T, D): attend over time
            return y.view(B, N, T, D).transpose(1, 2).reshape(B, L, D)
        return attn(x.reshape(B * T, N, D)).view(B, L, D)  # (B*T, N, D): attend within a frame
