"""Dataset-level operations behind the CLI: inspect, verify, head, and plain iteration."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, ExashardError
from . import storage
from .manifest import Manifest, Snapshot, open_manifest
from .reader import Sample, ShardReader
from .writer import ShardInfo


def open_shard(manifest: Manifest, info: ShardInfo, **kwargs: Any) -> ShardReader:
    """A reader for one manifest row (size and index position come from the row)."""
    path = storage.join(manifest.root, info.path)
    src = storage.open_source(manifest.fs, path, size=info.bytes if not storage.is_local(manifest.fs) else None)
    return ShardReader(src, index_offset=info.index_offset, index_size=info.index_size, **kwargs)


def _open(dataset: str, storage_options: dict[str, Any] | None, version: int | None) -> tuple[Manifest, Snapshot]:
    m = open_manifest(dataset, storage_options)
    return m, m.read(version)


def iter_dataset(
    dataset: str, *, storage_options: dict[str, Any] | None = None, version: int | None = None, **kwargs: Any
) -> Iterator[Sample]:
    """Every sample of one manifest version, shard by shard in commit order."""
    m, snap = _open(dataset, storage_options, version)
    for info in snap.shards.values():
        with open_shard(m, info, **kwargs) as r:
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


def verify(dataset: str, *, storage_options: dict[str, Any] | None = None, version: int | None = None) -> VerifyReport:
    """Check every shard of a version: file checksum, sample count, every frame decodes,
    tar headers agree with the index. Problems are collected per shard, not raised."""
    m, snap = _open(dataset, storage_options, version)
    report = VerifyReport(m.where, snap.version)
    for info in snap.shards.values():
        report.shards += 1
        try:
            with open_shard(m, info) as r:
                r.verify(checksum=info.checksum, samples=info.samples)
            report.samples += info.samples
        except ExashardError as e:
            report.bad[info.id] = str(e)
        except OSError as e:
            report.bad[info.id] = f"{info.path}: unreadable ({e.__class__.__name__}: {e})"
    return report


def head(
    dataset: str, n: int = 5, *, storage_options: dict[str, Any] | None = None, version: int | None = None
) -> list[Sample]:
    """The first ``n`` samples of a version, in order."""
    if n < 0:
        raise ConfigError(f"n must be >= 0, got {n}")
    out: list[Sample] = []
    if n == 0:
        return out
    for s in iter_dataset(dataset, storage_options=storage_options, version=version):
        out.append(s)
        if len(out) >= n:
            break
    return out
