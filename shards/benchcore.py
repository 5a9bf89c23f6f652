"""The benchmark core behind ``exashard bench``: loader throughput vs raw reads of the same bytes."""

from __future__ import annotations

import time
from itertools import accumulate
from typing import Any

from . import storage
from .loader import ShardDataset
from .manifest import open_manifest


def bench_read(
    dataset: str, *, seconds: float | None = None, keyring: Any = None, zero_copy: bool = False,
    storage_options: dict[str, Any] | None = None, version: int | None = None,
) -> dict[str, Any]:
    """Read samples for ``seconds`` (or one epoch), then read the same shards' stored bytes
    raw from the same storage; report samples/s, MB/s and the ratio of the two speeds."""
    ds = ShardDataset(dataset, keyring=keyring, zero_copy=zero_copy, storage_options=storage_options,
                      version=version, rank=0, world_size=1)
    m = open_manifest(dataset, storage_options)
    ends = list(accumulate(r.samples for r in ds.rows))
    n = payload = 0
    t0 = time.perf_counter()
    deadline = None if seconds is None else t0 + seconds
    it = iter(ds)
    for s in it:  # the training loader's own path: read-ahead, decryption, decompression
        n += 1
        payload += sum(len(v) for k, v in s.items() if k != "__key__")
        if deadline is not None and not n % 256 and time.perf_counter() > deadline:
            break
    it.close()
    done = [r for r, end in zip(ds.rows, ends) if end <= n]
    stored = sum(r.bytes for r in done)
    t_read = time.perf_counter() - t0
    raw_t = 0.0
    if done:  # the same stored bytes, raw, in 8 MiB reads
        t1 = time.perf_counter()
        for info in done:
            src = storage.open_source(m.fs, storage.join(m.root, info.path), size=info.bytes)
            try:
                for _ in storage.read_chunks(src, info.bytes):
                    pass
            finally:
                src.close()
        raw_t = time.perf_counter() - t1
    return {
        "dataset": m.where, "version": ds.version, "samples": n, "payload_bytes": payload, "seconds": t_read,
        "samples_per_s": n / t_read if t_read else 0.0, "MB_per_s": payload / t_read / 1e6 if t_read else 0.0,
        "shards_read": len(done), "stored_bytes": stored,
        "raw_MB_per_s": stored / raw_t / 1e6 if raw_t else None,
        # t_read covers the fully read shards plus, with --seconds, part of one more: an
        # upper bound on the time for `stored` bytes, so both figures are conservative
        "stored_MB_per_s": stored / t_read / 1e6 if done and t_read else None,
        "efficiency": (raw_t / t_read) if done and raw_t and t_read else None,
    }
