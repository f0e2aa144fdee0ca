"""What the video-to-text model reads and writes, shared by its training (`longvid.lit.v2t`) and its systems
(`longvid.systems`), so both use the identical prompt and frames (no Lightning import here).

- `Prompts`: the prompt templates per task, the chat wrapping, and the training target(s) of a `Sample`:
  summarization (whole video -> its reference summary), captioning (the sample's clip -> its sentence) and
  multiple choice (video + question + listed options -> the *text* of the answer option).
- `video_tensor`: decoded uint8 frames -> the encoder's input (resized to its size, fixed to its frame count).
- `load_samples`: a benchmark config (or object) -> its samples, through the evals loaders.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch

from evals.contracts import CAPTIONING, MCQA, SUMMARIZATION, Sample
from evals.parsing import format_options
from longvid.data.datasets import fixed_length, to_tensor
from longvid.data.video import resize

V2T_TASKS = (SUMMARIZATION, CAPTIONING, MCQA)
PROMPTS_FILE = "prompts.json"   # written beside the exported model by longvid-train-v2t


@dataclass(frozen=True)
class Prompts:
    """Prompt templates. `mcqa` gets `{question}` and `{options}` (one `option_format` line per option, with
    `{letter}` and `{option}`). With `chat` the user text is wrapped in the LM tokenizer's chat template
    (with the generation prompt) when the tokenizer has one; otherwise the prompt is the user text + newline.
    Targets follow the prompt directly (with a space only if the prompt does not end in whitespace)."""

    summarization: str = "Summarize what happens in the video."
    captioning: str = "Describe what happens in the video clip in one sentence."
    mcqa: str = "{question}\nOptions:\n{options}\nAnswer with the text of the correct option."
    option_format: str = "({letter}) {option}"
    chat: bool = True
    system: str | None = None     # a system message for the chat template (None: the template's default)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Prompts":
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown prompt fields {sorted(unknown)}; valid: {list(cls.__dataclass_fields__)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)

    def version(self) -> str:
        """Short hash of the templates (recorded in predictions' provenance)."""
        return hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:10]

    def user(self, sample: Sample) -> str:
        """The task instruction for one sample (before chat wrapping)."""
        if sample.task == SUMMARIZATION:
            return self.summarization
        if sample.task == CAPTIONING:
            return self.captioning
        if sample.task == MCQA:
            if not sample.question or not sample.options:
                raise ValueError(f"sample {sample.uid!r}: multiple choice needs a question and options")
            return self.mcqa.format(question=sample.question, options=format_options(sample.options,
                                                                                      self.option_format))
        raise ValueError(f"sample {sample.uid!r}: the video-to-text model has no task {sample.task!r}; "
                         f"valid: {V2T_TASKS}")

    def render(self, tokenizer, sample: Sample, prefix: str = "") -> str:
        """The full prompt text fed to the LM for `sample` (`prefix`: text before the task, e.g. its subtitles)."""
        user = prefix + self.user(sample)
        if self.chat and getattr(tokenizer, "chat_template", None):
            msgs = ([{"role": "system", "content": self.system}] if self.system else []) + \
                   [{"role": "user", "content": user}]
            return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        return user + "\n"

    @staticmethod
    def continuation(prompt: str, text: str) -> str:
        """`text` as it follows `prompt` (tokenized separately): a leading space unless the prompt ends in one."""
        text = text.strip()
        return text if not prompt or prompt[-1].isspace() else " " + text

    @staticmethod
    def targets(sample: Sample) -> list[str]:
        """Training targets: every reference (summaries, captions) or the answer option's text."""
        if sample.task == MCQA:
            return [] if sample.answer is None else [sample.options[sample.answer]]
        return [r for r in sample.references if r and r.strip()]


def encoder_geometry(encoder_path: str | os.PathLike) -> dict[str, Any]:
    """`num_frames` and `image_size` of a saved DualEncoder's video tower (from its config.json)."""
    from pathlib import Path

    f = Path(encoder_path) / "config.json"
    if not f.is_file():
        raise FileNotFoundError(f"encoder_path={encoder_path}: not a saved DualEncoder (no config.json; "
                                "longvid-train writes one to <run_dir>/model/)")
    enc = json.loads(f.read_text()).get("encoder", {})
    return {"num_frames": int(enc.get("num_frames", 16)), "image_size": int(enc.get("image_size", 224))}


def video_tensor(frames: np.ndarray, num_frames: int, size: int) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (3, num_frames, size, size) in [-1, 1]: resized if the decoded size differs from
    the encoder's, then `fixed_length` (short spans repeat frames evenly, long ones are subsampled)."""
    if frames.shape[1:3] != (size, size):
        frames = resize(frames, size, size)
    return to_tensor(fixed_length(frames, num_frames))


def sample_span(sample: Sample) -> tuple[float, float | None]:
    """The time span the model sees: the clip for captioning, else the whole video."""
    return (float(sample.clip.start), float(sample.clip.end)) if sample.clip is not None else (0.0, None)


def load_samples(benchmark: Any) -> list[Sample]:
    """Samples of a benchmark given as an object with `load()` or as a Hydra config (`_target_` dict)."""
    from collections.abc import Mapping

    if isinstance(benchmark, Mapping):          # dict or omegaconf DictConfig
        from hydra.utils import instantiate

        benchmark = instantiate(benchmark)
    return list(benchmark.load())


def left_pad(tokenizer, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompt ids (B, L) and attention mask, with the tokenizer's special tokens (as in
    `caption_batch` / `score_options`)."""
    rows = [list(tokenizer(p).input_ids) for p in prompts]
    L = max(map(len, rows))
    pad = pad_id(tokenizer)
    ids = torch.full((len(rows), L), pad, dtype=torch.long)
    am = torch.zeros(len(rows), L, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, L - len(r):] = torch.tensor(r)
        am[i, L - len(r):] = 1
    return ids, am


def pad_id(tokenizer) -> int:
    if tokenizer.pad_token_id is not None:
        return tokenizer.pad_token_id
    return tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
