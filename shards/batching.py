"""Batches of a ``ShardDataset``: ``ShardLoader`` (DataLoader workers, exact resume in the
main process) and the default collate.

With the default collate, batches are built as columns straight from the decoded frames:
a run of samples with the same fields becomes one list per field, sliced in one pass,
instead of one dict per sample collated afterwards. The result is the same as
``collate_lists`` over the samples (a test compares them); only the per-sample Python
work goes away, which is most of the cost for small samples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ..errors import ConfigError, MissingDependencyError
from .loader import Sample, ShardDataset, _IterBase, _worker_info

Columns = dict[str, list[Any]]
# A field whose values in one worker batch add up to this much crosses to the main process
# as one shared-memory tensor (``Packed``) instead of pickled through the worker's pipe.
# Below it, a tensor's own cost (a shared-memory segment per batch) outweighs the pipe:
# measured on 2 cores, 64 values a batch: 100 KiB values 953 against 508 MB/s, 16 KiB
# 493 against 396, 1 KiB 103 against 298.
PACK_MIN = 1 << 20


class Packed:
    """One field of a worker batch, its values end to end in a shared-memory uint8 tensor;
    ``sizes`` gives each value's length, -1 for None. ``ShardLoader`` unpacks it in the
    main process: ``bytes`` each, or ``memoryview``s of the tensor with ``zero_copy``."""

    __slots__ = ("data", "sizes")

    def __init__(self, data: Any, sizes: list[int]) -> None:
        self.data, self.sizes = data, sizes

    @classmethod
    def of(cls, values: list[Any]) -> Packed | None:
        """The values packed, or None unless every one is bytes-like or None and they add
        up to ``PACK_MIN`` bytes at least, and to one or more (else they stay a list, pickled)."""
        sizes, total = [], 0
        for v in values:
            if v is None:
                sizes.append(-1)
            elif type(v) is bytes or type(v) is memoryview:
                sizes.append(len(v))
                total += len(v)
            else:
                return None
        if total < PACK_MIN or not total:
            return None
        import torch

        data = torch.empty(total, dtype=torch.uint8).share_memory_()  # written once, in place
        out, o = memoryview(data.numpy()), 0
        for v, n in zip(values, sizes):
            if n > 0:
                out[o : o + n] = v
                o += n
        return cls(data, sizes)

    def values(self, zero_copy: bool) -> list[Any]:
        buf, o, out = memoryview(self.data.numpy()), 0, []
        for n in self.sizes:
            if n < 0:
                out.append(None)
            else:
                out.append(buf[o : o + n] if zero_copy else bytes(buf[o : o + n]))
                o += n
        return out


def pack(batch: Any) -> Any:
    """A worker's default (dict of lists) batch with its big fields as ``Packed``, and the
    other fields' ``memoryview``s (``zero_copy``) as ``bytes``: a view cannot leave its
    process (the DataLoader would turn it into a list of ints)."""
    if type(batch) is dict:
        for k, v in batch.items():
            if k != "__key__" and type(v) is list:
                p = Packed.of(v)
                batch[k] = p if p is not None else [bytes(x) if type(x) is memoryview else x for x in v]
    return batch


def unpack(batch: Any, zero_copy: bool) -> Any:
    """``pack`` undone, in the main process: with ``zero_copy`` every value is a
    ``memoryview`` again (of shared memory for a packed field)."""
    if type(batch) is dict:
        for k, v in batch.items():
            if type(v) is Packed:
                batch[k] = v.values(zero_copy)
            elif zero_copy and k != "__key__" and type(v) is list:
                batch[k] = [memoryview(x) if type(x) is bytes else x for x in v]
    return batch


def collate_lists(samples: list[Sample]) -> Columns:
    """The default batch: field name -> list of values (None where a sample lacks the field)."""
    names: dict[str, None] = {}
    for s in samples:
        names.update(dict.fromkeys(s))
    return {k: [s.get(k) for s in samples] for k in names}


def _join(pieces: list[tuple[bool, Any]]) -> Columns:
    """One batch from its pieces: (True, columns) or (False, sample), in order. Columns with
    the same fields are concatenated; anything else goes through ``collate_lists``."""
    if len(pieces) == 1 and pieces[0][0]:
        return pieces[0][1]
    if all(is_cols for is_cols, _ in pieces):
        names = list(pieces[0][1])
        if all(list(cols) == names for _, cols in pieces):
            return {k: [v for _, cols in pieces for v in cols[k]] for k in names}
    samples: list[Sample] = []
    for is_cols, x in pieces:
        if is_cols:
            samples += (dict(zip(x, row)) for row in zip(*x.values()))
        else:
            samples.append(x)
    return collate_lists(samples)


class _Batches(_IterBase):  # type: ignore[misc,valid-type]
    """What a DataLoader worker iterates for ``ShardLoader``: (batch index, end position,
    skipped samples, collated batch or None) for batches j = worker, worker + K, ..."""

    def __init__(
        self, ds: ShardDataset, start: int, batch: int, collate: Callable[[list[Sample]], Any], arrow: bool = False,
    ) -> None:
        self.ds, self.start, self.batch, self.collate, self.arrow = ds, start, batch, collate, arrow

    def __iter__(self) -> Iterator[tuple[int, int, int, Any]]:
        info = _worker_info()
        k, w = (1, 0) if info is None else (info.num_workers, info.id)
        if self.arrow or self.collate is collate_lists:
            if info is None:
                yield from self._columns(k, w)
            elif self.arrow:  # sliced tables would take their frames' whole buffers along
                from .arrow import compact

                for j, end, skipped, batch in self._columns(k, w):
                    yield j, end, skipped, None if batch is None else compact(batch)
            else:  # default batches leave this worker with their big fields in shared memory
                if self._packs():  # slice views: pack copies each value once, into shared memory
                    self.ds.zero_copy = True  # (this worker's own copy of the dataset)
                for j, end, skipped, batch in self._columns(k, w):
                    yield j, end, skipped, pack(batch)
            return
        n, b = len(self.ds), self.batch
        cur, samples, skipped = -1, [], 0
        for p, s in self.ds._walk(self.start, k, w, b):
            j = (p - self.start) // b
            if j != cur:
                if cur >= 0:
                    yield cur, min(n, self.start + (cur + 1) * b), skipped, self.collate(samples) if samples else None
                cur, samples, skipped = j, [], 0
            if s is None:
                skipped += 1
            else:
                samples.append(s)
        if cur >= 0:
            yield cur, min(n, self.start + (cur + 1) * b), skipped, self.collate(samples) if samples else None

    def _packs(self) -> bool:
        """Whether a batch of the first shard's average sample reaches ``PACK_MIN`` (then
        most fields are packed; small values are cheaper sliced as bytes straight away)."""
        rows = self.ds.rows
        if not len(rows):
            return False
        row = rows[0]
        return row.samples > 0 and row.tar_bytes * self.batch >= PACK_MIN * row.samples

    def _columns(self, k: int, w: int) -> Iterator[tuple[int, int, int, Any]]:
        """The same batches, built from the dataset's runs of samples (``ShardDataset._runs``):
        dicts of lists, or Arrow tables (``arrow``)."""
        n, b, start = len(self.ds), self.batch, self.start
        if self.arrow:
            from .arrow import join
        else:
            join = _join
        cur, pieces, skipped = -1, [], 0
        for p, count, cols, sample in self.ds._walk(start, k, w, b, runs=True, arrow=self.arrow):
            off = 0
            while off < count:  # a run may cross batch boundaries: cut it there
                j = (p + off - start) // b
                take = min(count - off, start + (j + 1) * b - (p + off))
                if j != cur:
                    if cur >= 0:
                        yield cur, min(n, start + (cur + 1) * b), skipped, join(pieces) if pieces else None
                    cur, pieces, skipped = j, [], 0
                if sample is not None:
                    pieces.append((False, sample))
                elif cols is None:
                    skipped += take
                elif take == count:
                    pieces.append((True, cols))
                elif self.arrow:
                    pieces.append((True, cols.slice(off, take)))
                else:
                    pieces.append((True, {f: v[off : off + take] for f, v in cols.items()}))
                off += take
        if cur >= 0:
            yield cur, min(n, start + (cur + 1) * b), skipped, join(pieces) if pieces else None


class ShardLoader:
    """Batches of a ``ShardDataset``, optionally from torch DataLoader workers, with exact resume.

    The resume position (samples delivered) is kept here, in the main process, so
    ``state_dict()`` taken after any batch resumes with no sample repeated or skipped,
    with any ``num_workers``. ``collate_fn`` turns a list of samples into a batch
    (default: ``collate_lists``, built as columns without per-sample dicts).
    ``batch_format="arrow"`` gives each batch as a ``pyarrow.Table`` instead
    (``__key__`` string column, one binary column per field, built without a Python
    object per sample: see ``shards/arrow.py``). Other keyword arguments go to the
    DataLoader. From workers, default batches send their big fields through shared
    memory (``Packed``, ``PACK_MIN``); with ``zero_copy`` every field value arrives as a
    ``memoryview``.
    """

    def __init__(
        self, dataset: ShardDataset, batch_size: int = 1, *, num_workers: int = 0,
        collate_fn: Callable[[list[Sample]], Any] | None = None, drop_last: bool = False,
        batch_format: str = "dict", **dataloader_kwargs: Any,
    ) -> None:
        if not isinstance(dataset, ShardDataset):
            raise ConfigError(f"ShardLoader needs a ShardDataset, got {type(dataset).__name__}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"ShardLoader: batch_size must be an int >= 1, got {batch_size!r}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ConfigError(f"ShardLoader: num_workers must be an int >= 0, got {num_workers!r}")
        bad = {"sampler", "batch_sampler", "shuffle"} & set(dataloader_kwargs)
        if bad:
            raise ConfigError(f"ShardLoader: {sorted(bad)} are not allowed: the order comes from the ShardDataset (shuffle=, seed=)")
        if batch_format not in ("dict", "arrow"):
            raise ConfigError(f"ShardLoader: batch_format must be 'dict' or 'arrow', got {batch_format!r}")
        if batch_format == "arrow":
            if collate_fn is not None:
                raise ConfigError("ShardLoader: collate_fn and batch_format='arrow' exclude each other (Arrow batches are built without one)")
            from .arrow import require

            require()
        if num_workers and _IterBase is object:
            raise MissingDependencyError("ShardLoader(num_workers > 0) needs torch: pip install 'exashard[torch]'")
        self.dataset, self.batch_size, self.num_workers = dataset, batch_size, num_workers
        self.collate_fn = collate_fn or collate_lists
        self.batch_format = batch_format
        self.drop_last = drop_last
        self.kwargs = dataloader_kwargs
        dataset.batch_size = batch_size

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        return self.dataset.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.dataset.load_state_dict(state)

    def __iter__(self) -> Iterator[Any]:
        ds = self.dataset
        start = ds._start()
        stream = _Batches(ds, start, self.batch_size, self.collate_fn, self.batch_format == "arrow")
        if self.num_workers == 0:
            items: Any = iter(stream)
        else:
            from torch.utils.data import DataLoader

            items = iter(DataLoader(stream, batch_size=None, num_workers=self.num_workers, **self.kwargs))
        held: dict[int, tuple[int, int, Any]] = {}
        want = 0
        for j, end, skipped, batch in items:
            held[j] = (end, skipped, batch)
            while want in held:  # batches come back in order from DataLoader; hold any that do not
                end, skipped, batch = held.pop(want)
                want += 1
                ds._delivered = end
                if self.num_workers:
                    ds.skipped_samples += skipped
                    batch = unpack(batch, ds.zero_copy)
                full = batch is not None and (end - start) - (want - 1) * self.batch_size == self.batch_size
                if batch is None or (self.drop_last and not full):
                    continue
                yield batch
