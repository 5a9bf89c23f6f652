"""Scale simulation (issue 8, part 5): what the driver, the manifest and the loader cost as a
dataset grows, at the largest sizes this machine allows. docs/SCALE.md models 1 EB from it.

Each part runs in its own subprocess, so its RSS figures start clean:

* ``plan``: 10,000,000 synthetic units (a jpg + json ``FileRef`` pair, no files) through
  the ingest driver's path, lazily: the ledger lookup of each input hash, then ``plan()``
  into 128 MiB tasks. RSS sampled every 100,000 units.
* ``ledger``: memory and load time per input hash in the ledger's in-memory set.
* ``commits``: 100,000 synthetic shard rows (shaped like ingest's, ~1 KB of JSON each)
  committed to a local dataset by ``Manifest.commit``, 400 rows per version (250
  versions: every commit re-reads the full state, so 1,000 versions of 100 rows would take
  about 40 minutes here); time and RSS of every commit, checkpoint commits counted apart.
* ``read`` / ``loader``: ``Manifest.read()`` and ``ShardDataset()`` at 10k, 50k and 100k
  rows: time, RSS, manifest bytes read. The shard files do not exist: construction must
  not open them.
* ``sidecar``: a proposed per-checkpoint table of sample counts (and id hashes): its size,
  and the time to decode it and build the epoch order, at 100k and 10M shards.
* ``task``: one ingest task run in-process (no Dask) on ~1 MiB and ~18 KB JPEG + JSON
  inputs (default policy, encrypted, to ``memory://``): per-core ingest speed by input size.

    .venv/bin/python bench/scale.py            # full sizes (about 15 minutes here)
    .venv/bin/python bench/scale.py --quick    # a smoke run (seconds)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from array import array
from collections.abc import Callable, Iterator
from typing import Any

MiB = 1 << 20
SECRET = bytes(range(32))  # a fixed pseudonym key: the ledger hashes are reproducible
CLOCK = "2026-11-27T00:00:00.000000Z"


def status_mb(key: str) -> float:
    """``VmRSS`` / ``VmHWM`` of this process in MB (from /proc/self/status)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    return status_mb("VmRSS")


# -- plan: 10M synthetic units through the driver's lazy path ---------------------------------


def synthetic_units(n: int, every: int, samples: list[tuple[int, float]]) -> Iterator[Any]:
    """``n`` units of a jpg (200 KB - 2 MB, mean 1.1 MB) + a 300-byte json sidecar, 1,000 per
    folder, with S3-like URLs and etags; RSS is sampled every ``every`` units."""
    from exashard.ingest.sources import FileRef, Unit

    for i in range(n):
        if i % every == 0:
            samples.append((i, rss_mb()))
        name = f"{i // 1000:07d}/{i:010d}"
        url = "s3://raw-bucket/photos/" + name
        jpg = 200_000 + (i * 2_654_435_761) % 1_800_001
        yield Unit("files", name, (("jpg", FileRef(url + ".jpg", jpg, f"{i:032x}")),
                                   ("json", FileRef(url + ".json", 300, f"{n + i:032x}"))))
    samples.append((n, rss_mb()))


def part_plan(p: dict[str, Any]) -> dict[str, Any]:
    from exashard.ingest.ledger import input_digest
    from exashard.ingest.plan import plan

    n, every = p["units"], p["every"]
    base = rss_mb()
    k = min(n, 1_000_000)
    t = time.perf_counter()
    for _ in synthetic_units(k, k + 1, []):  # generating units alone, to separate the driver's cost
        pass
    gen_s = time.perf_counter() - t
    seen: set[str] = set()  # an empty ledger (a first run): every unit is new
    samples: list[tuple[int, float]] = []

    def new_units() -> Iterator[Any]:  # as ingest.run.ingest's new_units
        for u in synthetic_units(n, every, samples):
            if input_digest(SECRET, u.identity) not in seen:
                yield u

    tasks = units = nbytes = 0
    t = time.perf_counter()
    for task in plan(new_units(), max_bytes=p["task_bytes"]):
        tasks += 1
        units += len(task.units)
        nbytes += task.size
    dt = time.perf_counter() - t
    assert units == n, (units, n)
    step = max(n // 10, 1)
    return {
        "units": n, "tasks": tasks, "task_bytes": p["task_bytes"], "units_per_task": units / tasks,
        "input_bytes": nbytes, "seconds": dt, "units_per_s": n / dt, "generate_only_units_per_s": k / gen_s,
        "driver_us_per_unit": (dt / n - gen_s / k) * 1e6, "rss_before_mb": base,
        "rss_mb_at": {str(i): r for i, r in samples if i % step == 0},
        "rss_samples": samples, "peak_rss_mb": status_mb("VmHWM"),
    }


# -- ledger: the in-memory set of input hashes ------------------------------------------------


def part_ledger(p: dict[str, Any]) -> dict[str, Any]:
    from exashard.ingest.ledger import input_digest

    n = p["inputs"]
    r0 = rss_mb()
    t = time.perf_counter()
    seen = {input_digest(SECRET, f"s3://raw-bucket/photos/{i:010d}.jpg\x00{i}\x00{i:032x}") for i in range(n)}
    digest_s = time.perf_counter() - t
    r1 = rss_mb()
    data = json.dumps({"format": "exashard-ledger", "inputs": sorted(seen)}, separators=(",", ":")).encode()
    del seen
    t = time.perf_counter()
    again = set(json.loads(data)["inputs"])  # what Ledger.load does with each segment
    load_s = time.perf_counter() - t
    assert len(again) == n
    return {"inputs": n, "set_bytes_per_input": (r1 - r0) * MiB / n, "digest_us_per_input": digest_s / n * 1e6,
            "segment_bytes_per_input": len(data) / n, "load_us_per_input": load_s / n * 1e6}


# -- commits: 100k rows over many versions -----------------------------------------------------


def synthetic_row(i: int) -> Any:
    """A shard row shaped like an encrypted ingest shard's (privacy stats, key and subjects refs)."""
    from exashard.shards.writer import ShardInfo

    h = hashlib.sha256(i.to_bytes(8, "little")).hexdigest()
    sid = f"t{h[:19]}-000000"
    n = 200 + i % 80
    stats = {"action.json": n, "action.redact": n, "action.strip": n, "entity.EMAIL_ADDRESS": i % 7,
             "entity.PHONE_NUMBER": i % 5, "json.dropped": 4 * n, "json.pseudonymized": n, "media.exif": n,
             "media.gps": n // 3, "media.orientation_kept": n}
    return ShardInfo(
        id=sid, path=f"shards/{sid}.tar.zst", samples=n, bytes=268_000_000 + i % 400_000, tar_bytes=268_400_000,
        frames=128, checksum="sha256:" + hashlib.sha256(h.encode()).hexdigest(), index_offset=268_000_000,
        index_size=9_000 + n * 40, created=CLOCK,
        encryption={"key_ref": f"keys/{sid}.json", "keyring": "kr-0123456789abcdef",
                    "scheme": "aes256gcm-hkdf-stream-v1", "segment_size": 262144},
        extra={"privacy": {"stats": stats, "subjects": n, "subjects_ref": f"subjects/{sid}.json"}},
    )


def part_commits(p: dict[str, Any]) -> dict[str, Any]:
    from exashard.ingest.ledger import commit_meta, input_digest
    from exashard.shards.manifest import Manifest, checkpoint_name

    root, per, n = p["root"], p["rows_per_commit"], p["commits"]
    m = Manifest(root, clock=lambda: CLOCK)
    base = rss_mb()
    ms: list[float] = []
    ckpt: list[bool] = []
    rss: list[float] = []
    for c in range(n):
        rows = [synthetic_row(c * per + j) for j in range(per)]
        meta = commit_meta(rows[0].id.split("-")[0], [input_digest(SECRET, r.id) for r in rows])
        t = time.perf_counter()
        v = m.commit(add=rows, operation="ingest", meta=meta)
        ms.append((time.perf_counter() - t) * 1e3)
        ckpt.append(os.path.exists(os.path.join(root, checkpoint_name(v))))
        rss.append(rss_mb())
    deciles = []
    for d in range(10):
        lo, hi = d * n // 10, (d + 1) * n // 10
        plain = [ms[i] for i in range(lo, hi) if not ckpt[i]]
        cps = [ms[i] for i in range(lo, hi) if ckpt[i]]
        deciles.append({
            "commits": [lo + 1, hi], "rows_after": hi * per,
            "median_ms": statistics.median(plain) if plain else None,
            "checkpoint_median_ms": statistics.median(cps) if cps else None,
            "max_ms": max(ms[lo:hi]), "rss_end_mb": rss[hi - 1],
        })
    # least squares of plain commit time against the rows already committed
    xs = [i * per for i in range(n) if not ckpt[i]]
    ys = [ms[i] for i in range(n) if not ckpt[i]]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    last_cp = max(i + 1 for i in range(n) if ckpt[i])
    row_json = len(json.dumps(synthetic_row(0).to_dict(), sort_keys=True, separators=(",", ":")))
    return {
        "rows": n * per, "commits": n, "rows_per_commit": per, "checkpoint_interval": m.checkpoint_interval,
        "row_json_bytes": row_json, "total_s": sum(ms) / 1e3, "rss_before_mb": base, "peak_rss_mb": status_mb("VmHWM"),
        "deciles": deciles, "plain_ms_per_1k_rows": slope * 1000, "plain_ms_intercept": my - slope * mx,
        "commit_file_bytes": os.path.getsize(os.path.join(root, f"manifest/v{n:020d}.json")),
        "checkpoint_bytes": os.path.getsize(os.path.join(root, checkpoint_name(last_cp))),
        "commit_ms": ms, "checkpoint": ckpt,
    }


# -- read / loader: opening the dataset at 10k, 50k, 100k rows ---------------------------------


def _count_reads() -> dict[str, Any]:
    """Count what the local filesystem hands out: manifest bytes via ``cat_file``, and any
    attempt to open a shard file."""
    from fsspec.implementations.local import LocalFileSystem

    from exashard.shards import storage

    seen: dict[str, Any] = {"bytes": 0, "files": 0, "shard_opens": 0}
    cat, local_init = LocalFileSystem.cat_file, storage.LocalSource.__init__

    def counting_cat(self: Any, path: str, *a: Any, **k: Any) -> bytes:
        data = cat(self, path, *a, **k)
        seen["bytes"] += len(data)
        seen["files"] += 1
        return data

    def counting_open(self: Any, path: str, name: str | None = None) -> None:
        seen["shard_opens"] += 1
        local_init(self, path, name)

    LocalFileSystem.cat_file = counting_cat  # type: ignore[method-assign]
    storage.LocalSource.__init__ = counting_open  # type: ignore[method-assign]
    return seen


def part_open(p: dict[str, Any]) -> dict[str, Any]:
    if p["what"] == "loader":
        from exashard.shards import loader  # imports torch: before the baseline
    from exashard.shards.manifest import Manifest

    seen = _count_reads()
    r0 = rss_mb()
    t = time.perf_counter()
    if p["what"] == "read":
        n = len(Manifest(p["root"]).read(p["version"]).shards)
        out: dict[str, Any] = {}
    else:
        ds = loader.ShardDataset(p["root"], version=p["version"], shuffle=True, seed=1)
        n = len(ds.rows)
        t1 = time.perf_counter()
        ds.plan()
        out = {"plan_s": time.perf_counter() - t1}
    out.update(seconds=time.perf_counter() - t - out.get("plan_s", 0), rows=n, rss_delta_mb=rss_mb() - r0,
               peak_delta_mb=status_mb("VmHWM") - r0, manifest_bytes_read=seen["bytes"],
               manifest_files_read=seen["files"], shard_opens=seen["shard_opens"])
    return out


# -- sidecar: the proposed compact table a loader could start from ------------------------------


def part_sidecar(p: dict[str, Any]) -> dict[str, Any]:
    import zstandard

    from exashard.shards.order import EpochPlan

    n = p["shards"]
    rnd = random.Random(n)
    counts = array("I", (200 + rnd.randrange(80) for _ in range(n)))
    ids = array("Q", (rnd.getrandbits(64) for _ in range(n)))  # 64-bit hashes of shard ids (for removes)
    out: dict[str, Any] = {"shards": n}
    for label, raw in (("counts", counts.tobytes()), ("counts_and_id_hashes", counts.tobytes() + ids.tobytes())):
        blob = zstandard.ZstdCompressor(level=3).compress(raw)
        r0 = rss_mb()
        t = time.perf_counter()
        back = array("I")
        back.frombytes(zstandard.ZstdDecompressor().decompress(blob)[: 4 * n])
        decode_s = time.perf_counter() - t
        t = time.perf_counter()
        EpochPlan(back, seed=1, epoch=0, version=1, rank=0, world=1024, shuffle=True, window=4, block=8)
        out[label] = {"bytes": len(blob), "bytes_per_shard": len(blob) / n, "decode_s": decode_s,
                      "epoch_plan_s": time.perf_counter() - t, "rss_delta_mb": rss_mb() - r0}
    return out


# -- task: per-core ingest speed by input size --------------------------------------------------


def _make_inputs(folder: str, n: int, side: int, seed: int) -> int:
    from PIL import Image

    rnd = random.Random(seed)
    os.makedirs(folder, exist_ok=True)
    exif = Image.Exif()
    exif[0x0112] = 1
    exif[0x8825] = {1: "N", 2: (37.0, 46.0, 0.0), 3: "W", 4: (122.0, 25.0, 0.0)}
    total = 0
    for i in range(n):
        p = os.path.join(folder, f"{i:06d}.jpg")
        Image.frombytes("RGB", (side, side * 3 // 4), rnd.randbytes(side * side * 9 // 4)).save(
            p, quality=90, exif=exif.tobytes())
        with open(os.path.join(folder, f"{i:06d}.json"), "w") as f:
            json.dump({"user_id": i, "caption": f"photo {i} by u{i}@example.com" if i % 10 == 0 else f"photo {i}"}, f)
        total += os.path.getsize(p) + os.path.getsize(f.name)
    return total


def part_task(p: dict[str, Any]) -> dict[str, Any]:
    import fsspec

    from exashard.ingest.plan import Task, task_id
    from exashard.ingest.run import run_task
    from exashard.ingest.sources import Source
    from exashard.privacy.keys import LocalKeyring
    from exashard.privacy.policy import default_policy

    kr_path = os.path.join(p["work"], "keyring.json")
    kr = LocalKeyring(kr_path) if os.path.exists(kr_path) else LocalKeyring.create(kr_path)
    sets = {}
    for label, n, side in (("1MiB", p["big"], 1216), ("18KB", p["small"], 160)):
        folder = os.path.join(p["work"], f"task-{label}")
        nbytes = _make_inputs(folder, n, side, seed=side) if not os.path.isdir(folder) else sum(
            os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
        units = tuple(Source(folder).units())
        sets[label] = (Task(task_id(units), units), nbytes, n)
    times: dict[str, list[float]] = {k: [] for k in sets}
    mem = fsspec.filesystem("memory")
    for r in range(p["runs"] + 1):  # the first round warms the page cache and imports
        for label, (task, _, n) in sets.items():
            mem.store.clear()
            t = time.perf_counter()
            res = run_task(task, f"memory://task-{label}", storage_options=None, source_options=None,
                           policy=default_policy(), secret=kr.hmac_key(), dataset_id="0" * 32, data_keys=None,
                           keyring=kr, encrypt=True, shard_size=256 * MiB)
            if r:
                times[label].append(time.perf_counter() - t)
            assert res.samples == n and not res.quarantined, (label, res.samples, res.quarantined[:2])
    out: dict[str, Any] = {"runs": p["runs"], "output": "memory://", "policy": "default", "encrypted": True}
    for label, (_, nbytes, n) in sets.items():
        med = statistics.median(times[label])
        out[label] = {"samples": n, "input_bytes": nbytes, "runs_s": times[label], "median_s": med,
                      "MB_per_s": nbytes / med / 1e6, "samples_per_s": n / med}
    big, small = out["1MiB"], out["18KB"]
    # per-sample time = fixed + bytes x per-byte, solved from the two sizes
    tb, ts = big["median_s"] / big["samples"], small["median_s"] / small["samples"]
    sb, ss = big["input_bytes"] / big["samples"], small["input_bytes"] / small["samples"]
    per_byte = (tb - ts) / (sb - ss)
    out["model"] = {"fixed_us_per_sample": (ts - per_byte * ss) * 1e6, "ns_per_byte": per_byte * 1e9}
    return out


PARTS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "plan": part_plan, "ledger": part_ledger, "commits": part_commits, "open": part_open,
    "sidecar": part_sidecar, "task": part_task,
}


def run_part(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run one part in a fresh interpreter; its result comes back as JSON on stdout."""
    print(f"-- {name} {json.dumps({k: v for k, v in params.items() if k not in ('root', 'work')})}", flush=True)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--part", name, "--params", json.dumps(params)],
                          stdout=subprocess.PIPE, text=True, check=True)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"   done in {time.perf_counter() - t:.1f}s", flush=True)
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", type=int, default=10_000_000)
    ap.add_argument("--ledger-inputs", type=int, default=2_000_000)
    ap.add_argument("--commits", type=int, default=250)
    ap.add_argument("--rows-per-commit", type=int, default=400)
    ap.add_argument("--sidecar-shards", default="100000,10000000")
    ap.add_argument("--task-runs", type=int, default=3)
    ap.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "exashard-bench-scale"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "scale.json"))
    ap.add_argument("--quick", action="store_true", help="small sizes: checks the script works")
    ap.add_argument("--only", default=None, help="rerun these parts (plan,ledger,commits,sidecar,task; commits includes "
                    "read/loader) and keep the other figures of --out")
    ap.add_argument("--part", choices=sorted(PARTS), help=argparse.SUPPRESS)
    ap.add_argument("--params", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.part:
        print(json.dumps(PARTS[args.part](json.loads(args.params))))
        return
    if args.quick:
        args.units, args.ledger_inputs, args.commits, args.rows_per_commit = 200_000, 50_000, 50, 20
        args.sidecar_shards, args.task_runs = "1000,100000", 1
        args.out = os.path.join(args.work, "scale-quick.json")
    t0 = time.perf_counter()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    root = os.path.join(args.work, "dataset")
    rows = args.commits * args.rows_per_commit
    only = set(args.only.split(",")) if args.only else set(PARTS) - {"open"}
    res: dict[str, Any] = {}
    if args.only:
        with open(args.out) as f:
            res = json.load(f)
        res.setdefault("reruns", []).append({"parts": sorted(only), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    res.update({"benchmark": "scale", "python": sys.version.split()[0],
                "machine": {"cpus": os.cpu_count(), "note": "shared 2-core VM; other work ran at times"}})
    res.setdefault("started", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    if "plan" in only:
        res["plan"] = run_part("plan", {"units": args.units, "every": 100_000 if not args.quick else 10_000,
                                        "task_bytes": 128 * MiB})
    if "ledger" in only:
        res["ledger"] = run_part("ledger", {"inputs": args.ledger_inputs})
    if "commits" in only:
        res["commits"] = run_part("commits", {"root": root, "commits": args.commits, "rows_per_commit": args.rows_per_commit})
        res["read"], res["loader"] = {}, {}
        for frac in (10, 2, 1):
            v = args.commits // frac
            for what in ("read", "loader"):
                res[what][str(v * args.rows_per_commit)] = run_part("open", {"root": root, "version": v, "what": what})
    if "sidecar" in only:
        res["sidecar"] = {s: run_part("sidecar", {"shards": int(s)}) for s in args.sidecar_shards.split(",")}
    if "task" in only:
        big, small = (128, 4000) if not args.quick else (8, 200)
        res["task"] = run_part("task", {"work": args.work, "big": big, "small": small, "runs": args.task_runs})
    res["seconds"] = time.perf_counter() - t0
    print_summary(res, rows)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    print(f"figures written to {args.out}")
    shutil.rmtree(args.work, ignore_errors=True)


def print_summary(res: dict[str, Any], rows: int) -> None:
    p = res["plan"]
    print(f"\nplan: {p['units']:,} units -> {p['tasks']:,} tasks at {p['units_per_s']:,.0f} units/s "
          f"(generation alone {p['generate_only_units_per_s']:,.0f}/s; driver {p['driver_us_per_unit']:.2f} us/unit)")
    print("  RSS MB by units planned: " + ", ".join(f"{int(k):,}: {v:.0f}" for k, v in p["rss_mb_at"].items()))
    lg = res["ledger"]
    print(f"ledger: {lg['set_bytes_per_input']:.0f} B RAM and {lg['segment_bytes_per_input']:.0f} B stored per input; "
          f"load {lg['load_us_per_input']:.2f} us/input")
    c = res["commits"]
    print(f"commits: {c['commits']} x {c['rows_per_commit']} rows ({c['row_json_bytes']} B/row) in {c['total_s']:.0f}s; "
          f"plain commit = {c['plain_ms_intercept']:.1f} ms + {c['plain_ms_per_1k_rows']:.2f} ms per 1k rows")
    for d in c["deciles"]:
        print(f"  rows {d['rows_after']:>7,}: median {d['median_ms'] or 0:7.1f} ms, checkpoint "
              f"{d['checkpoint_median_ms'] or 0:7.1f} ms, max {d['max_ms']:7.1f} ms, RSS {d['rss_end_mb']:.0f} MB")
    for what in ("read", "loader"):
        for n, r in res[what].items():
            print(f"{what} at {int(n):,} rows: {r['seconds']:.2f}s, +{r['rss_delta_mb']:.0f} MB RSS (peak +"
                  f"{r['peak_delta_mb']:.0f}), {r['manifest_bytes_read'] / 1e6:.1f} MB of manifest in "
                  f"{r['manifest_files_read']} files, {r['shard_opens']} shard opens"
                  + (f", epoch plan {r['plan_s']:.2f}s" if "plan_s" in r else ""))
    for n, s in res["sidecar"].items():
        for label in ("counts", "counts_and_id_hashes"):
            x = s[label]
            print(f"sidecar {label} at {int(n):,} shards: {x['bytes'] / 1e6:.2f} MB ({x['bytes_per_shard']:.1f} B/shard), "
                  f"decode {x['decode_s']:.3f}s, epoch plan {x['epoch_plan_s']:.2f}s")
    for label in ("1MiB", "18KB"):
        t = res["task"][label]
        print(f"task {label}: {t['MB_per_s']:.1f} MB/s, {t['samples_per_s']:.0f} samples/s per core")
    m = res["task"]["model"]
    print(f"  per sample: {m['fixed_us_per_sample']:.0f} us + {m['ns_per_byte']:.2f} ns/byte")


if __name__ == "__main__":
    main()
