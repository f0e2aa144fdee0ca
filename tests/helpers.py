"""Test doubles and fixtures-makers (never used by the suite itself)."""
from __future__ import annotations

import json
import os
import threading
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


class FromFile:
    """A 'model' whose weights are a file: answers option (sum of the file's bytes + the uid's) % n. Reads no video."""

    tasks = frozenset({MCQA})
    needs_video = False

    def __init__(self, checkpoint, name="from_file", reply=None):
        self.name, self.checkpoint, self.reply = name, checkpoint, reply

    def predict(self, samples):
        w = sum(Path(self.checkpoint).read_bytes())
        for s in samples:
            yield Prediction(uid=s.uid, system=self.name,
                             text=self.reply or f"Answer: {'ABCDE'[(w + sum(map(ord, s.uid))) % len(s.options)]}")


class SlowEcho:
    """Echoes a deterministic answer per item after a delay, logging each call (one line per uid)."""

    tasks = frozenset({SUMMARIZATION, CAPTIONING, MCQA})

    def __init__(self, name="slow", delay=0.0, log=None, fail_uids=(), fail_flag=None, needs_video=True,
                 infra_after=None, reply=None):
        self.name, self.delay, self.log, self.fail_uids = name, delay, log, set(fail_uids)
        self.fail_flag = fail_flag  # if set, fail_uids fail only while this file exists
        self.needs_video = needs_video
        self.infra_after = infra_after  # an InfrastructureError after this many items, while fail_flag exists
        self.seen, self.reply = 0, reply   # reply: a fixed text for every item instead of the echo

    def identity(self):             # what it is: the same answers whatever its delay, log or failure switches
        return {"echo": "sum of the uid's characters", "reply": self.reply}

    def predict(self, samples):
        for s in samples:
            if self.log:
                with open(self.log, "a") as f:
                    f.write(s.uid + "\n")
            time.sleep(self.delay)
            switched_on = self.fail_flag is None or os.path.exists(self.fail_flag)
            self.seen += 1
            if self.infra_after is not None and self.seen > self.infra_after and switched_on:
                from evals.contracts import InfrastructureError

                raise InfrastructureError(f"the shared store went away at {s.uid} (deliberate)")
            if s.uid in self.fail_uids and switched_on:
                raise RuntimeError(f"deliberate failure on {s.uid}")
            if self.reply is not None:
                yield Prediction(uid=s.uid, system=self.name, text=self.reply)
                continue
            h = sum(map(ord, s.uid))
            if s.task == MCQA:
                yield Prediction(uid=s.uid, system=self.name, text=f"The answer is {'ABCDE'[h % 5]}.")
            else:
                words = (s.references[0].split() if s.references else ["nothing"])
                yield Prediction(uid=s.uid, system=self.name, text=" ".join(words[: 1 + h % len(words)]))


class FakeCaptioner:
    """Captions a clip by its span and mean brightness; counts the clips it saw (and can refuse to run)."""

    def __init__(self, forbid: bool = False, silent_from: float | None = None):
        self.calls, self.forbid, self.silent_from = 0, forbid, silent_from   # silent_from: "" for clips from then

    def caption(self, clips):
        if self.forbid:
            raise AssertionError("the captioner was called although every caption should be cached")
        self.calls += len(clips)
        return ["" if self.silent_from is not None and c.start >= self.silent_from else
                f"level {int(np.asarray(c.frames).mean())} from {c.start:.0f}s" for c in clips]


class FakeLLM:
    """An LLM backend double (baselines.llm.base.LLMBackend): echoes the last line of the prompt's first
    caption block, answers a fixed letter, scores options by length; fails requests containing `fail_on`."""

    def __new__(cls, *a, **kw):
        from baselines.llm.base import LLMBackend

        class _Fake(LLMBackend):
            def __init__(self, model="fake", letter="B", fail_on=None, cache=None,
                         capabilities=("chat", "score", "choice"), empty_on=None):
                super().__init__(model, cache=cache, retries=0)
                self.letter, self.fail_on, self.requests = letter, fail_on, []
                self.capabilities, self.empty_on = frozenset(capabilities), empty_on

            def _chat(self, conversations, sampling, choice):
                out = []
                for c in conversations:
                    text = c[-1]["content"]
                    self.requests.append(("chat", text, list(choice) if choice else None))
                    if self.fail_on and self.fail_on in text:
                        out.append(RuntimeError(f"deliberate failure on {self.fail_on!r}"))
                    elif self.empty_on and self.empty_on in text:
                        out.append("")
                    elif choice:
                        out.append(self.letter if self.letter in choice else choice[0])
                    else:
                        caps = [ln for ln in text.splitlines() if ln.startswith("[")]
                        out.append("summary: " + " / ".join(ln.split("] ", 1)[1] for ln in caps))
                return out

            def _score(self, conversations, options):
                self.requests += [("score", c[-1]["content"], list(o)) for c, o in zip(conversations, options)]
                return [[(-float(len(o)), len(o.split())) for o in opts] for opts in options]

        return _Fake(*a, **kw)


class JsonHTTPServer:
    """A local HTTP server for fault tests (127.0.0.1, a free port). Subclasses implement
    `handle(path, body, headers) -> (status, reply)` (body None for a GET): reply is JSON-able or raw bytes; status
    None = hang until `close()`."""

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.release = threading.Event()
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                self.reply(None)

            def do_POST(self):
                self.reply(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))

            def reply(self, body):
                status, reply = srv.handle(self.path, body, dict(self.headers))
                if status is None:
                    srv.release.wait(10)
                    return
                data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:   # the client gave up (timeout): fine
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads, self.httpd.block_on_close = True, False
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def handle(self, path: str, body: dict, headers: dict):
        raise NotImplementedError

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class CrashAtStep:
    """A Lightning callback that raises once `global_step` reaches `step`: a crash in the middle of a run."""

    def __new__(cls, step: int):
        from lightning.pytorch.callbacks import Callback

        class _Crash(Callback):
            def on_train_batch_end(self, trainer, *args):
                if trainer.global_step >= step:
                    raise RuntimeError(f"simulated crash at step {trainer.global_step}")

        return _Crash()


def save_tiny_v2t(root, lm_dir: str, task: str = "summarization", mask_ratio: float = 0.0,
                  gate: float | None = None) -> str:
    """A tiny saved VideoToText (32 px, 8 frames, 1-layer encoder saved to `root/enc`) on the LM in `lm_dir`,
    with the default prompts, at `root/model`. `gate`: open the gated cross-attention (0 = the LM alone)."""
    import torch

    from longvid.data.v2t import Prompts
    from longvid.model.dual import DualConfig, DualEncoder
    from longvid.model.encoder import EncoderConfig
    from longvid.model.text import TextConfig
    from longvid.model.v2t import V2TConfig, VideoToText

    root = Path(root)
    torch.manual_seed(0)
    enc = EncoderConfig(image_size=32, patch_size=16, tubelet_frames=2, num_frames=8, width=32, depth=1, heads=2,
                        mlp_dim=64, embed_dim=16)
    DualEncoder(DualConfig(encoder=enc, vocab_size=50, text=TextConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, embed_dim=16))
    ).save_pretrained(root / "enc")
    vt = VideoToText(V2TConfig(encoder_path=str(root / "enc"), lm_path=str(lm_dir), latents=4, resampler_depth=1,
                               resampler_heads=2, xattn_heads=2, mask_ratio=mask_ratio))
    if gate is not None:
        with torch.no_grad():
            for g in vt.xattn:
                g.attn_gate.fill_(gate)
                g.ff_gate.fill_(gate)
    out = vt.save(root / "model")
    (out / "prompts.json").write_text(json.dumps({"task": task, "prompts": Prompts().to_dict()}))
    return str(out)
