"""Parameter-efficient adaptation of the video encoder (the paper's comparison):

- `full`: every weight trains;
- `last_k`: only the last k blocks, the final norm and the projection train. Everything before them is
  frozen *including the tubelet embedding and positions*, so autograd records no graph there and their
  activations are freed: a gradient path to a trainable tubelet would cross every frozen block and keep all
  their activations, erasing the memory saving the paper reports (~3x) — set `train_tubelet=True` to
  trade that saving for a trainable tubelet;
- `temporal`: only the factorized blocks' temporal attention (+ gates) and the tubelet train;
- `adapters`: Houlsby MLP adapters after each block's FFN (zero-initialised: identity at start) + tubelet;
- `lora`: low-rank updates on attention (qkv, proj) and FFN (fc1, fc2) linears + tubelet.
"""
from __future__ import annotations

import math

import torch
from torch import nn

MODES = ("full", "last_k", "temporal", "adapters", "lora")


class Adapter(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.down, self.up = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(torch.nn.functional.gelu(self.down(x)))


class LoRALinear(nn.Module):
    """y = W x + b + (alpha / r) * B A x, with W, b frozen and B zero-initialised."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None):
        super().__init__()
        self.base, self.scale = base, (alpha or rank) / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        base.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_a.T @ self.lora_b.T) * self.scale

    @property
    def weight(self) -> torch.Tensor:  # so code that reads `.weight` keeps working
        return self.base.weight


def apply_tuning(encoder: nn.Module, mode: str = "full", k: int = 4, adapter_dim: int = 64,
                 lora_rank: int = 8, train_tubelet: bool | None = None) -> nn.Module:
    """Set which parameters of a `VideoEncoder` train (in place); returns the encoder."""
    if mode not in MODES:
        raise ValueError(f"unknown tuning mode {mode!r}; valid: {MODES}")
    blocks = encoder.blocks
    if mode == "full":
        encoder.requires_grad_(True)
        return encoder
    encoder.requires_grad_(False)
    if mode == "last_k":
        if not 1 <= k <= len(blocks):
            raise ValueError(f"last_k needs 1 <= k <= {len(blocks)} blocks, got {k}")
        for blk in blocks[-k:]:
            blk.requires_grad_(True)
        encoder.norm.requires_grad_(True)
        encoder.proj.requires_grad_(True)
        train_tubelet = False if train_tubelet is None else train_tubelet
    elif mode == "temporal":
        if not all(getattr(b, "factorized", False) for b in blocks):
            raise ValueError("tuning mode 'temporal' needs attention='factorized'")
        for blk in blocks:
            for m in (blk.attn_t, blk.norm_t):
                m.requires_grad_(True)
            blk.gate.requires_grad_(True)
    elif mode == "adapters":
        for blk in blocks:
            if blk.adapter is None:
                blk.adapter = Adapter(blk.norm2.normalized_shape[0], adapter_dim).to(blk.norm2.weight.device)
            blk.adapter.requires_grad_(True)
    elif mode == "lora":
        for blk in blocks:
            for owner, names in ((blk.attn, ("qkv", "proj")), (blk.mlp, ("fc1", "fc2"))):
                for n in names:
                    lin = getattr(owner, n)
                    if not isinstance(lin, LoRALinear):
                        setattr(owner, n, LoRALinear(lin, lora_rank).to(lin.weight.device))
                    lora = getattr(owner, n)
                    lora.lora_a.requires_grad_(True)
                    lora.lora_b.requires_grad_(True)
    if train_tubelet is None or train_tubelet:
        encoder.tubelet.requires_grad_(True)
        encoder.patch.requires_grad_(True)
    if mode != "last_k":
        encoder.proj.requires_grad_(True)  # the new joint-space projection always learns
    return encoder
