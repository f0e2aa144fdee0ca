"""The modular baseline with test doubles (FakeCaptioner, FakeLLM): segmenting, prompts, caption cache,
oracle captions, both multiple-choice modes, summarize-then-answer, blind LLM, per-item failures."""
import json
import shutil

import pytest

from baselines import aggregator as agg
from baselines.aggregator import BlindLLM, LLMAggregator
from baselines.llm.base import LLMError
from baselines.prompts import available, load_prompt
from baselines.segments import segments_for, uniform_segments
from evals.contracts import MCQA, SUMMARIZATION, Sample, Segment
from evals.synthetic import SyntheticBenchmark
from tests.helpers import FakeCaptioner, FakeLLM

GEN = dict(n_train=4, n_val=2, n_test=3, max_duration=40, min_duration=20)

# Released prompt files must never change in place: a new wording is a new version (a new file).
PROMPT_DIGESTS = {
    "mcqa_blind_letter.v1": "221021aee509", "mcqa_blind_text.v1": "d3eaf2a01259",
    "mcqa_from_summary_letter.v1": "8702a4a7409e", "mcqa_from_summary_text.v1": "faabb355a7de",
    "mcqa_letter.v1": "39a477d1ad32", "mcqa_text.v1": "392ba0fa5ddb", "summarize.v1": "e2004a19a50c",
    "mcqa_letter_subtitles.v1": "ed4ae4d1fee1", "mcqa_text_subtitles.v1": "d5c7d591304e",
    "summarize_subtitles.v1": "0f14f8b26c1e",
}


@pytest.fixture(autouse=True)
def _fresh_shared():
    agg._SHARED.clear()
    yield
    agg._SHARED.clear()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("syn"))
    summ = SyntheticBenchmark(root, task=SUMMARIZATION, generator=GEN)
    qa = SyntheticBenchmark(root, task=MCQA, generator=GEN)
    return summ, qa


def system(llm, captioner=None, **kw):
    s = LLMAggregator(llm, captioner, **kw)
    s.prepare()
    return s


def test_uniform_segments_cover_the_video():
    assert uniform_segments(40, 16) == [Segment(0, 16), Segment(16, 32), Segment(32, 40)]
    assert uniform_segments(33, 16) == [Segment(0, 16), Segment(16, 33)]     # a 1 s tail joins the last window
    assert uniform_segments(5, 16) == [Segment(0, 5)]
    with pytest.raises(ValueError, match="duration"):
        uniform_segments(0)
    s = Sample(uid="x", benchmark="b", task=MCQA, video=None, duration=20.0, options=("a", "b"))
    with pytest.raises(ValueError, match="no ground-truth segments"):
        segments_for(s, "oracle")
    with pytest.raises(ValueError, match="segments must be one of"):
        segments_for(s, "scenes")


def test_released_prompts_are_pinned_and_render():
    assert sorted(PROMPT_DIGESTS) == available()
    for pid in available():
        p = load_prompt(pid)
        assert p.id == pid
        assert p.digest == PROMPT_DIGESTS[pid], f"{pid} was edited in place: add a new version instead"
    p = load_prompt("mcqa_letter.v1")
    assert p.fields == {"captions", "question", "options"}
    msgs = p.messages(captions="[0s-16s] a", question="q?", options="A. x\nB. y")
    assert msgs[0]["role"] == "system" and msgs[1]["content"].index("[0s-16s] a") < msgs[1]["content"].index("q?")
    with pytest.raises(KeyError, match="question"):
        p.messages(captions="c", options="o")
    with pytest.raises(FileNotFoundError, match="packaged prompts"):
        load_prompt("nope.v9")


def test_summaries_from_captions_in_time_order_and_the_caption_cache(data, tmp_path):
    summ, _ = data
    samples = summ.load()
    cap, llm = FakeCaptioner(), FakeLLM()
    s = system(llm, cap, caption_cache=str(tmp_path / "c.sqlite"), window=16.0)
    preds = list(s.predict(samples))
    assert [p.uid for p in preds] == [x.uid for x in samples] and not any(p.failure for p in preds)
    n_segs = sum(len(uniform_segments(x.duration, 16.0)) for x in samples)
    assert cap.calls == n_segs
    p = preds[0]
    starts = [c[0] for c in p.extra["captions"]]
    assert starts == sorted(starts) and starts[0] == 0.0
    assert p.text == "summary: " + " / ".join(c[2] for c in p.extra["captions"])   # every caption reached the LLM
    assert p.provenance["prompts"]["summary"]["prompt"] == "summarize.v1"
    # a new LLM (and a new process-level cache of built objects): captions come from disk, none recomputed
    agg._SHARED.clear()
    again = system(FakeLLM(), FakeCaptioner(forbid=True), caption_cache=str(tmp_path / "c.sqlite"))
    assert [q.extra["captions"] for q in again.predict(samples)] == [q.extra["captions"] for q in preds]


def test_oracle_captions_and_oracle_segments(data):
    summ, qa = data
    samples = summ.load()
    s = system(FakeLLM(), captions="oracle")
    p = next(iter(s.predict(samples[:1])))
    assert [c[2] for c in p.extra["captions"]] == [g.sentence for g in samples[0].segments]
    # QA items carry no segments: they come from the same video's summary annotations
    oracle_cfg = {"_target_": "evals.synthetic.SyntheticBenchmark", "root": summ.root, "task": SUMMARIZATION,
                  "generator": GEN}
    q = qa.load()[0]
    p = next(iter(system(FakeLLM(), captions="oracle", oracle_source=oracle_cfg).predict([q])))
    by_video = {x.video_id: x for x in samples}
    assert [c[2] for c in p.extra["captions"]] == [g.sentence for g in by_video[q.video_id].segments]
    cap = FakeCaptioner()
    p = next(iter(system(FakeLLM(), cap, segments="oracle", oracle_source=oracle_cfg).predict([q])))
    assert [(c[0], c[1]) for c in p.extra["captions"]] == [(g.start, g.end) for g in by_video[q.video_id].segments]
    assert cap.calls == len(by_video[q.video_id].segments)


def test_multiple_choice_letter_likelihood_and_summarize_then_answer(data):
    _, qa = data
    samples = qa.load()
    llm = FakeLLM(letter="C")
    preds = list(system(llm, FakeCaptioner(), mcqa="letter").predict(samples))
    assert all(p.choice == 2 and p.text == "C" for p in preds)
    assert all(r[2] == list("ABCDE") for r in llm.requests)          # constrained to the option letters
    llm = FakeLLM()
    preds = list(system(llm, FakeCaptioner(), mcqa="likelihood", reduction="sum").predict(samples))
    for p, x in zip(preds, samples):                                  # FakeLLM: shorter option = likelier
        shortest = [i for i, o in enumerate(x.options) if len(o) == min(map(len, x.options))]
        assert p.choice == (shortest[0] if len(shortest) == 1 else None)   # a tie is never broken by position
        assert len(p.extra["option_logprob_mean"]) == len(x.options)
    assert any(p.choice is None for p in preds) and any(p.choice is not None for p in preds)
    assert all(r[0] == "score" and "Question:" in r[1] and "[0s-16s]" in r[1] for r in llm.requests)
    llm = FakeLLM()
    preds = list(system(llm, FakeCaptioner(), mcqa="letter", mode="summarize_then_answer").predict(samples))
    summaries = [r for r in llm.requests if r[2] is None]
    assert len(summaries) == len(samples) and all("summary: " in p.extra["summary"] for p in preds)
    assert all("Here is a summary" in r[1] for r in llm.requests if r[2])
    assert preds[0].provenance["prompts"]["summary_letter"]["prompt"] == "mcqa_from_summary_letter.v1"


def test_blind_llm_sees_no_captions(data):
    _, qa = data
    llm = FakeLLM()
    b = BlindLLM(llm)
    b.prepare()
    preds = list(b.predict(qa.load()))
    assert all(p.failure is None and p.extra["captions"] == [] for p in preds)
    assert not b.needs_video
    assert all("caption" not in r[1].lower() and "Question:" in r[1] for r in llm.requests)
    assert b.tasks == {MCQA}


def test_unreadable_video_and_failed_request_are_per_item(data, tmp_path):
    summ, _ = data
    samples = summ.load()
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    import dataclasses

    items = [dataclasses.replace(samples[0], video=str(bad)), samples[1]]
    preds = {p.uid: p for p in system(FakeLLM(), FakeCaptioner()).predict(items)}
    assert "cannot read video" in preds[items[0].uid].failure and preds[items[1].uid].text
    # one request fails: the batch raises LLMError naming it; the answers already received are cached
    cache = str(tmp_path / "llm.sqlite")
    first = samples[0].segments[0].sentence
    llm = FakeLLM(fail_on=first, cache=cache)
    s = system(llm, captions="oracle")
    with pytest.raises(LLMError, match="1 of 3 chat requests failed"):
        list(s.predict(samples))
    healthy = FakeLLM(cache=cache)
    agg._SHARED.clear()
    preds = list(system(healthy, captions="oracle").predict(samples))
    assert len(healthy.requests) == 1 and all(p.text for p in preds)    # only the failed one is asked again


def test_configs_switch_captioner_and_llm(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from evals import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("compare", overrides=[f"paths.root={tmp_path}", "+system@systems.agg=llm_aggregator",
                                            "+system@systems.blind=blind_llm", "llm.dtype=float32",
                                            "captioner.checkpoint=/nowhere"])
    s = instantiate(cfg.systems.agg, name="agg")
    assert isinstance(s, LLMAggregator) and s._llm_cfg["_target_"] == "baselines.llm.hf.HFChat"
    assert s._captioner_cfg["checkpoint"] == "/nowhere" and s.sampling.fps == cfg.video.fps
    assert isinstance(instantiate(cfg.systems.blind, name="blind"), BlindLLM)
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_a_video_shorter_than_annotated_is_captioned_to_its_end_and_says_so(tmp_path):
    """Annotated 40 s, the file lasts 20 s: the video-first rows see 20 s, so do the captions (0-16, 16-20), and the
    prediction records the cut instead of failing the item (which would count against one side only)."""
    from tests.helpers import make_video

    video = make_video(tmp_path / "short.mp4", n_frames=20, fps=1)
    item = Sample(uid="u", benchmark="b", task=SUMMARIZATION, video=video, video_id="short", duration=40.0,
                  references=("x",))
    (p,) = system(FakeLLM(), FakeCaptioner()).predict([item])
    assert p.failure is None
    assert [(a, b) for a, b, _ in p.extra["captions"]] == [(0.0, 16.0), (16.0, 20.0)]
    assert p.extra["segments_cut"] == {"annotated_duration": 40.0, "video_duration": 20.0, "segments": 3,
                                       "segments_kept": 2}


def test_an_empty_caption_fails_its_item_and_is_never_cached(data, tmp_path):
    summ, _ = data
    samples = summ.load()[:2]
    cache = str(tmp_path / "captions.sqlite")
    preds = {p.uid: p for p in system(FakeLLM(), FakeCaptioner(silent_from=16.0), caption_cache=cache).predict(samples)}
    assert all("the captioner returned an empty caption for 16.0-" in p.failure for p in preds.values())
    agg._SHARED.clear()
    cap = FakeCaptioner()
    preds = list(system(FakeLLM(), cap, caption_cache=cache).predict(samples))
    assert all(p.failure is None for p in preds)
    n_segments = sum(len(uniform_segments(s.duration)) for s in samples)
    assert cap.calls == n_segments - len(samples)      # the first segments were cached; the empty ones were not


def test_prepare_checks_what_the_llm_can_do_for_the_task(data):
    from evals.contracts import ConfigError

    summ, qa = data
    chat_only = FakeLLM(capabilities=["chat"])
    s = LLMAggregator(chat_only, captions="oracle", mcqa="likelihood", name="row")
    s.prepare(None, summ.load())                          # summaries only need chat
    with pytest.raises(ConfigError, match=r"cannot \['score'\].*needs; use a backend that declares it"):
        s.prepare(None, qa.load())                        # and letters would not do either: no advice to switch
    agg._SHARED.clear()
    letters = LLMAggregator(FakeLLM(capabilities=["chat", "choice"]), captions="oracle", mcqa="likelihood", name="row")
    with pytest.raises(ConfigError, match=r"cannot \['score'\].*set systems.row.mcqa=letter or use"):
        letters.prepare(None, qa.load())
    with pytest.raises(ConfigError, match=r"cannot \['choice'\]"):
        LLMAggregator(chat_only, captions="oracle", mcqa="letter").prepare(None, qa.load())
    assert not s.needs_video and LLMAggregator(chat_only, FakeCaptioner()).needs_video


def test_a_cache_that_breaks_mid_run_stops_it_naming_the_file(tmp_path):
    """Cache I/O is infrastructure: not one failed item per request, but one stop (a rerun resumes)."""
    import sqlite3

    from baselines.cache import CacheError, DiskCache
    from evals.contracts import InfrastructureError, Sample
    from evals.runner import predict_all
    from evals.store import PredictionStore

    class Broken:
        def execute(self, *a):
            raise sqlite3.OperationalError("disk I/O error")

    llm = FakeLLM(cache=str(tmp_path / "llm.sqlite"))
    llm.cache._db = Broken()
    with pytest.raises(CacheError, match=r"llm.sqlite: cannot read it \(disk I/O error\)"):
        llm.chat([[{"role": "user", "content": "hi"}]])
    assert issubclass(CacheError, InfrastructureError)
    items = [Sample(uid=f"q{i}", benchmark="b", task=MCQA, video=None, question="q", options=("a", "b")) for i in range(3)]
    store = PredictionStore(tmp_path / "out", "h")
    with pytest.raises(CacheError):
        predict_all(BlindLLM(llm), items, store, 2, {}, {}, progress=False)
    assert store.predictions == {}                       # nothing recorded as an item failure
    (tmp_path / "bad.sqlite").write_bytes(b"\x00garbage" * 64)
    with pytest.raises(CacheError, match="bad.sqlite: cannot open it .*not an SQLite cache"):
        DiskCache(tmp_path / "bad.sqlite")


def test_segment_captions_carry_the_subtitles_said_during_them(data, tmp_path):
    """subtitles=true: each caption line gets the subtitle lines overlapping its segment (a new prompt version);
    items without a subtitle file get none; the row's identity says so; a benchmark without any file is refused."""
    from dataclasses import replace

    from evals.contracts import ConfigError

    summ, _ = data
    samples = summ.load()[:2]
    srt = tmp_path / "a.srt"
    srt.write_text("1\n00:00:02,000 --> 00:00:05,500\nHello there.\n\n2\n00:00:15,000 --> 00:00:18,000\n"
                   "<i>Look</i> at the\nsquare!\n\n3\n00:00:40,000 --> 00:00:41,000\nlate line\n")
    items = [replace(samples[0], meta={"subtitles": str(srt)}), replace(samples[1], meta={"subtitles": None})]
    llm = FakeLLM()
    s = LLMAggregator(llm, FakeCaptioner(), window=16.0, subtitles=True)
    s.prepare(summ, items)
    with_subs, without = list(s.predict(items))
    caps = with_subs.extra["captions"]
    assert caps[0][3] == "Hello there. <i>Look</i> at the square!"     # 0-16 s: both lines touch it
    assert caps[1][3] == "<i>Look</i> at the square!"                 # 16-32 s: the line that spans 15-18 s
    assert all(c[3] == "" for c in without.extra["captions"])
    prompt = llm.requests[0][1]
    assert '[0s-16s] ' in prompt and '| said: "Hello there. <i>Look</i> at the square!"' in prompt
    assert with_subs.provenance["prompts"]["summary"]["prompt"] == "summarize_subtitles.v1"
    assert s.identity()["subtitles"] is True and "subtitles" not in system(FakeLLM(), FakeCaptioner()).identity()
    with pytest.raises(ConfigError, match="no item of .* has a subtitle file: set the benchmark's subtitle_root"):
        LLMAggregator(FakeLLM(), FakeCaptioner(), subtitles=True).prepare(summ, samples)
    with pytest.raises(ValueError, match="subtitles go beside segment captions"):
        LLMAggregator(FakeLLM(), captions="none", subtitles=True)


def test_subtitle_files_srt_and_longvideobench_json(tmp_path):
    from evals.benchmarks.base import AnnotationError
    from evals.subtitles import Line, as_text, at_times, overlapping, read_subtitles

    srt = tmp_path / "v.srt"
    srt.write_bytes("\ufeff1\r\n00:00:01,500 --> 00:00:03,000\r\nfirst\r\n\r\n2\r\n00:01:00.250 --> 00:01:02,000\r\n"
                    "second\r\nline\r\n".encode())
    assert read_subtitles(srt) == [Line(1.5, 3.0, "first"), Line(60.25, 62.0, "second line")]
    js = tmp_path / "v_en.json"
    js.write_text(json.dumps([{"timestamp": [10.0, 12.5], "text": "a  b"}, {"timestamp": [20.0, None], "text": "c"},
                              {"start": "00:00:30.50", "end": "00:00:31.00", "line": "d"}]))
    lines = read_subtitles(js, offset=10.0)                          # the subtitle clock starts 10 s in
    assert lines == [Line(0.0, 2.5, "a b"), Line(10.0, float("inf"), "c"), Line(20.5, 21.0, "d")]
    assert at_times(lines, [1.0, 5.0]) == [lines[0]] and at_times(lines, [20.7]) == lines[1:]
    assert overlapping(lines, 3.0, 9.0) == [] and overlapping(lines, 2.0, 10.0) == lines[:2]
    assert as_text([Line(0, 1, "x"), Line(1, 2, "x"), Line(2, 3, "y")]) == "x y"
    srt.write_text("1\n00:00:01 --> later\nx\n")
    with pytest.raises(AnnotationError, match="v.srt: line 2: time 'later' is not HH:MM:SS"):
        read_subtitles(srt)


def test_a_frame_budget_gives_each_segment_its_share_of_the_same_frames(tmp_path):
    """video.fps=null: N frames over the whole video (what every row reads); a segment gets those inside it, one
    between two sampled frames the nearest to its middle."""
    import numpy as np

    from baselines.segments import read_clips
    from longvid.data.video import VideoSampling, read_frames
    from tests.helpers import make_video

    video = make_video(tmp_path / "v.mp4", n_frames=20, fps=1)
    budget = VideoSampling(fps=None, max_frames=4)
    whole = read_frames(video, budget)
    assert np.allclose(whole.timestamps, [2, 7, 12, 17])              # bin centres 2.5, 7.5, ... -> frame starts
    clips = read_clips(video, [Segment(0, 8), Segment(8, 10), Segment(10, 20)], budget)
    assert [len(c.frames) for c in clips] == [2, 1, 2]
    assert np.array_equal(clips[1].frames[0], whole.array[1])         # 9 s: nearest is the frame at 7 s
    assert np.array_equal(np.concatenate([clips[0].frames, clips[2].frames]), whole.array)
    assert len(read_clips(video, [Segment(0, 8)], VideoSampling(fps=1.0))[0].frames) == 8   # fps: per segment
    with pytest.raises(ValueError, match="video.fps=null .* needs video.max_frames"):
        VideoSampling(fps=None, max_frames=None)
