"""Cutting a video into the segments the captioner describes, and reading their frames through the one
video path (`longvid.data.video.read_frames`, with the comparison's shared `video` sampling).

- `uniform`: consecutive windows of `window` seconds (16 s default) covering the video; a last piece
  shorter than `min_last` seconds is merged into the previous window.
- `oracle`: the benchmark's ground-truth segments (an error for items whose annotations have none).
"""
from __future__ import annotations

import math
from typing import Sequence

from evals.contracts import Clip, Sample, Segment
from longvid.data.video import VideoSampling, probe, read_frames

MODES = ("uniform", "oracle")


def uniform_segments(duration: float, window: float = 16.0, min_last: float = 2.0) -> list[Segment]:
    if not duration > 0:
        raise ValueError(f"cannot segment a video of duration {duration}")
    if not window > 0:
        raise ValueError(f"segment window must be > 0 s, got {window}")
    n = max(1, math.ceil(duration / window - 1e-9))
    bounds = [min(duration, i * window) for i in range(n + 1)]
    if n > 1 and bounds[-1] - bounds[-2] < min_last:
        del bounds[-2]
    return [Segment(float(a), float(b)) for a, b in zip(bounds, bounds[1:])]


def segments_for(sample: Sample, mode: str = "uniform", window: float = 16.0,
                 oracle: Sequence[Segment] | None = None) -> list[Segment]:
    """The segments to caption for one item. `oracle` overrides the item's own annotated segments (e.g. the
    segments of the same video from another annotation file, for QA items that have none)."""
    if mode not in MODES:
        raise ValueError(f"segments must be one of {MODES}, got {mode!r}")
    if mode == "oracle":
        segs = list(oracle if oracle is not None else sample.segments)
        if not segs:
            raise ValueError(f"item {sample.uid!r} has no ground-truth segments for oracle segmenting")
        return segs
    duration = sample.duration
    if not duration:
        if not sample.video:
            raise ValueError(f"item {sample.uid!r} has neither a duration nor a video")
        duration = probe(sample.video)[0]
    return uniform_segments(float(duration), window)


def cut_to(segments: Sequence[Segment], length: float) -> list[Segment]:
    """The segments within [0, length] s: those starting at or after `length` dropped, the others' ends cut."""
    return [s if s.end <= length else Segment(s.start, float(length), s.sentence) for s in segments
            if s.start < length]


def read_clips(video: str, segments: Sequence[Segment], sampling: VideoSampling) -> list[Clip]:
    """Frames of each segment (raises longvid.data.video.VideoError for an unreadable video). With a per-video frame
    budget (`video.fps` null: N frames spread over the whole video) each segment gets the frames of that one
    sampling that fall in it — every row sees the same N frames —, a segment between two of them the one nearest
    its middle."""
    if sampling.fps is not None:
        return [Clip(read_frames(video, sampling, s.start, s.end).array, s.start, s.end) for s in segments]
    import numpy as np

    whole = read_frames(video, sampling)
    ts = whole.timestamps
    out = []
    for s in segments:
        idx = np.flatnonzero((ts >= s.start) & (ts < s.end))
        if not len(idx):
            idx = np.array([int(np.argmin(np.abs(ts - (s.start + s.end) / 2)))])
        out.append(Clip(whole.array[idx], s.start, s.end))
    return out
