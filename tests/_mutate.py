"""Mutators for the fuzzing harness (``tests/_fuzz.py``): valid inputs in, damaged bytes out.

Everything a mutation does is described by plain data (an op tuple), drawn through the
``Draw`` interface, so hypothesis (``HypDraw``: shrinking, ``@example`` regressions) and
``bench/fuzz.py``'s seeded loop (``RandDraw``) make the same kinds of inputs, and any
case can be written down and replayed.

Structured mutations go past the cheap checks on purpose: after a shard's frames, index
or seek table are changed, the index CRC and the frames' XXH3 digests can be recomputed
(``fix_crc`` / ``fix_digest``); index edits can keep the index well formed while changing
what it says; tar headers are edited with their checksum fixed. So the deeper checks
(bounds, ordering, sizes, declared lengths) are what gets tested.
"""

from __future__ import annotations

import json
import random
from array import array
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import zstandard

from exashard.shards.format import INDEX_MAGIC, SampleIndex, encode_index, encode_seek_table, skippable
from exashard.shards.tar import padding
from exashard.shards.writer import ShardInfo
from exashard.shards.zframe import build_raw_frame, frame_digest

# -- drawing -------------------------------------------------------------------------


class Draw:
    """Where a generator gets its choices from (hypothesis or a seeded ``random.Random``)."""

    def int(self, lo: int, hi: int) -> int:
        raise NotImplementedError

    def bytes(self, lo: int, hi: int) -> bytes:
        raise NotImplementedError

    def pick(self, seq: Any) -> Any:
        return seq[self.int(0, len(seq) - 1)]

    def flag(self) -> bool:
        return bool(self.int(0, 1))


class HypDraw(Draw):
    def __init__(self, draw: Callable[[Any], Any]) -> None:
        from hypothesis import strategies as st

        self._draw, self._st = draw, st

    def int(self, lo: int, hi: int) -> int:
        return self._draw(self._st.integers(lo, hi))

    def bytes(self, lo: int, hi: int) -> bytes:
        return self._draw(self._st.binary(min_size=lo, max_size=hi))


class RandDraw(Draw):
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def int(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def bytes(self, lo: int, hi: int) -> bytes:
        return self.rng.randbytes(self.rng.randint(lo, hi))


POS = 1 << 31  # positions are drawn in [0, POS) and taken modulo the input length
SPECIAL = (0, 1, 2, 3, 7, 8, 15, 16, 255, 256, 511, 512, 513, 1023, 1024, 4095, 4096, 65535, 65536,
           131072, 131073, 2**24, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**48, 2**63 - 1, 2**63, 2**64 - 1)


def draw_value(d: Draw, bits: int) -> tuple[str, int]:
    """A replacement for a numeric field: an absolute value or a delta to the current one."""
    k = d.int(0, 3)
    if k == 0:
        return ("abs", d.pick([v for v in SPECIAL if v < 1 << bits]))
    if k == 1:
        return ("add", d.pick((-1, 1, -2, 2, -8, 8, -512, 512, -4096, 4096, 1 << 20)))
    return ("abs", d.int(0, (1 << bits) - 1)) if k == 2 else ("add", d.int(-70000, 70000))


def apply_value(old: int, v: tuple[str, int], bits: int) -> int:
    return (v[1] if v[0] == "abs" else old + v[1]) % (1 << bits)


def draw_byte_op(d: Draw) -> tuple:
    k = d.int(0, 7)
    if k == 0:
        return ("flip", d.int(0, POS), d.int(0, 7))
    if k == 1:
        return ("set", d.int(0, POS), d.bytes(1, 8))
    if k == 2:
        width = d.pick((1, 2, 4, 8))
        return ("int", d.int(0, POS), width, draw_value(d, 8 * width))
    if k == 3:
        return ("insert", d.int(0, POS), d.bytes(1, 64))
    if k == 4:
        return ("delete", d.int(0, POS), d.int(1, 600))
    if k == 5:
        return ("truncate", d.int(0, POS))
    if k == 6:
        return ("splice", d.int(0, POS), d.int(1, 2048), d.int(0, POS))
    return ("dup", d.int(0, POS), d.int(1, 600))


def apply_byte_op(data: bytes, op: tuple) -> bytes:
    n = len(data)
    kind = op[0]
    if kind == "truncate":
        return data[: op[1] % (n + 1)]
    if kind == "insert":
        p = op[1] % (n + 1)
        return data[:p] + op[2] + data[p:]
    if not n:
        return data
    p = op[1] % n
    b = bytearray(data)
    if kind == "flip":
        b[p] ^= 1 << op[2]
    elif kind == "set":
        b[p : p + len(op[2])] = op[2][: n - p]
    elif kind == "int":
        w = op[2]
        old = int.from_bytes(b[p : p + w].ljust(w, b"\0"), "little")
        b[p : p + w] = apply_value(old, op[3], 8 * w).to_bytes(w, "little")[: n - p]
    elif kind == "delete":
        del b[p : p + op[2]]
    elif kind == "splice":  # overwrite with a chunk taken from elsewhere in the input
        chunk = data[p : p + op[2]]
        q = op[3] % n
        b[q : q + len(chunk)] = chunk
        del b[n:]
    elif kind == "dup":  # repeat a chunk in place (lengthens the input)
        b[p:p] = data[p : p + op[2]]
    return bytes(b)


def apply_byte_ops(data: bytes, ops: list[tuple]) -> bytes:
    for op in ops:
        data = apply_byte_op(data, op)
    return data


# -- tar headers -----------------------------------------------------------------------

TAR_FIELDS = {"name": (0, 100), "mode": (100, 8), "size": (124, 12), "mtime": (136, 12), "chksum": (148, 8),
              "typeflag": (156, 1), "magic": (257, 8), "prefix": (345, 155)}
TAR_VALUES = {
    "size": (b"-0000001000", b"-1", b"-00000000001", b"77777777777", b"00000000000", b"00000001000", b" 1_000",
             b"0x10", b"\x80\0\0\0\0\0\0\0\0\0\x10\0", b"1e3", b"+0000000100", b"  12  ", b"99999999999"),
    "typeflag": (b"x", b"0", b"\0", b"5", b"L", b"g", b"K", b"1"),
    "chksum": (b"000000\0 ", b"-1", b"zzz", b"7777777"),
    "name": (b"", b"a" * 100, b"../x.txt", b"k\xff.txt", b"/abs.txt", b"\0"),
    "prefix": (b"p", b"\xff" * 10, b"a" * 155),
    "magic": (b"ustar  \0", b"\0" * 8),
    "mode": (b"9999999\0",),
    "mtime": (b"-1", b"\xff"),
}


def pax_record(key: bytes, value: bytes) -> bytes:
    """A well-formed ``"<len> key=value\n"`` record (the length counts its own digits)."""
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n).encode() + body) != n:
        n += 1
    return str(n).encode() + body


PAX_RECORDS = (
    *(pax_record(b"size", v) for v in (b"-512", b"-1", b"1e10", b"1_0", b" 7", b"+5", b"99999999999", b"9" * 30, b"")),
    *(pax_record(b"path", v) for v in (b"\xff\xfe", b"a.txt", b"", b"x" * 300)),
    pax_record(b"size", b"-512") + pax_record(b"path", b"z.txt"),
    b"5 a=\n", b"0 x=\n", b"-1 size=1\n", b"999999 path=x\n", b"4 x\n", b"abc", b" 5 a=\n", b"+12 size=-512\n",
    b"9" * 5000 + b" a=b\n",
)


def draw_tar_op(d: Draw) -> tuple:
    if d.int(0, 3) == 0:
        return ("pax", d.int(0, POS), d.pick(PAX_RECORDS))
    name = d.pick(sorted(TAR_FIELDS))
    value = d.pick(TAR_VALUES[name]) if d.int(0, 2) else d.bytes(0, TAR_FIELDS[name][1])
    return ("hdr", d.int(0, POS), name, value, d.int(0, 5) != 0)  # last: fix the header checksum


def header_positions(tar: bytes) -> list[int]:
    """Offsets of the headers in a well-formed tar stream (PAX ones included)."""
    out, pos = [], 0
    while pos + 512 <= len(tar):
        block = tar[pos : pos + 512]
        if block == bytes(512):
            break
        out.append(pos)
        size = int(block[124:135] or b"0", 8)
        pos += 512 + size + padding(size)
    return out


def _fix_checksum(b: bytearray, h: int) -> None:
    b[h + 148 : h + 156] = b" " * 8
    b[h + 148 : h + 156] = b"%06o\0 " % sum(b[h : h + 512])


def apply_tar_op(data: bytes, headers: list[int], op: tuple) -> bytes:
    if not headers:
        return data
    h = headers[op[1] % len(headers)]
    if h + 512 > len(data):
        return data
    b = bytearray(data)
    if op[0] == "pax":  # this member becomes a PAX header holding the record
        rec = op[2]
        b[h + 156 : h + 157] = b"x"
        b[h + 124 : h + 136] = b"%011o\0" % len(rec)
        b[h + 512 : h + 512 + len(rec)] = rec
        _fix_checksum(b, h)
        return bytes(b[: len(data)]) if len(b) > len(data) else bytes(b)
    _, _, name, value, fix = op
    start, width = TAR_FIELDS[name]
    b[h + start : h + start + width] = value[:width].ljust(width, b"\0")
    if fix and name != "chksum":
        _fix_checksum(b, h)
    return bytes(b)


@dataclass(slots=True, repr=False)
class ShardBase:
    """One valid plaintext shard, taken apart: frames, index, seek table, its manifest row."""

    blob: bytes
    info: ShardInfo
    frames: list[bytes]
    contents: list[bytes]  # each frame's tar bytes
    raw: list[bool]  # frame stored as Raw blocks
    headers: list[list[int]]  # tar header offsets in each frame's content
    index: SampleIndex
    sizes: list[tuple[int, int]]  # seek table entries of the data frames


# -- shard mutations -------------------------------------------------------------------

IX_FIELDS = {"sample_frame": 32, "key_ends": 32, "sample_members": 32, "member_ext": 16, "member_offset": 64,
             "member_size": 64, "frame_digest": 64}


def draw_shard_ops(d: Draw, max_ops: int = 4) -> list[tuple]:
    ops: list[tuple] = []
    for _ in range(d.int(1, max_ops)):
        k = d.int(0, 11)
        if k <= 1:
            ops.append(("content", d.int(0, 64), draw_tar_op(d) if d.flag() else draw_byte_op(d)))
        elif k == 2:
            ops.append(("recode", d.int(0, 64)))
        elif k == 3:
            ops.append(("frame", d.int(0, 64), draw_byte_op(d)))
        elif k == 4:
            if d.flag():
                ops.append(("fcs", d.int(0, 64), draw_value(d, 64)))
            else:  # a frame whose header (and seek table entry) claim far more than its blocks hold
                ops.append(("bomb", d.int(0, 64), d.pick((1 << 20, 64 << 20, 1 << 30, 2**32 - 1)), d.int(1, 40)))
        elif k == 5:
            name = d.pick(sorted(IX_FIELDS))
            ops.append(("ix", name, d.int(0, 40) if d.flag() else d.int(0, 4096), draw_value(d, IX_FIELDS[name])))
        elif k == 6:
            ops.append(draw_sample_op(d))
        elif k == 7:
            ops.append(d.pick((("ixlen", d.pick(sorted(IX_FIELDS)), d.pick((-1, 1, 2))), ("ixkeys", draw_byte_op(d)),
                               ("ixext", d.int(0, 16), d.pick(("", "txt", "é", "a" * 300, "x.y"))))))
        elif k == 8:
            ops.append(("payload", draw_byte_op(d)))
        elif k == 9:
            ops.append(("seek", d.int(0, 64), d.int(0, 1), draw_value(d, 32)))
        elif k == 10:
            ops.append(("table", draw_byte_op(d)))
        else:
            ops.append(("blob", draw_byte_op(d)))
    return ops


def draw_sample_op(d: Draw) -> tuple:
    """An index edit that keeps the index well formed (counts, CRC) but changes what it says."""
    i, j = d.int(0, 31), d.int(0, 31)
    return d.pick((
        ("empty", i), ("dropm", i, j), ("key", i, d.pick(("", "é", "a/b.c", "ключ", "\x00", "s/000", "x" * 300))),
        ("dupkey", i, j), ("span", i, j, d.int(0, 4)), ("swap", i, j), ("ext", i, j, d.int(0, 4)),
    ))


def draw_shard_spec(d: Draw, bases: list[str], max_ops: int = 4) -> dict[str, Any]:
    return {"base": d.pick(bases), "ops": draw_shard_ops(d, max_ops), "fix_crc": d.int(0, 4) != 0,
            "fix_digest": d.int(0, 3) != 0, "row": d.pick((None, None, "fresh", "fresh", "orig")),
            "zero_copy": d.flag(), "read_into": d.flag()}


SAMPLE_OPS = ("empty", "dropm", "key", "dupkey", "span", "swap", "ext")


def _apply_sample_ops(ix: SampleIndex, ops: list[tuple], d_sizes: list[int]) -> None:
    """Apply the ``SAMPLE_OPS`` edits to ``ix`` (in place) through a list-of-samples form."""
    ops = [op for op in ops if op[0] in SAMPLE_OPS]
    if not ops or not len(ix):
        return
    ends = [0, *ix.sample_members]
    samples = [[ix.keys_blob[s:e], ix.sample_frame[i], [[ix.member_ext[m], ix.member_offset[m], ix.member_size[m]]
                                                         for m in range(ends[i], ends[i + 1])]]
               for i, (s, e) in enumerate(zip([0, *ix.key_ends], ix.key_ends))]
    d_offsets = [0]
    for size in d_sizes:
        d_offsets.append(d_offsets[-1] + size)
    n = len(samples)
    for op in ops:
        a = samples[op[1] % n]
        if op[0] == "empty":
            a[2] = []
        elif op[0] == "dropm" and a[2]:
            del a[2][op[2] % len(a[2])]
        elif op[0] == "key":
            a[0] = op[2].encode("utf-8")
        elif op[0] == "dupkey":
            a[0] = samples[op[2] % n][0]
        elif op[0] == "swap":
            b = samples[op[2] % n]
            a[2], b[2] = b[2], a[2]
        elif op[0] == "ext" and a[2]:
            a[2][op[2] % len(a[2])][0] = op[3] % max(1, len(ix.exts))
        elif op[0] == "span" and a[2] and a[1] < len(d_sizes):
            m = a[2][op[2] % len(a[2])]
            lo, hi = d_offsets[a[1]], d_offsets[a[1] + 1]
            m[1:] = ([lo, hi - lo], [hi, 0], [m[1], hi - m[1] + 1], [lo, 0], [m[1], 0])[op[3]]
    blob, key_ends, frames, mends = b"", array("I"), array("I"), array("I")
    mext, moff, msz = array("H"), array("Q"), array("Q")
    for key, f, members in samples:
        blob += key
        key_ends.append(len(blob))
        frames.append(f)
        for e, o, z in members:  # as the format stores them: unsigned, so -1 wraps
            mext.append(e % (1 << 16))
            moff.append(o % (1 << 64))
            msz.append(z % (1 << 64))
        mends.append(len(mext))
    ix.keys_blob, ix.key_ends, ix.sample_frame, ix.sample_members = blob, key_ends, frames, mends
    ix.member_ext, ix.member_offset, ix.member_size = mext, moff, msz


def _encode_frame(content: bytes, raw: bool) -> bytes:
    if raw:
        return build_raw_frame([content])
    return zstandard.ZstdCompressor(level=1, write_checksum=True, write_content_size=True).compress(content)


def _set_fcs(frame: bytes, v: tuple[str, int]) -> bytes:
    """Rewrite a zstd frame header's content size field, in the width it already has."""
    if len(frame) < 6:
        return frame
    fhd = frame[4]
    single, dict_flag, fcs_flag = (fhd >> 5) & 1, fhd & 3, fhd >> 6
    pos = 5 + (0 if single else 1) + (0, 1, 2, 4)[dict_flag]
    width = (1 if single else 0, 2, 4, 8)[fcs_flag]
    if not width or pos + width > len(frame):
        return frame
    old = int.from_bytes(frame[pos : pos + width], "little")
    new = apply_value(old, v, 8 * width)
    return frame[:pos] + new.to_bytes(width, "little") + frame[pos + width :]


def lying_frame(declared: int, blocks: int) -> bytes:
    """A zstd frame declaring ``declared`` content bytes that holds ``blocks`` RLE blocks of 128 KiB.

    Libzstd's one-shot decompression allocates the declared size up front; the reader
    must not (the frame is rejected or decompressed into buffers that grow with the output).
    """
    rle = (131072 << 3 | 1 << 1).to_bytes(3, "little") + b"\0"
    last = (131072 << 3 | 1 << 1 | 1).to_bytes(3, "little") + b"\0"
    # descriptor: 4-byte content size (flag 2), single segment, no checksum, no dictionary
    return b"\x28\xb5\x2f\xfd" + bytes([0b1010_0000]) + declared.to_bytes(4, "little") + rle * (blocks - 1) + last


def build_shard(base: ShardBase, spec: dict[str, Any]) -> tuple[bytes, tuple[int, int] | None]:
    """The mutated plaintext shard bytes and the manifest row's (index_offset, index_size)."""
    frames, contents, raw = list(base.frames), list(base.contents), list(base.raw)
    sizes = list(base.sizes)
    ix = base.index
    ix = replace(ix, **{n: array(getattr(ix, n).typecode, getattr(ix, n)) for n in IX_FIELDS}, exts=list(ix.exts))
    ops = spec["ops"]
    nf = len(frames)
    touched = set()
    for op in ops:  # frame contents, re-encoded
        if op[0] in ("content", "recode"):
            f = op[1] % nf
            if op[0] == "recode":
                raw[f] = not raw[f]
            elif op[2][0] in ("pax", "hdr"):
                contents[f] = apply_tar_op(contents[f], base.headers[f], op[2])
            else:
                contents[f] = apply_byte_op(contents[f], op[2])
            touched.add(f)
    for f in touched:
        frames[f] = _encode_frame(contents[f], raw[f])
        sizes[f] = (len(frames[f]), len(contents[f]))
    for op in ops:  # stored frame bytes
        if op[0] == "frame":
            f = op[1] % nf
            frames[f] = apply_byte_op(frames[f], op[2])
            sizes[f] = (len(frames[f]), sizes[f][1])
        elif op[0] == "fcs":
            f = op[1] % nf
            frames[f] = _set_fcs(frames[f], op[2])
        elif op[0] == "bomb":
            f = op[1] % nf
            frames[f] = lying_frame(op[2], op[3])
            sizes[f] = (len(frames[f]), op[2])
    if spec["fix_digest"]:
        ix.frame_digest = array("Q", [frame_digest(f) for f in frames])
    _apply_sample_ops(ix, ops, [dsz for _, dsz in sizes])
    keys_blob = bytearray(ix.keys_blob)
    for op in ops:  # index fields
        if op[0] == "ix":
            a = getattr(ix, op[1])
            if len(a):
                i = op[2] % len(a)
                a[i] = apply_value(a[i], op[3], IX_FIELDS[op[1]])
        elif op[0] == "ixlen":
            a = getattr(ix, op[1])
            if op[2] < 0 and len(a):
                a.pop()
            else:
                a.extend([a[-1] if len(a) else 0] * max(op[2], 0))
        elif op[0] == "ixkeys":
            keys_blob = bytearray(apply_byte_op(bytes(keys_blob), op[1]))
        elif op[0] == "ixext" and ix.exts:
            ix.exts[op[1] % len(ix.exts)] = op[2]
    ix.keys_blob = bytes(keys_blob)
    payload = encode_index(ix)
    for op in ops:
        if op[0] == "payload":
            payload = apply_byte_op(payload, op[1])
    if spec["fix_crc"] and len(payload) >= 4:
        import zlib

        payload = payload[:-4] + zlib.crc32(payload[:-4]).to_bytes(4, "little")
    index_frame = skippable(INDEX_MAGIC, payload)
    for op in ops:
        if op[0] == "seek" and sizes:
            i = op[1] % len(sizes)
            c, dsz = sizes[i]
            sizes[i] = (apply_value(c, op[3], 32), dsz) if op[2] == 0 else (c, apply_value(dsz, op[3], 32))
    table = encode_seek_table([*sizes, (len(index_frame), 0)])
    for op in ops:
        if op[0] == "table":
            table = apply_byte_op(table, op[1])
    head = b"".join(frames)
    blob = head + index_frame + table
    for op in ops:
        if op[0] == "blob":
            blob = apply_byte_op(blob, op[1])
    row = None
    if spec["row"] == "fresh":
        row = (len(head), len(blob) - len(head))
    elif spec["row"] == "orig":
        row = (base.info.index_offset, base.info.index_size)
    return blob, row


# -- JSON ------------------------------------------------------------------------------


EVIL = (None, True, False, -1, 0, 2**64, -(2**70), 10**30, 1.5, float("inf"), "", "x", "p-0-1", [], {}, [1, 2],
        {"a": 1}, [[[[[]]]]], "shards/../../etc", "\udcff", "é" * 50, [None], [{}], {"id": 3})
RAW_JSON = (b"\xff\xfe\x00", b"[" * 50_000, b'{"version":' + b"9" * 5000 + b"}", b"", b"null", b"{", b"\x80abc",
            b'"' + b"\\ud800" + b'"', b'{"format":"exashard-manifest","format_version":1,"version":1e999}', b"\x00",
            "\ufeff{}".encode())


def json_paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k in sorted(doc):
            out += json_paths(doc[k], (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += json_paths(v, (*prefix, i))
    return out


def _set_path(doc: Any, path: tuple, value: Any, how: str) -> Any:
    """``how``: "set" the value at ``path``, "del" it, or "dup" it (a list item repeated in place)."""
    if not path:
        return value if how == "set" else doc
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    if how == "del":
        del parent[path[-1]]
    elif how == "dup":
        if isinstance(parent, list):
            parent.insert(path[-1], parent[path[-1]])
    else:
        parent[path[-1]] = value
    return doc


def mutate_json(data: bytes, ops: list[tuple]) -> bytes:
    for op in ops:
        if op[0] == "raw":
            data = RAW_JSON[op[1] % len(RAW_JSON)]
        elif op[0] == "bytes":
            data = apply_byte_op(data, op[1])
        else:
            try:
                doc = json.loads(data)
            except (ValueError, RecursionError):
                continue
            paths = json_paths(doc)
            path = paths[op[1] % len(paths)]
            doc = _set_path(doc, path, EVIL[op[2] % len(EVIL)], op[0])
            data = json.dumps(doc, sort_keys=True).encode("utf-8", "surrogatepass")
    return data
