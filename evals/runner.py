"""The paired runner: N systems x one or more benchmarks, the same samples and the same `video.*` sampling
for every system; predictions appended as they are made (resumable), per-item failures recorded, then
scored and written as one comparison table (Markdown, CSV, LaTeX).

Before the first item, everything that can be checked is (a `ConfigError` naming the key, file or `_target_`,
exit 2, nothing recorded): mandatory values, metric / column / reference names, every benchmark loads, every
system and its plug-ins build and pass `prepare` (capabilities, caches, weights, option counts), the videos of the
rows that read video exist, the output folder is free (one run per folder) and its predictions belong to the same
systems. During the run an item's failure is recorded for that item; an `InfrastructureError` (cache I/O, a server
gone after retries, a full disk) stops the run (exit 3; a rerun resumes). A row x benchmark whose items all failed,
or more than `max_failure_rate` of them, makes the command exit 1 after the table is written."""
from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from evals.contracts import CAPTIONING, MCQA, SUMMARIZATION, ConfigError, InfrastructureError, Prediction, Sample
from evals.metrics import metric
from evals.scoring import score, with_choice
from evals.store import (FolderLock, PredictionStore, config_identity, data_identity, digest, in_shard, local_files,
                          plain, read_all_predictions, weights_identity, without_run_keys, write_if_changed)
from evals.tables import build_table

EXIT_FAILED, EXIT_REFUSED, EXIT_STOPPED = 1, 2, 3
CONFIG_FILE = "config.yaml"      # the run's resolved config, beside its table: `longvid-table` rebuilds from it
TABLE_KEYS = ("reference", "table", "stats", "metrics", "report", "report_options", "max_failure_rate", "progress")


def _batches(xs: Sequence, n: int):
    for i in range(0, len(xs), n):
        yield xs[i:i + n]


def _failure(s: Sample, system: str, reason: str) -> Prediction:
    return Prediction(uid=s.uid, system=system, failure=reason)


def predict_all(system, samples: Sequence[Sample], store: PredictionStore, batch_size: int,
                broken: dict[str, str], provenance: dict, progress: bool = True) -> None:
    """Run `system` on the samples not yet done, appending to `store` as each batch finishes. A batch
    that raises is retried item by item, so one bad item costs only itself; an `InfrastructureError` stops all."""
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
    """Yields lists of (prediction, sample), one per item of the batch; raises only InfrastructureError."""
    from dataclasses import replace

    by_uid = {s.uid: s for s in batch}
    t0 = time.perf_counter()
    try:
        got = {}
        for p in system.predict(batch):
            if p.uid not in by_uid:
                raise RuntimeError(f"system returned a prediction for unknown uid {p.uid!r}")
            got[p.uid] = p
    except InfrastructureError:
        raise
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
    """The run's provenance added, the choice parsed; an empty summary or caption is the item's failure (scored as
    empty all the same, but counted, so a row that writes nothing fails wholesale)."""
    from dataclasses import replace

    if s.task in (SUMMARIZATION, CAPTIONING) and not p.failure and not (p.text or "").strip():
        p = replace(p, failure="the system returned an empty text")
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
    """Check, run, score and tabulate. `cfg` is the composed `compare` config. Returns a summary dict whose
    `problems` lists the rows x benchmarks that failed wholesale (the command then exits 1)."""
    missing = missing_values(cfg)
    if missing:   # before any work: a forgotten path must not surface hours later as failed items
        raise ConfigError("missing mandatory values: " + ", ".join(
            k if k == user else f"{k} (for {user})" for k, user in missing.items())
            + f"; set them on the command line, e.g. {next(iter(missing))}=...")
    _check_names(cfg)
    out, shard = Path(cfg.out_dir), _shard(cfg)
    with FolderLock(out if shard is None else out / ".shards" / f"{shard[0]}-of-{shard[1]}"):
        return _run(cfg, out, shard)


def _shard(cfg) -> tuple[int, int] | None:
    """`shard="I/N"`: this process predicts share I (0-based) of N of every benchmark's items. `shard=auto`: I and N
    from the launcher — torchrun's RANK / WORLD_SIZE, or a SLURM array's task id (from its first) / task count."""
    value = cfg.get("shard")
    if value is None:
        return None
    if str(value) == "auto":
        value = _launcher_shard()
    parts = str(value).split("/")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts) or not 0 <= int(parts[0]) < int(parts[1]):
        raise ConfigError(f"shard={value!r}: expected \"I/N\" with 0 <= I < N, e.g. shard=0/4 ... shard=3/4")
    return int(parts[0]), int(parts[1])


def _launcher_shard() -> str:
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:                      # torchrun (and other torch.distributed launchers)
        return f"{env['RANK']}/{env['WORLD_SIZE']}"
    if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
        if env.get("SLURM_ARRAY_TASK_STEP", "1") != "1":
            raise ConfigError("shard=auto: a SLURM array with a step other than 1 (--array=A-B:S); give shard=I/N")
        first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        return f"{int(env['SLURM_ARRAY_TASK_ID']) - first}/{env['SLURM_ARRAY_TASK_COUNT']}"
    raise ConfigError("shard=auto: no launcher found (torchrun's RANK and WORLD_SIZE, or SLURM_ARRAY_TASK_ID and "
                      "SLURM_ARRAY_TASK_COUNT, are unset); give shard=I/N")


def _build(key: str, node, **kw):
    """instantiate(node), or a ConfigError naming the key and its `_target_`."""
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kw)
    except Exception as e:  # noqa: BLE001 - every build error becomes one clear message
        target = node.get("_target_") if hasattr(node, "get") else None
        cause = e.__cause__ or e
        raise ConfigError(f"{key}: cannot build {target!r} ({type(cause).__name__}: "
                          f"{str(cause).splitlines()[0] if str(cause) else ''})") from e


def _check_names(cfg) -> None:
    from evals.metrics.caption import ALL

    unknown = [m for m in cfg.metrics.caption if m not in ALL]
    if unknown:
        raise ConfigError(f"metrics.caption: unknown metrics {unknown}; valid: {list(ALL)}")
    for task in cfg.table.columns or {}:
        if task not in (SUMMARIZATION, CAPTIONING):
            raise ConfigError(f"table.columns.{task}: columns are set for {SUMMARIZATION} and {CAPTIONING} "
                              f"(multiple choice always shows accuracy and its categories)")
    if cfg.reference is not None and cfg.reference not in cfg.systems:
        raise ConfigError(f"reference={cfg.reference!r} is not a system of this comparison; systems: "
                          f"{list(cfg.systems)}")
    rate = float(cfg.get("max_failure_rate", 0.5))
    if not 0 <= rate <= 1:
        raise ConfigError(f"max_failure_rate must be between 0 and 1, got {rate}")
    if not cfg.benchmarks or not cfg.systems:
        raise ConfigError("nothing to compare: `benchmarks` and `systems` must each name at least one")


def _unit(system, scfg, task: str):
    """The system serving `task` on a row, and its config: a row made of one system per task (`for_task`) is
    checked, identified and prepared as the one that runs."""
    if hasattr(system, "for_task"):
        sub, sub_cfg = system.for_task(task)
        return sub, (scfg if sub_cfg is None else sub_cfg)
    return system, scfg


def _identity(system, cfg) -> Any:
    """What a system is: its own `identity()` (e.g. an LLM's weights, which may need its server), else its config
    without run keys, local files stamped."""
    if hasattr(system, "identity"):
        return {"class": type(system).__qualname__, "identity": system.identity()}
    return {"config": config_identity(plain(cfg))}


def _videos(bname: str, samples: list[Sample], rows: list[str], video_check, progress: bool) -> dict[str, str]:
    """uid -> reason for the items of video-reading rows whose video is missing or unreadable; a ConfigError when
    no video can be found at all (a wrong or unset video root), before any item runs."""
    if not rows:
        return {}
    if any(s.video is None for s in samples):
        raise ConfigError(f"benchmarks.{bname}: no video root is set, and {rows} read videos: set "
                          f"benchmarks.{bname}.video_root (or the preset's `videos`)")
    if not any(os.path.isfile(s.video) for s in samples):
        root = os.path.commonpath([os.path.dirname(s.video) for s in samples])
        raise ConfigError(f"benchmarks.{bname}: none of its {len({s.video for s in samples})} videos is under "
                          f"{root} (e.g. {samples[0].video}), and {rows} read videos: check "
                          f"benchmarks.{bname}.video_root / video_patterns")
    return check_videos(samples, video_check, progress)


def _load(cfg) -> tuple[dict, dict]:
    """Every benchmark built and loaded (annotation errors name the file), its table columns computable."""
    import shutil

    benches = {b: _build(f"benchmarks.{b}", bcfg) for b, bcfg in cfg.benchmarks.items()}
    samples = {}
    for b, bench in benches.items():
        try:
            samples[b] = bench.load()
        except FileNotFoundError as e:
            raise ConfigError(f"benchmarks.{b}: {e}") from e
    for b, items in samples.items():
        if not items:
            raise ConfigError(f"benchmarks.{b}: it has no items")
        if items[0].task in (SUMMARIZATION, CAPTIONING) and shutil.which("java") is None:
            raise ConfigError(f"benchmarks.{b}: its caption metrics need Java 17 (pycocoevalcap's tokenizer and METEOR) "
                              "and `java` is not on PATH: install it, e.g. apt-get install openjdk-17-jre-headless")
        absent = [c for c in (cfg.table.columns or {}).get(items[0].task) or [] if c not in cfg.metrics.caption]
        if absent:
            raise ConfigError(f"table.columns.{items[0].task}: {absent} are not computed for {b}; metrics.caption is "
                              f"{list(cfg.metrics.caption)}: add them there or drop them from the columns")
    return benches, samples


def _prepare(cfg, out: Path, benches: dict, samples: dict, systems: dict, progress: bool,
             shard: tuple[int, int] | None = None) -> tuple:
    """Everything before the first item: the plan of (benchmark, system) pairs and their stores, guarded; for the
    pairs with items left, each system's `prepare` and the videos of the rows that read them."""
    for sname, scfg in cfg.systems.items():
        systems[sname] = _build(f"systems.{sname}", scfg, name=sname)
    plan = [(b, s) for b in benches for s in systems if samples[b][0].task in systems[s].tasks]
    if cfg.reference is not None and cfg.reference not in {s for _, s in plan}:
        raise ConfigError(f"reference={cfg.reference!r} runs on none of the benchmarks {list(benches)}: choose a row "
                          f"that does ({sorted({s for _, s in plan})})")
    units = {(b, s): _unit(systems[s], cfg.systems[s], samples[b][0].task) for b, s in plan}
    stores = {(b, s): PredictionStore(out / b / s, shard=shard) for b, s in plan}
    todo = {(b, s) for b, s in plan if {x.uid for x in samples[b]} - stores[(b, s)].done()}
    for b, s in plan:
        if (b, s) in todo and hasattr(units[(b, s)][0], "prepare"):
            try:
                units[(b, s)][0].prepare(benches[b], samples[b])
            except Exception as e:  # noqa: BLE001 - named by the row; nothing has run yet
                raise ConfigError(f"systems.{s} cannot run on {b}: {type(e).__name__}: {e}") from e
    reads = {(b, s) for b, s in plan if getattr(units[(b, s)][0], "needs_video", True)}
    video_check = _build("video_check", cfg.video_check) if cfg.get("video_check") else None
    broken = {b: _videos(b, samples[b], [s for bb, s in plan if bb == b and (b, s) in todo & reads], video_check,
                         progress) for b in benches}
    guards = {}
    for b, s in plan:                    # every guard passes before anything is written
        bench = data_identity(plain(cfg.benchmarks[b]))
        settings = without_run_keys(plain(units[(b, s)][1]))
        identity = ({"system": _identity(*units[(b, s)]), "benchmark": bench} if (b, s) in todo else None)
        guards[(b, s)] = (digest(identity) if identity else None, digest({"system": settings, "benchmark": bench}),
                          identity, {f: weights_identity(f)["files"] for f in local_files(settings)})
        stores[(b, s)].check(*guards[(b, s)][:2])
    for key in todo:
        stores[key].record(*guards[key])
    return [(b, s, (b, s) in todo, (b, s) in reads, guards[(b, s)][0]) for b, s in plan], broken, stores


def _run(cfg, out: Path, shard: tuple[int, int] | None = None) -> dict:
    progress = bool(cfg.get("progress", True))
    benches, samples = _load(cfg)
    if shard is not None:              # this process's share of every benchmark (a benchmark may have none)
        samples = {b: share for b, items in samples.items() if (share := [x for x in items if in_shard(x.uid, shard)])}
        benches = {b: benches[b] for b in samples}
    systems: dict = {}     # built once per run (and closed at the end, also on error: launched servers stop)
    try:
        plan, broken, stores = _prepare(cfg, out, benches, samples, systems, progress, shard)
        _save_config(cfg, out)
        for b, s, todo, reads, ident in plan:
            if todo:
                predict_all(systems[s], samples[b], stores[(b, s)], int(cfg.batch_size), broken[b] if reads else {},
                            {"system": s, "identity_hash": ident}, progress)
    finally:
        for system in systems.values():
            if hasattr(system, "close"):
                system.close()
    if shard is not None:              # the table is made once every shard is done: longvid-table OUT_DIR
        preds = {(b, s): stores[(b, s)].predictions for b, s, *_ in plan}
        return {"out": out, "shard": shard, "predicted": {f"{b} / {s}": len(p) for (b, s), p in preds.items()},
                "problems": _problems(samples, preds, float(cfg.get("max_failure_rate", 0.5)))}
    return _tabulate(cfg, out, [(b, s) for b, s, *_ in plan], benches, samples,
                     {key: store.predictions for key, store in stores.items()})


def _save_config(cfg, out: Path) -> None:
    from omegaconf import OmegaConf

    c = OmegaConf.to_container(cfg, resolve=True)
    c.pop("hydra", None)
    c["shard"] = None                  # the folder's config, the same for every shard of it
    write_if_changed(out / CONFIG_FILE, "# written by longvid-compare; `longvid-table OUT_DIR` rebuilds the table "
                     "from it\n" + OmegaConf.to_yaml(c))


def rebuild(cfg, out: Path) -> dict:
    """The table, scores and report of a comparison folder from its saved predictions: no system is built (a row
    whose checkpoint is gone still renders); the benchmarks are loaded for their references and answers. Every
    row x benchmark the run planned (its folder exists) is shown, its shards merged; items it has no prediction for
    count as wrong."""
    _check_names(cfg)
    with FolderLock(out):
        benches, samples = _load(cfg)
        plan = [(b, s) for b in benches for s in cfg.systems if (out / b / s).is_dir()]
        if not plan:
            raise ConfigError(f"{out}: no predictions of systems {list(cfg.systems)} on benchmarks "
                              f"{list(benches)}")
        return _tabulate(cfg, out, plan, benches, samples,
                         {(b, s): read_all_predictions(out / b / s) for b, s in plan})


def _tabulate(cfg, out: Path, plan: list, benches: dict, samples: dict, predictions: dict) -> dict:
    scores, footer, failures, columns = {}, [], {}, {}
    # a folder may hold more items than are scored now (a full run, scored again with a limit)
    uids = {b: {x.uid for x in items} for b, items in samples.items()}
    predictions = {(b, s): {u: p for u, p in predictions[(b, s)].items() if u in uids[b]} for b, s in plan}
    for b, s in plan:
        preds = predictions[(b, s)]
        result = scores.setdefault(b, {})[s] = score(samples[b], preds, list(cfg.metrics.caption),
                                                     float(cfg.metrics.meteor_timeout),
                                                     getattr(benches[b], "aggregates", None))
        failures[(b, s)] = [p for p in preds.values() if p.failure]
        note = f"{b} / {s}: {len(samples[b])} items, {len(failures[(b, s)])} failed"
        if len(preds) < len(samples[b]):
            note += f", {len(samples[b]) - len(preds)} not predicted (counted as failed)"
        if "accuracy" in result:
            i = result["accuracy"].info
            note += (f", {i['n_unparseable']} unparseable ({100 * i['unparseable_rate']:.1f}%), "
                     f"{i['n_hidden']} without public answer (not scored); chance {100 * i['chance']:.1f}")
        footer.append(note)
    for b in scores:
        columns[b] = _columns(cfg, benches[b], samples[b][0].task, scores[b])
        if any("subtitles" in x.meta for x in samples[b]):      # a benchmark with subtitles: say who read them
            rows = [s for bb, s in plan if bb == b and any(p.provenance.get("subtitles")
                                                             for p in predictions[(b, s)].values())]
            footer.append(f"{b}: subtitles read by {', '.join(rows)}" if rows else
                          f"{b}: without subtitles (no row reads them)")
    ran = [s for s in cfg.systems if any(s in per for per in scores.values())]
    reference = cfg.reference or (ran or list(cfg.systems))[0]     # default: the first row that ran
    clusters = {b: {x.uid: x.video_id or x.uid for x in items} for b, items in samples.items()}
    table = build_table(scores, columns, reference, int(cfg.stats.resamples), int(cfg.stats.seed),
                        float(cfg.stats.confidence), clusters)
    table.footer += footer
    for b, s in plan:                  # official submission files where the answers are hidden (EgoSchema's full set)
        if not any(x.answer is None for x in samples[b]) or not hasattr(benches[b], "submission"):
            continue
        choices = {u: p.choice for u, p in predictions[(b, s)].items() if p.choice is not None and not p.failure}
        sub = benches[b].submission(samples[b], choices)
        if sub:
            path = out / "submissions" / b / f"{s}_{sub[0]}"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_if_changed(path, sub[1])
            table.footer.append(f"{b} / {s}: submission file {path.relative_to(out)} ({len(choices)} of "
                                f"{len(samples[b])} questions; {len(samples[b]) - len(choices)} without an answer "
                                "left out, never filled in)")
    _write(out, table, scores, failures)
    summary = {"table": table, "scores": scores, "failures": failures, "out": out, "samples": samples,
               "predictions": predictions, "clusters": clusters,
               "problems": _problems(samples, predictions, float(cfg.get("max_failure_rate", 0.5)))}
    if cfg.get("report", True):   # after the table files: a failing report only warns (evals.report)
        from evals.report import write_report_safely

        summary["report"] = write_report_safely(cfg, summary)
    return summary


def _problems(samples: dict, predictions: dict, max_rate: float) -> list[str]:
    """Rows x benchmarks without a usable result: all items failed (or, for multiple choice, failed or
    unparseable: a scored question without a choice), or more than `max_rate` of them; and any item not predicted at
    all (rebuilt from a folder: an interrupted run or a missing shard; the table is incomplete)."""
    out = []
    for (b, s), preds in predictions.items():
        failed = [p for p in preds.values() if p.failure]
        unparseable = sum(1 for x in samples[b] if x.task == MCQA and x.answer is not None and x.uid in preds
                          and not preds[x.uid].failure and preds[x.uid].choice is None)
        n, k, missing = len(samples[b]), len(failed) + unparseable, len(samples[b]) - len(preds)
        if missing:
            out.append(f"{s} on {b}: {missing} of {n} items not predicted (an interrupted run or a missing "
                       "shard: run it again)")
        if k and (k == n or k / n > max_rate):
            what = "failed" + (f" or unparseable ({unparseable} unparseable)" if unparseable else "")
            e = f"; e.g. {failed[0].uid}: {failed[0].failure}" if failed else ""
            out.append(f"{s} on {b}: {k} of {n} items {what} "
                       f"({'all' if k == n else f'> max_failure_rate={max_rate:g}'}{e})")
    return out


def _columns(cfg, bench, task: str, per_sys: dict) -> list[str]:
    """Caption tasks: `table.columns.<task>`. Multiple choice: the benchmark's official macro averages, accuracy,
    accuracy per question category and per label of the groupings the benchmark shows (all are in scores.json)."""
    if task != MCQA:
        return list(cfg.table.columns.get(task, []))
    shown = tuple(getattr(bench, "table_groups", ()))
    groups = sorted({m for res in per_sys.values() for m in res if metric(m).aggregate == "mean" and "/" in m
                     and ("=" not in m or m.split("/", 1)[1].split("=", 1)[0] in shown)})
    return [*(getattr(bench, "aggregates", None) or {}), "accuracy", *groups]


def _write(out: Path, table, scores, failures) -> None:
    import json

    write_if_changed(out / "table.md", table.markdown())
    write_if_changed(out / "table.csv", table.csv())
    write_if_changed(out / "table.tex", table.latex())
    plain = {b: {s: {m: {"value": r.value, **{k: v for k, v in r.info.items() if not callable(v)}}
                     for m, r in res.items()} for s, res in per.items()} for b, per in scores.items()}
    write_if_changed(out / "scores.json", json.dumps(plain, indent=1, default=str))
    write_if_changed(out / "failures.jsonl", "".join(
        json.dumps({"benchmark": b, "system": s, "uid": p.uid, "failure": p.failure}) + "\n"
        for (b, s), preds in failures.items() for p in preds))


def report(summary: dict) -> str:
    lines = [summary["table"].markdown()]
    for (b, s), preds in summary["failures"].items():
        if preds:
            lines.append(f"{b} / {s}: {len(preds)} failed items, e.g. {preds[0].uid}: {preds[0].failure}")
    lines.append(f"written to {summary['out']}/table.md, table.csv, table.tex, scores.json, failures.jsonl")
    if summary.get("sweep"):
        lines.append(f"frame sweep: {summary['sweep']} and sweep.png beside it\n\n{summary['sweep'].read_text()}")
    if summary.get("report"):
        lines.append(f"report: {summary['report']} (open it in a browser)")
    return "\n".join(lines)


def run_sweep(cfg) -> dict:
    """The comparison once per frame budget — N frames spread uniformly over each video for every row
    (`video.fps=null video.max_frames=N`), each in `<out_dir>/frames_<N>` (resumable: a rerun reuses every finished
    prediction) — then each benchmark's headline column (its first) against N, per system, with the table's
    bootstrap CIs: `<out_dir>/sweep.{md,json,png}`, the plot also in the largest budget's report."""
    import json

    from omegaconf import OmegaConf

    from evals import plots
    from evals.report import estimate

    if cfg.get("shard") is not None:
        raise ConfigError("sweep.frames with shard: shard each budget's run instead (video=uniform "
                          "video.max_frames=N out_dir=<dir>/frames_N shard=I/N)")
    frames = sorted({int(n) for n in cfg.sweep.frames})
    if not frames or frames[0] < 1:
        raise ConfigError(f"sweep.frames must be positive frame counts, got {list(cfg.sweep.frames)}")
    base, runs = Path(cfg.out_dir), {}
    for n in frames:
        c = OmegaConf.merge(cfg, {"video": {"fps": None, "max_frames": n}, "out_dir": str(base / f"frames_{n}"),
                                  "report": False, "sweep": {"frames": None}})
        print(f"[sweep] {n} frames per video -> {c.out_dir}", file=sys.stderr, flush=True)
        runs[n] = (c, run_compare(c))
    last_cfg, last = runs[frames[-1]]
    stats = (int(cfg.stats.resamples), int(cfg.stats.seed), float(cfg.stats.confidence))
    curves: dict[str, tuple[str, dict]] = {}
    for b in last["scores"]:
        column = next(m for bb, m in last["table"].columns if bb == b)
        curves[b] = (column, {s: {n: estimate(runs[n][1]["scores"][b][s][column], *stats,
                                              clusters=runs[n][1]["clusters"].get(b))
                                  for n in frames if s in runs[n][1]["scores"][b]} for s in last["scores"][b]})
    systems = list(dict.fromkeys(s for _, per in curves.values() for s in per))
    colors = {s: f"C{i % 10}" for i, s in enumerate(systems)}
    plots.budget_curves(base / "sweep.png", curves, colors, stats[2], last["table"].scale)
    write_if_changed(base / "sweep.json", json.dumps(
        {b: {"metric": m, "frames": frames, "systems": {s: {str(n): list(e) for n, e in pts.items()}
                                                         for s, pts in per.items()}} for b, (m, per) in curves.items()},
        indent=1))
    md = []
    for b, (m, per) in curves.items():
        md += [f"### {b}: {m} (x{last['table'].scale:g}) vs frames per video", "",
               "| system | " + " | ".join(map(str, frames)) + " |", "|---|" + "---|" * len(frames)]
        md += ["| " + s + " | " + " | ".join(f"{pts[n][0] * last['table'].scale:.1f}" if n in pts else "—"
                                            for n in frames) + " |" for s, pts in per.items()]
        md.append("")
    write_if_changed(base / "sweep.md", "\n".join(md))
    if cfg.get("report", True):
        from evals.report import write_report_safely

        figs = last_cfg.report_options.get("figures")
        figures = OmegaConf.to_container(figs, resolve=True) if figs is not None else []
        last_cfg.report_options.figures = figures + [{"path": str(base / "sweep.png"),
                                                      "caption": "each row's headline metric vs frames per video"}]
        last["report"] = write_report_safely(last_cfg, last)
    return {**last, "sweep": base / "sweep.md",
            "problems": [f"{n} frames: {p}" for n in frames for p in runs[n][1]["problems"]]}


def cli(cfg, out_dir: str | None = None) -> int:
    """Run the comparison for the command line — or, given `out_dir`, rebuild its table (`longvid-table`): the
    table, or one line saying why not. Returns the exit code."""
    from evals.benchmarks.base import AnnotationError

    prog = "longvid-table" if out_dir else "longvid-compare"
    try:
        summary = (rebuild(cfg, Path(out_dir)) if out_dir else
                   run_sweep(cfg) if (cfg.get("sweep") or {}).get("frames") else run_compare(cfg))
        if summary.get("shard"):
            i, n = summary["shard"]
            print(f"{prog}: shard {i}/{n} done ({', '.join(f'{k}: {v}' for k, v in summary['predicted'].items())} "
                  f"items); when every shard is done: longvid-table {summary['out']}")
            if summary["problems"]:                # a shard that failed wholesale fails too
                print(f"{prog}: FAILED (shard {i}/{n}): " + "; ".join(summary["problems"]), file=sys.stderr)
                return EXIT_FAILED
            return 0
    except (ConfigError, AnnotationError) as e:
        print(f"{prog}: refused before any item ran: {e}", file=sys.stderr)
        return EXIT_REFUSED
    except InfrastructureError as e:
        print(f"{prog}: stopped: {e}", file=sys.stderr)
        return EXIT_STOPPED
    print(report(summary))
    if summary["problems"]:
        print(f"{prog}: FAILED (the table is written; its failed items count as wrong): "
              + "; ".join(summary["problems"]), file=sys.stderr)
        return EXIT_FAILED
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main() -> None:
    import warnings

    from evals import hydra_main

    def _main(cfg) -> None:
        warnings.showwarning = _show_warning    # one line per warning (official files' noise), no source lines
        code = cli(cfg)
        if code:
            sys.exit(code)

    hydra_main("compare", _main)


def table_main(argv: list[str] | None = None) -> None:
    """`longvid-table OUT_DIR [key=value ...]`: rebuild a comparison folder's table, scores and report from its
    predictions and saved config (`OUT_DIR/config.yaml`), building no system. Overrides change how it is shown:
    reference=, table.columns.<task>=[...], stats.resamples=, stats.confidence=, metrics.caption=[...], report=,
    report_options.*, max_failure_rate=. Exit codes as longvid-compare's."""
    import warnings

    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0].startswith("-"):
        asked = bool(args) and args[0] in ("-h", "--help")
        print(" ".join(table_main.__doc__.split()), file=sys.stdout if asked else sys.stderr)
        sys.exit(0 if asked else EXIT_REFUSED)
    out = Path(args[0])
    try:
        if not (out / CONFIG_FILE).is_file():
            raise ConfigError(f"{out / CONFIG_FILE} not found: OUT_DIR is the out_dir of a longvid-compare run")
        cfg = OmegaConf.load(out / CONFIG_FILE)
        overrides = OmegaConf.from_dotlist(args[1:])
        unknown = [k for k in overrides if k not in TABLE_KEYS]
        if unknown:
            raise ConfigError(f"cannot change {unknown} when rebuilding a table (the predictions were made with "
                              f"them); valid: {list(TABLE_KEYS)}")
        cfg = OmegaConf.merge(cfg, overrides)
    except (ConfigError, OmegaConfBaseException) as e:
        print(f"longvid-table: refused: {e}", file=sys.stderr)
        sys.exit(EXIT_REFUSED)
    warnings.showwarning = _show_warning
    code = cli(cfg, out_dir=str(out))
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
