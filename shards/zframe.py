"""Raw-block zstd frames: incompressible content stored without compression effort.

A frame whose blocks are all of type Raw is still a standard zstd frame (every decoder
reads it), but its content sits in the file verbatim between 3-byte block headers.
Writing one costs a copy and a checksum, not a compressor pass; reading one needs no
decompression: members are sliced straight out of the stored bytes. The writer cuts
blocks at member boundaries where it can, so a member up to 128 KiB lies in one block
and can be handed out without a copy.
"""

from __future__ import annotations

import struct
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import xxhash

from ..errors import IntegrityError

BLOCK_MAX = 128 * 1024
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# Frame header descriptor: FCS field 8 bytes (11), single segment (1), checksum (1).
_FHD = 0b1110_0100


def _block_header(size: int, last: bool) -> bytes:
    return struct.pack("<I", (size << 3) | int(last))[:3]


def build_raw_frame(parts: Sequence[bytes | memoryview]) -> bytes:
    """A standard zstd frame holding ``b"".join(parts)`` in Raw blocks, with a content checksum.

    Block boundaries fall between parts whenever the part fits in a fresh block, so a
    part of up to 128 KiB never straddles two blocks.
    """
    h = xxhash.xxh64()
    total = 0
    blocks: list[list[bytes | memoryview]] = []
    cur: list[bytes | memoryview] = []
    cur_size = 0
    for p in parts:
        n = len(p)
        if not n:
            continue
        h.update(p)
        total += n
        if cur_size + n <= BLOCK_MAX:
            cur.append(p)
            cur_size += n
            continue
        if n <= BLOCK_MAX:  # start a fresh block so the part stays whole
            blocks.append(cur)
            cur, cur_size = [p], n
            continue
        mv = memoryview(p)
        pos = 0
        room = BLOCK_MAX - cur_size
        if room:
            cur.append(mv[:room])
            pos = room
        blocks.append(cur)
        while n - pos > BLOCK_MAX:
            blocks.append([mv[pos : pos + BLOCK_MAX]])
            pos += BLOCK_MAX
        cur, cur_size = [mv[pos:]], n - pos
    if cur or not blocks:
        blocks.append(cur)
    blocks = [b for b in blocks if b] or [[]]
    out: list[bytes | memoryview] = [ZSTD_MAGIC, bytes([_FHD]), struct.pack("<Q", total)]
    for i, blk in enumerate(blocks):
        out.append(_block_header(sum(len(x) for x in blk), i == len(blocks) - 1))
        out.extend(blk)
    out.append(struct.pack("<I", h.intdigest() & 0xFFFFFFFF))
    return b"".join(out)


@dataclass(frozen=True, slots=True)
class RawBlocks:
    """Where a Raw-block frame's content lies in its stored bytes."""

    content_starts: list[int]  # content offset of each block
    stored_starts: list[int]  # offset of each block's bytes in the frame
    sizes: list[int]
    content_size: int

    def slice(self, buf: bytes | memoryview, offset: int, size: int) -> bytes | memoryview:
        """Content bytes ``[offset, offset+size)``: a slice of ``buf`` when inside one block."""
        b = bisect_right(self.content_starts, offset) - 1
        start = offset - self.content_starts[b]
        if start + size <= self.sizes[b]:
            s = self.stored_starts[b] + start
            return buf[s : s + size]
        pieces = []
        remaining = size
        while remaining:
            take = min(remaining, self.sizes[b] - start)
            s = self.stored_starts[b] + start
            pieces.append(buf[s : s + take])
            remaining -= take
            b += 1
            start = 0
        joined = b"".join(pieces)
        return memoryview(joined) if isinstance(buf, memoryview) else joined


def _u(buf: bytes | memoryview, pos: int, n: int) -> int:
    return int.from_bytes(buf[pos : pos + n], "little")


def _header(frame: bytes | memoryview, where: str) -> tuple[int, int | None, int]:
    """(where the first block header starts, declared content size or None, checksum length)."""
    n = len(frame)
    if n < 6 or bytes(frame[:4]) != ZSTD_MAGIC:
        raise IntegrityError(f"{where}: not a zstd frame")
    fhd = frame[4]
    fcs_flag, single, checksum, dict_flag = fhd >> 6, (fhd >> 5) & 1, (fhd >> 2) & 1, fhd & 3
    if fhd & 0b1000:
        raise IntegrityError(f"{where}: zstd frame header has the reserved bit set")
    pos = 5 + (0 if single else 1) + (0, 1, 2, 4)[dict_flag]
    fcs_len = (1 if single else 0, 2, 4, 8)[fcs_flag]
    fcs = _u(frame, pos, fcs_len) if fcs_len else None
    if fcs_len == 2 and fcs is not None:
        fcs += 256
    return pos + fcs_len, fcs, 4 * checksum


def _block(frame: bytes | memoryview, pos: int, where: str) -> tuple[int, int, int]:
    """(last, type, size field) of the block header at ``pos``."""
    if pos + 3 > len(frame):
        raise IntegrityError(f"{where}: zstd frame truncated in a block header")
    hdr = frame[pos] | (frame[pos + 1] << 8) | (frame[pos + 2] << 16)
    return hdr & 1, (hdr >> 1) & 3, hdr >> 3


def frame_length(frame: bytes | memoryview, where: str) -> int:
    """Stored length of the zstd frame at the start of ``frame``, from its block headers (no
    decoding). Raises ``IntegrityError`` if a block header is reserved or runs past the end."""
    pos, _, checksum = _header(frame, where)
    while True:
        last, btype, bsize = _block(frame, pos, where)
        if btype == 3:
            raise IntegrityError(f"{where}: zstd block of the reserved type at offset {pos}")
        pos += 3 + (1 if btype == 1 else bsize)  # an RLE block stores one byte
        if pos > len(frame):
            raise IntegrityError(f"{where}: zstd block overruns the frame")
        if last:
            return pos + checksum


def raw_blocks(frame: bytes | memoryview, where: str) -> RawBlocks | None:
    """The block map if every block of this zstd frame is Raw, else None (decompress it).

    Raises ``IntegrityError`` if the frame's structure is not a complete single frame.
    """
    n = len(frame)
    pos, fcs, checksum = _header(frame, where)
    content_starts, stored_starts, sizes = [], [], []
    content = 0
    while True:
        last, btype, bsize = _block(frame, pos, where)
        if btype != 0:
            return None
        pos += 3
        if bsize > BLOCK_MAX or pos + bsize > n:
            raise IntegrityError(f"{where}: zstd raw block overruns the frame")
        content_starts.append(content)
        stored_starts.append(pos)
        sizes.append(bsize)
        content += bsize
        pos += bsize
        if last:
            break
    pos += checksum
    if pos != n:
        raise IntegrityError(f"{where}: zstd frame is {n} bytes but its blocks end at {pos}")
    if fcs is not None and fcs != content:
        raise IntegrityError(f"{where}: zstd frame declares {fcs} bytes but holds {content}")
    return RawBlocks(content_starts, stored_starts, sizes, content)


def frame_digest(frame: bytes | memoryview) -> int:
    """The per-frame checksum recorded in the sample index: XXH3-64 of the stored bytes."""
    return xxhash.xxh3_64_intdigest(frame)
