"""Byte layout of a shard's trailer: the sample index frame and the seek table.

A shard (before any encryption) is::

    data frame 0 .. data frame N-1   standard zstd frames, each holding whole samples
    index frame                      skippable frame, magic 0x184D2A5B, the sample index
    seek table                       skippable frame, magic 0x184D2A5E (zstd seekable format)

All integers are little-endian. ``docs/FORMAT.md`` is the specification; this module
and that page must agree (a test checks the page's vectors against this code).
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from bisect import bisect_left
from dataclasses import dataclass
from functools import cache
from itertools import accumulate, chain, islice
from typing import Any

from ..errors import IntegrityError

FORMAT_VERSION = 1
ZSTD_MAGIC = 0xFD2FB528
INDEX_MAGIC = 0x184D2A5B
SEEK_TABLE_MAGIC = 0x184D2A5E
SEEKABLE_MAGIC = 0x8F92EAB1
INDEX_TAG = b"EXIX"
_INDEX_HEAD = struct.Struct("<4sHHIIIIII")  # tag, version, flags, samples, members, exts, keys, ext bytes, frames
_FOOTER = struct.Struct("<IBI")
FOOTER_SIZE = _FOOTER.size  # 9
# The densest zstd block is an RLE block: 3 header bytes and 1 byte of content, repeated
# up to 128 KiB. No frame of c stored bytes can hold more than (c // 4) * 128 KiB.
_ZSTD_BLOCK_MAX = 128 * 1024
_LITTLE = sys.byteorder == "little"


def _arr(code: str, data: bytes | memoryview) -> array:
    a = array(code)
    a.frombytes(data)
    if not _LITTLE:
        a.byteswap()
    return a


@cache
def _pa() -> tuple[Any, Any, dict[str, Any]]:
    """pyarrow and its compute module, imported on first use (the CLI's start stays light)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pa, pc, {"H": pa.uint16(), "I": pa.uint32(), "Q": pa.uint64()}


def _arrow(a: array) -> Any:
    """An Arrow view (no copy) of an unsigned ``array``."""
    pa, _, types = _pa()
    return pa.Array.from_buffers(types[a.typecode], len(a), [None, pa.py_buffer(a)])


def nondecreasing(a: array) -> bool:
    """``all(a[i] <= a[i + 1])``, vectorised: index checks run every time a shard opens,
    and a Python-level pass over a 100k-sample shard's arrays cost ~40 ms (measured)."""
    if len(a) < 2:
        return True
    _, pc, _ = _pa()
    x = _arrow(a)
    return bool(pc.all(pc.less_equal(x.slice(0, len(a) - 1), x.slice(1))).as_py())


def _ends_before_starts(offsets: array, sizes: array) -> bool:
    """Each ``offsets[i] + sizes[i] <= offsets[i + 1]`` (False also if a sum overflows 64 bits)."""
    n = len(offsets)
    if n < 2:
        return n == 0 or offsets[0] + sizes[0] < 1 << 64
    pa, pc, _ = _pa()
    try:
        ends = pc.add_checked(_arrow(offsets), _arrow(sizes))
    except pa.ArrowInvalid:  # overflow
        return False
    return bool(pc.all(pc.less_equal(ends.slice(0, n - 1), _arrow(offsets).slice(1))).as_py())


def _le(a: array) -> bytes:
    if _LITTLE:
        return a.tobytes()
    b = array(a.typecode, a)
    b.byteswap()
    return b.tobytes()


@dataclass(slots=True)
class SampleIndex:
    """Where every sample and member of a shard lies in its tar stream.

    ``sample_frame[i]`` is the data frame holding sample ``i``; its members are
    ``member_*[sample_members[i-1]:sample_members[i]]``; member offsets are absolute
    offsets of the member's data in the (decompressed) tar stream.
    """

    keys_blob: bytes
    key_ends: array  # u32, cumulative
    sample_frame: array  # u32
    sample_members: array  # u32, cumulative
    member_ext: array  # u16
    member_offset: array  # u64
    member_size: array  # u64
    exts: list[str]
    frame_digest: array  # u64 per data frame: XXH3-64 of the frame's stored bytes

    def __len__(self) -> int:
        return len(self.sample_frame)

    def key(self, i: int) -> str:
        start = self.key_ends[i - 1] if i else 0
        return self.keys_blob[start : self.key_ends[i]].decode("utf-8")

    def keys(self) -> list[str]:
        blob = self.keys_blob
        if blob.isascii():  # byte offsets are character offsets: slice one decoded str
            text = blob.decode("ascii")
            return [text[s:e] for s, e in zip(chain((0,), self.key_ends), self.key_ends)]
        return [blob[s:e].decode("utf-8") for s, e in zip(chain((0,), self.key_ends), self.key_ends)]

    def members(self, i: int) -> range:
        return range(self.sample_members[i - 1] if i else 0, self.sample_members[i])


class IndexBuilder:
    """Accumulates the index while a shard is written."""

    def __init__(self) -> None:
        self._keys = bytearray()
        self.key_ends = array("I")
        self.sample_frame = array("I")
        self.sample_members = array("I")
        self.member_ext = array("H")
        self.member_offset = array("Q")
        self.member_size = array("Q")
        self._ext_ids: dict[str, int] = {}
        self.frame_digest = array("Q")

    def __len__(self) -> int:
        return len(self.sample_frame)

    def add(self, key: str, frame: int, members: list[tuple[str, int, int]]) -> None:
        self._keys += key.encode("utf-8")
        self.key_ends.append(len(self._keys))
        self.sample_frame.append(frame)
        for ext, offset, size in members:
            ext_id = self._ext_ids.setdefault(ext, len(self._ext_ids))
            if ext_id > 0xFFFF:
                raise IntegrityError("more than 65536 distinct extensions in one shard")
            self.member_ext.append(ext_id)
            self.member_offset.append(offset)
            self.member_size.append(size)
        self.sample_members.append(len(self.member_ext))

    def encode(self) -> bytes:
        return encode_index(
            SampleIndex(
                bytes(self._keys), self.key_ends, self.sample_frame, self.sample_members,
                self.member_ext, self.member_offset, self.member_size, list(self._ext_ids), self.frame_digest,
            )
        )


def encode_index(ix: SampleIndex) -> bytes:
    """The index frame's payload (without the 8-byte skippable frame header)."""
    ext_blob = bytearray()
    ext_ends = array("I")
    for e in ix.exts:
        ext_blob += e.encode("utf-8")
        ext_ends.append(len(ext_blob))
    head = _INDEX_HEAD.pack(
        INDEX_TAG, FORMAT_VERSION, 0, len(ix.sample_frame), len(ix.member_ext),
        len(ix.exts), len(ix.keys_blob), len(ext_blob), len(ix.frame_digest),
    )
    body = b"".join(
        (
            head, _le(ix.sample_frame), _le(ix.key_ends), _le(ix.sample_members),
            _le(ix.member_ext), _le(ix.member_offset), _le(ix.member_size), _le(ext_ends),
            _le(ix.frame_digest), ix.keys_blob, bytes(ext_blob),
        )
    )
    return body + struct.pack("<I", zlib.crc32(body))


def decode_index(payload: bytes | memoryview, where: str) -> SampleIndex:
    """Parse an index payload, checking its CRC and every internal bound."""
    mv = memoryview(payload)
    if len(mv) < _INDEX_HEAD.size + 4:
        raise IntegrityError(f"{where}: sample index truncated ({len(mv)} bytes)")
    (crc,) = struct.unpack_from("<I", mv, len(mv) - 4)
    if zlib.crc32(mv[:-4]) != crc:
        raise IntegrityError(f"{where}: sample index checksum mismatch")
    tag, version, _flags, ns, nm, ne, nk, nx, nf = _INDEX_HEAD.unpack_from(mv, 0)
    if tag != INDEX_TAG:
        raise IntegrityError(f"{where}: sample index has bad tag {tag!r}")
    if version != FORMAT_VERSION:
        raise IntegrityError(f"{where}: sample index version {version} is not supported")
    expect = _INDEX_HEAD.size + 12 * ns + 18 * nm + 4 * ne + 8 * nf + nk + nx + 4
    if expect != len(mv):
        raise IntegrityError(f"{where}: sample index size {len(mv)} != {expect} from its header")
    pos = _INDEX_HEAD.size

    def take(code: str, n: int, width: int) -> array:
        nonlocal pos
        a = _arr(code, mv[pos : pos + n * width])
        pos += n * width
        return a

    frames = take("I", ns, 4)
    key_ends = take("I", ns, 4)
    sample_members = take("I", ns, 4)
    member_ext = take("H", nm, 2)
    member_offset = take("Q", nm, 8)
    member_size = take("Q", nm, 8)
    ext_ends = take("I", ne, 4)
    frame_digest = take("Q", nf, 8)
    keys_blob = bytes(mv[pos : pos + nk])
    ext_blob = bytes(mv[pos + nk : pos + nk + nx])
    _check_cumulative(key_ends, nk, where, "key")
    _check_cumulative(sample_members, nm, where, "member")
    _check_cumulative(ext_ends, nx, where, "extension")
    if nm and _pa()[1].max(_arrow(member_ext)).as_py() >= ne:
        raise IntegrityError(f"{where}: sample index names an unknown extension")
    try:
        exts = [ext_blob[s:e].decode("utf-8") for s, e in zip([0, *ext_ends], ext_ends)]
        keys_blob.decode("utf-8")
    except UnicodeDecodeError:
        raise IntegrityError(f"{where}: sample index holds invalid UTF-8") from None
    # valid UTF-8 cut at a character boundary gives valid pieces: no key end may fall on a
    # continuation byte (10xxxxxx), or reading that key would fail to decode
    if not keys_blob.isascii() and any(0x80 <= keys_blob[e] < 0xC0 for e in key_ends if e < nk):
        raise IntegrityError(f"{where}: sample index splits a key inside a UTF-8 character")
    return SampleIndex(
        keys_blob, key_ends, frames, sample_members, member_ext, member_offset, member_size, exts, frame_digest
    )


def _check_cumulative(ends: array, total: int, where: str, what: str) -> None:
    if not nondecreasing(ends):  # unsigned, so the first is >= 0
        raise IntegrityError(f"{where}: sample index {what} offsets go backwards")
    if ends and ends[-1] != total:
        raise IntegrityError(f"{where}: sample index {what} offsets do not end at {total}")
    if not ends and total:
        raise IntegrityError(f"{where}: sample index has {what} bytes but no entries")


def skippable(magic: int, payload: bytes) -> bytes:
    return struct.pack("<II", magic, len(payload)) + payload


def encode_seek_table(sizes: list[tuple[int, int]]) -> bytes:
    """A zstd seekable-format seek table frame (no per-frame checksums)."""
    entries = b"".join(struct.pack("<II", c, d) for c, d in sizes)
    return skippable(SEEK_TABLE_MAGIC, entries + _FOOTER.pack(len(sizes), 0, SEEKABLE_MAGIC))


@dataclass(frozen=True, slots=True)
class Layout:
    """Frame geometry of a shard, from its seek table.

    ``c_offsets``/``c_sizes`` are byte ranges in the shard; ``d_offsets``/``d_sizes``
    the ranges of each frame's content in the tar stream. The last frame listed is the
    index frame (decompressed size 0) and is not part of these data-frame arrays.
    """

    c_offsets: tuple[int, ...]
    c_sizes: tuple[int, ...]
    d_offsets: tuple[int, ...]
    d_sizes: tuple[int, ...]
    index_offset: int
    index_size: int  # whole index frame, header included
    trailer_size: int  # index frame + seek table
    total_size: int

    @property
    def frames(self) -> int:
        return len(self.c_sizes)

    @property
    def tar_size(self) -> int:
        return self.d_offsets[-1] + self.d_sizes[-1] if self.d_sizes else 0


def seek_table_size(footer: bytes, where: str) -> int:
    """Size of the whole seek table frame, read from its 9-byte footer."""
    if len(footer) != FOOTER_SIZE:
        raise IntegrityError(f"{where}: shard too short for a seek table")
    n, desc, magic = _FOOTER.unpack(footer)
    if magic != SEEKABLE_MAGIC:
        raise IntegrityError(f"{where}: no seek table at the end of the shard (bad magic)")
    if desc & 0x7F:
        raise IntegrityError(f"{where}: seek table descriptor has reserved bits set")
    width = 12 if desc & 0x80 else 8
    return 8 + n * width + FOOTER_SIZE


def decode_seek_table(table: bytes, total_size: int, where: str) -> Layout:
    """Parse a complete seek table frame taken from the end of a shard of ``total_size`` bytes."""
    if len(table) < 8 + FOOTER_SIZE:
        raise IntegrityError(f"{where}: seek table truncated")
    magic, size = struct.unpack_from("<II", table, 0)
    n, desc, _ = _FOOTER.unpack_from(table, len(table) - FOOTER_SIZE)
    width = 12 if desc & 0x80 else 8
    if magic != SEEK_TABLE_MAGIC or size != len(table) - 8 or size != n * width + FOOTER_SIZE:
        raise IntegrityError(f"{where}: seek table header does not match its footer")
    if n < 1:
        raise IntegrityError(f"{where}: seek table lists no index frame")
    entries = [struct.unpack_from("<II", table, 8 + i * width) for i in range(n)]
    c_sizes = [c for c, _ in entries]
    d_sizes = [d for _, d in entries]
    if sum(c_sizes) + len(table) != total_size:
        raise IntegrityError(
            f"{where}: seek table accounts for {sum(c_sizes) + len(table)} bytes, shard has {total_size}"
        )
    if d_sizes[-1] != 0:
        raise IntegrityError(f"{where}: last frame in seek table is not the index frame")
    for k in range(n - 1):  # before anything is sized from these numbers
        if d_sizes[k] > (c_sizes[k] // 4) * _ZSTD_BLOCK_MAX:
            raise IntegrityError(
                f"{where}: seek table says frame {k} of {c_sizes[k]} bytes holds {d_sizes[k]}, more than zstd can"
            )
    c_offsets = [0, *accumulate(c_sizes)]
    d_offsets = [0, *accumulate(d_sizes)]
    return Layout(
        tuple(c_offsets[: n - 1]), tuple(c_sizes[: n - 1]),
        tuple(d_offsets[: n - 1]), tuple(d_sizes[: n - 1]),
        c_offsets[n - 1], c_sizes[-1], c_sizes[-1] + len(table), total_size,
    )


def parse_index_frame(frame: bytes | memoryview, where: str) -> SampleIndex:
    if len(frame) < 8:
        raise IntegrityError(f"{where}: index frame truncated")
    magic, size = struct.unpack_from("<II", frame, 0)
    if magic != INDEX_MAGIC or size != len(frame) - 8:
        raise IntegrityError(f"{where}: index frame has bad magic or size")
    return decode_index(memoryview(frame)[8:], where)


def check_index(ix: SampleIndex, layout: Layout, where: str) -> None:
    """Every member lies inside the frame its sample names, members do not overlap and
    come in stream order, and sample frames never go backwards (vectorised: this runs
    each time a shard is opened)."""
    n_frames = layout.frames
    if len(ix.frame_digest) != n_frames:
        raise IntegrityError(f"{where}: index has {len(ix.frame_digest)} frame checksums for {n_frames} frames")
    frames, moff, msz = ix.sample_frame, ix.member_offset, ix.member_size
    if not len(frames):
        return
    if not nondecreasing(frames) or frames[-1] >= n_frames:
        raise IntegrityError(f"{where}: sample index names frames out of order or range")
    if not _ends_before_starts(moff, msz):
        raise IntegrityError(f"{where}: sample index members overlap or are out of order")
    ends = ix.sample_members
    for f, (i, stop) in enumerate(frame_ranges(frames, n_frames)):
        if i == stop:
            continue
        m0 = ends[i - 1] if i else 0
        m1 = ends[stop - 1]
        if m0 == m1:
            continue
        lo, hi = layout.d_offsets[f], layout.d_offsets[f] + layout.d_sizes[f]
        if moff[m0] < lo or moff[m1 - 1] + msz[m1 - 1] > hi:
            raise IntegrityError(f"{where}: a member of frame {f} lies outside the frame")


def frame_ranges(frames: array, n_frames: int) -> list[tuple[int, int]]:
    """(first sample, stop) of each of ``n_frames`` frames, given the non-decreasing
    ``sample_frame`` array: a binary search per frame, not a pass over the samples."""
    cuts = [bisect_left(frames, f) for f in range(n_frames)]
    cuts.append(len(frames))
    return list(zip(cuts, islice(cuts, 1, None)))
