"""Planning: units -> tasks of bounded input size and count, with stable ids.

A task id is a hash of its units' identities (URL, size, etag/mtime, row/member), so a
rerun over the same inputs plans the same tasks, and their shards get the same names.
"""

from __future__ import annotations

import hashlib
import marshal
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .sources import FileRef, Unit

MiB = 1 << 20


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    units: tuple[Unit, ...]

    @property
    def size(self) -> int:
        return sum(u.size for u in self.units)

    def __reduce__(self) -> tuple[Any, ...]:
        return loads_task, (dumps_task(self),)


def dumps_task(task: Task) -> bytes:
    """A task as one opaque blob. Thousands of small objects pickle slowly, and a task
    passed as objects is unpickled and re-pickled by the scheduler on its way to a worker
    (on a small machine, CPU the workers share); a blob of plain tuples costs ~5x less,
    and the scheduler only copies it. Compressed (~7x: URLs repeat their folders), since
    the scheduler keeps recent computations' graphs, so a blob's size is driver memory."""
    rows = [(u.kind, u.name, u.index, [(e, *f) for e, f in u.files]) for u in task.units]  # f: (url, size, version)
    return zlib.compress(marshal.dumps((task.id, rows)), 1)


def loads_task(blob: bytes) -> Task:
    tid, rows = marshal.loads(zlib.decompress(blob))
    units = tuple(
        Unit(kind, name, tuple((e, FileRef(url, size, version)) for e, url, size, version in files), index)
        for kind, name, index, files in rows
    )
    return Task(tid, units)


def task_id(units: Iterable[Unit]) -> str:
    h = hashlib.sha256()
    for u in units:
        h.update(u.identity.encode())
        h.update(b"\x02")
    return "t" + h.hexdigest()[:19]


def plan(units: Iterable[Unit], *, max_bytes: int = 256 * MiB, max_units: int = 5000) -> Iterator[Task]:
    """Group units in listing order; a tar file (many samples) is a task of its own."""
    if max_bytes <= 0 or max_units <= 0:
        raise ValueError("max_bytes and max_units must be positive")
    batch: list[Unit] = []
    size = 0
    for u in units:
        if u.kind == "tar":
            if batch:
                yield Task(task_id(batch), tuple(batch))
                batch, size = [], 0
            yield Task(task_id([u]), (u,))
            continue
        if batch and (size + u.size > max_bytes or len(batch) >= max_units):
            yield Task(task_id(batch), tuple(batch))
            batch, size = [], 0
        batch.append(u)
        size += u.size
    if batch:
        yield Task(task_id(batch), tuple(batch))
