"""Ingest memory benchmark: ≥ 5 GB of input, peak RSS of the driver and of each worker.

Reuses the raw folder of ``bench/ingest.py`` and hard-links it ``--copies`` times under
distinct names (distinct inputs to exashard, no extra disk), ingests all copies in one
run on a LocalCluster of 2 workers into local shards, and reads peak RSS (``VmHWM``)
from the driver and from every worker process at the end.

    python bench/ingest_rss.py --copies 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time

from exashard.privacy.keys import LocalKeyring


def vm_hwm_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "exashard-bench-ingest"))
    ap.add_argument("--copies", type=int, default=5)
    ap.add_argument("--shard-size", type=int, default=256 << 20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory-out", action="store_true", help="write shards to memory:// in the workers (CPU stages only)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "ingest_rss.json"))
    args = ap.parse_args()
    raw = os.path.join(args.work, "raw")
    if not os.path.isdir(raw):
        raise SystemExit(f"run bench/ingest.py first (no {raw})")
    sources = []
    for c in range(args.copies):
        dst = os.path.join(args.work, f"copy{c}")
        if not os.path.exists(dst):
            shutil.copytree(raw, dst, copy_function=os.link)
        sources.append(dst)
    total = sum(os.path.getsize(os.path.join(d, f)) for s in sources for d, _, fs in os.walk(s) for f in fs)
    keyring = os.path.join(args.work, "keyring.json")
    if not os.path.exists(keyring):
        LocalKeyring.create(keyring)
    out = "memory://rss-out" if args.memory_out else os.path.join(args.work, "rss-out")
    if not args.memory_out:
        shutil.rmtree(out, ignore_errors=True)
    from distributed import Client

    import exashard
    from exashard.ingest.run import local_cluster

    cluster = local_cluster(args.workers)  # exashard's embedded default
    client = Client(cluster)
    before = vm_hwm_mb()
    t = time.perf_counter()
    rep = exashard.ingest(sources, out, keyring=keyring, client=client, shard_size=args.shard_size, progress=False)
    dt = time.perf_counter() - t
    workers = client.run(vm_hwm_mb)
    client.close()
    cluster.close()
    res = {
        "input_bytes": total, "samples": rep.samples, "shards": rep.shards, "seconds": dt,
        "MB_per_s": total / dt / 1e6, "shard_size": args.shard_size, "workers": args.workers,
        "output": "memory://" if args.memory_out else "local disk",
        "driver_peak_rss_mb": vm_hwm_mb(), "driver_rss_before_mb": before,
        "worker_peak_rss_mb": sorted(workers.values()),
        "worker_target_mb": 2 * args.shard_size / 2**20 + 300,
    }
    print(json.dumps(res, indent=2))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)
    if not args.memory_out:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
