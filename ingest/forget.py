"""Deletion requests: ``exashard forget DST --ids FILE``.

Raw subject ids are canonicalized and pseudonymized with the dataset's key, exactly as
ingest did; the subject side tables (``subjects/<shard>.json``) say which shards and
samples hold them. Under the run lock, in an order that a crash at any point leaves safe:

1. the pseudonyms join the dataset's forget list (``forget/<request>.json``), so no
   later ingest brings the subjects back, even if this request dies half-way;
2. each affected shard is rewritten without the subjects' samples, with a new data key;
3. one commit swaps the old shards for the new ones;
4. the old shards' data keys are shredded (older manifest versions cannot decrypt them
   either) and their files deleted; a pending record makes a rerun finish this step;
5. an audit record is appended: counts, shard ids and time, never raw ids.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError, NotFoundError, QuarantineError
from ..shards import storage
from ..shards.manifest import Manifest, open_manifest
from ..shards.ops import open_shard
from ..shards.writer import ShardInfo, ShardWriter
from .lock import RunLock


@dataclass
class ForgetReport:
    dataset: str
    request: str
    ids: int = 0
    matched: int = 0
    unmatched_lines: list[int] = field(default_factory=list)  # line numbers in the ids file, never the ids
    samples_removed: int = 0
    shards_rewritten: dict[str, str | None] = field(default_factory=dict)  # old id -> new id (None: nothing left)
    shredded: list[str] = field(default_factory=list)
    version: int | None = None
    audit: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_ids(path: str) -> list[tuple[int, str]]:
    """(line number, id) for each non-blank, non-comment line of an ids file."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ids file ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: ids file is not UTF-8 text") from None
    out = [(n, line.strip()) for n, line in enumerate(lines, 1) if line.strip() and not line.lstrip().startswith("#")]
    if not out:
        raise ConfigError(f"{path}: no ids (one subject id per line; '#' starts a comment)")
    return out


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")


def _subject_tables(m: Manifest, rows: list[ShardInfo]) -> dict[str, dict[str, Any]]:
    """shard id -> its subject side table (field, pseudonym -> sample keys)."""
    out = {}
    for row in rows:
        ref = (row.extra.get("privacy") or {}).get("subjects_ref")
        if not ref:
            continue
        doc = storage.read_json(m.fs, m._path(ref))
        if not isinstance(doc, dict) or doc.get("shard") != row.id:
            raise NotFoundError(f"{m.where}/{ref}: subject side table of shard {row.id!r} is missing or damaged")
        out[row.id] = doc
    return out


def _finish_pending(m: Manifest, dataset: str, keyring: Any, storage_options: dict[str, Any] | None) -> list[str]:
    """Shred keys and delete files of shards an earlier request swapped out but did not finish."""
    from ..privacy.keyops import shred
    from ..privacy.keystore import KeyStore

    done: list[str] = []
    try:
        names = m.fs.ls(m._path("forget/pending"), detail=False)
    except FileNotFoundError:
        return done
    store = KeyStore(m.fs, m.root)
    for n in names:
        base = n.rstrip("/").rsplit("/", 1)[-1]
        doc = storage.read_json(m.fs, m._path(f"forget/pending/{base}"))
        if not isinstance(doc, dict):
            continue
        latest = m.read()
        shards = [s for s in doc.get("shards", []) if s not in latest.shards]  # only once the swap is committed
        if len(shards) != len(doc.get("shards", [])):
            m.fs.rm_file(m._path(f"forget/pending/{base}"))  # the swap never committed: nothing to finish
            continue
        have = set(store.shard_ids())
        keyed = [s for s in shards if s in have]
        if keyed:
            shred(dataset, keyed, keyring=keyring, storage_options=storage_options)
        for s in shards:
            for rel in (f"shards/{s}.tar.zst", f"subjects/{s}.json"):
                try:
                    m.fs.rm_file(m._path(rel))
                except FileNotFoundError:
                    pass
        done.extend(shards)
        m.fs.rm_file(m._path(f"forget/pending/{base}"))
    return done


def forget(
    dataset: str, ids_file: str, *, keyring: Any = None, field_name: str | None = None,
    storage_options: dict[str, Any] | None = None, lease: float = 300.0,
) -> ForgetReport:
    """Remove every sample of the subjects in ``ids_file`` and keep them out for good."""
    from ..privacy.access import ShardKeys
    from ..privacy.keys import resolve_keyring
    from ..privacy.pseudonym import Pseudonymizer
    from .run import pseudonym_master

    ids = read_ids(ids_file)
    m = open_manifest(dataset, storage_options)
    dataset_id = m.dataset_id() or m.read().dataset_id
    if not dataset_id:
        raise NotFoundError(f"{m.where}: dataset has no id")
    needed = next((str(r.encryption.get("keyring")) for r in m.read().shards.values() if r.encryption), None)
    kr = resolve_keyring(keyring, needed=needed)
    secret = pseudonym_master(kr, m.fs, m.root, dataset_id)
    pz = Pseudonymizer(secret, dataset_id)
    report = ForgetReport(m.where, _stamp() + "-" + uuid.uuid4().hex[:8], ids=len(ids))
    with RunLock(m.fs, m.root, "forget", lease=lease) as lock:
        report.shredded += _finish_pending(m, dataset, kr, storage_options)
        snap = m.read()
        rows = list(snap.shards.values())
        tables = _subject_tables(m, rows)
        fields = {str(t["field"]) for t in tables.values() if t.get("field")}
        if field_name:
            fields.add(field_name)
        if not fields:
            raise ConfigError(
                f"{m.where}: no subject field is recorded for this dataset (no policy named one); pass --field FIELD"
            )
        wanted: dict[str, int] = {}  # pseudonym -> line
        for line, raw in ids:
            for f in sorted(fields):
                try:
                    wanted[pz.pseudonym(f, raw)] = line
                except QuarantineError as e:
                    raise ConfigError(f"{ids_file}:{line}: {e}") from None
        # 1. the forget list first: whatever happens next, later ingests exclude these subjects
        doc = {"format": "exashard-forget", "request": report.request, "created": _stamp(), "pseudonyms": sorted(wanted)}
        storage.atomic_write(m.fs, m._path(f"forget/{report.request}.json"), json.dumps(doc).encode())
        hit_lines: set[int] = set()
        drop: dict[str, set[str]] = {}
        for sid, t in tables.items():
            for pseud, keys in (t.get("samples") or {}).items():
                if pseud in wanted:
                    hit_lines.add(wanted[pseud])
                    drop.setdefault(sid, set()).update(keys)
        report.matched = len(hit_lines)
        report.unmatched_lines = sorted({line for line, _ in ids} - hit_lines)
        if drop:
            # 2. rewrite the affected shards without the subjects' samples
            keys = ShardKeys(m.fs, m.root, dataset_id, kr)
            new_rows: list[ShardInfo] = []
            for sid in sorted(drop):
                row = snap.shards[sid]
                new_row, removed = _rewrite(m, row, tables[sid], drop[sid], kr, keys, dataset_id, report.request)
                report.samples_removed += removed
                report.shards_rewritten[sid] = new_row.id if new_row else None
                if new_row:
                    new_rows.append(new_row)
            lock.check()
            pending = {"request": report.request, "shards": sorted(drop)}
            storage.atomic_write(m.fs, m._path(f"forget/pending/{report.request}.json"), json.dumps(pending).encode())
            # 3. one commit swaps them; 4. then the old keys are shredded and files deleted
            report.version = m.commit(add=new_rows, remove=sorted(drop), operation="forget", meta={"request": report.request})
            report.shredded += _finish_pending(m, dataset, kr, storage_options)
        # 5. the audit record: counts, shard ids and time, never raw ids
        audit = {k: v for k, v in report.to_dict().items() if k != "audit"}
        audit.update(operation="forget", unmatched=len(report.unmatched_lines), created=_stamp())
        audit.pop("unmatched_lines")
        report.audit = f"audit/{report.request}-forget.json"
        storage.atomic_write(m.fs, m._path(report.audit), json.dumps(audit, indent=1).encode())
    return report


def _rewrite(
    m: Manifest, row: ShardInfo, table: dict[str, Any], drop: set[str], kr: Any, keys: Any, dataset_id: str, request: str,
) -> tuple[ShardInfo | None, int]:
    """The shard without the samples in ``drop``: (new row or None if nothing is left, samples removed)."""
    subject_of = {k: p for p, ks in (table.get("samples") or {}).items() for k in ks}
    w = ShardWriter(
        m.root, fs=m.fs, commit=False, encrypt=bool(row.encryption), keyring=kr if row.encryption else None,
        target_size=1 << 62, name=f"{row.id}-r{request[-8:]}", subject_field=table.get("field"),
    )
    stats = (row.extra.get("privacy") or {}).get("stats") or {}
    removed = 0
    with open_shard(m, row, dataset_id=dataset_id, keys=keys if row.encryption else None) as r, w:
        first = True
        for s in r:
            if s["__key__"] in drop:
                removed += 1
                continue
            w.write(s, subject=subject_of.get(s["__key__"]), stats=stats if first else None)
            first = False
    return (w.shards[0] if w.shards else None), removed
