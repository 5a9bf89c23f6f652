"""A shard as a plain tar byte stream: decrypted and decompressed in memory, frame by frame.

For interop: ``webdataset`` (or ``tarfile``) can consume what ``open_tar_stream`` returns,
encrypted shards included, without exashard's reader.
"""

from __future__ import annotations

import io
from typing import Any

from ..errors import ConfigError, NotFoundError
from . import storage
from .manifest import open_manifest
from .ops import open_shard
from .reader import ShardReader


class TarStream(io.RawIOBase):
    """Read-only stream of a shard's tar bytes; holds one decompressed frame at a time."""

    def __init__(self, reader: ShardReader) -> None:
        self._r = reader
        self._frame = 0
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not len(self._buf):
            if self._frame >= self._r.layout.frames:
                return 0
            self._buf = memoryview(self._r.frame(self._frame))
            self._frame += 1
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            self._r.close()
        super().close()


def open_tar_stream(url: str, *, keyring: Any = None, storage_options: dict[str, Any] | None = None) -> io.BufferedReader:
    """The tar stream of the shard at ``url`` (``<dataset>/shards/<id>.tar.zst``).

    Identity and key come from the dataset's manifest (the latest version naming the
    shard), never from the file.
    """
    fs, path = storage.resolve(url, storage_options)
    head, sep, name = path.rpartition("/shards/")
    if not sep or not name.endswith(".tar.zst"):
        raise ConfigError(f"{url!r} is not a shard URL (<dataset>/shards/<id>.tar.zst)")
    root = head if storage.is_local(fs) else storage.display(fs, head)
    m = open_manifest(root, storage_options)
    snap = m.read()
    shard_id = name[: -len(".tar.zst")]
    info = snap.shards.get(shard_id)
    if info is None:
        raise NotFoundError(f"{url}: shard {shard_id!r} is not in version {snap.version} of {m.where}")
    return io.BufferedReader(TarStream(open_shard(m, info, dataset_id=snap.dataset_id, keyring=keyring)), 1 << 20)
