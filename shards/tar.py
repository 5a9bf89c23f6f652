"""Deterministic tar members, written and parsed by hand.

Python's ``tarfile`` costs a Python-level object and several copies per member; shards
hold millions of members, so headers are packed and parsed here directly. Only what
shards use is supported: regular files (type ``0``) and PAX extended headers (type
``x``) for names that are not short ASCII or sizes past the ustar limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import IntegrityError

BLOCK = 512
END_OF_ARCHIVE = bytes(2 * BLOCK)
_USTAR_MAX_SIZE = 0o77777777777  # 11 octal digits
_PAX_NAME = b"././@PaxHeader"


def _octal(value: int, width: int) -> bytes:
    """``width``-byte octal field: digits, then NUL (the ustar convention)."""
    return b"%0*o\0" % (width - 1, value)


def _header(name: bytes, size: int, mtime: int, typeflag: bytes) -> bytearray:
    h = bytearray(BLOCK)
    h[0 : len(name)] = name
    h[100:108] = b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = _octal(size, 12)
    h[136:148] = _octal(mtime, 12)
    h[148:156] = b" " * 8
    h[156:157] = typeflag
    h[257:265] = b"ustar\x0000"
    h[329:337] = b"0000000\0"
    h[337:345] = b"0000000\0"
    h[148:156] = b"%06o\0 " % sum(h)
    return h


def _pax_record(key: str, value: bytes) -> bytes:
    """One ``"<len> key=value\n"`` record; the length counts its own digits."""
    body = b" " + key.encode() + b"=" + value + b"\n"
    digits = len(str(len(body)))
    while len(str(len(body) + digits)) != digits:
        digits += 1
    return str(len(body) + digits).encode() + body


def padding(size: int) -> int:
    return -size % BLOCK


def member_header(name: str, size: int, mtime: int = 0) -> bytes:
    """Header block(s) for one regular file, deterministic for the same arguments.

    Names that are not ASCII or longer than 100 bytes, and sizes past 8 GiB, go in a
    PAX extended header before the ustar header, as GNU tar and Python's tarfile read.
    """
    raw = name.encode("utf-8")
    records = b""
    short = raw
    if len(raw) > 100 or not raw.isascii():
        records += _pax_record("path", raw)
        short = raw[:100]
    if size > _USTAR_MAX_SIZE:
        records += _pax_record("size", str(size).encode())
        size_field = 0
    else:
        size_field = size
    main = _header(short, size_field, mtime, b"0")
    if not records:
        return bytes(main)
    pax = _header(_PAX_NAME, len(records), mtime, b"x")
    return bytes(pax) + records + bytes(padding(len(records))) + bytes(main)


@dataclass(frozen=True, slots=True)
class TarMember:
    name: str
    offset: int  # offset of the member's data in the tar stream
    size: int


def _parse_octal(field: bytes, where: str) -> int:
    text = field.rstrip(b"\0 ").lstrip(b" ")
    if not text:
        return 0
    # octal digits only: int() would also take a sign, "_" and inner spaces, and a negative
    # size would send the parser backwards (an endless loop)
    if text.translate(None, b"01234567"):
        raise IntegrityError(f"{where}: bad octal field in tar header")
    return int(text, 8)


def _parse_pax(data: bytes, where: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        sp = data.find(b" ", pos)
        if sp < 0:
            raise IntegrityError(f"{where}: malformed PAX record")
        if not data[pos:sp].isdigit() or sp - pos > 20:  # ASCII digits only: no sign, "_" or spaces
            raise IntegrityError(f"{where}: malformed PAX record length")
        length = int(data[pos:sp])
        end = pos + length
        if length <= 0 or end > len(data) or data[end - 1 : end] != b"\n":
            raise IntegrityError(f"{where}: malformed PAX record")
        key, eq, value = data[sp + 1 : end - 1].partition(b"=")
        if not eq:
            raise IntegrityError(f"{where}: malformed PAX record")
        out[key.decode("utf-8", "replace")] = value
        pos = end
    return out


def iter_members(buf: bytes | memoryview, base: int = 0, where: str = "tar") -> Iterator[TarMember]:
    """Parse the tar members in ``buf`` (which starts at stream offset ``base``).

    Stops at the end-of-archive marker or at the end of ``buf``; a header cut short,
    a bad checksum or an unsupported member type raises ``IntegrityError``.
    """
    view = memoryview(buf)
    pos = 0
    pax: dict[str, bytes] = {}
    while pos < len(view):
        at = f"{where} at tar offset {base + pos}"
        if pos + BLOCK > len(view):
            raise IntegrityError(f"{at}: truncated tar header")
        block = bytes(view[pos : pos + BLOCK])
        if block == bytes(BLOCK):
            return
        stored = _parse_octal(block[148:156], at)
        if stored != sum(block[:148]) + 256 + sum(block[156:]):
            raise IntegrityError(f"{at}: tar header checksum mismatch")
        typeflag = block[156:157]
        size = _parse_octal(block[124:136], at)
        data_at = pos + BLOCK
        if typeflag == b"x":
            if data_at + size > len(view):
                raise IntegrityError(f"{at}: truncated PAX header")
            pax = _parse_pax(bytes(view[data_at : data_at + size]), at)
            pos = data_at + size + padding(size)
            continue
        if typeflag not in (b"0", b"\0"):
            raise IntegrityError(f"{at}: unsupported tar member type {typeflag!r}")
        if "size" in pax:
            if not pax["size"].isdigit() or len(pax["size"]) > 20:  # a negative size would loop forever
                raise IntegrityError(f"{at}: bad PAX size")
            size = int(pax["size"])
        name_raw = pax.get("path")
        if name_raw is None:
            name_raw = block[:100].split(b"\0", 1)[0]
            prefix = block[345:500].split(b"\0", 1)[0]
            if prefix:
                name_raw = prefix + b"/" + name_raw
        pax = {}
        if data_at + size > len(view):
            raise IntegrityError(f"{at}: tar member data truncated")
        yield TarMember(name_raw.decode("utf-8", "surrogateescape"), base + data_at, size)
        pos = data_at + size + padding(size)


# Input tars: regular files (and contiguous files, type 7) are read; links, devices,
# directories and FIFOs carry no data and are skipped; other types (GNU volume and dump
# metadata, vendor types) are passed over by their size, as Python's tarfile does; GNU
# sparse files are refused.
_REGULAR = (b"0", b"\0", b"7")
_NO_DATA = frozenset({b"1", b"2", b"3", b"4", b"5", b"6"})
_MAX_META = 1 << 20  # a PAX or GNU long-name header larger than this is not a name


def _read_exact(f: Any, n: int, at: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise IntegrityError(f"{at}: tar cut short ({len(data)} of {n} bytes)")
    return data


def _skip(f: Any, n: int, at: str) -> None:
    while n > 0:
        chunk = f.read(min(n, 1 << 20))
        if not chunk:
            raise IntegrityError(f"{at}: tar cut short")
        n -= len(chunk)


def iter_file_members(f: Any, where: str = "tar", max_member: int | None = None) -> Iterator[tuple[str, bytes]]:
    """``(name, data)`` of each regular file in a tar read from the file object ``f``,
    streamed: memory holds one member. Reads what ordinary tools write (ustar, PAX ``x``
    and ``g`` headers, GNU long names ``L``); directories, links and devices are skipped.
    A header cut short, a bad checksum, a member cut short, GNU sparse members or a
    member over ``max_member`` bytes raise ``IntegrityError``. This is the reader for
    *input* tars; ``iter_members`` parses our own shards' tar bytes."""
    pax: dict[str, bytes] = {}
    long_name: bytes | None = None
    offset = 0
    while True:
        at = f"{where} at tar offset {offset}"
        block = f.read(BLOCK)
        if not block or block == bytes(BLOCK):
            return  # end of archive (or a tar without its end marker, as other readers allow)
        if len(block) != BLOCK:
            raise IntegrityError(f"{at}: truncated tar header")
        stored = _parse_octal(block[148:156], at)
        if stored != sum(block[:148]) + 256 + sum(block[156:]):
            raise IntegrityError(f"{at}: tar header checksum mismatch")
        typeflag = block[156:157]
        if block[124] & 0x80:
            raise IntegrityError(f"{at}: base-256 tar sizes are not supported")
        size = _parse_octal(block[124:136], at)
        offset += BLOCK
        if typeflag in (b"x", b"g", b"L", b"K"):
            if size > _MAX_META:
                raise IntegrityError(f"{at}: {size}-byte extended header")
            meta = _read_exact(f, size, at)
            _skip(f, padding(size), at)
            offset += size + padding(size)
            if typeflag == b"x":
                pax = _parse_pax(meta, at)
            elif typeflag == b"L":
                long_name = meta.split(b"\0", 1)[0]
            continue  # global PAX headers and GNU long link names change nothing we keep
        if "size" in pax:
            if not pax["size"].isdigit() or len(pax["size"]) > 20:
                raise IntegrityError(f"{at}: bad PAX size")
            size = int(pax["size"])
        name_raw = pax.get("path") or long_name
        if name_raw is None:
            name_raw = block[:100].split(b"\0", 1)[0]
            prefix = block[345:500].split(b"\0", 1)[0] if block[257:262] == b"ustar" else b""
            if prefix:
                name_raw = prefix + b"/" + name_raw
        pax, long_name = {}, None
        if typeflag in _NO_DATA:
            continue
        if typeflag == b"S":
            raise IntegrityError(f"{at}: GNU sparse tar members are not supported")
        if typeflag not in _REGULAR:
            _skip(f, size + padding(size), at)
            offset += size + padding(size)
            continue
        if max_member is not None and size > max_member:
            raise IntegrityError(f"{at}: a {size}-byte member is over the {max_member}-byte limit")
        data = _read_exact(f, size, at)
        _skip(f, padding(size), at)
        offset += size + padding(size)
        yield name_raw.decode("utf-8", "surrogateescape"), data
