"""The paired runner: N systems x one or more benchmarks, the same samples and the same `video.*` sampling
for every system; predictions appended as they are made (resumable), per-item failures recorded, then
scored and written as one comparison table (Markdown, CSV, LaTeX)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from evals.contracts import Prediction, Sample
from evals.scoring import score, with_choice
from evals.store import PredictionStore
from evals.tables import build_table


def config_hash(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _batches(xs: Sequence, n: int):
    for i in range(0, len(xs), n):
        yield xs[i:i + n]


def _failure(s: Sample, system: str, reason: str) -> Prediction:
    return Prediction(uid=s.uid, system=system, failure=reason)


def predict_all(system, samples: Sequence[Sample], store: PredictionStore, batch_size: int,
                broken: dict[str, str], provenance: dict, progress: bool = True) -> None:
    """Run `system` on the samples not yet done, appending to `store` as each batch finishes. A batch
    that raises is retried item by item, so one bad item costs only itself."""
    from tqdm import tqdm

    done = store.done()
    todo = [s for s in samples if s.uid not in done]
    with tqdm(total=len(samples), initial=len(samples) - len(todo), desc=f"{system.name}",
              unit="item", disable=not progress, file=sys.stderr) as bar:
        pre = [_failure(s, system.name, broken[s.uid]) for s in todo if s.uid in broken]
        # an unchanged failure (e.g. the same missing video on a rerun) is not written again
        store.append([p for p in pre if getattr(store.predictions.get(p.uid), "failure", None) != p.failure])
        bar.update(len(pre))
        runnable = [s for s in todo if s.uid not in broken]
        for batch in _batches(runnable, batch_size):
            for preds in _run_batch(system, batch):
                store.append([_finish(p, s, provenance) for p, s in preds])
                bar.update(len(preds))


def _run_batch(system, batch: Sequence[Sample]):
    """Yields lists of (prediction, sample), one per item of the batch, never raising."""
    from dataclasses import replace

    by_uid = {s.uid: s for s in batch}
    t0 = time.perf_counter()
    try:
        got = {}
        for p in system.predict(batch):
            if p.uid not in by_uid:
                raise RuntimeError(f"system returned a prediction for unknown uid {p.uid!r}")
            got[p.uid] = p
    except Exception as e:  # noqa: BLE001 - isolate the failing item
        if len(batch) == 1:
            yield [(_failure(batch[0], system.name, f"{type(e).__name__}: {e}"), batch[0])]
        else:
            for s in batch:
                yield from _run_batch(system, [s])
        return
    per_item = (time.perf_counter() - t0) / len(batch)
    out = []
    for s in batch:
        p = got.get(s.uid) or _failure(s, system.name, "system returned no prediction for this item")
        out.append((p if p.seconds else replace(p, seconds=per_item), s))
    yield out


def _finish(p: Prediction, s: Sample, provenance: dict) -> Prediction:
    from dataclasses import replace

    return with_choice(replace(p, provenance={**provenance, **dict(p.provenance)}), s)


def check_videos(samples: Sequence[Sample], video_check=None, progress: bool = True) -> dict[str, str]:
    """uid -> reason for items whose video is missing (or unreadable, if `video_check(path)` raises)."""
    from tqdm import tqdm

    reasons: dict[str, str] = {}
    by_path: dict[str | None, list[Sample]] = {}
    for s in samples:
        by_path.setdefault(s.video, []).append(s)
    for path, items in tqdm(by_path.items(), desc="checking videos", unit="video",
                            disable=not progress or video_check is None, file=sys.stderr):
        reason = None
        if path is None:
            reason = "no video root configured for this benchmark"
        elif not os.path.isfile(path):
            reason = f"video not found: {path}"
        elif video_check is not None:
            try:
                video_check(path)
            except Exception as e:  # noqa: BLE001 - recorded per item
                reason = str(e)
        if reason:
            for s in items:
                reasons[s.uid] = reason
    return reasons


_REF = re.compile(r"\$\{([A-Za-z_][\w.]*)\}")   # a whole value that is one absolute interpolation


def missing_values(cfg) -> dict[str, str]:
    """Mandatory (`???`) values that the configured benchmarks and systems reach -> the key that reaches them.
    A value reached through an interpolation (`video_root: ${videos}`, `llm: ${llm}`) is named by its target
    (`videos`, `llm.url`): the key to set on the command line."""
    from omegaconf import OmegaConf

    root = OmegaConf.to_container(cfg, resolve=False)   # raw: "???" and "${...}" stay strings
    found: dict[str, str] = {}
    followed: set[str] = set()

    def lookup(path: str):
        node = root
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def walk(value, path: str, via: str | None = None) -> None:   # via: the key whose interpolation led here
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}.{k}", via)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]", via)
        elif value == "???":
            found.setdefault(path, via or path)
        elif isinstance(value, str) and (m := _REF.fullmatch(value)) and m[1] not in followed:
            followed.add(m[1])
            walk(lookup(m[1]), m[1], via or path)

    for group in ("benchmarks", "systems"):
        walk(root.get(group) or {}, group)
    return found


def run_compare(cfg) -> dict:
    """Run, score and tabulate. `cfg` is the composed `compare` config. Returns a summary dict."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    missing = missing_values(cfg)
    if missing:   # before any work: a forgotten path must not surface hours later as failed items
        raise ValueError("missing mandatory values: " + ", ".join(
            k if k == user else f"{k} (for {user})" for k, user in missing.items())
            + f"; set them on the command line, e.g. {next(iter(missing))}=...")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    progress = bool(cfg.get("progress", True))
    video_check = instantiate(cfg.video_check) if cfg.get("video_check") else None
    scores, footer, failures = {}, [], {}
    columns = {}
    systems: dict = {}     # built once per run (and closed at the end, also on error: launched servers stop)
    try:
        for bname, bcfg in cfg.benchmarks.items():
            bench = instantiate(bcfg)
            samples = bench.load()
            broken = check_videos(samples, video_check, progress)
            bhash = OmegaConf.to_container(bcfg, resolve=True)
            scores[bname] = {}
            task = samples[0].task
            for sname, scfg in cfg.systems.items():
                if sname not in systems:
                    systems[sname] = instantiate(scfg, name=sname)
                system = systems[sname]
                if task not in system.tasks:
                    continue
                if hasattr(system, "prepare"):
                    system.prepare(bench)
                sconf = OmegaConf.to_container(scfg, resolve=True)
                h = config_hash({"system": sconf, "benchmark": bhash})
                store = PredictionStore(out / bname / sname, h, {"system": sconf, "benchmark": bhash})
                predict_all(system, samples, store, int(cfg.batch_size), broken,
                            {"system": sname, "config_hash": h}, progress)
                preds = {u: p for u, p in store.predictions.items()}
                scores[bname][sname] = score(samples, preds, list(cfg.metrics.caption),
                                             float(cfg.metrics.meteor_timeout))
                failed = [p for p in preds.values() if p.failure]
                failures[(bname, sname)] = failed
                acc = scores[bname][sname].get("accuracy")
                note = f"{bname} / {sname}: {len(samples)} items, {len(failed)} failed"
                if acc is not None:
                    i = acc.info
                    note += (f", {i['n_unparseable']} unparseable ({100 * i['unparseable_rate']:.1f}%), "
                             f"{i['n_hidden']} without public answer (not scored); chance {100 * i['chance']:.1f}")
                footer.append(note)
            columns[bname] = _columns(cfg, task, scores[bname])
    finally:
        for system in systems.values():
            if hasattr(system, "close"):
                system.close()
    reference = cfg.reference or next(iter(cfg.systems))
    table = build_table(scores, columns, reference, int(cfg.stats.resamples), int(cfg.stats.seed),
                        float(cfg.stats.confidence))
    table.footer += footer
    _write(out, table, scores, failures)
    summary = {"table": table, "scores": scores, "failures": failures, "out": out}
    if cfg.get("report", True):   # after the table files: a failing report only warns (evals.report)
        from evals.report import write_report_safely

        summary["report"] = write_report_safely(cfg, summary)
    return summary


def _columns(cfg, task: str, per_sys: dict) -> list[str]:
    wanted = list(cfg.table.columns.get(task, []))
    if task == "mcqa":
        cats = sorted({m for res in per_sys.values() for m in res if m.startswith("accuracy/")})
        wanted = ["accuracy"] + cats
    return wanted


def _write(out: Path, table, scores, failures) -> None:
    (out / "table.md").write_text(table.markdown())
    (out / "table.csv").write_text(table.csv())
    (out / "table.tex").write_text(table.latex())
    plain = {b: {s: {m: {"value": r.value, **{k: v for k, v in r.info.items() if not callable(v)}}
                     for m, r in res.items()} for s, res in per.items()} for b, per in scores.items()}
    (out / "scores.json").write_text(json.dumps(plain, indent=1, default=str))
    with open(out / "failures.jsonl", "w") as f:
        for (b, s), preds in failures.items():
            for p in preds:
                f.write(json.dumps({"benchmark": b, "system": s, "uid": p.uid, "failure": p.failure}) + "\n")


def report(summary: dict) -> str:
    lines = [summary["table"].markdown()]
    for (b, s), preds in summary["failures"].items():
        if preds:
            lines.append(f"{b} / {s}: {len(preds)} failed items, e.g. {preds[0].uid}: {preds[0].failure}")
    lines.append(f"written to {summary['out']}/table.md, table.csv, table.tex, scores.json, failures.jsonl")
    if summary.get("report"):
        lines.append(f"report: {summary['report']} (open it in a browser)")
    return "\n".join(lines)


def main() -> None:
    import hydra

    from evals import config_dir

    @hydra.main(config_path=config_dir(), config_name="compare", version_base="1.3")
    def _main(cfg) -> None:
        print(report(run_compare(cfg)))

    _main()


if __name__ == "__main__":
    main()
