"""Fuzzing harness shared by ``tests/test_fuzz.py`` (short CI run) and ``bench/fuzz.py`` (long run).

Each target turns a *spec* (plain data: a base input's name plus mutation ops, see
``tests/_mutate.py``) into bytes and feeds them to one parser. The property, checked by
``checked()``: the only exceptions that escape a parser are ``ExashardError`` subclasses;
no case runs past a hard time limit (a SIGALRM: a deadline alone cannot interrupt an
endless loop); the peak of Python allocations while parsing an input of N bytes stays
under ``64 MiB + 64 * N`` (tracemalloc). libzstd's own C allocations are invisible to
tracemalloc; the reader guards them by refusing a frame whose declared size disagrees
with the seek table, or which no zstd frame of its stored size could hold, and by not
trusting a declared size far past the stored one (``lying_frame`` cases).
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import fsspec
from _mutate import (
    Draw,
    ShardBase,
    apply_byte_op,
    apply_byte_ops,
    apply_tar_op,
    build_shard,
    draw_byte_op,
    draw_shard_spec,
    draw_tar_op,
    draw_value,
    header_positions,
    mutate_json,
)

from exashard.errors import ExashardError, IntegrityError
from exashard.privacy.access import ShardKeys
from exashard.privacy.keys import LocalKeyring
from exashard.privacy.stream import HEADER_SIZE, DecryptingSource, EncryptingWriter
from exashard.shards import Manifest, ShardReader, ShardWriter
from exashard.shards.format import (
    SampleIndex,
    check_index,
    decode_index,
    decode_seek_table,
    parse_index_frame,
    seek_table_size,
)
from exashard.shards.manifest import checkpoint_name, commit_name
from exashard.shards.reader import _BufferPool, _content_bytes
from exashard.shards.tar import END_OF_ARCHIVE, iter_file_members, iter_members, member_header, padding
from exashard.shards.writer import ShardInfo
from exashard.shards.zframe import raw_blocks

MiB = 1 << 20
MEM_BASE, MEM_PER_BYTE = 64 * MiB, 64
HARD_LIMIT_S = 10.0

# -- the valid inputs ------------------------------------------------------------------


class MemSource:
    """A ``RangeSource`` over bytes; ``read_into`` too (the reader's pooled path) unless disabled."""

    def __init__(self, data: bytes, name: str = "fuzz.tar.zst", read_into: bool = True) -> None:
        self.data, self.name, self.size = data, name, len(data)
        if not read_into:
            self.read_into = None  # type: ignore[assignment]

    def read(self, offset: int, length: int) -> bytes:
        assert offset >= 0 and length >= 0, (offset, length)
        return self.data[offset : offset + length]

    def read_into(self, offset: int, buf: memoryview) -> int:  # type: ignore[no-redef]
        assert offset >= 0, offset
        chunk = self.data[offset : offset + len(buf)]
        buf[: len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        pass


@dataclass(slots=True, repr=False)
class Corpus:
    shards: dict[str, ShardBase]
    encrypted: bytes  # an encrypted shard as stored
    enc_info: ShardInfo
    data_key: bytes
    dataset_id: str
    manifest_files: dict[str, bytes]  # rel path -> bytes of a small dataset's manifest
    tar: bytes  # a tar stream with PAX members
    tar_headers: list[int]

    def __repr__(self) -> str:  # hypothesis prints the arguments of a failing case
        return "Corpus(...)"


def _samples(kind: str) -> list[dict[str, Any]]:
    rng = random.Random(7)
    out: list[dict[str, Any]] = []
    for i in range(14):
        s: dict[str, Any] = {"__key__": f"s/{i:03d}", "txt": f"text {i} " * (20 + i), "json": json.dumps({"i": i})}
        if kind != "zstd" or i % 3 == 0:
            s["bin"] = rng.randbytes(300 + 97 * i)
        if kind == "mixed":
            s["jpg"] = rng.randbytes(1500)
        out.append(s)
    out[3]["__key__"] = "ключ/é"  # non-ASCII: a PAX path record
    out[5]["__key__"] = "d/" + "x" * 140  # longer than 100 bytes: PAX too
    if kind == "raw":
        out[8]["big"] = rng.randbytes(140_000)  # spans two Raw blocks
    return out


def _take_apart(blob: bytes, info: ShardInfo) -> ShardBase:
    r = ShardReader(MemSource(blob))
    lay = r.layout
    frames = [blob[o : o + s] for o, s in zip(lay.c_offsets, lay.c_sizes)]
    contents = [r.frame(i) for i in range(lay.frames)]
    raw = [raw_blocks(f, "base") is not None for f in frames]
    return ShardBase(blob, info, frames, contents, raw, [header_positions(c) for c in contents], r.index,
                     list(zip(lay.c_sizes, lay.d_sizes)))


def build_corpus() -> Corpus:
    """Real shards written by ``ShardWriter`` (plain and encrypted) and a small manifest history."""
    with tempfile.TemporaryDirectory(prefix="exashard-fuzz-") as tmp:
        shards = {}
        for kind, level in (("zstd", 3), ("raw", None), ("mixed", 3)):
            root = os.path.join(tmp, kind)
            with ShardWriter(root, encrypt=False, frame_size=4096, level=level, name=kind) as w:
                for s in _samples(kind):
                    w.write(s)
            (info,) = w.shards
            with open(os.path.join(root, info.path), "rb") as f:
                shards[kind] = _take_apart(f.read(), info)
        kr = LocalKeyring.create(os.path.join(tmp, "keyring.json"))
        root = os.path.join(tmp, "enc")
        with ShardWriter(root, keyring=kr, frame_size=4096, segment_size=4096, name="enc") as w:
            for s in _samples("zstd")[:8]:
                w.write(s)
        (enc_info,) = w.shards
        m = Manifest(root)
        dataset_id = m.read().dataset_id
        assert dataset_id
        data_key = ShardKeys(m.fs, m.root, dataset_id, kr).data_key(enc_info)
        with open(os.path.join(root, enc_info.path), "rb") as f:
            encrypted = f.read()
    tar = b"".join(
        member_header(name, len(data)) + data + bytes(padding(len(data)))
        for name, data in (("a.txt", b"hello"), ("ключ.txt", b"x" * 700), ("d/" + "y" * 120 + ".bin", bytes(1024)),
                           ("b.json", b"{}"))
    ) + END_OF_ARCHIVE
    return Corpus(shards, encrypted, enc_info, data_key, dataset_id, _manifest_files(), tar, header_positions(tar))


# files the regression examples name (pages are named by hashes: drawn specs pick files by position)
MANIFEST_FILES = sorted([
    "manifest/_dataset.json", "manifest/_last_checkpoint.json", checkpoint_name(3), checkpoint_name(6),
    *(commit_name(v) for v in range(1, 8)),
])


def _manifest_files() -> dict[str, bytes]:
    """Seven commits of a small dataset: checkpoint 3 holds its rows, checkpoint 6 is paged."""
    from exashard.shards import manifest as manifest_module

    fs = fsspec.filesystem("memory")
    root = f"memory://fuzz-base-{os.urandom(8).hex()}"
    m = Manifest(root, checkpoint_interval=3, clock=lambda: "2024-01-01T00:00:00Z")
    page_rows = getattr(manifest_module, "PAGE_ROWS", None)
    manifest_module.PAGE_ROWS = 5  # pages after 5 shards, not 2,000: checkpoint 6 (7 shards) has two
    try:
        for v in range(7):
            rows = [ShardInfo(id=f"p-{v}-{j}", path=f"shards/p-{v}-{j}.tar.zst", samples=3 + j, bytes=1000 + v,
                              tar_bytes=4096, frames=1, checksum="sha256:" + "ab" * 32, index_offset=900,
                              index_size=100, created="2024-01-01T00:00:00Z", extra={"privacy": {"stats": {"x": 1}}})
                    for j in range(2)]
            m.commit(add=rows, remove=[f"p-{v - 1}-0"] if v else [], meta={"task": v})
    finally:
        manifest_module.PAGE_ROWS = page_rows
    out = {}
    for path in fs.find(fs._strip_protocol(root)):
        rel = path.split(fs._strip_protocol(root) + "/", 1)[1]
        out[rel] = fs.cat_file(path)
    fs.rm(fs._strip_protocol(root), recursive=True)
    assert set(MANIFEST_FILES) <= set(out), sorted(out)
    return out


# -- the property ----------------------------------------------------------------------


class Hang(BaseException):
    """A case ran past the hard limit (not an ``Exception``: code under test cannot swallow it)."""


class FuzzFailure(AssertionError):
    pass


@dataclass(slots=True)
class Outcome:
    seconds: float
    peak: int  # bytes, tracemalloc
    error: str | None = None  # the ExashardError subclass raised, if any


def _alarm(_sig: int, _frame: Any) -> None:
    raise Hang


@contextmanager
def hard_limit(seconds: float) -> Iterator[None]:
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def checked(fn: Callable[[], Any], n_bytes: int, what: str = "case", stage: list[str] | None = None) -> Outcome:
    """Run ``fn`` under the property; raise ``FuzzFailure`` (naming ``what``) if it breaks.

    ``stage``, if given, is a one-item list ``fn`` updates as it goes; an error's outcome
    names the stage it stopped at.
    """
    own = not tracemalloc.is_tracing()
    if own:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    err = None
    t0 = time.perf_counter()
    try:
        with hard_limit(HARD_LIMIT_S):
            fn()
    except ExashardError as e:
        err = type(e).__name__ + (f" at {stage[0]}" if stage else "")
    except Hang:
        raise FuzzFailure(f"{what}: no result after {HARD_LIMIT_S} s (endless loop?)") from None
    except BaseException as e:  # noqa: BLE001 - anything else escaping is the bug being hunted
        raise FuzzFailure(f"{what}: {type(e).__name__} escaped: {e}") from e
    finally:
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] - base
        if own:
            tracemalloc.stop()
    limit = MEM_BASE + MEM_PER_BYTE * n_bytes
    if peak > limit:
        raise FuzzFailure(f"{what}: peak allocation {peak} bytes for {n_bytes} bytes of input (limit {limit})")
    return Outcome(elapsed, peak, err)


# -- targets ---------------------------------------------------------------------------


def read_everything(r: ShardReader, stage: list[str], checksum: str | None = None, samples: int | None = None) -> None:
    """Everything a user can do with an open reader: iterate, random access, by key, verify.

    ``stage[0]`` says how far it got (reported with the error that stopped it).
    """
    n = len(r)
    stage[0] = "iterate"
    got = sum(1 for _ in r)
    assert got <= n, (got, n)
    stage[0] = "random access"
    for i in range(n):
        r[i]
    if n:
        r.get(r.keys()[-1])
        list(r.iter_samples(n // 2))
    stage[0] = "frames"
    pool = _BufferPool()
    for f in range(r.layout.frames):
        whole = _outcome(lambda f=f: r.frame(f))
        # decompressed into a pooled buffer (Arrow batches' path): the same bytes or the same refusal
        pooled = _outcome(lambda f=f: _pooled_frame(r, f, pool))
        assert type(whole) is type(pooled) and (isinstance(whole, IntegrityError) or whole == pooled), (f, whole, pooled)
        if isinstance(whole, IntegrityError):
            assert not pool._views, "a refused frame kept a pool buffer"
            raise whole
    stage[0] = "verify"
    r.verify(samples=samples)
    if checksum is not None:
        stage[0] = "verify checksum"
        r.verify(checksum=checksum)


def _outcome(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except IntegrityError as e:
        return e


def _pooled_frame(r: ShardReader, f: int, pool: _BufferPool) -> bytes:
    """Frame ``f`` loaded as Arrow batches load it (into pool buffers), copied out; its buffer retired."""
    content = r._load(f, pool, pooled=True)
    buf = content[1] if isinstance(content, tuple) else content
    try:
        return _content_bytes(content) if isinstance(content, tuple) else bytes(content)
    finally:
        if isinstance(buf, memoryview):
            pool.retire(buf)


def reader_case(corpus: Corpus, spec: dict[str, Any]) -> Outcome:
    """Target 1: ``ShardReader`` over a mutated plaintext shard."""
    base = corpus.shards[spec["base"]]
    blob, row = build_shard(base, spec)

    stage = ["open"]

    def run() -> None:
        src = MemSource(blob, read_into=spec["read_into"])
        kw = {} if row is None else {"index_offset": row[0], "index_size": row[1]}
        with ShardReader(src, zero_copy=spec["zero_copy"], **kw) as r:
            read_everything(r, stage, base.info.checksum, base.info.samples)

    return checked(run, len(blob), f"reader {spec!r}", stage)


def random_shard_case(data: bytes, spec: dict[str, Any]) -> Outcome:
    """Target 1 on arbitrary bytes (with or without a manifest row)."""

    stage = ["open"]

    def run() -> None:
        kw = {}
        if spec.get("row") is not None:
            off = spec["row"] % (len(data) + 1)
            kw = {"index_offset": off, "index_size": len(data) - off}
        with ShardReader(MemSource(data, read_into=spec.get("read_into", True)), **kw) as r:
            read_everything(r, stage)

    return checked(run, len(data), f"reader on {len(data)} random bytes {spec!r}", stage)


def index_case(corpus: Corpus, spec: dict[str, Any]) -> Outcome:
    """Target 2: the index frame parser, ``check_index`` and the seek table decoder, called directly."""
    base = corpus.shards[spec["base"]]
    blob, _ = build_shard(base, spec)

    def run() -> None:
        table_len = seek_table_size(blob[-9:], "fuzz")
        table = blob[-table_len:] if 0 < table_len <= len(blob) else blob
        lay = decode_seek_table(table, len(blob), "fuzz")
        frame = blob[lay.index_offset : lay.index_offset + lay.index_size]
        ix = parse_index_frame(frame, "fuzz")
        touch_index(ix)
        check_index(ix, lay, "fuzz")

    return checked(run, len(blob), f"index {spec!r}")


def touch_index(ix: SampleIndex) -> None:
    n = len(ix)
    ix.keys()
    for i in range(n):
        ix.key(i)
        for m in ix.members(i):
            ix.exts[ix.member_ext[m]]


def random_index_case(data: bytes, which: int) -> Outcome:
    """Target 2 on arbitrary bytes: as an index payload, an index frame, a seek table, a zstd frame."""

    def run() -> None:
        if which == 0:
            touch_index(decode_index(data, "fuzz"))
        elif which == 1:
            touch_index(parse_index_frame(data, "fuzz"))
        elif which == 2:
            seek_table_size(data[-9:], "fuzz")
            decode_seek_table(data, len(data) + (len(data) % 7), "fuzz")
        else:
            zframe_slices(data)

    return checked(run, len(data), f"index parser {which} on {data[:64]!r}...")


def zframe_slices(frame: bytes) -> None:
    blocks = raw_blocks(frame, "fuzz")
    if blocks is None:
        return
    c = blocks.content_size
    for off, size in ((0, c), (c // 3, c - c // 3), (c, 0), (max(0, c - 1), min(c, 1))):
        got = blocks.slice(frame, off, size)
        assert len(got) == size, (off, size, len(got))


def zframe_case(corpus: Corpus, spec: dict[str, Any]) -> Outcome:
    """Target 2: Raw-block zstd frames (``raw_blocks`` and slicing) with mutated bytes."""
    base = corpus.shards["raw"]
    frame = base.frames[spec["frame"] % len(base.frames)]
    frame = apply_byte_ops(frame, spec["ops"])
    return checked(lambda: zframe_slices(frame), len(frame), f"zframe {spec!r}")


def encrypted_case(corpus: Corpus, spec: dict[str, Any]) -> Outcome:
    """Target 3: ``DecryptingSource`` and a reader on top of it.

    ``mode`` "stored": byte mutations of the real encrypted shard (authentication must
    catch them); "plain": a mutated plaintext shard sealed with the right key, so the
    parser behind the authenticated source (which skips the XXH3 frame check) sees it.
    """
    if spec["mode"] == "stored":
        data = apply_byte_ops(corpus.encrypted, spec["ops"])
        row = (corpus.enc_info.index_offset, corpus.enc_info.index_size) if spec["row"] else None
    else:
        plain, row = build_shard(corpus.shards[spec["base"]], spec)
        data = seal(plain, corpus.data_key, corpus.dataset_id, corpus.enc_info.id)
        data = apply_byte_ops(data, spec.get("after", []))

    stage = ["decrypt"]

    def run() -> None:
        src = DecryptingSource(MemSource(data, read_into=spec["read_into"]), corpus.data_key,
                               dataset_id=corpus.dataset_id, shard_id=corpus.enc_info.id)
        for off, n in ((0, 64), (max(0, src.size - 100), 200), (src.size // 3, 9000), (src.size, 10)):
            got = src.read(off, n)  # ranges straddling segments, the end, past the end
            assert len(got) == max(0, min(n, src.size - off)), (off, n, len(got))
        kw = {} if row is None else {"index_offset": row[0], "index_size": row[1]}
        stage[0] = "open"
        with ShardReader(src, zero_copy=spec["zero_copy"], **kw) as r:
            read_everything(r, stage)

    return checked(run, len(data), f"encrypted {spec!r}", stage)


def seal(plain: bytes, key: bytes, dataset_id: str, shard_id: str, segment_size: int = 4096) -> bytes:
    out = _Buf()
    w = EncryptingWriter(out, key, dataset_id=dataset_id, shard_id=shard_id, segment_size=segment_size)
    w.write(plain)
    w.close()
    return b"".join(out.parts)


@dataclass(slots=True)
class _Buf:
    parts: list[bytes] = field(default_factory=list)

    def write(self, b: bytes | memoryview) -> None:
        self.parts.append(bytes(b))


def draw_encrypted_spec(d: Draw, bases: list[str]) -> dict[str, Any]:
    if d.flag():
        ops = [draw_byte_op(d) for _ in range(d.int(1, 3))]
        if d.int(0, 3) == 0:  # the header: segment size, version, reserved bytes
            ops.append(("int", d.int(0, HEADER_SIZE - 1), d.pick((1, 2, 4)), draw_value(d, 32)))
        return {"mode": "stored", "ops": ops, "row": d.flag(), "zero_copy": d.flag(), "read_into": d.flag()}
    spec = draw_shard_spec(d, bases)
    spec["mode"] = "plain"
    return spec


def tar_case(corpus: Corpus, spec: dict[str, Any]) -> Outcome:
    """Target 5: the tar member iterator over a mutated (or arbitrary) tar stream."""
    data = spec.get("data", corpus.tar)
    for op in spec["ops"]:
        data = apply_tar_op(data, corpus.tar_headers, op) if op[0] in ("pax", "hdr") else apply_byte_op(data, op)

    def run() -> None:
        end = spec.get("base", 0) + len(data)
        for m in iter_members(data, spec.get("base", 0)):
            assert m.size >= 0 and m.offset + m.size <= end, m
        got = 0  # the same bytes as an input tar, streamed
        for _name, blob in iter_file_members(io.BytesIO(data)):
            got += len(blob)
            assert got <= len(data)

    return checked(run, len(data), f"tar {spec!r}")


def draw_tar_spec(d: Draw) -> dict[str, Any]:
    ops = [draw_tar_op(d) if d.int(0, 2) else draw_byte_op(d) for _ in range(d.int(1, 4))]
    return {"ops": ops, "base": d.pick((0, 512, 1 << 40))}


# -- manifest ----------------------------------------------------------------------------
def draw_manifest_spec(d: Draw) -> dict[str, Any]:
    muts = []
    for _ in range(d.int(1, 3)):
        ops = []
        for _ in range(d.int(1, 3)):
            k = d.int(0, 9)
            if k == 0:
                ops.append(("raw", d.int(0, 64)))
            elif k <= 2:
                ops.append(("bytes", draw_byte_op(d)))
            else:
                ops.append((("del", "dup")[k % 2] if k <= 4 else "set", d.int(0, 4096), d.int(0, 64)))
        muts.append((d.int(0, 63), ops))  # a file by its position among the dataset's files
    return {"files": muts, "version": d.pick((None, None, 0, 1, 2, 3, 4, 5, 6, 7, 8)), "drop": d.int(0, 20)}


def manifest_case(corpus: Corpus, spec: dict[str, Any]) -> Outcome:
    """Target 4: ``Manifest.read`` and ``read_index`` (the loader's view) over mutated commits,
    checkpoints, checkpoint pages and hints (memory://). ``spec["files"]`` names a file by
    its path or by its position in the sorted file list."""
    files = dict(corpus.manifest_files)
    for rel, ops in spec["files"]:
        rel = rel if isinstance(rel, str) else sorted(files)[rel % len(files)]
        files[rel] = mutate_json(files[rel], ops)
    names = sorted(files)
    if spec.get("drop", 0) < len(names) and spec.get("drop", 0) % 3 == 0:
        files.pop(names[spec["drop"]])
    fs = fsspec.filesystem("memory")
    root = f"/fuzz-{os.urandom(8).hex()}"
    for rel, data in files.items():
        fs.pipe_file(f"{root}/{rel}", data)
    stage = ["read"]

    def run() -> None:
        m = Manifest(f"memory://{root}")
        snap = m.read(spec["version"])
        snap.samples, snap.bytes  # noqa: B018 - sums over the rows' fields
        for info in snap.shards.values():
            info.to_dict()
        m.latest_version()
        m.dataset_id()
        read_index = getattr(Manifest, "read_index", None)
        if read_index is not None:  # the loader's view: ids and counts, rows (pages) on demand
            stage[0] = "read_index"
            view = read_index(Manifest(f"memory://{root}"), spec["version"])
            sum(view.samples)
            for i in range(len(view)):
                view.row(i).to_dict()

    try:
        return checked(run, sum(len(v) for v in files.values()), f"manifest {spec!r}", stage)
    finally:
        fs.rm(root, recursive=True)
