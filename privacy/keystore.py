"""A dataset's key store: one small file of wrapped data key per shard, under ``keys/``.

The key store is the only mutable part of a dataset: shard files and manifest versions
never change, so rotating a KEK rewrites only these files (shard checksums stay), and
shredding a shard deletes its file and re-wraps the rest under a new KEK.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import KeyAccessError, ShreddedError
from ..shards import storage
from ..shards.writer import utc_now
from .keys import WrappedKey

KEY_FORMAT = "exashard-key"


def key_path(shard_id: str) -> str:
    return f"keys/{shard_id}.json"


class KeyStore:
    def __init__(self, fs: Any, root: str) -> None:
        self.fs, self.root = fs, root
        self.where = storage.display(fs, root)

    def _path(self, shard_id: str) -> str:
        return storage.join(self.root, key_path(shard_id))

    def put(self, shard_id: str, dataset_id: str, keyring_id: str, wrapped: WrappedKey) -> str:
        doc = {
            "format": KEY_FORMAT, "version": 1, "dataset": dataset_id, "shard": shard_id,
            "keyring": keyring_id, "wrapped": wrapped.to_dict(), "updated": utc_now(),
        }
        storage.atomic_write(self.fs, self._path(shard_id), json.dumps(doc, sort_keys=True).encode())
        return key_path(shard_id)

    def get(self, shard_id: str, dataset_id: str) -> tuple[WrappedKey, str]:
        """(wrapped key, keyring id) for a shard; ``KeyAccessError`` if it was shredded or is missing."""
        where = f"{self.where}/{key_path(shard_id)}"
        try:
            doc = json.loads(storage.retrying(lambda: self.fs.cat_file(self._path(shard_id)), where))
        except FileNotFoundError:
            raise ShreddedError(
                f"shard {shard_id!r} of {self.where} has no data key in the key store: it was shredded "
                "(a deletion request or 'exashard keys shred') or the key store is incomplete"
            ) from None
        except ValueError:
            raise KeyAccessError(f"{where}: key store entry is not JSON") from None
        if not isinstance(doc, dict) or doc.get("format") != KEY_FORMAT or doc.get("shard") != shard_id or doc.get("dataset") != dataset_id:
            raise KeyAccessError(f"{where}: key store entry does not belong to shard {shard_id!r} of this dataset")
        return WrappedKey.from_dict(doc.get("wrapped") or {}, where), str(doc.get("keyring"))

    def delete(self, shard_id: str) -> bool:
        try:
            self.fs.rm_file(self._path(shard_id))
            return True
        except FileNotFoundError:
            return False

    def shard_ids(self) -> list[str]:
        try:
            names = self.fs.ls(storage.join(self.root, "keys"), detail=False)
        except FileNotFoundError:
            return []
        out = []
        for n in names:
            base = n.rstrip("/").rsplit("/", 1)[-1]
            if base.endswith(".json") and not base.startswith("."):
                out.append(base[:-5])
        return sorted(out)
