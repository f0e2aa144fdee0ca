"""Resumable predictions: `<out>/<benchmark>/<system>/predictions.jsonl`, appended as items finish, and the
identities that decide whether a rerun may continue them.

A rerun skips uids that already have a successful prediction; failed items are tried again and their new line
supersedes the old one. A line cut short by a crash (the last one) is dropped and the file repaired. `run.json`
beside it records the identity of what produced the predictions — the system as it *is* (weights, prompts,
sampling, plug-ins' identities) and the benchmark's items — and adding to it with another identity is an error.
How a system *runs* (`limit`, device, batch size, URLs, timeouts, concurrency) is not part of it. A finished
folder is scored again against its recorded settings alone (no model, server or video needed, nothing written),
so a table can be regenerated offline, from a read-only folder. One run per output folder at a time
(`FolderLock`).
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from evals.contracts import ConfigError, InfrastructureError, Prediction

# Config keys that say how something runs, not what it is: left out of identities (at any depth)
RUN_KEYS = frozenset({
    "limit", "device", "batch_size", "url", "timeout", "retries", "backoff", "concurrency", "progress", "workers",
    "api_key_env", "cache", "caption_cache", "log", "port", "python", "env", "startup_timeout", "stop_timeout",
    "video_root", "video_patterns", "root"})


class PredictionStoreError(ConfigError):
    pass


def digest(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def weights_identity(path: str | os.PathLike) -> dict:
    """A local model file or folder: its absolute path and a digest of every file's (name, size, mtime), so that
    two checkpoints at one path — or one retrained in place — are never taken for each other."""
    p = Path(path).expanduser().absolute()
    if not p.exists():
        return {"path": str(p), "files": None}
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    stats = [(str(f.relative_to(p)) if f != p else f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return {"path": str(p), "files": digest(stats)}


def plain(cfg: Any) -> Any:
    """An OmegaConf node as plain Python (resolved); anything else unchanged."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, (DictConfig, ListConfig)) else cfg


def data_identity(cfg: Any) -> Any:
    """A benchmark's config without run keys, the files it names identified by their content (a moved copy of an
    annotation file is the same data; an edited one is not)."""
    if isinstance(cfg, Mapping):
        return {k: data_identity(v) for k, v in cfg.items() if k not in RUN_KEYS}
    if isinstance(cfg, (list, tuple)):
        return [data_identity(v) for v in cfg]
    if isinstance(cfg, str) and os.sep in cfg and os.path.isfile(cfg):
        with open(cfg, "rb") as f:
            return {"file": os.path.basename(cfg), "sha1": hashlib.file_digest(f, "sha1").hexdigest()}
    return cfg


def without_run_keys(cfg: Any) -> Any:
    """A plain config without RUN_KEYS (at any depth): what a thing is, computable offline."""
    if isinstance(cfg, Mapping):
        return {k: without_run_keys(v) for k, v in cfg.items() if k not in RUN_KEYS}
    if isinstance(cfg, (list, tuple)):
        return [without_run_keys(v) for v in cfg]
    return cfg


def local_files(cfg: Any) -> list[str]:
    """The local files and folders a plain config (without run keys) names."""
    if isinstance(cfg, Mapping):
        return [f for v in cfg.values() for f in local_files(v)]
    if isinstance(cfg, (list, tuple)):
        return [f for v in cfg for f in local_files(v)]
    return [cfg] if isinstance(cfg, str) and os.sep in cfg and os.path.exists(cfg) else []


def config_identity(cfg: Any) -> Any:
    """A plain config without RUN_KEYS, local files and folders it names replaced by their `weights_identity`."""
    if isinstance(cfg, Mapping):
        return {k: config_identity(v) for k, v in cfg.items() if k not in RUN_KEYS}
    if isinstance(cfg, (list, tuple)):
        return [config_identity(v) for v in cfg]
    return weights_identity(cfg) if local_files(cfg) else cfg


def read_predictions(path: str | os.PathLike, repair: bool = False) -> dict[str, Prediction]:
    """uid -> latest prediction in a predictions file. A malformed line other than a truncated last one
    raises an error naming the file and line."""
    path = Path(path)
    if not path.exists():
        return {}
    data = path.read_bytes()
    lines = data.split(b"\n")
    out: dict[str, Prediction] = {}
    good_end = 0
    for i, raw in enumerate(lines):
        if not raw.strip():
            good_end += len(raw) + 1
            continue
        try:
            pred = Prediction.from_dict(json.loads(raw))
        except (json.JSONDecodeError, TypeError, ValueError) as e:
            if i == len(lines) - 1:  # no newline after it: written partially when the run died
                if repair:
                    with open(path, "r+b") as f:
                        f.truncate(good_end)
                break
            raise PredictionStoreError(f"{path}: line {i + 1} is not a valid prediction ({e})") from e
        out[pred.uid] = pred
        good_end += len(raw) + 1
    return out


def write_if_changed(path: Path, text: str) -> None:
    """Write `text` unless the file already holds exactly it (re-scoring a finished folder writes nothing)."""
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data:
            return
    except OSError:
        pass
    try:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as e:
        raise _io_error(path, e) from e


def _io_error(path: Path, e: OSError) -> InfrastructureError:
    why = "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
    return InfrastructureError(f"cannot write {path}: {why}; everything finished is kept: free the space (or fix "
                               "the folder) and rerun the same command to resume")


class PredictionStore:
    """One system's predictions on one benchmark. Opening reads them (and repairs a line cut short by a crash);
    `check` is the guard before anything is added — the folder must hold predictions of the same system: the same
    `identity` when items are still to be predicted; when the folder is finished and only scored again, the same
    settings (its config without run keys: no model, server or video needed) and unchanged local files among
    those it recorded that are still there — and `record` then writes `run.json` (only if it changes)."""

    def __init__(self, directory: str | os.PathLike, identity_hash: str | None = None,
                 identity: Mapping | None = None, shard: tuple[int, int] | None = None):
        self.dir = Path(directory)
        tag = f".shard-{shard[0]}-of-{shard[1]}" if shard else ""     # one file pair per shard of a sharded run
        self.path = self.dir / f"predictions{tag}.jsonl"
        self.meta = self.dir / f"run{tag}.json"
        self.recorded = json.loads(self.meta.read_text()) if self.meta.exists() else {}
        self.predictions = read_predictions(self.path, repair=True)
        if identity_hash is not None:
            self.check(identity_hash, identity_hash)
            self.record(identity_hash, identity_hash, identity)

    def _refuse(self, why: str) -> None:
        raise PredictionStoreError(f"{self.path} holds predictions of another system or benchmark ({why}; see "
                                   f"{self.meta}): write to a new out_dir or delete that folder")

    def check(self, identity_hash: str | None, settings_hash: str) -> None:
        """`identity_hash` None: nothing is left to predict, only the settings and recorded files must match."""
        if not self.predictions:
            return
        if identity_hash is not None:
            if self.recorded.get("identity_hash") != identity_hash:
                self._refuse(f"identity {self.recorded.get('identity_hash')}, now {identity_hash}")
            return
        if self.recorded.get("settings_hash") != settings_hash:
            self._refuse(f"settings {self.recorded.get('settings_hash')}, now {settings_hash}")
        for path, stamp in (self.recorded.get("files") or {}).items():
            if os.path.exists(path) and weights_identity(path)["files"] != stamp:
                self._refuse(f"{path} changed since they were made")

    def record(self, identity_hash: str, settings_hash: str, identity: Mapping | None = None,
               files: Mapping | None = None) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _io_error(self.dir, e) from e
        write_if_changed(self.meta, json.dumps({"identity_hash": identity_hash, "settings_hash": settings_hash,
                                                "files": dict(files or {}), "identity": identity or {}},
                                               indent=1, default=str))

    def done(self) -> set[str]:
        return {u for u, p in self.predictions.items() if not p.failure}

    def append(self, preds: Iterable[Prediction]) -> None:
        preds = list(preds)
        if not preds:
            return
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                for p in preds:
                    f.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
                    f.flush()
                    self.predictions[p.uid] = p
        except OSError as e:
            raise _io_error(self.path, e) from e


def read_all_predictions(directory: str | os.PathLike) -> dict[str, Prediction]:
    """Every prediction of one row on one benchmark: `predictions.jsonl` and the shards' `predictions.shard-*.jsonl`
    (disjoint shares of the items, merged) — only if every part was made by the same system: their `run*.json`
    must record one identity and one settings hash (a shard run with another checkpoint is refused, naming it)."""
    d = Path(directory)
    recorded = {f.name: json.loads(f.read_text()) for f in sorted(d.glob("run*.json"))}
    for key in ("identity_hash", "settings_hash"):
        seen = {name: r.get(key) for name, r in recorded.items() if r.get(key)}
        if len(set(seen.values())) > 1:
            raise PredictionStoreError(f"{d}: its parts were made by different systems ({key}: "
                                       + ", ".join(f"{n} {h}" for n, h in seen.items())
                                       + "): rerun the odd shard with the others' config, or delete it")
    out: dict[str, Prediction] = {}
    for f in sorted(d.glob("predictions*.jsonl")):
        out.update(read_predictions(f))
    return out


def in_shard(uid: str, shard: tuple[int, int] | None) -> bool:
    """Whether item `uid` is in share I of N (stable across runs and machines: a hash of the uid)."""
    return shard is None or int(hashlib.sha1(uid.encode()).hexdigest()[:12], 16) % shard[1] == shard[0]


class FolderLock:
    """An exclusive lock on an output folder for one run (`flock` on the folder itself, so a read-only folder can
    be locked too; released when the process ends, however it ends). A second run on the folder is refused."""

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)
        self.fd: int | None = None
        self.created = False

    def __enter__(self) -> "FolderLock":
        import fcntl

        self.created = not self.dir.exists()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _io_error(self.dir, e) from e
        self.fd = os.open(self.dir, os.O_RDONLY)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            raise ConfigError(f"another run is writing to {self.dir} (it holds the folder's lock): wait for it to "
                              "finish, or give this run another out_dir") from None
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)       # closing the descriptor releases the lock
            self.fd = None
        if self.created and not any(self.dir.iterdir()):
            self.dir.rmdir()        # a run refused before its first item leaves nothing behind
