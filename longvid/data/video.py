"""The one video path: every system reads frames through `read_frames`, so a paired comparison feeds
all systems the identical frames for the same `video.*` config.

decord is imported lazily (no heavy imports at module import time). Its failures come in two types —
`RuntimeError` for missing/garbage/truncated files and `decord._ffi.base.DECORDError` (an `Exception`)
for some corrupt streams — and are turned into one `VideoError` that names the file.
"""
from __future__ import annotations

import math
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np


_CLOCK = re.compile(r"\[\d{2}:\d{2}:\d{2}\]\s*")   # decord prefixes its messages with the wall-clock time


class VideoError(RuntimeError):
    """A video could not be read. The message names the file and the reason (without decord's wall-clock time
    stamps, so the same failure reads the same on every rerun)."""

    def __init__(self, path: str, reason: str):
        reason = _CLOCK.sub("", reason)
        self.path, self.reason = str(path), reason
        super().__init__(f"cannot read video {path}: {reason}")


@dataclass(frozen=True)
class VideoSampling:
    """How frames are taken from a video (the `video.*` config group)."""

    fps: float | None = 1.0          # frames sampled per second of video; None: exactly `max_frames`, spread uniformly
    max_frames: int | None = 256     # cap; beyond it frames are spread uniformly over the span
    height: int | None = None        # resize frames to this size (None = native); both or neither
    width: int | None = None         # (bilinear + antialias in torch: decord's own resize is unreliable)

    def __post_init__(self):
        if self.fps is None and self.max_frames is None:
            raise ValueError("video.fps=null (a frame budget) needs video.max_frames: the number of frames")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"video.fps must be > 0 or null, got {self.fps}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"video.max_frames must be >= 1 or null, got {self.max_frames}")
        if (self.height is None) != (self.width is None):
            raise ValueError("video.height and video.width must be set together")


@dataclass(frozen=True)
class Frames:
    array: np.ndarray        # (T, H, W, 3) uint8
    timestamps: np.ndarray   # (T,) seconds of each frame


def sample_timestamps(start: float, end: float, sampling: VideoSampling) -> np.ndarray:
    """Timestamps (seconds) to sample in [start, end): one per 1/fps bin, at the bin centre; if there
    are more bins than `max_frames`, `max_frames` bins spread uniformly over the span. fps None (a frame budget):
    exactly `max_frames` bins, whatever the span's length."""
    if not end > start:
        raise ValueError(f"empty time span [{start}, {end})")
    if sampling.fps is None:
        n = int(sampling.max_frames)
    else:
        n = max(1, int(math.floor((end - start) * sampling.fps + 1e-9)))
        if sampling.max_frames is not None:
            n = min(n, sampling.max_frames)
    return start + (np.arange(n) + 0.5) * ((end - start) / n)


def timestamps_to_indices(ts: np.ndarray, video_fps: float, num_frames: int) -> np.ndarray:
    idx = np.floor(ts * video_fps + 1e-6).astype(np.int64)
    return np.clip(idx, 0, num_frames - 1)


def _open(path: str):
    import decord
    from decord._ffi.base import DECORDError

    if not os.path.isfile(path):
        raise VideoError(path, "file not found")
    if os.path.getsize(path) == 0:
        raise VideoError(path, "file is empty (0 bytes)")
    try:
        return decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    except (RuntimeError, DECORDError) as e:
        raise VideoError(path, f"decoder failed to open it ({type(e).__name__}: "
                               f"{str(e).splitlines()[0][:200]})") from e


_probed: dict[tuple, tuple[float, int]] = {}


def probe(path: str) -> tuple[float, int]:
    """(duration in seconds, number of frames) of a video file; remembered per file version (path, size, mtime),
    so the runner's video check and a system that needs the length open each file once."""
    st = os.stat(path) if os.path.isfile(path) else None
    key = (os.fspath(path), st.st_size, st.st_mtime_ns) if st else None
    if key in _probed:
        return _probed[key]
    vr = _open(path)
    fps = float(vr.get_avg_fps())
    out = (len(vr) / fps, len(vr))
    if key is not None:
        _probed[key] = out
    return out


_cache: OrderedDict = OrderedDict()
_cache_lock = threading.Lock()
CACHE_ITEMS = 16


def read_frames(path: str, sampling: VideoSampling, start: float = 0.0,
                end: float | None = None) -> Frames:
    """Decode the frames of `path` in [start, end) (end=None: the whole video) per `sampling`.

    Results are cached in memory (keyed by file identity, span and sampling), so systems evaluated on the
    same item in one process decode it once."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
        ident = (path, st.st_size, st.st_mtime_ns)
    except OSError:
        ident = (path, None, None)
    key = (ident, sampling, start, end)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    frames = _decode(path, sampling, start, end)
    with _cache_lock:
        _cache[key] = frames
        while len(_cache) > CACHE_ITEMS:
            _cache.popitem(last=False)
    return frames


def _decode(path: str, sampling: VideoSampling, start: float, end: float | None) -> Frames:
    from decord._ffi.base import DECORDError

    vr = _open(path)
    try:
        n_frames, fps = len(vr), float(vr.get_avg_fps())
    except (RuntimeError, DECORDError) as e:
        raise VideoError(path, f"cannot read stream info ({e})") from e
    if n_frames <= 0 or not fps > 0:
        raise VideoError(path, f"no decodable frames (frames={n_frames}, fps={fps})")
    duration = n_frames / fps
    end = duration if end is None else min(end, duration)
    if start >= end:
        raise VideoError(path, f"requested span starts at {start:.2f}s, video lasts {duration:.2f}s")
    ts = sample_timestamps(start, end, sampling)
    idx = timestamps_to_indices(ts, fps, n_frames)
    try:
        arr = vr.get_batch(idx.tolist()).asnumpy()  # (T, H, W, 3) uint8
    except (RuntimeError, DECORDError) as e:
        raise VideoError(path, f"decoding frames failed ({type(e).__name__}: "
                               f"{str(e).splitlines()[0][:200]})") from e
    if sampling.height is not None and arr.shape[1:3] != (sampling.height, sampling.width):
        arr = resize(arr, sampling.height, sampling.width)
    return Frames(array=arr, timestamps=idx / fps)


def resize(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, height, width, 3) uint8, bilinear with antialiasing."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()  # (T, 3, H, W)
    x = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
