"""Lightning side of the video-to-text model: a data module of (video, prompt, target) examples for
summarization / captioning / multiple choice read from any benchmark loader of the evaluation layer, and a
module that trains the connector of a `VideoToText` built from plain configs (so `load_from_checkpoint`
works) with the LM's captioning loss on the target tokens.

Checkpoints hold only the trainable tensors (and their optimizer state): the frozen encoder and LM are
referenced by path in the hyper-parameters and loaded from there."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from evals.contracts import Sample
from longvid.data.resumable import LoaderResumeMixin, seed_step, step_generator
from longvid.data.v2t import Prompts, V2T_TASKS, encoder_geometry, load_samples, sample_span, video_tensor
from longvid.data.video import VideoSampling, read_frames
from longvid.model.encoder import count_params
from longvid.model.v2t import V2TConfig, VideoToText, caption_batch


@dataclass(frozen=True)
class Example:
    sample: Sample
    target: str


class V2TDataset(Dataset):
    """One example per (sample, target): frames of the sample's span -> the encoder's input, plus the sample
    (for the prompt) and the target text. Samples without a video file or without a target are skipped."""

    def __init__(self, samples: list[Sample], num_frames: int, size: int, fps: float = 1.0):
        import os

        self.num_frames, self.size = num_frames, size
        self.sampling = VideoSampling(fps=fps, max_frames=num_frames, height=size, width=size)
        usable = [s for s in samples if s.video and os.path.isfile(s.video)]
        self.skipped_no_video = len(samples) - len(usable)
        self.items = [Example(s, t) for s in usable for t in Prompts.targets(s)]
        self.skipped_no_target = sum(1 for s in usable if not Prompts.targets(s))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        ex = self.items[i]
        start, end = sample_span(ex.sample)
        f = read_frames(ex.sample.video, self.sampling, start, end)
        return {"video": video_tensor(f.array, self.num_frames, self.size), "sample": ex.sample,
                "target": ex.target}


class Samples:
    """The batch's samples, opaque to Lightning's device transfer (which cannot rebuild frozen dataclasses)."""

    __slots__ = ("items",)

    def __init__(self, items: list[Sample]):
        self.items = items

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def collate(items: list[dict]) -> dict:
    return {"video": torch.stack([d["video"] for d in items]), "sample": Samples([d["sample"] for d in items]),
            "target": [d["target"] for d in items]}


class V2TDataModule(LoaderResumeMixin, L.LightningDataModule):
    """`train` / `val`: benchmark configs (Hydra `_target_` dicts, e.g. `evals.synthetic.SyntheticBenchmark`
    with `split: train`, or `evals.benchmarks.dense.YouCook2` on the official file) or benchmark objects.
    Frame count and size default to the encoder's (`encoder_path`); frames are sampled at `fps` (at most
    `num_frames`, uniformly) and then fixed to `num_frames` — the same path the systems use. `batch_size` is
    global (all devices together)."""

    def __init__(self, train: Any, val: Any = None, task: str | None = None, encoder_path: str | None = None,
                 num_frames: int | None = None, size: int | None = None, fps: float = 1.0, batch_size: int = 8,
                 num_workers: int = 0, limit: int | None = None, seed: int = 0):
        super().__init__()
        self.save_hyperparameters(ignore=["train", "val"])
        self.train_cfg, self.val_cfg = train, val
        if num_frames is None or size is None:
            if encoder_path is None:
                raise ValueError("give num_frames and size, or encoder_path to read them from the encoder")
            geo = encoder_geometry(encoder_path)
            num_frames, size = num_frames or geo["num_frames"], size or geo["image_size"]
        self.num_frames, self.size = int(num_frames), int(size)
        self.task = task
        self.train_set: V2TDataset | None = None
        self.val_set: V2TDataset | None = None

    def _dataset(self, bench) -> V2TDataset:
        samples = load_samples(bench)[: self.hparams.limit]
        tasks = {s.task for s in samples}
        if len(tasks) != 1 or not tasks <= set(V2T_TASKS):
            raise ValueError(f"the benchmark gives tasks {sorted(tasks)}; one of {V2T_TASKS} expected")
        if self.task is not None and tasks != {self.task}:
            raise ValueError(f"task {self.task!r} but the benchmark's samples are {sorted(tasks)}")
        self.task = next(iter(tasks))
        ds = V2TDataset(samples, self.num_frames, self.size, self.hparams.fps)
        if not len(ds):
            raise ValueError(f"no usable training examples among {len(samples)} samples "
                             f"({ds.skipped_no_video} without a video file, {ds.skipped_no_target} without a target)")
        if ds.skipped_no_video or ds.skipped_no_target:
            print(f"v2t data: skipped {ds.skipped_no_video} samples without a video file and "
                  f"{ds.skipped_no_target} without a target")
        return ds

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set = self._dataset(self.train_cfg)
            self.val_set = self._dataset(self.val_cfg) if self.val_cfg else None

    def _loader(self, ds, shuffle: bool) -> DataLoader:
        bs = self.per_device(self.hparams.batch_size, "data.batch_size")
        drop = shuffle and len(ds) > bs
        sampler = self.resumable_sampler(len(ds), bs, drop, self.hparams.seed) if shuffle else None
        return DataLoader(ds, batch_size=bs, sampler=sampler, num_workers=self.hparams.num_workers,
                          collate_fn=collate, drop_last=drop,
                          persistent_workers=self.hparams.num_workers > 0)

    def train_dataloader(self):
        return self._loader(self.train_set, True)

    def val_dataloader(self):
        return [] if self.val_set is None else self._loader(self.val_set, False)


def resolve_lm(cfg) -> str:
    """`lm_path`, or the folder the `lm` group's builder returns (building it on first use)."""
    from pathlib import Path

    from hydra.utils import instantiate

    if cfg.lm_path:
        p = Path(str(cfg.lm_path))
        if not (p / "config.json").is_file():
            raise FileNotFoundError(f"lm_path={p}: not a local HF causal LM folder (no config.json)")
        return str(p)
    return str(instantiate(cfg.lm))


class V2TModule(L.LightningModule):
    """Trains the connector (input projection, Perceiver resampler, gated cross-attention) of a `VideoToText`.

    `model`: a `V2TConfig` as a dict (with `encoder_path` and `lm_path`); `mask_ratio` replaces its
    `mask_ratio` (the encoder's input masking, used at training and, through the saved config, at inference);
    `prompts`: `longvid.data.v2t.Prompts` fields; `init_from`: an exported model whose connector to start from.
    `lr_mult`: {parameter-name suffix: multiplier} (e.g. the zero-initialised gates). The optimizer only sees
    trainable parameters, so the frozen encoder and LM have neither gradients nor optimizer state."""

    def __init__(self, model: dict, task: str = "summarization", prompts: dict | None = None, lr: float = 1e-4,
                 weight_decay: float = 0.0, warmup_steps: int = 10, lr_mult: dict | None = None,
                 mask_ratio: float = 0.3, max_length: int = 512, seed: int = 0, init_from: str | None = None):
        super().__init__()
        self.save_hyperparameters()
        if task not in V2T_TASKS:
            raise ValueError(f"task must be one of {V2T_TASKS}, got {task!r}")
        self.prompts = Prompts.from_dict(prompts)
        self.model = VideoToText(V2TConfig(**{**model, "mask_ratio": mask_ratio}))
        if init_from:                        # start from another run's connector (e.g. QA from summarization)
            self.load_connector(init_from)
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(self.model.cfg.lm_path, local_files_only=True)

    @classmethod
    def from_config(cls, cfg, data, run_dir) -> "V2TModule":
        """The module of a `longvid-train-v2t` config (`longvid.train.train`): the encoder at `encoder_path`, the LM
        at `lm_path` or built by the `lm` group; writes the parameter counts to `run_dir/params.json`."""
        import json
        from pathlib import Path

        from omegaconf import OmegaConf

        encoder_path = str(Path(cfg.encoder_path).absolute())
        encoder_geometry(encoder_path)                                   # a clear error if it is not an encoder
        module = cls(model={**OmegaConf.to_container(cfg.model, resolve=True), "encoder_path": encoder_path,
                            "lm_path": resolve_lm(cfg)},
                     task=cfg.task, prompts=OmegaConf.to_container(cfg.prompts, resolve=True),
                     mask_ratio=cfg.mask_ratio, max_length=cfg.max_length, seed=cfg.seed,
                     init_from=str(cfg.init_from) if cfg.init_from else None,
                     **OmegaConf.to_container(cfg.optim, resolve=True))
        (Path(run_dir) / "params.json").write_text(json.dumps(module.param_counts(), indent=1))
        return module

    def load_connector(self, directory) -> None:
        """Trainable tensors of an exported `VideoToText` (same encoder / LM geometry and connector config)."""
        from pathlib import Path

        from safetensors.torch import load_file

        from longvid.model.v2t import WEIGHTS

        f = Path(directory) / WEIGHTS
        if not f.is_file():
            raise FileNotFoundError(f"init_from={directory}: not an exported VideoToText (no {WEIGHTS})")
        state, own = load_file(str(f)), self.model.trainable_state_dict()
        bad = sorted(set(state) ^ set(own)) + sorted(k for k in own if k in state and state[k].shape != own[k].shape)
        if bad:
            raise ValueError(f"init_from={directory}: connector does not match this model's ({bad[:5]})")
        self.model.load_state_dict(state, strict=False)

    # --- parameters ------------------------------------------------------------------------------------
    def param_counts(self) -> dict[str, int]:
        trainable, total = count_params(self.model)
        return {"trainable": trainable, "total": total, "encoder": count_params(self.model.encoder)[1],
                "lm": count_params(self.model.lm)[1]}

    def on_fit_start(self) -> None:
        c = self.param_counts()
        self.print(f"parameters: {c['trainable']:,} trainable / {c['total']:,} total "
                   f"({100 * c['trainable'] / max(c['total'], 1):.2f}%); frozen: encoder {c['encoder']:,}, "
                   f"LM {c['lm']:,} (no gradients, no optimizer state)")

    def _trainable_keys(self) -> set[str]:
        return {"model." + k for k in self.model.trainable_state_dict()}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        keep = self._trainable_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Checks the trainable tensors are there and fills in the frozen ones from the loaded encoder / LM, so
        loading stays strict."""
        state = checkpoint["state_dict"]
        missing = self._trainable_keys() - set(state)
        if missing:
            raise ValueError(f"checkpoint lacks trainable weights: {sorted(missing)[:5]}")
        for k, v in self.state_dict().items():
            state.setdefault(k, v)

    # --- steps -------------------------------------------------------------------------------------------
    def batch_inputs(self, batch: dict) -> dict[str, torch.Tensor]:
        prompts = [self.prompts.render(self.tokenizer, s) for s in batch["sample"]]
        targets = [Prompts.continuation(p, t) for p, t in zip(prompts, batch["target"])]
        b = caption_batch(self.tokenizer, prompts, targets, max_length=self.hparams.max_length)
        return {k: v.to(self.device) for k, v in b.items()}

    def on_train_batch_start(self, batch, batch_idx) -> None:
        seed_step(self.hparams.seed, self.global_rank, self.global_step)     # dropout: exact on resume

    def training_step(self, batch, batch_idx):
        g = step_generator(self.hparams.seed, self.global_rank, self.global_step, self.device)
        out = self.model(batch["video"], **self.batch_inputs(batch), generator=g)
        n = len(batch["target"])
        self.log("train/loss", out.loss, prog_bar=True, batch_size=n)
        gates = torch.stack([torch.tanh(g.attn_gate).abs() for g in self.model.xattn])
        self.log("train/gate_abs_mean", gates.mean(), batch_size=n)
        return out.loss

    def validation_step(self, batch, batch_idx):
        g = torch.Generator(device=self.device).manual_seed(self.hparams.seed + batch_idx)  # same masks each time
        out = self.model(batch["video"], **self.batch_inputs(batch), generator=g)
        self.log("val/loss", out.loss, prog_bar=True, batch_size=len(batch["target"]))

    def configure_optimizers(self):
        from longvid.lit.optim import adamw_cosine

        h = self.hparams
        return adamw_cosine(self, h.lr, h.weight_decay, h.warmup_steps, h.lr_mult)

    def export(self, directory) -> Any:
        """`VideoToText.save` + the prompt templates (prompts.json) the systems read back."""
        import json
        from pathlib import Path

        from longvid.data.v2t import PROMPTS_FILE

        d = self.model.save(directory)
        (Path(d) / PROMPTS_FILE).write_text(json.dumps({"task": self.hparams.task, "prompts": asdict(self.prompts)},
                                                       indent=1))
        return d
