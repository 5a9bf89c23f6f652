"""Streaming AEAD for shard files: the STREAM construction over AES-256-GCM.

Layout of an encrypted shard (``docs/FORMAT.md`` section 4)::

    header (52 bytes) | segment 0 | segment 1 | ... | segment n-1 (last)

Every segment but the last holds exactly ``segment_size`` plaintext bytes; each is
sealed with AES-256-GCM under a key derived by HKDF-SHA256 from the shard's random data
key, the header's salt, and an info string binding the whole header, the dataset id and
the shard id. The nonce is ``prefix(7) || counter(4, big-endian) || last(1)``, so
truncation, reordering, duplication and splicing of segments all fail authentication,
and a shard swapped in from elsewhere fails to decrypt. Identity (dataset id, shard id,
key) always comes from the manifest, never from the header.

Decryption is random access: reading a byte range decrypts only the segments that cover
it. Plaintext exists only in memory.
"""

from __future__ import annotations

import os
import struct
import threading
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import ConfigError, IntegrityError

MAGIC = b"EXAE"
VERSION = 1
ALG_AES256GCM_HKDF_SHA256 = 1
HEADER = struct.Struct("<4sBBHI32s7sB")  # magic, version, alg, reserved, segment size, salt, nonce prefix, reserved
HEADER_SIZE = HEADER.size  # 52
TAG = 16
DEFAULT_SEGMENT = 256 * 1024
_INFO = b"exashard stream v1\x00"
SCHEME = "aes256gcm-hkdf-stream-v1"


def _info(header: bytes, dataset_id: str, shard_id: str) -> bytes:
    d, s = dataset_id.encode(), shard_id.encode()
    return _INFO + header + struct.pack(">I", len(d)) + d + struct.pack(">I", len(s)) + s


def _derive(data_key: bytes, header: bytes, salt: bytes, dataset_id: str, shard_id: str) -> AESGCM:
    if len(data_key) != 32:
        raise ConfigError("a shard data key must be 32 bytes")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_info(header, dataset_id, shard_id)).derive(data_key)
    return AESGCM(key)


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", counter, 1 if last else 0)


def ciphertext_size(plaintext_size: int, segment_size: int) -> int:
    n = max(1, -(-plaintext_size // segment_size))
    return HEADER_SIZE + plaintext_size + TAG * n


class EncryptingWriter:
    """A byte sink that encrypts what is written into ``out`` (anything with ``write``).

    One segment is held back until more data arrives, so the last segment can be sealed
    with the last-segment flag on ``close()``. ``salt`` and ``nonce_prefix`` are random
    unless injected (tests, known-answer vectors).
    """

    def __init__(
        self,
        out: Any,
        data_key: bytes,
        *,
        dataset_id: str,
        shard_id: str,
        segment_size: int = DEFAULT_SEGMENT,
        salt: bytes | None = None,
        nonce_prefix: bytes | None = None,
    ) -> None:
        if not 4096 <= segment_size <= 1 << 30:
            raise ConfigError(f"segment_size must be between 4 KiB and 1 GiB, got {segment_size}")
        self.out = out
        self.segment_size = segment_size
        salt = os.urandom(32) if salt is None else salt
        self._prefix = os.urandom(7) if nonce_prefix is None else nonce_prefix
        if len(salt) != 32 or len(self._prefix) != 7:
            raise ConfigError("salt must be 32 bytes and nonce prefix 7 bytes")
        self.header = HEADER.pack(MAGIC, VERSION, ALG_AES256GCM_HKDF_SHA256, 0, segment_size, salt, self._prefix, 0)
        self._aead = _derive(data_key, self.header, salt, dataset_id, shard_id)
        self._buf = bytearray()
        self._counter = 0
        self.plaintext_size = 0
        self.closed = False
        out.write(self.header)

    def write(self, data: bytes | memoryview) -> None:
        self._buf += data
        self.plaintext_size += len(data)
        seg = self.segment_size
        if len(self._buf) > seg:  # keep at least one byte back: the last segment is sealed on close
            n_full = (len(self._buf) - 1) // seg
            mv = memoryview(self._buf)
            for k in range(n_full):
                self._seal(mv[k * seg : (k + 1) * seg], last=False)
            mv.release()
            del self._buf[: n_full * seg]

    def _seal(self, chunk: bytes | memoryview, last: bool) -> None:
        if self._counter >= 0xFFFFFFFF:
            raise ConfigError("shard too large for one encryption stream (2^32 segments)")
        self.out.write(self._aead.encrypt(_nonce(self._prefix, self._counter, last), chunk, None))  # buffers: no copy
        self._counter += 1

    def close(self) -> None:
        if self.closed:
            return
        self._seal(self._buf, last=True)
        self._buf = bytearray()
        self.closed = True


_CACHED_SEGMENTS = 4
_scratch_free: list[bytearray] = []
_scratch_lock = threading.Lock()


def _take_scratch(size: int) -> bytearray:
    """A ciphertext buffer of at least ``size`` bytes, recycled across reads and shards."""
    with _scratch_lock:
        for j, b in enumerate(_scratch_free):
            if len(b) >= size:
                return _scratch_free.pop(j)
    return bytearray(max(size, 4 << 20))


def _give_scratch(buf: bytearray) -> None:
    with _scratch_lock:
        if len(_scratch_free) < 4:
            _scratch_free.append(buf)


class DecryptingSource:
    """A ``RangeSource`` of plaintext over a ``RangeSource`` of an encrypted shard.

    Every read decrypts the covering segments; any failure (wrong key, wrong dataset or
    shard, tampering, truncation) is an ``IntegrityError`` naming the shard and segment.
    """

    authenticated = True

    def __init__(self, stored: Any, data_key: bytes, *, dataset_id: str, shard_id: str) -> None:
        self.stored = stored
        self.name = stored.name
        if stored.size < HEADER_SIZE + TAG:
            raise IntegrityError(f"{self.name}: {stored.size} bytes is too short for an encrypted shard (truncated?)")
        header = stored.read(0, HEADER_SIZE)
        if len(header) != HEADER_SIZE:
            raise IntegrityError(f"{self.name}: encryption header truncated")
        magic, version, alg, _r1, seg, salt, prefix, _r2 = HEADER.unpack(header)
        if magic != MAGIC:
            raise IntegrityError(f"{self.name}: not an encrypted exashard shard (bad magic at offset 0)")
        if version != VERSION or alg != ALG_AES256GCM_HKDF_SHA256:
            raise IntegrityError(f"{self.name}: unsupported encryption version {version} / algorithm {alg}")
        if not 4096 <= seg <= 1 << 30:
            raise IntegrityError(f"{self.name}: encryption header has a bad segment size {seg}")
        self.segment_size = seg
        self._prefix = prefix
        self._aead = _derive(data_key, header, salt, dataset_id, shard_id)
        body = stored.size - HEADER_SIZE
        n = -(-body // (seg + TAG))
        self.segments = n
        self.size = body - TAG * n
        if self.size < 0 or (n > 1 and body - (n - 1) * (seg + TAG) <= TAG):
            raise IntegrityError(f"{self.name}: {stored.size} bytes is not a whole number of segments (truncated?)")
        # partly read segments, a few: a frame's last segment is mostly the next frame's first,
        # and two loading threads read neighbouring frames at once
        self._cache: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def _decrypt(self, k: int, ct: bytes | memoryview, out: memoryview | None = None) -> bytes | None:
        nonce = _nonce(self._prefix, k, k == self.segments - 1)
        where = f"{self.name}: segment {k} at offset {HEADER_SIZE + k * (self.segment_size + TAG)}"
        try:
            if out is not None:
                self._aead.decrypt_into(nonce, ct, None, out)
                return None
            return self._aead.decrypt(nonce, ct, None)
        except InvalidTag:
            raise IntegrityError(
                f"{where}: authentication failed (tampered, truncated, swapped, or the wrong key)"
            ) from None

    def _segment(self, k: int, ct: bytes | memoryview) -> bytes:
        with self._lock:
            pt = self._cache.get(k)
        if pt is None:
            pt = self._decrypt(k, ct)
            assert pt is not None
            with self._lock:
                self._cache[k] = pt
                if len(self._cache) > _CACHED_SEGMENTS:
                    del self._cache[next(iter(self._cache))]
        return pt

    def read_into(self, offset: int, buf: memoryview) -> int:
        """Decrypt plaintext ``[offset, offset+len(buf))`` into ``buf``; returns bytes filled."""
        length = min(len(buf), max(0, self.size - offset))
        if length <= 0:
            return 0
        seg, stride = self.segment_size, self.segment_size + TAG
        first, last = offset // seg, (offset + length - 1) // seg
        c0 = HEADER_SIZE + first * stride
        c1 = min(self.stored.size, HEADER_SIZE + (last + 1) * stride)
        fill = getattr(self.stored, "read_into", None)
        if fill is None:
            ct: bytes | bytearray = self.stored.read(c0, c1 - c0)
            return self._open_into(offset, length, buf, memoryview(ct), len(ct), c0, first, last)
        scratch = _take_scratch(c1 - c0)  # ciphertext into a recycled buffer: no fresh pages per read
        try:
            cmv = memoryview(scratch)[: c1 - c0]
            return self._open_into(offset, length, buf, cmv, fill(c0, cmv), c0, first, last)
        finally:
            _give_scratch(scratch)

    def _open_into(self, offset: int, length: int, buf: memoryview, cmv: memoryview, got: int, c0: int, first: int, last: int) -> int:
        """``read_into`` once the ciphertext of segments ``first .. last`` (from stored offset
        ``c0``) is in ``cmv``: ``got`` bytes of the ``len(cmv)`` wanted."""
        seg, stride = self.segment_size, self.segment_size + TAG
        ct_len = len(cmv)
        if got != ct_len:
            raise IntegrityError(f"{self.name}: encrypted shard truncated at offset {c0 + got}")
        pos = 0
        for k in range(first, last + 1):
            cstart = (k - first) * stride
            cend = min(cstart + stride, ct_len)
            lo = offset - k * seg if k == first else 0  # plaintext range wanted from this segment
            pt_len = cend - cstart - TAG
            hi = min(pt_len, offset + length - k * seg)
            if lo == 0 and hi == pt_len:  # whole segment: straight into the caller's buffer
                self._decrypt(k, cmv[cstart:cend], buf[pos : pos + pt_len])
            else:
                pt = self._segment(k, cmv[cstart:cend])
                buf[pos : pos + hi - lo] = pt[lo:hi]
            pos += hi - lo
        return pos

    def read(self, offset: int, length: int) -> bytes:
        out = bytearray(max(0, min(length, self.size - offset)))
        n = self.read_into(offset, memoryview(out))
        return bytes(out[:n]) if n != len(out) else bytes(out)

    def close(self) -> None:
        self.stored.close()
