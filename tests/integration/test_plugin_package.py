"""Plugging in from your own repository: `plugins=[pkg]` (errors before anything runs), the example plug-in package
(examples/plugin_package: a captioner, an LLM backend, a benchmark, a system, a compare preset), and the suite as
a built wheel installed outside the checkout, run from another directory, giving the checkout's table."""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from evals import PluginError, config_dir, plugin_config_dir, with_plugins

REPO = Path(__file__).resolve().parents[2]
PLUGIN_DIR = REPO / "examples" / "plugin_package"
PLUGIN = "longvid_example_plugin"
TINY = ["synthetic.n_train=6", "synthetic.n_val=2", "synthetic.n_test=6", "synthetic.max_duration=32",
        "progress=false", "report_options.thumbnails=1"]


@pytest.fixture
def plugin_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    yield
    for m in [m for m in sys.modules if m.startswith(PLUGIN)]:
        del sys.modules[m]


# --- plugins=[...] -------------------------------------------------------------------------------------------------
def test_plugins_become_search_path_entries_and_keep_the_users_entries(plugin_on_path, tmp_path):
    argv, names = with_plugins(["compare=plugin_demo", f"plugins=[{PLUGIN}]", f"hydra.searchpath=[file://{tmp_path}]"])
    conf = PLUGIN_DIR / PLUGIN / "configs"
    assert names == [PLUGIN] and plugin_config_dir(PLUGIN) == conf.resolve()
    assert argv == ["compare=plugin_demo", f"plugins=[{PLUGIN}]",
                    f"hydra.searchpath=['file://{tmp_path}','file://{conf.resolve()}']"]
    assert with_plugins(["x=1"]) == (["x=1"], [])


@pytest.mark.parametrize("arg, message", [
    ("plugins=[no_such_pkg_xyz]", "cannot import 'no_such_pkg_xyz'.*pip install -e"),
    ("plugins=[json]", "package 'json' has no configs/ folder"),
    ("plugins=[os]", "'os' is a module"),
    ("hydra.searchpath=[pkg://no_such_pkg_xyz.configs]", "'pkg://no_such_pkg_xyz.configs' is not a folder"),
    ("hydra.searchpath=[file:///no/such/dir]", "'file:///no/such/dir' is not a folder"),
])
def test_a_plugin_that_cannot_be_used_is_named(arg, message):
    with pytest.raises(PluginError, match=message):
        with_plugins([arg])


def test_the_commands_refuse_a_bad_plugin_before_running(tmp_path):
    bin_dir = Path(sys.executable).parent
    p = subprocess.run([str(bin_dir / "longvid-compare"), "plugins=[no_such_pkg_xyz]"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "longvid-compare: plugins: cannot import 'no_such_pkg_xyz'" in p.stderr
    assert not (tmp_path / "outputs").exists()
    # a plugins key in a config file cannot extend the search path: refused, not ignored
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "mine.yaml").write_text("defaults:\n  - compare\n  - _self_\nplugins: [json]\n")
    p = subprocess.run([str(bin_dir / "longvid-compare"), "--config-dir", str(tmp_path / "c"), "--config-name", "mine"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "is set in a config file" in p.stderr, p.stderr[-2000:]
    # a plug-in's own config is checked like the suite's, before the first item: its mandatory file is named
    p = subprocess.run([str(bin_dir / "longvid-compare"), f"plugins=[{PLUGIN}]", "compare=plugin_demo",
                        "+benchmark@benchmarks.csv_qa=csv_qa"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120, env=_clean_env(PYTHONPATH=str(PLUGIN_DIR)))
    assert p.returncode == 2 and "benchmarks.csv_qa.file" in p.stderr, p.stderr[-2000:]
    assert not (tmp_path / "outputs" / "compare").exists()


# --- the example package's parts, alone ------------------------------------------------------------------------------
def test_example_captioner_reads_the_pixels(plugin_on_path):
    from evals.contracts import Clip
    from longvid_example_plugin.captioner import ColourCaptioner

    frames = np.full((2, 32, 32, 3), 16, np.uint8)
    frames[0, 4:10, 2:8] = (230, 40, 40)          # a red square on the left ...
    frames[1, 4:10, 24:30] = (230, 40, 40)        # ... then on the right
    moved, turned, empty = frames.copy(), frames.copy(), np.full((2, 32, 32, 3), 16, np.uint8)
    turned[1, 4:10, 24:30] = (50, 90, 240)
    cap = ColourCaptioner()
    assert cap.caption([Clip(moved, 0, 2), Clip(turned, 0, 2), Clip(empty, 0, 2)]) == [
        "a red object moves right", "a red object turns blue", "an empty scene"]


def test_example_llm_declares_and_does_chat_score_and_choice(plugin_on_path, tmp_path):
    from evals.contracts import LLMBackend
    from evals.parsing import format_options
    from longvid_example_plugin.llm import WordOverlapLLM

    llm = WordOverlapLLM(model="w", cache=str(tmp_path / "c.sqlite"))
    assert isinstance(llm, LLMBackend) and llm.capabilities == {"chat", "score", "choice"}
    llm.check()
    caps = "[0s-8s] a red object moves left\n[8s-16s] a red object turns blue"
    opts = ["a green cross grows", "a red object turns blue", "a white circle spins"]
    ask = [{"role": "user", "content": f"{caps}\n\nQuestion: what happened?\n{format_options(opts)}"}]
    assert llm.chat([ask], choice=["A", "B", "C"]) == ["B"]
    assert llm.chat([ask]) == ["Answer: B"]
    (sums,) = llm.score([[{"role": "user", "content": caps}]], [opts])
    assert max(range(3), key=lambda i: sums[i][0] / sums[i][1]) == 1 and sums[1][0] == 0.0
    summary = llm.chat([[{"role": "user", "content": caps}]])[0]
    assert summary == "A red object moves left. A red object turns blue."
    with pytest.raises(Exception, match="empty reply"):          # nothing to say is a failure, never cached
        llm.chat([[{"role": "user", "content": "no captions here"}]])


def test_example_benchmark_and_system(plugin_on_path, tmp_path):
    from evals.benchmarks.base import AnnotationError, AnnotationWarning
    from longvid_example_plugin.benchmark import CsvQA
    from longvid_example_plugin.system import LongestOption

    f = tmp_path / "qa.csv"
    f.write_text("uid,video,question,option_0,option_1,option_2,answer\n"
                 "q1,v1,what?,short,the longest one,mid one,1\n"
                 "q2,v2,which?,aa,bb,,\n")
    with pytest.warns(AnnotationWarning, match="1 questions without an answer \\(q2\\)"):
        samples = CsvQA(str(f), str(tmp_path)).load()
    assert [(s.uid, s.options, s.answer) for s in samples] == [
        ("q1", ("short", "the longest one", "mid one"), 1), ("q2", ("aa", "bb"), None)]
    assert samples[0].video == str(tmp_path / "v1.mp4")
    assert [p.choice for p in LongestOption().predict(samples)] == [1, 0]     # a tie: the first of the longest
    f.write_text("uid,video,question,option_0,answer\nq1,v1,what?,x,3\n")
    with pytest.raises(AnnotationError, match="qa.csv: line 2: answer '3'"):
        CsvQA(str(f)).load()


# --- end to end: the checkout and a built wheel ------------------------------------------------------------------
def _write_csv(data_root: Path, out: Path) -> tuple[Path, Path]:
    """The synthetic QA test split as the example benchmark's CSV (a second benchmark, on the same videos)."""
    from evals.synthetic import SyntheticBenchmark, SyntheticConfig

    cfg = SyntheticConfig(n_train=6, n_val=2, n_test=6, max_duration=32)
    samples = SyntheticBenchmark(str(data_root / "synthetic"), "mcqa", generator=cfg.__dict__).load()
    k = max(len(s.options) for s in samples)
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["uid", "video", "question", *[f"option_{i}" for i in range(k)], "answer"])
        for s in samples:
            w.writerow([f"csv-{s.uid}", s.video_id, s.question, *s.options, *[""] * (k - len(s.options)), s.answer])
    return out, Path(samples[0].video).parent


def _compare(command: Path, cwd: Path, env: dict, extra: list[str]) -> str:
    p = subprocess.run([str(command), f"plugins=[{PLUGIN}]", "compare=plugin_demo", *TINY, *extra], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return (cwd / "outputs" / "compare" / "plugin_demo" / "table.md").read_text()


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LONGVID_HOME", "VIRTUAL_ENV")}
    return {**env, **extra}


@pytest.mark.slow
@pytest.mark.java
def test_wheel_outside_the_checkout_runs_the_plugin_comparison_like_the_checkout(tmp_path):
    """Build the suite's wheel and the example package's, install both into a fresh virtual environment that reuses
    this one's dependencies (a .pth, no network), then from a folder outside the checkout: every console script
    answers, the encoder-memory step runs as a module, and the plug-in comparison prints the checkout's table (and
`longvid-table` rebuilds it)."""
    # the checkout: the plug-in found on PYTHONPATH, the suite from this environment
    here = tmp_path / "checkout_run"
    here.mkdir()
    csv_file, videos = _write_csv(here / "data", tmp_path / "qa.csv")
    extra = ["+benchmark@benchmarks.csv_qa=csv_qa", f"benchmarks.csv_qa.file={csv_file}",
             f"benchmarks.csv_qa.video_root={videos}"]
    table = _compare(Path(sys.executable).parent / "longvid-compare", here, _clean_env(PYTHONPATH=str(PLUGIN_DIR)),
                     extra)
    assert "| longest_option |" in table and "csv_qa accuracy" in table and "colour_captions" in table

    # the wheels, built from a copy of the sources (the build writes nothing into the checkout)
    src = tmp_path / "src"
    local = {".git", ".venv", "outputs", "data", "cache", "build", ".pytest_cache"}     # the checkout's, not code
    shutil.copytree(REPO, src, symlinks=True, ignore=lambda d, names: [
        n for n in names if (Path(d) == REPO and n in local) or n == "__pycache__" or n.endswith(".egg-info")])
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index", "--no-build-isolation", "-q",
                    "-w", str(dist), str(src), str(src / "examples" / "plugin_package")], check=True, timeout=600)
    wheels = sorted(dist.glob("*.whl"))
    assert [w.name.split("-")[0] for w in wheels] == ["longvid", "longvid_example_plugin"]

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], check=True, capture_output=True, text=True).stdout.strip())
    (site / "zz_longvid_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")   # after its own
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps",
                    "--no-index", "-q", *map(str, wheels)], check=True, timeout=600)

    away = tmp_path / "elsewhere"
    away.mkdir()
    env = _clean_env()
    py, bin_dir = str(venv / "bin" / "python"), venv / "bin"
    where = subprocess.run([py, "-c", "import evals, longvid, baselines, longvid_example_plugin as p; "
                            "print(evals.config_dir()); print(longvid.__file__, baselines.__file__, p.__file__)"],
                           cwd=away, env=env, check=True, capture_output=True, text=True).stdout.split()
    assert all(Path(w).is_relative_to(site) for w in where), where        # the wheel's copies, not the checkout's
    assert Path(where[0], "compare.yaml").is_file() and Path(where[0], "benchmark", "youcook2.yaml").is_file()

    for script in ("longvid-compare", "longvid-pipeline", "longvid-train", "longvid-train-v2t", "longvid-score",
                   "longvid-retrieval"):
        p = subprocess.run([str(bin_dir / script), "--help"], cwd=away, env=env, capture_output=True, text=True,
                           timeout=300)
        assert p.returncode == 0 and "Configuration groups" in p.stdout, (script, p.stderr[-2000:])
    p = subprocess.run([str(bin_dir / "longvid-smollm2"), "--help"], cwd=away, env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0 and "usage: longvid-smollm2" in p.stdout
    p = subprocess.run([str(bin_dir / "longvid-table"), "--help"], cwd=away, env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.startswith("`longvid-table OUT_DIR")
    p = subprocess.run([str(bin_dir / "longvid-synth"), "synth", "n_train=1", "n_val=1", "n_test=1",
                        "max_duration=16"], cwd=away, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and (away / "synth").is_dir(), p.stderr[-2000:]
    p = subprocess.run([py, "-m", "longvid.encoder_memory", "--frames", "16", "--tunings", "full", "--no-peers",
                        "--no-peak", "--threads", "0", "--steps", "1", "--budget", "1", "--ab-rounds", "0", "--skip",
                        "ours/factorized/*", "ours/*/m0.5/*", "--out", "mem"], cwd=away, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0 and (away / "mem" / "encoder_memory.json").is_file(), p.stderr[-2000:]

    assert _compare(bin_dir / "longvid-compare", away, env, extra) == table
    p = subprocess.run([str(bin_dir / "longvid-table"), "outputs/compare/plugin_demo", "report=false"], cwd=away,
                       env=env, capture_output=True, text=True, timeout=300)     # rebuilt, no system built
    assert p.returncode == 0 and p.stdout.startswith(table), p.stderr[-2000:]
    assert (away / "outputs" / "compare" / "plugin_demo" / "report" / "index.html").is_file()


def test_readme_plugging_in_shows_the_tested_files():
    """Every code block of README's "Plugging in" is a verbatim excerpt of the example package tested above."""
    import re

    readme = (REPO / "README.md").read_text()
    start = readme.index("## Plugging in")
    section = readme[start:readme.index("\n## ", start)]
    blocks = re.findall(r"```(python|yaml)\n(.*?)```", section, re.S)
    sources = "".join(p.read_text() for p in sorted((PLUGIN_DIR / PLUGIN).rglob("*")) if p.suffix in (".py", ".yaml"))
    assert len(blocks) == 8
    for _, block in blocks:
        assert block in sources, block
