"""Writing shards: WebDataset samples -> tar members -> independent zstd frames + index.

``ShardFileWriter`` writes one shard to a byte sink. ``ShardWriter`` is the user-facing
recipe: it rolls shards into a dataset folder/prefix and commits them to the manifest
when it closes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import zstandard

from ..errors import ConfigError, IntegrityError, SampleError
from . import storage
from .format import FORMAT_VERSION, INDEX_MAGIC, IndexBuilder, encode_seek_table, skippable
from .tar import END_OF_ARCHIVE, member_header, padding
from .zframe import build_raw_frame, frame_digest

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
MAX_FRAME = (1 << 32) - 1 - 64 * KiB  # seek table entries are u32
# Payloads that are already compressed: frames made mostly of these get the cheapest level.
COMPRESSED_EXTS = frozenset(
    ["jpg", "jpeg", "png", "webp", "gif", "avif", "heic", "heif", "jxl", "mp4", "m4v", "mov", "mkv", "webm", "avi", "mp3", "m4a", "aac", "ogg", "opus", "flac", "zst", "gz", "tgz", "bz2", "xz", "zip", "7z", "br", "lz4"]
)
_BAD_KEY = re.compile(r"[\x00]")


def utc_now() -> str:
    """ISO-8601 UTC timestamp, the default clock."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True)
class ShardInfo:
    """What the manifest records about one shard (a manifest row)."""

    id: str
    path: str  # relative to the dataset root
    samples: int
    bytes: int  # size of the shard file
    tar_bytes: int  # size of the tar stream inside
    frames: int
    checksum: str  # "sha256:<hex>" of the shard file
    index_offset: int  # where the index frame starts (plaintext offset)
    index_size: int  # index frame + seek table, up to the end of the plaintext
    format: int = FORMAT_VERSION
    created: str = ""
    encryption: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {  # by hand: dataclasses.asdict deep-copies and is most of a checkpoint's cost
            "id": self.id, "path": self.path, "samples": self.samples, "bytes": self.bytes, "tar_bytes": self.tar_bytes,
            "frames": self.frames, "checksum": self.checksum, "index_offset": self.index_offset,
            "index_size": self.index_size, "format": self.format, "created": self.created,
            "encryption": None if self.encryption is None else dict(self.encryption), "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str) -> ShardInfo:
        names = {f.name for f in fields(cls)}
        try:
            row = cls(**{k: v for k, v in d.items() if k in names})
        except TypeError as e:
            raise IntegrityError(f"{where}: malformed shard row ({e})") from None
        for name in ("samples", "bytes", "tar_bytes", "frames", "index_offset", "index_size"):
            value = getattr(row, name)
            if not isinstance(value, int) or value < 0:
                raise IntegrityError(f"{where}: shard {row.id!r} has bad {name} {value!r}")
        if not isinstance(row.id, str) or not isinstance(row.path, str) or not row.path:
            raise IntegrityError(f"{where}: malformed shard row (id/path)")
        return row


def check_key(key: object) -> str:
    """A WebDataset sample key: the member name up to its first dot, so none in the last part."""
    if not isinstance(key, str):
        raise SampleError(f"sample key must be a str, got {type(key).__name__}")
    if not key:
        raise SampleError("sample key is empty")
    if _BAD_KEY.search(key) or key.startswith("/") or len(key.encode("utf-8", "surrogatepass")) > 4000:
        raise SampleError(f"sample key {key!r} is not a valid relative member name")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise SampleError(f"sample key {key!r} has an empty, '.' or '..' path part")
    if "." in parts[-1]:
        raise SampleError(
            f"sample key {key!r} has a dot in its last path part; WebDataset readers take the "
            "key up to the first dot, so the sample would split"
        )
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise SampleError(f"sample key {key!r} is not valid Unicode") from None
    return key


def sample_fields(sample: Mapping[str, Any]) -> tuple[str, list[tuple[str, bytes | memoryview]]]:
    """Validate a WebDataset-style dict: ``__key__`` plus extension -> bytes/str.

    Other ``__dunder__`` entries (``__url__`` and the like, added by readers) are not
    data and are ignored.
    """
    if not isinstance(sample, Mapping):
        raise SampleError(f"a sample must be a dict, got {type(sample).__name__}")
    if "__key__" not in sample:
        raise SampleError("sample has no '__key__'")
    key = check_key(sample["__key__"])
    out: list[tuple[str, bytes | memoryview]] = []
    for ext, value in sample.items():
        if not isinstance(ext, str):
            raise SampleError(f"sample {key!r}: field name {ext!r} is not a str")
        if ext.startswith("__") and ext.endswith("__"):
            continue
        if not ext or "/" in ext or "\x00" in ext or ext.startswith(".") or ext.endswith("."):
            raise SampleError(f"sample {key!r}: field name {ext!r} is not a valid extension")
        if isinstance(value, str):
            value = value.encode("utf-8")
        elif isinstance(value, (bytes, bytearray)):
            value = bytes(value) if isinstance(value, bytearray) else value
        elif isinstance(value, memoryview):
            value = value.cast("B") if value.contiguous else memoryview(value.tobytes())
        else:
            raise SampleError(
                f"sample {key!r}: field {ext!r} must be bytes or str, got {type(value).__name__}"
            )
        out.append((ext, value))
    if not out:
        raise SampleError(f"sample {key!r} has no fields to store")
    return key, out


class HashingSink:
    """Counts and hashes the final bytes of a shard on their way to storage."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        self.sha.update(data)
        self.size += len(data)
        self.sink.write(data)


class ShardFileWriter:
    """Writes one shard as a stream of whole-sample zstd frames, then index and seek table.

    ``out`` receives the plaintext shard bytes in order (an encryption layer can sit
    between this writer and storage). Memory is bounded by one frame.
    """

    def __init__(
        self, out: Any, *, frame_size: int = 2 * MiB, level: int | None = 3, mtime: int = 0, name: str = "shard"
    ) -> None:
        self.out = out
        self.name = name
        self.frame_size = frame_size
        self.mtime = mtime
        self._cctx = (
            None if level is None else zstandard.ZstdCompressor(level=level, write_checksum=True, write_content_size=True)
        )
        self._parts: list[bytes | memoryview] = []
        self._frame_bytes = 0
        self._frame_compressed_media = 0
        self._frame_start = 0  # tar offset of the current frame's first byte
        self._sizes: list[tuple[int, int]] = []
        self._offset = 0  # bytes of shard written so far
        self.index = IndexBuilder()
        self._keys: set[str] = set()
        self.closed = False

    @property
    def samples(self) -> int:
        return len(self.index)

    @property
    def bytes_written(self) -> int:
        return self._offset + self._frame_bytes  # compressed so far + pending tar bytes

    def add(self, key: str, items: list[tuple[str, bytes | memoryview]]) -> None:
        if key in self._keys:
            raise SampleError(f"{self.name}: duplicate sample key {key!r} in one shard")
        headers = [member_header(f"{key}.{ext}", len(v), self.mtime) for ext, v in items]
        size = sum(len(h) + len(v) + padding(len(v)) for h, (_, v) in zip(headers, items))
        if size > MAX_FRAME:
            raise SampleError(f"sample {key!r} is {size} bytes; one sample must stay under 4 GiB")
        if self._frame_bytes and self._frame_bytes + size > self.frame_size:
            self._flush_frame()
        pos = self._frame_start + self._frame_bytes
        members = []
        for h, (ext, v) in zip(headers, items):
            pos += len(h)
            members.append((ext, pos, len(v)))
            pad = padding(len(v))
            self._parts.append(h)
            self._parts.append(v)
            if pad:
                self._parts.append(bytes(pad))
            pos += len(v) + pad
            if ext.rsplit(".", 1)[-1].lower() in COMPRESSED_EXTS:
                self._frame_compressed_media += len(v)
        self._frame_bytes += size
        self._keys.add(key)
        self.index.add(key, len(self._sizes), members)
        if self._frame_bytes >= self.frame_size:
            self._flush_frame()

    def _flush_frame(self) -> None:
        """Store the pending samples as one frame: compressed, or Raw blocks if that is no smaller.

        Frames made mostly of already-compressed media skip the compressor entirely;
        others are compressed and kept only if that saves at least 3%.
        """
        if not self._frame_bytes:
            return
        size = self._frame_bytes
        frame: bytes | None = None
        if self._cctx is not None and self._frame_compressed_media * 10 < size * 9:
            frame = self._cctx.compress(b"".join(self._parts))
            if len(frame) * 100 > size * 97:
                frame = None
        if frame is None:
            frame = build_raw_frame(self._parts)
        self.out.write(frame)
        self.index.frame_digest.append(frame_digest(frame))
        self._sizes.append((len(frame), size))
        self._offset += len(frame)
        self._frame_start += size
        self._parts, self._frame_bytes, self._frame_compressed_media = [], 0, 0

    def finish(self) -> dict[str, Any]:
        """Write the end-of-archive marker, index and seek table; return the shard's geometry."""
        if self.closed:
            raise IntegrityError(f"{self.name}: shard already finished")
        self._parts.append(END_OF_ARCHIVE)
        self._frame_bytes += len(END_OF_ARCHIVE)
        self._flush_frame()
        index_frame = skippable(INDEX_MAGIC, self.index.encode())
        index_offset = self._offset
        self._sizes.append((len(index_frame), 0))
        table = encode_seek_table(self._sizes)
        self.out.write(index_frame)
        self.out.write(table)
        self._offset += len(index_frame) + len(table)
        self.closed = True
        return {
            "samples": len(self.index),
            "tar_bytes": self._frame_start,
            "frames": len(self._sizes) - 1,
            "index_offset": index_offset,
            "index_size": self._offset - index_offset,
        }


def _random_name() -> str:
    return os.urandom(8).hex()


DataKeySource = Callable[[str, str], tuple[bytes, Any]]  # (dataset id, shard id) -> (key, WrappedKey)


@dataclass(slots=True)
class _Open:
    writer: ShardFileWriter
    hashing: HashingSink
    sink: storage.Sink
    crypt: Any  # EncryptingWriter or None
    shard_id: str
    rel: str
    encryption: dict[str, Any] | None
    subjects: dict[str, list[str]] = field(default_factory=dict)  # pseudonym -> sample keys
    stats: dict[str, int] = field(default_factory=dict)


class ShardWriter:
    """Write samples into a dataset folder/prefix, rolling shards, and commit them on close.

    ``out`` is any fsspec URL (``/data/ds``, ``s3://bucket/ds``, ``memory://ds``).
    Shards go to ``<out>/shards/<name>-<seq>.tar.zst``; closing commits one new manifest
    version naming them (``commit=False`` leaves that to the caller, as ingest does).

    Shards are encrypted by default (``docs/FORMAT.md`` section 4): each gets a fresh
    random data key, wrapped by the ``keyring`` (a path, a ``kms://`` URI or a keyring
    object; default ``$EXASHARD_KEYRING`` or ``~/.config/exashard/keyring.json``, which
    must exist) and kept in the dataset's key store. ``data_keys`` replaces the keyring
    with a callable handing out ``(data key, wrapped key)`` pairs (how ingest tasks get
    keys from the driver). ``encrypt=False`` writes plain shards that ordinary zstd/tar
    tools read.

    The tar stream is deterministic for the same samples and arguments. ``level=None``
    stores every frame uncompressed (Raw blocks); otherwise a frame is compressed at
    ``level`` unless that saves under 3% or it is mostly already-compressed media.
    """

    def __init__(
        self,
        out: str,
        *,
        keyring: Any = None,
        encrypt: bool = True,
        target_size: int = 256 * MiB,
        max_samples: int | None = None,
        frame_size: int = 2 * MiB,
        level: int | None = 3,
        segment_size: int = 256 * KiB,
        mtime: int = 0,
        name: str | None = None,
        commit: bool = True,
        data_keys: DataKeySource | None = None,
        storage_options: dict[str, Any] | None = None,
        fs: Any = None,
        clock: Callable[[], str] = utc_now,
        subject_field: str | None = None,
    ) -> None:
        if not isinstance(target_size, int) or target_size <= 0:
            raise ConfigError(f"target_size must be a positive int, got {target_size!r}")
        if max_samples is not None and (not isinstance(max_samples, int) or max_samples <= 0):
            raise ConfigError(f"max_samples must be a positive int or None, got {max_samples!r}")
        if not isinstance(frame_size, int) or not 4 * KiB <= frame_size <= MAX_FRAME:
            raise ConfigError(f"frame_size must be between 4 KiB and 4 GiB, got {frame_size!r}")
        if level is not None and (not isinstance(level, int) or not -7 <= level <= 22):
            raise ConfigError(f"zstd level must be an int in -7..22 or None (store), got {level!r}")
        if name is not None and (not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", name)):
            raise ConfigError(f"shard name prefix {name!r} must be 1-100 of [A-Za-z0-9_.-]")
        if not isinstance(segment_size, int) or not 4 * KiB <= segment_size <= GiB:
            raise ConfigError(f"segment_size must be between 4 KiB and 1 GiB, got {segment_size!r}")
        self.url = os.fspath(out)
        self.fs, self.root = storage.resolve(self.url, storage_options, fs)
        self.target_size, self.max_samples = target_size, max_samples
        self.frame_size, self.level, self.mtime = frame_size, level, mtime
        self.segment_size = segment_size
        self.prefix = name or _random_name()
        self.commit_on_close = commit
        self.clock = clock
        self.subject_field = subject_field  # the policy field the pseudonyms came from (for deletion requests)
        self.storage_options = storage_options
        self.encrypt = encrypt
        self.keyring: Any = None
        self.data_keys = data_keys
        if encrypt and data_keys is None:
            from ..privacy.keys import resolve_keyring

            self.keyring = resolve_keyring(keyring)
        self.dataset_id: str | None = None
        self.shards: list[ShardInfo] = []
        self.version: int | None = None
        self._seq = 0
        self._current: _Open | None = None
        self._closed = False

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _manifest(self) -> Any:
        from .manifest import Manifest

        return Manifest(self.root, fs=self.fs, clock=self.clock)

    def write(self, sample: Any, *, subject: str | None = None, stats: Mapping[str, int] | None = None) -> None:
        """Add one sample: a WebDataset dict, or a ``record.Sample`` after the privacy stage.

        ``subject`` (a pseudonym) joins the shard's subject side table; ``stats``
        (privacy counts) are summed into the shard's manifest row.
        """
        if self._closed:
            raise ConfigError(f"{self.url}: ShardWriter is closed")
        if hasattr(sample, "as_dict") and hasattr(sample, "subject"):
            subject = sample.subject if subject is None else subject
            stats = sample.stats if stats is None else stats
            sample = sample.as_dict()
        key, items = sample_fields(sample)
        cur = self._current
        if cur is not None and (
            cur.writer.bytes_written >= self.target_size
            or (self.max_samples is not None and cur.writer.samples >= self.max_samples)
        ):
            self._finish_shard()
            cur = None
        if cur is None:
            cur = self._open_shard()
        cur.writer.add(key, items)
        if subject is not None:
            cur.subjects.setdefault(subject, []).append(key)
        if stats:
            for k, v in stats.items():
                cur.stats[k] = cur.stats.get(k, 0) + v

    def _open_shard(self) -> _Open:
        shard_id = f"{self.prefix}-{self._seq:06d}"
        self._seq += 1
        rel = f"shards/{shard_id}.tar.zst"
        crypt = encryption = None
        data_key = wrapped = None
        if self.encrypt:
            from ..privacy.keys import context
            from ..privacy.keystore import KeyStore
            from ..privacy.stream import SCHEME

            if self.dataset_id is None:
                self.dataset_id = self._manifest().dataset_id(create=True)
            assert self.dataset_id is not None
            if self.data_keys is not None:
                data_key, wrapped = self.data_keys(self.dataset_id, shard_id)
                keyring_id = getattr(self.data_keys, "keyring_id", "external")
            else:
                data_key, wrapped = self.keyring.new_data_key(context(self.dataset_id, shard_id))
                keyring_id = self.keyring.id
            key_ref = KeyStore(self.fs, self.root).put(shard_id, self.dataset_id, keyring_id, wrapped)
            encryption = {"scheme": SCHEME, "segment_size": self.segment_size, "keyring": keyring_id, "key_ref": key_ref}
        sink = storage.Sink(self.fs, storage.join(self.root, rel))
        hashing = HashingSink(sink)
        target: Any = hashing
        if self.encrypt:
            from ..privacy.stream import EncryptingWriter

            assert data_key is not None and self.dataset_id is not None
            crypt = target = EncryptingWriter(
                hashing, data_key, dataset_id=self.dataset_id, shard_id=shard_id, segment_size=self.segment_size
            )
            del data_key
        w = ShardFileWriter(target, frame_size=self.frame_size, level=self.level, mtime=self.mtime, name=shard_id)
        self._current = _Open(w, hashing, sink, crypt, shard_id, rel, encryption)
        return self._current

    def _finish_shard(self) -> None:
        assert self._current is not None
        cur, self._current = self._current, None
        geometry = cur.writer.finish()
        if cur.crypt is not None:
            cur.crypt.close()
        cur.sink.close()
        extra: dict[str, Any] = {}
        if cur.subjects or cur.stats:
            extra["privacy"] = {"stats": dict(sorted(cur.stats.items())), "subjects": len(cur.subjects)}
        if cur.subjects:  # side table: which subject pseudonyms this shard holds (for deletion requests)
            rel = f"subjects/{cur.shard_id}.json"
            doc = {
                "format": "exashard-subjects", "version": 1, "shard": cur.shard_id, "field": self.subject_field,
                "pseudonyms": sorted(cur.subjects), "samples": {p: cur.subjects[p] for p in sorted(cur.subjects)},
            }
            storage.atomic_write(self.fs, storage.join(self.root, rel), json.dumps(doc).encode())
            extra["privacy"]["subjects_ref"] = rel
        self.shards.append(
            ShardInfo(
                id=cur.shard_id, path=cur.rel, bytes=cur.hashing.size, checksum="sha256:" + cur.hashing.sha.hexdigest(),
                created=self.clock(), encryption=cur.encryption, extra=extra, **geometry,
            )
        )

    def close(self) -> list[ShardInfo]:
        """Finish the open shard and (unless ``commit=False``) commit all shards as one version."""
        if self._closed:
            return self.shards
        if self._current is not None:
            self._finish_shard()
        self._closed = True
        if self.commit_on_close and self.shards:
            self.version = self._manifest().commit(add=self.shards, operation="write")
        return self.shards

    def abort(self) -> None:
        """Drop the shard being written; nothing is committed (finished shard files stay unreferenced)."""
        if self._current is not None:
            self._current.sink.abort()
            self._current = None
        self._closed = True
