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


def register_resolvers() -> None:
    from omegaconf import OmegaConf

    def synthetic_dir(cfg, root) -> str:
        from evals.synthetic import SyntheticConfig, generate

        return str(generate(SyntheticConfig(**cfg), root, progress=False))

    if not OmegaConf.has_resolver("synthetic_dir"):
        OmegaConf.register_new_resolver("synthetic_dir", synthetic_dir)


def tokenizer_for(cfg, run_dir: Path) -> str:
    """The tokenizer dir: the configured one, the one of the model this run starts from, or one trained on
    the training captions (kept in the run)."""
    from longvid.data.datasets import read_jsonl
    from longvid.model.text import train_tokenizer

    if cfg.tokenizer:
        return str(cfg.tokenizer)
    if cfg.init_from:
        return str(Path(cfg.init_from) / "tokenizer")
    out = run_dir / "tokenizer"
    if not (out / "tokenizer.json").exists():
        texts = [d["text"] for f in (cfg.data.train, cfg.data.get("images")) if f for d in read_jsonl(f)]
        train_tokenizer(texts, cfg.model.text.vocab_size, out)
    return str(out)


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
        trainer.fit(module, datamodule=data, ckpt_path=str(last) if last.exists() else None)
    return trainer


def train(cfg) -> Path:
    import lightning as L
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from longvid.lit.contrastive import ContrastiveModule

    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    data = instantiate(cfg.data, seed=cfg.seed)
    module = ContrastiveModule(model=OmegaConf.to_container(cfg.model, resolve=True),
                               tokenizer_dir=tokenizer_for(cfg, run_dir),
                               tuning=OmegaConf.to_container(cfg.tuning, resolve=True),
                               mask_ratio=cfg.mask_ratio, tube_mask=cfg.tube_mask, init_from=cfg.init_from,
                               image_init=cfg.image_init, seed=cfg.seed, **cfg.optim)
    trainer = fit_resumable(cfg, module, data, run_dir)
    out = run_dir / "model"
    if trainer.is_global_zero:
        module.model.save_pretrained(out, module.tokenizer)
        print(f"saved {out}")
    return out


def main() -> None:
    from evals import hydra_main

    register_resolvers()
    hydra_main("train", train)


if __name__ == "__main__":
    main()
