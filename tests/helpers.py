"""Test doubles and fixtures-makers (never used by the suite itself)."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from evals.contracts import CAPTIONING, MCQA, SUMMARIZATION, Prediction, Sample


def make_video(path, n_frames=8, size=32, fps=1, seed=0) -> str:
    """A real H.264 mp4 of random-ish frames."""
    import av

    rng = np.random.default_rng(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=fps)
        st.width = st.height = size
        st.pix_fmt = "yuv420p"
        for i in range(n_frames):
            img = np.full((size, size, 3), (i * 20) % 250, np.uint8) + rng.integers(0, 5, (size, size, 3),
                                                                                   dtype=np.uint8)
            for pkt in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    return str(path)


class DecodingSystem:
    """Reads every item's frames through the one video path; answers from the mean brightness."""

    tasks = frozenset({SUMMARIZATION, CAPTIONING, MCQA})

    def __init__(self, name="decoding", video=None):
        from longvid.data.video import VideoSampling

        self.name = name
        self.sampling = VideoSampling(**(video or {}))

    def predict(self, samples: Sequence[Sample]) -> Iterator[Prediction]:
        from longvid.data.video import read_frames

        for s in samples:
            f = read_frames(s.video, self.sampling)
            level = int(f.array.mean()) % 5
            if s.task == MCQA:
                yield Prediction(uid=s.uid, system=self.name, text=f"Answer: {'ABCDE'[level]}")
            else:
                yield Prediction(uid=s.uid, system=self.name, text=f"a video with {len(f.array)} frames")


class SlowEcho:
    """Echoes a deterministic answer per item after a delay, logging each call (one line per uid)."""

    tasks = frozenset({SUMMARIZATION, CAPTIONING, MCQA})

    def __init__(self, name="slow", delay=0.0, log=None, fail_uids=(), fail_flag=None):
        self.name, self.delay, self.log, self.fail_uids = name, delay, log, set(fail_uids)
        self.fail_flag = fail_flag  # if set, fail_uids fail only while this file exists

    def predict(self, samples):
        for s in samples:
            if self.log:
                with open(self.log, "a") as f:
                    f.write(s.uid + "\n")
            time.sleep(self.delay)
            if s.uid in self.fail_uids and (self.fail_flag is None or os.path.exists(self.fail_flag)):
                raise RuntimeError(f"deliberate failure on {s.uid}")
            h = sum(map(ord, s.uid))
            if s.task == MCQA:
                yield Prediction(uid=s.uid, system=self.name, text=f"The answer is {'ABCDE'[h % 5]}.")
            else:
                words = (s.references[0].split() if s.references else ["nothing"])
                yield Prediction(uid=s.uid, system=self.name, text=" ".join(words[: 1 + h % len(words)]))
