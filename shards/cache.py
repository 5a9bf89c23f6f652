"""An optional local cache of shard files for the loader: stored bytes only.

A cached file is a byte-for-byte copy of the stored shard, so an encrypted dataset's
cache holds ciphertext: decryption still happens in memory, every epoch. Files are
fetched whole on first use (into a temporary name, then renamed), checked against the
manifest row's size, and evicted oldest-used first past ``limit`` bytes.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from ..errors import ConfigError
from . import storage


class ShardCache:
    def __init__(self, folder: str, limit: int | None = None) -> None:
        if limit is not None and (not isinstance(limit, int) or limit <= 0):
            raise ConfigError(f"cache_limit must be a positive number of bytes, got {limit!r}")
        self.folder, self.limit = os.path.abspath(folder), limit
        try:
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cache_dir {folder}: cannot create it ({e.strerror})") from None

    def _path(self, dataset_id: str, info: Any) -> str:
        return os.path.join(self.folder, dataset_id or "no-id", f"{info.id}.shard")

    def source(self, fs: Any, root: str, dataset_id: str, info: Any) -> storage.LocalSource:
        """A local source of the shard's stored bytes, fetching them first if needed."""
        path = self._path(dataset_id, info)
        try:
            if os.path.getsize(path) == info.bytes:
                os.utime(path)  # last use, for eviction
                return storage.LocalSource(path, name=storage.display(fs, storage.join(root, info.path)))
        except FileNotFoundError:
            pass
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.part"
        src = storage.open_source(fs, storage.join(root, info.path), size=info.bytes)
        try:
            with open(tmp, "wb") as f:
                for data in storage.read_chunks(src, info.bytes):
                    f.write(data)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        finally:
            src.close()
        self._evict(keep=path)
        return storage.LocalSource(path, name=src.name)

    def _evict(self, keep: str) -> None:
        if self.limit is None:
            return
        files = []
        for top, _, names in os.walk(self.folder):
            for n in names:
                if n.endswith(".shard"):
                    p = os.path.join(top, n)
                    try:
                        st = os.stat(p)
                    except FileNotFoundError:
                        continue
                    files.append((st.st_mtime, st.st_size, p))
        total = sum(f[1] for f in files)
        for _, size, p in sorted(files):
            if total <= self.limit:
                break
            if p == keep:
                continue
            try:
                os.unlink(p)  # an open reader keeps its file until it closes it
            except FileNotFoundError:
                pass
            total -= size
