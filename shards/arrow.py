"""Arrow batches: ``ShardLoader(..., batch_format="arrow")`` yields ``pyarrow.Table``s.

A batch has a ``__key__`` string column and one ``binary`` column per field (the member
extension) that any of its samples has, null where a sample lacks it: the same fields and
values as the default dict batches, in the order they first appear in the frame.

Each decoded frame becomes a one-chunk Table, built in C on a loading thread: the keys
column is a slice of an Arrow view of the shard index's key blob (no ``str`` per key),
and each field column is gathered out of the frame by one ``take`` over an array whose
elements alternate between the members and the tar headers in between (no ``bytes`` per
member). Batches are slices of the frame tables, one chunk per frame a batch spans
(``combine_chunks()`` makes them contiguous); from DataLoader workers, each batch is
copied out compact first (``compact``). The batch owns its memory (Arrow buffers):
nothing in it refers to the loader's recycled frame buffers, so it may be kept as long as
the caller likes.

Frames whose samples differ in their fields, and shuffled blocks, go through per-sample
rows instead; the result is the same (``tests/test_batching.py`` compares them).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import MissingDependencyError
from .frames import sample, uniform


def require() -> None:
    """Raise ``MissingDependencyError`` unless numpy (for building the gather offsets) imports."""
    try:
        import numpy  # noqa: F401
    except ImportError:
        raise MissingDependencyError("batch_format='arrow' needs numpy: pip install 'exashard[arrow]'") from None


def shard_keys(reader: Any) -> Any:
    """The shard's keys as an Arrow string array over its index's key blob (built once per reader)."""
    keys = reader._arrow_keys
    if keys is None:
        import numpy as np

        ix = reader.index
        n, blob = len(ix), ix.keys_blob
        wide = len(blob) >= 1 << 31
        offs = np.zeros(n + 1, np.int64 if wide else np.int32)
        offs[1:] = np.frombuffer(ix.key_ends, np.uint32)  # UTF-8 and the cuts were checked when parsed
        keys = pa.Array.from_buffers(pa.large_string() if wide else pa.string(), n, [None, pa.py_buffer(offs), pa.py_buffer(blob)])
        reader._arrow_keys = keys
    return keys


def frame_batch(ctx: tuple[Any, ...], i0: int, i1: int) -> Any:
    """Samples ``i0 .. i1-1`` (shard positions) of one decoded frame as a RecordBatch.

    ``ctx`` is the loader's frame context with the Arrow keys of ``shard_keys`` first."""
    import numpy as np

    keys, ends, exts, mext, moff, msz, base, buf, cut = ctx
    n = i1 - i0
    if n <= 0:
        return pa.RecordBatch.from_arrays([keys.slice(i0, 0)], names=["__key__"])
    shape = uniform(ends, mext, i0, n)
    if shape is None or len(buf) >= 1 << 31:
        return _rows_batch(ctx, i0, i1)
    m0, m1, e = shape
    k = m1 - m0
    names, cols = ["__key__"], [keys.slice(i0, n)]
    if not k:
        return pa.RecordBatch.from_arrays(cols, names=names)
    start = np.frombuffer(moff, np.uint64)[m0:m1].astype(np.int64) - base
    size = np.frombuffer(msz, np.uint64)[m0:m1].astype(np.int64)
    if cut is not None:  # a Raw-block frame: content offsets to stored offsets, block by block
        blocks = cut.__self__
        cs = np.asarray(blocks.content_starts, np.int64)
        b = np.searchsorted(cs, start, "right") - 1
        inner = start - cs[b]
        if not np.all(inner + size <= np.asarray(blocks.sizes, np.int64)[b]):
            return _rows_batch(ctx, i0, i1)  # a member straddles two blocks (over 128 KiB)
        start = np.asarray(blocks.stored_starts, np.int64)[b] + inner
    names += [exts[mext[m0 + q]] for q in range(e)]
    offs = np.zeros(2 * k + 1, np.int32)  # element 2j: the gap before member j; 2j+1: member j
    offs[1::2] = start
    offs[2::2] = start + size
    gapped = pa.Array.from_buffers(pa.binary(), 2 * k, [None, pa.py_buffer(offs), pa.py_buffer(buf)])
    cols += [gapped.take(np.arange(2 * q + 1, 2 * k, 2 * e)) for q in range(e)]
    return pa.RecordBatch.from_arrays(cols, names=names)


def frame_table(ctx: tuple[Any, ...], i0: int, i1: int) -> Any:
    """``frame_batch`` as a one-chunk Table, made on the loading thread. Table constructors
    release the GIL, and the iterating thread would then wait for a loading thread to hand it
    back (up to the 5 ms switch interval): batches are slices of this table (which keep it)."""
    return pa.Table.from_batches([frame_batch(ctx, i0, i1)])


def _rows_batch(ctx: tuple[Any, ...], i0: int, i1: int) -> Any:
    """``frame_batch`` for a frame whose samples differ in their fields: sample by sample."""
    rows = [sample(ctx, i, True) for i in range(i0, i1)]
    for row in rows:
        del row["__key__"]  # (an Arrow scalar here: the column comes from the key array)
    return _columns(ctx[0].slice(i0, i1 - i0), rows)


def _columns(keys: Any, rows: list[dict[str, Any]]) -> Any:
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    cols = [keys] + [pa.array([_bytes(r.get(x)) for r in rows], pa.binary()) for x in names]
    return pa.RecordBatch.from_arrays(cols, names=["__key__", *names])


def _bytes(v: Any) -> Any:
    return bytes(v) if isinstance(v, memoryview) else v


def samples_batch(samples: list[dict[str, Any]]) -> Any:
    """A RecordBatch of loader samples (``{"__key__": str, ext: bytes, ...}``)."""
    keys = pa.array([s["__key__"] for s in samples], pa.string())
    return _columns(keys, [{k: v for k, v in s.items() if k != "__key__"} for s in samples])


def join(pieces: list[tuple[bool, Any]]) -> Any:
    """One batch, a ``pyarrow.Table``, from its pieces in order: (True, Table slice of a
    ``frame_table``) or (False, sample). No copy: each piece is a chunk; a batch inside one
    frame is that frame's slice as it is (no Table made here). Pieces whose columns differ
    are aligned by name, with nulls where a piece lacks a field."""
    parts: list[Any] = []
    rows: list[dict[str, Any]] = []
    for is_batch, x in pieces:
        if is_batch:
            if rows:
                parts.append(pa.Table.from_batches([samples_batch(rows)]))
                rows = []
            parts.append(x)
        else:
            rows.append(x)
    if rows:
        parts.append(pa.Table.from_batches([samples_batch(rows)]))
    if len(parts) == 1:
        table = parts[0]
    elif all(p.schema == parts[0].schema for p in parts):
        table = pa.concat_tables(parts)
    else:
        table = pa.concat_tables(parts, promote_options="permissive")
    # a field no sample of this batch has (its frame's other samples have it) is left out,
    # as in dict batches; a present value is never null, so all-null means absent
    absent = [i for i, c in enumerate(table.columns) if i and c.null_count == len(c)]
    for i in reversed(absent):
        table = table.remove_column(i)
    return table


def compact(table: Any) -> Any:
    """``table`` with every column copied into one chunk of its own buffers: what a DataLoader
    worker sends. A batch sliced out of frame tables refers to their whole buffers, and
    pickling it carries all of them through the worker's pipe (measured: 1.9 MB for a batch
    of 64 one-KiB samples that holds 57 KB); the copy carries the batch's bytes only."""
    cols = [pa.concat_arrays(c.chunks) if c.num_chunks else pa.array([], c.type) for c in table.columns]
    return pa.Table.from_arrays(cols, schema=table.schema)


def payload_bytes(batch: Any) -> int:
    """Bytes of field values in a Table or RecordBatch (``__key__`` and other ``__`` columns left out)."""
    total = 0
    for name, col in zip(batch.schema.names, batch.columns):
        if name.startswith("__"):
            continue
        for chunk in getattr(col, "chunks", (col,)):
            if not len(chunk):
                continue
            if chunk.type == pa.binary():  # read off the offsets buffer (a null adds no bytes)
                offs = memoryview(chunk.buffers()[1]).cast("i")
                total += offs[chunk.offset + len(chunk)] - offs[chunk.offset]
            else:
                total += pc.sum(pc.binary_length(chunk)).as_py() or 0
    return total
