"""Thin helpers over fsspec: byte-range sources, shard sinks, exclusive and atomic puts.

Filesystems are passed in (``fs``) or built from a URL plus ``storage_options``; nothing
here is global. Local files get the fast path (``os.pread``, ``fsync``, ``link``).
"""

from __future__ import annotations

import errno
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem

from ..errors import ConfigError, IntegrityError, NotFoundError, StorageError, VersionConflict

T = TypeVar("T")


def resolve(url: str, storage_options: dict[str, Any] | None = None, fs: Any = None) -> tuple[Any, str]:
    """``(fs, path)`` for ``url``; an explicit ``fs`` wins and ``url`` is then a path in it."""
    if not isinstance(url, (str, os.PathLike)):
        raise ConfigError(f"expected a URL or path, got {type(url).__name__}")
    url = os.fspath(url)
    if not url:
        raise ConfigError("empty URL or path")
    if fs is not None:
        return fs, fs._strip_protocol(url)
    try:
        fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    except (ValueError, ImportError) as e:
        proto = url.split("://", 1)[0] if "://" in url else "file"
        raise ConfigError(f"cannot open {url!r}: no usable filesystem for {proto!r} ({e})") from None
    return fs, path


def is_local(fs: Any) -> bool:
    return isinstance(fs, LocalFileSystem)


def join(*parts: str) -> str:
    return "/".join(p.rstrip("/") for p in parts[:-1]) + "/" + parts[-1].lstrip("/")


def display(fs: Any, path: str) -> str:
    """A human-readable location for messages (protocol plus path)."""
    proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return path if proto in ("file", "local") else f"{proto}://{path}"


class RangeSource(Protocol):
    name: str
    size: int

    def read(self, offset: int, length: int) -> bytes: ...

    def close(self) -> None: ...


class LocalSource:
    """``pread`` on one descriptor: thread-safe, no seek state, no Python file buffering."""

    def __init__(self, path: str, name: str | None = None) -> None:
        self.name = name or path
        try:
            self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise NotFoundError(f"{self.name}: shard file not found") from None
        self.size = os.fstat(self._fd).st_size

    def read(self, offset: int, length: int) -> bytes:
        data = os.pread(self._fd, length, offset)
        if len(data) < length:  # pread may return short on some filesystems
            parts = [data]
            got = len(data)
            while got < length:
                more = os.pread(self._fd, length - got, offset + got)
                if not more:
                    break
                parts.append(more)
                got += len(more)
            data = b"".join(parts)
        return data

    def read_into(self, offset: int, buf: memoryview) -> int:
        """Fill ``buf`` from ``offset`` (no allocation); returns the bytes read."""
        got, want = 0, len(buf)
        while got < want:
            n = os.preadv(self._fd, [buf[got:]], offset + got)
            if n <= 0:
                break
            got += n
        return got

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


_TRANSIENT_NAMES = {
    "EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError", "ConnectTimeoutError",
    "ClientConnectorError", "ServerDisconnectedError", "ClientOSError", "FSTimeoutError",
}
_TRANSIENT_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.ETIMEDOUT, errno.EPIPE, errno.EHOSTUNREACH}
RETRY_SECONDS = 60.0


def is_transient(e: BaseException) -> bool:
    """A storage error worth retrying: connection refused/reset, timeouts, 5xx throttling."""
    if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return False
    if isinstance(e, (ConnectionError, TimeoutError)) or any(c.__name__ in _TRANSIENT_NAMES for c in type(e).__mro__):
        return True
    if isinstance(e, OSError) and e.errno in _TRANSIENT_ERRNOS:
        return True
    text = str(e)
    return any(s in text for s in ("ServiceUnavailable", "SlowDown", "InternalError", "503", "502", "504"))


def retrying(fn: Callable[[], T], what: str, deadline: float = RETRY_SECONDS) -> T:
    """``fn()``, retried with backoff on transient storage errors for up to ``deadline``
    seconds; then ``StorageError`` naming ``what``. Other errors pass through at once."""
    t0 = time.monotonic()
    tries, delay = 0, 0.2
    while True:
        tries += 1
        try:
            return fn()
        except Exception as e:
            if not is_transient(e):
                raise
            if time.monotonic() - t0 >= deadline:
                raise StorageError(
                    f"{what}: storage unreachable after {tries} tries in {time.monotonic() - t0:.0f}s "
                    f"({e.__class__.__name__}: {' '.join(str(e).split())[:200]})"
                ) from None
            time.sleep(min(delay, max(0.0, deadline - (time.monotonic() - t0))))
            delay = min(delay * 2, 5.0)


class FsspecSource:
    """Ranged reads through any fsspec filesystem (one request per read), retried through
    transient outages for up to ``retry`` seconds."""

    def __init__(self, fs: Any, path: str, size: int | None = None, name: str | None = None, retry: float = RETRY_SECONDS) -> None:
        self.fs, self.path, self.retry = fs, path, retry
        self.name = name or display(fs, path)
        if size is None:
            try:
                size = int(retrying(lambda: fs.size(path), f"{self.name}: size", retry))
            except FileNotFoundError:
                raise NotFoundError(f"{self.name}: shard file not found") from None
        self.size = size

    def read(self, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        try:
            return retrying(lambda: self.fs.cat_file(self.path, start=offset, end=offset + length),
                            f"{self.name}: reading {length} bytes at offset {offset}", self.retry)
        except FileNotFoundError:
            raise NotFoundError(f"{self.name}: shard file not found") from None

    def close(self) -> None:
        pass


def read_chunks(src: RangeSource, size: int, chunk: int = 8 << 20) -> Iterator[bytes]:
    """``src``'s bytes ``[0, size)`` in reads of ``chunk``; ``IntegrityError`` if it ends early."""
    pos = 0
    while pos < size:
        data = src.read(pos, min(chunk, size - pos))
        if not data:
            raise IntegrityError(f"{src.name}: ends at offset {pos}, expected {size} bytes (truncated?)")
        yield data
        pos += len(data)


def open_source(fs: Any, path: str, size: int | None = None, retry: float = RETRY_SECONDS) -> RangeSource:
    if is_local(fs):
        return LocalSource(path, name=path)
    return FsspecSource(fs, path, size=size, retry=retry)


class Sink:
    """Where a shard's bytes go: a local file fsync'd on close, or an fsspec file."""

    def __init__(self, fs: Any, path: str) -> None:
        self.fs, self.path = fs, path
        self.local = is_local(fs)
        if self.local:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            self._f: Any = open(path, "wb")  # noqa: SIM115 - closed in close()/abort()
        else:
            parent = path.rsplit("/", 1)[0]
            try:
                fs.makedirs(parent, exist_ok=True)
            except Exception:  # object stores have no directories to make
                pass
            self._f = fs.open(path, "wb")

    def write(self, data: bytes | memoryview) -> None:
        self._f.write(data)

    def close(self) -> None:
        if self.local:
            self._f.flush()
            os.fsync(self._f.fileno())
        self._f.close()

    def abort(self) -> None:
        """Close without publishing what was written (best effort removal)."""
        try:
            if not self.local and hasattr(self._f, "discard"):
                self._f.discard()
            else:
                self._f.close()
        finally:
            try:
                self.fs.rm_file(self.path)
            except Exception:
                pass


def read_bytes(fs: Any, path: str) -> bytes:
    try:
        return fs.cat_file(path)
    except FileNotFoundError:
        raise NotFoundError(f"{display(fs, path)}: not found") from None


def read_json(fs: Any, path: str) -> Any:
    """A small JSON document, or None if there is none; ``IntegrityError`` if it is not JSON."""
    try:
        data = fs.cat_file(path)
    except FileNotFoundError:
        return None
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise IntegrityError(f"{display(fs, path)}: not valid JSON") from None


def exists(fs: Any, path: str) -> bool:
    return bool(fs.exists(path))


_memory_lock = threading.Lock()


def _is_precondition_failure(e: OSError) -> bool:
    text = str(e).lower()
    return "precondition" in text or "pre-condition" in text or "412" in text


def exclusive_write(fs: Any, path: str, data: bytes) -> None:
    """Create ``path`` holding ``data`` only if nothing exists there, atomically.

    Local: the bytes go to a private temp file, then ``link()`` publishes it; link
    fails if the name exists, so readers never see a half-written file (the same
    guarantee as ``O_EXCL`` plus atomic content). Object stores: a conditional PUT
    (``If-None-Match: *``, s3fs mode ``"xb"``). Raises ``VersionConflict`` if taken.
    """
    where = display(fs, path)
    if is_local(fs):
        parent = os.path.dirname(path)
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f".tmp-{uuid.uuid4().hex}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise VersionConflict(f"{where}: already exists") from None
        finally:
            os.unlink(tmp)
        _fsync_dir(parent)
        return
    proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if proto == "memory":  # one process: a lock makes check-then-create atomic
        with _memory_lock:
            if fs.exists(path):
                raise VersionConflict(f"{where}: already exists")
            fs.pipe_file(path, data)
        return
    try:
        with fs.open(path, "xb") as f:
            f.write(data)
    except FileExistsError:
        raise VersionConflict(f"{where}: already exists") from None
    except OSError as e:
        if e.errno == errno.EEXIST or _is_precondition_failure(e):
            raise VersionConflict(f"{where}: already exists") from None
        raise


def atomic_write(fs: Any, path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` so readers see the old or new bytes, never a mix."""
    if is_local(fs):
        parent = os.path.dirname(path)
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f".tmp-{uuid.uuid4().hex}")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(parent)
    else:
        fs.pipe_file(path, data)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
