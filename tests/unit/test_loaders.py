"""The benchmark loaders, against small fixtures in the official annotation formats (tests/data/annotations).

Bad-input files are written into pytest's tmp_path, never into tests/data.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from evals.benchmarks.base import AnnotationError, AnnotationWarning, VideoResolver
from evals.benchmarks.dense import ActivityNetCaptions, YouCook2, join_sentences
from evals.benchmarks.mcqa import EgoSchema, NExTQA, PerceptionTestMC
from evals.benchmarks.other import MSRVTT, JsonlBenchmark, MSRVTTCsv
from evals.contracts import CAPTIONING, MCQA, RETRIEVAL, SUMMARIZATION, Segment

DATA = Path(__file__).resolve().parent.parent / "data" / "annotations"
YC2 = DATA / "youcook2" / "youcookii_annotations_trainval.json"
ANET_VAL = DATA / "activitynet" / "val_1.json"
ANET_TRAIN = DATA / "activitynet" / "train.json"
EGO_Q = DATA / "egoschema" / "questions.json"
EGO_A = DATA / "egoschema" / "subset_answers.json"
NEXTQA = DATA / "nextqa" / "val.csv"
NEXTQA_MAP = DATA / "nextqa" / "map_vid_vidorID.json"
MSRVTT_CSV = DATA / "msrvtt" / "MSRVTT_JSFUSION_test.csv"
PT_MC = DATA / "perception_test" / "mc.json"
MSRVTT_JSON = DATA / "msrvtt" / "MSRVTT_data.json"
JSONL = DATA / "jsonl" / "items.jsonl"

NEXTQA_HEADER = "video,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4\n"


def _uids(samples):
    return [s.uid for s in samples]


def _write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj, indent=2), encoding="utf-8")
    return path


def _ego_question(uid: str, **over) -> dict:
    q = {"q_uid": uid, "google_drive_id": "1" + uid.replace("-", "")[:20],
         "question": "What is c doing?", **{f"option {k}": f"option text {k}" for k in range(5)}}
    q.update(over)
    return q


# --------------------------------------------------------------------------------------------- YouCook2


def test_youcook2_summarization_validation():
    samples = YouCook2(str(YC2)).load()
    assert _uids(samples) == ["xHr8X2Wpmno", "V53XmPeyjIU", "GmWb7W7m2vs"]
    s = samples[0]
    assert s.benchmark == "youcook2" and s.task == SUMMARIZATION
    assert s.video_id == "xHr8X2Wpmno" and s.video is None  # no video root
    assert s.duration == pytest.approx(187.5)
    assert s.meta == {"recipe_type": "113"}
    # stored out of time order in the file -> sorted by start time
    assert [(g.start, g.end) for g in s.segments] == [(12.0, 25.0), (40.0, 58.0), (112.0, 130.0)]
    assert all(isinstance(g, Segment) for g in s.segments)
    # start-time order, single spaces, nothing added (the file's own period on "slices." is kept, no others)
    assert s.references == (
        "butter the slices of bread put cheese and ham between the slices. "
        "place the sandwich in a hot pan and toast both sides",)
    assert s.references == (join_sentences([g.sentence for g in s.segments]),)
    # whitespace runs inside a sentence are collapsed by join_sentences
    assert samples[1].references == (join_sentences([
        "slice the salmon into thin strips", "spread the rice  evenly on the nori sheet",
        "place salmon and cucumber on the rice", "roll the sushi using a bamboo mat"]),)
    assert "rice evenly" in samples[1].references[0]
    assert samples[1].meta == {"recipe_type": "310"}


def test_youcook2_reference_keeps_tied_starts_in_file_order_and_adds_nothing():
    s = YouCook2(str(YC2)).load()[2]          # official quirks: two segments start at 20 s, a leading space
    assert s.references == ("melt butter in a pan add 1 tbls flour and whisk etc pour in the milk and stir",)
    assert [g.sentence for g in s.segments][1] == " add 1 tbls flour and whisk etc"   # segments keep the raw text


def test_join_sentences_adds_nothing():
    assert join_sentences(["mix salt pepper etc", " add oil", "\nA second  step."]) == \
        "mix salt pepper etc add oil A second step."
    assert join_sentences(["", "  ", "one"]) == "one"


def test_youcook2_training_split():
    samples = YouCook2(str(YC2), split="training").load()
    assert _uids(samples) == ["GLd3aX16zBg", "cRDNC0mOB2A"]
    assert len(samples[0].segments) == 5
    assert samples[0].references[0].startswith("spread margarine on two slices of white bread place a slice")


def test_youcook2_captioning():
    samples = YouCook2(str(YC2), task=CAPTIONING).load()
    assert len(samples) == 3 + 4 + 3
    # uid = <video>/<index of the annotation in the file> (the file lists this video's steps out of order)
    assert _uids(samples)[:3] == ["xHr8X2Wpmno/0", "xHr8X2Wpmno/1", "xHr8X2Wpmno/2"]
    assert _uids(samples)[3:7] == [f"V53XmPeyjIU/{i}" for i in range(4)]
    first = samples[1]
    assert first.task == CAPTIONING
    assert first.clip == Segment(12.0, 25.0, "butter the slices of bread")
    assert first.references == ("butter the slices of bread",)
    assert samples[0].clip.start == 112.0
    assert samples[0].references == ("place the sandwich in a hot pan and toast both sides",)
    assert all(s.segments == first.segments for s in samples[:3])
    assert [g.start for g in first.segments] == [12.0, 40.0, 112.0]


def test_youcook2_limit():
    assert len(YouCook2(str(YC2), task=CAPTIONING, limit=4).load()) == 4
    assert _uids(YouCook2(str(YC2), limit=1).load()) == ["xHr8X2Wpmno"]


def test_youcook2_train_paragraphs():
    paras = YouCook2(str(YC2)).train_paragraphs()
    assert paras == [
        ["spread margarine on two slices of white bread", "place a slice of cheese on the bread",
         "place the bread slices on top of each other and place in a hot pan",
         "flip the sandwich over and press down", "cut the sandwich in half diagonally"],
        ["chop the onion and the garlic", "fry the onion and garlic in a pot with oil",
         "add the minced beef and stir until browned"],
    ]
    # no validation text leaks into the training references
    assert not any("butter the slices" in " ".join(p) for p in paras)
    assert YouCook2(str(YC2), split="training").train_paragraphs() == []


def test_youcook2_bad_task_and_empty_split():
    with pytest.raises(ValueError, match="summarization or captioning"):
        YouCook2(str(YC2), task=MCQA)
    with pytest.raises(AnnotationError, match="no videos in this split"):
        YouCook2(str(YC2), split="testing").load()


def test_youcook2_video_patterns_with_subset_and_recipe(tmp_path):
    root = tmp_path.resolve()
    (root / "validation" / "113").mkdir(parents=True)
    (root / "validation" / "113" / "xHr8X2Wpmno.webm").touch()
    patterns = ("{subset}/{recipe_type}/{id}.mp4", "{subset}/{recipe_type}/{id}.webm")
    samples = YouCook2(str(YC2), video_root=str(root), video_patterns=patterns).load()
    assert samples[0].video == str(root / "validation" / "113" / "xHr8X2Wpmno.webm")
    assert samples[1].video == str(root / "validation" / "310" / "V53XmPeyjIU.mp4")  # missing: first candidate


# ------------------------------------------------------------------------------------ ActivityNet Captions


def test_activitynet_summarization():
    samples = ActivityNetCaptions(str(ANET_VAL)).load()
    assert _uids(samples) == ["v_uqiMw7tQ1Cc", "v_bXdq2zI1Ms0", "v_FsS_NCZEfaI", "v_D0pVkTEYQg8"]
    s = samples[1]
    assert s.benchmark == "activitynet" and s.task == SUMMARIZATION
    assert s.duration == pytest.approx(73.1)
    # segments in time order (what a segment captioner reads), sentences as in the file
    assert [(g.start, g.end) for g in s.segments] == [(0.0, 29.96), (30.7, 36.18), (33.99, 73.1)]
    assert [g.sentence.strip() for g in s.segments] == [
        "A man is seen standing in a parking lot holding a set of bagpipes.",
        "He puts the mouthpiece to his lips.",
        "The man then plays the bagpipes while walking down the street."]
    # the reference: the annotation file's order (ActivityNet-Entities' paragraphs), single spaces, nothing added
    assert s.references == ("The man then plays the bagpipes while walking down the street. "
                            "A man is seen standing in a parking lot holding a set of bagpipes. "
                            "He puts the mouthpiece to his lips.",)
    # a real val_1 video whose file order is not its time order (one of 293)
    assert samples[3].references == ("A guy exercises on a stationary bike. The guy has his hand on the handles. "
                                     "The guy lets go of the handles.",)
    assert [g.start for g in samples[3].segments] == [4.17, 4.39, 14.34]


def test_activitynet_captioning():
    samples = ActivityNetCaptions(str(ANET_VAL), task=CAPTIONING).load()
    assert len(samples) == 2 + 3 + 3 + 3
    assert samples[0].uid == "v_uqiMw7tQ1Cc/0"
    by_uid = {s.uid: s for s in samples}    # uid index = the event's index in the file
    assert by_uid["v_bXdq2zI1Ms0/1"].clip.start == 0.0
    assert by_uid["v_bXdq2zI1Ms0/0"].references == (
        "The man then plays the bagpipes while walking down the street.",)
    assert by_uid["v_uqiMw7tQ1Cc/1"].references == (
        "The coach helps the guy in red with the proper body placement and lifting technique.",)


def test_activitynet_train_paragraphs():
    assert ActivityNetCaptions(str(ANET_VAL)).train_paragraphs() == []
    with pytest.warns(AnnotationWarning):
        paras = ActivityNetCaptions(str(ANET_VAL), train_annotations=str(ANET_TRAIN)).train_paragraphs()
    assert len(paras) == 5
    assert join_sentences(paras[1]) == ("They then jump over the hurdles one after another. "
                                        "Several men are seen lined up on a track.")   # file order


def test_activitynet_train_noise_is_repaired_and_reported_once():
    """The official train.json: 2 events end before they start, 2 have zero length, one sentence starts with
    a newline. Never rejected: swapped, kept, one warning per kind naming the count and the ids."""
    with pytest.warns(AnnotationWarning) as rec:
        samples = ActivityNetCaptions(str(ANET_TRAIN)).load()
    msgs = [str(w.message) for w in rec]
    assert len(msgs) == 2
    assert "2 events end before they start (v_0bosp4-pyTM[3], v_rhOtqArO-3Y[1]): start and end swapped" in msgs[0]
    assert "train.json" in msgs[0]
    assert "1 events have zero length (v_N7ppHQNikv8[2]): kept in summaries" in msgs[1]
    by = {s.uid: s for s in samples}
    assert (60.71, 61.29) in [(g.start, g.end) for g in by["v_0bosp4-pyTM"].segments]
    assert (150.31, 173.44) in [(g.start, g.end) for g in by["v_rhOtqArO-3Y"].segments]
    assert "She trims the fur around its paws. She finishes" in by["v_0bosp4-pyTM"].references[0]
    assert by["v_N7ppHQNikv8"].references == ("A man is kneeling on a roof. He nails down shingles. "
                                             "A second man hands him more shingles. They finish the row.",)


def test_activitynet_zero_length_events_as_clips():
    with pytest.warns(AnnotationWarning, match="widened to 2 s"):
        samples = ActivityNetCaptions(str(ANET_TRAIN), task=CAPTIONING, min_clip=2.0).load()
    by = {s.uid: s for s in samples}
    zero = by["v_N7ppHQNikv8/2"]             # [34.77, 34.77] in the file
    assert (zero.clip.start, zero.clip.end) == pytest.approx((33.77, 35.77))
    assert zero.references == ("A second man hands him more shingles.",)
    assert by["v_0bosp4-pyTM/3"].clip == Segment(60.71, 61.29, " She trims the fur around its paws.")


def test_activitynet_videos_with_or_without_the_v_prefix(tmp_path):
    (tmp_path / "uqiMw7tQ1Cc.mp4").touch()              # named by the bare YouTube id
    (tmp_path / "v_FsS_NCZEfaI.mkv").touch()            # named as in the annotations
    by = {s.uid: s.video for s in ActivityNetCaptions(str(ANET_VAL), video_root=str(tmp_path)).load()}
    assert by["v_uqiMw7tQ1Cc"] == str(tmp_path / "uqiMw7tQ1Cc.mp4")
    assert by["v_FsS_NCZEfaI"] == str(tmp_path / "v_FsS_NCZEfaI.mkv")
    assert by["v_bXdq2zI1Ms0"] == str(tmp_path / "v_bXdq2zI1Ms0.mp4")     # missing: the first candidate


def test_activitynet_bad_task():
    with pytest.raises(ValueError, match="summarization or captioning"):
        ActivityNetCaptions(str(ANET_VAL), task=RETRIEVAL)


# ------------------------------------------------------------------------------------------- EgoSchema


def test_egoschema_with_hidden_answers():
    samples = EgoSchema(str(EGO_Q), str(EGO_A)).load()
    assert len(samples) == 5  # unanswered questions are still loaded
    answers = {s.uid: s.answer for s in samples}
    assert answers == {
        "001934bb-81bd-4cd8-a574-0472ef3f6678": 1,
        "00b9a0de-c59e-49cb-a127-6081e2fb8c8e": None,
        "0102c3d9-4b21-4d57-8e70-2b6c0f1a7b33": 1,
        "01d4c5e0-3f6a-4c87-9d1b-8e2a7f4b6c90": None,
        "02a7f1e3-6b8c-4d9e-a0f1-2b3c4d5e6f70": 0,
    }
    s = samples[0]
    assert s.benchmark == "egoschema" and s.task == MCQA
    assert s.video_id == s.uid  # official videos are named by q_uid
    assert s.question == "What is the overarching goal of c's actions throughout the video?"
    assert len(s.options) == 5
    assert s.options[1] == "C is preparing ingredients for a stir fry."
    assert s.category is None


def test_egoschema_texts_are_stripped(tmp_path):
    q = _ego_question("aaaa-1111", question="  What is c doing? ", **{"option 2": " c cooks.\n"})
    s = EgoSchema(str(_write_json(tmp_path / "questions.json", [q]))).load()[0]
    assert s.question == "What is c doing?" and s.options[2] == "c cooks."


def test_egoschema_only_answered():
    samples = EgoSchema(str(EGO_Q), str(EGO_A), only_answered=True).load()
    assert _uids(samples) == ["001934bb-81bd-4cd8-a574-0472ef3f6678", "0102c3d9-4b21-4d57-8e70-2b6c0f1a7b33",
                              "02a7f1e3-6b8c-4d9e-a0f1-2b3c4d5e6f70"]
    assert all(s.answer is not None for s in samples)


def test_egoschema_without_answers_file():
    samples = EgoSchema(str(EGO_Q)).load()
    assert len(samples) == 5 and all(s.answer is None for s in samples)


def test_egoschema_categories_and_video_field(tmp_path):
    cats = _write_json(tmp_path / "cats.json", {"001934bb-81bd-4cd8-a574-0472ef3f6678": "long-range"})
    samples = EgoSchema(str(EGO_Q), str(EGO_A), categories=str(cats), video_field="google_drive_id").load()
    assert samples[0].category == "long-range"
    assert samples[1].category is None
    assert samples[0].video_id == "1y2ZnBX5NEn4f3jSIG3HcfGaJaRDgzQvb"


def test_egoschema_limit():
    assert len(EgoSchema(str(EGO_Q), str(EGO_A), limit=2).load()) == 2


def test_egoschema_answer_out_of_range(tmp_path):
    answers = _write_json(tmp_path / "subset_answers.json", {"0102c3d9-4b21-4d57-8e70-2b6c0f1a7b33": 5})
    with pytest.raises(AnnotationError) as e:
        EgoSchema(str(EGO_Q), str(answers)).load()
    msg = str(e.value)
    assert "subset_answers.json" in msg and "0102c3d9-4b21-4d57-8e70-2b6c0f1a7b33" in msg
    assert "out of range" in msg
    assert e.value.file == str(answers)


@pytest.mark.parametrize("bad", [-1, "x", 1.5, True, None])
def test_egoschema_answer_not_an_index(tmp_path, bad):
    answers = _write_json(tmp_path / "subset_answers.json", {"0102c3d9-4b21-4d57-8e70-2b6c0f1a7b33": bad})
    with pytest.raises(AnnotationError, match="0102c3d9"):
        EgoSchema(str(EGO_Q), str(answers)).load()


def test_egoschema_answer_for_unknown_question(tmp_path):
    answers = _write_json(tmp_path / "subset_answers.json", {"not-a-question": 2})
    with pytest.raises(AnnotationError, match="not-a-question"):
        EgoSchema(str(EGO_Q), str(answers)).load()


def test_egoschema_missing_option(tmp_path):
    q = _ego_question("aaaa-1111")
    del q["option 3"]
    f = _write_json(tmp_path / "questions.json", [_ego_question("bbbb-2222"), q])
    with pytest.raises(AnnotationError) as e:
        EgoSchema(str(f)).load()
    msg = str(e.value)
    assert "questions.json" in msg and "aaaa-1111" in msg and "option 3" in msg


def test_egoschema_duplicate_uid(tmp_path):
    f = _write_json(tmp_path / "questions.json", [_ego_question("dup-1"), _ego_question("ok-2"),
                                                  _ego_question("dup-1")])
    with pytest.raises(AnnotationError) as e:
        EgoSchema(str(f)).load()
    assert "questions.json" in str(e.value) and "dup-1" in str(e.value) and "duplicate" in str(e.value)


def test_egoschema_not_a_list(tmp_path):
    f = _write_json(tmp_path / "questions.json", {"q_uid": "x"})
    with pytest.raises(AnnotationError, match="list"):
        EgoSchema(str(f)).load()


# --------------------------------------------------------------------------------------------- NExT-QA


def test_nextqa():
    with pytest.warns(AnnotationWarning, match=r"1 questions list the same option text twice \(5256928210_7\)"):
        samples = NExTQA(str(NEXTQA)).load()
    assert _uids(samples) == ["4010069381_6", "4010069381_9", "5333075105_2", "5333075105_4", "7771650716_0",
                              "4263096481_6", "5256928210_7", "4010069381_11"]     # one video's rows apart
    assert [s.answer for s in samples] == [1, 3, 0, 4, 2, 1, 1, 2]
    assert [s.groups["type"] for s in samples] == [(t,) for t in ["CH", "CW", "TN", "TP", "DL", "TC", "TC", "TN"]]
    assert [s.category for s in samples] == ["causal", "causal", "temporal", "temporal", "descriptive", "temporal",
                                             "temporal", "temporal"]        # the groups papers report
    assert samples[5].options[0] == "oven"                     # " oven" in the file
    assert samples[6].question == "what does the man wear on his head"      # trailing space in the file
    assert samples[6].options == ("scarf", "cap", "turban", "spectacles", "scarf")   # kept as they are
    s = samples[0]
    assert s.benchmark == "nextqa" and s.task == MCQA and s.video_id == "4010069381"
    assert s.question == "how do the two man play the instrument"
    assert s.options == ("roll the handle", "tap their feet", "strum the string", "hit with sticks", "pat with hand")
    assert samples[3].question == "what is the girl holding while walking, at the start"  # quoted CSV field
    assert samples[3].options[4] == "a red ball"


def test_nextqa_videos_in_the_official_map_folders(tmp_path):
    (tmp_path / "1006").mkdir()
    (tmp_path / "1006" / "4010069381.mp4").touch()
    with pytest.warns(AnnotationWarning):
        samples = NExTQA(str(NEXTQA), video_root=str(tmp_path), video_map=str(NEXTQA_MAP)).load()
    assert samples[0].video == str(tmp_path / "1006" / "4010069381.mp4") and samples[0].video_id == "4010069381"
    assert samples[2].video == str(tmp_path / "0023" / "5333075105.mp4")       # missing: reported by the runner
    short = tmp_path / "map.json"
    short.write_text('{"4010069381": "1006/4010069381"}')
    with pytest.raises(AnnotationError, match=r"map.json: video '5333075105': not in the map"):
        NExTQA(str(NEXTQA), video_root=str(tmp_path), video_map=str(short)).load()


def test_nextqa_limit():
    assert len(NExTQA(str(NEXTQA), limit=3).load()) == 3


def test_nextqa_answer_out_of_range(tmp_path):
    f = tmp_path / "val.csv"
    f.write_text(NEXTQA_HEADER
                 + "4010069381,1612,640,480,how do they play,1,6,CH,a,b,c,d,e\n"
                 + "4010069381,1612,640,480,why did he stand up,5,9,CW,a,b,c,d,e\n")
    with pytest.raises(AnnotationError) as e:
        NExTQA(str(f)).load()
    msg = str(e.value)
    assert "val.csv" in msg and "line 3" in msg and "out of range" in msg


def test_nextqa_answer_not_a_number(tmp_path):
    f = tmp_path / "val.csv"
    f.write_text(NEXTQA_HEADER + "4010069381,1612,640,480,how do they play,b,6,CH,a,b,c,d,e\n")
    with pytest.raises(AnnotationError, match="line 2"):
        NExTQA(str(f)).load()


def test_nextqa_missing_column(tmp_path):
    f = tmp_path / "val.csv"
    f.write_text("video,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3\n"
                 "4010069381,1612,640,480,how do they play,1,6,CH,a,b,c,d\n")
    with pytest.raises(AnnotationError) as e:
        NExTQA(str(f)).load()
    assert "val.csv" in str(e.value) and "a4" in str(e.value)


def test_nextqa_truncated_row(tmp_path):
    f = tmp_path / "val.csv"
    f.write_text(NEXTQA_HEADER
                 + "4010069381,1612,640,480,how do they play,1,6,CH,a,b,c,d,e\n"
                 + "5333075105,2258,640,360,what does the girl do,0,2,TN,a,b,c\n")
    with pytest.raises(AnnotationError) as e:
        NExTQA(str(f)).load()
    msg = str(e.value)
    assert "val.csv" in msg and "line 3" in msg and "a3" in msg and "a4" in msg


def test_nextqa_duplicate_uid(tmp_path):
    f = tmp_path / "val.csv"
    row = "4010069381,1612,640,480,how do they play,1,6,CH,a,b,c,d,e\n"
    f.write_text(NEXTQA_HEADER + row + row)
    with pytest.raises(AnnotationError) as e:
        NExTQA(str(f)).load()
    assert "val.csv" in str(e.value) and "4010069381_6" in str(e.value) and "duplicate" in str(e.value)


def test_nextqa_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        NExTQA(str(tmp_path / "nope.csv")).load()


# ---------------------------------------------------------------------------------------- Perception Test


def test_perception_test_mc():
    samples = PerceptionTestMC(str(PT_MC)).load()
    assert _uids(samples) == ["video_10909/0", "video_10909/1", "video_7318/0", "video_7318/1", "video_7318/2"]
    assert [s.answer for s in samples] == [2, 1, 0, 1, 1]
    assert [s.category for s in samples] == ["physics", "memory", "semantics", "abstraction", "memory"]
    s = samples[0]
    assert s.benchmark == "perception_test" and s.task == MCQA and s.video_id == "video_10909"
    assert s.question == "Is the camera moving or static?"
    assert s.options == ("I don't know", "moving", "static or shaking")
    assert all(len(x.options) == 3 for x in samples)


def test_perception_test_limit():
    assert _uids(PerceptionTestMC(str(PT_MC), limit=3).load()) == [
        "video_10909/0", "video_10909/1", "video_7318/0"]


def _pt_item(vid, questions):
    return {"metadata": {"video_id": vid, "split": "test"}, "mc_question": questions}


def _pt_question(qid, **over):
    q = {"id": qid, "question": "What happens?", "options": ["a", "b", "c"], "answer_id": 0,
         "area": "memory", "reasoning": "descriptive", "tag": []}
    q.update(over)
    return q


def test_perception_test_held_out_answers(tmp_path):
    q = _pt_question(0)
    del q["answer_id"]
    f = _write_json(tmp_path / "mc.json", {"video_1": _pt_item("video_1", [q])})
    (s,) = PerceptionTestMC(str(f)).load()
    assert s.answer is None and s.uid == "video_1/0"


def test_perception_test_answer_out_of_range(tmp_path):
    f = _write_json(tmp_path / "mc.json", {"video_1": _pt_item("video_1", [_pt_question(0),
                                                                          _pt_question(1, answer_id=3)])})
    with pytest.raises(AnnotationError) as e:
        PerceptionTestMC(str(f)).load()
    msg = str(e.value)
    assert "mc.json" in msg and "video_1" in msg and "mc_question[1]" in msg and "out of range" in msg


def test_perception_test_missing_key(tmp_path):
    q = _pt_question(0)
    del q["options"]
    f = _write_json(tmp_path / "mc.json", {"video_1": _pt_item("video_1", [q])})
    with pytest.raises(AnnotationError) as e:
        PerceptionTestMC(str(f)).load()
    assert "mc.json" in str(e.value) and "video_1" in str(e.value) and "'options'" in str(e.value)


def test_perception_test_missing_video_id(tmp_path):
    f = _write_json(tmp_path / "mc.json", {"video_1": {"metadata": {}, "mc_question": [_pt_question(0)]}})
    with pytest.raises(AnnotationError, match="video_id"):
        PerceptionTestMC(str(f)).load()


def test_perception_test_duplicate_uid(tmp_path):
    f = _write_json(tmp_path / "mc.json", {"video_1": _pt_item("video_1", [_pt_question(0), _pt_question(0)])})
    with pytest.raises(AnnotationError) as e:
        PerceptionTestMC(str(f)).load()
    assert "mc.json" in str(e.value) and "video_1/0" in str(e.value) and "duplicate" in str(e.value)


# ---------------------------------------------------------------------------------------------- MSR-VTT


def test_msrvtt_retrieval():
    samples = MSRVTT(str(MSRVTT_JSON)).load()
    assert _uids(samples) == ["video9770", "video9771", "video9772"]
    s = samples[0]
    assert s.benchmark == "msrvtt" and s.task == RETRIEVAL and s.video_id == "video9770"
    # ordered by sen_id, not by position in the file; stripped
    assert s.references == ("a person is playing guitar", "a man plays a guitar on stage",
                            "someone performs a song with a guitar")
    assert s.duration == pytest.approx(52.25 - 40.0)
    assert samples[1].references == ("a cartoon dog runs through a field", "an animated dog is running")


def test_msrvtt_first_caption_only():
    samples = MSRVTT(str(MSRVTT_JSON), first_caption_only=True).load()
    assert [s.references for s in samples] == [("a person is playing guitar",),
                                               ("a cartoon dog runs through a field",),
                                               ("a chef slices vegetables",)]


def test_msrvtt_captioning_train_split():
    samples = MSRVTT(str(MSRVTT_JSON), split="train", task=CAPTIONING).load()
    assert _uids(samples) == ["video0", "video1"]
    assert all(s.task == CAPTIONING for s in samples)
    assert samples[0].references == ("a car is shown", "a man talks about a car")
    assert _uids(MSRVTT(str(MSRVTT_JSON), split="validate").load()) == ["video7010"]


def test_msrvtt_video_ids_file(tmp_path):
    ids = tmp_path / "test_1k.txt"
    ids.write_text("video9772\n\nvideo0\n")
    samples = MSRVTT(str(MSRVTT_JSON), video_ids=str(ids)).load()
    assert _uids(samples) == ["video9772", "video0"]
    ids.write_text("video9772\nvideo12345\n")
    with pytest.raises(AnnotationError, match="video12345"):
        MSRVTT(str(MSRVTT_JSON), video_ids=str(ids)).load()


def test_msrvtt_bad_task_and_limit():
    with pytest.raises(ValueError, match="retrieval or captioning"):
        MSRVTT(str(MSRVTT_JSON), task=SUMMARIZATION)
    assert len(MSRVTT(str(MSRVTT_JSON), limit=2).load()) == 2


def test_msrvtt_video_without_sentences(tmp_path):
    f = _write_json(tmp_path / "MSRVTT_data.json", {
        "videos": [{"video_id": "video9770", "split": "test"}, {"video_id": "video9771", "split": "test"}],
        "sentences": [{"sen_id": 0, "video_id": "video9770", "caption": "a man plays guitar"}]})
    with pytest.raises(AnnotationError) as e:
        MSRVTT(str(f)).load()
    assert "MSRVTT_data.json" in str(e.value) and "video9771" in str(e.value)


def test_msrvtt_missing_caption(tmp_path):
    f = _write_json(tmp_path / "MSRVTT_data.json", {
        "videos": [{"video_id": "video9770", "split": "test"}],
        "sentences": [{"sen_id": 0, "video_id": "video9770", "caption": "a man plays guitar"},
                      {"sen_id": 1, "video_id": "video9770"}]})
    with pytest.raises(AnnotationError) as e:
        MSRVTT(str(f)).load()
    assert "MSRVTT_data.json" in str(e.value) and "sentences[1]" in str(e.value) and "caption" in str(e.value)


# ----------------------------------------------------------------------------------------- generic jsonl


def test_msrvtt_1ka_csv():
    samples = MSRVTTCsv(str(MSRVTT_CSV)).load()
    assert _uids(samples) == ["video7020", "video7021", "video7022"]
    assert samples[1].references == ("two men play tennis on a clay court",)
    assert samples[0].task == RETRIEVAL and samples[0].video is None
    assert MSRVTTCsv(str(MSRVTT_CSV), task=CAPTIONING, limit=2).load()[1].task == CAPTIONING
    bad = MSRVTT_CSV.parent / "nope.csv"
    with pytest.raises(FileNotFoundError):
        MSRVTTCsv(str(bad)).load()


def test_msrvtt_1ka_csv_bad_header(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("key,vid_key,video\nret0,msr1,video1\n")
    with pytest.raises(AnnotationError, match=r"t.csv: header: missing columns \['video_id', 'sentence'\]"):
        MSRVTTCsv(str(f)).load()


def test_jsonl():
    samples = JsonlBenchmark(str(JSONL), task=MCQA).load()
    assert _uids(samples) == ["kitchen-001", "kitchen-002", "garden-001", "17"]  # uid coerced to str
    a, b, c, d = samples
    assert a.benchmark == "jsonl" and a.task == MCQA and a.video_id == "kitchen_0001"
    assert a.options == ("a knife", "a spoon", "a cup", "a plate") and a.answer == 2
    assert a.duration == 312.0 and a.clip is None
    assert b.clip == Segment(30.0, 95.5)
    assert c.answer is None  # no answer: predicted, not scored
    assert c.task == MCQA    # task defaults to the benchmark's
    assert [s.category for s in samples] == ["local", "long-range", "local", None]
    assert d.answer == 0


def test_jsonl_task_mismatch_and_unknown_task():
    with pytest.raises(AnnotationError, match="line 1"):
        JsonlBenchmark(str(JSONL), task=CAPTIONING).load()
    with pytest.raises(ValueError, match="unknown task"):
        JsonlBenchmark(str(JSONL), task="vqa")


@pytest.mark.parametrize("key, value", [("references", "a man slices an onion"), ("options", "abcd"),
                                        ("question", ["q"]), ("answer", "1"), ("category", 3),
                                        ("references", ["ok", 7]), ("start", "0")])
def test_jsonl_wrong_types_name_file_line_and_key(tmp_path, key, value):
    f = tmp_path / "items.jsonl"
    good = {"uid": "u0", "video": "v0", "question": "q?", "options": ["a", "b"], "answer": 0, "references": ["r"]}
    f.write_text(json.dumps(good) + "\n" + json.dumps({**good, "uid": "u1", "end": 1.0, key: value}) + "\n")
    with pytest.raises(AnnotationError) as e:
        JsonlBenchmark(str(f), task=MCQA).load()
    msg = str(e.value)
    assert str(f) in msg and "line 2" in msg and repr(key) in msg


def test_jsonl_limit():
    assert len(JsonlBenchmark(str(JSONL), task=MCQA, limit=3).load()) == 3


def test_jsonl_malformed_line(tmp_path):
    f = tmp_path / "items.jsonl"
    f.write_text('{"uid": "a", "video": "v1", "references": ["x"]}\n\n{"uid": "b", "video": "v2",\n')
    with pytest.raises(AnnotationError) as e:
        JsonlBenchmark(str(f), task=CAPTIONING).load()
    assert "items.jsonl" in str(e.value) and "line 3" in str(e.value) and "invalid JSON" in str(e.value)


def test_jsonl_missing_uid(tmp_path):
    f = tmp_path / "items.jsonl"
    f.write_text('{"uid": "a", "video": "v1"}\n{"video": "v2"}\n')
    with pytest.raises(AnnotationError) as e:
        JsonlBenchmark(str(f), task=CAPTIONING).load()
    msg = str(e.value)
    assert "items.jsonl" in msg and "line 2" in msg and "'uid'" in msg
    assert msg.count("items.jsonl") == 1  # not wrapped twice


def test_jsonl_answer_out_of_range(tmp_path):
    f = tmp_path / "items.jsonl"
    f.write_text('{"uid": "a", "video": "v1", "options": ["x", "y", "z"], "answer": 3}\n')
    with pytest.raises(AnnotationError, match="line 1"):
        JsonlBenchmark(str(f), task=MCQA).load()


def test_jsonl_duplicate_uid(tmp_path):
    f = tmp_path / "items.jsonl"
    f.write_text('{"uid": "a", "video": "v1"}\n{"uid": "b", "video": "v2"}\n{"uid": "a", "video": "v3"}\n')
    with pytest.raises(AnnotationError) as e:
        JsonlBenchmark(str(f), task=CAPTIONING).load()
    assert "items.jsonl" in str(e.value) and "'a'" in str(e.value) and "duplicate" in str(e.value)


# ------------------------------------------------------------------- bad input shared by the JSON loaders


JSON_LOADERS = {
    "youcook2": lambda f: YouCook2(str(f)),
    "activitynet": lambda f: ActivityNetCaptions(str(f)),
    "egoschema_questions": lambda f: EgoSchema(str(f), str(EGO_A)),
    "egoschema_answers": lambda f: EgoSchema(str(EGO_Q), str(f)),
    "perception_test": lambda f: PerceptionTestMC(str(f)),
    "msrvtt": lambda f: MSRVTT(str(f)),
}


@pytest.mark.parametrize("loader", sorted(JSON_LOADERS))
def test_malformed_json_names_file_and_line(tmp_path, loader):
    f = tmp_path / f"{loader}_broken.json"
    f.write_text('{\n  "a": 1,\n  "b": [1, 2,,\n  "c": 3\n}\n')
    with pytest.raises(AnnotationError) as e:
        JSON_LOADERS[loader](f).load()
    msg = str(e.value)
    assert f"{loader}_broken.json" in msg and "line 3" in msg and "invalid JSON" in msg
    assert e.value.file == str(f)


@pytest.mark.parametrize("loader", sorted(JSON_LOADERS))
def test_duplicate_json_keys_are_an_error_naming_the_key(tmp_path, loader):
    # json.load keeps the last of two equal keys silently: one item would vanish
    f = tmp_path / f"{loader}.json"
    f.write_text('{"v_abc": {"duration": 1}, "v_xyz": 2, "v_abc": {"duration": 3}}')
    with pytest.raises(AnnotationError) as e:
        JSON_LOADERS[loader](f).load()
    assert str(f) in str(e.value) and "key 'v_abc'" in str(e.value) and "twice" in str(e.value)


ALL_LOADERS = {**JSON_LOADERS, "nextqa": lambda f: NExTQA(str(f)), "msrvtt_csv": lambda f: MSRVTTCsv(str(f)),
               "jsonl": lambda f: JsonlBenchmark(str(f), task=MCQA)}


@pytest.mark.parametrize("loader", sorted(ALL_LOADERS))
def test_a_byte_that_is_not_utf8_names_the_file_and_line(tmp_path, loader):
    f = tmp_path / f"{loader}.txt"
    f.write_bytes(b'{"a": 1}\n{"question": "caf\xe9"}\n')     # Latin-1, not UTF-8
    with pytest.raises(AnnotationError) as e:
        ALL_LOADERS[loader](f).load()
    msg = str(e.value)
    assert str(f) in msg and "line 2" in msg and "not UTF-8" in msg and "xe9" in msg


def test_a_byte_order_mark_is_dropped(tmp_path):
    f = tmp_path / "val.csv"
    f.write_bytes(b"\xef\xbb\xbf" + NEXTQA.read_bytes())
    with pytest.warns(AnnotationWarning):
        assert _uids(NExTQA(str(f)).load())[0] == "4010069381_6"


@pytest.mark.parametrize("loader", sorted(JSON_LOADERS))
def test_missing_annotation_file(tmp_path, loader):
    with pytest.raises(FileNotFoundError, match="absent.json"):
        JSON_LOADERS[loader](tmp_path / "absent.json").load()


def test_youcook2_missing_key(tmp_path):
    db = json.loads(YC2.read_text())
    del db["database"]["V53XmPeyjIU"]["annotations"][2]["sentence"]
    f = _write_json(tmp_path / "youcookii_annotations_trainval.json", db)
    with pytest.raises(AnnotationError) as e:
        YouCook2(str(f)).load()
    msg = str(e.value)
    assert "youcookii_annotations_trainval.json" in msg and "V53XmPeyjIU" in msg
    assert "annotations[2]" in msg and "'sentence'" in msg


def test_youcook2_missing_database(tmp_path):
    f = _write_json(tmp_path / "yc2.json", {"GLd3aX16zBg": {}})
    with pytest.raises(AnnotationError, match="'database'"):
        YouCook2(str(f)).load()


@pytest.mark.parametrize("segment", [[5], "0-10", [0, "10"], [True, 3]])
def test_youcook2_bad_segment(tmp_path, segment):
    db = json.loads(YC2.read_text())
    db["database"]["xHr8X2Wpmno"]["annotations"][1]["segment"] = segment
    f = _write_json(tmp_path / "yc2.json", db)
    with pytest.raises(AnnotationError) as e:
        YouCook2(str(f)).load()
    msg = str(e.value)
    assert "yc2.json" in msg and "xHr8X2Wpmno" in msg and "annotations[1]" in msg


def test_youcook2_reversed_segment_is_swapped_with_a_warning(tmp_path):
    db = json.loads(YC2.read_text())
    db["database"]["xHr8X2Wpmno"]["annotations"][1]["segment"] = [25, 12]
    f = _write_json(tmp_path / "yc2.json", db)
    with pytest.warns(AnnotationWarning, match=r"1 events end before they start \(xHr8X2Wpmno\[1\]\)"):
        s = YouCook2(str(f)).load()[0]
    assert (12.0, 25.0) == (s.segments[0].start, s.segments[0].end)


def test_activitynet_missing_key_and_length_mismatch(tmp_path):
    data = json.loads(ANET_VAL.read_text())
    del data["v_bXdq2zI1Ms0"]["sentences"]
    f = _write_json(tmp_path / "val_1.json", data)
    with pytest.raises(AnnotationError) as e:
        ActivityNetCaptions(str(f)).load()
    assert "val_1.json" in str(e.value) and "v_bXdq2zI1Ms0" in str(e.value) and "'sentences'" in str(e.value)

    data = json.loads(ANET_VAL.read_text())
    data["v_bXdq2zI1Ms0"]["sentences"].pop()
    f = _write_json(tmp_path / "val_1.json", data)
    with pytest.raises(AnnotationError, match="3 timestamps but 2 sentences"):
        ActivityNetCaptions(str(f)).load()


def test_activitynet_top_level_not_object(tmp_path):
    f = _write_json(tmp_path / "val_1.json", [1, 2])
    with pytest.raises(AnnotationError, match="top level"):
        ActivityNetCaptions(str(f)).load()


# ---------------------------------------------------------------------------------------- video paths

# name -> (factory(video_root), video_id of the first sample)
LOADERS = {
    "youcook2_summarization": (lambda r: YouCook2(str(YC2), video_root=r), "xHr8X2Wpmno"),
    "youcook2_captioning": (lambda r: YouCook2(str(YC2), video_root=r, task=CAPTIONING), "xHr8X2Wpmno"),
    "activitynet": (lambda r: ActivityNetCaptions(str(ANET_VAL), video_root=r), "v_uqiMw7tQ1Cc"),
    "egoschema": (lambda r: EgoSchema(str(EGO_Q), str(EGO_A), video_root=r),
                  "001934bb-81bd-4cd8-a574-0472ef3f6678"),
    "nextqa": (lambda r: NExTQA(str(NEXTQA), video_root=r), "4010069381"),
    "perception_test": (lambda r: PerceptionTestMC(str(PT_MC), video_root=r), "video_10909"),
    "msrvtt": (lambda r: MSRVTT(str(MSRVTT_JSON), video_root=r), "video9770"),
    "jsonl": (lambda r: JsonlBenchmark(str(JSONL), task=MCQA, video_root=r), "kitchen_0001"),
}


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_video_resolution(tmp_path, name):
    make, first_id = LOADERS[name]
    root = tmp_path.resolve()

    assert all(s.video is None for s in make(None).load())

    # nothing on disk: the first candidate ({id}.mp4) is returned, not a crash
    samples = make(str(root))
    samples = samples.load()
    assert samples[0].video_id == first_id
    assert all(s.video == str(root / f"{s.video_id}.mp4") for s in samples)

    # only a later pattern exists: it is found
    (root / f"{first_id}.webm").touch()
    samples = make(str(root)).load()
    assert samples[0].video == str(root / f"{first_id}.webm")
    assert all(s.video == str(root / f"{s.video_id}.mp4") for s in samples if s.video_id != first_id)

    # several exist: the first pattern wins
    (root / f"{first_id}.mp4").touch()
    assert make(str(root)).load()[0].video == str(root / f"{first_id}.mp4")


def test_resolver_accepts_symlinks_whose_path_is_under_the_root(tmp_path):
    store = tmp_path / "shared_storage"
    store.mkdir()
    (store / "real.mp4").touch()
    root = tmp_path / "videos"
    root.mkdir()
    (root / "clip.mp4").symlink_to(store / "real.mp4")        # a dataset folder of symlinks
    assert VideoResolver(root)("clip") == str(root / "clip.mp4")
    linked_root = tmp_path / "link_to_videos"                 # the root itself a symlink
    linked_root.symlink_to(root)
    assert VideoResolver(linked_root)("clip") == str(linked_root / "clip.mp4")
    with pytest.raises(ValueError, match="escape"):             # the path, not the target, decides
        VideoResolver(root)("../shared_storage/real")


def test_resolver_pattern_order(tmp_path):
    root = tmp_path.resolve()
    (root / "clip.mkv").touch()
    (root / "clip.mp4").touch()
    assert VideoResolver(root, ("{id}.mkv", "{id}.mp4"))("clip") == str(root / "clip.mkv")
    assert VideoResolver(root, ("{id}.mp4", "{id}.mkv"))("clip") == str(root / "clip.mp4")
    assert VideoResolver(root, ("{id}.avi", "{id}.mov"))("clip") == str(root / "clip.avi")
    assert VideoResolver(None)("clip") is None
    with pytest.raises(ValueError, match="patterns"):
        VideoResolver(root, ())


@pytest.mark.parametrize("video_id", ["../x", "/abs", "/etc/passwd", "a/../../x", "..", "", "a\x00b"])
def test_resolver_rejects_escaping_ids(tmp_path, video_id):
    with pytest.raises(ValueError, match="escape"):
        VideoResolver(tmp_path)(video_id)


def test_resolver_rejects_pattern_escape(tmp_path):
    with pytest.raises(ValueError, match="escape"):
        VideoResolver(tmp_path / "videos", ("../{id}.mp4",))("clip")


@pytest.mark.parametrize("video_id", ["../x", "/abs"])
def test_loaders_reject_escaping_ids(tmp_path, video_id):
    root = tmp_path / "videos"
    root.mkdir()
    q = _write_json(tmp_path / "questions.json", [_ego_question(video_id)])
    with pytest.raises(ValueError, match="escape"):
        EgoSchema(str(q), video_root=str(root)).load()

    csv_file = tmp_path / "val.csv"
    csv_file.write_text(NEXTQA_HEADER + f"{video_id},10,640,480,what,1,0,CH,a,b,c,d,e\n")
    with pytest.raises(ValueError, match="escape"):
        NExTQA(str(csv_file), video_root=str(root)).load()

    anet = _write_json(tmp_path / "val_1.json", {video_id: {"duration": 10.0, "timestamps": [[0, 5]],
                                                            "sentences": ["A man walks."]}})
    with pytest.raises(ValueError, match="escape"):
        ActivityNetCaptions(str(anet), video_root=str(root)).load()

    jl = tmp_path / "items.jsonl"
    jl.write_text(json.dumps({"uid": "u1", "video": video_id, "references": ["x"]}) + "\n")
    with pytest.raises(ValueError, match="escape"):
        JsonlBenchmark(str(jl), task=CAPTIONING, video_root=str(root)).load()

    # without a video root nothing is resolved, so nothing can escape
    assert EgoSchema(str(q)).load()[0].video is None


def _long_loaders():
    from evals.benchmarks.longvideo import MLVU, LongVideoBench, LVBench, VideoMME

    return {"mlvu": lambda r: MLVU(str(MLVU_DIR), video_root=r), "videomme": lambda r: VideoMME(str(VMME), r),
            "longvideobench": lambda r: LongVideoBench(str(LVB_VAL), r), "lvbench": lambda r: LVBench(str(LVBENCH), r)}


@pytest.mark.parametrize("name", sorted(LOADERS) + ["mlvu", "videomme", "longvideobench", "lvbench"])
def test_limit_and_unique_uids_are_the_base_class_rules(name, monkeypatch):
    """Every loader gets `limit` (the first items, in the file's order) and the uid check from `Benchmark.load`: a
    uid repeated anywhere in the file — also past the limit — is an error naming the loader's annotation file."""
    from dataclasses import replace

    bench = LOADERS[name][0](None) if name in LOADERS else _long_loaders()[name](None)
    full = bench.load()
    assert len(full) >= 2 and len({s.uid for s in full}) == len(full)
    bench.limit = 1
    assert bench.load() == full[:1]
    items = type(bench).items
    monkeypatch.setattr(type(bench), "items", lambda self: items(self) + [replace(full[0])])
    with pytest.raises(AnnotationError, match=f"{Path(bench.source()).name}: item {re.escape(repr(full[0].uid))}: "
                                              "duplicate uid"):
        bench.load()


# --- the long-video benchmarks (fixtures carry the quirks found in the authors' files) ------------------------------
MLVU_DIR = DATA / "mlvu" / "json"
VMME = DATA / "videomme" / "test.json"
LVB_VAL, LVB_TEST = DATA / "longvideobench" / "lvb_val.json", DATA / "longvideobench" / "lvb_test_wo_gt.json"
LVBENCH = DATA / "lvbench" / "video_info.meta.jsonl"


def test_mlvu_answer_by_text_never_mapped_when_absent_or_twice(tmp_path):
    from evals.benchmarks.longvideo import MLVU

    with pytest.warns(AnnotationWarning) as w:
        qs = MLVU(str(MLVU_DIR), video_root=str(tmp_path)).load()
    by = {s.uid: s for s in qs}
    assert list(by) == ["plotQA/0", "plotQA/1", "plotQA/2", "findNeedle/0", "findNeedle/1", "topic_reasoning/0",
                        "topic_reasoning/1"]                                  # files in name order, then file order
    assert by["plotQA/0"].answer == 0 and by["plotQA/1"].answer == 3 and by["topic_reasoning/1"].answer == 1
    assert by["findNeedle/0"].answer is None          # "Catching a flying drone quadcopter" is no candidate
    assert by["plotQA/2"].answer is None              # "Excited" is candidates 0 and 2: not guessed
    assert by["topic_reasoning/0"].answer is None     # the empty record
    assert by["findNeedle/1"].answer == 1 and by["findNeedle/1"].options[1] == "near the window "   # text kept
    assert by["plotQA/0"].video == str(tmp_path / "1_plotQA" / "movie101_66.mp4")   # the download's layout
    (tmp_path / "movie101_66.mp4").touch()                                              # or a flat folder
    assert MLVU(str(MLVU_DIR), video_root=str(tmp_path)).load()[0].video == str(tmp_path / "movie101_66.mp4")
    text = "\n".join(str(x.message) for x in w)
    assert "1 answers match no candidate (findNeedle/0)" in text
    assert "2 answers match two or more candidates (plotQA/2, topic_reasoning/0)" in text
    assert "3 questions repeat a candidate's text (plotQA/1, plotQA/2, topic_reasoning/0)" in text
    assert "1 answers equal their candidate only up to spaces (findNeedle/1)" in text
    assert {s.category for s in qs} == {"plotQA", "findNeedle", "topic_reasoning"}


def test_mlvu_generation_tasks_and_the_m_avg():
    from evals.benchmarks.longvideo import MLVU
    from evals.contracts import Prediction
    from evals.metrics.qa import qa_scores

    summ = MLVU(str(MLVU_DIR), task=SUMMARIZATION).load()
    assert [(s.uid, s.video_id) for s in summ] == [("summary/0", "217.mp4"), ("summary/1", "AWA-4.mp4"),
                                                  ("summary/2", "AWA-4.mp4")]
    assert summ[0].references[0].startswith("Waves hit") and summ[1].duration == 206.0
    (cap,) = MLVU(str(MLVU_DIR), task=CAPTIONING).load()
    assert cap.question.startswith("Please describe the scene") and cap.clip is None and cap.references
    with pytest.warns(AnnotationWarning):
        qs = MLVU(str(MLVU_DIR)).load()
    right = {s.uid: Prediction(uid=s.uid, system="x", choice=s.answer) for s in qs}
    right["plotQA/1"] = Prediction(uid="plotQA/1", system="x", choice=0)          # plotQA: 1 of 2 scored right
    res = qa_scores(qs, right, MLVU.aggregates)
    assert res["accuracy/plotQA"].value == 0.5 and res["accuracy/findNeedle"].value == 1.0
    assert res["M-Avg"].value == pytest.approx((0.5 + 1.0 + 1.0) / 3)       # not the micro 3/4
    assert res["accuracy"].value == pytest.approx(3 / 4) and res["accuracy"].info["n_hidden"] == 3


def test_videomme_scores_by_letter_and_groups_by_duration(tmp_path):
    from evals.benchmarks.longvideo import VideoMME

    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "fFjv93ACGo8.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\nhello\n")
    with pytest.warns(AnnotationWarning, match="1 questions list the same option text twice \\(450-1\\)"):
        qs = VideoMME(str(VMME), subtitle_root=str(tmp_path / "subs")).load()
    by = {s.uid: s for s in qs}
    assert by["001-1"].options == ("Apples.", "Candles.", "Berries.", "The three kinds are of the same number.")
    assert by["001-1"].answer == 2 and by["001-2"].options == ("A.", "F.", "B.", "K.") and by["001-2"].answer == 1
    assert by["450-1"].answer == 2 and by["450-1"].options[0] == by["450-1"].options[2]     # by letter, not text
    assert "do the  players" in by["450-1"].question                                        # text as written
    assert [s.category for s in qs] == ["short", "short", "medium", "long"]
    assert by["900-3"].groups == {"domain": ("Multilingual",), "task_type": ("Information Synopsis",),
                                  "sub_category": ("Multilingual",)}
    assert by["001-1"].meta["subtitles"].endswith("fFjv93ACGo8.srt") and by["900-3"].meta["subtitles"] is None
    assert by["001-1"].video_id == "fFjv93ACGo8"


def test_videomme_parquet_is_read_like_its_json(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from evals.benchmarks.longvideo import VideoMME

    rows = json.loads(VMME.read_text())
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "test-00000-of-00001.parquet")
    with pytest.warns(AnnotationWarning):
        a = VideoMME(str(VMME)).load()
    with pytest.warns(AnnotationWarning):
        b = VideoMME(str(tmp_path / "test-00000-of-00001.parquet")).load()
    assert a == b
    rows[1]["options"][1] = "C. F."
    (tmp_path / "bad.json").write_text(json.dumps(rows))
    with pytest.raises(AnnotationError, match="question '001-2': option 1 is 'C. F.': expected it to start with 'B. '"):
        VideoMME(str(tmp_path / "bad.json")).load()


def test_longvideobench_val_and_hidden_test():
    from evals.benchmarks.longvideo import LongVideoBench

    with pytest.warns(AnnotationWarning, match="1 option lists padded with \"N/A\" \\(QJ6sjg7SXOQ_1\\)"):
        qs = LongVideoBench(str(LVB_VAL)).load()
    assert [len(s.options) for s in qs] == [4, 5, 4] and [s.answer for s in qs] == [1, 4, 0]
    assert [s.category for s in qs] == ["600", "3600", "3600"]
    assert qs[0].groups == {"question_category": ("TOS",), "level": ("L2-Relation",)}
    assert qs[1].meta["subtitle_offset"] == 12.5 and qs[1].duration == 2468.48
    (hidden,) = LongVideoBench(str(LVB_TEST)).load()
    assert hidden.answer is None and hidden.category == "60"


def test_longvideobench_parquet_options_as_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from evals.benchmarks.longvideo import LongVideoBench

    rows = json.loads(LVB_VAL.read_text())
    for r in rows:                                 # the parquet's layout: option0..option4, "N/A" where absent
        cands = r.pop("candidates")
        r.update({f"option{j}": cands[j] if j < len(cands) else "N/A" for j in range(5)})
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "validation-00000-of-00001.parquet")
    with pytest.warns(AnnotationWarning, match="2 option lists padded .*86CxyhFV9MI_0, QJ6sjg7SXOQ_1"):
        qs = LongVideoBench(str(tmp_path / "validation-00000-of-00001.parquet")).load()
    with pytest.warns(AnnotationWarning):
        assert qs == LongVideoBench(str(LVB_VAL)).load()


def test_lvbench_inline_options_and_multi_label_types(tmp_path):
    from evals.benchmarks.longvideo import LVBench

    qs = LVBench(str(LVBENCH)).load()
    assert [s.uid for s in qs] == ["55", "56", "901"]
    assert qs[0].question == "What year appears in the opening caption of the video?"
    assert qs[0].options == ("1636", "1366", "1363", "1633") and qs[0].answer == 3
    assert qs[1].groups["question_type"] == ("reasoning", "event understanding") and qs[1].answer == 1
    assert qs[2].video_id == "a9-Fq2lTqXw" and qs[2].groups["video_type"] == ("documentary",)
    assert LVBench.table_groups == ("question_type",)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"key": "k", "qa": [{"uid": 1, "question": "Q?\n(A) x\n(B) y", "answer": "C",
                                                  "question_type": ["reasoning"]}]}) + "\n")
    with pytest.raises(AnnotationError, match="line 1 \\(k\\) qa\\[0\\]: answer 'C' is not one of the letters"):
        LVBench(str(bad)).load()
