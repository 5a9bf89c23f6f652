"""docs/FORMAT.md's test vectors, rebuilt and checked byte for byte; format details."""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import tarfile
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exashard.errors import IntegrityError
from exashard.shards import ShardReader, ShardWriter
from exashard.shards.format import SampleIndex, decode_index, encode_index
from exashard.shards.storage import FsspecSource
from exashard.shards.tar import iter_members, member_header
from exashard.shards.writer import ShardFileWriter, sample_fields
from exashard.shards.zframe import build_raw_frame, frame_length, raw_blocks

DOC = os.path.join(os.path.dirname(__file__), "..", "docs", "FORMAT.md")
VECTOR_1 = [{"__key__": "a", "txt": "hi"}, {"__key__": "dir/b", "json": b'{"x":1}', "bin": bytes(range(5))}]


def _doc_vector(name: str) -> dict[str, str]:
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    block = text.split(f"<!-- {name} -->", 1)[1].split("```", 2)[1]
    fields: dict[str, str] = {}
    current = None
    for line in block.strip().splitlines():
        m = re.match(r"^(\w+)\s+(.*)$", line)
        if m and not re.fullmatch(r"[0-9a-f]{2}", m.group(1)):
            current = m.group(1)
            fields[current] = m.group(2).strip()
        elif current:
            fields[current] += " " + line.strip()
    return fields


def _write(samples, **kw) -> tuple[bytes, dict]:
    buf = io.BytesIO()
    w = ShardFileWriter(buf, **kw)
    for s in samples:
        w.add(*sample_fields(s))
    geometry = w.finish()
    return buf.getvalue(), geometry


def test_vector_1_matches_doc():
    data, g = _write(VECTOR_1, level=None)
    vec = _doc_vector("vector-1")
    assert len(data) == int(vec["size"])
    assert hashlib.sha256(data).hexdigest() == vec["sha256"]
    assert data[:16] == bytes.fromhex(vec["head"])
    assert data[g["index_offset"] :] == bytes.fromhex(vec["trailer"])
    assert g["index_offset"] == 4116 and g["tar_bytes"] == 4096


def test_vector_2_compressed_frame(memfs):
    fs, root = memfs
    with ShardWriter(root, name="v2", encrypt=False) as w:
        w.write({"__key__": "k", "txt": "hello " * 100})
    (info,) = w.shards
    assert info.frames == 1 and info.tar_bytes == 2560
    blob = fs.cat_file(f"{root}/{info.path}")
    assert raw_blocks(blob[: info.index_offset], "v2") is None  # a compressed frame
    r = ShardReader(FsspecSource(fs, f"{root}/{info.path}"))
    assert list(r) == [{"__key__": "k", "txt": b"hello " * 100}]


@given(name=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=300),
       size=st.integers(0, 2000), mtime=st.integers(0, 2**33 - 1))
def test_tar_headers_read_by_tarfile_and_our_parser(name, size, mtime):
    data = os.urandom(size)
    stream = member_header(name, size, mtime) + data + bytes(-size % 512) + bytes(1024)
    with tarfile.open(fileobj=io.BytesIO(stream)) as t:
        (m,) = t.getmembers()
        assert m.name == name.rstrip("/") or m.name == name
        assert m.size == size and m.mtime == mtime
        assert t.extractfile(m).read() == data
    (mem,) = iter_members(stream)
    assert mem.name == name and mem.size == size
    assert stream[mem.offset : mem.offset + size] == data


def test_tar_parser_rejects_bad_checksum():
    h = bytearray(member_header("a.txt", 1))
    h[0] ^= 1
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        list(iter_members(bytes(h) + bytes(512)))


@given(content=st.binary(max_size=400_000) | st.builds(lambda n, b: b * n, st.integers(0, 300_000), st.binary(min_size=1, max_size=3)),
       level=st.sampled_from([-5, 1, 3, 19]), checksum=st.booleans(), tail=st.binary(max_size=8))
def test_frame_length_walks_every_block_kind(content, level, checksum, tail):
    """Compressed, RLE and Raw blocks, with and without a checksum: the walk ends where the frame
    does, whatever follows; cut short, it refuses."""
    import zstandard

    frame = zstandard.ZstdCompressor(level=level, write_checksum=checksum).compress(content)
    assert frame_length(frame + tail, "t") == len(frame)
    for cut in {len(frame) - 1, len(frame) // 2, 7}:
        if 0 <= cut < len(frame) - 4 * checksum:
            with pytest.raises(IntegrityError, match="^t: "):
                frame_length(frame[:cut], "t")


def test_frame_length_refuses_reserved_block_type():
    import zstandard

    frame = bytearray(zstandard.ZstdCompressor().compress(b"abc" * 100))
    pos = zstandard.frame_header_size(bytes(frame))
    frame[pos] |= 0b110  # block type 3
    with pytest.raises(IntegrityError, match="reserved type"):
        frame_length(frame, "t")


@pytest.mark.parametrize("pooled", [False, True])
def test_bytes_after_a_compressed_frame_are_refused(tmp_path, pooled):
    """A frame's stored range holds one frame and nothing more (the digest is fixed up, as a
    faulty writer would leave it): refused by name, decompressed one-shot or into a pool buffer."""
    from exashard.shards.reader import _BufferPool

    root = tmp_path / "ds"
    with ShardWriter(str(root), name="t", encrypt=False) as w:
        w.write({"__key__": "a", "txt": "hello " * 500})
    (info,) = w.shards
    with ShardReader.open(str(root / info.path)) as r:
        raw = bytes(r._read_frame(0))
        with pytest.raises(IntegrityError, match=r"frame 0 at offset \d+: zstd frame is \d+ bytes but its blocks end at"):
            r._frame_content(raw + b"\0" * 9, 0, _BufferPool() if pooled else None)
        assert bytes(r._frame_content(raw, 0, _BufferPool() if pooled else None)) == r.frame(0)


@given(parts=st.lists(st.binary(max_size=300_000), max_size=6))
def test_raw_frames_are_standard_zstd(parts):
    import zstandard

    frame = build_raw_frame(parts)
    content = b"".join(parts)
    assert zstandard.ZstdDecompressor().decompress(frame) == content
    blocks = raw_blocks(frame, "t")
    assert blocks is not None and blocks.content_size == len(content)
    pos = 0
    for p in parts:  # every part up to 128 KiB is one slice of the stored bytes
        got = blocks.slice(frame, pos, len(p))
        assert got == p
        if 0 < len(p) <= 128 * 1024:
            assert isinstance(blocks.slice(memoryview(frame), pos, len(p)), memoryview)
        pos += len(p)


@given(st.lists(st.tuples(st.text(min_size=1, max_size=10), st.lists(st.tuples(st.sampled_from(["a", "bb", "ü"]), st.integers(0, 2**40)), min_size=1, max_size=3)), max_size=20))
def test_index_roundtrip(samples):
    from exashard.shards.format import IndexBuilder

    b = IndexBuilder()
    off = 0
    for key, members in samples:
        ms = []
        for ext, size in members:
            ms.append((ext, off, size))
            off += size
        b.add(key, 0, ms)
    b.frame_digest.append(123)
    payload = b.encode()
    ix = decode_index(payload, "t")
    assert isinstance(ix, SampleIndex)
    assert ix.keys() == [k for k, _ in samples]
    assert encode_index(ix) == payload
    bad = bytearray(payload)
    bad[10] ^= 1
    with pytest.raises(IntegrityError):
        decode_index(bytes(bad), "t")


def test_seek_table_footer_layout():
    data, g = _write(VECTOR_1, level=None)
    n, desc, magic = struct.unpack("<IBI", data[-9:])
    assert (n, desc, magic) == (2, 0, 0x8F92EAB1)


def _index(samples: list[tuple[int, list[tuple[str, int]]]]) -> SampleIndex:
    """A valid index of (frame, [(ext, size)]) samples with keys k0, k1, ..."""
    from exashard.shards.format import IndexBuilder

    b, off = IndexBuilder(), 0
    for i, (frame, members) in enumerate(samples):
        ms = []
        for ext, size in members:
            ms.append((ext, off, size))
            off += size
        b.add(f"k{i}", frame, ms)
    return decode_index(b.encode(), "t")


@pytest.mark.parametrize(
    "field, at, value, message",
    [
        ("key_ends", 1, 0, "key offsets go backwards"),
        ("sample_members", 1, 0, "member offsets go backwards"),
        ("member_ext", 2, 7, "names an unknown extension"),
    ],
)
def test_index_rejects_each_broken_array(field, at, value, message):
    """Each internal check fires on its own, with a valid CRC (what a buggy writer makes)."""
    ix = _index([(0, [("a", 5)]), (0, [("a", 3), ("b", 1)]), (1, [("b", 2)])])
    getattr(ix, field)[at] = value
    with pytest.raises(IntegrityError, match=message):
        decode_index(encode_index(ix), "t")


@given(st.lists(st.integers(0, 5), max_size=40).map(sorted), st.integers(0, 3))
def test_frame_ranges_match_a_scan(frames, extra):
    from array import array

    from exashard.shards.format import frame_ranges

    n_frames = (frames[-1] + 1 if frames else 0) + extra
    want = [(next((i for i, f in enumerate(frames) if f >= k), len(frames)),
             next((i for i, f in enumerate(frames) if f > k), len(frames))) for k in range(n_frames)]
    assert frame_ranges(array("I", frames), n_frames) == want


def _layout(d_sizes: list[int]) -> Any:
    from exashard.shards.format import Layout

    d_offsets = [sum(d_sizes[:i]) for i in range(len(d_sizes))]
    n = len(d_sizes)
    return Layout(tuple(range(n)), (1,) * n, tuple(d_offsets), tuple(d_sizes), n, 8, 30, n + 30)


@pytest.mark.parametrize(
    "field, at, value, message",
    [
        ("sample_frame", 0, 1, "names frames out of order or range"),  # frame 1, then frame 0
        ("sample_frame", 2, 2, "names frames out of order or range"),  # past the last frame
        ("member_offset", 1, 2, "members overlap or are out of order"),  # starts inside member 0
        ("member_size", 0, 2**64 - 1, "members overlap or are out of order"),  # its end overflows 64 bits
        ("member_size", 3, 99, "a member of frame 1 lies outside the frame"),
    ],
)
def test_check_index_rejects_each_broken_array(field, at, value, message):
    from array import array

    from exashard.shards.format import check_index

    ix = _index([(0, [("a", 5)]), (0, [("a", 3), ("b", 1)]), (1, [("b", 2)])])
    ix.frame_digest = array("Q", [0, 0])
    lay = _layout([9, 2])
    check_index(ix, lay, "t")  # the valid index passes
    getattr(ix, field)[at] = value
    with pytest.raises(IntegrityError, match=message):
        check_index(ix, lay, "t")


@given(st.lists(st.integers(0, 2**32 - 1), max_size=30), st.sampled_from("HIQ"))
def test_vectorised_order_checks_match_python(values, code):
    """The Arrow-computed checks against plain Python over the same arrays."""
    from array import array

    from exashard.shards.format import _ends_before_starts, nondecreasing

    bits = {"H": 16, "I": 32, "Q": 64}[code]
    a = array(code, [v % (1 << bits) for v in values])
    assert nondecreasing(a) == all(x <= y for x, y in zip(a, a[1:]))
    sizes = array("Q", [v % 7 for v in values])
    offs = array("Q", sorted(v % 50 for v in values))
    assert _ends_before_starts(offs, sizes) == all(o + z <= n for o, z, n in zip(offs, sizes, offs[1:]))
    big = array("Q", [2**64 - 1] * len(offs))  # every end past 2**64 but the first at offset 0
    assert _ends_before_starts(offs, big) == (len(offs) == 0 or offs.tolist() == [0])
