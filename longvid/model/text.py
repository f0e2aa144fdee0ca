"""Text tower: a BERT-style HF encoder (from a local pretrained path or built from a config) with mean
pooling over token states (the paper's caption embedding), plus its tokenizer — loaded from a local path or
trained in-process on the training captions (the synthetic default)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn


@dataclass
class TextConfig:
    pretrained: str | None = None   # local dir of an HF BERT-style model (+ tokenizer); None = from config
    hidden_size: int = 128          # used when building from config
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 256
    max_length: int = 64            # tokens per caption (truncated)
    vocab_size: int = 1000          # for an in-process tokenizer
    embed_dim: int = 256            # joint video-text space


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: str | os.PathLike | None = None):
    """A lower-cased WordPiece tokenizer (BERT's special tokens) with a deterministic vocabulary: the special
    tokens, every character seen (alone and as a ##continuation), then the most frequent words (ties broken
    by spelling) up to `vocab_size`; other words split into characters. (HF's WordPieceTrainer orders tied
    merges through a randomly seeded hash map: two runs on the same captions gave different ids, and so
    different models.)"""
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer, pre = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    counts = Counter(w for t in texts for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(t)))
    if not counts:
        raise ValueError("train_tokenizer: no words in the training texts")
    chars = sorted({c for w in counts for c in w})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *("##" + c for c in chars)]
    seen = set(vocab)
    for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(vocab) >= vocab_size:
            break
        if w not in seen:
            vocab.append(w)
            seen.add(w)
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer, tok.decoder = normalizer, pre, decoders.WordPiece()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls),
                                                                                            ("[SEP]", sep)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")
    if out_dir is not None:
        fast.save_pretrained(str(out_dir))
    return fast


class TextEncoder(nn.Module):
    def __init__(self, cfg: TextConfig, vocab_size: int | None = None):
        super().__init__()
        from transformers import AutoModel, BertConfig, BertModel

        self.cfg = cfg
        if cfg.pretrained:
            self.bert = AutoModel.from_pretrained(cfg.pretrained, local_files_only=True)
        else:
            self.bert = BertModel(BertConfig(
                vocab_size=vocab_size or cfg.vocab_size, hidden_size=cfg.hidden_size,
                num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
                intermediate_size=cfg.intermediate_size, max_position_embeddings=max(cfg.max_length, 64)),
                add_pooling_layer=False)
        self.proj = nn.Linear(self.bert.config.hidden_size, cfg.embed_dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) ids and mask -> (B, E): projected mean of the token states over real tokens."""
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, L, H)
        m = attention_mask[..., None].to(h.dtype)
        return self.proj((h * m).sum(1) / m.sum(1).clamp(min=1.0))
