"""The training loader: ``ShardDataset`` (iterable, resumable) and ``ShardLoader`` (batches,
DataLoader workers, exact resume in the main process).

The order is ``order.EpochPlan``'s: a pure function of (seed, epoch, rank, world size,
manifest version). Reading runs ahead in background threads within a byte budget:
frames are read, decrypted and decompressed there, only in memory; the iterating
thread slices samples out of them. See DESIGN.md (Loader) and README (Python API).
"""

from __future__ import annotations

import os
import time
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import Any

from ..errors import ConfigError, NotFoundError, ShreddedError
from . import storage
from .cache import ShardCache
from .format import frame_ranges
from .frames import arrow_frame, columns, context, retire, sample
from .manifest import Manifest, ShardIndex, open_manifest
from .ops import open_shard
from .order import Block, EpochPlan
from .reader import Sample, ShardReader, _BufferPool, _Loaders

try:  # an IterableDataset with torch, a plain iterable without it
    from torch.utils.data import Dataset as _MapBase
    from torch.utils.data import IterableDataset as _IterBase
    from torch.utils.data import get_worker_info as _worker_info
except ImportError:  # pragma: no cover - exercised by the no-torch test in a subprocess
    _IterBase = _MapBase = object  # type: ignore[assignment,misc]

    def _worker_info() -> Any:  # type: ignore[misc]
        return None


STATE_FORMAT = "exashard-loader-state"


def _world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """(rank, world size): as given, else torch.distributed when initialised, else
    ``RANK``/``WORLD_SIZE`` from the environment, else (0, 1)."""
    if rank is None and world_size is None:
        try:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                return dist.get_rank(), dist.get_world_size()
        except ImportError:
            pass
        try:
            rank, world_size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
        except ValueError:
            raise ConfigError(f"RANK/WORLD_SIZE must be integers, got {os.environ.get('RANK')!r}/{os.environ.get('WORLD_SIZE')!r}") from None
    rank = 0 if rank is None else rank
    world_size = 1 if world_size is None else world_size
    if not isinstance(rank, int) or not isinstance(world_size, int) or world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"need 0 <= rank < world_size, got rank={rank!r} world_size={world_size!r}")
    return rank, world_size


class ShardDataset(_IterBase):  # type: ignore[misc,valid-type]
    """Samples (``{"__key__": str, ext: bytes, ...}``) of one pinned manifest version.

    ``shuffle``: shards permuted, then frames permuted inside windows of ``window``
    shards and samples inside blocks of ``block`` frames (``set_epoch`` changes it).
    ``batch_size`` is the granularity at which DataLoader workers interleave (use the
    DataLoader's batch size, or ``ShardLoader``, which sets it). ``prefetch``: bytes of
    decoded frames read ahead by ``threads`` threads. ``cache_dir``: a local copy of
    stored (still encrypted) shard bytes. ``on_shredded``: ``"skip"`` (warn and count)
    or ``"raise"`` for a shard whose key a deletion request shredded. Remote reads are
    retried through outages for ``retry_seconds``, then raise ``StorageError``; the
    resume state stays exact, so a job restarted later continues where it stopped. Open
    shards are checked every ``revalidate`` seconds to still exist (key and file), so
    a deletion request takes effect even on a shard this job is in the middle of.
    """

    def __init__(
        self,
        dataset: str,
        *,
        keyring: Any = None,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        window: int = 4,
        block: int = 8,
        rank: int | None = None,
        world_size: int | None = None,
        batch_size: int = 1,
        zero_copy: bool = False,
        prefetch: int = 64 << 20,
        threads: int = 2,
        version: int | None = None,
        storage_options: dict[str, Any] | None = None,
        cache_dir: str | None = None,
        cache_limit: int | None = None,
        on_shredded: str = "skip",
        retry_seconds: float = 60.0,
        revalidate: float = 10.0,
    ) -> None:
        for name, value, low in (("window", window, 1), ("block", block, 1), ("batch_size", batch_size, 1),
                                 ("prefetch", prefetch, 0), ("threads", threads, 1), ("epoch", epoch, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"ShardDataset: {name} must be an int >= {low}, got {value!r}")
        if not isinstance(seed, int):
            raise ConfigError(f"ShardDataset: seed must be an int, got {seed!r}")
        if on_shredded not in ("skip", "raise"):
            raise ConfigError(f"ShardDataset: on_shredded must be 'skip' or 'raise', got {on_shredded!r}")
        self.rank, self.world_size = _world(rank, world_size)
        self.shuffle, self.seed, self.epoch, self.window, self.block = bool(shuffle), seed, epoch, window, block
        self.batch_size, self.zero_copy, self.prefetch, self.threads = batch_size, zero_copy, prefetch, threads
        self.on_shredded = on_shredded
        self.retry_seconds = float(retry_seconds)
        self.revalidate = float(revalidate)
        self._keyring = keyring
        self._url, self._storage_options = dataset, storage_options
        self._manifest = open_manifest(dataset, storage_options)
        self._pid = os.getpid()
        index = self._manifest.read_index(version)  # ids and counts; rows are read when a shard opens
        self.where = self._manifest.where
        self.version, self.dataset_id = index.version, index.dataset_id
        self.rows = _Rows(index)
        self._counts = list(index.samples)
        self._cache = ShardCache(cache_dir, cache_limit) if cache_dir is not None else None
        self._delivered = 0
        self.skipped_shards: set[str] = set()
        self.skipped_samples = 0
        self._keys: Any = None
        self._map_readers: dict[int, ShardReader] = {}
        self._starts: list[int] | None = None

    # -- pickling (DataLoader workers): no open files, executors or unwrapped keys ---------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_keys=None, _map_readers={})
        return state

    # -- the epoch and its state ---------------------------------------------------------

    def plan(self, epoch: int | None = None) -> EpochPlan:
        return EpochPlan(
            self._counts, seed=self.seed, epoch=self.epoch if epoch is None else epoch, version=self.version,
            rank=self.rank, world=self.world_size, shuffle=self.shuffle,
            window=self.window if self.shuffle else 1, block=self.block,
        )

    def __len__(self) -> int:
        """Samples this rank yields per epoch (the same on every rank)."""
        return sum(self._counts) // self.world_size

    @property
    def total(self) -> int:
        """Samples in the pinned version."""
        return sum(self._counts)

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` (its own order); the current epoch again keeps a resumed position."""
        if not isinstance(epoch, int) or epoch < 0:
            raise ConfigError(f"epoch must be an int >= 0, got {epoch!r}")
        if epoch != self.epoch:
            self.epoch, self._delivered = epoch, 0

    def state_dict(self) -> dict[str, Any]:
        """Where this rank stands: samples of the epoch delivered so far, and what the order depends on."""
        return {
            "format": STATE_FORMAT, "dataset_id": self.dataset_id, "version": self.version, "seed": self.seed,
            "shuffle": self.shuffle, "window": self.window, "block": self.block, "rank": self.rank,
            "world_size": self.world_size, "epoch": self.epoch, "delivered": self._delivered,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume: the next iteration starts right after the last delivered sample."""
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ConfigError("load_state_dict: not an exashard loader state (missing format marker)")
        mine = self.state_dict()
        for k in ("dataset_id", "version", "seed", "shuffle", "window", "block", "rank", "world_size"):
            if state.get(k) != mine[k]:
                raise ConfigError(
                    f"load_state_dict: state has {k}={state.get(k)!r} but this dataset has {k}={mine[k]!r}; "
                    "resume needs the same dataset version, seed, shuffle, window, block, rank and world size"
                )
        epoch, delivered = state.get("epoch"), state.get("delivered")
        if not isinstance(epoch, int) or epoch < 0 or not isinstance(delivered, int) or not 0 <= delivered <= len(self):
            raise ConfigError(f"load_state_dict: bad epoch/delivered {epoch!r}/{delivered!r} (this rank has {len(self)} samples)")
        self.epoch, self._delivered = epoch, delivered

    def _start(self) -> int:
        if self._delivered >= len(self):  # a finished epoch iterated again starts over
            self._delivered = 0
        return self._delivered

    # -- iteration -----------------------------------------------------------------------

    def __iter__(self) -> Iterator[Sample]:
        info = _worker_info()
        if info is None:  # this process delivers: it keeps the resume position
            yield from self._walk(self._start(), 1, 0, 1, track=True)
            return
        # inside a plain DataLoader worker: interleaved batches; resume needs ShardLoader
        start = self._delivered if self._delivered < len(self) else 0
        for _, s in self._walk(start, info.num_workers, info.id, self.batch_size):
            if s is not None:
                yield s

    def _storage(self) -> Manifest:
        """The dataset's filesystem, made anew in a forked DataLoader worker (s3fs and
        other async filesystems are not fork-safe)."""
        if self._pid != os.getpid():
            self._manifest = Manifest(self._url, storage_options=self._storage_options)
            self._pid, self._keys, self._map_readers = os.getpid(), None, {}
            self.rows.index.m = self._manifest
        return self._manifest

    def _shard_keys(self) -> Any:
        if self._keys is None:
            from ..privacy.access import ShardKeys

            m = self._storage()
            self._keys = ShardKeys(m.fs, m.root, self.dataset_id, self._keyring)
        return self._keys

    def _open(self, row: Any, **kwargs: Any) -> ShardReader | None:
        """A reader for ``row``; None (warned and counted) if a deletion request removed it:
        its key shredded, or its file deleted."""
        m = self._storage()
        src = None
        try:
            if self._cache is not None:
                src = self._cache.source(m.fs, m.root, self.dataset_id or "", row)
            elif not storage.is_local(m.fs):
                src = storage.open_source(m.fs, storage.join(m.root, row.path), size=row.bytes, retry=self.retry_seconds)
            return open_shard(m, row, dataset_id=self.dataset_id, keys=self._shard_keys() if row.encryption else None,
                              source=src, **kwargs)
        except (ShreddedError, NotFoundError) as e:
            if src is not None:
                src.close()
            self._drop(row, e)
            return None

    def _walk(
        self, start: int, workers: int, worker: int, batch: int, track: bool = False, runs: bool = False,
        arrow: bool = False,
    ) -> Iterator[Any]:
        """(rank position, sample) from rank position ``start``; the sample is None where
        its shard was shredded (skipped). ``track``: samples only, skipped ones left out,
        and the resume position kept up to date. ``runs``: (rank position, count, columns,
        sample) items instead, for the batch builder (see ``_runs``); ``arrow``: their
        columns as Table slices."""
        plan = self.plan()
        if start >= plan.per_rank:
            return
        ex = _Loaders(self.threads, self.zero_copy or arrow, "exashard-load")  # arrow: no copying on this thread
        pool = _BufferPool()
        readers: dict[int, tuple[int, ShardReader | None]] = {}  # slot -> (window, reader)
        pending: deque[tuple[Block, list[tuple[int, int]], Any, dict[int, Future[Any]], int]] = deque()
        blocks = self._blocks(plan, start, workers, worker, batch, readers)
        checked: dict[int, float] = {}  # slot -> when it was last found still present
        in_flight = 0
        try:
            while True:
                while not pending or in_flight < self.prefetch:
                    nxt = next(blocks, None)
                    if nxt is None:
                        break
                    blk, pos = nxt
                    locs = None if blk.perm is None and len(blk.units) == 1 else blk.locate()
                    futs: dict[int, Future[Any]] = {}
                    size = 0
                    for j, _ in pos if locs is not None else pos[:1]:
                        k = locs[j][0] if locs is not None else 0
                        u = blk.units[k]
                        if k in futs or u.frame < 0:
                            continue
                        r = readers[u.slot][1]
                        if r is None:  # removed by a deletion request since the window opened
                            continue
                        if arrow and locs is None:  # the frame's Table, built on the loading thread
                            futs[k] = ex.submit(r.layout, u.frame, arrow_frame, r, u, pool)
                        else:
                            futs[k] = ex.submit(r.layout, u.frame, r._load, u.frame, pool)
                        size += r.layout.d_sizes[u.frame]
                    pending.append((blk, pos, locs, futs, size))
                    in_flight += size
                if not pending:
                    return
                blk, pos, locs, futs, size = pending.popleft()
                self._revalidate(plan, blk, readers, checked)
                if runs and locs is None:
                    yield from self._runs(blk, pos, futs, readers, pool, plan.order, arrow)
                else:
                    items = self._samples(blk, pos, locs, futs, readers, pool, track, plan.order)
                    yield from ((p, 1, None, d) for p, d in items) if runs else items
                in_flight -= size
                del futs
                done_window = plan.window_at(blk.gstart + len(blk) - 1) if len(blk) else -1
                for slot in [s for s, (w, _) in readers.items() if w < done_window]:
                    r = readers.pop(slot)[1]
                    if r is not None:
                        r.close()
        finally:
            for *_, futs, _ in pending:
                for f in futs.values():
                    f.cancel()
            ex.shutdown(wait=True)
            for _, r in readers.values():
                if r is not None:
                    r.close()

    def _drop(self, row: Any, why: Any) -> None:
        if self.on_shredded == "raise":
            raise why if isinstance(why, BaseException) else ShreddedError(f"{self.where}: shard {row.id!r} {why}")
        if row.id not in self.skipped_shards:
            self.skipped_shards.add(row.id)
            warnings.warn(f"{self.where}: skipping shard {row.id!r} ({row.samples} samples): {why}", stacklevel=4)

    def _revalidate(
        self, plan: EpochPlan, blk: Block, readers: dict[int, tuple[int, ShardReader | None]], checked: dict[int, float],
    ) -> None:
        """Before serving a block: is each open shard still there (key in the key store, file
        in place)? A shard a deletion request removed while it was open is dropped at once,
        so deleted data is not served from keys or descriptors opened before the deletion.
        Checked at most every ``revalidate`` seconds per shard."""
        now = time.monotonic()
        m = self._storage()
        for slot in {u.slot for u in blk.units}:
            w, r = readers.get(slot, (0, None))
            if r is None or now - checked.get(slot, -1e18) < self.revalidate:
                continue
            checked[slot] = now
            row = self.rows[plan.order[slot]]
            path = storage.join(m.root, f"keys/{row.id}.json" if row.encryption else row.path)
            if storage.retrying(lambda path=path: m.fs.exists(path), storage.display(m.fs, path), self.retry_seconds):
                continue
            readers[slot] = (w, None)
            r.close()
            self._drop(row, "removed by a deletion request while this job read it")

    def _blocks(
        self, plan: EpochPlan, start: int, workers: int, worker: int, batch: int,
        readers: dict[int, tuple[int, ShardReader | None]],
    ) -> Iterator[tuple[Block, list[tuple[int, int]]]]:
        """The blocks holding this reader's positions, opening each window's shards first."""
        first = plan.kept_to_global(plan.rank * plan.per_rank + start)
        for w in range(plan.window_at(first), plan.windows()):
            slots = plan.window_slots(w)
            if plan.starts[slots.start] >= plan.hi:
                return
            frames: dict[int, list[tuple[int, int]] | None] = {}
            for slot in slots:
                if plan.starts[slot + 1] <= first and not self.shuffle:
                    continue  # in order, a shard before the start is never needed
                r = self._open(self.rows[plan.order[slot]], zero_copy=self.zero_copy)
                readers[slot] = (w, r)
                frames[slot] = None if r is None else frame_ranges(r.index.sample_frame, r.layout.frames)
            for blk in plan.blocks(w, frames):
                if blk.gstart + len(blk) <= first:
                    continue
                pos = plan.positions(blk, start, workers, worker, batch)
                if pos:
                    yield blk, pos

    def _samples(
        self, blk: Block, pos: list[tuple[int, int]], locs: list[tuple[int, int]] | None, futs: dict[int, Future[Any]],
        readers: dict[int, tuple[int, ShardReader | None]], pool: _BufferPool, track: bool, plan_order: list[int],
    ) -> Iterator[Any]:
        """The block's samples at ``pos`` ((block position, rank position) pairs); ``locs``
        maps block positions to (unit, sample), None for one unit in order."""
        ctx: dict[int, tuple[Any, ...] | None] = {}
        zero_copy = self.zero_copy
        first = blk.units[0].start
        try:
            if locs is None and track and pos and pos[-1][0] - pos[0][0] == len(pos) - 1:
                # the plain in-process case (one frame, in order, every position ours). This loop
                # repeats frames.sample without its call and the general loop's per-sample tuple
                # unpacking and context lookup: ~12% less time per small sample, measured; keep
                # the two in step
                c = ctx[0] = self._frame_ctx(blk, 0, futs, readers, plan_order)
                j, p = pos[0]
                if c is None:
                    self.skipped_samples += len(pos)
                    self._delivered = p + len(pos)
                    return
                keys, ends, exts, mext, moff, msz, base, buf, cut = c
                i = first + j
                stop = i + len(pos)
                m = ends[i - 1] if i else 0
                while i < stop:
                    d: Sample = {"__key__": keys[i]}
                    end = ends[i]
                    while m < end:
                        o = moff[m] - base
                        if cut is None:
                            d[exts[mext[m]]] = buf[o : o + msz[m]]
                        else:
                            v = cut(buf, o, msz[m])
                            d[exts[mext[m]]] = v if zero_copy or type(v) is bytes else bytes(v)
                        m += 1
                    i += 1
                    p += 1
                    self._delivered = p
                    yield d
                return
            for j, p in pos:
                k, i = (0, first + j) if locs is None else locs[j]
                if k in ctx:
                    c = ctx[k]
                else:
                    c = ctx[k] = self._frame_ctx(blk, k, futs, readers, plan_order)
                if c is None:
                    self.skipped_samples += 1
                    if track:
                        self._delivered = p + 1
                    else:
                        yield p, None
                    continue
                d = sample(c, i, zero_copy)
                if track:
                    self._delivered = p + 1
                    yield d
                else:
                    yield p, d
        finally:
            for c in ctx.values():
                retire(c, pool)

    def _runs(
        self, blk: Block, pos: list[tuple[int, int]], futs: dict[int, Future[Any]],
        readers: dict[int, tuple[int, ShardReader | None]], pool: _BufferPool, plan_order: list[int],
        arrow: bool = False,
    ) -> Iterator[tuple[int, int, Any, Any]]:
        """A one-unit, in-order block's positions as (first rank position, count, columns,
        None) per run of consecutive positions: ``columns`` maps each field to a list
        (``__key__`` first, then the members in stream order). A run whose samples differ in
        their fields comes sample by sample, as (rank position, 1, None, sample); a run of a
        shard removed meanwhile as (rank position, count, None, None), skipped. ``arrow``:
        columns are slices of the frame's Table (``arrow.frame_table``), for every run."""
        first, n = blk.units[0].start, len(pos)
        frame = c = None
        if arrow:
            frame = self._frame_result(blk, 0, futs, readers, plan_order)
        else:
            c = self._frame_ctx(blk, 0, futs, readers, plan_order)
        try:
            a = 0
            while a < n:
                j, p = pos[a]
                b = n if pos[-1][0] - j == n - 1 - a and pos[-1][1] - p == n - 1 - a else a + 1
                while b < n and pos[b][0] == j + b - a and pos[b][1] == p + b - a:
                    b += 1
                if frame is not None:
                    yield p, b - a, frame.slice(j, b - a), None
                elif c is None:
                    self.skipped_samples += b - a
                    yield p, b - a, None, None
                else:
                    cols = columns(c, first + j, b - a, self.zero_copy)
                    if cols is not None:
                        yield p, b - a, cols, None
                    else:
                        for k in range(a, b):
                            yield pos[k][1], 1, None, sample(c, first + pos[k][0], self.zero_copy)
                a = b
        finally:
            retire(c, pool)

    def _frame_result(
        self, blk: Block, k: int, futs: dict[int, Future[Any]], readers: dict[int, tuple[int, ShardReader | None]],
        plan_order: list[int],
    ) -> Any:
        """Unit ``k``'s loaded frame (what its future computed); None if its shard was removed
        by a deletion request (skipped, warned)."""
        u = blk.units[k]
        r = None if u.frame < 0 else readers[u.slot][1]
        if r is None or k not in futs:
            return None
        try:
            return futs[k].result()
        except (ShreddedError, NotFoundError) as e:  # deleted under us (remote file gone)
            self._drop(self.rows[plan_order[u.slot]], e)
            readers[u.slot] = (readers[u.slot][0], None)
            return None

    def _frame_ctx(
        self, blk: Block, k: int, futs: dict[int, Future[Any]], readers: dict[int, tuple[int, ShardReader | None]],
        plan_order: list[int],
    ) -> tuple[Any, ...] | None:
        """What slicing unit ``k``'s samples needs: its decoded frame and index arrays; None
        if its shard was removed by a deletion request (skipped, warned)."""
        content = self._frame_result(blk, k, futs, readers, plan_order)
        if content is None:
            return None
        u = blk.units[k]
        r = readers[u.slot][1]
        assert r is not None  # a reader dropped while its frame was in flight has no content
        return context(r, r.keys(), content, u.frame, self.zero_copy)

    # -- random access -------------------------------------------------------------------

    def at(self, i: int) -> Sample:
        """Sample ``i`` of the pinned version in commit order (shard by shard), reading only
        its frame: for custom samplers. Raises ``ShreddedError`` for a shredded shard."""
        from bisect import bisect_right
        from itertools import accumulate

        if self._starts is None:
            self._starts = [0, *accumulate(self._counts)]
        if not isinstance(i, int) or isinstance(i, bool):
            raise TypeError(f"sample index must be an int, got {type(i).__name__}")
        n = self._starts[-1]
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"{self.where}: sample index {i} out of range (version {self.version} has {n})")
        s = bisect_right(self._starts, i) - 1
        r = self._map_readers.get(s)
        if r is None:
            if len(self._map_readers) >= 8:  # a few open shards, oldest closed first
                self._map_readers.pop(next(iter(self._map_readers))).close()
            row = self.rows[s]
            m = self._storage()
            src = self._cache.source(m.fs, m.root, self.dataset_id or "", row) if self._cache is not None else None
            r = open_shard(m, row, dataset_id=self.dataset_id, keys=self._shard_keys() if row.encryption else None,
                           source=src, zero_copy=self.zero_copy)
            self._map_readers[s] = r
        return r[i - self._starts[s]]

    def close(self) -> None:
        for r in self._map_readers.values():
            r.close()
        self._map_readers.clear()


class _Rows(Sequence[Any]):
    """The pinned version's shard rows, each read from the manifest on first use."""

    def __init__(self, index: ShardIndex) -> None:
        self.index = index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self.index.row(j) for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"shard position {i} out of range ({n} shards)")
        return self.index.row(i)


class ShardMapDataset(_MapBase):  # type: ignore[misc,valid-type]
    """Map-style view of a ``ShardDataset`` (``ds[i] == dataset.at(i)``) for custom samplers."""

    def __init__(self, dataset: ShardDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return self.dataset.total

    def __getitem__(self, i: int) -> Sample:
        return self.dataset.at(i)


def __getattr__(name: str) -> Any:
    """``ShardLoader`` and ``collate_lists`` moved to batching.py (which imports this module)."""
    if name in ("ShardLoader", "collate_lists"):
        from . import batching

        return getattr(batching, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
