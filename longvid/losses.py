"""Contrastive (InfoNCE) loss for the video-text dual encoder (PAPER.md "Encoder"; DESIGN.md §6).

Symmetric InfoNCE as in CLIP/ALIGN: the mean of the video->text and text->video cross-entropies over
cosine-similarity logits scaled by a learnable ``logit_scale = 1 / temperature``.

Under ``torch.distributed`` every rank computes the *local* loss: its own ``B`` rows against the
embeddings of all ranks, gathered with gradient (``all_gather_with_grad``). The mean of the local losses
over ranks equals the global loss on the concatenated batch, and so do the gradients once averaged
across ranks as DDP does. All ranks must use the same local batch size ``B``.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from longvid.model.layers import add_scalar

__all__ = ["ContrastiveLogits", "ContrastiveLoss", "all_gather_with_grad", "dist_rank_world"]


def dist_rank_world(group: dist.ProcessGroup | None = None) -> tuple[int, int]:
    """``(rank, world_size)`` in ``group``; ``(0, 1)`` when torch.distributed is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(group), dist.get_world_size(group)
    return 0, 1


class _AllGatherWithGrad(torch.autograd.Function):
    """all_gather along dim 0 whose backward sums the incoming gradients over ranks (all_reduce) and
    returns this rank's slice: the gradient of ``sum_over_ranks(local_loss)`` w.r.t. the local input."""

    @staticmethod
    def forward(ctx, x: Tensor, group: dist.ProcessGroup | None) -> Tensor:  # x: (B, D)
        ctx.group = group
        ctx.rank, world = dist_rank_world(group)
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous(), group=group)
        return torch.cat(parts, dim=0)  # (W*B, D)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # grad: (W*B, D)
        grad = grad.contiguous().clone()  # never all-reduce autograd's buffer in place
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        _, world = dist_rank_world(ctx.group)
        return grad.chunk(world, dim=0)[ctx.rank], None  # (B, D)


def all_gather_with_grad(x: Tensor, group: dist.ProcessGroup | None = None) -> Tensor:
    """Concatenate ``x`` (B, ...) of every rank along dim 0 -> (W*B, ...), differentiably.

    Identity when torch.distributed is not initialised or the world size is 1. Works on gloo (CPU)
    and NCCL; every rank must pass the same shape and must also run the backward pass.
    """
    if dist_rank_world(group)[1] == 1:
        return x
    return _AllGatherWithGrad.apply(x, group)


class ContrastiveLogits(NamedTuple):
    """Local rows against all gathered columns; positives at ``targets`` (offset by rank * B)."""

    video_to_text: Tensor  # (B, W*B)
    text_to_video: Tensor  # (B, W*B)
    targets: Tensor  # (B,) int64


class ContrastiveLoss(nn.Module):
    """Symmetric InfoNCE with a learnable, clamped temperature (CLIP/ALIGN).

    Args:
        init_temperature: initial temperature; ``log_scale`` starts at ``log(1 / init_temperature)``.
        max_scale: upper bound on ``logit_scale = exp(log_scale)``; as in CLIP the parameter itself is
            clamped in place after each optimizer step (``clamp_``) so its gradient keeps flowing.
        learnable: whether ``log_scale`` is an ``nn.Parameter`` (else a buffer).
        gather: in a distributed run, contrast against the embeddings of all ranks (else local only).
        group: process group for the gather (default: the world).
    """

    def __init__(self, init_temperature: float = 0.07, max_scale: float = 100.0, learnable: bool = True,
                 gather: bool = True, group: dist.ProcessGroup | None = None) -> None:
        super().__init__()
        if init_temperature <= 0 or max_scale <= 0:
            raise ValueError("init_temperature and max_scale must be positive")
        self.max_log_scale = math.log(max_scale)
        add_scalar(self, "log_scale", min(math.log(1.0 / init_temperature), self.max_log_scale), learnable)
        self.gather, self.group = gather, group

    @property
    def logit_scale(self) -> Tensor:
        """``exp(log_scale)``, ``log_scale`` clamped to ``log(max_scale)`` out of place (no in-place write in the
        forward: under FSDP the parameter is a view of a flat buffer, and autograd refuses that)."""
        return self.log_scale.clamp(max=self.max_log_scale).exp()  # (1,)

    @torch.no_grad()
    def clamp_(self) -> None:
        """Clamp the parameter itself after each optimizer step (as CLIP / open_clip do), so its gradient keeps
        flowing at the bound."""
        self.log_scale.clamp_(max=self.max_log_scale)

    @property
    def temperature(self) -> float:
        return 1.0 / float(self.logit_scale.detach())

    def logits(self, video: Tensor, text: Tensor) -> ContrastiveLogits:
        """Scaled cosine-similarity logits of the local rows against all (gathered) rows.

        Args:
            video: (B, D) video embeddings; text: (B, D) text embeddings (paired by row; not normalised).
        """
        if video.shape != text.shape or video.dim() != 2:
            raise ValueError(f"expected two (B, D) tensors, got {tuple(video.shape)} and {tuple(text.shape)}")
        video, text = F.normalize(video, dim=-1), F.normalize(text, dim=-1)  # (B, D)
        rank, world = dist_rank_world(self.group) if self.gather else (0, 1)
        all_video = all_gather_with_grad(video, self.group) if world > 1 else video  # (W*B, D)
        all_text = all_gather_with_grad(text, self.group) if world > 1 else text  # (W*B, D)
        scale = self.logit_scale
        b = video.shape[0]
        targets = torch.arange(b, device=video.device) + rank * b  # (B,)
        return ContrastiveLogits(scale * video @ all_text.T,  # (B, W*B)
                                 scale * text @ all_video.T,  # (B, W*B)
                                 targets)

    def forward(self, video: Tensor, text: Tensor) -> Tensor:
        """The local loss ``(CE(video->text) + CE(text->video)) / 2``, a scalar."""
        v2t, t2v, targets = self.logits(video, text)
        return 0.5 * (F.cross_entropy(v2t, targets) + F.cross_entropy(t2v, targets))
