"""A local Hugging Face image-text model (GIT, BLIP / BLIP-2, LLaVA-style, ...) as a segment captioner.

Each clip is described by captioning `frames_per_segment` evenly spaced frames one by one (greedy decoding, so
the same frames give the same text), dropping consecutive repeats and joining the rest with `joiner`.
The model loads from a local folder only (`local_files_only=True`), on the first `caption` call; a path that is
missing or holds no image-text model fails when the captioner is built. `describe()` is the cache key.
Also the frame helpers shared with the server captioner (`select_frames`, `join_captions`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from evals.contracts import Clip

DTYPES = ("float32", "bfloat16", "float16")


def frame_indices(n: int, k: int) -> list[int]:
    """k evenly spaced indices of n frames (the centres of k equal bins); all n if n <= k."""
    if n <= k:
        return list(range(n))
    return [int((i + 0.5) * n / k) for i in range(k)]


def select_frames(clip: Clip, k: int, where: str = "clip") -> list[np.ndarray]:
    """`k` evenly spaced uint8 (H, W, 3) frames of a clip; ValueError naming `where` if the frames are unusable."""
    frames = np.asarray(clip.frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{where}: frames must be a uint8 array (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if len(frames) == 0:
        raise ValueError(f"{where}: no frames ({clip.start:.2f}-{clip.end:.2f} s)")
    return [frames[i] for i in frame_indices(len(frames), k)]


def join_captions(captions: Sequence[str], joiner: str) -> str:
    """Whitespace-normalised captions of one clip, empty ones and consecutive repeats dropped, joined."""
    parts: list[str] = []
    for c in captions:
        c = " ".join(str(c).split())
        if c and (not parts or parts[-1] != c):
            parts.append(c)
    return joiner.join(parts)


class HFImageCaptioner:
    """Captions frames with a local HF image-text model. `prompt=None` captions unconditionally (GIT, BLIP-2);
    models whose processor has a chat template (LLaVA-style) get one user turn: the image, then `prompt` if set.
    `generate_kwargs` are extra `generate` arguments (decoding stays greedy unless you override it)."""

    def __init__(self, path: str, frames_per_segment: int = 3, prompt: str | None = None, max_new_tokens: int = 30,
                 batch_size: int = 8, device: str = "cpu", dtype: str = "float32", joiner: str = "; ",
                 name: str | None = None, generate_kwargs: dict | None = None):
        for key, v in (("frames_per_segment", frames_per_segment), ("max_new_tokens", max_new_tokens),
                       ("batch_size", batch_size)):
            if int(v) < 1:
                raise ValueError(f"HFImageCaptioner: {key} must be >= 1, got {v}")
        if dtype not in DTYPES:
            raise ValueError(f"HFImageCaptioner: dtype must be one of {DTYPES}, got {dtype!r}")
        self.path = str(Path(path).expanduser().absolute())
        self.frames_per_segment, self.max_new_tokens, self.batch_size = (int(frames_per_segment),
                                                                         int(max_new_tokens), int(batch_size))
        self.prompt, self.device, self.dtype, self.joiner = prompt, device, dtype, joiner
        self.generate_kwargs = dict(generate_kwargs or {})
        self.name = name or f"hf:{Path(self.path).name}"
        self.model_type = self._check_path()
        self.model = self.processor = None

    def _check_path(self) -> str:
        """The folder's model type, if it is an image-text model AutoModelForImageTextToText can load."""
        if not Path(self.path).is_dir():
            raise ValueError(f"HFImageCaptioner: model folder {self.path} does not exist")
        from transformers import AutoConfig, AutoModelForImageTextToText

        try:
            cfg = AutoConfig.from_pretrained(self.path, local_files_only=True)
        except (OSError, ValueError) as e:
            raise ValueError(f"HFImageCaptioner: {self.path} is not a Hugging Face model folder: {e}") from e
        if type(cfg) not in AutoModelForImageTextToText._model_mapping:
            raise ValueError(f"HFImageCaptioner: {self.path} holds a {cfg.model_type!r} model, not an image-text "
                             "model (AutoModelForImageTextToText cannot load it)")
        return cfg.model_type

    def describe(self) -> dict:
        return {"class": type(self).__name__, "path": self.path, "frames_per_segment": self.frames_per_segment,
                "prompt": self.prompt, "max_new_tokens": self.max_new_tokens, "dtype": self.dtype,
                "joiner": self.joiner, "generate_kwargs": self.generate_kwargs}

    def identity(self) -> dict:
        """The cache key of its captions: the settings that change them and the model folder's files."""
        from evals.store import weights_identity

        return {**self.describe(), "weights": weights_identity(self.path)}

    def check(self) -> None:
        self.load()

    def load(self) -> None:
        if self.model is not None:
            return
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        # backend="pil": the slow image processors (the torchvision ones cannot run here)
        self.processor = AutoProcessor.from_pretrained(self.path, local_files_only=True, backend="pil")
        if getattr(self.processor, "image_processor", None) is None:
            raise ValueError(f"HFImageCaptioner: {self.path} has no image processor (preprocessor_config.json)")
        tok = getattr(self.processor, "tokenizer", None)
        if tok is not None:
            tok.padding_side = "left"
        self.torch_dtype = getattr(torch, self.dtype)
        self.model = AutoModelForImageTextToText.from_pretrained(self.path, local_files_only=True,
                                                                 dtype=self.torch_dtype).to(self.device).eval()
        self.text = self._text()

    def _text(self) -> str | None:
        """The text fed with every frame: the chat-templated turn, the bare prompt, or None."""
        if getattr(self.processor, "chat_template", None):
            content: list[dict[str, Any]] = [{"type": "image"}]
            if self.prompt:
                content.append({"type": "text", "text": self.prompt})
            return self.processor.apply_chat_template([{"role": "user", "content": content}],
                                                      add_generation_prompt=True, tokenize=False)
        return self.prompt or None

    def caption(self, clips: Sequence[Clip]) -> list[str]:
        frames, owner = [], []
        for i, c in enumerate(clips):
            for f in select_frames(c, self.frames_per_segment, f"{self.name}: clip {i}"):
                frames.append(f)
                owner.append(i)
        if not frames:
            return []
        self.load()
        texts: list[str] = []
        for s in range(0, len(frames), self.batch_size):
            texts += self._generate(frames[s:s + self.batch_size])
        per_clip: list[list[str]] = [[] for _ in clips]
        for i, t in zip(owner, texts):
            per_clip[i].append(t)
        return [join_captions(p, self.joiner) for p in per_clip]

    def _generate(self, frames: list[np.ndarray]) -> list[str]:
        import torch
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        text = [self.text] * len(images) if self.text else None
        inputs = self.processor(images=images, text=text, return_tensors="pt").to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.torch_dtype)
        kw = {"max_new_tokens": self.max_new_tokens, "do_sample": False, "num_beams": 1, **self.generate_kwargs}
        with torch.inference_mode():
            out = self.model.generate(**inputs, **kw)
        ids = inputs.get("input_ids")
        if ids is not None and out.shape[1] >= ids.shape[1] and torch.equal(out[:, :ids.shape[1]], ids):
            out = out[:, ids.shape[1]:]                  # decoder-only models return the prompt first
        texts = [" ".join(t.split()) for t in self.processor.batch_decode(out, skip_special_tokens=True)]
        if self.prompt:                                  # a textual echo that survived (e.g. other tokenisation)
            p = " ".join(self.prompt.split())
            texts = [t[len(p):].strip() if t.startswith(p) else t for t in texts]
        return texts
