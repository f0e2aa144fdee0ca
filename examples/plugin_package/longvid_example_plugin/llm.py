"""An LLM backend: subclass `baselines.llm.base.LLMBackend`, declare what it can do (`capabilities`: chat; score
if `_score` is implemented, which the default `mcqa=likelihood` needs; choice if `_chat` honours `choice=`) and
implement `_chat` (and `_score`) for the requests the cache does not hold, one result *or exception* per request.
The base class adds the response cache keyed by `identity()`, deterministic defaults, per-item failures (an empty
reply is one) and `check()`.

This one is a bag-of-words stand-in for a real model — replace the bodies of `_chat` and `_score` with calls to
yours: it prefers the option that shares most words with the prompt, and "summarizes" by listing the captions."""
from __future__ import annotations

import re

from baselines.llm.base import LLMBackend
from evals.contracts import CHAT, CHOICE, SCORE

CAPTION = re.compile(r"^\[\d+s-\d+s\] (.+)$", re.M)     # the suite's caption lines: "[0s-16s] a red object"
OPTION = re.compile(r"^([A-Z])\. (.+)$", re.M)           # its option lines: "A. a red circle"


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


class WordOverlapLLM(LLMBackend):
    capabilities = frozenset({CHAT, SCORE, CHOICE})

    def _model_identity(self) -> dict:       # names the weights exactly: the key of every cached answer
        return {"model": self.model, "version": 1}

    def _chat(self, conversations, sampling, choice):
        return [self._reply(c[-1]["content"], sampling.max_tokens, choice) for c in conversations]

    def _score(self, conversations, options):
        """Per option (log-prob sum, tokens): minus the option's words the captions lack, and its word count."""
        out = []
        for conv, opts in zip(conversations, options):
            context = _words(" ".join(CAPTION.findall(conv[-1]["content"])))
            out.append([(-float(len(_words(o) - context)), max(1, len(o.split()))) for o in opts])
        return out

    def _reply(self, prompt: str, max_tokens: int, choice) -> str:
        options = dict(OPTION.findall(prompt))
        if options:                          # a lettered question: the option with most words in the captions
            context = _words(" ".join(CAPTION.findall(prompt)))
            letters = [c for c in (choice or options) if c in options]
            best = max(letters, key=lambda c: len(_words(options[c]) & context), default="")
            return best if choice else f"Answer: {best}"
        captions = list(dict.fromkeys(CAPTION.findall(prompt)))   # distinct, in time order
        summary = " ".join(f"{c[0].upper()}{c[1:]}." for c in captions)
        return " ".join(summary.split()[:max_tokens])     # no captions: an empty reply, which fails the item
