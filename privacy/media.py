"""Lossless, byte-level stripping of image metadata (JPEG, PNG, WebP).

The privacy stage calls :func:`strip` on image samples the policy marks ``strip``. Only the
container is rewritten: compressed pixel data is copied verbatim, never re-encoded, so the
decoded pixels are bit-identical and stripping runs at memory speed. Kept is what a viewer
needs to show the picture correctly (colour profile and transform, gamma, transparency,
pixel density, animation); everything else is dropped, unknown blocks included
(fail-closed). EXIF is rewritten to hold only the Orientation tag where the source had a
valid one (1..8), so images still display the right way up.

Input that cannot be walked safely (truncation, bad lengths or CRCs, malformed EXIF,
structures we do not know) raises ``QuarantineError`` naming ``where`` and the reason; the
sample is quarantined, never passed on unstripped. Messages never carry media bytes.

Known residual risks: ICC profiles are kept verbatim (their description text and the PNG
``iCCP`` profile name are not scrubbed), and data hidden in the pixels themselves
(steganography, visible content) is untouched.

Not stripped here, so a policy must name them explicitly (keep as-is, or drop them);
stripping them is future work:

- MP4/MOV/M4A, HEIC/AVIF (ISO BMFF): metadata lives in ``udta``/``meta``/``uuid`` boxes
  (GPS in ``(c)xyz``), and removing a box moves the media data, so the ``stco``/``co64``/
  ``iloc`` offset tables must be rewritten: a remux, not a byte-level drop.
- MP3, FLAC, OGG, WAV: ID3v1/v2, APE, Vorbis comments, RIFF ``INFO`` chunks and embedded
  cover art each need their own walker.
- GIF, TIFF/DNG, PDF, SVG: in TIFF the metadata *is* the container's IFD structure, and
  GIF comment/application extensions, PDF info dictionaries and arbitrary SVG XML need
  format-specific rewriting.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, fields

from ..errors import QuarantineError

STRIPPABLE: dict[str, str] = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png", "webp": "webp"}

_ORIENTATION = 0x0112
_GPS_IFD = 0x8825


@dataclass(frozen=True, slots=True)
class StripStats:
    """What :func:`strip` removed from one image: counts of blocks, for run reports.

    ``gps`` is 1 when a removed EXIF block had a GPS IFD; ``other`` counts removed blocks
    of any other kind (thumbnails, timestamps, maker blocks, unknown chunks, trailing data).
    """

    exif: int = 0
    gps: int = 0
    xmp: int = 0
    iptc: int = 0
    comment: int = 0
    text: int = 0
    other: int = 0
    orientation_kept: bool = False

    def as_dict(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}


def strip(data: bytes, kind: str, *, where: str = "media") -> tuple[bytes, StripStats]:
    """Return ``(stripped bytes, what was removed)`` for an image of ``kind`` (a ``STRIPPABLE`` value).

    Raises ``QuarantineError`` for an unknown kind or input that cannot be parsed safely.
    """
    found = _Found(where)
    stripper = _STRIPPERS.get(kind)
    if stripper is None:
        raise found.bad(f"cannot strip media of kind {kind!r}")
    try:
        out = stripper(bytes(data), found)
    except (struct.error, IndexError) as e:
        # Every read is bounds-checked first; this backstop keeps the contract (quarantine,
        # never another exception) should a check ever be missed.
        raise found.bad("unparseable media structure") from e
    return out, found.stats()


class _Found:
    """Mutable tally for one file while it is walked; frozen into StripStats at the end."""

    __slots__ = ("where", "counts", "orientation")

    def __init__(self, where: str) -> None:
        self.where = where
        self.counts = dict.fromkeys(("exif", "gps", "xmp", "iptc", "comment", "text", "other"), 0)
        self.orientation: int | None = None

    def bad(self, reason: str) -> QuarantineError:
        return QuarantineError(f"{self.where}: {reason}")

    def exif(self, blob: bytes) -> None:
        self.counts["exif"] += 1
        orientation, gps = _read_exif(blob[6:] if blob.startswith(b"Exif\0") else blob, self)
        self.counts["gps"] |= gps
        if self.orientation is None:  # the first EXIF block wins, as in common readers
            self.orientation = orientation

    def stats(self) -> StripStats:
        return StripStats(**self.counts, orientation_kept=self.orientation is not None)


# --- EXIF -------------------------------------------------------------------------------


def _read_exif(tiff: bytes, found: _Found) -> tuple[int | None, bool]:
    """(Orientation 1..8 or None, whether IFD0 links a GPS IFD) from a TIFF-structured EXIF block.

    Only IFD0 is read; every offset is checked against the block before it is used.
    """
    if len(tiff) < 8:
        raise found.bad("EXIF block is shorter than a TIFF header")
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None:
        raise found.bad("EXIF block has no TIFF byte-order mark")
    magic, ifd0 = struct.unpack_from(order + "HI", tiff, 2)
    if magic != 42 or not 8 <= ifd0 <= len(tiff) - 2:
        raise found.bad("EXIF TIFF header is malformed")
    (entries,) = struct.unpack_from(order + "H", tiff, ifd0)
    first, end = ifd0 + 2, ifd0 + 2 + 12 * entries
    if end > len(tiff):
        raise found.bad("EXIF IFD0 runs past the end of its block")
    orientation, gps = None, False
    for at in range(first, end, 12):
        tag, typ, count = struct.unpack_from(order + "HHI", tiff, at)
        if tag == _ORIENTATION and count == 1 and typ in (3, 4):  # SHORT, or LONG from lax writers
            (value,) = struct.unpack_from(order + ("H" if typ == 3 else "I"), tiff, at + 8)
            if orientation is None and 1 <= value <= 8:
                orientation = value
        elif tag == _GPS_IFD:
            (offset,) = struct.unpack_from(order + "I", tiff, at + 8)
            if not 8 <= offset <= len(tiff) - 2:
                raise found.bad("EXIF GPS IFD offset is out of range")
            gps = True
    return orientation, gps


def _orientation_tiff(value: int) -> bytes:
    """A minimal big-endian TIFF block: IFD0 with the one SHORT Orientation entry, no next IFD."""
    return b"MM\0\x2a" + struct.pack(">IHHHIHHI", 8, 1, _ORIENTATION, 3, 1, value, 0, 0)


# --- JPEG -------------------------------------------------------------------------------

_SOI, _EOI, _SOS, _APP0, _APP1, _APP2, _APP13, _APP14, _COM = 0xD8, 0xD9, 0xDA, 0xE0, 0xE1, 0xE2, 0xED, 0xEE, 0xFE
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# In entropy-coded data 0xFF is followed by 0x00 (stuffing), RSTn or more 0xFF (fill);
# anything else is a marker that ends the scan.
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_XMP_IDS = (b"http://ns.adobe.com/xap/1.0/\0", b"http://ns.adobe.com/xmp/extension/\0")
_ICC_ID = b"ICC_PROFILE\0"


def _dqt_ok(p: bytes) -> bool:
    i = 0
    while i < len(p):
        if p[i] >> 4 > 1:
            return False
        i += 65 if p[i] >> 4 == 0 else 129
    return i == len(p) > 0


def _dht_ok(p: bytes) -> bool:
    i = 0
    while i < len(p):
        if i + 17 > len(p):
            return False
        i += 17 + sum(p[i + 1 : i + 17])
    return i == len(p) > 0


def _sof_ok(p: bytes) -> bool:
    return len(p) >= 6 and len(p) == 6 + 3 * p[5]


# Decoding segments are kept, but only when their length matches their content exactly:
# a padded table would otherwise be a channel that carries arbitrary bytes through.
_JPEG_TABLES: dict[int, Callable[[bytes], bool]] = {
    **dict.fromkeys(_SOF | {0xDE}, _sof_ok),  # SOFn and DHP share the frame-header layout
    0xC4: _dht_ok,
    0xDB: _dqt_ok,
    0xCC: lambda p: len(p) > 0 and len(p) % 2 == 0,  # DAC
    0xDA: lambda p: len(p) >= 1 and len(p) == 4 + 2 * p[0],  # SOS header
    0xDD: lambda p: len(p) == 2,  # DRI
    0xDC: lambda p: len(p) == 2,  # DNL
    0xDF: lambda p: len(p) == 1,  # EXP
}


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def _jpeg_marker(data: bytes, pos: int, found: _Found) -> tuple[int, int]:
    """(offset of the marker's 0xFF, marker byte); 0xFF fill bytes may precede a marker."""
    if pos >= len(data):
        raise found.bad(f"truncated JPEG: no marker at offset {pos}")
    if data[pos] != 0xFF:
        raise found.bad(f"expected a JPEG marker at offset {pos}")
    while pos + 1 < len(data) and data[pos + 1] == 0xFF:
        pos += 1
    if pos + 1 >= len(data):
        raise found.bad(f"truncated JPEG marker at offset {pos}")
    return pos, data[pos + 1]


def _jpeg_app(marker: int, p: bytes, found: _Found, at: int) -> bytes | None:
    """The APPn segment to keep (possibly trimmed), or None after counting what it was."""
    if marker == _APP0 and p.startswith(b"JFIF\0"):
        if len(p) < 14:
            raise found.bad(f"truncated JFIF header at offset {at}")
        if len(p) > 14 or p[12:14] != b"\0\0":
            found.counts["other"] += 1  # an embedded thumbnail can show what a crop removed
        return _segment(marker, p[:12] + b"\0\0")
    if marker == _APP1 and p.startswith(b"Exif\0"):
        found.exif(p)
    elif marker == _APP1 and p.startswith(_XMP_IDS):
        found.counts["xmp"] += 1
    elif marker == _APP2 and p.startswith(_ICC_ID):
        return _segment(marker, p)
    elif marker == _APP13 and p.startswith(b"Photoshop 3.0\0"):
        found.counts["iptc"] += 1
    elif marker == _APP14 and p.startswith(b"Adobe"):
        # Adobe's transform flag decides YCbCr vs RGB/CMYK decoding; only its 12 bytes matter.
        if len(p) < 12:
            raise found.bad(f"truncated Adobe APP14 segment at offset {at}")
        found.counts["other"] += len(p) > 12
        return _segment(marker, p[:12])
    else:
        found.counts["other"] += 1  # JFXX thumbnails, MPF, FPXR, maker blocks, unknown APPn
    return None


def _check_icc(chunks: list[bytes], found: _Found) -> None:
    """A kept ICC profile must be complete and consistent, so its segments carry nothing else."""
    if not chunks:
        return
    if any(len(c) < 14 or c[13] != len(chunks) for c in chunks) or sorted(c[12] for c in chunks) != list(
        range(1, len(chunks) + 1)
    ):
        raise found.bad("inconsistent ICC profile segments")
    first = next(c for c in chunks if c[12] == 1)
    body = sum(len(c) - 14 for c in chunks)
    if len(first) < 18 or int.from_bytes(first[14:18], "big") != body:
        raise found.bad("ICC profile size does not match its segments")


def _strip_jpeg(data: bytes, found: _Found) -> bytes:
    if not data.startswith(b"\xff\xd8"):
        raise found.bad("missing JPEG SOI marker")
    view = memoryview(data)
    out: list[bytes | memoryview] = [b"\xff\xd8"]
    exif_at, icc, frame, scans, pos = 1, [], False, 0, 2
    while True:
        start, marker = _jpeg_marker(data, pos, found)
        pos = start + 2
        if marker == _EOI:
            break
        if marker in (_SOI, 0x01) or 0xD0 <= marker <= 0xD7:
            raise found.bad(f"unexpected JPEG marker 0x{marker:02X} at offset {start}")
        if pos + 2 > len(data):
            raise found.bad(f"truncated JPEG segment at offset {start}")
        (length,) = struct.unpack_from(">H", data, pos)
        end = pos + length
        if length < 2 or end > len(data):
            raise found.bad(f"truncated JPEG segment at offset {start}")
        payload = data[pos + 2 : end]
        if marker == _COM:
            found.counts["comment"] += 1
            kept = None
        elif _APP0 <= marker <= 0xEF:
            kept = _jpeg_app(marker, payload, found, start)
        elif marker in _JPEG_TABLES:
            if not _JPEG_TABLES[marker](payload):
                raise found.bad(f"malformed JPEG segment 0x{marker:02X} at offset {start}")
            kept = _segment(marker, payload)
        else:
            raise found.bad(f"unsupported JPEG marker 0x{marker:02X} at offset {start}")
        if kept is not None:
            if marker == _APP0 and len(out) == 1:
                exif_at = 2  # the fresh EXIF goes after a leading JFIF APP0, as libjpeg writes it
            if marker == _APP2:
                icc.append(payload)
            out.append(kept)
        frame |= marker in _SOF
        pos = end
        if marker == _SOS:
            if not frame:
                raise found.bad(f"JPEG scan before any frame header at offset {start}")
            scans += 1
            # Entropy-coded data is copied verbatim; markers after it (more scans, tables,
            # even APPn/COM between progressive scans) go through the same rules above.
            nxt = _SCAN_END.search(data, pos)
            if nxt is None:
                raise found.bad(f"JPEG entropy-coded data at offset {pos} has no end (missing EOI)")
            out.append(view[pos : nxt.start()])
            pos = nxt.start()
    if not scans:
        raise found.bad("JPEG has no image scan before EOI")
    _check_icc(icc, found)
    out.append(b"\xff\xd9")
    # Bytes after EOI are dropped: they hide appended files, MPF secondary images, and
    # vendor trailers (e.g. depth maps, original-before-edit copies).
    found.counts["other"] += pos < len(data)
    if found.orientation is not None:
        out.insert(exif_at, _segment(_APP1, b"Exif\0\0" + _orientation_tiff(found.orientation)))
    return b"".join(out)


# --- PNG --------------------------------------------------------------------------------

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
# Critical chunks, plus ancillary chunks that change how pixels are shown (colour space,
# transparency, gamma, significant bits, aspect ratio, background) or animate them (APNG).
_PNG_KEEP = frozenset(b"IHDR PLTE IDAT IEND tRNS gAMA cHRM sRGB iCCP cICP sBIT pHYs bKGD acTL fcTL fdAT".split())
_PNG_TEXT = frozenset({b"tEXt", b"iTXt", b"zTXt"})
_PNG_IMAGE_START = frozenset({b"IDAT", b"acTL", b"fcTL"})


def _png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def _strip_png(data: bytes, found: _Found) -> bytes:
    if not data.startswith(_PNG_SIG):
        raise found.bad("missing PNG signature")
    view = memoryview(data)
    out: list[bytes | memoryview] = [_PNG_SIG]
    image_at, has_idat, pos = 0, False, len(_PNG_SIG)
    while True:
        if pos + 12 > len(data):
            raise found.bad(f"truncated PNG chunk at offset {pos}")
        length, ctype = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > len(data):
            raise found.bad(f"truncated PNG chunk at offset {pos}")
        if not ctype.isalpha():
            raise found.bad(f"invalid PNG chunk type at offset {pos}")
        if zlib.crc32(view[pos + 4 : end - 4]) != struct.unpack_from(">I", data, end - 4)[0]:
            raise found.bad(f"bad CRC in PNG chunk {ctype.decode()} at offset {pos}")
        if (ctype == b"IHDR") != (pos == len(_PNG_SIG)):
            raise found.bad(f"PNG must start with exactly one IHDR chunk (offset {pos})")
        if ctype in _PNG_KEEP:
            if not image_at and ctype in _PNG_IMAGE_START:
                image_at = len(out)
            has_idat |= ctype == b"IDAT"
            out.append(view[pos:end])
        elif ctype == b"eXIf":
            found.exif(data[pos + 8 : end - 4])
        elif ctype in _PNG_TEXT:
            found.counts["text"] += 1
        elif ctype[0] & 0x20:  # ancillary (lower-case first letter): tIME, hIST, sPLT, private...
            found.counts["other"] += 1
        else:
            raise found.bad(f"unknown critical PNG chunk {ctype.decode()} at offset {pos}")
        pos = end
        if ctype == b"IEND":
            break
    if not has_idat:
        raise found.bad("PNG has no IDAT chunk")
    found.counts["other"] += pos < len(data)  # bytes after IEND can hide an appended file
    if found.orientation is not None:  # eXIf must precede the image data
        out.insert(image_at, _png_chunk(b"eXIf", _orientation_tiff(found.orientation)))
    return b"".join(out)


# --- WebP -------------------------------------------------------------------------------

_WEBP_KEEP = frozenset({b"ICCP", b"ANIM", b"ALPH", b"VP8 ", b"VP8L"})
_WEBP_FRAME_KEEP = frozenset({b"ALPH", b"VP8 ", b"VP8L"})
_VP8X_EXIF, _VP8X_XMP = 0x08, 0x04


def _riff_chunks(data: bytes, start: int, end: int, found: _Found) -> list[tuple[bytes, bytes]]:
    """(fourcc, payload) for each chunk in ``data[start:end]``; odd-sized payloads are padded."""
    chunks, pos = [], start
    while pos < end:
        if pos + 8 > end:
            raise found.bad(f"truncated WebP chunk header at offset {pos}")
        fourcc, size = struct.unpack_from("<4sI", data, pos)
        if pos + 8 + size + (size & 1) > end:
            raise found.bad(f"truncated WebP chunk at offset {pos}")
        chunks.append((fourcc, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return chunks


def _riff_chunk(fourcc: bytes, body: bytes) -> bytes:
    # The pad byte is written as zero, so it cannot carry a stray byte along.
    return fourcc + struct.pack("<I", len(body)) + body + b"\0" * (len(body) & 1)


def _webp_frame(body: bytes, found: _Found) -> bytes:
    """An ANMF frame with only its image sub-chunks: the spec allows unknown chunks inside."""
    if len(body) < 16:
        raise found.bad("truncated WebP ANMF frame header")
    kept = [body[:16]]
    for fourcc, sub in _riff_chunks(body, 16, len(body), found):
        if fourcc in _WEBP_FRAME_KEEP:
            kept.append(_riff_chunk(fourcc, sub))
        else:
            found.counts["other"] += 1
    return b"".join(kept)


def _strip_webp(data: bytes, found: _Found) -> bytes:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise found.bad("not a RIFF WebP file")
    (size,) = struct.unpack_from("<I", data, 4)
    if size + 8 != len(data):
        raise found.bad(f"RIFF size {size} does not match the file length {len(data)}")
    chunks = _riff_chunks(data, 12, len(data), found)
    if not chunks or chunks[0][0] not in (b"VP8X", b"VP8 ", b"VP8L"):
        raise found.bad("WebP does not start with a VP8X, VP8 or VP8L chunk")
    out = []
    for i, (fourcc, body) in enumerate(chunks):
        if fourcc in _WEBP_KEEP or (fourcc == b"VP8X" and i == 0):
            out.append(_riff_chunk(fourcc, body))
        elif fourcc == b"ANMF":
            out.append(_riff_chunk(fourcc, _webp_frame(body, found)))
        elif fourcc == b"EXIF":
            found.exif(body)
        elif fourcc == b"XMP ":
            found.counts["xmp"] += 1
        else:
            found.counts["other"] += 1
    vp8x = chunks[0][1] if chunks[0][0] == b"VP8X" else None
    if vp8x is None:
        found.orientation = None  # simple-format WebP cannot carry EXIF; readers ignored it
    elif len(vp8x) != 10:
        raise found.bad("malformed WebP VP8X chunk")
    else:
        flags = vp8x[0] & ~(_VP8X_EXIF | _VP8X_XMP)
        if found.orientation is not None:
            flags |= _VP8X_EXIF
            out.append(_riff_chunk(b"EXIF", _orientation_tiff(found.orientation)))  # EXIF goes last
        out[0] = _riff_chunk(b"VP8X", bytes((flags,)) + vp8x[1:])
    body = b"".join(out)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


_STRIPPERS: dict[str, Callable[[bytes, _Found], bytes]] = {
    "jpeg": _strip_jpeg,
    "png": _strip_png,
    "webp": _strip_webp,
}
