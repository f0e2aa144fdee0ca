"""Segment captioners: local HF image-text models (tiny random GIT / BLIP-2 / LLaVA built offline) and the
OpenAI-compatible server captioner (against a fake HTTP server in a thread)."""
from __future__ import annotations

import base64
import io
import json
import threading
import time

import numpy as np
import pytest

from baselines.captioners.hf import HFImageCaptioner, frame_indices, join_captions
from baselines.captioners.openai_server import OpenAICaptioner, chat_endpoint
from baselines.llm.base import LLMError
from evals.contracts import Captioner, Clip
from tests.tiny_captioners import save_tiny
from tests.helpers import JsonHTTPServer


def clips_of(lengths, h=24, w=40, seed=0):
    rng = np.random.default_rng(seed)
    return [Clip(rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8), float(i), float(i + n))
            for i, n in enumerate(lengths)]


def level_clip(levels, h=24, w=40):
    """A clip whose frame t is uniformly grey at levels[t] (the fake server reads the level back)."""
    return Clip(np.stack([np.full((h, w, 3), v, np.uint8) for v in levels]), 0.0, float(len(levels)))


# --- pure helpers -------------------------------------------------------------------------------------------------
def test_frame_indices_and_join():
    assert frame_indices(10, 3) == [1, 5, 8]
    assert frame_indices(2, 3) == [0, 1]
    assert frame_indices(5, 1) == [2]
    assert join_captions(["a  cat", "a cat", "", "a dog", "a cat"], "; ") == "a cat; a dog; a cat"
    assert chat_endpoint("http://h:1/") == "http://h:1/v1/chat/completions"
    assert chat_endpoint("http://h:1/v1") == chat_endpoint("http://h:1/v1/chat/completions")


# --- HF image-text models -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_captioners")
    return {k: save_tiny(k, root / k) for k in ("git", "blip2", "llava")}


@pytest.mark.parametrize("kind,prompt", [("git", None), ("git", "describe the video ."), ("blip2", None),
                                         ("llava", "describe the video .")])
def test_hf_captioner_one_caption_per_clip(tiny_models, kind, prompt):
    cap = HFImageCaptioner(tiny_models[kind], frames_per_segment=3, prompt=prompt, max_new_tokens=6, batch_size=4)
    assert isinstance(cap, Captioner)
    seen = []
    clips = clips_of([1, 5, 9])
    cap.load()
    generate = cap.model.generate

    def spy(**kw):
        seen.append(kw["pixel_values"].shape[0])
        return generate(**kw)

    cap.model.generate = spy
    out = cap.caption(clips)
    assert len(out) == 3 and all(isinstance(t, str) and t.strip() for t in out), out
    assert seen == [4, 3]                              # 1 + 3 + 3 frames, in batches of 4
    assert cap.caption(clips) == out                   # greedy: deterministic
    for t in out:                                      # the prompt / chat turn is not echoed
        assert not t.startswith("describe the video") and "answer :" not in t
    fresh = HFImageCaptioner(tiny_models[kind], frames_per_segment=3, prompt=prompt, max_new_tokens=6)
    assert fresh.caption(clips) == out                 # batch size does not change the text
    d = cap.describe()
    assert json.dumps(d) and d["path"] == cap.path and d["frames_per_segment"] == 3 and d["prompt"] == prompt


def test_hf_captioner_bad_paths(tmp_path):
    with pytest.raises(ValueError, match="nope"):
        HFImageCaptioner(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        HFImageCaptioner(str(tmp_path / "empty"))
    from transformers import LlamaConfig, LlamaForCausalLM

    LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2)).save_pretrained(tmp_path / "textonly")
    with pytest.raises(ValueError, match="textonly.*not an image-text model"):
        HFImageCaptioner(str(tmp_path / "textonly"))
    with pytest.raises(ValueError, match="dtype"):
        HFImageCaptioner(str(tmp_path / "textonly"), dtype="fp8")


def test_hf_captioner_rejects_bad_frames(tiny_models):
    cap = HFImageCaptioner(tiny_models["git"])
    with pytest.raises(ValueError, match="clip 1.*uint8"):
        cap.caption([clips_of([2])[0], Clip(np.zeros((2, 8, 8, 3), np.float32), 0, 1)])
    assert cap.caption([]) == []


# --- OpenAI-compatible server captioner ---------------------------------------------------------------------------
class FakeServer(JsonHTTPServer):
    """An OpenAI-style chat endpoint. `behave(n, body)` -> (status, reply text) or None for the default reply,
    which names the grey levels of the request's images ("level 10 level 20")."""

    def __init__(self, behave=None, delay=0.0):
        self.bodies, self.headers, self.lock = [], [], threading.Lock()
        self.behave, self.delay = behave or (lambda n, body: None), delay
        super().__init__()

    def handle(self, path, body, headers):
        if path == "/v1/models":
            return 200, {"data": [{"id": "tiny-model", "root": "/models/tiny-vlm"}]}
        with self.lock:
            n = len(self.bodies)
            self.bodies.append(body)
            self.headers.append(headers)
        time.sleep(self.delay)
        status, text = self.behave(n, body) or (200, " ".join(f"level {v}" for v in levels(body)))
        return status, ({"choices": [{"message": {"role": "assistant", "content": text}}]} if status == 200
                        else {"error": text})


def images(body):
    from PIL import Image

    out = []
    for part in body["messages"][0]["content"]:
        if part["type"] == "image_url":
            head, b64 = part["image_url"]["url"].split(",", 1)
            assert head == "data:image/png;base64"
            out.append(Image.open(io.BytesIO(base64.b64decode(b64))))
    return out


def levels(body):
    return [int(np.asarray(im)[0, 0, 0]) for im in images(body)]


@pytest.fixture
def server(request):
    servers = []

    def make(**kw):
        servers.append(FakeServer(**kw))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def test_openai_request_body(server, monkeypatch):
    srv = server()
    monkeypatch.setenv("MY_KEY", "sekret")
    cap = OpenAICaptioner(srv.url, "tiny-model", frames_per_segment=3, max_tokens=7, temperature=0.0, seed=5,
                          api_key_env="MY_KEY", retries=0)
    assert isinstance(cap, Captioner)
    out = cap.caption([level_clip([10, 20, 30, 40, 50, 60]), level_clip([70])])
    assert out == ["level 20 level 40 level 60", "level 70"]   # frames 1, 3, 5 of 6
    assert len(srv.bodies) == 2
    body = sorted(srv.bodies, key=lambda b: len(b["messages"][0]["content"]))[-1]
    assert body["model"] == "tiny-model" and body["max_tokens"] == 7 and body["temperature"] == 0.0
    assert body["seed"] == 5
    parts = body["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["image_url"] * 3 + ["text"] and parts[-1]["text"] == cap.prompt
    assert all(im.format == "PNG" and im.size == (40, 24) and im.mode == "RGB" for im in images(body))
    assert all(h.get("Authorization") == "Bearer sekret" for h in srv.headers)
    d = cap.describe()
    assert "url" not in d and d["model"] == "tiny-model" and d["prompt"] == cap.prompt and json.dumps(d)
    assert OpenAICaptioner(srv.url + "/v1", "tiny-model").caption([]) == []


def test_openai_one_image_per_request_joins_in_order(server):
    srv = server(delay=0.02)
    cap = OpenAICaptioner(srv.url, "m", frames_per_segment=4, images_per_request=1, concurrency=4, joiner=" | ")
    out = cap.caption([level_clip([1, 2, 3, 4]), level_clip([5, 5, 6]), level_clip([9, 8])])
    assert out == ["level 1 | level 2 | level 3 | level 4", "level 5 | level 6", "level 9 | level 8"]
    assert len(srv.bodies) == 9 and all(len(images(b)) == 1 for b in srv.bodies)


def test_openai_retries_a_server_error(server):
    srv = server(behave=lambda n, body: (500, "overloaded") if n == 0 else None)
    cap = OpenAICaptioner(srv.url, "m", frames_per_segment=2, retries=2, backoff=0.01)
    assert cap.caption([level_clip([3, 4])]) == ["level 3 level 4"]
    assert len(srv.bodies) == 2


def test_openai_failure_raises_after_retries_and_after_the_others(server):
    srv = server(behave=lambda n, body: (500, "boom") if levels(body) == [7] else None, delay=0.05)
    cap = OpenAICaptioner(srv.url, "m", frames_per_segment=4, images_per_request=1, retries=1, backoff=0.01,
                          concurrency=2)
    t0 = time.perf_counter()
    with pytest.raises(LLMError, match=rf"1 of 6 requests to {srv.url}/v1/chat/completions failed.*HTTP 500.*boom"):
        cap.caption([level_clip([7, 1, 2]), level_clip([3, 4, 5])])
    assert time.perf_counter() - t0 < 5
    assert len(srv.bodies) == 7                         # 5 good + the bad one twice: every request ran


def test_openai_client_error_is_not_retried(server):
    srv = server(behave=lambda n, body: (400, "bad image"))
    cap = OpenAICaptioner(srv.url, "m", frames_per_segment=1, retries=3, backoff=0.01)
    with pytest.raises(LLMError, match="HTTP 400.*bad image"):
        cap.caption([level_clip([1])])
    assert len(srv.bodies) == 1


def test_openai_captioner_identity_is_what_the_server_serves(server):
    from evals.contracts import ConfigError

    srv = server()
    cap = OpenAICaptioner(srv.url + "/v1", "tiny-model", frames_per_segment=2)
    cap.check()
    ident = cap.identity()
    assert ident["served"] == {"served_model": "tiny-model", "root": "/models/tiny-vlm"} and "url" not in ident
    assert OpenAICaptioner(srv.url, "tiny-model", frames_per_segment=2).identity() == ident
    assert OpenAICaptioner(srv.url, "tiny-model", frames_per_segment=3).identity() != ident
    with pytest.raises(ConfigError, match=r"model 'other' is not served at .*; it serves \['tiny-model'\]"):
        OpenAICaptioner(srv.url, "other").check()


def test_openai_timeout_and_refused_connection_do_not_hang(server):
    srv = server(delay=3.0)
    cap = OpenAICaptioner(srv.url, "m", frames_per_segment=1, timeout=0.2, retries=1, backoff=0.01)
    t0 = time.perf_counter()
    with pytest.raises(LLMError, match="Timeout"):
        cap.caption([level_clip([1])])
    assert time.perf_counter() - t0 < 2.5
    port = srv.port
    srv.close()
    cap = OpenAICaptioner(f"http://127.0.0.1:{port}", "m", frames_per_segment=1, timeout=1, retries=1, backoff=0.01)
    with pytest.raises(LLMError, match=f"127.0.0.1:{port}.*failed after 2 attempts"):
        cap.caption([level_clip([1])])
