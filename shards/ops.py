"""Dataset-level operations behind the CLI: inspect, verify, head, and plain iteration."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, ExashardError, IntegrityError
from . import storage
from .manifest import Manifest, Snapshot, open_manifest
from .reader import Sample, ShardReader
from .writer import ShardInfo


def open_shard(
    manifest: Manifest, info: ShardInfo, *, dataset_id: str | None = None, keys: Any = None, keyring: Any = None,
    source: storage.RangeSource | None = None, **kwargs: Any,
) -> ShardReader:
    """A reader for one manifest row (size, index position and key reference come from the row).

    Encrypted shards are decrypted in memory with the data key from the dataset's key
    store, unwrapped by ``keyring`` (or a shared ``keys``: a ``privacy.access.ShardKeys``).
    ``source`` stands in for the stored file (e.g. a local cache copy of its bytes).
    """
    src: Any = source
    if src is None:
        path = storage.join(manifest.root, info.path)
        src = storage.open_source(manifest.fs, path, size=info.bytes if not storage.is_local(manifest.fs) else None)
    if info.encryption:
        if src.size != info.bytes:
            src.close()
            raise IntegrityError(f"{src.name}: shard is {src.size} bytes, its manifest row says {info.bytes}")
        if keys is None:
            from ..privacy.access import ShardKeys

            keys = ShardKeys(manifest.fs, manifest.root, dataset_id or manifest.read().dataset_id, keyring)
        try:
            src = keys.source(src, info)
        except BaseException:
            src.close()
            raise
    return ShardReader(src, index_offset=info.index_offset, index_size=info.index_size, **kwargs)


def _open(dataset: str, storage_options: dict[str, Any] | None, version: int | None) -> tuple[Manifest, Snapshot]:
    m = open_manifest(dataset, storage_options)
    return m, m.read(version)


def _keys(m: Manifest, snap: Snapshot, keyring: Any) -> Any:
    from ..privacy.access import ShardKeys

    return ShardKeys(m.fs, m.root, snap.dataset_id, keyring)


def iter_dataset(
    dataset: str, *, keyring: Any = None, storage_options: dict[str, Any] | None = None, version: int | None = None,
    **kwargs: Any,
) -> Iterator[Sample]:
    """Every sample of one manifest version, shard by shard in commit order."""
    m, snap = _open(dataset, storage_options, version)
    keys = _keys(m, snap, keyring)
    for info in snap.shards.values():
        with open_shard(m, info, dataset_id=snap.dataset_id, keys=keys, **kwargs) as r:
            yield from r


def inspect(dataset: str, *, storage_options: dict[str, Any] | None = None, version: int | None = None) -> dict[str, Any]:
    """Summary of a dataset: id, version, shard/sample/byte counts and each shard row."""
    m, snap = _open(dataset, storage_options, version)
    return {
        "dataset": m.where,
        "dataset_id": snap.dataset_id,
        "version": snap.version,
        "versions": len(m.versions()),
        "shards": len(snap.shards),
        "samples": snap.samples,
        "bytes": snap.bytes,
        "tar_bytes": sum(s.tar_bytes for s in snap.shards.values()),
        "updated": snap.created,
        "shard_rows": [s.to_dict() for s in snap.shards.values()],
    }


@dataclass
class VerifyReport:
    dataset: str
    version: int
    shards: int = 0
    samples: int = 0
    bad: dict[str, str] = field(default_factory=dict)  # shard id -> problem

    @property
    def ok(self) -> bool:
        return not self.bad


def verify(
    dataset: str, *, keyring: Any = None, storage_options: dict[str, Any] | None = None, version: int | None = None
) -> VerifyReport:
    """Check every shard of a version: file checksum, sample count, every frame decodes
    (and, encrypted, authenticates), tar headers agree with the index. Problems are
    collected per shard, not raised; a missing keyring is raised."""
    m, snap = _open(dataset, storage_options, version)
    report = VerifyReport(m.where, snap.version)
    keys = _keys(m, snap, keyring)
    for info in snap.shards.values():
        report.shards += 1
        if info.encryption:
            keys.keyring(str(info.encryption.get("keyring")))  # no keyring at all: fail loudly, not per shard
        try:
            with open_shard(m, info, dataset_id=snap.dataset_id, keys=keys) as r:
                r.verify(checksum=info.checksum, samples=info.samples)
            report.samples += info.samples
        except ExashardError as e:
            report.bad[info.id] = str(e)
        except OSError as e:
            report.bad[info.id] = f"{info.path}: unreadable ({e.__class__.__name__}: {e})"
    return report


def head(
    dataset: str, n: int = 5, *, keyring: Any = None, storage_options: dict[str, Any] | None = None,
    version: int | None = None,
) -> list[Sample]:
    """The first ``n`` samples of a version, in order."""
    if n < 0:
        raise ConfigError(f"n must be >= 0, got {n}")
    out: list[Sample] = []
    if n == 0:
        return out
    for s in iter_dataset(dataset, keyring=keyring, storage_options=storage_options, version=version):
        out.append(s)
        if len(out) >= n:
            break
    return out
