"""Video-text and image-text pairs from jsonlines, read through the one video path.

Lines: `{"video": <path relative to root>, "text": ..., "start"?: s, "end"?: s}` (clips / whole videos) or
`{"video": ..., "time": s, "text": ...}` (single frames for the image stage) — the synthetic benchmark's
`pretrain/<split>/{clips,videos,frames}.jsonl` are in this form."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from evals.benchmarks.base import iter_jsonl
from longvid.data.video import VideoSampling, read_frames

MEAN, STD = 0.5, 0.5  # frames are mapped to [-1, 1]


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (3, T, H, W) float in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).float().div_(255.0)
    return x.sub_(MEAN).div_(STD).permute(3, 0, 1, 2)


def fixed_length(frames: np.ndarray, n: int) -> np.ndarray:
    """Exactly n frames: a span sampled to fewer (short clip at 1 FPS) repeats frames evenly in time."""
    if len(frames) == n:
        return frames
    return frames[np.linspace(0, len(frames) - 1, n).round().astype(int)]


def read_jsonl(path: str | Path) -> list[dict]:
    out = []
    for n, d in iter_jsonl(path, "pairs file"):
        if "video" not in d or not isinstance(d.get("text"), str):
            raise ValueError(f"{path}: line {n}: needs 'video' and a string 'text'")
        out.append(d)
    if not out:
        raise ValueError(f"{path}: no pairs")
    return out


@dataclass(frozen=True)
class ClipSpec:
    num_frames: int = 16          # frames per clip fed to the encoder (fixed length)
    size: int = 64                # frames resized to size x size
    fps: float = 1.0              # sampling rate before fixing the length

    def sampling(self) -> VideoSampling:
        return VideoSampling(fps=self.fps, max_frames=self.num_frames, height=self.size, width=self.size)


class VideoTextDataset(Dataset):
    def __init__(self, pairs: str, root: str | None = None, num_frames: int = 16, size: int = 64,
                 fps: float = 1.0, limit: int | None = None):
        self.items = read_jsonl(pairs)[:limit]
        self.root = Path(root) if root else Path(pairs).parent
        self.spec = ClipSpec(num_frames, size, fps)

    def __len__(self) -> int:
        return len(self.items)

    def path(self, d: dict) -> str:
        return str(self.root / d["video"])

    def __getitem__(self, i: int) -> dict:
        d = self.items[i]
        f = read_frames(self.path(d), self.spec.sampling(), float(d.get("start", 0.0)), d.get("end"))
        return {"video": to_tensor(fixed_length(f.array, self.spec.num_frames)), "text": d["text"]}


class ImageTextDataset(VideoTextDataset):
    """One frame at `time` of each line's video."""

    def __init__(self, pairs: str, root: str | None = None, size: int = 64, limit: int | None = None):
        super().__init__(pairs, root, 1, size, 1.0, limit)

    def __getitem__(self, i: int) -> dict:
        d = self.items[i]
        t = float(d.get("time", 0.0))
        f = read_frames(self.path(d), self.spec.sampling(), t, t + 1e-3)
        return {"image": to_tensor(f.array[:1])[:, 0], "text": d["text"]}
