"""What every LLM backend shares: deterministic defaults, the on-disk response cache, bounded retries.

A backend implements `_chat(conversations, sampling, choice)` and `_score(conversations, options)` for the
requests not in the cache, returning one result *or exception* per request; the base class caches the
answers and raises one `LLMError` naming every request that still failed. Answers already received are
cached before the error is raised, so the runner's item-by-item retry (and any rerun) only repeats the
failed requests.

Multiple choice comes in two forms: `chat(..., choice=["A", ..., "E"])` constrains the generated answer to
one of the strings (structured outputs on vLLM; on HF, the choice with the highest likelihood, which is
what constrained greedy decoding picks); `score(conversations, options)` returns each option text's
summed log-probability (and token count) as the assistant's reply to the conversation, lm-eval style.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence, TypeVar

from baselines.cache import open_cache
from evals.contracts import Sampling

Conversation = Sequence[Mapping[str, str]]
T = TypeVar("T")


class LLMError(RuntimeError):
    """Requests to an LLM that failed after the allowed retries."""


def as_sampling(sampling: Sampling | Mapping[str, Any] | None) -> Sampling:
    if sampling is None:
        return Sampling()
    return sampling if isinstance(sampling, Sampling) else Sampling(**dict(sampling))


def with_retries(fn: Callable[[], T], retries: int, backoff: float, what: str,
                 retry_on: tuple[type[BaseException], ...] = (Exception,)) -> T:
    """fn() with up to `retries` more attempts after the first, sleeping backoff, 2*backoff, ... between."""
    for attempt in range(retries + 1):
        try:
            return fn()
        except retry_on as e:
            if attempt == retries:
                raise LLMError(f"{what}: failed after {retries + 1} attempts: {type(e).__name__}: {e}") from e
            time.sleep(backoff * 2 ** attempt)
    raise AssertionError("unreachable")


class LLMBackend:
    """Base class of the backends (`configs/llm/*.yaml`). `model` names the model in cache keys and
    provenance; `cache` is a SQLite file for responses (null = no cache)."""

    def __init__(self, model: str, cache: str | None = None, retries: int = 2, backoff: float = 1.0,
                 timeout: float = 120.0):
        self.model, self.retries, self.backoff, self.timeout = str(model), int(retries), float(backoff), float(timeout)
        self.cache = open_cache(cache)

    # --- what subclasses implement (uncached requests; one result or exception per request) -----------------
    def _chat(self, conversations: list[Conversation], sampling: Sampling,
              choice: Sequence[str] | None) -> list[str | BaseException]:
        raise NotImplementedError

    def _score(self, conversations: list[Conversation], options: list[Sequence[str]]
               ) -> list[list[tuple[float, int]] | BaseException]:
        raise NotImplementedError(f"{type(self).__name__} cannot score options by likelihood")

    # --- public API ---------------------------------------------------------------------------------------------
    def describe(self) -> dict:
        """Provenance: what produced an answer."""
        return {"backend": type(self).__name__, "model": self.model}

    def chat(self, conversations: Sequence[Conversation], sampling: Sampling | Mapping | None = None,
             choice: Sequence[str] | None = None) -> list[str]:
        """One reply per conversation (a list of {"role", "content"} messages)."""
        sampling = as_sampling(sampling)
        keys = [{"op": "chat", "model": self.model, "messages": [dict(m) for m in c],
                 "sampling": sampling.__dict__, "choice": list(choice) if choice else None} for c in conversations]
        return self._cached(keys, lambda idx: self._chat([conversations[i] for i in idx], sampling, choice), "chat")

    def score(self, conversations: Sequence[Conversation], options: Sequence[Sequence[str]]
              ) -> list[list[tuple[float, int]]]:
        """For each conversation, (sum of log-probs, number of tokens) of each option as the reply."""
        keys = [{"op": "score", "model": self.model, "messages": [dict(m) for m in c], "options": list(o)}
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
                if isinstance(r, BaseException):
                    errors.append((i, r))
                    continue
                out[i] = r
                if self.cache:
                    self.cache.put(keys[i], r)
        if errors:
            i, e = errors[0]
            raise LLMError(f"{self.model}: {len(errors)} of {len(keys)} {op} requests failed "
                           f"(first: request {i}: {type(e).__name__}: {e})")
        return out
