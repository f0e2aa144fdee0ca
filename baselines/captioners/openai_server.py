"""A captioner behind an OpenAI-compatible chat endpoint (vLLM's `api_server`, or any server speaking
/v1/chat/completions with `image_url` content parts).

Each clip contributes `frames_per_segment` evenly spaced frames, sent as base64 PNG data URLs: all in one request
(`images_per_request=None`), or in groups of `images_per_request` whose replies are joined (1 = one frame per
request, for models that take a single image, e.g. BLIP-2). Requests run concurrently (`concurrency` threads), each
with a timeout and `retries` bounded retries (server errors, timeouts, lost connections; a 4xx other than 408/429 is
not retried). If a request still fails, `LLMError` names the endpoint and the reason, raised once every other
request has finished; an endpoint that refuses connections after the retries stops the run (`BackendUnavailable`).
A bearer key is sent only when `api_key_env` names its variable, and never over plain http to another host. The
cache key (`identity()`) is the settings and what the server reports for `model`, not the `url`: the same model
behind another address gives the same captions.
"""
from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from baselines.captioners.hf import join_captions, select_frames
from baselines.llm.base import LLMError, auth_headers, with_retries
from evals.contracts import Clip, InfrastructureError


class _Retryable(Exception):
    """A failure worth another attempt (5xx, 408, 429, an unreadable reply)."""


def png_data_url(frame: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def chat_endpoint(url: str) -> str:
    """`http://host:port`, `.../v1` or the full `.../v1/chat/completions` -> the chat completions URL."""
    url = str(url).rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    return url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")


class OpenAICaptioner:
    def __init__(self, url: str, model: str, frames_per_segment: int = 4, images_per_request: int | None = None,
                 prompt: str = "Describe what happens in these video frames in one sentence.", max_tokens: int = 40,
                 temperature: float = 0.0, seed: int | None = 0, timeout: float = 60, retries: int = 2,
                 backoff: float = 1.0, concurrency: int = 4, api_key_env: str | None = None,
                 joiner: str = "; ", name: str | None = None):
        for key, v in (("frames_per_segment", frames_per_segment), ("max_tokens", max_tokens),
                       ("concurrency", concurrency), ("images_per_request", images_per_request or 1)):
            if int(v) < 1:
                raise ValueError(f"OpenAICaptioner: {key} must be >= 1, got {v}")
        if not url or not model:
            raise ValueError(f"OpenAICaptioner: url and model are required, got url={url!r} model={model!r}")
        self.endpoint, self.model = chat_endpoint(url), str(model)
        self.frames_per_segment, self.prompt, self.max_tokens = int(frames_per_segment), prompt, int(max_tokens)
        self.images_per_request = None if images_per_request is None else int(images_per_request)
        self.temperature, self.seed = float(temperature), seed
        self.timeout, self.retries, self.backoff = float(timeout), int(retries), float(backoff)
        self.concurrency, self.joiner = int(concurrency), joiner
        self.name = name or f"openai:{self.model}"
        self.headers = auth_headers(self.endpoint, api_key_env, f"captioner {self.name!r}")
        self._identity: dict | None = None

    def identity(self) -> dict:
        """The cache key of its captions: the settings that change them and what the server reports for `model`
        (asked once; a server that does not answer or serve `model` fails here, before a run's first item)."""
        if self._identity is None:
            from baselines.llm.server import served_model

            base = self.endpoint.removesuffix("/chat/completions").removesuffix("/v1")
            self._identity = {**self.describe(), "served": served_model(base, self.model, self.headers, self.timeout)}
        return self._identity

    def check(self) -> None:
        self.identity()

    def describe(self) -> dict:
        return {"class": type(self).__name__, "model": self.model, "prompt": self.prompt,
                "frames_per_segment": self.frames_per_segment, "images_per_request": self.images_per_request,
                "max_tokens": self.max_tokens, "temperature": self.temperature, "seed": self.seed,
                "joiner": self.joiner}

    def body(self, frames: Sequence[np.ndarray]) -> dict:
        """The chat request for some frames of one clip: the images, then the prompt, in one user turn."""
        content = [{"type": "image_url", "image_url": {"url": png_data_url(f)}} for f in frames]
        content.append({"type": "text", "text": self.prompt})
        body = {"model": self.model, "messages": [{"role": "user", "content": content}],
                "max_tokens": self.max_tokens, "temperature": self.temperature}
        if self.seed is not None:
            body["seed"] = int(self.seed)
        return body

    def caption(self, clips: Sequence[Clip]) -> list[str]:
        import httpx

        requests = []                                   # (clip index, frames of one request)
        for i, c in enumerate(clips):
            frames = select_frames(c, self.frames_per_segment, f"{self.name}: clip {i}")
            step = self.images_per_request or len(frames)
            requests += [(i, frames[s:s + step]) for s in range(0, len(frames), step)]
        if not requests:
            return []
        with httpx.Client(timeout=httpx.Timeout(self.timeout), headers=self.headers) as client, \
                ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = [pool.submit(self._request, client, frames, f"clip {i}") for i, frames in requests]
            results = []
            for f in futures:                           # waits for all, so no request is left running
                try:
                    results.append(f.result())
                except Exception as e:                  # noqa: BLE001 - reported below, after the others
                    results.append(e)
        errors = [r for r in results if isinstance(r, BaseException)]
        gone = [e for e in errors if isinstance(e, InfrastructureError)]
        if gone:
            raise gone[0]
        if errors:
            raise LLMError(f"{self.name}: {len(errors)} of {len(results)} requests to {self.endpoint} failed "
                           f"(first: {errors[0]})") from errors[0]
        per_clip: list[list[str]] = [[] for _ in clips]
        for (i, _), text in zip(requests, results):
            per_clip[i].append(text)
        return [join_captions(p, self.joiner) for p in per_clip]

    def _request(self, client, frames: Sequence[np.ndarray], what: str) -> str:
        import httpx

        body = self.body(frames)

        def once() -> str:
            r = client.post(self.endpoint, json=body)
            if r.status_code >= 400:
                msg = f"HTTP {r.status_code}: {r.text[:300]}"
                if r.status_code >= 500 or r.status_code in (408, 429):
                    raise _Retryable(msg)
                raise LLMError(f"{self.endpoint} ({what}): {msg}")
            try:
                return str(r.json()["choices"][0]["message"]["content"] or "")
            except (ValueError, KeyError, IndexError, TypeError) as e:
                raise _Retryable(f"unreadable reply {r.text[:200]!r}") from e

        return with_retries(once, self.retries, self.backoff, f"{self.endpoint} ({what})",
                            retry_on=(_Retryable, httpx.TransportError),
                            unreachable=(httpx.ConnectError, httpx.ConnectTimeout))
