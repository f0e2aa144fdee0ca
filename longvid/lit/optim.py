"""The optimizer both training modules use: AdamW over the trainable parameters only, linear warm-up then
cosine decay, stepped every batch."""
from __future__ import annotations

import math

import torch


def adamw_cosine(module, lr: float, weight_decay: float, warmup_steps: int,
                 lr_mult: dict[str, float] | None = None) -> dict:
    """Lightning `configure_optimizers` result for `module` (a LightningModule with a `.model`). `lr_mult`:
    {name suffix: multiplier} puts the trainable parameters whose names end so in their own group at lr * mult
    (e.g. the video-to-text model's zero-initialised gates); a suffix that matches nothing is an error."""
    named = [(n, p) for n, p in module.model.named_parameters() if p.requires_grad]
    groups, rest = [], [p for n, p in named if not any(n.endswith(s) for s in lr_mult or {})]
    for suffix, mult in (lr_mult or {}).items():
        ps = [p for n, p in named if n.endswith(suffix)]
        if not ps:
            raise ValueError(f"optim.lr_mult: no trainable parameter name ends with {suffix!r}")
        groups.append({"params": ps, "lr": lr * mult})
    opt = torch.optim.AdamW([{"params": rest}, *groups] if rest else groups, lr=lr, weight_decay=weight_decay)
    total = max(1, int(module.trainer.estimated_stepping_batches))
    warm = min(warmup_steps, total // 2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, warm)) *
                                              0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
