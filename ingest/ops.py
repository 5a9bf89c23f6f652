"""Scheduled runs and retention: ``exashard run CONFIG`` and ``exashard vacuum DST``.

A run takes the dataset's run lock, sweeps what a crashed run left behind, ingests only
inputs the ledger does not hold, applies retention, and writes a run record under
``runs/``. Shard files are immutable and a shard exists only once a commit names it, so
a run killed at any moment leaves either nothing or whole committed tasks, plus
unreferenced files that the next run sweeps.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import LockedError
from ..shards import storage
from ..shards.manifest import Manifest, commit_name, open_manifest
from .ledger import Ledger
from .lock import RunLock
from .pipeline import DEFAULT_GRACE, Pipeline, load_pipeline

EXIT_LOCKED = 4


@dataclass
class VacuumReport:
    dataset: str
    versions_removed: list[int] = field(default_factory=list)
    files_removed: int = 0
    bytes_freed: int = 0
    oldest_version: int = 0
    latest_version: int = 0


def _mtime(info: dict[str, Any]) -> float | None:
    for k in ("mtime", "LastModified", "last_modified", "created"):
        v = info.get(k)
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, dt.datetime):
            return v.timestamp()
    return None


def _listing(fs: Any, path: str) -> list[dict[str, Any]]:
    try:
        return [i for i in fs.ls(path, detail=True) if i.get("type") != "directory"]
    except FileNotFoundError:
        return []


def retained(m: Manifest, oldest: int, latest: int) -> set[str]:
    """Ids of every shard some version in ``[oldest, latest]`` names."""
    ids = set(m.read(oldest).shards) if oldest > 0 else set()
    for v in range(max(oldest, 0) + 1, latest + 1):
        doc = m._read_doc(commit_name(v)) or {}
        ids.update(str(r.get("id")) for r in doc.get("add", []) if isinstance(r, dict))
    return ids


def oldest_version(m: Manifest) -> int:
    """The oldest version still readable (commits before it were removed by retention)."""
    commits = m.versions()
    checkpoints = m.checkpoint_versions()
    if commits and commits[0] == 1:
        return 1
    return min(checkpoints + commits) if checkpoints or commits else 0


def sweep(m: Manifest, *, grace: float, oldest: int, latest: int, now: float | None = None) -> tuple[int, int]:
    """Delete shard, key and subject files no retained version names, older than ``grace``
    seconds (a writer may still be producing younger ones). Returns (files, bytes)."""
    now = time.time() if now is None else now
    keep = retained(m, oldest, latest)
    files = freed = 0
    for folder, suffix in (("shards", ".tar.zst"), ("keys", ".json"), ("subjects", ".json")):
        for info in _listing(m.fs, m._path(folder)):
            base = info["name"].rstrip("/").rsplit("/", 1)[-1]
            if folder == "keys" and base.startswith("_"):
                continue  # keys/_pseudonym.json and other dataset-wide keys
            sid = base[: -len(suffix)] if base.endswith(suffix) else None
            temp = base.startswith(".tmp-") or base.endswith(".part")
            if not temp and (sid is None or sid in keep):
                continue
            age = now - (_mtime(info) or now)
            if age < grace:
                continue
            try:
                m.fs.rm_file(info["name"])
            except FileNotFoundError:
                continue
            files += 1
            freed += int(info.get("size") or 0)
    return files, freed


def vacuum(
    dataset: str, *, keep_versions: int | None = None, grace: float = DEFAULT_GRACE,
    storage_options: dict[str, Any] | None = None, lock: RunLock | None = None, lease: float = 300.0,
) -> VacuumReport:
    """Drop manifest versions older than the last ``keep_versions`` (None: keep all) and
    sweep unreferenced files older than ``grace`` seconds. Takes the run lock unless
    the caller holds it (``lock``)."""
    m = open_manifest(dataset, storage_options)
    if lock is None:
        with RunLock(m.fs, m.root, "vacuum", lease=lease) as held:
            return vacuum(dataset, keep_versions=keep_versions, grace=grace, storage_options=storage_options, lock=held)
    if keep_versions is not None and keep_versions < 1:
        raise ValueError("keep_versions must be >= 1")
    latest = m.latest_version()
    report = VacuumReport(m.where, latest_version=latest)
    oldest = oldest_version(m)
    if keep_versions is not None and latest - keep_versions + 1 > oldest:
        cutoff = latest - keep_versions + 1
        Ledger(m).load()  # the ledger index must cover every commit about to go
        m.write_checkpoint(m.read(cutoff))
        lock.check()
        for v in m.versions():
            if v < cutoff:
                m.fs.rm_file(m._path(commit_name(v)))
                report.versions_removed.append(v)
        for v in m.checkpoint_versions():
            if v < cutoff:
                m.remove_checkpoint(v)
        m.sweep_pages()
        oldest = cutoff
    report.oldest_version = oldest
    report.files_removed, report.bytes_freed = sweep(m, grace=grace, oldest=oldest, latest=latest)
    return report


@dataclass
class RunRecord:
    """What ``exashard run`` writes to ``runs/`` and prints: one per run that got the lock."""

    pipeline: str
    dataset: str
    run_id: str
    started: str
    finished: str = ""
    status: str = "running"  # ok | failed
    exit_code: int = 0
    error: str | None = None
    new_inputs: int = 0
    skipped_inputs: int = 0
    samples: int = 0
    shards: int = 0
    quarantined: int = 0
    versions: list[int] = field(default_factory=list)
    swept_files: int = 0
    vacuum: dict[str, Any] | None = None
    schedule: str | None = None
    report: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def run_pipeline(config: str | Pipeline, *, client: Any = None, progress: bool | None = False) -> RunRecord:
    """One scheduled, incremental, locked run. Raises ``LockedError`` (nothing touched) if
    another run holds the dataset; other failures are recorded in ``runs/`` and re-raised."""
    from .run import ingest

    p = load_pipeline(config) if isinstance(config, str) else config
    fs, root = storage.resolve(p.output, p.storage_options)
    m = Manifest(root, fs=fs)
    rec = RunRecord(p.name, m.where, uuid.uuid4().hex[:12], _now(), schedule=p.schedule)
    lock = RunLock(fs, root, "run", lease=p.lease)
    lock.acquire()  # LockedError: another run is on; nothing was touched
    try:
        try:
            latest = m.latest_version()
            rec.swept_files, _ = sweep(m, grace=p.grace, oldest=oldest_version(m), latest=latest) if latest else (0, 0)
            report = ingest(
                p.sources, p.output, policy=p.policy, keyring=p.keyring, encrypt=p.encrypt, client=client,
                scheduler=p.scheduler, workers=p.workers, shard_size=p.shard_size, task_bytes=p.task_size, storage_options=p.storage_options,
                source_options=p.source_options, strict=p.strict, progress=progress, lock=lock,
            )
            rec.new_inputs, rec.skipped_inputs = report.inputs, report.skipped_inputs
            rec.samples, rec.shards, rec.quarantined = report.samples, report.shards, len(report.quarantined)
            rec.versions, rec.exit_code = report.versions, report.exit_code
            rec.report = report.to_dict()
            if p.keep_versions is not None:
                rec.vacuum = asdict(vacuum(p.output, keep_versions=p.keep_versions, grace=p.grace,
                                           storage_options=p.storage_options, lock=lock))
            rec.status = "ok"
        except LockedError as e:
            rec.status, rec.error, rec.exit_code = "failed", str(e), EXIT_LOCKED
            raise
        except BaseException as e:
            rec.status, rec.error, rec.exit_code = "failed", f"{e.__class__.__name__}: {e}", 3
            raise
        finally:
            rec.finished = _now()
            name = f"runs/{rec.started.replace(':', '').replace('.', '')}-{rec.run_id}.json"
            try:
                storage.atomic_write(fs, storage.join(root, name), json.dumps(rec.to_dict(), indent=1, default=str).encode())
            except Exception:
                if rec.status == "ok":
                    raise
    finally:
        try:
            lock.release()
        except Exception:  # storage down: the lease (or the dead pid) frees it for the next run
            if rec.status == "ok":
                raise
    return rec
