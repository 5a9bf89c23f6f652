"""Key rotation and crypto-shredding over a dataset's key store.

Neither touches shard files or manifest versions: shard checksums stay as committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import KeyAccessError, NotFoundError
from ..shards.manifest import open_manifest
from .keys import context, resolve_keyring
from .keystore import KeyStore


@dataclass
class KeyReport:
    dataset: str
    kek: str
    rewrapped: int = 0
    shredded: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)


def _setup(dataset: str, keyring: Any, storage_options: dict[str, Any] | None) -> tuple[Any, KeyStore, str, Any]:
    m = open_manifest(dataset, storage_options)
    dataset_id = m.dataset_id() or m.read().dataset_id
    if not dataset_id:
        raise NotFoundError(f"{m.where}: dataset has no id")
    store = KeyStore(m.fs, m.root)
    needed = None
    for row in m.read().shards.values():
        if row.encryption:
            needed = row.encryption.get("keyring")
            break
    return m, store, dataset_id, resolve_keyring(keyring, needed=needed)


def _rewrap_all(store: KeyStore, dataset_id: str, kr: Any, new_kek: str, skip: str | None = None) -> tuple[int, set[str]]:
    """Re-wrap every key-store entry (all versions' shards) under ``new_kek``."""
    n, old = 0, set()
    for shard_id in store.shard_ids():
        if shard_id == skip:
            continue
        wrapped, keyring_id = store.get(shard_id, dataset_id)
        old.add(wrapped.kek)
        if wrapped.kek == new_kek:
            continue
        store.put(shard_id, dataset_id, keyring_id, kr.rewrap(wrapped, context(dataset_id, shard_id), new_kek))
        n += 1
    return n, old - {new_kek}


def rotate(dataset: str, *, keyring: Any = None, storage_options: dict[str, Any] | None = None) -> KeyReport:
    """Make a new KEK the dataset's primary and re-wrap every data key under it.

    Old KEKs stay usable (a backup of the key store still opens); shredding retires them.
    """
    m, store, dataset_id, kr = _setup(dataset, keyring, storage_options)
    new = kr.begin_rotation(dataset_id)
    n, _ = _rewrap_all(store, dataset_id, kr, new)
    return KeyReport(m.where, new, rewrapped=n)


def shred(
    dataset: str, shard_ids: list[str], *, keyring: Any = None, storage_options: dict[str, Any] | None = None
) -> KeyReport:
    """Make shards unreadable for good: delete their wrapped keys, re-wrap the rest under a
    new KEK, then retire every older KEK of the dataset, so no copy of the old key store
    can open the shredded shards either.
    """
    m, store, dataset_id, kr = _setup(dataset, keyring, storage_options)
    present = set(store.shard_ids())
    missing = [s for s in shard_ids if s not in present]
    if missing:
        raise KeyAccessError(f"{m.where}: no data key for shard(s) {missing} (never encrypted, or already shredded)")
    new = kr.begin_rotation(dataset_id)
    report = KeyReport(m.where, new)
    olds: set[str] = set()
    for s in shard_ids:
        wrapped, _ = store.get(s, dataset_id)
        olds.add(wrapped.kek)
    for s in shard_ids:
        store.delete(s)
        report.shredded.append(s)
    n, more = _rewrap_all(store, dataset_id, kr, new)
    report.rewrapped = n
    olds |= more
    if hasattr(kr, "keks_of"):
        olds |= set(kr.keks_of(dataset_id)) - {new}
    kr.retire(olds)
    report.retired = sorted(olds)
    return report
