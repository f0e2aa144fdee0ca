"""Lightning side of contrastive pre-training: a data module of (video|image, text) pairs and a module that
trains a `DualEncoder` built from plain configs (so `load_from_checkpoint` works)."""
from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from longvid.data.datasets import ImageTextDataset, VideoTextDataset
from longvid.data.resumable import LoaderResumeMixin, seed_step, step_generator
from longvid.model.dual import WEIGHTS, DualConfig, DualEncoder, inflate_imagevit, is_image_dual, load_state_flexible
from longvid.model.encoder import count_params
from longvid.model.peft import apply_tuning


class PairsDataModule(LoaderResumeMixin, L.LightningDataModule):
    """Video-text pairs (+ optional image-text pairs mixed into every batch) for train / val.

    `batch_size` / `image_batch_size` are global (all devices together; each device loads its share).
    `synthetic`: a `SyntheticConfig` as a dict: the data set is then generated under `synthetic_root` by
    `prepare_data` (Lightning calls it once, on rank 0) and `train` / `val` / `images` are paths inside it."""

    def __init__(self, train: str, val: str | None = None, images: str | None = None, root: str | None = None,
                 num_frames: int = 16, size: int = 64, fps: float = 1.0, batch_size: int = 8,
                 image_batch_size: int = 8, num_workers: int = 0, limit: int | None = None, seed: int = 0,
                 synthetic: dict | None = None, synthetic_root: str | None = None):
        super().__init__()
        if synthetic is not None:
            from omegaconf import DictConfig, OmegaConf

            synthetic = OmegaConf.to_container(synthetic, resolve=True) if isinstance(synthetic, DictConfig) \
                else dict(synthetic)
            if not synthetic_root:
                raise ValueError("data.synthetic is set: give data.synthetic_root, the folder it is generated in")
        self.save_hyperparameters()

    def _synthetic(self):
        from evals.synthetic import SyntheticConfig

        return SyntheticConfig(**self.hparams.synthetic)

    def path(self, key: str) -> str | None:
        """`train` / `val` / `images`, inside the generated data set when `synthetic` is set."""
        p = self.hparams[key]
        if p is None or self.hparams.synthetic is None:
            return p
        return str(Path(self.hparams.synthetic_root) / self._synthetic().digest() / p)

    def prepare_data(self) -> None:
        if self.hparams.synthetic is not None:
            from evals.synthetic import generate

            generate(self._synthetic(), self.hparams.synthetic_root)

    def train_texts(self) -> list[str]:
        """The captions of the training pairs (video and image), e.g. to train a tokenizer on."""
        from longvid.data.datasets import read_jsonl

        self.prepare_data()
        return [d["text"] for key in ("train", "images") if self.hparams[key] for d in read_jsonl(self.path(key))]

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        if h.synthetic is not None and not (Path(h.synthetic_root) / self._synthetic().digest() / "DONE").exists():
            raise RuntimeError(f"{self.path('train')}: the synthetic data set is not generated "
                               "(prepare_data makes it; Lightning calls it on rank 0 before setup)")
        self.train_set = VideoTextDataset(self.path("train"), h.root, h.num_frames, h.size, h.fps, h.limit)
        self.val_set = VideoTextDataset(self.path("val"), h.root, h.num_frames, h.size, h.fps, h.limit) \
            if h.val else None
        self.image_set = ImageTextDataset(self.path("images"), h.root, h.size, h.limit) if h.images else None

    def _loader(self, ds, bs, shuffle, seed=0):
        drop = shuffle and len(ds) > bs
        sampler = self.resumable_sampler(len(ds), bs, drop, self.hparams.seed + seed) if shuffle else None
        return DataLoader(ds, batch_size=bs, sampler=sampler, num_workers=self.hparams.num_workers,
                          drop_last=drop, persistent_workers=self.hparams.num_workers > 0)

    def train_dataloader(self):
        from lightning.pytorch.utilities import CombinedLoader

        h = self.hparams
        loaders = {"video": self._loader(self.train_set, self.per_device(h.batch_size, "data.batch_size"), True)}
        if self.image_set is not None:
            bs = self.per_device(h.image_batch_size, "data.image_batch_size")
            loaders["image"] = self._loader(self.image_set, bs, True, seed=1)
        return CombinedLoader(loaders, mode="max_size_cycle")

    def val_dataloader(self):
        if self.val_set is None:
            return []
        return self._loader(self.val_set, self.per_device(self.hparams.batch_size, "data.batch_size"), False)


class ContrastiveModule(L.LightningModule):
    def __init__(self, model: dict, tokenizer_dir: str, tuning: dict | None = None, mask_ratio: float = 0.0,
                 tube_mask: bool = False, init_from: str | None = None, image_init: str | None = None,
                 lr: float = 3e-4, weight_decay: float = 0.05, warmup_steps: int = 10, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.tokenizer = _tokenizer(tokenizer_dir)
        cfg = DualConfig.from_dict({**model, "vocab_size": len(self.tokenizer)})
        self.model = DualEncoder(cfg)
        if image_init and is_image_dual(image_init):   # this suite's image-text model (an ImageViT export)
            from safetensors.torch import load_file

            state = load_file(str(Path(image_init) / WEIGHTS))
            load_state_flexible(self.model, inflate_imagevit(state, cfg.encoder.tubelet_frames))
        elif image_init:                                # an HF ViT / CLIP vision tower
            from longvid.model.hf_init import load_image_weights

            load_image_weights(self.model.vivit, image_init)
        if init_from:  # e.g. stage 2 starts from the stage-1 export
            from safetensors.torch import load_file

            load_state_flexible(self.model, load_file(str(Path(init_from) / "model.safetensors")))
        apply_tuning(self.model.vivit, **(tuning or {}))
        self._val: list[tuple[torch.Tensor, torch.Tensor, list[str]]] = []

    @classmethod
    def from_config(cls, cfg, data: PairsDataModule, run_dir) -> "ContrastiveModule":
        """The module of a `longvid-train` config (`longvid.train.train`). The tokenizer: `tokenizer`, the one of
        the model this run starts from (`init_from`, or an ImageViT `image_init`), or one trained on the training
        captions (kept in the run; made before the module, so it generates the data first)."""
        from omegaconf import OmegaConf

        from longvid.model.text import train_tokenizer

        if cfg.tokenizer:
            tokenizer = str(cfg.tokenizer)
        elif cfg.init_from:
            tokenizer = str(Path(cfg.init_from) / "tokenizer")
        elif cfg.image_init and is_image_dual(cfg.image_init):     # the image-text model's text tower, its vocabulary
            tokenizer = str(Path(cfg.image_init) / "tokenizer")
        else:
            tokenizer = str(Path(run_dir) / "tokenizer")
            if not (Path(tokenizer) / "tokenizer.json").exists():
                train_tokenizer(data.train_texts(), cfg.model.text.vocab_size, tokenizer)
        return cls(model=OmegaConf.to_container(cfg.model, resolve=True), tokenizer_dir=tokenizer,
                   tuning=OmegaConf.to_container(cfg.tuning, resolve=True), mask_ratio=cfg.mask_ratio,
                   tube_mask=cfg.tube_mask, init_from=cfg.init_from, image_init=cfg.image_init, seed=cfg.seed,
                   **cfg.optim)

    def export(self, directory) -> Path:
        """The trained `DualEncoder` + tokenizer (`DualEncoder.from_pretrained` loads it)."""
        return self.model.save_pretrained(directory, self.tokenizer)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        t = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.model.cfg.text.max_length,
                           return_tensors="pt")
        return {"input_ids": t["input_ids"].to(self.device), "attention_mask": t["attention_mask"].to(self.device)}

    def on_fit_start(self) -> None:
        trainable, total = count_params(self.model)
        self.print(f"parameters: {trainable:,} trainable / {total:,} total "
                   f"({100 * trainable / max(total, 1):.1f}%)")

    def on_train_batch_start(self, batch, batch_idx) -> None:
        seed_step(self.hparams.seed, self.global_rank, self.global_step)     # dropout: exact on resume

    def training_step(self, batch, batch_idx):
        batch = batch[0] if isinstance(batch, (tuple, list)) else batch
        embeds, texts = [], []
        if batch.get("video") is not None:
            v = batch["video"]
            g = step_generator(self.hparams.seed, self.global_rank, self.global_step, self.device)
            embeds.append(self.model.video(v["video"], mask_ratio=self.hparams.mask_ratio, generator=g,
                                           **({"tube": True} if self.hparams.tube_mask else {})).embedding)
            texts += v["text"]
        if batch.get("image") is not None:
            embeds.append(self.model.encode_image(batch["image"]["image"]))
            texts += batch["image"]["text"]
        t = self.model.encode_text(**self.tokenize(texts))
        loss = self.model.loss(torch.cat(embeds), t)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(texts))
        self.log("train/temperature", self.model.loss.temperature, batch_size=len(texts))
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.model.loss.clamp_()                                # after the optimizer step

    def validation_step(self, batch, batch_idx):
        v = self.model.encode_video(batch["video"])
        t = self.model.encode_text(**self.tokenize(batch["text"]))
        self._val.append((v.detach().cpu(), t.detach().cpu(), list(batch["text"])))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        from evals.metrics.retrieval import retrieval_scores, shared_text_positives

        v = torch.nn.functional.normalize(torch.cat([x for x, _, _ in self._val]).float(), dim=-1)
        t = torch.nn.functional.normalize(torch.cat([y for _, y, _ in self._val]).float(), dim=-1)
        texts = [s for _, _, b in self._val for s in b]
        self._val.clear()
        r = retrieval_scores((t @ v.T).numpy(), shared_text_positives(texts))
        self.log("val/t2v_R@1", r["t2v/R@1"], prog_bar=True)
        self.log("val/v2t_R@1", r["v2t/R@1"])

    def configure_optimizers(self):
        from longvid.lit.optim import adamw_cosine

        h = self.hparams
        return adamw_cosine(self, h.lr, h.weight_decay, h.warmup_steps)


def _tokenizer(directory: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(directory, local_files_only=True)
