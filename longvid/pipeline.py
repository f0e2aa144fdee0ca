"""`longvid-pipeline`: from nothing to the comparison table — the README's main command.

The steps (`configs/pipeline.yaml`) run the suite's own commands, each in a subprocess, in order: convert the
LLM, contrastive training (ImageViT, ShortViViT, then LongViViT from it), video-to-text training for each
encoder (summaries, then multiple choice from that connector) and the ShortViViT captioner, then one paired
comparison of every system (end-to-end rows and the modular baseline through a vLLM server), with the report.

Caching: a step records the digest of its command line (and of the steps it depends on) in
`<state_dir>/<step>.json` when it starts and again when it finishes. A finished step whose digest is unchanged
and whose output exists is skipped without starting anything. A step started under another digest has its
run directory cleared first; one interrupted under the same digest is simply run again — training resumes exactly
from its last checkpoint (longvid/data/resumable.py) and the comparison from its prediction files — so
killing the pipeline at any point (Ctrl-C, SIGTERM, even SIGKILL: a step's process dies with the pipeline)
and rerunning it finishes the job with the same table.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


class Step:
    """One command of the pipeline: `python -m module args` (an installed module: the pipeline runs from a wheel)."""

    def __init__(self, name: str, module: str, args: list[str], output: str, clear: str | None = None,
                 after: list[str] | None = None):
        self.name, self.module, self.args, self.output = name, module, [str(a) for a in args], output
        self.clear, self.after = clear, list(after or [])

    def command(self) -> list[str]:
        return [sys.executable, "-m", self.module, *self.args]

    def __repr__(self) -> str:
        return f"Step({self.name!r}, {self.module} {' '.join(self.args)})"


def plan(cfg) -> list[Step]:
    from omegaconf import OmegaConf

    steps = []
    plugins = [f"plugins=[{','.join(cfg.plugins)}]"] if cfg.get("plugins") else []   # the steps find them too
    for name, s in cfg.steps.items():
        if s is None:          # a step switched off by config (`steps.imagevit=null`)
            continue
        d = OmegaConf.to_container(s, resolve=True)
        unknown = set(d) - {"module", "args", "output", "clear", "after", "common"}
        if unknown or "module" not in d or "output" not in d:
            raise ValueError(f"pipeline step {name!r}: needs `module` and `output` (and optionally args, clear, "
                             f"after, common); unknown keys {sorted(unknown)}")
        common = list(cfg.common_args) + plugins if d.get("common", True) else []   # Hydra commands: data + paths
        extra = list((cfg.get("module_args") or {}).get(d["module"].rsplit(".", 1)[-1]) or [])   # longvid.train -> train
        steps.append(Step(name, d["module"], list(d.get("args") or []) + common + extra, d["output"],
                          d.get("clear"), d.get("after")))
    names = {s.name for s in steps}
    for s in steps:
        missing = [a for a in s.after if a not in names]
        if missing:
            raise ValueError(f"pipeline step {s.name!r} runs after {missing}, which are not steps")
    return steps


def _read_state(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):         # missing, or cut short by a kill: the step is simply not done
        return {}


def _write_state(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, path)                 # atomic: a kill leaves the old state or the new one


def run(cfg) -> Path:
    from evals.process import die_with_parent

    state_dir = Path(cfg.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    digests: dict[str, str] = {}
    t_all = time.perf_counter()
    for step in plan(cfg):
        digest = _digest({"module": step.module, "args": step.args, "after": [digests[a] for a in step.after]})
        digests[step.name] = digest
        state_file = state_dir / f"{step.name}.json"
        state = _read_state(state_file)
        if state.get("digest") == digest and state.get("done") and Path(step.output).exists():
            print(f"[pipeline] {step.name}: done before, skipped", flush=True)
            continue
        if state.get("digest") not in (None, digest) and step.clear and Path(step.clear).exists():
            print(f"[pipeline] {step.name}: its configuration changed: clearing {step.clear}", flush=True)
            shutil.rmtree(step.clear)
        cmd = step.command()
        _write_state(state_file, {"digest": digest, "done": False, "args": step.args})
        print(f"[pipeline] {step.name}: {step.module} {' '.join(a for a in step.args if a not in cfg.common_args)}",
              flush=True)
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, env={**os.environ, **dict(cfg.env or {})}, preexec_fn=die_with_parent())
        try:
            code = proc.wait()
        finally:                     # interrupted (Ctrl-C, SIGTERM): stop the step too, not leave it orphaned
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
        if code != 0:
            raise SystemExit(f"[pipeline] step {step.name!r} failed (exit code {code}); rerun the same "
                             f"command to resume from where it stopped")
        if not Path(step.output).exists():
            raise SystemExit(f"[pipeline] step {step.name!r} finished but wrote no {step.output}")
        secs = time.perf_counter() - t
        _write_state(state_file, {"digest": digest, "done": True, "args": step.args, "seconds": round(secs, 1)})
        print(f"[pipeline] {step.name}: {secs:.0f} s", flush=True)
    print(f"[pipeline] all steps done in {time.perf_counter() - t_all:.0f} s", flush=True)
    return Path(cfg.table)


def main() -> None:
    import signal

    from evals import hydra_main

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # so that the running step is stopped as well

    def _main(cfg) -> None:
        table = run(cfg)
        if table.exists():
            print(table.read_text())

    hydra_main("pipeline", _main)


if __name__ == "__main__":
    main()
