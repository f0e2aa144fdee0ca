"""What every LLM backend shares: deterministic defaults, the on-disk response cache, bounded retries — the one
implementation of `evals.contracts.LLMBackend`.

A backend declares `capabilities` (what it can do: chat, option scores, constrained choice) and implements
`_chat(conversations, sampling, choice)` and, if it can, `_score(conversations, options)` for the requests not in
the cache, returning one result *or exception* per request; the base class caches the answers and raises one
`LLMError` naming every request that still failed. Answers already received are cached before the error is
raised, so the runner's item-by-item retry (and any rerun) only repeats the failed requests. An empty reply is a
failure, never cached. A backend that cannot be reached at all (`BackendUnavailable`) or a cache that cannot be
used (`CacheError`) is an infrastructure error: it stops the run instead of failing every item.

Cache keys hold `identity()`, which names the model exactly — its weights (path, file sizes and times), dtype, the
server-reported model — never only the display name `model`: two checkpoints served under one name never share
answers.

Multiple choice comes in two forms: `chat(..., choice=["A", ..., "E"])` constrains the generated answer to
one of the strings (structured outputs on vLLM; on HF, the choice with the highest likelihood, which is
what constrained greedy decoding picks); `score(conversations, options)` returns each option text's
summed log-probability (and token count) as the assistant's reply to the conversation, lm-eval style.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Mapping, Sequence, TypeVar

from baselines.cache import open_cache
from evals.contracts import CHAT, ConfigError, InfrastructureError, Sampling

Conversation = Sequence[Mapping[str, str]]
T = TypeVar("T")


class LLMError(RuntimeError):
    """Requests to an LLM that failed after the allowed retries."""


class BackendUnavailable(LLMError, InfrastructureError):
    """The backend cannot be reached at all (connection refused after retries, a server that did not start)."""


LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def auth_headers(url: str, api_key_env: str | None, who: str) -> dict[str, str]:
    """The bearer header, only when the config names the key's environment variable, and never over plain
    http:// to another host than this machine (a ConfigError names the URL)."""
    if not api_key_env:
        return {}
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme != "https" and parts.hostname not in LOOPBACK:
        raise ConfigError(f"{who}: refusing to send the key in ${api_key_env} over plain {parts.scheme}:// to "
                          f"{parts.hostname} ({url}): use https, or api_key_env=null")
    key = os.environ.get(api_key_env)
    if not key:
        raise ConfigError(f"{who}: api_key_env={api_key_env} but that environment variable is not set")
    return {"Authorization": f"Bearer {key}"}


def as_sampling(sampling: Sampling | Mapping[str, Any] | None) -> Sampling:
    if sampling is None:
        return Sampling()
    return sampling if isinstance(sampling, Sampling) else Sampling(**dict(sampling))


def with_retries(fn: Callable[[], T], retries: int, backoff: float, what: str,
                 retry_on: tuple[type[BaseException], ...] = (Exception,),
                 unreachable: tuple[type[BaseException], ...] = ()) -> T:
    """fn() with up to `retries` more attempts after the first, sleeping backoff, 2*backoff, ... between. If the
    last error is one of `unreachable` (e.g. connection refused), it is a `BackendUnavailable`."""
    for attempt in range(retries + 1):
        try:
            return fn()
        except retry_on as e:
            if attempt == retries:
                kind = BackendUnavailable if isinstance(e, unreachable) else LLMError
                raise kind(f"{what}: failed after {retries + 1} attempts: {type(e).__name__}: {e}") from e
            time.sleep(backoff * 2 ** attempt)
    raise AssertionError("unreachable")


class LLMBackend:
    """Base class of the backends (`configs/llm/*.yaml`). `model` names the model in provenance; `cache` is a
    SQLite file for responses (null = no cache). Subclasses set `capabilities` and extend `identity()`."""

    capabilities: frozenset[str] = frozenset({CHAT})

    def __init__(self, model: str, cache: str | None = None, retries: int = 2, backoff: float = 1.0,
                 timeout: float = 120.0):
        self.model, self.retries, self.backoff, self.timeout = str(model), int(retries), float(backoff), float(timeout)
        self.cache = open_cache(cache)
        self._identity: dict | None = None

    # --- what subclasses implement (uncached requests; one result or exception per request) -----------------
    def _chat(self, conversations: list[Conversation], sampling: Sampling,
              choice: Sequence[str] | None) -> list[str | BaseException]:
        raise NotImplementedError

    def _score(self, conversations: list[Conversation], options: list[Sequence[str]]
               ) -> list[list[tuple[float, int]] | BaseException]:
        raise NotImplementedError(f"{type(self).__name__} cannot score options by likelihood")

    def _model_identity(self) -> dict:
        """What identifies the model beyond its class (weights, dtype, server-reported model): subclasses."""
        return {"model": self.model}

    # --- public API ---------------------------------------------------------------------------------------------
    def identity(self) -> dict:
        """The model exactly (computed once): the key of every cached answer."""
        if self._identity is None:
            self._identity = {"backend": type(self).__name__, **self._model_identity()}
        return self._identity

    def check(self) -> None:
        """Before a run: the cache opens for reading and writing, the model is there (subclasses add)."""
        if self.cache is not None:
            self.cache.check()
        self.identity()

    def describe(self) -> dict:
        """Provenance: what produced an answer."""
        return {**self.identity(), "model": self.model}

    def chat(self, conversations: Sequence[Conversation], sampling: Sampling | Mapping | None = None,
             choice: Sequence[str] | None = None) -> list[str]:
        """One reply per conversation (a list of {"role", "content"} messages)."""
        sampling = as_sampling(sampling)
        ident = self.identity()
        keys = [{"op": "chat", "llm": ident, "messages": [dict(m) for m in c], "sampling": sampling.__dict__,
                 "choice": list(choice) if choice else None} for c in conversations]
        return self._cached(keys, lambda idx: self._chat([conversations[i] for i in idx], sampling, choice), "chat")

    def score(self, conversations: Sequence[Conversation], options: Sequence[Sequence[str]]
              ) -> list[list[tuple[float, int]]]:
        """For each conversation, (sum of log-probs, number of tokens) of each option as the reply."""
        ident = self.identity()
        keys = [{"op": "score", "llm": ident, "messages": [dict(m) for m in c], "options": list(o)}
                for c, o in zip(conversations, options, strict=True)]
        out = self._cached(keys, lambda idx: self._score([conversations[i] for i in idx], [options[i] for i in idx]),
                           "score")
        return [[(float(a), int(b)) for a, b in row] for row in out]

    def close(self) -> None:
        """Release what the backend holds (servers it launched, engines)."""

    def _cached(self, keys: list[dict], run: Callable[[list[int]], list], op: str) -> list:
        out: list[Any] = [self.cache.get(k) if self.cache else None for k in keys]
        todo = [i for i, v in enumerate(out) if v is None]
        errors = []
        if todo:
            results = run(todo)
            if len(results) != len(todo):
                raise LLMError(f"{type(self).__name__}.{op}: {len(results)} results for {len(todo)} requests")
            for i, r in zip(todo, results):
                if isinstance(r, InfrastructureError):
                    raise r                        # the backend is gone: stop, do not fail every item
                if isinstance(r, BaseException):
                    errors.append((i, r))
                    continue
                if r is None or (isinstance(r, str) and not r.strip()):
                    errors.append((i, LLMError("empty reply")))     # a failure, never a cached success
                    continue
                out[i] = r
                if self.cache:
                    self.cache.put(keys[i], r)
        if errors:
            i, e = errors[0]
            raise LLMError(f"{self.model}: {len(errors)} of {len(keys)} {op} requests failed "
                           f"(first: request {i}: {type(e).__name__}: {e})")
        return out
