"""Slicing samples out of one loaded frame: the loader's frame context and what reads it.

A frame context is ``(keys, sample ends, exts, member exts, member offsets, member sizes,
frame base, buffer, cut)``: the shard index's arrays, where the frame starts in the tar
stream, and its loaded bytes (``cut`` None: slice the buffer; else a Raw-block frame's
``RawBlocks.slice``).
"""

from __future__ import annotations

from array import array
from typing import Any

from .reader import Sample, ShardReader, _BufferPool


def uniform(ends: array, mext: array, i: int, n: int) -> tuple[int, int, int] | None:
    """(first member, member stop, members per sample) of samples ``i .. i+n-1`` (n >= 1) if
    every one of them has the same members in the same order, else None (array
    comparisons: no Python loop over the samples)."""
    m0, m1 = (ends[i - 1] if i else 0), ends[i + n - 1]
    e = ends[i] - m0
    if m1 - m0 != e * n:
        return None
    if e and (mext[m0:m1] != mext[m0 : m0 + e] * n or ends[i : i + n] != array(ends.typecode, range(m0 + e, m1 + 1, e))):
        return None
    return m0, m1, e


def columns(ctx: tuple[Any, ...], i: int, n: int, zero_copy: bool) -> dict[str, list[Any]] | None:
    """Samples ``i .. i+n-1`` of one decoded frame as columns, or None unless every one of
    them has the same members in the same order (then the caller goes sample by sample)."""
    keys, ends, exts, mext, moff, msz, base, buf, cut = ctx
    shape = uniform(ends, mext, i, n)
    if shape is None:
        return None
    m0, m1, e = shape
    cols: dict[str, list[Any]] = {"__key__": keys[i : i + n]}
    for q in range(e):
        offs, sizes = moff[m0 + q : m1 : e], msz[m0 + q : m1 : e]
        if cut is None:
            vals = [buf[o - base : o - base + z] for o, z in zip(offs, sizes)]
        else:
            vals = [cut(buf, o - base, z) for o, z in zip(offs, sizes)]
            if not zero_copy:
                vals = [v if type(v) is bytes else bytes(v) for v in vals]
        cols[exts[mext[m0 + q]]] = vals
    return cols


def context(r: ShardReader, keys: Any, content: Any, frame: int, zero_copy: bool) -> tuple[Any, ...]:
    """(keys, sample ends, exts, member exts, offsets, sizes, frame base, buffer, cut): what
    slicing samples out of one loaded frame needs (``cut`` None: slice ``buffer`` directly)."""
    if not isinstance(content, tuple):  # bytes, or a pool buffer it was decompressed into (a memoryview)
        buf: Any = memoryview(content) if zero_copy else content
        cut = None
    else:
        blocks, buf = content
        cut = blocks.slice
    ix = r.index
    return (keys, ix.sample_members, ix.exts, ix.member_ext, ix.member_offset, ix.member_size,
            r.layout.d_offsets[frame], buf, cut)


def arrow_frame(r: ShardReader, u: Any, pool: _BufferPool) -> Any:
    """Load unit ``u``'s frame and build its samples' Table (``arrow.frame_table``),
    on a loading thread; the batch holds copies, so the frame's buffer is recycled at once."""
    from .arrow import frame_table, shard_keys

    content = r._load(u.frame, pool, pooled=True)
    ctx = context(r, shard_keys(r), content, u.frame, False)
    try:
        return frame_table(ctx, u.start, u.stop)
    finally:
        del ctx
        buf = content[1] if isinstance(content, tuple) else content
        if isinstance(buf, memoryview):  # the batch holds copies: the buffer is free again
            pool.retire(buf)


def retire(ctx: tuple[Any, ...] | None, pool: _BufferPool) -> None:
    """Done slicing a frame: a pooled read buffer (Raw-block frames) is recycled once no
    consumer view of it is left."""
    if ctx is not None and ctx[8] is not None and isinstance(ctx[7], memoryview):
        pool.retire(ctx[7])


def sample(ctx: tuple[Any, ...], i: int, zero_copy: bool) -> Sample:
    """Sample ``i`` of one decoded frame (``ShardDataset._samples``' in-order loop builds it inline)."""
    keys, ends, exts, mext, moff, msz, base, buf, cut = ctx
    d: Sample = {"__key__": keys[i]}
    for m in range(ends[i - 1] if i else 0, ends[i]):
        o = moff[m] - base
        if cut is None:
            d[exts[mext[m]]] = buf[o : o + msz[m]]
        else:
            v = cut(buf, o, msz[m])
            d[exts[mext[m]]] = v if zero_copy or type(v) is bytes else bytes(v)
    return d
