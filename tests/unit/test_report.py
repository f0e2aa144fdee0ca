"""The static HTML report written after run_compare: one self-contained folder (page, plots, thumbnails),
data for every item, per-item scores as scored, relative links only; a failing report keeps the table."""
import json
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from evals import config_dir
from evals.runner import run_compare
from evals.store import read_predictions

pytestmark = pytest.mark.java   # the summary benchmark's caption metrics tokenize with Java

TINY = ["synthetic.n_train=6", "synthetic.n_val=2", "synthetic.n_test=3", "synthetic.max_duration=24",
        "progress=false", "stats.resamples=200", "metrics.caption=[ROUGE-L,CIDEr]",
        "table.columns.summarization=[ROUGE-L,CIDEr]", "+systems.echo._target_=tests.helpers.SlowEcho"]
SYSTEMS = ["train_prior", "first_option", "echo"]


def cfg_for(overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("compare", overrides=overrides)


def fake_memory_figure(path: Path) -> Path:
    """The memory study's curve (drawn by longvid.encoder_memory, which owns its rows' schema) from made-up rows."""
    from longvid.encoder_memory import memory_curve

    rows = [{"model": "ours", "attention": a, "mask": m, "tuning": "full", "frames": f,
             "act_peak_MB": f * (2 - m) * (1.5 if a == "joint" else 1)}
            for a in ("joint", "factorized") for m in (0.0, 0.75) for f in (16, 32, 64)]
    rows.append({"model": "vivit", "mask": 0.0, "tuning": "full", "frames": 16, "error": "timeout"})
    assert memory_curve(rows, path) and not memory_curve(rows[-1:], path.with_name("none.png"))
    return path


def page_data(html: str) -> dict:
    m = re.search(r'<script id="report-data" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


def expected_disagree(out: Path) -> dict[tuple[str, str], bool]:
    """(benchmark, uid) -> do the systems' answers differ, from the prediction stores alone."""
    res = {}
    for bdir in (p for p in out.iterdir() if p.is_dir() and p.name != "report"):
        preds = [read_predictions(s / "predictions.jsonl") for s in bdir.iterdir() if s.is_dir()]
        qa = any(p.choice is not None for ps in preds for p in ps.values())
        for uid in preds[0]:
            answers = {(p.choice if qa else " ".join((p.text or "").split())) if not p.failure else None
                       for p in (ps[uid] for ps in preds)}
            res[(bdir.name, uid)] = len(preds) > 1 and len(answers) > 1
    return res


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    fig = fake_memory_figure(tmp / "encoder_memory_curve.png")
    cfg = cfg_for([f"paths.root={tmp}", f"out_dir={tmp / 'out'}", *TINY,
                   f"report_options.figures=[{{path:'{fig}',caption:'memory vs frames'}}]"])
    return cfg, run_compare(cfg)


def test_report_folder_is_complete_and_self_contained(run):
    cfg, summary = run
    out = Path(summary["out"])
    rdir = out / "report"
    assert summary["report"] == rdir / "index.html" and (out / "table.md").is_file()
    html = (rdir / "index.html").read_text()
    for s in SYSTEMS:
        assert f'data-system="{s}"' in html
    # every image / link is relative and inside the report folder; no absolute paths at all
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    data = page_data(html)
    refs += [f["src"] for it in data["items"] for f in it["frames"]]
    for ref in refs:
        if ref.startswith("data:"):
            continue
        assert not re.match(r"^[a-z]+:|^/", ref), ref
        target = (rdir / ref).resolve()
        assert target.is_relative_to(rdir.resolve()) and target.is_file(), ref
    assert "file://" not in html and str(out.parent) not in html
    plots = {p.name for p in (rdir / "plots").iterdir()}
    assert plots == {"synthetic_summary_metrics.png", "synthetic_qa_metrics.png", "synthetic_qa_kinds.png",
                     "figure0_encoder_memory_curve.png"}
    assert "memory vs frames" in html
    assert all((rdir / "plots" / p).stat().st_size > 5000 for p in plots)
    assert not (out / ".report.tmp").exists() and not (out / "report_error.txt").exists()


def test_report_has_every_item_with_outputs_and_per_item_scores(run):
    cfg, summary = run
    out = Path(summary["out"])
    data = page_data((out / "report" / "index.html").read_text())
    items = {(it["bench"], it["uid"]): it for it in data["items"]}
    for b in ("synthetic_summary", "synthetic_qa"):
        samples = instantiate(cfg.benchmarks[b]).load()
        assert {u for bb, u in items if bb == b} == {s.uid for s in samples}
        for s in samples:
            it = items[(b, s.uid)]
            assert len(it["frames"]) == 4 and it["kind"] == (s.category or "")
            assert it["question"] == s.question and it["options"] == list(s.options)
            for name, res in summary["scores"][b].items():
                o = it["outputs"][name]
                pred = read_predictions(out / b / name / "predictions.jsonl")[s.uid]
                assert o["text"] == pred.text and o["choice"] == pred.choice
                metric = "accuracy" if s.task == "mcqa" else "ROUGE-L"
                assert o["scores"][metric] == pytest.approx(res[metric].per_item[s.uid])
                if s.task == "mcqa":
                    assert o["scores"]["accuracy"] == float(pred.choice == s.answer)
    assert {k: it["disagree"] for k, it in items.items()} == expected_disagree(out)
    assert any(it["disagree"] for it in items.values()) and not all(it["disagree"] for it in items.values())
    kinds = {it["kind"] for it in items.values() if it["bench"] == "synthetic_qa"}
    assert kinds == {"local", "long-range"}


def test_a_missing_figure_is_a_note_and_report_failure_keeps_the_table(run, monkeypatch):
    import copy

    import evals.report

    cfg, summary = copy.deepcopy(run[0]), run[1]
    out = Path(summary["out"])
    cfg.report_options.figures = [{"path": str(out / "nowhere" / "encoder_memory_curve.png"), "caption": "m"}]
    evals.report.write_report(cfg, summary)
    html = (out / "report" / "index.html").read_text()
    assert "figure encoder_memory_curve.png not found" in html
    assert not list((out / "report" / "plots").glob("figure*"))

    def boom(*a, **k):
        raise RuntimeError("deliberate report failure")

    monkeypatch.setattr(evals.report, "write_report", boom)
    (out / "table.md").unlink()
    res = run_compare(cfg)       # resumes: nothing is predicted again
    assert res["report"] is None and (out / "table.md").is_file()
    assert "deliberate report failure" in (out / "report_error.txt").read_text()


def test_inlined_json_cannot_end_the_script_element():
    from evals.report import _json_literal

    text = _json_literal({"out": "</script><script>alert(1)</script><!--", "nan": float("nan"), "ls": "a\u2028b"})
    assert "<" not in text and "NaN" not in text and "\u2028" not in text
    assert json.loads(text) == {"out": "</script><script>alert(1)</script><!--", "nan": None, "ls": "a\u2028b"}
