"""Ingest benchmark, printed as ratios from one run (run it in the bench venv for litdata).

1. The same raw folder (JPEG with GPS EXIF + JSON sidecar with PII per sample) through
   exashard ingest (strip + redact + zstd + encrypt, 2 local workers) vs
   ``litdata.optimize`` (zstd, no privacy, no encryption) vs webdataset's ShardWriter
   (plain tar, one process, shards fsync'd as a crash-safe writer must); plus the
   fsync'd sequential write speed of the same disk, measured in the same run.
2. 1 vs 2 workers on the CPU-bound stages (output to memory:// in the workers): over the
   raw folder (the driver also lists and stats its 40,000 files, on the same cores), and
   over the same samples as 20 WebDataset tars (the driver lists 20 files, so only the
   workers' stages are measured).
3. Driver memory while planning a folder of many small objects.

    python bench/ingest.py --samples 20000 --plan-objects 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import time
from typing import Any

from exashard.privacy.keys import LocalKeyring

MiB = 1 << 20


def make_raw(folder: str, n: int, seed: int = 0) -> int:
    """``n`` distinct JPEGs (noise, ~40-60 KB, GPS EXIF) + JSON sidecars; returns bytes written."""
    from PIL import Image

    rnd = random.Random(seed)
    os.makedirs(folder, exist_ok=True)
    total = 0
    for i in range(n):
        sub = os.path.join(folder, f"{i // 1000:04d}")
        os.makedirs(sub, exist_ok=True)
        img = Image.frombytes("RGB", (160, 120), rnd.randbytes(160 * 120 * 3))
        exif = Image.Exif()
        exif[0x0112] = 1
        exif[0x8825] = {1: "N", 2: (37.0, 46.0, 0.0), 3: "W", 4: (122.0, 25.0, 0.0)}
        p = os.path.join(sub, f"{i:07d}.jpg")
        img.save(p, quality=90, exif=exif.tobytes())
        side = {"user_id": i, "caption": f"photo {i} by user{i}@example.com" if i % 10 == 0 else f"photo {i} of a dog"}
        with open(os.path.join(sub, f"{i:07d}.json"), "w") as f:
            json.dump(side, f)
        total += os.path.getsize(p)
    return total


def make_tars(folder: str, tars: str) -> None:
    """The same samples as WebDataset tars, one per subfolder (1,000 samples each)."""
    import tarfile

    os.makedirs(tars, exist_ok=True)
    for sub in sorted(os.listdir(folder)):
        d = os.path.join(folder, sub)
        with tarfile.open(os.path.join(tars, f"{sub}.tar"), "w", format=tarfile.USTAR_FORMAT) as tf:
            for name in sorted(os.listdir(d)):
                tf.add(os.path.join(d, name), arcname=name)


def folder_samples(folder: str):
    for sub in sorted(os.listdir(folder)):
        d = os.path.join(folder, sub)
        for name in sorted(os.listdir(d)):
            if name.endswith(".jpg"):
                stem = name[:-4]
                with open(os.path.join(d, name), "rb") as f:
                    jpg = f.read()
                with open(os.path.join(d, stem + ".json"), "rb") as f:
                    js = f.read()
                yield {"__key__": stem, "jpg": jpg, "json": js}


def fsync_speed(folder: str, total: int = 512 * MiB) -> float:
    p = os.path.join(folder, "fsync.bin")
    block = os.urandom(8 * MiB)
    t = time.perf_counter()
    with open(p, "wb") as f:
        for _ in range(total // len(block)):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    dt = time.perf_counter() - t
    os.unlink(p)
    return total / dt


def _warm() -> None:
    """Imports and one-time set-up a worker does on its first task (the privacy stage's
    compiled patterns, codecs, crypto): done before the clock, as the peers' imports are."""
    from exashard.ingest.run import run_task  # noqa: F401
    from exashard.privacy.media import strip  # noqa: F401
    from exashard.privacy.redact import Redactor

    Redactor().redact_batch(["warm up 555-0100 a@b.co"])


def _clear_memory_fs() -> None:
    import fsspec

    fsspec.filesystem("memory").store.clear()


def run_wds(raw: str, out: str) -> None:
    import webdataset as wds

    os.makedirs(out, exist_ok=True)
    with wds.ShardWriter(os.path.join(out, "s-%06d.tar"), maxsize=256 * MiB, maxcount=10**9, verbose=0) as sw:
        for s in folder_samples(raw):
            sw.write(s)
    for name in os.listdir(out):  # a crash-safe writer makes its shards durable
        fd = os.open(os.path.join(out, name), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)


def run_exashard(raw: str, out: str, keyring: str, workers: int, client: Any = None) -> Any:
    import exashard

    return exashard.ingest(raw, out, keyring=keyring, workers=workers, client=client, progress=False)


def plan_memory(n: int, work: str) -> dict[str, Any]:
    """Create ``n`` one-byte objects in 1,000 folders, then plan them in a subprocess and
    report its peak RSS (the driver's cost of listing + planning)."""
    root = os.path.join(work, "many")
    if not os.path.exists(root):
        for d in range(1000):
            sub = os.path.join(root, f"{d:04d}")
            os.makedirs(sub)
            for i in range(n // 1000):
                with open(os.path.join(sub, f"{i:06d}.txt"), "wb") as f:
                    f.write(b"x")
    code = (
        "import time,sys;from exashard.ingest.sources import Source;from exashard.ingest.plan import plan;"
        f"t=time.perf_counter();n=sum(len(t.units) for t in plan(Source({root!r}).units()));"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent across exec
        "hwm=[int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0];"
        "print(n, time.perf_counter()-t, hwm/1024)"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return {"objects": int(out[0]), "seconds": float(out[1]), "peak_rss_mb": float(out[2])}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--plan-objects", type=int, default=1_000_000)
    ap.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "exashard-bench-ingest"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "ingest.json"))
    args = ap.parse_args(argv)
    os.makedirs(args.work, exist_ok=True)
    raw = os.path.join(args.work, "raw")
    if not os.path.exists(raw):
        print(f"making {args.samples} JPEG + JSON samples ...", flush=True)
        make_raw(raw, args.samples)
    tars = os.path.join(args.work, "tars")
    if not os.path.exists(tars):
        make_tars(raw, tars)
    raw_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(raw) for f in fs)
    keyring = os.path.join(args.work, "keyring.json")
    if not os.path.exists(keyring):
        LocalKeyring.create(keyring)
    try:
        sys.path.insert(0, os.path.dirname(__file__))
        import litdata  # noqa: F401
        import peers  # noqa: F401
    except ImportError:
        peers = None
    from distributed import Client

    from exashard.ingest.run import local_cluster

    times: dict[str, list[float]] = {}
    for r in range(args.runs):
        for name in ("disk fsync'd write", "exashard ingest (2 workers)", "litdata optimize (zstd)",
                     "webdataset ShardWriter + fsync", "exashard 1 worker -> memory://", "exashard 2 workers -> memory://",
                     "exashard 1 worker, tar input -> memory://", "exashard 2 workers, tar input -> memory://"):
            out = os.path.join(args.work, f"out-{r}")
            shutil.rmtree(out, ignore_errors=True)
            cluster = client = None
            if name.startswith("exashard"):
                # A fresh cluster per measurement, started (and its workers' imports
                # done) before the clock: only the cluster under test runs (an idle one
                # would still take CPU for its heartbeats and monitors on this small machine).
                n = 1 if "1 worker" in name else 2
                cluster = local_cluster(n)  # exashard's embedded default cluster
                client = Client(cluster)
                client.wait_for_workers(n)
                client.run(_warm)
            t = time.perf_counter()
            if name.startswith("disk"):
                os.makedirs(out)
                speed = fsync_speed(out)
                times.setdefault(name, []).append(raw_bytes / speed)
                continue
            if name == "exashard ingest (2 workers)":
                rep = run_exashard(raw, out, keyring, 2, client)
                assert rep.samples == args.samples and not rep.quarantined, (rep.samples, rep.quarantined[:3])
            elif name.startswith("litdata"):
                if peers is None:
                    continue
                peers.write_litdata(folder_samples(raw), out, compression="zstd")
            elif name.startswith("webdataset"):
                run_wds(raw, out)
            else:
                _clear_memory_fs()  # the driver's manifests of earlier runs (a rerun would skip committed tasks)
                src = tars if "tar input" in name else raw
                rep = run_exashard(src, f"memory://bench-{r}-{name[9]}-{'t' if src == tars else 'f'}", keyring, 0, client)
                if rep.samples != args.samples:
                    print(f"WARNING {name}: {rep.samples} samples, {len(rep.quarantined)} quarantined", rep.quarantined[:3])
            times.setdefault(name, []).append(time.perf_counter() - t)
            if client is not None:
                client.close()
                cluster.close()
            shutil.rmtree(out, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    res: dict[str, Any] = {"samples": args.samples, "raw_bytes": raw_bytes, "runs": args.runs, "median_s": med,
                           "runs_s": times, "MB_per_s": {k: raw_bytes / v / 1e6 for k, v in med.items()}}
    ex = med["exashard ingest (2 workers)"]
    ratios = {"vs webdataset": med["webdataset ShardWriter + fsync"] / ex,
              "of fsync'd disk speed": med["disk fsync'd write"] / ex,
              "speed-up 1 -> 2 workers": med["exashard 1 worker -> memory://"] / med["exashard 2 workers -> memory://"],
              "speed-up 1 -> 2 workers, tar input": med["exashard 1 worker, tar input -> memory://"]
              / med["exashard 2 workers, tar input -> memory://"]}
    if "litdata optimize (zstd)" in med:
        ratios["vs litdata"] = med["litdata optimize (zstd)"] / ex
    res["ratios"] = ratios
    print(f"\n{'writer':36s} {'MB/s':>8s}")
    for k, v in res["MB_per_s"].items():
        print(f"{k:36s} {v:8.1f}")
    for k, v in ratios.items():
        print(f"exashard {k}: {v:.2f}")
    if args.plan_objects:
        res["plan"] = plan_memory(args.plan_objects, args.work)
        print(f"planning {res['plan']['objects']} objects: {res['plan']['seconds']:.1f}s, driver peak RSS {res['plan']['peak_rss_mb']:.0f} MB")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)
    print(f"figures written to {args.out}")


if __name__ == "__main__":
    main()
