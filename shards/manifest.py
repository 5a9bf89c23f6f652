"""The dataset manifest: versioned, append-only commits with periodic checkpoints.

Layout under a dataset root::

    manifest/v00000000000000000001.json     one commit per version, created exclusively
    manifest/checkpoints/v000...0010.json   full state at that version (derived, rewritable)
    manifest/_last_checkpoint.json          hint: the newest checkpoint's version

Exclusive creation of ``v<N>`` is the only guard: of two racing committers one wins and
the other re-reads and retries on ``N+1``. Reading the latest state costs one hint read,
one checkpoint and at most a few commits past it (plus one failed probe), whatever the
length of the history. ``docs/FORMAT.md`` specifies the files.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, IntegrityError, NotFoundError, VersionConflict
from . import storage
from .writer import ShardInfo, utc_now

MANIFEST_FORMAT = "exashard-manifest"
MANIFEST_VERSION = 1
CHECKPOINT_INTERVAL = 10
PAGE_ROWS = 2000  # a checkpoint of more shards keeps its rows in pages of this many
_WIDTH = 20


def commit_name(version: int) -> str:
    return f"manifest/v{version:0{_WIDTH}d}.json"


def checkpoint_name(version: int) -> str:
    return f"manifest/checkpoints/v{version:0{_WIDTH}d}.json"


@dataclass(slots=True)
class Snapshot:
    """The dataset's state at one version: its shards in commit order."""

    version: int
    dataset_id: str | None
    shards: dict[str, ShardInfo] = field(default_factory=dict)
    created: str | None = None

    @property
    def samples(self) -> int:
        return sum(s.samples for s in self.shards.values())

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.shards.values())


def _parse_json(data: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IntegrityError(f"{where}: not valid JSON ({e.msg if hasattr(e, 'msg') else e})") from None
    except (ValueError, RecursionError):  # a number past int()'s digit limit, nesting past the recursion limit
        raise IntegrityError(f"{where}: not valid JSON (a number too long or nesting too deep)") from None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
        raise IntegrityError(f"{where}: not an exashard manifest file")
    if doc.get("format_version") != MANIFEST_VERSION:
        raise IntegrityError(f"{where}: manifest format version {doc.get('format_version')!r} is not supported")
    return doc


def _text(v: object) -> bool:
    """A str that encodes as UTF-8: JSON's "\\udcff" escapes decode to lone surrogates, which do not."""
    if not isinstance(v, str):
        return False
    if v.isascii():
        return True
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _list(doc: dict[str, Any], key: str, kind: type, where: str) -> list[Any]:
    """``doc[key]`` (absent: empty), checked to be a list of ``kind`` (strings: valid Unicode)."""
    value = doc.get(key, [])
    ok = (lambda v: isinstance(v, dict)) if kind is dict else _text
    if not isinstance(value, list) or not all(map(ok, value)):
        raise IntegrityError(f"{where}: {key!r} is not a list of {'objects' if kind is dict else 'strings'}")
    return value


def _shard_row(row: dict[str, Any], where: str) -> ShardInfo:
    """A shard row, with the fields readers use checked for type (numbers are checked by ``from_dict``)."""
    info = ShardInfo.from_dict(row, where)
    if not isinstance(info.checksum, str) or not isinstance(info.extra, dict) or not isinstance(info.created, str):
        raise IntegrityError(f"{where}: shard {info.id!r} has a malformed checksum, created or extra field")
    if not (_text(info.id) and _text(info.path)):  # both get encoded (key derivation, page names, paths)
        raise IntegrityError(f"{where}: shard {info.id!r} has an id or path that is not valid Unicode")
    if info.encryption is not None and not isinstance(info.encryption, dict):
        raise IntegrityError(f"{where}: shard {info.id!r} has a malformed encryption field")
    return info


def _dataset_id(doc: dict[str, Any], where: str) -> str | None:
    ds = doc.get("dataset_id")
    if ds is not None and not _text(ds):
        raise IntegrityError(f"{where}: malformed dataset_id {ds!r}")
    return ds


class Manifest:
    """Read and commit versions of one dataset's manifest.

    ``checkpoint_interval`` commits after the newest checkpoint, the committer writes a
    new one. ``clock`` returns the ISO timestamp recorded in commits (injectable).
    """

    def __init__(
        self,
        url: str,
        *,
        storage_options: dict[str, Any] | None = None,
        fs: Any = None,
        clock: Callable[[], str] = utc_now,
        checkpoint_interval: int = CHECKPOINT_INTERVAL,
    ) -> None:
        self.fs, self.root = storage.resolve(url, storage_options, fs)
        self.where = storage.display(self.fs, self.root)
        self.clock = clock
        if checkpoint_interval < 1:
            raise ConfigError("checkpoint_interval must be >= 1")
        self.checkpoint_interval = checkpoint_interval
        self._index: ShardIndex | None = None  # the state commits go on from (ids and counts)
        self._pages_written: set[str] = set()  # checkpoint pages known to exist

    def _path(self, rel: str) -> str:
        return storage.join(self.root, rel)

    def _read_doc(self, rel: str) -> dict[str, Any] | None:
        try:
            data = storage.retrying(lambda: self.fs.cat_file(self._path(rel)), f"{self.where}/{rel}")
        except FileNotFoundError:
            return None
        return _parse_json(data, f"{self.where}/{rel}")

    def dataset_id(self, create: bool = False) -> str | None:
        """The dataset's id from ``manifest/_dataset.json``; created exclusively if asked.

        Writers need the id before the first commit (encryption binds each shard to it),
        so it is fixed by an exclusive create that racing writers agree on.
        """
        path = self._path("manifest/_dataset.json")
        try:
            doc = json.loads(self.fs.cat_file(path))
        except FileNotFoundError:
            if not create:
                return None
            new = os.urandom(16).hex()
            data = json.dumps({"format": MANIFEST_FORMAT, "dataset_id": new, "created": self.clock()}).encode()
            try:
                storage.exclusive_write(self.fs, path, data)
            except VersionConflict:
                return self.dataset_id(create=False)
            return new
        except (ValueError, RecursionError):
            raise IntegrityError(f"{self.where}/manifest/_dataset.json: not valid JSON") from None
        ds = doc.get("dataset_id") if isinstance(doc, dict) else None
        if not isinstance(ds, str) or not ds:
            raise IntegrityError(f"{self.where}/manifest/_dataset.json: no dataset_id")
        return ds

    # -- reading -----------------------------------------------------------------

    def _checkpoint_hint(self) -> int:
        doc = None
        try:
            doc = json.loads(self.fs.cat_file(self._path("manifest/_last_checkpoint.json")))
        except (FileNotFoundError, ValueError, RecursionError):  # a hint: unreadable means absent
            return 0
        v = doc.get("version") if isinstance(doc, dict) else None
        return v if isinstance(v, int) and v > 0 else 0

    def _checkpoint_doc(self, version: int) -> dict[str, Any] | None:
        rel = checkpoint_name(version)
        try:
            doc = self._read_doc(rel)
        except IntegrityError:
            return None  # derived data: a damaged checkpoint is skipped, commits rebuild it
        if doc is None or doc.get("version") != version:
            return None
        return doc

    def _page(self, version: int, name: str) -> list[ShardInfo]:
        """The rows of one page of a paged checkpoint (``version``'s, for error messages)."""
        rel = f"manifest/checkpoints/pages/{name}"
        where = f"{self.where}/{rel}"
        if not re.fullmatch(r"[0-9a-f]{32}\.json", name):
            raise IntegrityError(f"{self.where}/{checkpoint_name(version)}: bad page name {name!r}")
        doc = self._read_doc(rel)
        if doc is None:
            raise IntegrityError(f"{where}: checkpoint page of version {version} is missing")
        rows = [_shard_row(row, where) for row in _list(doc, "rows", dict, where)]
        if _page_name([r.id for r in rows]) != name:
            raise IntegrityError(f"{where}: page does not hold the shards its name says")
        return rows

    def _load_checkpoint(self, version: int) -> Snapshot | None:
        doc = self._checkpoint_doc(version)
        if doc is None:
            return None
        rel = checkpoint_name(version)
        where = f"{self.where}/{rel}"
        try:
            snap = Snapshot(version, _dataset_id(doc, where), created=doc.get("created"))
            paged = doc.get("paged")
            if paged is not None:
                idx = _paged_index(paged, where)
                rows = [r for name in idx.pages for r in self._page(version, name)]
                if [r.id for r in rows] != idx.ids:
                    raise IntegrityError(f"{where}: pages do not hold the shards the checkpoint lists")
            else:
                rows = [_shard_row(row, where) for row in _list(doc, "shards", dict, where)]
            for info in rows:
                snap.shards[info.id] = info
        except IntegrityError:
            return None  # damaged rows: skipped like any damaged checkpoint
        return snap

    def _apply(self, snap: Snapshot, doc: dict[str, Any], rel: str) -> None:
        dataset_id, rows, removed = _commit_parts(doc, snap.version, snap.dataset_id, f"{self.where}/{rel}")
        for shard_id in removed:
            snap.shards.pop(shard_id, None)
        for info in rows:
            snap.shards[info.id] = info
        snap.version += 1
        snap.dataset_id = dataset_id
        snap.created = doc.get("created")

    def _base(self, at_most: int | None) -> Snapshot:
        hint = self._checkpoint_hint()
        if at_most is not None and hint > at_most:
            hint = max((v for v in self.checkpoint_versions() if v <= at_most), default=0)
        while hint > 0:
            snap = self._load_checkpoint(hint)
            if snap is not None:
                return snap
            hint = max((v for v in self.checkpoint_versions() if v < hint), default=0)
        return Snapshot(0, None)

    def read(self, version: int | None = None) -> Snapshot:
        """The state at ``version`` (default: the latest). Version 0 is the empty dataset."""
        if version is not None and (not isinstance(version, int) or version < 0):
            raise ConfigError(f"manifest version must be a non-negative int, got {version!r}")
        snap = self._base(version)
        while version is None or snap.version < version:
            rel = commit_name(snap.version + 1)
            doc = self._read_doc(rel)
            if doc is None:
                if version is not None:
                    raise NotFoundError(
                        f"{self.where}: manifest version {version} does not exist"
                        + (f" (latest is {snap.version})" if snap.version else " (or retention removed it)")
                    )
                break
            self._apply(snap, doc, rel)
        return snap

    def latest_version(self) -> int:
        return self.read_index().version

    def checkpoint_versions(self) -> list[int]:
        return self._versions_in("manifest/checkpoints")

    def versions(self) -> list[int]:
        """Every commit version present (lists the folder: for inspection, not hot paths)."""
        return self._versions_in("manifest")

    def _versions_in(self, rel: str) -> list[int]:
        try:
            names = self.fs.ls(self._path(rel), detail=False)
        except FileNotFoundError:
            return []
        out = []
        for n in names:
            base = n.rstrip("/").rsplit("/", 1)[-1]
            if base.startswith("v") and base.endswith(".json") and base[1:-5].isdigit():
                out.append(int(base[1:-5]))
        return sorted(out)

    # -- committing --------------------------------------------------------------

    def commit(
        self,
        add: Iterable[ShardInfo] = (),
        remove: Iterable[str] = (),
        *,
        operation: str = "write",
        meta: dict[str, Any] | None = None,
        max_attempts: int = 100,
    ) -> int:
        """Append one version adding/removing shards; returns the version number.

        Racing committers are serialized by exclusive creation: on a lost race this
        re-reads the latest state and tries the next version. Adding a shard id that is
        already present with the same checksum is a no-op (idempotent retries);
        with another checksum it is an error, as is removing an unknown shard.
        """
        add = list(add)
        remove = list(remove)
        if not add and not remove and meta is None:
            raise ConfigError("a commit must add or remove shards or carry metadata")
        for attempt in range(max_attempts):
            idx = self._committed_index()  # ids and counts; rows only where a check needs one
            rows = []
            for info in add:
                at = idx.pos.get(info.id)
                if at is not None:
                    if idx.row(at).checksum != info.checksum:
                        raise IntegrityError(f"{self.where}: shard {info.id!r} is already committed with other content")
                    continue
                rows.append(info.to_dict())
            gone = [s for s in remove if s in idx.pos]
            missing = [s for s in remove if s not in idx.pos]
            if missing:
                raise NotFoundError(f"{self.where}: cannot remove shards not in version {idx.version}: {missing[:5]}")
            if not rows and not gone and meta is None:
                return idx.version
            version = idx.version + 1
            doc = {
                "format": MANIFEST_FORMAT,
                "format_version": MANIFEST_VERSION,
                "version": version,
                "dataset_id": idx.dataset_id or self.dataset_id(create=True),
                "created": self.clock(),
                "operation": operation,
                "add": rows,
                "remove": gone,
                "meta": meta or {},
            }
            data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
            try:
                storage.exclusive_write(self.fs, self._path(commit_name(version)), data)
            except VersionConflict:
                time.sleep(random.uniform(0, min(0.5, 0.005 * 2**min(attempt, 7))))
                continue
            idx._apply(doc, commit_name(version))
            self._maybe_checkpoint(idx)
            return version
        raise VersionConflict(f"{self.where}: gave up committing after {max_attempts} lost races")

    def _committed_index(self) -> ShardIndex:
        """The latest state for committing, carried on from the previous commit: only newer
        commits are read, and rows stay in pages (memory holds ids and counts, plus the rows
        of commits since the last checkpoint)."""
        idx = self._index
        if idx is None:
            idx = self._index = self.read_index()
        while True:
            rel = commit_name(idx.version + 1)
            doc = self._read_doc(rel)
            if doc is None:
                return idx
            idx._apply(doc, rel)

    def _maybe_checkpoint(self, idx: ShardIndex) -> None:
        if idx.version - self._checkpoint_hint() < self.checkpoint_interval:
            return
        self._write_checkpoint(idx.version, idx.dataset_id, idx.created, idx)
        self._index = None  # start again from the new checkpoint: its rows now live in pages

    def write_checkpoint(self, snap: Snapshot) -> None:
        """Write the full state at ``snap.version`` and point the hint at it.

        Past ``PAGE_ROWS`` shards, the rows go to page files and the checkpoint keeps only
        shard ids and sample counts, so a reader can start (``read_index``) without them."""
        self._write_checkpoint(snap.version, snap.dataset_id, snap.created, list(snap.shards.values()))

    def _write_checkpoint(self, version: int, dataset_id: str | None, created: str | None, rows: Any) -> None:
        """``rows``: a list of ``ShardInfo`` or a ``ShardIndex`` (rows read only for pages
        that do not exist yet)."""
        if isinstance(rows, ShardIndex):
            ids, samples, row = rows.ids, rows.samples, rows.row
        else:
            ids, samples = [r.id for r in rows], [r.samples for r in rows]
            row = rows.__getitem__
        doc: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "format_version": MANIFEST_VERSION,
            "version": version,
            "dataset_id": dataset_id,
            "created": created if created is not None else self.clock(),
        }
        if len(ids) > PAGE_ROWS:
            # a page is named by the shard ids it holds (rows never change under an id), so
            # pages an earlier checkpoint wrote are reused: appends rewrite only the tail
            pages = []
            for k in range(0, len(ids), PAGE_ROWS):
                name = _page_name(ids[k : k + PAGE_ROWS])
                rel = f"manifest/checkpoints/pages/{name}"
                if name not in self._pages_written and not self.fs.exists(self._path(rel)):
                    chunk = [row(i).to_dict() for i in range(k, min(k + PAGE_ROWS, len(ids)))]
                    page = {"format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION, "rows": chunk}
                    storage.atomic_write(self.fs, self._path(rel), json.dumps(page, sort_keys=True, separators=(",", ":")).encode())
                self._pages_written.add(name)
                pages.append(name)
            doc["paged"] = {"page_rows": PAGE_ROWS, "pages": pages, "ids": list(ids), "samples": list(samples)}
        else:
            doc["shards"] = [row(i).to_dict() for i in range(len(ids))]
        data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        storage.atomic_write(self.fs, self._path(checkpoint_name(version)), data)
        if version > self._checkpoint_hint():
            hint = json.dumps({"version": version}).encode()
            storage.atomic_write(self.fs, self._path("manifest/_last_checkpoint.json"), hint)

    def remove_checkpoint(self, version: int) -> None:
        """Delete a checkpoint (retention); ``sweep_pages`` then drops pages no checkpoint uses."""
        self.fs.rm_file(self._path(checkpoint_name(version)))

    def sweep_pages(self) -> int:
        """Delete checkpoint pages that no remaining checkpoint lists; returns how many."""
        used: set[str] = set()
        for v in self.checkpoint_versions():
            doc = self._checkpoint_doc(v)
            paged = doc.get("paged") if doc else None
            if isinstance(paged, dict) and isinstance(paged.get("pages"), list):
                used.update(str(n) for n in paged["pages"])
        try:
            names = self.fs.ls(self._path("manifest/checkpoints/pages"), detail=False)
        except FileNotFoundError:
            return 0
        gone = 0
        for n in names:
            base = n.rstrip("/").rsplit("/", 1)[-1]
            if base.endswith(".json") and base not in used:
                self.fs.rm_file(n)
                self._pages_written.discard(base)
                gone += 1
        return gone

    # -- the loader's view: ids and counts first, rows on demand ------------------

    def read_index(self, version: int | None = None) -> ShardIndex:
        """Shard ids and sample counts of a version, in commit order; a row is read only
        when asked for (``ShardIndex.row``). With a paged checkpoint this reads its ids
        and counts and the commits after it, not every row."""
        if version is not None and (not isinstance(version, int) or version < 0):
            raise ConfigError(f"manifest version must be a non-negative int, got {version!r}")
        hint = self._checkpoint_hint()
        if version is not None and hint > version:
            hint = max((v for v in self.checkpoint_versions() if v <= version), default=0)
        view = None
        while hint > 0 and view is None:
            doc = self._checkpoint_doc(hint)
            if doc is not None:
                where = f"{self.where}/{checkpoint_name(hint)}"
                try:
                    view = ShardIndex(self, hint, _dataset_id(doc, where))
                    view.created = doc.get("created")
                    if doc.get("paged") is not None:
                        idx = _paged_index(doc["paged"], where)
                        view.ids, view.samples = list(idx.ids), list(idx.samples)
                        view.pos = {sid: n for n, sid in enumerate(view.ids)}
                        view._pages, view._page_rows = idx.pages, idx.page_rows
                        view._where = [i for i in range(len(idx.ids))]
                    else:
                        for row in _list(doc, "shards", dict, where):
                            view._append(_shard_row(row, where))
                except IntegrityError:
                    view = None
            if view is None:
                hint = max((v for v in self.checkpoint_versions() if v < hint), default=0)
        if view is None:
            view = ShardIndex(self, 0, None)
        while version is None or view.version < version:
            rel = commit_name(view.version + 1)
            doc = self._read_doc(rel)
            if doc is None:
                if version is not None:
                    raise NotFoundError(f"{self.where}: manifest version {version} does not exist")
                break
            view._apply(doc, rel)
        return view


def _commit_parts(
    doc: dict[str, Any], version: int, dataset_id: str | None, where: str,
) -> tuple[str | None, list[ShardInfo], list[str]]:
    """A commit checked to follow ``version`` of dataset ``dataset_id``: (its dataset id,
    rows added, ids removed)."""
    if doc.get("version") != version + 1:
        raise IntegrityError(f"{where}: records version {doc.get('version')!r}, expected {version + 1}")
    ds = _dataset_id(doc, where)
    if dataset_id is not None and ds != dataset_id:
        raise IntegrityError(f"{where}: belongs to dataset {ds!r}, not {dataset_id!r}")
    rows = [_shard_row(row, where) for row in _list(doc, "add", dict, where)]
    return ds, rows, _list(doc, "remove", str, where)


def _page_name(ids: list[str]) -> str:
    return hashlib.blake2b("\n".join(ids).encode(), digest_size=16, person=b"exashard-page").hexdigest() + ".json"


@dataclass(slots=True)
class _Paged:
    page_rows: int
    pages: list[str]
    ids: list[str]
    samples: list[int]


def _paged_index(paged: Any, where: str) -> _Paged:
    if not isinstance(paged, dict):
        raise IntegrityError(f"{where}: 'paged' is not an object")
    page_rows = paged.get("page_rows")
    ids, samples = _list(paged, "ids", str, where), paged.get("samples")
    pages = _list(paged, "pages", str, where)
    if not isinstance(page_rows, int) or page_rows < 1 or not isinstance(samples, list) or len(samples) != len(ids):
        raise IntegrityError(f"{where}: paged checkpoint index is malformed")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in samples):
        raise IntegrityError(f"{where}: paged checkpoint has bad sample counts")
    if len(pages) != -(-len(ids) // page_rows):
        raise IntegrityError(f"{where}: {len(ids)} shards need {-(-len(ids) // page_rows)} pages, it lists {len(pages)}")
    return _Paged(page_rows, pages, ids, samples)


class ShardIndex:
    """A version's shards for the loader: ``ids`` and ``samples`` (commit order) at once,
    ``row(i)`` on demand (a paged checkpoint's page is read on first use)."""

    def __init__(self, m: Manifest, version: int, dataset_id: str | None) -> None:
        self.m, self.version, self.dataset_id = m, version, dataset_id
        self.ids: list[str] = []
        self.samples: list[int] = []
        self.pos: dict[str, int] = {}  # shard id -> position
        self.created: str | None = None
        self._rows: dict[int, ShardInfo] = {}  # position -> row, once known
        self._where: list[int] = []  # position -> position in the checkpoint (-1: from a commit)
        self._pages: list[str] = []
        self._page_rows = 1
        self._base = version
        self._inverse: dict[int, int] | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.ids)

    def __getstate__(self) -> dict[str, Any]:
        state = {k: getattr(self, k) for k in self.__dict__ if k != "_lock"}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _append(self, info: ShardInfo) -> None:
        self.pos[info.id] = len(self.ids)
        self._rows[len(self.ids)] = info
        self._where.append(-1)
        self.ids.append(info.id)
        self.samples.append(info.samples)

    def _apply(self, doc: dict[str, Any], rel: str) -> None:
        dataset_id, rows, removed = _commit_parts(doc, self.version, self.dataset_id, f"{self.m.where}/{rel}")
        gone = set(removed)
        if gone & self.pos.keys():
            keep = [i for i, sid in enumerate(self.ids) if sid not in gone]
            self._rows = {n: self._rows[i] for n, i in enumerate(keep) if i in self._rows}
            self._where = [self._where[i] for i in keep]
            self.ids = [self.ids[i] for i in keep]
            self.samples = [self.samples[i] for i in keep]
            self.pos = {sid: n for n, sid in enumerate(self.ids)}
            self._inverse = None
        for info in rows:
            at = self.pos.get(info.id)
            if at is None:
                self._append(info)
            else:  # re-added under its id: replaced in place, as Manifest.read does
                self._rows[at], self.samples[at], self._where[at] = info, info.samples, -1
        self.version += 1
        self.dataset_id = dataset_id
        self.created = doc.get("created")

    def row(self, i: int) -> ShardInfo:
        info = self._rows.get(i)
        if info is not None:
            return info
        with self._lock:
            info = self._rows.get(i)
            if info is None:
                page = self._where[i] // self._page_rows
                rows = self.m._page(self._base, self._pages[page])
                if self._inverse is None:  # checkpoint position -> current position
                    self._inverse = {w: n for n, w in enumerate(self._where) if w >= 0}
                first = page * self._page_rows
                for k, r in enumerate(rows):
                    n = self._inverse.get(first + k)
                    if n is None:
                        continue  # removed by a later commit
                    if r.id != self.ids[n]:
                        raise IntegrityError(f"{self.m.where}: checkpoint page {self._pages[page]} does not match its index")
                    self._rows[n] = r
                info = self._rows.get(i)
                if info is None:  # the checkpoint lists more shards than its page holds
                    raise IntegrityError(
                        f"{self.m.where}: checkpoint page {self._pages[page]} does not hold shard {self.ids[i]!r}"
                    )
        return info

def open_manifest(dataset: str, storage_options: dict[str, Any] | None = None, fs: Any = None) -> Manifest:
    """A ``Manifest`` for an existing dataset; ``NotFoundError`` if there is none."""
    m = Manifest(dataset, storage_options=storage_options, fs=fs)
    # after retention (vacuum) the oldest commits are gone and a checkpoint stands in for them
    if not m.fs.exists(m._path(commit_name(1))) and not m.fs.exists(m._path("manifest/_last_checkpoint.json")):
        raise NotFoundError(f"{m.where}: not an exashard dataset (no manifest/v{1:0{_WIDTH}d}.json)")
    return m
