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
    VersionConflict,
)
from exashard.shards import ShardReader, ShardWriter, head, inspect, verify

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "ExashardError",
    "IntegrityError",
    "KeyAccessError",
    "MissingDependencyError",
    "NotFoundError",
    "QuarantineError",
    "SampleError",
    "ShardReader",
    "ShardWriter",
    "VersionConflict",
    "__version__",
    "head",
    "ingest",
    "inspect",
    "verify",
]
