"""Shard read benchmark: exashard shards (plain and encrypted) vs webdataset plain tar and
litdata with Fernet encryption, against the decode ceilings, in one process.

Two sample sets, each written once per format; then, with a warm page cache and no
decoding, each reader iterates every sample. Two ceilings are measured in the same run
on the same bytes, with no Python per sample:

* zstd only: decompression of the plain shards' frames on 2 threads;
* AES-GCM + zstd: decryption of the encrypted shards' segments, then decompression of
  their frames, each on 2 threads (libzstd and OpenSSL release the GIL).

Readers run ``--runs`` times, interleaved; medians are reported and written as JSON.
litdata runs only where it is installed (the bench venv, see docs/BENCHMARKS.md).

    python bench/shard_read.py                      # full sizes (about 8 GB of scratch)
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

from exashard.privacy.access import ShardKeys
from exashard.privacy.keys import LocalKeyring
from exashard.shards import Manifest, ShardWriter, iter_dataset, open_shard

MiB = 1 << 20
Reader = Callable[[], tuple[int, int]]


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


def _peers() -> Any:
    try:
        sys.path.insert(0, os.path.dirname(__file__))
        import litdata  # noqa: F401
        import peers

        return peers
    except ImportError:
        return None


def write_sets(kind: str, n: int, work: str, keyring: str, peers: Any) -> dict[str, Any]:
    import webdataset as wds

    out: dict[str, Any] = {"write_s": {}}
    for label, encrypt in (("plain", False), ("encrypted", True)):
        root = os.path.join(work, f"{kind}-exashard-{label}")
        shutil.rmtree(root, ignore_errors=True)
        t = time.perf_counter()
        with ShardWriter(root, name="bench", encrypt=encrypt, keyring=keyring if encrypt else None) as w:
            for s in make_samples(kind, n):
                w.write(s)
        out["write_s"][f"exashard {label}"] = time.perf_counter() - t
        out[label] = root
    wds_dir = os.path.join(work, f"{kind}-wds")
    shutil.rmtree(wds_dir, ignore_errors=True)
    os.makedirs(wds_dir)
    t = time.perf_counter()
    with wds.ShardWriter(os.path.join(wds_dir, "shard-%06d.tar"), maxsize=256 * MiB, maxcount=10**9, verbose=0) as sw:
        for s in make_samples(kind, n):
            sw.write(s)
    out["write_s"]["webdataset"] = time.perf_counter() - t
    out["wds_urls"] = sorted(glob.glob(os.path.join(wds_dir, "*.tar")))
    if peers is not None:
        lit_dir = os.path.join(work, f"{kind}-litdata-fernet")
        shutil.rmtree(lit_dir, ignore_errors=True)
        t = time.perf_counter()
        out["litdata"] = (lit_dir, peers.write_litdata(make_samples(kind, n), lit_dir, compression="zstd", encrypt=True))
        out["write_s"]["litdata fernet"] = time.perf_counter() - t
    return out


def _payload(s: dict[str, Any]) -> int:
    return sum(len(v) for k, v in s.items() if not k.startswith("__"))


def read_exashard(root: str, keyring: str | None = None, zero_copy: bool = False) -> tuple[int, int]:
    n = b = 0
    for s in iter_dataset(root, keyring=keyring, zero_copy=zero_copy):
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


def _pool_map(threads: int) -> Callable[[Callable[[Any], int], list[Any]], int]:
    pool = ThreadPoolExecutor(threads)
    return lambda fn, items: sum(pool.map(fn, items))


def zstd_ceiling(root: str, threads: int = 2) -> Reader:
    """Decompress every frame of the plain shards, already in memory, on ``threads`` threads."""
    m = Manifest(root)
    frames: list[bytes] = []
    for info in m.read().shards.values():
        with open_shard(m, info) as r, open(os.path.join(root, info.path), "rb") as f:
            blob = f.read()
            frames += [blob[o : o + c] for o, c in zip(r.layout.c_offsets, r.layout.c_sizes)]
    local = threading.local()

    def one(frame: bytes | memoryview) -> int:
        d = getattr(local, "d", None)
        if d is None:
            d = local.d = zstandard.ZstdDecompressor()
        return len(d.decompress(frame))

    run = _pool_map(threads)
    return lambda: (len(frames), run(one, frames))


def crypto_ceiling(root: str, keyring: str, threads: int = 2) -> Reader:
    """AES-GCM-decrypt every segment of the encrypted shards (in memory) into one plaintext
    buffer per shard, then decompress every frame, each step on ``threads`` threads."""
    from exashard.privacy.stream import HEADER_SIZE, TAG, DecryptingSource, _nonce

    m = Manifest(root)
    snap = m.read()
    keys = ShardKeys(m.fs, m.root, snap.dataset_id, keyring)
    shards = []
    for info in snap.shards.values():
        with open(os.path.join(root, info.path), "rb") as f:
            blob = f.read()
        src = DecryptingSource(_Mem(blob), keys.data_key(info), dataset_id=snap.dataset_id or "", shard_id=info.id)
        with open_shard(m, info, dataset_id=snap.dataset_id, keys=keys) as r:
            lay = r.layout
        shards.append((src, blob, lay, bytearray(src.size)))  # plaintext buffer reused across runs
    local = threading.local()
    run = _pool_map(threads)

    def go() -> tuple[int, int]:
        total = 0
        for src, blob, lay, plain in shards:
            pmv, cmv = memoryview(plain), memoryview(blob)
            stride, seg = src.segment_size + TAG, src.segment_size

            def dec(k: int, src: Any = src, pmv: memoryview = pmv, cmv: memoryview = cmv, stride: int = stride, seg: int = seg) -> int:
                c = HEADER_SIZE + k * stride
                ct = cmv[c : min(c + stride, len(cmv))]
                src._aead.decrypt_into(_nonce(src._prefix, k, k == src.segments - 1), ct, None, pmv[k * seg : k * seg + len(ct) - TAG])
                return 0

            run(dec, list(range(src.segments)))

            def one(i: int, pmv: memoryview = pmv, lay: Any = lay) -> int:
                d = getattr(local, "d", None)
                if d is None:
                    d = local.d = zstandard.ZstdDecompressor()
                return len(d.decompress(pmv[lay.c_offsets[i] : lay.c_offsets[i] + lay.c_sizes[i]]))

            total += run(one, list(range(lay.frames)))
        return sum(sh[2].frames for sh in shards), total

    return go


class _Mem:
    def __init__(self, data: bytes) -> None:
        self.data, self.size, self.name = data, len(data), "mem"

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]

    def close(self) -> None:
        pass


def timed(fn: Reader) -> tuple[float, int, int]:
    gc.collect()
    t = time.perf_counter()
    n, b = fn()
    return time.perf_counter() - t, n, b


def bench_set(kind: str, n: int, work: str, runs: int, keyring: str, peers: Any) -> dict[str, Any]:
    print(f"\n== {kind}: {n} samples ==", flush=True)
    sets = write_sets(kind, n, work, keyring, peers)
    plain, enc, urls = sets["plain"], sets["encrypted"], sets["wds_urls"]
    readers: dict[str, Reader] = {
        "webdataset (plain tar)": lambda: read_wds(urls),
        "exashard plain (bytes)": lambda: read_exashard(plain),
        "exashard plain (zero-copy)": lambda: read_exashard(plain, zero_copy=True),
        "exashard encrypted (bytes)": lambda: read_exashard(enc, keyring),
        "exashard encrypted (zero-copy)": lambda: read_exashard(enc, keyring, zero_copy=True),
    }
    if "litdata" in sets:
        lit_dir, lit = sets["litdata"]
        readers["litdata (zstd + Fernet)"] = lambda: peers.read_litdata(lit_dir, encryption=lit["encryption"])
    ceilings = {"ceiling: zstd only, 2 threads": zstd_ceiling(plain), "ceiling: AES-GCM + zstd, 2 threads": crypto_ceiling(enc, keyring)}
    readers.update(ceilings)
    for fn in readers.values():  # warm the page cache and allocators
        fn()
    times: dict[str, list[float]] = {k: [] for k in readers}
    counts: dict[str, tuple[int, int]] = {}
    for _ in range(runs):
        for name, fn in readers.items():
            dt, cnt, nbytes = timed(fn)
            times[name].append(dt)
            counts[name] = (cnt, nbytes)
    payload = counts["exashard plain (bytes)"][1]
    for name in readers:
        if name not in ceilings:
            assert counts[name] == (n, payload), (name, counts[name], (n, payload))
    res: dict[str, Any] = {"samples": n, "payload_bytes": payload, "write_s": sets["write_s"], "readers": {}}
    for name, ts in times.items():
        med = statistics.median(ts)
        # MB/s of payload delivered; a ceiling's figure is the same payload over its time
        res["readers"][name] = {"median_s": med, "runs_s": ts, "MB_per_s": payload / med / 1e6, "samples_per_s": n / med}
    base = res["readers"]["webdataset (plain tar)"]["MB_per_s"]
    zc = res["readers"]["ceiling: zstd only, 2 threads"]["MB_per_s"]
    cc = res["readers"]["ceiling: AES-GCM + zstd, 2 threads"]["MB_per_s"]
    lit = res["readers"].get("litdata (zstd + Fernet)", {}).get("MB_per_s")
    print(f"{'reader':36s} {'MB/s':>8s} {'samples/s':>10s} {'x wds':>6s} {'x litdata':>9s} {'of zstd ceil':>12s} {'of crypto ceil':>14s}")
    for name, r in res["readers"].items():
        r["ratio_vs_webdataset"] = r["MB_per_s"] / base
        r["fraction_of_zstd_ceiling"] = r["MB_per_s"] / zc
        r["fraction_of_crypto_ceiling"] = r["MB_per_s"] / cc
        if lit:
            r["ratio_vs_litdata_fernet"] = r["MB_per_s"] / lit
        print(
            f"{name:36s} {r['MB_per_s']:8.0f} {r['samples_per_s']:10.0f} {r['ratio_vs_webdataset']:6.2f} "
            f"{(r['MB_per_s'] / lit) if lit else float('nan'):9.2f} {r['fraction_of_zstd_ceiling']:12.2f} {r['fraction_of_crypto_ceiling']:14.2f}"
        )
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--big", type=int, default=20_000, help="samples of 100 KiB + JSON")
    ap.add_argument("--small", type=int, default=200_000, help="samples of ~1 KiB text + JSON")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sets", default="big,small", help="which sets to run")
    ap.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "exashard-bench"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "shard_read.json"))
    ap.add_argument("--no-peers", action="store_true", help="skip litdata even if installed")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one run: checks the script works")
    args = ap.parse_args(argv)
    if args.quick:
        args.big, args.small, args.runs = 200, 2000, 1
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    keyring = os.path.join(args.work, "keyring.json")
    LocalKeyring.create(keyring)
    peers = None if args.no_peers else _peers()
    sizes = {"big": ("big_100KiB", args.big), "small": ("small_1KiB", args.small)}
    results = {
        "benchmark": "shard_read",
        "python": sys.version.split()[0],
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "runs": args.runs,
        "peers": {"litdata": None if peers is None else __import__("litdata").__version__},
        "sets": {sizes[k][0]: bench_set(k, sizes[k][1], args.work, args.runs, keyring, peers) for k in args.sets.split(",")},
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"\nfigures written to {args.out}")
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
