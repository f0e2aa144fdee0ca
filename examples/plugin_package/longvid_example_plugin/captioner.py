"""A captioner: `caption(clips) -> list[str]`, one caption per clip (a segment's uint8 frames (T, H, W, 3) and its
start/end in seconds). This one names the dominant colour of whatever is not background and where it goes."""
from __future__ import annotations

import numpy as np

PALETTE = {"red": (230, 40, 40), "green": (40, 200, 60), "blue": (50, 90, 240), "yellow": (240, 220, 40),
           "purple": (170, 60, 210), "white": (235, 235, 235), "orange": (245, 140, 30), "black": (10, 10, 10)}


def _blob(frame: np.ndarray, threshold: int) -> tuple[str, float, float] | None:
    """(colour name, centre x, centre y) of the pixels that differ from the frame's median colour, or None."""
    px = frame.reshape(-1, 3).astype(np.int16)
    fg = np.abs(px - np.median(px, axis=0)).sum(axis=1) > threshold
    if fg.sum() < 4:
        return None
    mean = px[fg].mean(axis=0)
    name = min(PALETTE, key=lambda k: float(np.square(mean - PALETTE[k]).sum()))
    ys, xs = np.divmod(np.flatnonzero(fg), frame.shape[1])
    return name, xs.mean() / frame.shape[1], ys.mean() / frame.shape[0]


class ColourCaptioner:
    def __init__(self, threshold: int = 60, move: float = 0.1):
        self.threshold, self.move = int(threshold), float(move)

    def identity(self) -> dict:            # what keys the cached captions: change it when the output would change
        return {"captioner": "colour", "version": 1, "threshold": self.threshold, "move": self.move}

    def caption(self, clips) -> list[str]:
        return [self._one(c.frames) for c in clips]

    def _one(self, frames) -> str:
        first, last = _blob(frames[0], self.threshold), _blob(frames[-1], self.threshold)
        if first is None and last is None:
            return "an empty scene"
        if first is None or last is None:
            return f"a {(first or last)[0]} object {'appears' if first is None else 'disappears'}"
        if first[0] != last[0]:
            return f"a {first[0]} object turns {last[0]}"
        dx, dy = last[1] - first[1], last[2] - first[2]
        if max(abs(dx), abs(dy)) < self.move:
            return f"a {first[0]} object stays in place"
        way = ("right" if dx > 0 else "left") if abs(dx) >= abs(dy) else ("down" if dy > 0 else "up")
        return f"a {first[0]} object moves {way}"
