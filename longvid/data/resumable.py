"""Exact resumption of a killed training run: the same batches and the same masks as if it had never stopped.

Lightning restores the weights, the optimizer, the scheduler and the loop counters from `last.ckpt`, but a
plain shuffled DataLoader draws its order from the global RNG and restarts the interrupted epoch from its
first batch; masks drawn from a generator seeded once per fit restart from the seed. Here instead:

- `ResumableSampler` shuffles with an order fixed by (seed, epoch, pass): `pass` counts the restarts of a
  loader within an epoch (a `max_size_cycle` CombinedLoader restarts its shorter loaders);
- `LoaderResumeMixin` gives a LightningDataModule `state_dict` / `load_state_dict` holding (epoch, batches
  trained in that epoch); the loaders built after a restore skip exactly those batches;
- `step_generator` seeds the masks of a training step from (seed, rank, global step), and `seed_step` the
  global RNG (dropout) at the start of each step.

One process (CPU or one GPU). Under DDP Lightning wraps the sampler in its distributed sampler: the order
then stays fixed per epoch, but an epoch interrupted mid-way is not skipped into exactly.
"""
from __future__ import annotations

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    def __init__(self, n: int, batch_size: int, seed: int = 0, drop_last: bool = False):
        self.n, self.batch_size, self.seed, self.drop_last = int(n), int(batch_size), int(seed), drop_last
        self.epoch, self.passes = 0, 0
        self._resume: tuple[int, int] | None = None     # (epoch, batches already trained in it)

    def __len__(self) -> int:
        return self.n

    def batches(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:            # called by Lightning at every epoch start
        if epoch != self.epoch:
            self.epoch, self.passes = int(epoch), 0

    def resume(self, epoch: int, batches: int) -> None:
        """Continue epoch `epoch` after its first `batches` batches (of the loader this sampler serves)."""
        self.epoch, self._resume = int(epoch), (int(epoch), int(batches))

    def __iter__(self):
        skip = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            per_pass = max(self.batches(), 1)
            self.passes, skip = divmod(self._resume[1], per_pass)
            skip *= self.batch_size
        self._resume = None
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 1_009 + self.passes)
        self.passes += 1
        order = torch.randperm(self.n, generator=g).tolist()
        yield from order[skip:]


class LoaderResumeMixin:
    """For a LightningDataModule whose train loaders use `ResumableSampler`s made by `resumable_sampler`."""

    _resume_state: dict | None = None

    def per_device(self, batch_size: int, key: str) -> int:
        """`batch_size` is the global batch (all devices together: for a contrastive loss, the negatives of a step
        stay the same as devices change); each device loads its share."""
        trainer = getattr(self, "trainer", None)
        world = trainer.world_size if trainer is not None else 1
        if batch_size % world:
            raise ValueError(f"{key}={batch_size} is the global batch size (all devices together) and must be "
                             f"divisible by the {world} devices of this run")
        return batch_size // world

    def resumable_sampler(self, n: int, batch_size: int, drop_last: bool, seed: int) -> ResumableSampler:
        s = ResumableSampler(n, batch_size, seed, drop_last)
        if self._resume_state is not None:
            s.resume(self._resume_state["epoch"], self._resume_state["batches"])
        return s

    def state_dict(self) -> dict:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return {}
        # saved from on_train_batch_end: `processed` counts the batch just trained
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return {"epoch": int(trainer.current_epoch), "batches": int(done)}

    def load_state_dict(self, state: dict) -> None:
        self._resume_state = dict(state) if state else None


def _step_seed(seed: int, rank: int, step: int) -> int:
    return seed * 1_000_003 + rank * 100_003 + step


def step_generator(seed: int, rank: int, step: int, device) -> torch.Generator:
    """The mask generator of one training step: a function of (seed, rank, step) only, so a resumed run draws
    the masks the uninterrupted one would have."""
    return torch.Generator(device=device).manual_seed(_step_seed(seed, rank, step))


def seed_step(seed: int, rank: int, step: int) -> None:
    """Seed the global RNGs (dropout, e.g. in the text tower) for one training step, apart from the masks."""
    torch.manual_seed(_step_seed(seed, rank, step) + 7_919)
