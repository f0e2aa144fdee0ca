"""The real-benchmark presets `compare=youcook2 | activitynet | egoschema` run end to end on the small
official-format fixtures: tiny videos for the fixture ids, one tiny video-to-text checkpoint (the video-first row
and the segment captioner), a fake OpenAI-compatible LLM server (llm=vllm_url). Every expected row is in the
table with the task's metric columns, nothing fails, the captions rows caption the right segments (uniform 16 s
windows; the annotated ones for the oracle row) and hand them to the LLM; a missing path is a clear error."""
import json
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from baselines import aggregator
from evals import config_dir
from evals.runner import run_compare
from evals.store import read_predictions
from tests.helpers import JsonHTTPServer, make_video, save_tiny_v2t

ANN = Path(__file__).resolve().parents[1] / "data" / "annotations"
SPAN = re.compile(r"^\[(\d+)s-(\d+)s\] ", re.M)
FAST = ["progress=false", "report=false", "stats.resamples=50", "batch_size=4",
        "metrics.caption=[BLEU-4,ROUGE-L,CIDEr]",    # METEOR costs ~13 s of Java per row
        "table.columns.summarization=[ROUGE-L,CIDEr,BLEU-4]"]


# --- shared with tests/integration/test_compare_presets_vllm.py -----------------------------------------------
def tiny_checkpoint(root: Path) -> str:
    """A tiny saved VideoToText (32 px, 8 frames, tiny Llama) with its prompts: usable as summarizer, QA model
    and captioner (`<root>/model`)."""
    from longvid.model.tiny_lm import build_tiny_lm

    root.mkdir(parents=True, exist_ok=True)
    (root / "texts.txt").write_text("\n".join(["chop the onion.", "a man plays the bagpipes.", "it spun"] * 5))
    lm = build_tiny_lm(root / "lm", [root / "texts.txt"], hidden_size=128, num_layers=2, num_heads=2,
                       intermediate_size=128, vocab_size=300, pretrain_steps=30, progress=False)
    return save_tiny_v2t(root, lm)


def make_fixture_videos(root: Path) -> dict[str, Path]:
    """Videos for the fixture ids, as long as their annotated durations (1 frame/s, 32 px), in each benchmark's
    layout: YouCook2 flat and official (<subset>/<recipe_type>/<id>.mp4), ActivityNet <id>.mp4, EgoSchema
    <q_uid>.mp4 (40 s: the loader has no duration, the baseline probes the file)."""
    yc2 = json.loads((ANN / "youcook2" / "youcookii_annotations_trainval.json").read_text())["database"]
    for i, (vid, item) in enumerate(x for x in yc2.items() if x[1]["subset"] == "validation"):
        rel = f"{vid}.mp4" if i == 0 else f"validation/{item['recipe_type']}/{vid}.mp4"
        make_video(root / "yc2" / rel, n_frames=int(item["duration"]) + 1, seed=i)
    for i, (vid, item) in enumerate(json.loads((ANN / "activitynet" / "val_1.json").read_text()).items()):
        make_video(root / "anet" / f"{vid}.mp4", n_frames=int(item["duration"]) + 1, seed=10 + i)
    for i, q in enumerate(json.loads((ANN / "egoschema" / "questions.json").read_text())):
        make_video(root / "ego" / f"{q['q_uid']}.mp4", n_frames=40, seed=20 + i)
    return {"youcook2": root / "yc2", "activitynet": root / "anet", "egoschema": root / "ego"}


def data_overrides(name: str, videos: dict[str, Path]) -> list[str]:
    """The preset's data keys, pointing at the fixtures."""
    if name == "youcook2":
        return [f"annotations={ANN / 'youcook2' / 'youcookii_annotations_trainval.json'}",
                f"videos={videos['youcook2']}"]
    if name == "activitynet":
        return [f"annotations={ANN / 'activitynet' / 'val_1.json'}", f"videos={videos['activitynet']}"]
    return [f"questions={ANN / 'egoschema' / 'questions.json'}",
            f"answers={ANN / 'egoschema' / 'subset_answers.json'}", f"videos={videos['egoschema']}"]


def preset(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("compare", overrides=[f"compare={name}", *overrides])


def spans(captions) -> list[tuple[float, float]]:
    return [(round(a, 2), round(b, 2)) for a, b, _ in captions]


# --- a fake vLLM-style server ------------------------------------------------------------------------------------
class FakeVLLM(JsonHTTPServer):
    """/v1/chat/completions (a summary naming the caption lines it got, or the last allowed choice), /tokenize
    (characters as ids) and /v1/completions with prompt_logprobs (token t: -t/1000). Records every body."""

    def __init__(self):
        self.bodies: list[tuple[str, dict]] = []
        super().__init__()

    def handle(self, path, body, headers):
        if path == "/v1/models":
            return 200, {"data": [{"id": "fake-llm", "root": "/models/fake-llm"}]}
        self.bodies.append((path, body))
        if path == "/v1/chat/completions":
            choice = (body.get("structured_outputs") or {}).get("choice")
            lines = SPAN.findall(body["messages"][-1]["content"])
            text = choice[-1] if choice else (f"a video in {len(lines)} segments, "
                                              f"from {lines[0][0]}s to {lines[-1][1]}s." if lines else "nothing.")
            return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
        if path == "/tokenize":
            text = "".join(m["content"] for m in body["messages"]) + ">" if "messages" in body else body["prompt"]
            return 200, {"tokens": [ord(c) for c in text]}
        if path == "/v1/completions":
            return 200, {"choices": [{"index": i, "prompt_logprobs": [None] + [
                {str(t): {"logprob": -t / 1000, "rank": 1}} for t in p[1:]]} for i, p in enumerate(body["prompt"])]}
        return 404, {"error": f"no route {path}"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("presets")
    server = FakeVLLM()
    try:
        yield {"ckpt": tiny_checkpoint(root / "v2t"), "videos": make_fixture_videos(root / "videos"), "llm": server}
    finally:
        server.close()


def overrides_for(name, world, tmp_path, *extra):
    return [f"paths.root={tmp_path}", *data_overrides(name, world["videos"]), f"checkpoint={world['ckpt']}",
            f"captioner.checkpoint={world['ckpt']}", f"llm.url={world['llm'].url}", "llm.model=fake-llm",
            "llm.retries=0", "video.max_frames=32", *FAST, *extra]


def run(name, world, tmp_path, *extra):
    aggregator._SHARED.clear()
    cfg = preset(name, overrides_for(name, world, tmp_path, *extra))
    return cfg, run_compare(cfg)


# --- the presets ---------------------------------------------------------------------------------------------------
SUMMARY_COLUMNS = ["ROUGE-L", "CIDEr", "BLEU-4"]
DURATION = {"youcook2": {"xHr8X2Wpmno": 187.5, "V53XmPeyjIU": 262.9, "GmWb7W7m2vs": 170.0},
            "activitynet": {"v_uqiMw7tQ1Cc": 55.15, "v_bXdq2zI1Ms0": 73.1, "v_FsS_NCZEfaI": 127.97,
                            "v_D0pVkTEYQg8": 21.41}}


def test_presets_compose_with_their_defaults_and_keys(tmp_path):
    for name in ("youcook2", "activitynet", "egoschema"):
        cfg = preset(name, [f"paths.root={tmp_path}"])
        assert cfg.compare_name == name and cfg.out_dir.endswith(f"/compare/{name}")
        assert OmegaConf.is_missing(cfg.llm, "url") and OmegaConf.is_missing(cfg.llm, "model")   # llm=vllm_url
        assert cfg.captioner._target_ == "longvid.systems.V2TCaptioner"
        assert (cfg.video.max_frames, cfg.video.height, cfg.video.width) == (128, 224, 224)
        keys = ["questions", "answers", "videos", "checkpoint"] if name == "egoschema" else [
            "annotations", "videos", "checkpoint"]
        assert all(OmegaConf.is_missing(cfg, k) for k in keys)
        assert "oracle_segments_llm" in cfg.systems or name == "egoschema"
    # the documented alternative: a server launched for the run
    cfg = preset("egoschema", [f"paths.root={tmp_path}", "llm=vllm_server", "llm.launch.model_path=/m/x",
                               "llm.model=x"])
    assert cfg.llm.launch.model_path == "/m/x" and cfg.llm.launch.served_model_name == "x" and "url" not in cfg.llm


@pytest.mark.java   # summaries are scored with pycocoevalcap (PTB tokenizer, METEOR)
@pytest.mark.parametrize("name", ["youcook2", "activitynet"])
def test_summary_preset_end_to_end(name, world, tmp_path):
    cfg, out = run(name, world, tmp_path)
    table = out["table"]
    assert table.rows == ["video_first", "captions_llm", "oracle_segments_llm"]
    assert table.reference == "video_first"
    assert table.columns == [(name, m) for m in SUMMARY_COLUMNS]
    shown = [(name, m) for m in SUMMARY_COLUMNS if m != "METEOR"]              # METEOR: not computed here
    assert all(table.cells[(r, c)].value == table.cells[(r, c)].value for r in table.rows for c in shown)
    assert all(table.cells[(r, c)].delta is not None for r in table.rows[1:] for c in shown)   # paired vs the ref
    assert not any(out["failures"].values()), out["failures"]
    assert Path(cfg.out_dir) == tmp_path / "outputs" / "compare" / name and (Path(cfg.out_dir) / "table.md").is_file()

    preds = {s: read_predictions(Path(cfg.out_dir) / name / s / "predictions.jsonl") for s in table.rows}
    assert all(set(p) == set(DURATION[name]) for p in preds.values())
    assert all(p.provenance["checkpoint"] == world["ckpt"] for p in preds["video_first"].values())
    anns = {s.uid: s for s in instantiate(cfg.benchmarks[name]).load()}
    for uid, dur in DURATION[name].items():
        uniform = preds["captions_llm"][uid]
        want = [(float(a), min(dur, a + 16.0)) for a in range(0, int(dur), 16)]   # 16 s windows to the end
        assert spans(uniform.extra["captions"]) == want
        oracle = preds["oracle_segments_llm"][uid]
        assert spans(oracle.extra["captions"]) == [(g.start, g.end) for g in anns[uid].segments]
        assert all(c for _, _, c in uniform.extra["captions"] + oracle.extra["captions"])    # captioner wrote text
        # the LLM got every caption line: its (fake) summary names their count and span
        assert uniform.text.startswith(f"a video in {len(want)} segments, from 0s")
        assert oracle.text.startswith(f"a video in {len(anns[uid].segments)} segments")
        assert oracle.provenance["llm"]["url"] == world["llm"].url


def test_egoschema_preset_end_to_end(world, tmp_path):
    world["llm"].bodies.clear()
    cfg, out = run("egoschema", world, tmp_path)
    table = out["table"]
    assert table.rows == ["video_first", "captions_llm", "blind_llm"] and table.reference == "video_first"
    assert table.columns == [("egoschema", "accuracy")]
    assert not any(out["failures"].values()), out["failures"]
    answered = set(json.loads((ANN / "egoschema" / "subset_answers.json").read_text()))
    acc = out["scores"]["egoschema"]
    for s in table.rows:
        assert acc[s]["accuracy"].info["n_unparseable"] == 0 and acc[s]["accuracy"].info["n_hidden"] == 0
        preds = read_predictions(Path(cfg.out_dir) / "egoschema" / s / "predictions.jsonl")
        assert set(preds) == answered                                          # the public subset only
        assert all(p.choice in range(5) and not p.failure for p in preds.values())
    captions = read_predictions(Path(cfg.out_dir) / "egoschema" / "captions_llm" / "predictions.jsonl")
    assert all(spans(p.extra["captions"]) == [(0, 16), (16, 32), (32, 40)] and len(p.extra["option_logprob_mean"]) == 5
               for p in captions.values())                                    # 40 s videos, probed: 3 windows
    scored = [b["messages"][-1]["content"] for path, b in world["llm"].bodies if path == "/tokenize" and "messages" in b]
    with_captions = [t for t in scored if "[0s-16s]" in t and "[32s-40s]" in t]
    assert len(scored) == 2 * len(answered) and len(with_captions) == len(answered)   # blind prompts have none


@pytest.mark.parametrize("name,missing", [("youcook2", "checkpoint"), ("youcook2", "annotations"),
                                          ("activitynet", "videos"), ("egoschema", "answers"),
                                          ("egoschema", "captioner.checkpoint"), ("activitynet", "llm.url")])
def test_a_missing_value_names_its_key_before_any_work(name, missing, world, tmp_path):
    keep = [o for o in overrides_for(name, world, tmp_path) if not o.startswith(f"{missing}=")]
    with pytest.raises(ValueError, match=rf"missing mandatory values: {re.escape(missing)} \(for [\w.]+\); "
                                         rf"set them on the command line, e.g. {re.escape(missing)}=\.\.\."):
        run_compare(preset(name, keep))
    assert not (tmp_path / "outputs").exists()                          # nothing ran, nothing was written


def test_every_missing_value_is_listed(tmp_path):
    with pytest.raises(ValueError) as e:
        run_compare(preset("youcook2", [f"paths.root={tmp_path}"]))
    named = re.findall(r"(?:: |, )([\w.]+) \(for ", str(e.value))
    assert sorted(named) == ["annotations", "captioner.checkpoint", "checkpoint", "llm.model", "llm.url", "videos"]


@pytest.mark.parametrize("name,key", [("youcook2", "annotations"), ("egoschema", "questions"),
                                      ("activitynet", "checkpoint"), ("egoschema", "checkpoint")])
def test_a_wrong_path_names_the_file(name, key, world, tmp_path):
    from evals.contracts import ConfigError

    bad = tmp_path / "nowhere" / "thing"
    with pytest.raises((FileNotFoundError, ConfigError), match=re.escape(str(bad))):   # before any item
        run(name, world, tmp_path, f"{key}={bad}")
    assert not list(tmp_path.rglob("predictions.jsonl"))


LONG = {"mlvu": ANN / "mlvu" / "json", "videomme": ANN / "videomme" / "test.json",
        "longvideobench": ANN / "longvideobench" / "lvb_val.json", "lvbench": ANN / "lvbench" / "video_info.meta.jsonl"}
OFFICIAL_COLUMNS = {
    "mlvu": ["M-Avg", "accuracy", "accuracy/findNeedle", "accuracy/plotQA", "accuracy/topic_reasoning"],
    "videomme": ["accuracy", "accuracy/long", "accuracy/medium", "accuracy/short"],
    "longvideobench": ["accuracy", "accuracy/3600", "accuracy/600"],
    "lvbench": ["accuracy", "accuracy/question_type=event understanding",
                "accuracy/question_type=key information retrieval", "accuracy/question_type=reasoning",
                "accuracy/question_type=temporal grounding"]}


@pytest.mark.parametrize("name", sorted(LONG))
def test_long_video_presets_refuse_missing_paths_and_table_the_official_aggregate(name, tmp_path):
    """Each long-video preset names its missing paths; on its fixture, with a predictions file as a row (no video
    is read), the table shows the official aggregate and breakdown, paired against a constant choice."""
    from evals.benchmarks.base import AnnotationWarning

    cfg = preset(name, [f"paths.root={tmp_path}"])
    assert all(OmegaConf.is_missing(cfg, k) for k in ("annotations", "videos", "checkpoint"))
    with pytest.warns(AnnotationWarning) if name in ("mlvu", "videomme") else _nothing():
        samples = instantiate(preset(name, [f"annotations={LONG[name]}", "videos=/nowhere"]).benchmarks[name]).load()
    preds = tmp_path / "theirs.jsonl"
    preds.write_text("".join(json.dumps({"uid": s.uid, "choice": s.answer or 0}) + "\n" for s in samples))
    cfg = preset(name, [f"paths.root={tmp_path}", f"annotations={LONG[name]}", f"videos={tmp_path}", "checkpoint=x",
                        "~systems.video_first", "~systems.captions_llm", "~systems.blind_llm", *FAST,
                        "+system@systems.first=constant_choice", "+system@systems.theirs=from_predictions",
                        f"systems.theirs.path={preds}", "systems.theirs.tasks=[mcqa]"])
    with pytest.warns(AnnotationWarning) if name in ("mlvu", "videomme") else _nothing():
        out = run_compare(cfg)
    table = out["table"]
    assert table.columns == [(name, c) for c in OFFICIAL_COLUMNS[name]] and table.rows == ["first", "theirs"]
    assert table.cells[("theirs", (name, "accuracy"))].value == 1.0 and not out["problems"]
    if name in ("videomme", "longvideobench"):        # the switch, and the table says which
        assert f"{name}: without subtitles (no row reads them)" in table.markdown()
        assert cfg.out_dir.endswith(f"/compare/{name}/subtitles_False") and cfg.subtitles is False
        on = preset(name, ["subtitles=true", "subtitle_dir=/subs"])
        assert on.systems.video_first.subtitles is True and on.systems.captions_llm.subtitles is True
        assert on.benchmarks[name].subtitle_root == "/subs" and on.out_dir.endswith("subtitles_True")


def _nothing():
    import contextlib

    return contextlib.nullcontext()


def test_hidden_answers_get_the_official_submission_file(tmp_path):
    """EgoSchema's full set (answers hidden but for the public subset): each row's Kaggle file `q_uid,answer`, in the
    file's order, with the questions it has no answer for left out (never filled in), said in the footer."""
    qs = json.loads((ANN / "egoschema" / "questions.json").read_text())
    preds = tmp_path / "theirs.jsonl"
    preds.write_text("".join(json.dumps({"uid": q["q_uid"], "text": "I am not sure"} if i == 1 else
                                        {"uid": q["q_uid"], "choice": i % 5}) + "\n" for i, q in enumerate(qs)))
    cfg = preset("egoschema", [f"paths.root={tmp_path}", f"questions={ANN / 'egoschema' / 'questions.json'}",
                               f"answers={ANN / 'egoschema' / 'subset_answers.json'}", f"videos={tmp_path}",
                               "checkpoint=x", "benchmarks.egoschema.only_answered=false", "~systems.video_first",
                               "~systems.captions_llm", "~systems.blind_llm", *FAST,
                               "+system@systems.theirs=from_predictions", f"systems.theirs.path={preds}"])
    out = run_compare(cfg)
    sub = (Path(cfg.out_dir) / "submissions" / "egoschema" / "theirs_submission.csv").read_text().splitlines()
    assert sub[0] == "q_uid,answer" and len(sub) == len(qs)                 # header + every question but one
    assert sub[1:] == [f"{q['q_uid']},{i % 5}" for i, q in enumerate(qs) if i != 1]
    assert f"egoschema / theirs: submission file submissions/egoschema/theirs_submission.csv ({len(qs) - 1} of " \
           f"{len(qs)} questions; 1 without an answer left out, never filled in)" in out["table"].markdown()
