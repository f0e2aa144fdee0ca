"""The video-to-text model as systems of the evaluation layer, built from an exported checkpoint dir
(`longvid-train-v2t`'s `<run_dir>/model`) by Hydra `_target_` (configs/system/v2t_*.yaml):

- `V2TSummarizer`: whole video -> summary (generation, greedy or beam, KV-cached);
- `V2TCaptioner`: a sample's clip -> one sentence; also `caption(clips)` (the `Captioner` protocol), so the
  modular baseline can use it as its segment captioner;
- `V2TQA`: multiple choice by each option's log-likelihood given video + question (default, no parsing), or
  by generation parsed with the suite's one parser (`evals.parsing.parse_choice`).

Frames come through the one video path (`read_frames` with the shared `video` sampling every system of a
comparison receives), then are resized to the encoder's size if the decoded size differs and fixed to its
frame count. A video that cannot be read becomes that item's failure. The model loads on `prepare` (or the
first `predict`), so building a system is cheap and a bad checkpoint fails loudly before any item runs.
Input masking at inference uses the model's saved ratio unless `mask_ratio` is given; masks are seeded from
`seed` and the batch's uids (the same batch gives the same masks)."""
from __future__ import annotations

import json
import time
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Iterator, Sequence

import torch

from evals.contracts import CAPTIONING, MCQA, SUMMARIZATION, Clip, Prediction, Sample, Segment
from evals.parsing import choose_by_likelihood
from longvid.data.v2t import PROMPTS_FILE, Prompts, left_pad, sample_span, video_tensor
from longvid.data.video import VideoError, VideoSampling, read_frames

_MODELS: OrderedDict = OrderedDict()   # (checkpoint, device, overrides) -> (model, tokenizer); a few at most
_KEEP = 2


def local_device(device: str) -> str:
    """`cuda` in a process a launcher started one per GPU (torchrun sets LOCAL_RANK) is that process's GPU, so the
    shards of `shard=auto` run side by side; any other value is kept."""
    import os

    return f"cuda:{os.environ['LOCAL_RANK']}" if device == "cuda" and "LOCAL_RANK" in os.environ else device


def load_v2t(checkpoint: str, device: str = "cpu", trained: bool = True, **overrides):
    """(VideoToText in eval mode, its LM's tokenizer), cached per process (systems of one run share them)."""
    from transformers import AutoTokenizer

    from longvid.model.v2t import VideoToText

    key = (str(Path(checkpoint).absolute()), device, trained, tuple(sorted(overrides.items())))
    if key in _MODELS:
        _MODELS.move_to_end(key)
        return _MODELS[key]
    model = VideoToText.load(checkpoint, map_location=device, trained=trained, **overrides).eval()
    tok = AutoTokenizer.from_pretrained(model.cfg.lm_path, local_files_only=True)
    _MODELS[key] = (model, tok)
    while len(_MODELS) > _KEEP:
        _MODELS.popitem(last=False)
    return model, tok


def saved_prompts(checkpoint: str) -> Prompts:
    """The prompt templates the model was trained with (prompts.json beside it), else the defaults."""
    f = Path(checkpoint) / PROMPTS_FILE
    return Prompts.from_dict(json.loads(f.read_text()).get("prompts")) if f.is_file() else Prompts()


class _V2TSystem:
    tasks: frozenset[str] = frozenset()
    method = "generate"
    needs_video = True

    def __init__(self, checkpoint: str, name: str = "v2t", video: dict | None = None, batch_size: int = 4,
                 max_new_tokens: int = 128, num_beams: int = 1, mask_ratio: float | None = None, seed: int = 0,
                 device: str = "cpu", lm_path: str | None = None, encoder_path: str | None = None,
                 prompts: dict | None = None, generate_kwargs: dict | None = None, subtitles: bool = False,
                 connector: str = "trained"):
        if connector not in ("trained", "untrained"):
            raise ValueError(f"{name}: connector must be 'trained' or 'untrained', got {connector!r}")
        self.name, self.checkpoint = name, str(checkpoint)
        self.connector = connector           # "untrained": the checkpoint's model with its connector as initialised
        self.subtitles = bool(subtitles)     # the subtitle lines shown at the frames it reads, before the task text
        self._said: dict[str, str] = {}      # uid -> those lines
        self.sampling = VideoSampling(**dict(video or {}))
        self.batch_size, self.max_new_tokens, self.num_beams = int(batch_size), int(max_new_tokens), int(num_beams)
        self.mask_ratio, self.seed, self.device = mask_ratio, int(seed), local_device(device)
        self.overrides = {k: v for k, v in (("lm_path", lm_path), ("encoder_path", encoder_path)) if v}
        self._prompt_cfg = dict(prompts) if prompts else None
        self.generate_kwargs = dict(generate_kwargs or {})
        self.model = self.tokenizer = self.prompts = None

    # --- loading -----------------------------------------------------------------------------------------
    def prepare(self, benchmark=None, samples=()) -> None:
        self.load()
        if self.subtitles:
            from evals.subtitles import check_available

            check_available(self.name, benchmark, samples)

    def identity(self) -> dict:
        """What this system is: the checkpoint's files (and replaced LM / encoder folders), the prompts, the
        decoding and masking; not the device or batch size."""
        from evals.store import weights_identity

        self.load()
        return {**self.provenance(), "checkpoint": weights_identity(self.checkpoint),
                "overrides": {k: weights_identity(v) for k, v in self.overrides.items()},
                "max_new_tokens": self.max_new_tokens, "num_beams": self.num_beams,
                "generate_kwargs": self.generate_kwargs, "video": self.sampling.__dict__}

    def load(self) -> None:
        if self.model is not None:
            return
        self.model, self.tokenizer = load_v2t(self.checkpoint, self.device, self.connector == "trained",
                                              **self.overrides)
        self.prompts = Prompts.from_dict(self._prompt_cfg) if self._prompt_cfg else saved_prompts(self.checkpoint)
        ecfg = self.model.encoder.cfg
        self.num_frames, self.size = int(ecfg.num_frames), int(ecfg.image_size)

    def provenance(self) -> dict:
        return {"checkpoint": str(Path(self.checkpoint).absolute()), "lm": self.model.cfg.lm_path,
                "prompt_version": self.prompts.version(), "method": self.method,
                "mask_ratio": self.model.cfg.mask_ratio if self.mask_ratio is None else self.mask_ratio,
                "seed": self.seed, **({"subtitles": True} if self.subtitles else {}),
                **({"connector": self.connector} if self.connector != "trained" else {})}

    def _generator(self, uids: Sequence[str]) -> torch.Generator:
        h = zlib.crc32("\n".join(uids).encode())
        return torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + h)

    # --- frames ------------------------------------------------------------------------------------------
    def _tensor(self, frames) -> torch.Tensor:
        return video_tensor(frames, self.num_frames, self.size)

    def _read(self, samples: Sequence[Sample]) -> tuple[list[tuple[Sample, torch.Tensor]], list[Prediction]]:
        ok, failed = [], []
        for s in samples:
            if not s.video:
                failed.append(Prediction(uid=s.uid, system=self.name, failure="no video path for this item"))
                continue
            start, end = sample_span(s)
            try:
                frames = read_frames(s.video, self.sampling, start, end)
                if self.subtitles:
                    self._said[s.uid] = self._subtitles_at(s, frames.timestamps)
                ok.append((s, self._tensor(frames.array)))
            except (VideoError, OSError, ValueError) as e:
                failed.append(Prediction(uid=s.uid, system=self.name, failure=f"{type(e).__name__}: {e}"))
        return ok, failed

    @staticmethod
    def _subtitles_at(s: Sample, times) -> str:
        from evals.subtitles import as_text, at_times, read_subtitles

        path = s.meta.get("subtitles")
        return as_text(at_times(read_subtitles(path, float(s.meta.get("subtitle_offset") or 0.0)), list(times))
                       ) if path else ""

    def _prompt(self, s: Sample) -> str:
        said = self._said.get(s.uid, "") if self.subtitles else ""
        return self.prompts.render(self.tokenizer, s, prefix=f"Subtitles: {said}\n" if said else "")

    # --- prediction --------------------------------------------------------------------------------------
    def predict(self, samples: Sequence[Sample]) -> Iterator[Prediction]:
        self.load()
        for i in range(0, len(samples), self.batch_size):
            chunk = samples[i:i + self.batch_size]
            t0 = time.perf_counter()
            ok, failed = self._read(chunk)
            yield from failed
            if ok:
                batch = [s for s, _ in ok]
                preds = self._run(batch, torch.stack([v for _, v in ok]))
                sec = (time.perf_counter() - t0) / len(ok)
                from dataclasses import replace

                yield from (replace(p, seconds=sec) for p in preds)

    def _run(self, samples: list[Sample], video: torch.Tensor) -> list[Prediction]:
        texts, prompts = self.generate_texts(samples, video)
        prov = self.provenance()
        return [Prediction(uid=s.uid, system=self.name, text=t, provenance=prov, extra={"prompt": p})
                for s, t, p in zip(samples, texts, prompts)]

    @torch.no_grad()
    def generate_texts(self, samples: Sequence[Sample], video: torch.Tensor,
                       max_new_tokens: int | None = None) -> tuple[list[str], list[str]]:
        """(generated texts, prompts) for a batch of samples and their video tensor (B, C, T, H, W)."""
        prompts = [self._prompt(s) for s in samples]
        ids, am = left_pad(self.tokenizer, prompts)
        dev = self.model.lm.device
        out = self.model.generate(video, ids.to(dev), am.to(dev), max_new_tokens=max_new_tokens or self.max_new_tokens,
                                  num_beams=self.num_beams, mask_ratio=self.mask_ratio,
                                  generator=self._generator([s.uid for s in samples]), **self.generate_kwargs)
        texts = [" ".join(t.split()) for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]
        return texts, prompts


class V2TSummarizer(_V2TSystem):
    """Whole video -> summary."""

    tasks = frozenset({SUMMARIZATION})


class V2TCaptioner(_V2TSystem):
    """A sample's clip (or the whole video if it has none) -> one sentence; `caption(clips)` for the modular
    baseline (clips carry their decoded frames)."""

    tasks = frozenset({CAPTIONING})

    def __init__(self, checkpoint: str, name: str = "v2t_captioner", max_new_tokens: int = 32, **kw):
        super().__init__(checkpoint, name=name, max_new_tokens=max_new_tokens, **kw)

    def check(self) -> None:
        self.load()

    def caption(self, clips: Sequence[Clip]) -> list[str]:
        self.load()
        out = []
        for i in range(0, len(clips), self.batch_size):
            part = clips[i:i + self.batch_size]
            samples = [Sample(uid=f"clip{i + j}:{c.start:.3f}-{c.end:.3f}", benchmark="captioner", task=CAPTIONING,
                              video=None, clip=Segment(float(c.start), float(c.end))) for j, c in enumerate(part)]
            video = torch.stack([self._tensor(c.frames) for c in part])
            out += self.generate_texts(samples, video)[0]
        return out


class V2TQA(_V2TSystem):
    """Multiple choice. `method="likelihood"` (default): the option with the highest log-likelihood given video +
    question (+ listed options), `reduction` "sum" of its token log-probs or their "mean"; both are recorded
    in `extra`. `method="generate"`: generate, then `evals.parsing.parse_choice` (None = unparseable)."""

    tasks = frozenset({MCQA})

    def __init__(self, checkpoint: str, name: str = "v2t_qa", method: str = "likelihood", reduction: str = "sum",
                 max_new_tokens: int = 32, **kw):
        if method not in ("likelihood", "generate"):
            raise ValueError(f"method must be 'likelihood' or 'generate', got {method!r}")
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        super().__init__(checkpoint, name=name, max_new_tokens=max_new_tokens, **kw)
        self.method, self.reduction = method, reduction

    def provenance(self) -> dict:
        return {**super().provenance(), **({"reduction": self.reduction} if self.method == "likelihood" else {})}

    def _run(self, samples: list[Sample], video: torch.Tensor) -> list[Prediction]:
        if self.method == "generate":
            from evals.parsing import parse_choice

            texts, prompts = self.generate_texts(samples, video)
            prov = self.provenance()
            return [Prediction(uid=s.uid, system=self.name, text=t, choice=parse_choice(t, s.options),
                               provenance=prov, extra={"prompt": p}) for s, t, p in zip(samples, texts, prompts)]
        by_n: dict[int, list[int]] = {}
        for i, s in enumerate(samples):
            if not s.options:
                raise ValueError(f"sample {s.uid!r} has no options")
            by_n.setdefault(len(s.options), []).append(i)
        out: dict[int, Prediction] = {}
        for idx in by_n.values():                       # score_options needs one option count per call
            for i, p in zip(idx, self._likelihood([samples[i] for i in idx], video[idx])):
                out[i] = p
        return [out[i] for i in range(len(samples))]

    @torch.no_grad()
    def _likelihood(self, samples: list[Sample], video: torch.Tensor) -> list[Prediction]:
        tok = self.tokenizer
        prompts = [self._prompt(s) for s in samples]
        options = [[Prompts.continuation(p, o) for o in s.options] for p, s in zip(prompts, samples)]
        scores = self.model.score_options(video, prompts, options, tok, reduction="sum", mask_ratio=self.mask_ratio,
                                          generator=self._generator([s.uid for s in samples])).cpu()
        lens = [[len(tok(o, add_special_tokens=False).input_ids) for o in opts] for opts in options]
        prov = self.provenance()
        out = []
        for b, (s, p) in enumerate(zip(samples, prompts)):
            c, extra = choose_by_likelihood(scores[b].tolist(), lens[b], self.reduction)
            out.append(Prediction(uid=s.uid, system=self.name, text=None if c is None else s.options[c], choice=c,
                                  provenance=prov, extra={**extra, "prompt": p}))
        return out
