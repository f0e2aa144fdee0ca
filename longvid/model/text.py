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
    """A lower-cased WordPiece tokenizer trained in-process (BERT's special tokens)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(list(texts), trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special))
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
