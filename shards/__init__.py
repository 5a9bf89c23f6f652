"""The shard format: writer, reader, per-shard index and the dataset manifest."""

from .manifest import Manifest, Snapshot, open_manifest
from .ops import VerifyReport, head, inspect, iter_dataset, open_shard, verify
from .reader import ShardReader
from .stream import open_tar_stream
from .writer import ShardFileWriter, ShardInfo, ShardWriter


def __getattr__(name: str) -> object:
    if name in ("ShardDataset", "ShardLoader", "ShardMapDataset"):  # lazy: importing them imports torch
        from . import batching, loader

        return getattr(batching if name == "ShardLoader" else loader, name)
    raise AttributeError(f"module 'exashard.shards' has no attribute {name!r}")


__all__ = [
    "Manifest",
    "ShardFileWriter",
    "ShardInfo",
    "ShardReader",
    "ShardWriter",
    "Snapshot",
    "VerifyReport",
    "head",
    "inspect",
    "iter_dataset",
    "open_manifest",
    "open_shard",
    "open_tar_stream",
    "verify",
]
