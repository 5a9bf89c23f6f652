"""Peer-library adapters for exashard's benchmarks: litdata, MosaicML streaming (MDS), webdataset.

Every writer takes WebDataset-style samples, ``{"__key__": str, "<ext>": bytes, ...}`` with the
same extensions in every sample, and replaces ``out_dir``. Every reader returns
``(samples, payload bytes)``, the payload being the summed lengths of the fields whose name does
not start with ``__``, so the figures compare directly with ``bench/shard_read.py``. Values come
back as ``bytes``: nothing is decoded. Peers are imported inside the functions, so importing this
module needs none of them. Run from ``.bench-venv``.

Gotchas a benchmark must handle:

- ``write_litdata`` spawns a worker process (litdata ``optimize``): call it under
  ``if __name__ == "__main__":``. litdata forces the process-wide multiprocessing start method to
  ``spawn``; the adapter restores the previous one afterwards.
- litdata 0.2.x stores a flat dict of ``str``/``bytes`` as Arrow IPC rows and skips zstd when
  bytes dominate the first sample: ``compression="zstd"`` then writes *uncompressed* chunks
  (``index.json`` says ``"compression": null``). ``as_tuple=True`` writes rows as tuples
  ``(key, field1, ...)``, which take litdata's classic path where zstd does apply.
- Reading a *local* zstd litdata dataset in place decompresses every chunk beside itself and deletes
  the ``.zstd.bin`` original: the first read rewrites the dataset uncompressed, later reads skip
  zstd. Read it as a remote (``read_litdata(..., remote=True)``, litdata's ``local:`` prefix)
  to keep the dataset intact and decompress into ``cache_dir``.
- litdata 0.2.76 yields ``bytes`` fields as read-only ``memoryview``s of the mmap'd chunk; they do
  not pickle, so a DataLoader worker hangs on them unless a collate turns them into ``bytes``
  (:func:`collate_lists`). torch's ``default_collate`` rejects ``bytes`` of unequal length too.
- litdata's ``StreamingDataLoader`` with 2 workers over a 2-chunk set of 100,000 ~1 KiB samples
  delivered ~5k samples/s, against ~100k with 1 worker and ~140k in-process (cause not traced).
- MosaicML streaming keeps shared memory (``/dev/shm``, until the process exits) and file locks
  (``$TMPDIR/*_filelock``, never removed) per ``StreamingDataset``; importing it takes seconds
  (it imports transformers): import before timing.
"""

from __future__ import annotations

import gc
import glob
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from typing import Any

LITDATA_PASSWORD = "exashard-bench-password"  # fixed: benchmarks only


def payload_bytes(sample: Any) -> int:
    """Summed length of a sample's payload fields (dict: fields not named ``__*``; tuple/list:
    everything after the key in position 0)."""
    if isinstance(sample, dict):
        return sum(len(v) for k, v in sample.items() if not k.startswith("__"))
    return sum(len(v) for v in sample[1:])


def _count_batch(batch: Any) -> tuple[int, int]:
    """(samples, payload) of a collated batch: dict of lists, list of per-field lists, or an
    Arrow table (exashard's ``batch_format="arrow"``: field bytes read off its offsets)."""
    if hasattr(batch, "num_rows"):
        from exashard.shards.arrow import payload_bytes

        return batch.num_rows, payload_bytes(batch)
    if isinstance(batch, dict):
        return len(batch["__key__"]), sum(len(x) for k, v in batch.items() if not k.startswith("__") for x in v)
    return len(batch[0]), sum(len(x) for col in batch[1:] for x in col)


def _plain(v: Any) -> Any:
    return bytes(v) if isinstance(v, memoryview) else v


def collate_lists(items: list[Any]) -> Any:
    """A batch of samples as per-field lists, memoryviews copied to ``bytes`` (they do not pickle):
    dicts give a dict of lists (exashard's default batch), tuples a list of per-field lists."""
    if isinstance(items[0], dict):
        return {k: [_plain(s[k]) for s in items] for k in items[0]}
    return [[_plain(v) for v in col] for col in zip(*items)]


def as_bytes(sample: Any) -> Any:
    """One sample with memoryviews copied to ``bytes``: the unbatched DataLoader's collate."""
    if isinstance(sample, dict):
        return {k: _plain(v) for k, v in sample.items()}
    return tuple(_plain(v) for v in sample)


def count(items: Iterable[Any], batched: bool) -> tuple[int, int]:
    """``(samples, payload)`` of an iterable of samples, or of collated batches if ``batched``."""
    n = b = 0
    for item in items:
        if batched:
            dn, db = _count_batch(item)
            n, b = n + dn, b + db
        else:
            n, b = n + 1, b + payload_bytes(item)
    return n, b


def _fresh(out_dir: str) -> None:
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(os.path.dirname(os.path.abspath(out_dir)), exist_ok=True)


def litdata_encryption() -> Any:
    """A fresh chunk-level ``litdata.utilities.encryption.FernetEncryption`` (fixed password,
    random salt: a reader needs this very object, or ``FernetEncryption.load(path, password)``
    of a file written with ``.save(path)``)."""
    from litdata.utilities.encryption import FernetEncryption

    return FernetEncryption(password=LITDATA_PASSWORD, level="chunk")


def write_litdata(samples: Iterable[dict[str, Any]], out_dir: str, *, compression: str | None = "zstd",
                  encrypt: bool = False, chunk_bytes: str | int = "64MB", as_tuple: bool = False,
                  queue_size: int = 256) -> dict[str, Any]:
    """Write ``samples`` with ``litdata.optimize`` (one worker process), as litdata users do.

    The samples stream to the worker through a bounded ``multiprocessing.Queue`` (optimize's
    ``queue=`` input, ended by litdata's ``ALL_DONE`` sentinel), so the dataset is never held in
    memory. ``fn`` is the builtin ``dict`` (or ``tuple``): bytes stay bytes. optimize's scratch
    folders (``$TMPDIR/chunks`` and ``$TMPDIR/data``, which it empties) are redirected to a
    private temporary folder, removed afterwards.

    Rows: dicts by default (litdata's Arrow rows: no zstd for bytes-heavy samples). ``as_tuple``
    writes ``(key, field, ...)`` rows with whole-chunk zstd (``compression_level="chunk"``,
    ``chunk-*.zstd.bin``): litdata 0.2.76 writes tuple rows it cannot read back under its default
    "batch" level. ``encrypt=True`` adds ``FernetEncryption(password, level="chunk")`` and forces
    ``as_tuple``: encrypted Arrow-row chunks cannot be read back (the decrypt path skips the Arrow
    footer). Each chunk is encrypted, then the Fernet token (base64) is zstd-compressed. Returns
    ``{"encryption": obj or None, "index": index.json's config}``; pass ``encryption`` to
    :func:`read_litdata`.
    """
    import multiprocessing as mp

    import litdata as ld
    from litdata.processing.data_processor import ALL_DONE

    _fresh(out_dir)
    encryption = litdata_encryption() if encrypt else None
    as_tuple = as_tuple or encrypt
    ctx = mp.get_context("spawn")  # litdata starts its workers with spawn
    queue = ctx.Queue(maxsize=queue_size)
    failure: list[BaseException] = []

    def feed() -> None:
        try:
            for s in samples:
                queue.put((s["__key__"], *(v for k, v in s.items() if k != "__key__")) if as_tuple else s)
        except BaseException as e:  # re-raised in the caller
            failure.append(e)
        finally:
            queue.put(ALL_DONE)

    previous = mp.get_start_method(allow_none=True)
    scratch = tempfile.mkdtemp(prefix="exashard-litdata-")
    env = {"DATA_OPTIMIZER_CACHE_FOLDER": os.path.join(scratch, "chunks"),
           "DATA_OPTIMIZER_DATA_CACHE_FOLDER": os.path.join(scratch, "data")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    feeder = threading.Thread(target=feed, name="litdata-feed", daemon=True)
    feeder.start()
    try:
        ld.optimize(fn=tuple if as_tuple else dict, queue=queue, output_dir=out_dir, chunk_bytes=chunk_bytes,
                    compression=compression, compression_level="chunk" if (as_tuple and compression) else None,
                    encryption=encryption, num_workers=1, verbose=False)
    finally:
        feeder.join(timeout=60)
        mp.set_start_method(previous, force=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(scratch, ignore_errors=True)
    if failure:
        raise failure[0]
    with open(os.path.join(out_dir, "index.json")) as f:
        config = json.load(f)["config"]
    return {"encryption": encryption, "index": config}


def read_litdata(out_dir: str, *, encryption: Any = None, num_workers: int = 0, batch_size: int | None = None,
                 cache_dir: str | None = None, remote: bool = False, copy: bool = False) -> tuple[int, int]:
    """Iterate a ``litdata.StreamingDataset`` over ``out_dir`` once; ``(samples, payload)``.

    ``num_workers == 0`` and no ``batch_size``: the dataset is iterated in this process. With a
    ``batch_size``: ``litdata.StreamingDataLoader``, batches made by :func:`collate_lists`.
    Workers without ``batch_size``: a torch ``DataLoader(batch_size=None)``, one sample a step
    (``StreamingDataLoader`` asserts a batch size). A local dataset is read in place, encrypted or
    not (compressed chunks are decompressed in place on the first read, see the module notes).
    ``remote=True`` reads ``out_dir`` as a remote (``local:`` prefix): chunks are copied into
    ``cache_dir`` and decompressed there, and stay for the next call. The caller owns
    ``cache_dir``: empty it for a first epoch from a clean cache, keep it for a warm one.
    ``copy``: in this process, copy each field to ``bytes`` (:func:`as_bytes`), as the other peers
    deliver them: litdata's memoryviews of the mmap'd chunk read no payload byte until used.
    """
    import litdata as ld

    ds = ld.StreamingDataset("local:" + os.path.abspath(out_dir) if remote else out_dir, encryption=encryption,
                             cache_dir=cache_dir)
    if batch_size is not None:
        loader = ld.StreamingDataLoader(ds, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_lists)
        return count(loader, batched=True)
    if num_workers == 0:
        return count(map(as_bytes, ds) if copy else ds, batched=False)
    from torch.utils.data import DataLoader

    return count(DataLoader(ds, batch_size=None, num_workers=num_workers, collate_fn=as_bytes), batched=False)


def write_mds(samples: Iterable[dict[str, Any]], out_dir: str, *, compression: str | None = "zstd",
              size_limit: int | str = 1 << 26) -> None:
    """Write ``samples`` with ``streaming.MDSWriter``: ``__key__`` as ``str``, every other field
    as ``bytes``. With ``compression`` each shard is ``shard.NNNNN.mds.zstd`` (whole-shard zstd)."""
    from streaming import MDSWriter

    _fresh(out_dir)
    it: Iterator[dict[str, Any]] = iter(samples)
    first = next(it, None)
    if first is None:
        raise ValueError("write_mds: no samples")
    columns = {k: ("str" if k == "__key__" else "bytes") for k in first}
    with MDSWriter(out=out_dir, columns=columns, compression=compression, size_limit=size_limit) as w:
        w.write(first)
        for s in it:
            w.write(s)


def read_mds(out_dir: str, *, num_workers: int = 0, cache_dir: str | None = None, batch_size: int = 256,
             predownload: int | None = None, keep_cache: bool = False, batched: bool = False) -> tuple[int, int]:
    """Iterate a ``streaming.StreamingDataset`` over ``out_dir`` once; ``(samples, payload)``.

    Uncompressed shards are read in place (``local=out_dir``, no remote). Compressed shards need
    a cache: with ``local=out_dir`` alone streaming would decompress each ``.mds.zstd`` into a
    ``.mds`` beside it and keep both, so every later read would skip decompression. Instead
    ``out_dir`` is the ``remote`` (a plain path: streaming copies the file) and ``local`` is
    ``cache_dir`` or a new temporary folder, emptied before and removed after, so each call copies
    and decompresses every shard from scratch (deleting each ``.zstd`` copy once decompressed).
    ``keep_cache=True`` (with a ``cache_dir``) neither empties nor removes the cache, so the call
    after the first finds every shard decompressed already: the steady state of later epochs.
    Workers (``num_workers > 0``) go through ``streaming.StreamingDataLoader``, one sample a step,
    or with ``batched`` batches of ``batch_size`` made by :func:`collate_lists`.

    ``batch_size`` is the per-device batch streaming requires for partitioning; it also sets the
    default ``predownload`` (8 x batch_size samples a worker may run ahead). Samples are still
    yielded one at a time. Keep it realistic: with ``batch_size=1`` (predownload 8) streaming's
    threads hand over in 7 ms sleeps and iteration drops to ~1k samples/s.
    Each call leaves ~6 small ``/dev/shm`` segments until the process exits (streaming frees
    them at exit only) and ``$TMPDIR/NNNNNN_{barrier,cache}_filelock`` files for good.
    """
    from streaming import StreamingDataLoader, StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    with open(os.path.join(out_dir, "index.json")) as f:
        compressed = any(s.get("compression") for s in json.load(f)["shards"])
    keep = compressed and keep_cache and cache_dir is not None
    if compressed:
        local = cache_dir or tempfile.mkdtemp(prefix="exashard-mds-cache-")
        if not keep:
            shutil.rmtree(local, ignore_errors=True)
        remote: str | None = os.path.abspath(out_dir)
    else:
        local, remote = os.path.abspath(out_dir), None
    clean_stale_shared_memory()
    ds = StreamingDataset(local=local, remote=remote, shuffle=False, batch_size=batch_size, predownload=predownload)
    try:
        if num_workers == 0:
            return count(ds, batched=False)
        if batched:
            loader = StreamingDataLoader(ds, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_lists)
            return count(loader, batched=True)
        return count(StreamingDataLoader(ds, batch_size=None, num_workers=num_workers), batched=False)
    finally:
        del ds
        gc.collect()
        if compressed and not keep:
            shutil.rmtree(local, ignore_errors=True)


def write_wds(samples: Iterable[dict[str, Any]], out_dir: str, *, maxsize: int = 256 << 20) -> list[str]:
    """Write ``samples`` as plain tar shards with ``webdataset.ShardWriter``; the sorted shard paths."""
    import webdataset as wds

    _fresh(out_dir)
    os.makedirs(out_dir)
    with wds.ShardWriter(os.path.join(out_dir, "shard-%06d.tar"), maxsize=maxsize, maxcount=10**9, verbose=0) as sw:
        for s in samples:
            sw.write(s)
    return sorted(glob.glob(os.path.join(out_dir, "*.tar")))


def read_wds(urls: list[str], *, num_workers: int = 0, batch_size: int | None = None) -> tuple[int, int]:
    """Iterate ``webdataset.WebDataset(urls)`` once, in order; ``(samples, payload)``. With workers,
    a torch ``DataLoader``: one sample a step, or with ``batch_size`` batches made by
    :func:`collate_lists`. Shards are split between workers, so a worker with no shard reads
    nothing (``empty_check=False`` allows that)."""
    import webdataset as wds

    ds = wds.WebDataset(urls, shardshuffle=False, empty_check=False)
    if num_workers == 0 and batch_size is None:
        return count(ds, batched=False)
    from torch.utils.data import DataLoader

    if batch_size is not None:
        return count(DataLoader(ds, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_lists), batched=True)
    return count(DataLoader(ds, batch_size=None, num_workers=num_workers), batched=False)
