"""exashard: private training datasets at exabyte scale.

The public API is re-exported here; everything else is internal.
"""

from .errors import (
    ConfigError,
    ExashardError,
    IntegrityError,
    MissingDependencyError,
    NotFoundError,
    SampleError,
    VersionConflict,
)
from .shards import ShardReader, ShardWriter, head, inspect, verify

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "ExashardError",
    "IntegrityError",
    "MissingDependencyError",
    "NotFoundError",
    "SampleError",
    "ShardReader",
    "ShardWriter",
    "VersionConflict",
    "__version__",
    "head",
    "inspect",
    "verify",
]
