"""The run ledger: which inputs a dataset already holds, so runs process only what is new.

An input's identity is its URL, size and etag/mtime (``Unit.identity``); the ledger keeps
a keyed hash of it, never the URL. The commit that adds a task's shards also names the
task's input hashes (``meta.inputs``), so shards and ledger entries become visible in one
atomic step: a run killed before its commit left no ledger entry, and one killed after it
left both. ``ledger/`` holds an index of those commit records (segments covering version
ranges, rebuilt from the commits whenever they lag), so a run reads only the commits made
since the last one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..errors import IntegrityError
from ..shards import storage
from ..shards.manifest import Manifest, commit_name

STATE = "ledger/_state.json"
_MERGE_AT = 64  # segments; past this, they are merged into one


def input_digest(secret: bytes, identity: str) -> str:
    """The ledger's name for an input: a keyed hash of its identity (URL, size, version)."""
    return hashlib.blake2b(identity.encode(), key=secret[:64], digest_size=16, person=b"exashard-ledger").hexdigest()


class Ledger:
    def __init__(self, manifest: Manifest, secret: bytes = b"") -> None:
        self.m = manifest
        self.secret = secret
        self.seen: set[str] = set()

    def digest(self, identity: str) -> str:
        if len(self.secret) < 32:
            raise ValueError("the ledger needs the dataset's pseudonym key to name inputs")
        return input_digest(self.secret, identity)

    def __contains__(self, digest: str) -> bool:
        return digest in self.seen

    def _segments(self) -> list[str]:
        try:
            names = self.m.fs.ls(self.m._path("ledger"), detail=False)
        except FileNotFoundError:
            return []
        out = []
        for n in names:
            base = n.rstrip("/").rsplit("/", 1)[-1]
            if base.startswith("seg-") and base.endswith(".json"):
                out.append(base)
        return sorted(out)

    def _state(self) -> int:
        doc = storage.read_json(self.m.fs, self.m._path(STATE))
        v = doc.get("version") if isinstance(doc, dict) else None
        return v if isinstance(v, int) and v >= 0 else 0

    def load(self, merge: bool = False) -> int:
        """Bring the index up to the latest commit and load every input hash; returns the
        version covered. Safe to run concurrently: segments are named by the versions they
        cover and hold what those commits say, so racing writers write the same bytes.
        ``merge`` (under the run lock only) folds many segments into one."""
        m = self.m
        done = self._state()
        latest = m.read_index().version  # ids and counts only, not every row
        if done > latest:
            raise IntegrityError(f"{m.where}/{STATE}: covers version {done}, but the latest is {latest}")
        fresh: list[str] = []
        for v in range(done + 1, latest + 1):
            doc = m._read_doc(commit_name(v))
            if doc is None:
                raise IntegrityError(f"{m.where}: commit v{v} is missing, the ledger cannot be brought up to date")
            inputs = (doc.get("meta") or {}).get("inputs") or []
            if not isinstance(inputs, list):
                raise IntegrityError(f"{m.where}/{commit_name(v)}: meta.inputs is not a list")
            fresh.extend(str(x) for x in inputs)
        segs = self._segments()
        seen: set[str] = set()
        for name in segs:
            seen.update(self._read_segment(name))
        if latest > done:
            if fresh:
                self._write_segment(f"seg-{done + 1:020d}-{latest:020d}.json", sorted(set(fresh)))
                segs.append(f"seg-{done + 1:020d}-{latest:020d}.json")
            storage.atomic_write(m.fs, m._path(STATE), json.dumps({"version": latest}).encode())
        seen.update(fresh)
        if merge and len(segs) > _MERGE_AT:
            self._merge(segs, seen, latest)
        self.seen = seen
        return latest

    def _read_segment(self, name: str) -> list[str]:
        doc = storage.read_json(self.m.fs, self.m._path(f"ledger/{name}"))
        inputs = doc.get("inputs") if isinstance(doc, dict) else None
        if not isinstance(inputs, list):
            raise IntegrityError(f"{self.m.where}/ledger/{name}: not a ledger segment")
        return [str(x) for x in inputs]

    def _write_segment(self, name: str, inputs: list[str]) -> None:
        data = json.dumps({"format": "exashard-ledger", "inputs": inputs}, separators=(",", ":")).encode()
        storage.atomic_write(self.m.fs, self.m._path(f"ledger/{name}"), data)

    def _merge(self, segs: list[str], seen: set[str], latest: int) -> None:
        """One segment for everything so far; the old ones go after it is written."""
        name = f"seg-{0:020d}-{latest:020d}.json"
        self._write_segment(name, sorted(seen))
        for s in segs:
            if s != name:
                try:
                    self.m.fs.rm_file(self.m._path(f"ledger/{s}"))
                except FileNotFoundError:
                    pass


def commit_meta(task: str, inputs: list[str], **extra: Any) -> dict[str, Any]:
    return {"task": task, "inputs": sorted(inputs), **extra}
