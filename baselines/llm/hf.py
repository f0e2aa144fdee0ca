"""HF transformers backend: `generate` on a local causal LM, sequential (batch_size=1, what LLoVi-style code
does) or batched with left padding. Multiple choice: `choice=` picks the choice with the highest
log-likelihood as the reply (for single-token choices such as letters this is exactly constrained greedy
decoding); `score` returns each option's summed log-probability and token count."""
from __future__ import annotations

from baselines.llm.base import Conversation, LLMBackend
from evals.contracts import CHAT, CHOICE, SCORE, Sampling

DTYPES = ("float32", "bfloat16", "float16")


class HFChat(LLMBackend):
    capabilities = frozenset({CHAT, SCORE, CHOICE})

    def __init__(self, path: str, model: str | None = None, dtype: str = "bfloat16", device: str = "cpu",
                 batch_size: int = 1, cache: str | None = None, **kw):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        super().__init__(model or str(path), cache=cache, **kw)
        self.path, self.dtype, self.device, self.batch_size = str(path), dtype, device, max(1, int(batch_size))
        self.lm = self.tokenizer = None

    def _model_identity(self) -> dict:
        from evals.store import weights_identity

        return {"weights": weights_identity(self.path), "dtype": self.dtype}

    def describe(self) -> dict:
        return {**super().describe(), "batch_size": self.batch_size}

    def check(self) -> None:
        super().check()
        self.load()

    def load(self):
        if self.lm is None:
            import os

            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            if not os.path.isfile(os.path.join(self.path, "config.json")):
                raise ValueError(f"HF LLM path {self.path!r} is not a model folder (no config.json)")
            self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            self.tokenizer.padding_side = "left"
            if self.tokenizer.pad_token is None:
                self.tokenizer.pad_token = self.tokenizer.eos_token
            self.lm = AutoModelForCausalLM.from_pretrained(self.path, dtype=getattr(torch, self.dtype),
                                                           local_files_only=True).to(self.device).eval()
        return self.lm, self.tokenizer

    def prompt_text(self, conversation: Conversation) -> str:
        _, tok = self.load()
        return tok.apply_chat_template([dict(m) for m in conversation], tokenize=False, add_generation_prompt=True)

    def _chat(self, conversations, sampling: Sampling, choice):
        if choice:
            scores = self._score(conversations, [list(choice)] * len(conversations))
            return [s if isinstance(s, BaseException) else choice[max(range(len(s)), key=lambda j: s[j][0])]
                    for s in scores]
        import torch

        lm, tok = self.load()
        out: list = []
        for i in range(0, len(conversations), self.batch_size):
            texts = [self.prompt_text(c) for c in conversations[i:i + self.batch_size]]
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            kw = dict(max_new_tokens=sampling.max_tokens, pad_token_id=tok.pad_token_id)
            if sampling.ignore_eos:
                kw["min_new_tokens"] = sampling.max_tokens
            if sampling.temperature > 0:
                torch.manual_seed(sampling.seed)
                kw.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
            else:
                kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            with torch.no_grad():
                gen = lm.generate(**enc, **kw)
            out += [t.strip() for t in tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)]
        return out

    def _score(self, conversations, options):
        import torch

        lm, tok = self.load()
        out: list = []
        for conv, opts in zip(conversations, options):
            prompt = tok(self.prompt_text(conv), add_special_tokens=False)["input_ids"]
            conts = [tok(o, add_special_tokens=False)["input_ids"] for o in opts]
            if not all(conts):
                out.append(ValueError(f"an option tokenizes to nothing: {list(opts)}"))
                continue
            seqs = [prompt + c for c in conts]
            L = max(map(len, seqs))
            ids = torch.full((len(seqs), L), tok.pad_token_id)
            att = torch.zeros(len(seqs), L, dtype=torch.long)
            for j, s in enumerate(seqs):             # right padding: positions line up with the prompt
                ids[j, :len(s)], att[j, :len(s)] = torch.tensor(s), 1
            with torch.no_grad():
                logp = lm(input_ids=ids.to(self.device), attention_mask=att.to(self.device)).logits.float().log_softmax(-1)
            row = []
            for j, c in enumerate(conts):
                pos = torch.arange(len(prompt) - 1, len(prompt) - 1 + len(c))
                row.append((float(logp[j, pos, torch.tensor(c)].sum()), len(c)))
            out.append(row)
        return out

    def close(self) -> None:
        self.lm = self.tokenizer = None
