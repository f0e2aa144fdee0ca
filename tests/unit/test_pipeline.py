"""The pipeline's step caching: skip unchanged finished steps without starting them, rerun a changed step and
everything after it (clearing the changed step's run dir), resume an interrupted step."""
import json

import pytest
from omegaconf import OmegaConf

from longvid.pipeline import plan, run

STEP = '''
import os, sys, pathlib
out, log = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
with open(log, "a") as f:
    f.write(out.name + "\\n")
if os.path.exists(str(out) + ".fail"):
    sys.exit(3)
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(" ".join(sys.argv[3:]))
'''


def cfg_for(tmp_path, a_arg="x"):
    (tmp_path / "mods").mkdir(exist_ok=True)
    (tmp_path / "mods" / "fakestep.py").write_text(STEP)
    log = tmp_path / "calls.log"

    def step(name, extra, after=()):
        return {"module": "fakestep", "args": [str(tmp_path / name / "out.txt"), str(log), *extra],
                "output": str(tmp_path / name / "out.txt"), "clear": str(tmp_path / name), "after": list(after)}

    return OmegaConf.create({
        "state_dir": str(tmp_path / "state"), "table": str(tmp_path / "c" / "out.txt"),
        "env": {"PYTHONPATH": str(tmp_path / "mods")}, "common_args": ["common=1"],
        "steps": {"a": step("a", [a_arg]), "b": step("b", ["y"], after=["a"]), "c": step("c", ["z"], after=["b"]),
                  "off": None}})


def calls(tmp_path):
    return (tmp_path / "calls.log").read_text().split() if (tmp_path / "calls.log").exists() else []


def test_steps_are_cached_rerun_on_change_and_resumed(tmp_path):
    assert [s.name for s in plan(cfg_for(tmp_path))] == ["a", "b", "c"]         # a null step is switched off
    run(cfg_for(tmp_path))
    assert calls(tmp_path) == ["out.txt"] * 3
    assert (tmp_path / "c" / "out.txt").read_text() == "z common=1"
    run(cfg_for(tmp_path))                                                      # everything cached
    assert len(calls(tmp_path)) == 3
    (tmp_path / "a" / "stale.txt").write_text("from the old config")
    run(cfg_for(tmp_path, a_arg="x2"))                                          # a changed: a, b, c again
    assert len(calls(tmp_path)) == 6 and not (tmp_path / "a" / "stale.txt").exists()
    state = json.loads((tmp_path / "state" / "b.json").read_text())
    assert state["done"] and state["seconds"] >= 0
    # b fails: the run stops with a message; b's state says not done; fixed, a rerun runs b and c only
    (tmp_path / "b" / "out.txt").unlink()
    (tmp_path / "b" / "out.txt.fail").write_text("")
    with pytest.raises(SystemExit, match="step 'b' failed"):
        run(cfg_for(tmp_path, a_arg="x2"))
    (tmp_path / "b" / "out.txt.fail").unlink()
    before = len(calls(tmp_path))
    run(cfg_for(tmp_path, a_arg="x2"))
    assert len(calls(tmp_path)) == before + 1          # b only: c's digest and output are unchanged


def test_bad_step_config_names_the_step(tmp_path):
    cfg = cfg_for(tmp_path)
    cfg.steps.b.after = ["nope"]
    with pytest.raises(ValueError, match="'b' runs after \\['nope'\\]"):
        plan(cfg)
    cfg = cfg_for(tmp_path)
    cfg.steps.a.typo = 1
    with pytest.raises(ValueError, match="pipeline step 'a'.*typo"):
        plan(cfg)


def test_steps_run_installed_modules_and_forward_plugins(tmp_path):
    """Every step is `python -m <module>` (nothing found by repository path: the pipeline runs from a wheel);
    `common: false` steps (argparse) get no Hydra arguments; plug-ins reach every Hydra step."""
    from evals import config_dir

    cfg = cfg_for(tmp_path)
    cfg.steps.c = {"module": "longvid.encoder_memory", "args": ["--help"], "output": str(tmp_path / "o"),
                   "common": False}
    cfg.plugins = ["my_pkg", "other"]
    steps = {s.name: s for s in plan(cfg)}
    assert steps["c"].command()[1:] == ["-m", "longvid.encoder_memory", "--help"]
    assert steps["a"].args[-2:] == ["common=1", "plugins=[my_pkg,other]"]
    cfg.steps.c = {"script": "benchmarks/encoder_memory.py", "output": "o"}
    with pytest.raises(ValueError, match="needs `module` and `output`.*unknown keys \\['script'\\]"):
        plan(cfg)
    real = OmegaConf.load(f"{config_dir()}/pipeline.yaml")
    assert all("module" in s for s in real.steps.values() if s is not None)

def test_every_command_also_runs_as_a_module():
    """A pipeline step runs `python -m <module>`: every console command's module must run its command when
    executed (a module without the `__main__` guard exits 0 having done nothing)."""
    import importlib.util
    import tomllib

    from pathlib import Path

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    scripts = tomllib.loads(pyproject.read_text())["project"]["scripts"]
    for name, target in scripts.items():
        module = target.split(":")[0]
        source = Path(importlib.util.find_spec(module).origin).read_text()
        assert 'if __name__ == "__main__":' in source, f"{name}: python -m {module} would do nothing"
