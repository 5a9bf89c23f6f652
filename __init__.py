"""exashard: private training datasets at exabyte scale.

The public API is re-exported here; everything else is internal. These imports are
absolute on purpose: the repository root is this package, and a test runner that
imports the root ``__init__.py`` under the checkout folder's name must still work.
"""

from exashard import ingest  # noqa: E402 - callable package: exashard.ingest(sources, out, ...)
from exashard.errors import (
    ConfigError,
    ExashardError,
    IntegrityError,
    KeyAccessError,
    MissingDependencyError,
    NotFoundError,
    QuarantineError,
    SampleError,
    ShreddedError,
    VersionConflict,
)
from exashard.shards import ShardReader, ShardWriter, head, inspect, verify

__version__ = "0.1.0"

_LAZY = {"ShardDataset", "ShardLoader", "ShardMapDataset"}  # importing them imports torch when installed


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from exashard.shards import batching, loader

        return getattr(batching if name == "ShardLoader" else loader, name)
    raise AttributeError(f"module 'exashard' has no attribute {name!r}")


__all__ = [
    "ConfigError",
    "ExashardError",
    "IntegrityError",
    "KeyAccessError",
    "MissingDependencyError",
    "NotFoundError",
    "QuarantineError",
    "SampleError",
    "ShardDataset",
    "ShardLoader",
    "ShardMapDataset",
    "ShardReader",
    "ShardWriter",
    "ShreddedError",
    "VersionConflict",
    "__version__",
    "head",
    "ingest",
    "inspect",
    "verify",
]
