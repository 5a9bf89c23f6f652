"""The shard format: writer, reader, per-shard index and the dataset manifest."""

from .manifest import Manifest, Snapshot, open_manifest
from .ops import VerifyReport, head, inspect, iter_dataset, open_shard, verify
from .reader import ShardReader
from .stream import open_tar_stream
from .writer import ShardFileWriter, ShardInfo, ShardWriter

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
