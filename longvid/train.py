"""`longvid-train`: contrastive pre-training of the video encoder, one command per recipe stage.

    longvid-train experiment=stage1_short     # image -> short video (ShortViViT, 16 frames, all weights)
    longvid-train experiment=eff_short        # the same with 75% masking (EffShortViViT)
    longvid-train experiment=stage2_long      # short -> long (LongViViT, 128 frames, 75% mask, last 4 layers)
    longvid-train experiment=imagevit         # the per-frame ImageViT baseline

A run writes `<run_dir>/ckpt/` (Lightning checkpoints; a rerun resumes from last.ckpt) and, at the end,
`<run_dir>/model/` (safetensors + config + tokenizer, loadable with `DualEncoder.from_pretrained`)."""
from __future__ import annotations

import warnings
from pathlib import Path


def fit_resumable(cfg, module, data, run_dir: Path, fit: bool = True):
    """Build the configured Trainer (checkpoints in run_dir/ckpt, the `logger` group's logs in run_dir) and fit,
    resuming from ckpt/last.ckpt when a previous run left one. Returns the trainer."""
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import ModelCheckpoint

    # one file per run: last.ckpt, overwritten atomically every `checkpoint_every` steps (what a rerun resumes)
    ckpt = ModelCheckpoint(dirpath=run_dir / "ckpt", save_top_k=0, save_last=True,
                           every_n_train_steps=cfg.checkpoint_every)
    extra = [instantiate(c) for c in (cfg.get("callbacks") or [])]
    trainer = instantiate(cfg.trainer, default_root_dir=str(run_dir), callbacks=[ckpt, *extra],
                          logger=instantiate(cfg.logger, save_dir=str(run_dir)))
    last = run_dir / "ckpt" / "last.ckpt"
    # our loaders resume through the datamodule's state (longvid/data/resumable.py), not Lightning's protocol
    warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")
    if fit:
        if trainer.is_global_zero:
            print(f"training on {trainer.world_size} device(s) ({type(trainer.strategy).__name__}), global batch "
                  f"{cfg.data.batch_size}" + (f", resuming from {last}" if last.exists() else ""), flush=True)
        trainer.fit(module, datamodule=data, ckpt_path=str(last) if last.exists() else None)
    return trainer


def train(cfg) -> Path:
    """The one training skeleton of both commands (`longvid-train`, `longvid-train-v2t`): the data module and the
    LightningModule (`module`: a class with `from_config(cfg, data, run_dir)` and `export(directory)`) from the
    config, the configured Trainer and logger, fit (resuming from ckpt/last.ckpt), and the export on rank 0 to
    `<run_dir>/model/`. `trainer.max_steps=0` exports the untrained module."""
    import logging

    import lightning as L
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    for name in ("lightning.pytorch", "lightning.fabric"):   # one line per fact: our own (parameters, devices,
        logging.getLogger(name).setLevel(logging.WARNING)    # saved), not Lightning's INFO (printed twice) and tips
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    # the frozen encoder / LM stay in eval mode on purpose (VideoToText.train keeps them there)
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True)
    import importlib

    path, _, name = str(cfg.module).rpartition(".")
    try:
        module_cls = getattr(importlib.import_module(path), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise ValueError(f"module={cfg.module}: not an importable class ({e})") from None
    for method in ("from_config", "export"):
        if not callable(getattr(module_cls, method, None)):
            raise ValueError(f"module={cfg.module}: a training module needs a `{method}` method")
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    data = instantiate(cfg.data, seed=cfg.seed, _recursive_=False)
    module = module_cls.from_config(cfg, data, run_dir)
    trainer = fit_resumable(cfg, module, data, run_dir, fit=cfg.trainer.max_steps != 0)
    if cfg.trainer.max_steps == 0:
        print("trainer.max_steps=0: exporting the untrained model")
    out = run_dir / "model"
    if trainer.is_global_zero:
        module.export(out)
        print(f"saved {out}")
    return out


def main() -> None:
    from evals import hydra_main

    hydra_main("train", train)


if __name__ == "__main__":
    main()
