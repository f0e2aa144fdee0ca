"""Tiny randomly initialised image-text models (GIT, BLIP-2, LLaVA) saved with their processors, offline.

Test helpers only: nothing here is pretrained. The tokenizer is a word-level vocabulary built in-process; the
image processors are the PIL ("slow") classes (no torchvision here). Images are 32x32, patches 8x8.
"""
from __future__ import annotations

from pathlib import Path

WORDS = ("a an the one two red green blue yellow white black small big square circle triangle star object "
         "shape moves left right up down grows shrinks spins appears leaves changes colour to and then is on in "
         "of video frame scene describe what happens these frames sentence . ,").split()
SPECIALS = ["[PAD]", "[UNK]", "<s>", "</s>", "<image>", "[CLS]", "[SEP]"]
PAD, UNK, BOS, EOS, IMAGE, CLS, SEP = range(len(SPECIALS))
VOCAB = len(SPECIALS) + len(WORDS)
SIZE, PATCH = 32, 8

# A plain template: the user's text parts, then "answer :" (tokens the model must reply after).
CHAT_TEMPLATE = ("{% for m in messages %}{% if m['content'] is string %}{{ m['content'] }}{% else %}"
                 "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image> {% elif c['type'] == 'text' %}"
                 "{{ c['text'] }}{% endif %}{% endfor %}{% endif %}{% endfor %}"
                 "{% if add_generation_prompt %} answer :{% endif %}")


def tiny_tokenizer(git_style: bool = False):
    """Word-level tokenizer over WORDS; GIT style wraps text in [CLS] ... [SEP], else prepends <s>."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if git_style:
        tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", CLS),
                                                                                                ("[SEP]", SEP)])
    else:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", BOS)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", bos_token="<s>",
                                   eos_token="</s>", cls_token="[CLS]", sep_token="[SEP]", padding_side="left",
                                   additional_special_tokens=["<image>"])


def _vision(**kw) -> dict:
    return dict(image_size=SIZE, patch_size=PATCH, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=64, **kw)


def save_tiny_git(path) -> str:
    import torch
    from transformers import CLIPImageProcessorPil, GitConfig, GitForCausalLM, GitProcessor

    torch.manual_seed(0)
    cfg = GitConfig(vision_config=_vision(), vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1,
                    num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                    bos_token_id=CLS, eos_token_id=SEP, pad_token_id=PAD)
    GitForCausalLM(cfg).save_pretrained(path)
    ip = CLIPImageProcessorPil(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE})
    GitProcessor(ip, tiny_tokenizer(git_style=True)).save_pretrained(path)
    return str(path)


def save_tiny_blip2(path, lm_heads: int = 2, lm_hidden: int = 32, chat_template: bool = False) -> str:
    """BLIP-2 with an OPT language model; `lm_hidden / lm_heads` is its head_dim (vLLM's CPU attention wants 64)."""
    import torch
    from transformers import Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, BlipImageProcessorPil

    torch.manual_seed(0)
    text = dict(model_type="opt", vocab_size=VOCAB, hidden_size=lm_hidden, word_embed_proj_dim=lm_hidden,
                num_hidden_layers=1, num_attention_heads=lm_heads, ffn_dim=2 * lm_hidden,
                max_position_embeddings=256, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
    qformer = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                   encoder_hidden_size=32, vocab_size=VOCAB, max_position_embeddings=64)
    cfg = Blip2Config(vision_config=_vision(), qformer_config=qformer, text_config=text, num_query_tokens=4,
                      image_token_index=IMAGE)
    Blip2ForConditionalGeneration(cfg).save_pretrained(path)
    tok = tiny_tokenizer()
    if chat_template:                    # vLLM's chat endpoint needs one; its BLIP-2 inserts the image tokens
        tok.chat_template = CHAT_TEMPLATE.replace("<image> ", "")
    ip = BlipImageProcessorPil(size={"height": SIZE, "width": SIZE})
    Blip2Processor(ip, tok, num_query_tokens=4).save_pretrained(path)
    return str(path)


def save_tiny_llava(path) -> str:
    import torch
    from transformers import (CLIPImageProcessorPil, LlavaConfig, LlavaForConditionalGeneration,
                              LlavaProcessor)

    torch.manual_seed(0)
    text = dict(model_type="llama", vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256, bos_token_id=BOS,
                eos_token_id=EOS, pad_token_id=PAD)
    cfg = LlavaConfig(vision_config=dict(model_type="clip_vision_model", **_vision()), text_config=text,
                      image_token_index=IMAGE, vision_feature_layer=-1, vision_feature_select_strategy="default")
    LlavaForConditionalGeneration(cfg).save_pretrained(path)
    ip = CLIPImageProcessorPil(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE})
    LlavaProcessor(ip, tiny_tokenizer(), patch_size=PATCH, vision_feature_select_strategy="default",
                   num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE).save_pretrained(path)
    return str(path)


BUILDERS = {"git": save_tiny_git, "blip2": save_tiny_blip2, "llava": save_tiny_llava}


def save_tiny(kind: str, path) -> str:
    Path(path).mkdir(parents=True, exist_ok=True)
    return BUILDERS[kind](path)
