import json

import numpy as np
import pytest

from evals.benchmarks.dense import YouCook2
from evals.benchmarks.mcqa import EgoSchema
from evals.synthetic import (ACTIONS, COLOURS, SyntheticBenchmark, SyntheticConfig, generate,
                             local_questions, make_story)

TINY = dict(n_train=6, n_val=2, n_test=4, min_duration=16, max_duration=40)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    return generate(SyntheticConfig(**TINY), root, workers=1, progress=False)


def test_deterministic(tmp_path, data):
    again = generate(SyntheticConfig(**TINY), tmp_path, workers=2, progress=False)
    for rel in ("youcook2/youcookii_annotations_trainval.json", "egoschema/test/questions.json",
                "egoschema/test/subset_answers.json", "pretrain/train/clips.jsonl"):
        assert (again / rel).read_text() == (data / rel).read_text()
    vid = sorted((data / "videos").glob("*.mp4"))[0]
    assert (again / "videos" / vid.name).read_bytes() == vid.read_bytes()
    other = generate(SyntheticConfig(**{**TINY, "seed": 1}), tmp_path, workers=1, progress=False)
    assert other != again


def test_official_format_loaders_read_it(data):
    summ = YouCook2(data / "youcook2/youcookii_annotations_trainval.json", data / "videos",
                    split="testing").load()
    assert len(summ) == 4 and all(s.video.endswith(".mp4") for s in summ)
    for s in summ:
        assert 16 <= s.duration <= 40 and s.segments[-1].end == s.duration
        assert all(a.end == b.start for a, b in zip(s.segments, s.segments[1:]))  # events tile the video
    qa = EgoSchema(data / "egoschema/test/questions.json", data / "egoschema/test/subset_answers.json",
                   data / "videos", categories=data / "egoschema/test/kinds.json", video_field="video_id").load()
    assert {s.category for s in qa} == {"local", "long-range"}
    assert all(len(s.options) == 5 and len(set(s.options)) == 5 and s.answer is not None for s in qa)


def test_videos_decode_with_one_frame_per_second(data):
    from longvid.data.video import probe

    db = json.loads((data / "youcook2/youcookii_annotations_trainval.json").read_text())["database"]
    vid, item = next(iter(db.items()))
    assert probe(str(data / "videos" / f"{vid}.mp4")) == (item["duration"], int(item["duration"]))


def test_pretraining_pairs(data):
    for split in ("train", "val", "test"):
        clips = [json.loads(l) for l in (data / "pretrain" / split / "clips.jsonl").read_text().splitlines()]
        frames = [json.loads(l) for l in (data / "pretrain" / split / "frames.jsonl").read_text().splitlines()]
        videos = [json.loads(l) for l in (data / "pretrain" / split / "videos.jsonl").read_text().splitlines()]
        assert clips and len(frames) == len(clips) and len(videos) == TINY[f"n_{split}"]
        assert all((data / "pretrain" / split / c["video"]).exists() and c["end"] > c["start"] for c in clips)
        assert all(c["start"] <= f["time"] < c["end"] for c, f in zip(clips, frames))


def test_local_question_answer_matches_story():
    rng = np.random.default_rng(0)
    for _ in range(50):
        events = make_story(rng, SyntheticConfig())
        for q, ans, pool in local_questions(rng, events):
            if q.startswith("What colour"):
                shape = q.split("the ")[1].split(" that")[0]
                assert any(e.shape == shape and e.colour == ans for e in events)
                assert ans in COLOURS
            else:
                obj = q[len("What did the "):-len(" do?")]
                assert sum(e.obj == obj for e in events) == 1


def test_long_range_answers_are_known(data):
    db = json.loads((data / "youcook2/youcookii_annotations_trainval.json").read_text())["database"]
    qs = json.loads((data / "egoschema/test/questions.json").read_text())
    ans = json.loads((data / "egoschema/test/subset_answers.json").read_text())
    for q in qs:
        sents = [a["sentence"] for a in db[q["video_id"]]["annotations"]]
        gold = q[f"option {ans[q['q_uid']]}"]
        if q["question"].startswith("How many times did an object spin"):
            assert int(gold) == sum(s.endswith(" spins") for s in sents)


def test_benchmark_class_generates_on_first_use(tmp_path):
    b = SyntheticBenchmark(str(tmp_path), task="mcqa", split="val", generator=TINY, workers=1)
    items = b.load()
    assert items and all(s.benchmark == "synthetic_mcqa" for s in items)
    paras = SyntheticBenchmark(str(tmp_path), task="summarization", generator=TINY).train_paragraphs()
    assert len(paras) == TINY["n_train"] and all(s.endswith(".") for p in paras for s in p)
    with pytest.raises(ValueError, match="split"):
        SyntheticBenchmark(str(tmp_path), task="mcqa", split="dev")


def test_config_validation():
    with pytest.raises(ValueError):
        SyntheticConfig(canvas=63)
    with pytest.raises(ValueError):
        SyntheticConfig(min_duration=2)
    assert len(ACTIONS) == 10
