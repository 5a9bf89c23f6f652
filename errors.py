"""The exception hierarchy: one root, narrow subclasses that also inherit the builtin.

Messages name the dataset, shard, sample or field at fault and never carry sample
bytes or key material.
"""

from __future__ import annotations


class ExashardError(Exception):
    """Root of every error exashard raises on purpose."""


class IntegrityError(ExashardError, ValueError):
    """Stored bytes are damaged, truncated, tampered with or not what the manifest says."""


class SampleError(ExashardError, ValueError):
    """A sample handed to a writer cannot be stored as given (bad key, field or value)."""


class ConfigError(ExashardError, ValueError):
    """An argument, option or configuration file is invalid."""


class NotFoundError(ExashardError, FileNotFoundError):
    """A dataset, shard, version or sample that was asked for does not exist."""


class VersionConflict(ExashardError, RuntimeError):
    """Another committer created the manifest version this one tried to create."""


class MissingDependencyError(ExashardError, ImportError):
    """An optional extra is needed for this feature; the message names it."""


class KeyAccessError(ExashardError, PermissionError):
    """A key needed to read or write is missing, retired, or does not open the data.

    Messages name the key id, keyring and shard, never key bytes.
    """


class ShreddedError(KeyAccessError):
    """A shard's data key was shredded (a deletion request): its data can never be read again."""


class StorageError(ExashardError, OSError):
    """Storage stayed unreachable through every retry (outage, network); names what was read."""


class LockedError(ExashardError, RuntimeError):
    """Another run holds the dataset's run lock (or this run lost it); nothing was changed."""


class QuarantineError(ExashardError, ValueError):
    """An input cannot pass the privacy stage safely (e.g. malformed media that cannot be
    stripped); the record is quarantined with this reason, never passed on."""
