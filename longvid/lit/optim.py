"""The optimizer both training modules use: AdamW over the trainable parameters only, linear warm-up then
cosine decay, stepped every batch."""
from __future__ import annotations

import math

import torch


def adamw_cosine(module, lr: float, weight_decay: float, warmup_steps: int) -> dict:
    """Lightning `configure_optimizers` result for `module` (a LightningModule with a `.model`)."""
    params = [p for p in module.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    total = max(1, int(module.trainer.estimated_stepping_batches))
    warm = min(warmup_steps, total // 2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, warm)) *
                                              0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
