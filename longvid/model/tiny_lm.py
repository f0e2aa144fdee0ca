"""A small Llama causal LM built from a config, for CPU runs and tests of the video-to-text model.

`build_tiny_lm(out_dir, texts=[...])` trains a byte-level BPE tokenizer on the given texts (any text stays
encodable: bytes are the base alphabet), builds a `LlamaForCausalLM` with head_dim 64 (the head size vLLM's
CPU attention accepts), optionally trains it briefly on the texts (plain language modelling, so that the
frozen LM already writes the domain's sentences), and saves an ordinary HF folder (safetensors + tokenizer)
under `out_dir/<digest of the settings and texts>` — built once, reused after. The video-to-text model then
loads it frozen, like any other local LM.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterable, Sequence

import torch

SPECIAL = ("<pad>", "<s>", "</s>")


def read_texts(files: Sequence[str | os.PathLike]) -> list[str]:
    """Texts of jsonlines files (`"text"` of each line, e.g. the synthetic `pretrain/*/videos.jsonl`) or plain
    text files (one text per non-blank line)."""
    out = []
    for f in files:
        p = Path(f)
        if not p.is_file():
            raise FileNotFoundError(f"text file not found: {p}")
        for line in p.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            if p.suffix == ".jsonl":
                d = json.loads(line)
                if isinstance(d.get("text"), str):
                    out.append(d["text"])
            else:
                out.append(line.strip())
    if not out:
        raise ValueError(f"no texts in {list(map(str, files))}")
    return out


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 512):
    """Byte-level BPE with `<s>` prepended, `</s>` as EOS and `<pad>`; no chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(texts), trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def build_tiny_lm(out_dir: str | os.PathLike, texts: Sequence[str | os.PathLike] = (), hidden_size: int = 128,
                  num_layers: int = 2, num_heads: int = 2, intermediate_size: int = 512, vocab_size: int = 512,
                  max_positions: int = 1024, pretrain_steps: int = 0, batch_size: int = 16, lr: float = 3e-3,
                  seed: int = 0, progress: bool = True, synthetic: dict | None = None,
                  synthetic_root: str | os.PathLike | None = None) -> str:
    """Build (once) and return the folder of a tiny Llama LM. `texts`: files read by `read_texts` (tokenizer
    training and optional text pre-training for `pretrain_steps` AdamW steps); with `synthetic` (a
    `SyntheticConfig` as a dict) they are paths inside that data set, generated under `synthetic_root` first.
    head_dim = hidden / heads = 64 by default."""
    if synthetic is not None:
        from evals.synthetic import SyntheticConfig, generate

        if synthetic_root is None:
            raise ValueError("synthetic is set: give synthetic_root, the folder it is generated in")
        data = generate(SyntheticConfig(**synthetic), synthetic_root, progress=progress)
        texts = [data / t for t in texts]
    files = [str(Path(f).absolute()) for f in texts]
    corpus = read_texts(files) if files else ["a small language model"]
    settings = dict(hidden_size=hidden_size, num_layers=num_layers, num_heads=num_heads,
                    intermediate_size=intermediate_size, vocab_size=vocab_size, max_positions=max_positions,
                    pretrain_steps=pretrain_steps, batch_size=batch_size, lr=lr, seed=seed)
    h = hashlib.sha1(json.dumps(settings, sort_keys=True).encode())
    for t in corpus:
        h.update(t.encode())
    out = Path(out_dir).absolute() / h.hexdigest()[:10]
    if (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file():
        return str(out)
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size {hidden_size} must be divisible by num_heads {num_heads}")
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tok = train_bpe_tokenizer(corpus, vocab_size)
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL}
    cfg = LlamaConfig(hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads,
                      num_key_value_heads=num_heads, intermediate_size=intermediate_size, vocab_size=len(tok),
                      max_position_embeddings=max_positions, pad_token_id=ids["<pad>"], bos_token_id=ids["<s>"],
                      eos_token_id=ids["</s>"], tie_word_embeddings=True)
    lm = LlamaForCausalLM(cfg)
    if pretrain_steps:
        _pretrain(lm, tok, corpus, pretrain_steps, batch_size, lr, seed, max_positions, progress)
    lm.generation_config.pad_token_id = ids["<pad>"]
    lm.generation_config.eos_token_id = ids["</s>"]
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        lm.eval().save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        (tmp / "texts.json").write_text(json.dumps({"files": files, "n_texts": len(corpus), **settings}, indent=1))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(out)


def _pretrain(lm, tok, corpus: list[str], steps: int, batch_size: int, lr: float, seed: int, max_len: int,
              progress: bool) -> None:
    """Plain causal-LM training on `corpus` (each text + EOS), cosine learning rate."""
    import math

    from tqdm import tqdm

    g = torch.Generator().manual_seed(seed)
    rows = [(list(tok(t).input_ids) + [tok.eos_token_id])[:max_len] for t in corpus]
    opt = torch.optim.AdamW(lm.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    lm.train()
    bar = tqdm(range(steps), desc="tiny LM text pre-training", disable=not progress)
    for _ in bar:
        pick = torch.randint(len(rows), (batch_size,), generator=g).tolist()
        L = max(len(rows[i]) for i in pick)
        ids = torch.full((batch_size, L), tok.pad_token_id)
        labels = torch.full((batch_size, L), -100)
        for b, i in enumerate(pick):
            ids[b, :len(rows[i])] = torch.tensor(rows[i])
            labels[b, :len(rows[i])] = torch.tensor(rows[i])
        loss = lm(input_ids=ids, attention_mask=(labels != -100).long(), labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    lm.eval()
