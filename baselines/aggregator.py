"""The modular baseline as systems of the paired runner: segment captions -> an LLM.

- `LLMAggregator`: cut each video into segments (uniform windows or the benchmark's own), caption every
  segment with a pluggable captioner (or take the benchmark's own segment sentences: `captions: oracle`,
  which separates captioning errors from aggregation errors), then give the captions, in time order with
  their time spans, to a pluggable LLM backend: a summary, or a multiple-choice answer.
- `BlindLLM`: the question and options only — what the LLM knows without the video.

Multiple choice, `mcqa:` `letter` (LLoVi style: the reply is constrained to one of the option letters) or
`likelihood` (each option's text scored as the reply, lm-eval style; `reduction` sum or mean of token
log-probs). `mode: summarize_then_answer` first writes the video's summary (the same request as the
summarization task, so it is cached once) and answers from it.

Captions are cached on disk keyed by (video file, segment, captioner config, video sampling), so changing
the LLM or the prompt never re-captions; LLM replies are cached by the backend. The captioner and the LLM
are built from their configs on first use and shared by every system of the process with the same config
(one launched vLLM server serves them all). A prediction records the prompt id and digest, the captions
used and the raw LLM text.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from baselines.cache import digest, open_cache
from baselines.prompts import LETTERS, format_captions, format_options, load_prompt
from baselines.segments import read_clips, segments_for
from evals.contracts import MCQA, SUMMARIZATION, Prediction, Sample, Segment
from longvid.data.video import VideoError, VideoSampling

PROMPTS = {  # (task, mode, mcqa) -> prompt id
    "summary": "summarize.v1",
    "letter": "mcqa_letter.v1", "likelihood": "mcqa_text.v1",
    "summary_letter": "mcqa_from_summary_letter.v1", "summary_likelihood": "mcqa_from_summary_text.v1",
    "blind_letter": "mcqa_blind_letter.v1", "blind_likelihood": "mcqa_blind_text.v1",
}
_SHARED: dict[str, Any] = {}   # config digest -> built captioner / LLM backend, shared within the process


def _container(cfg) -> Any:
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(cfg, (DictConfig, ListConfig)):
            return OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return cfg


def shared(cfg) -> Any:
    """Build a `_target_` config once per process (objects are passed through unchanged)."""
    cfg = _container(cfg)
    if not isinstance(cfg, Mapping):
        return cfg
    key = digest(cfg)
    if key not in _SHARED:
        from hydra.utils import instantiate

        _SHARED[key] = instantiate(cfg)
    return _SHARED[key]


def close_shared() -> None:
    """Close every shared backend (stops servers launched for the run)."""
    while _SHARED:
        _, obj = _SHARED.popitem()
        if hasattr(obj, "close"):
            obj.close()


def _stamp(value: Any) -> Any:
    """A config value plus the modification time of the file/folder it names, so that a retrained
    checkpoint at the same path does not reuse stale captions."""
    if isinstance(value, str) and value and os.path.exists(value):
        p = Path(value)
        files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]
        return [value, max((f.stat().st_mtime_ns for f in files), default=0)]
    if isinstance(value, Mapping):
        return {k: _stamp(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_stamp(v) for v in value]
    return value


def _identity(cfg_or_obj) -> Any:
    """What identifies a captioner in cache keys and provenance: its config (with file stamps), or for an
    object passed directly, its `describe()` (or class name)."""
    if isinstance(cfg_or_obj, Mapping) or cfg_or_obj is None:
        return _stamp(cfg_or_obj)
    return cfg_or_obj.describe() if hasattr(cfg_or_obj, "describe") else type(cfg_or_obj).__qualname__


class LLMAggregator:
    tasks = frozenset({SUMMARIZATION, MCQA})

    def __init__(self, llm, captioner=None, name: str = "llm_aggregator", video: Mapping | None = None,
                 segments: str = "uniform", window: float = 16.0, captions: str = "captioner",
                 oracle_source=None, mcqa: str = "likelihood", reduction: str = "mean",
                 mode: str = "standard", prompts: Mapping[str, str] | None = None,
                 sampling: Mapping[str, Any] | None = None, caption_cache: str | None = None):
        if captions not in ("captioner", "oracle", "none"):
            raise ValueError(f"captions must be 'captioner', 'oracle' or 'none', got {captions!r}")
        if mcqa not in ("letter", "likelihood"):
            raise ValueError(f"mcqa must be 'letter' or 'likelihood', got {mcqa!r}")
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        if mode not in ("standard", "summarize_then_answer"):
            raise ValueError(f"mode must be 'standard' or 'summarize_then_answer', got {mode!r}")
        if captions == "captioner" and captioner is None:
            raise ValueError(f"system {name!r}: captions=captioner needs a `captioner` config")
        self.name, self.captions, self.mcqa, self.reduction, self.mode = name, captions, mcqa, reduction, mode
        self.segments, self.window = segments, float(window)
        self.sampling = VideoSampling(**dict(video or {}))
        self._llm_cfg, self._captioner_cfg = _container(llm), _container(captioner)
        self._captioner_id = None
        self._oracle_cfg, self._oracle = _container(oracle_source), None
        self.prompts = {**PROMPTS, **dict(prompts or {})}
        self.gen = {"max_tokens": 160, **dict(sampling or {})}
        self.caption_cache = open_cache(caption_cache) if captions == "captioner" else None

    # --- building blocks ------------------------------------------------------------------------------------
    @property
    def llm(self):
        return shared(self._llm_cfg)

    def prompt(self, key: str):
        return load_prompt(self.prompts[key])

    def prepare(self, benchmark=None) -> None:
        for key in self.prompts.values():   # a bad prompt name fails before any item runs
            load_prompt(key)

    def oracle_segments(self, sample: Sample) -> Sequence[Segment] | None:
        """The item's own segments, or those of the same video in `oracle_source` (a benchmark whose
        samples have segments, e.g. the summaries of the videos a QA set asks about)."""
        if sample.segments or self._oracle_cfg is None:
            return sample.segments or None
        if self._oracle is None:
            self._oracle = {}
            for s in shared(self._oracle_cfg).load():
                self._oracle.setdefault(s.video_id, s.segments)
        segs = self._oracle.get(sample.video_id)
        if not segs:
            raise ValueError(f"item {sample.uid!r}: video {sample.video_id!r} has no segments in the oracle source")
        return segs

    def _caption_key(self, sample: Sample, seg: Segment) -> dict:
        st = os.stat(sample.video)
        if self._captioner_id is None:          # once: it walks the checkpoint folder for time stamps
            self._captioner_id = _identity(self._captioner_cfg)
        return {"video": os.path.abspath(sample.video), "size": st.st_size, "mtime": st.st_mtime_ns,
                "segment": [seg.start, seg.end], "captioner": self._captioner_id, "sampling": self.sampling.__dict__}

    def captions_for(self, samples: Sequence[Sample]) -> dict[str, list[tuple[float, float, str]] | Exception]:
        """uid -> [(start, end, caption)] in time order, or the exception that stopped this item."""
        out: dict[str, Any] = {}
        if self.captions == "none":
            return {s.uid: [] for s in samples}
        todo: list[tuple[str, Segment, dict, Sample, int]] = []   # uid, segment, cache key, item, position
        for s in samples:
            try:
                oracle = self.oracle_segments(s) if (self.captions == "oracle" or self.segments == "oracle") else None
                segs = segments_for(s, "oracle" if self.captions == "oracle" else self.segments, self.window, oracle)
                if self.captions == "oracle":
                    missing = [g for g in segs if not g.sentence]
                    if missing:
                        raise ValueError(f"item {s.uid!r}: oracle captions need a sentence for every segment")
                    out[s.uid] = [(g.start, g.end, g.sentence) for g in segs]
                    continue
                if not s.video:
                    raise ValueError(f"item {s.uid!r} has no video path")
                out[s.uid] = [None] * len(segs)
                for j, g in enumerate(segs):
                    key = self._caption_key(s, g)
                    hit = self.caption_cache.get(key) if self.caption_cache else None
                    if hit is not None:
                        out[s.uid][j] = (g.start, g.end, hit)
                    else:
                        todo.append((s.uid, g, key, s, j))
            except (ValueError, OSError, VideoError) as e:
                out[s.uid] = e
        if todo:
            self._caption(todo, out)
        return out

    def _caption(self, todo, out) -> None:
        captioner = shared(self._captioner_cfg)
        clips, where = [], []
        for uid, seg, key, s, j in todo:
            if isinstance(out[uid], Exception):
                continue
            try:
                clips += read_clips(s.video, [seg], self.sampling)
                where.append((uid, seg, key, j))
            except (VideoError, ValueError) as e:
                out[uid] = e
        texts = captioner.caption(clips) if clips else []
        if len(texts) != len(clips):
            raise RuntimeError(f"captioner returned {len(texts)} captions for {len(clips)} clips")
        for (uid, seg, key, j), t in zip(where, texts):
            t = " ".join(str(t).split())
            if self.caption_cache:
                self.caption_cache.put(key, t)
            if not isinstance(out[uid], Exception):
                out[uid][j] = (seg.start, seg.end, t)

    # --- prediction -------------------------------------------------------------------------------------------
    def provenance(self, *prompt_keys: str) -> dict:
        prov = {"llm": self.llm.describe(), "captions": self.captions, "mcqa": self.mcqa, "mode": self.mode}
        if self.captions == "captioner":
            cap = self._captioner_cfg
            prov.update(captioner=cap.get("_target_") if isinstance(cap, Mapping) else type(cap).__qualname__,
                        segments=self.segments, window=self.window)
        prov["prompts"] = {k: load_prompt(self.prompts[k]).provenance() for k in prompt_keys}
        return prov

    def predict(self, samples: Sequence[Sample]) -> Iterator[Prediction]:
        t0 = time.perf_counter()
        caps = self.captions_for(samples)
        ok = []
        for s in samples:
            if isinstance(caps[s.uid], Exception):
                e = caps[s.uid]
                yield Prediction(uid=s.uid, system=self.name, failure=f"{type(e).__name__}: {e}")
            else:
                ok.append(s)
        by_task = {SUMMARIZATION: [s for s in ok if s.task == SUMMARIZATION], MCQA: [s for s in ok if s.task == MCQA]}
        preds = self._summaries(by_task[SUMMARIZATION], caps) + self._answers(by_task[MCQA], caps)
        sec = (time.perf_counter() - t0) / max(1, len(samples))
        from dataclasses import replace

        yield from (replace(p, seconds=sec) for p in preds)

    def _summary_requests(self, samples, caps) -> list[list[dict]]:
        p = self.prompt("summary")
        return [p.messages(captions=format_captions(caps[s.uid])) for s in samples]

    def _summaries(self, samples, caps) -> list[Prediction]:
        if not samples:
            return []
        texts = self.llm.chat(self._summary_requests(samples, caps), self.gen)
        prov = self.provenance("summary")
        return [Prediction(uid=s.uid, system=self.name, text=t, provenance=prov,
                           extra={"captions": caps[s.uid], "raw": t}) for s, t in zip(samples, texts)]

    def _answers(self, samples, caps) -> list[Prediction]:
        if not samples:
            return []
        keys = [("blind_" if self.captions == "none" else "summary_" if self.mode == "summarize_then_answer" else "")
                + self.mcqa]
        ctx: dict[str, dict[str, str]] = {s.uid: {"captions": format_captions(caps[s.uid])} for s in samples}
        extra: dict[str, dict] = {s.uid: {"captions": caps[s.uid]} for s in samples}
        if self.mode == "summarize_then_answer" and self.captions != "none":
            summaries = self.llm.chat(self._summary_requests(samples, caps), self.gen)
            for s, t in zip(samples, summaries):
                ctx[s.uid]["summary"] = t
                extra[s.uid]["summary"] = t
            keys.insert(0, "summary")
        p = self.prompt(keys[-1])
        convs = [p.messages(**{k: v for k, v in {**ctx[s.uid], "question": s.question or "",
                                                  "options": format_options(s.options)}.items() if k in p.fields})
                 for s in samples]
        prov = self.provenance(*keys)
        if self.mcqa == "letter":
            out = []
            for n in sorted({len(s.options) for s in samples}):   # one letter set per option count
                idx = [i for i, s in enumerate(samples) if len(s.options) == n]
                replies = self.llm.chat([convs[i] for i in idx], {**self.gen, "max_tokens": 4},
                                        choice=list(LETTERS[:n]))
                out += [(i, r) for i, r in zip(idx, replies)]
            from evals.parsing import parse_choice

            return [Prediction(uid=samples[i].uid, system=self.name, text=r, choice=parse_choice(r, samples[i].options),
                               provenance=prov, extra={**extra[samples[i].uid], "raw": r})
                    for i, r in sorted(out)]
        scores = self.llm.score(convs, [list(s.options) for s in samples])
        preds = []
        for s, row in zip(samples, scores):
            sums = [a for a, _ in row]
            means = [a / max(1, n) for a, n in row]
            chosen = sums if self.reduction == "sum" else means
            c = max(range(len(chosen)), key=chosen.__getitem__)
            preds.append(Prediction(uid=s.uid, system=self.name, text=s.options[c], choice=c, provenance=prov,
                                    extra={**extra[s.uid], "option_logprob_sum": [round(x, 4) for x in sums],
                                           "option_logprob_mean": [round(x, 4) for x in means]}))
        return preds

    def close(self) -> None:
        close_shared()


class BlindLLM(LLMAggregator):
    """Question and options only, no video: what the LLM's priors alone score."""

    tasks = frozenset({MCQA})

    def __init__(self, llm, name: str = "blind_llm", mcqa: str = "likelihood", reduction: str = "mean",
                 prompts: Mapping[str, str] | None = None, sampling: Mapping[str, Any] | None = None):
        super().__init__(llm, None, name=name, captions="none", mcqa=mcqa, reduction=reduction,
                         prompts=prompts, sampling=sampling)

    def provenance(self, *prompt_keys: str) -> dict:
        return {"llm": self.llm.describe(), "captions": "none", "mcqa": self.mcqa,
                "prompts": {k: load_prompt(self.prompts[k]).provenance() for k in prompt_keys}}
