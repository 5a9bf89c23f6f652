"""Shard read benchmark: exashard shards vs webdataset plain tar, plus the zstd ceiling.

Two sample sets, each written once as exashard shards and once as a plain tar with
webdataset's ShardWriter; then, in one process with a warm page cache and no decoding,
each reader iterates every sample. The ceiling is zstd decompression alone of the same
frames on 2 threads inside libzstd (no Python per frame or sample). Every reader runs
``--runs`` times, interleaved; medians are reported, and figures written as JSON.

    python bench/shard_read.py                      # full sizes (about 5 GB of scratch)
    python bench/shard_read.py --quick              # seconds, for a smoke test
"""

from __future__ import annotations

import argparse
import gc
import glob
import json
import os
import platform
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import zstandard

from exashard.shards import Manifest, ShardWriter, iter_dataset

MiB = 1 << 20


def make_samples(kind: str, n: int, seed: int = 0) -> Iterable[dict[str, Any]]:
    """Deterministic samples: ``big`` = 100 KiB incompressible + JSON; ``small`` = ~1 KiB text + JSON."""
    rnd = __import__("random").Random(seed)
    words = ["the", "a", "photo", "of", "dog", "cat", "on", "beach", "under", "sky", "with", "red", "blue", "green", "small", "large", "old", "new", "near", "far", "city"]
    for i in range(n):
        meta = json.dumps({"id": i, "w": 640, "h": 480, "src": f"cam{i % 7}"}).encode()
        if kind == "big":
            yield {"__key__": f"{i:08d}", "bin": rnd.randbytes(102400), "json": meta}
        else:
            text = " ".join(rnd.choice(words) for _ in range(rnd.randint(150, 210)))[:1024]
            yield {"__key__": f"{i:08d}", "txt": text.encode(), "json": meta}


def write_sets(kind: str, n: int, work: str) -> dict[str, Any]:
    import webdataset as wds

    ex_root = os.path.join(work, f"{kind}-exashard")
    wds_dir = os.path.join(work, f"{kind}-wds")
    shutil.rmtree(ex_root, ignore_errors=True)
    shutil.rmtree(wds_dir, ignore_errors=True)
    os.makedirs(wds_dir)
    t0 = time.perf_counter()
    with ShardWriter(ex_root, name="bench") as w:
        for s in make_samples(kind, n):
            w.write(s)
    t1 = time.perf_counter()
    with wds.ShardWriter(os.path.join(wds_dir, "shard-%06d.tar"), maxsize=256 * MiB, maxcount=10**9, verbose=0) as sw:
        for s in make_samples(kind, n):
            sw.write(s)
    t2 = time.perf_counter()
    return {"exashard_root": ex_root, "wds_urls": sorted(glob.glob(os.path.join(wds_dir, "*.tar"))),
            "write_s": {"exashard": t1 - t0, "webdataset": t2 - t1}}


def _payload(s: dict[str, Any]) -> int:
    return sum(len(v) for k, v in s.items() if not k.startswith("__"))


def read_exashard(root: str, zero_copy: bool = False) -> tuple[int, int]:
    n = b = 0
    for s in iter_dataset(root, zero_copy=zero_copy):
        n += 1
        b += _payload(s)
    return n, b


def read_wds(urls: list[str]) -> tuple[int, int]:
    import webdataset as wds

    n = b = 0
    for s in wds.WebDataset(urls, shardshuffle=False):
        n += 1
        b += _payload(s)
    return n, b


def load_frames(root: str) -> list[bytes]:
    """The compressed data frames of every shard, in memory (for the ceiling)."""
    m = Manifest(root)
    frames = []
    from exashard.shards import open_shard

    for info in m.read().shards.values():
        with open_shard(m, info) as r, open(os.path.join(root, info.path), "rb") as f:
            blob = f.read()
            lay = r.layout
            frames += [blob[o : o + c] for o, c in zip(lay.c_offsets, lay.c_sizes)]
    return frames


def ceiling(frames: list[bytes], threads: int = 2) -> Callable[[], tuple[int, int]]:
    """Decompress every frame on ``threads`` threads: libzstd releases the GIL, and with
    ~2 MiB frames the Python around each call is noise. No per-sample work at all."""
    local = threading.local()

    def one(frame: bytes) -> int:
        d = getattr(local, "d", None)
        if d is None:
            d = local.d = zstandard.ZstdDecompressor()
        return len(d.decompress(frame))

    pool = ThreadPoolExecutor(threads)

    def run() -> tuple[int, int]:
        return len(frames), sum(pool.map(one, frames))

    return run


def timed(fn: Callable[[], tuple[int, int]]) -> tuple[float, int, int]:
    gc.collect()
    t = time.perf_counter()
    n, b = fn()
    return time.perf_counter() - t, n, b


def bench_set(kind: str, n: int, work: str, runs: int) -> dict[str, Any]:
    print(f"\n== {kind}: {n} samples ==", flush=True)
    sets = write_sets(kind, n, work)
    root, urls = sets["exashard_root"], sets["wds_urls"]
    frames = load_frames(root)
    readers: dict[str, Callable[[], tuple[int, int]]] = {
        "webdataset (plain tar)": lambda: read_wds(urls),
        "exashard (bytes)": lambda: read_exashard(root),
        "exashard (zero-copy)": lambda: read_exashard(root, zero_copy=True),
        "ceiling: zstd only, 2 threads": ceiling(frames),
    }
    for fn in readers.values():  # warm the page cache and allocators
        fn()
    times: dict[str, list[float]] = {k: [] for k in readers}
    counts: dict[str, tuple[int, int]] = {}
    for _ in range(runs):
        for name, fn in readers.items():
            dt, cnt, nbytes = timed(fn)
            times[name].append(dt)
            counts[name] = (cnt, nbytes)
    payload = counts["exashard (bytes)"][1]
    assert counts["webdataset (plain tar)"] == counts["exashard (bytes)"] == counts["exashard (zero-copy)"]
    res: dict[str, Any] = {"samples": n, "payload_bytes": payload, "write_s": sets["write_s"], "readers": {}}
    for name, ts in times.items():
        med = statistics.median(ts)
        res["readers"][name] = {
            "median_s": med, "runs_s": ts,
            "MB_per_s": payload / med / 1e6,  # payload bytes delivered (ceiling: same payload, its time)
            "samples_per_s": n / med,
        }
    base = res["readers"]["webdataset (plain tar)"]
    ceil = res["readers"]["ceiling: zstd only, 2 threads"]
    print(f"{'reader':34s} {'MB/s':>9s} {'samples/s':>11s} {'x wds':>7s} {'of ceiling':>10s}")
    for name, r in res["readers"].items():
        r["ratio_vs_webdataset"] = r["MB_per_s"] / base["MB_per_s"]
        r["fraction_of_ceiling"] = r["MB_per_s"] / ceil["MB_per_s"]
        print(f"{name:34s} {r['MB_per_s']:9.0f} {r['samples_per_s']:11.0f} {r['ratio_vs_webdataset']:7.2f} {r['fraction_of_ceiling']:10.2f}")
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--big", type=int, default=20_000, help="samples of 100 KiB + JSON")
    ap.add_argument("--small", type=int, default=200_000, help="samples of ~1 KiB text + JSON")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "exashard-bench"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "shard_read.json"))
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one run: checks the script works")
    args = ap.parse_args(argv)
    if args.quick:
        args.big, args.small, args.runs = 200, 2000, 1
    os.makedirs(args.work, exist_ok=True)
    results = {
        "benchmark": "shard_read",
        "python": sys.version.split()[0],
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "runs": args.runs,
        "sets": {"big_100KiB": bench_set("big", args.big, args.work, args.runs),
                 "small_1KiB": bench_set("small", args.small, args.work, args.runs)},
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"\nfigures written to {args.out}")
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
