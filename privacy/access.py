"""Opening encrypted shards: manifest row -> key store -> keyring -> decrypting source.

Identity comes from the manifest row and snapshot (dataset id, shard id, key reference),
never from the shard's header, so a swapped or replaced shard fails to decrypt.
"""

from __future__ import annotations

from typing import Any

from ..errors import IntegrityError, KeyAccessError
from .keys import LocalKeyring, context, resolve_keyring
from .keystore import KeyStore
from .stream import SCHEME, DecryptingSource


class ShardKeys:
    """Unwraps shard data keys for one dataset; the keyring is resolved on first need."""

    def __init__(self, fs: Any, root: str, dataset_id: str | None, keyring: Any = None) -> None:
        self.store = KeyStore(fs, root)
        self.dataset_id = dataset_id
        self._keyring_arg = keyring
        self._keyring: Any = None

    def keyring(self, needed: str) -> Any:
        if self._keyring is None:
            kr = resolve_keyring(self._keyring_arg, needed=needed)
            if isinstance(kr, LocalKeyring) and needed.startswith("kr-") and kr.id != needed:
                raise KeyAccessError(f"this dataset needs keyring {needed}, but {kr.location} is keyring {kr.id}")
            self._keyring = kr
        return self._keyring

    def data_key(self, info: Any) -> bytes:
        enc = info.encryption or {}
        if enc.get("scheme") != SCHEME:
            raise IntegrityError(f"shard {info.id!r}: unsupported encryption scheme {enc.get('scheme')!r}")
        if not self.dataset_id:
            raise IntegrityError(f"shard {info.id!r}: encrypted shard in a dataset without an id")
        wrapped, _ = self.store.get(info.id, self.dataset_id)
        return self.keyring(str(enc.get("keyring"))).unwrap(wrapped, context(self.dataset_id, info.id))

    def source(self, stored: Any, info: Any) -> DecryptingSource:
        key = self.data_key(info)
        try:
            return DecryptingSource(stored, key, dataset_id=self.dataset_id or "", shard_id=info.id)
        finally:
            del key
