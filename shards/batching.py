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
            yield from self._columns(k, w)
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
    DataLoader.
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
                full = batch is not None and (end - start) - (want - 1) * self.batch_size == self.batch_size
                if batch is None or (self.drop_last and not full):
                    continue
                yield batch
