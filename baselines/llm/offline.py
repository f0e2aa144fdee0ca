"""vLLM's offline engine (`vllm.LLM`) in our process: no server, batched generation and prompt log-probs.

The engine starts worker processes, so it must be created from a script guarded by
`if __name__ == "__main__":` (vLLM's multiprocessing re-imports the main module). It is created on first
use (~70 s for SmolLM2-135M on this CPU) and released by `close()`. Multiple choice as on the server:
`choice=` via structured outputs; `score()` via the prompt log-probs of `chat prompt ids + option ids`.
"""
from __future__ import annotations

import os

from baselines.llm.base import LLMBackend
from evals.contracts import CHAT, CHOICE, SCORE, Sampling


class VLLMOffline(LLMBackend):
    capabilities = frozenset({CHAT, SCORE, CHOICE})

    def __init__(self, path: str, model: str | None = None, dtype: str = "bfloat16", max_model_len: int = 2048,
                 cache: str | None = None, engine_kwargs: dict | None = None, **kw):
        super().__init__(model or os.path.basename(str(path).rstrip("/")), cache=cache, **kw)
        self.path, self.dtype, self.max_model_len = str(path), dtype, int(max_model_len)
        self.engine_kwargs = {"enforce_eager": True, **dict(engine_kwargs or {})}  # eager: bf16 is wrong without
        self.llm = None

    def _model_identity(self) -> dict:
        from evals.store import weights_identity

        return {"weights": weights_identity(self.path), "dtype": self.dtype}

    def describe(self) -> dict:
        return {**super().describe(), "engine": "vllm.LLM"}

    def check(self) -> None:
        super().check()
        if not os.path.isfile(os.path.join(self.path, "config.json")):
            raise ValueError(f"vLLM offline: {self.path!r} is not a model folder (no config.json)")

    def engine(self):
        if self.llm is None:
            if not os.path.isfile(os.path.join(self.path, "config.json")):
                raise ValueError(f"vLLM offline: {self.path!r} is not a model folder (no config.json)")
            from baselines.llm.server import VLLM_ENV

            for k, v in VLLM_ENV.items():     # read by vLLM when the engine starts; the caller's values win
                os.environ.setdefault(k, v)
            from vllm import LLM

            self.llm = LLM(model=self.path, dtype=self.dtype, max_model_len=self.max_model_len, **self.engine_kwargs)
        return self.llm

    def _chat(self, conversations, sampling: Sampling, choice):
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        llm = self.engine()
        params = SamplingParams(max_tokens=sampling.max_tokens, temperature=sampling.temperature,
                                top_p=sampling.top_p, seed=sampling.seed, ignore_eos=sampling.ignore_eos,
                                structured_outputs=StructuredOutputsParams(choice=list(choice)) if choice else None)
        try:
            outs = llm.chat([[dict(m) for m in c] for c in conversations], params, use_tqdm=False)
        except Exception as e:  # noqa: BLE001 - one result or exception per request
            return [e] * len(conversations)
        return [o.outputs[0].text.strip() for o in outs]

    def _score(self, conversations, options):
        from vllm import SamplingParams

        llm = self.engine()
        tok = llm.get_tokenizer()
        out: list = [None] * len(conversations)
        prompts, where = [], []               # one prompt per (conversation, option)
        for i, (conv, opts) in enumerate(zip(conversations, options, strict=True)):
            text = tok.apply_chat_template([dict(m) for m in conv], tokenize=False, add_generation_prompt=True)
            prompt = tok(text, add_special_tokens=False)["input_ids"]
            conts = [tok(o, add_special_tokens=False)["input_ids"] for o in opts]
            if not all(conts):
                out[i] = ValueError(f"an option tokenizes to nothing: {list(opts)}")
                continue
            out[i] = []
            for c in conts:
                prompts.append({"prompt_token_ids": prompt + c})
                where.append((i, len(prompt), c))
        try:
            results = llm.generate(prompts, SamplingParams(max_tokens=1, temperature=0, prompt_logprobs=0),
                                   use_tqdm=False) if prompts else []
        except Exception as e:  # noqa: BLE001
            return [o if isinstance(o, BaseException) else e for o in out]
        for r, (i, n, c) in zip(results, where):
            lps = r.prompt_logprobs
            out[i].append((sum(float(lps[n + j][t].logprob) for j, t in enumerate(c)), len(c)))
        return out

    def close(self) -> None:
        if self.llm is not None:
            core = getattr(self.llm.llm_engine, "engine_core", None)
            if core is not None and hasattr(core, "shutdown"):
                core.shutdown()
            self.llm = None
