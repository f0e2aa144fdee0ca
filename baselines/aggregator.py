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

Captions are cached on disk keyed by (video file, segment, the captioner's identity, video sampling), so changing
the LLM or the prompt never re-captions; LLM replies are cached by the backend (keyed by the model's identity).
The captioner and the LLM are built in `prepare` — before the run's first item: a `_target_` that cannot be
imported, a backend that cannot do what the task and `mcqa` mode need, a cache that cannot be opened all stop the
run there — and shared by every system of the process with the same config (one launched vLLM server serves them
all). An empty caption is the item's failure, never cached. When a video file is shorter than its annotated
duration, the segments are cut to the file's length (what the video-first rows see) and the prediction records it.
A prediction records the prompt id and digest, the captions used and the raw LLM text.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from baselines.cache import digest, open_cache
from baselines.prompts import format_captions, load_prompt
from baselines.segments import cut_to, read_clips, segments_for
from evals.contracts import CHAT, CHOICE, MCQA, SCORE, SUMMARIZATION, ConfigError, Prediction, Sample, Segment
from evals.parsing import LETTERS, choose_by_likelihood, format_options, parse_choice
from evals.store import config_identity, plain
from longvid.data.video import VideoError, VideoSampling, probe

PROMPTS = {  # (task, mode, mcqa) -> prompt id
    "summary": "summarize.v1",
    "letter": "mcqa_letter.v1", "likelihood": "mcqa_text.v1",
    "summary_letter": "mcqa_from_summary_letter.v1", "summary_likelihood": "mcqa_from_summary_text.v1",
    "blind_letter": "mcqa_blind_letter.v1", "blind_likelihood": "mcqa_blind_text.v1",
}
SUBTITLE_PROMPTS = {  # with subtitles: each caption line also carries what is said during its segment
    "summary": "summarize_subtitles.v1", "letter": "mcqa_letter_subtitles.v1", "likelihood": "mcqa_text_subtitles.v1",
}
_SHARED: dict[str, Any] = {}   # config digest -> built captioner / LLM backend, shared within the process


def shared(cfg, key: str = "plug-in") -> Any:
    """Build a `_target_` config once per process (objects are passed through unchanged); a config that cannot be
    built is a ConfigError naming `key` and the target."""
    cfg = plain(cfg)
    if not isinstance(cfg, Mapping):
        return cfg
    k = digest(cfg)
    if k not in _SHARED:
        from hydra.utils import instantiate

        try:
            _SHARED[k] = instantiate(cfg)
        except Exception as e:  # noqa: BLE001 - one clear message naming the key and the target
            cause = e.__cause__ or e
            raise ConfigError(f"{key}: cannot build {cfg.get('_target_')!r} ({type(cause).__name__}: "
                              f"{str(cause).splitlines()[0] if str(cause) else ''})") from e
    return _SHARED[k]


def close_shared() -> None:
    """Close every shared backend (stops servers launched for the run)."""
    while _SHARED:
        _, obj = _SHARED.popitem()
        if hasattr(obj, "close"):
            obj.close()


def plugin_identity(obj, cfg) -> Any:
    """What identifies a plug-in (an LLM backend, a captioner): its `identity()`, else its `describe()`, else its
    config without run keys and with file stamps."""
    for method in ("identity", "describe"):
        if hasattr(obj, method):
            return getattr(obj, method)()
    return config_identity(cfg) if isinstance(cfg, Mapping) else type(obj).__qualname__


NEEDS = {"letter": CHOICE, "likelihood": SCORE}   # multiple-choice mode -> what the LLM backend must be able to do


class LLMAggregator:
    tasks = frozenset({SUMMARIZATION, MCQA})

    def __init__(self, llm, captioner=None, name: str = "llm_aggregator", video: Mapping | None = None,
                 segments: str = "uniform", window: float = 16.0, captions: str = "captioner",
                 oracle_source=None, mcqa: str = "likelihood", reduction: str = "mean",
                 mode: str = "standard", prompts: Mapping[str, str] | None = None,
                 sampling: Mapping[str, Any] | None = None, caption_cache: str | None = None,
                 subtitles: bool = False):
        if captions not in ("captioner", "oracle", "none"):
            raise ValueError(f"captions must be 'captioner', 'oracle' or 'none', got {captions!r}")
        if mcqa not in NEEDS:
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
        self._llm_cfg, self._captioner_cfg = plain(llm), plain(captioner)
        self._captioner_id = None
        self._oracle_cfg, self._oracle = plain(oracle_source), None
        self._cuts: dict[str, dict] = {}            # uid -> how its segments were cut to the file's length
        self.subtitles = bool(subtitles)
        if self.subtitles and captions == "none":
            raise ValueError(f"system {name!r}: subtitles go beside segment captions; this row has none")
        self.prompts = {**PROMPTS, **(SUBTITLE_PROMPTS if self.subtitles else {}), **dict(prompts or {})}
        self.gen = {"max_tokens": 160, **dict(sampling or {})}
        self._caption_cache_path = caption_cache if captions == "captioner" else None
        self.caption_cache = None

    # --- building blocks ------------------------------------------------------------------------------------
    @property
    def needs_video(self) -> bool:
        """Captions from a captioner read frames; the benchmark's own sentences (or none) do not."""
        return self.captions == "captioner"

    @property
    def llm(self):
        return shared(self._llm_cfg, f"systems.{self.name}.llm")

    @property
    def captioner(self):
        return shared(self._captioner_cfg, f"systems.{self.name}.captioner")

    def prompt(self, key: str):
        return load_prompt(self.prompts[key])

    def prepare(self, benchmark=None, samples: Sequence[Sample] = ()) -> None:
        """Build and check every plug-in before the first item: prompts, the LLM (what the task needs of it,
        its cache, its server or weights), the captioner and its cache, the oracle segments."""
        for key in self.prompts.values():
            load_prompt(key)
        tasks = {s.task for s in samples}
        needed = ({CHAT} if SUMMARIZATION in tasks or (MCQA in tasks and self.mode == "summarize_then_answer")
                  else set()) | ({NEEDS[self.mcqa]} if MCQA in tasks else set())
        llm = self.llm
        can = set(getattr(llm, "capabilities", {CHAT}))
        missing = needed - can
        if missing:
            other = "letter" if self.mcqa == "likelihood" else "likelihood"
            switch = f"set systems.{self.name}.mcqa={other} or " if MCQA in tasks and NEEDS[other] in can else ""
            raise ConfigError(
                f"the LLM backend {type(llm).__name__} ({getattr(llm, 'model', '?')}) cannot {sorted(missing)} "
                f"(it declares capabilities {sorted(can)}), which "
                + (f"mcqa={self.mcqa} needs; " if NEEDS[self.mcqa] in missing else "the task needs; ")
                + f"{switch}use a backend that declares it")
        if hasattr(llm, "check"):
            llm.check()
        if self.captions == "captioner":
            if hasattr(self.captioner, "check"):
                self.captioner.check()
            self._captioner_id = plugin_identity(self.captioner, self._captioner_cfg)
            self.caption_cache = open_cache(self._caption_cache_path)
            if self.caption_cache is not None:
                self.caption_cache.check()
        if self._oracle_cfg is not None and (self.captions == "oracle" or self.segments == "oracle"):
            self._oracle_index()
        if self.subtitles:
            from evals.subtitles import check_available

            check_available(self.name, benchmark, samples)

    def identity(self) -> dict:
        """What this row is: the LLM's and captioner's identities, prompts, sampling, segmenting, multiple-choice
        rule and video sampling; not where or how fast it runs."""
        ident = {"llm": plugin_identity(self.llm, self._llm_cfg),
                 "captions": self.captions, "mcqa": self.mcqa, "reduction": self.reduction, "mode": self.mode,
                 "prompts": {k: load_prompt(v).provenance() for k, v in sorted(self.prompts.items())},
                 "sampling": self.gen}
        if self.captions == "captioner":
            ident.update(captioner=self._captioner_id or plugin_identity(self.captioner, self._captioner_cfg),
                         segments=self.segments, window=self.window, video=self.sampling.__dict__)
        if self._oracle_cfg is not None:
            ident["oracle_source"] = config_identity(self._oracle_cfg)
        if self.subtitles:
            ident["subtitles"] = True
        return ident

    def _oracle_index(self) -> dict:
        if self._oracle is None:
            self._oracle = {}
            for s in shared(self._oracle_cfg, f"systems.{self.name}.oracle_source").load():
                self._oracle.setdefault(s.video_id, s.segments)
        return self._oracle

    def oracle_segments(self, sample: Sample) -> Sequence[Segment] | None:
        """The item's own segments, or those of the same video in `oracle_source` (a benchmark whose
        samples have segments, e.g. the summaries of the videos a QA set asks about)."""
        if sample.segments or self._oracle_cfg is None:
            return sample.segments or None
        segs = self._oracle_index().get(sample.video_id)
        if not segs:
            raise ValueError(f"item {sample.uid!r}: video {sample.video_id!r} has no segments in the oracle source")
        return segs

    def _caption_key(self, sample: Sample, seg: Segment) -> dict:
        st = os.stat(sample.video)
        if self._captioner_id is None:          # once (prepare sets it): it may walk a checkpoint folder
            self._captioner_id = plugin_identity(self.captioner, self._captioner_cfg)
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
                segs = self._within_file(s, segs)
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
        if self.subtitles:
            for s in samples:
                if not isinstance(out[s.uid], Exception):
                    out[s.uid] = self._with_subtitles(s, out[s.uid])
        return out

    def _with_subtitles(self, s: Sample, caps: list) -> list | Exception:
        """Each (start, end, caption) with the subtitle lines shown during its segment: (start, end, caption, said)."""
        from evals.subtitles import as_text, overlapping, read_subtitles

        path = s.meta.get("subtitles")
        if not path:
            return [(a, b, t, "") for a, b, t in caps]
        try:
            lines = read_subtitles(path, float(s.meta.get("subtitle_offset") or 0.0))
        except (OSError, ValueError) as e:
            return e
        return [(a, b, t, as_text(overlapping(lines, a, b))) for a, b, t in caps]

    def _within_file(self, s: Sample, segs: list[Segment]) -> list[Segment]:
        """The segments cut to the video file's real length when it is shorter than annotated (the video-first
        rows see the file too); the cut is recorded in the item's prediction."""
        real = probe(s.video)[0]
        cut = cut_to(segs, real)
        if cut != segs:
            if not cut:
                raise ValueError(f"item {s.uid!r}: the video lasts {real:.1f} s, before its first segment")
            self._cuts[s.uid] = {"annotated_duration": s.duration, "video_duration": round(real, 3),
                                 "segments": len(segs), "segments_kept": len(cut)}
        return cut

    def _caption(self, todo, out) -> None:
        captioner = self.captioner
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
            t = " ".join(str(t).split()) if t is not None else ""
            if not t:                     # a failure of this item, never a cached caption
                if not isinstance(out[uid], Exception):
                    out[uid] = ValueError(f"the captioner returned an empty caption for {seg.start:.1f}-{seg.end:.1f} s")
                continue
            if self.caption_cache:
                self.caption_cache.put(key, t)
            if not isinstance(out[uid], Exception):
                out[uid][j] = (seg.start, seg.end, t)

    # --- prediction -------------------------------------------------------------------------------------------
    def provenance(self, *prompt_keys: str) -> dict:
        prov = {"llm": self.llm.describe(), "captions": self.captions, "mcqa": self.mcqa, "mode": self.mode,
                **({"subtitles": True} if self.subtitles else {})}
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

        yield from (replace(p, seconds=sec, extra={**p.extra, "segments_cut": self._cuts[p.uid]} if p.uid in self._cuts
                            else p.extra) for p in preds)

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
            return [Prediction(uid=samples[i].uid, system=self.name, text=r, choice=parse_choice(r, samples[i].options),
                               provenance=prov, extra={**extra[samples[i].uid], "raw": r})
                    for i, r in sorted(out)]
        scores = self.llm.score(convs, [list(s.options) for s in samples])
        preds = []
        for s, row in zip(samples, scores):
            c, rule = choose_by_likelihood([a for a, _ in row], [n for _, n in row], self.reduction)
            preds.append(Prediction(uid=s.uid, system=self.name, text=None if c is None else s.options[c], choice=c,
                                    provenance=prov, extra={**extra[s.uid], **rule}))
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
