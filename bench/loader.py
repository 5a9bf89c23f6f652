"""Loader benchmark: exashard's ``ShardDataset`` / ``ShardLoader`` on encrypted shards against
webdataset, MosaicML streaming and litdata, in the main process and with 2 DataLoader workers.

Two sample sets (``big`` = 100 KiB incompressible + JSON, ``small`` = ~1 KiB text + JSON, from
``bench/shard_read.py``), each written once per format with the same shard size (64 MiB):
exashard encrypted (AES-GCM + zstd), webdataset plain tar, MosaicML MDS with whole-shard zstd,
litdata tuple rows with whole-chunk zstd. Every reader goes through every sample in order, with
a warm page cache and no decoding; with workers, all use the same batch size and a collate that
makes per-field lists of ``bytes``. Fields are ``bytes`` everywhere: litdata's in-process
memoryviews of its mmap'd chunks are copied (one extra row keeps them as views; a view reads no
payload byte, so compare it with exashard's zero-copy row at most).

The peers decompress into a local cache before they read, so each is measured twice:

* clean cache: the first epoch, the cache emptied before each run (MDS: ``remote`` = the
  dataset folder, ``local`` = the cache; litdata: the dataset read through its ``local:``
  remote prefix into ``cache_dir``);
* warm cache: later epochs, the decompressed cache kept between runs;

while exashard decrypts and decompresses every epoch, in memory, and has no cache. The
AES-GCM + zstd and zstd-only ceilings (``shard_read.py``) are measured in the same run.
Memory is measured in one more epoch of every reader, untimed: through it, a thread samples
the Rss and Pss of this process and its children (DataLoader workers) every 50 ms, from
``/proc/<pid>/smaps_rollup`` (the timed runs carry no sampler: each sample costs ~10 ms of CPU).

Readers run ``--runs`` times, interleaved; medians are reported and written as JSON, with a chart.
The warm-cache peers and exashard run once more before timing (the page cache is warm from
writing). Run from ``.bench-venv`` (see docs/BENCHMARKS.md):

    .bench-venv/bin/python bench/loader.py              # full sizes, 10-13 minutes on 2 cores
    .bench-venv/bin/python bench/loader.py --quick      # seconds, for a smoke test
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import peers  # noqa: E402
from shard_read import _payload, crypto_ceiling, make_samples, zstd_ceiling  # noqa: E402

import exashard  # noqa: E402
from exashard.privacy.keys import LocalKeyring  # noqa: E402
from exashard.shards import ShardWriter  # noqa: E402

MiB = 1 << 20
Reader = Callable[[], tuple[int, int]]
EXASHARD = "exashard encrypted"
EX_BATCHES = "exashard encrypted, ShardLoader batches"
EX_ARROW = "exashard encrypted, ShardLoader Arrow batches"
WDS = "webdataset (plain tar)"
MDS_COLD, MDS_WARM = "mosaic (zstd), clean cache", "mosaic (zstd), warm cache"
LIT_COLD, LIT_WARM = "litdata (zstd), clean cache", "litdata (zstd), warm cache"
LIT_VIEWS = "litdata (zstd), warm cache, mmap views"
CRYPTO_CEIL, ZSTD_CEIL = "ceiling: AES-GCM + zstd, 2 threads", "ceiling: zstd only, 2 threads"


@dataclass(frozen=True, slots=True)
class Entry:
    """One reader in one mode. ``prepare`` runs untimed before each run (empties a cache,
    builds a ceiling's buffers) and returns the call that is timed."""

    reader: str
    workers: int
    prepare: Callable[[], Reader]
    warmup: bool = False  # a run before timing: fills a warm cache (the page cache is warm from writing)

    @property
    def mode(self) -> str:
        return f"{self.workers} workers" if self.workers else "main"

    @property
    def name(self) -> str:
        return f"{self.reader} | {self.mode}"


# -- memory ------------------------------------------------------------------------------


def _rollup(pid: int) -> tuple[int, int]:
    """(Rss, Pss) of one process in bytes; (0, 0) if it has gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) << 10
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1]) << 10
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return rss, pss


class MemorySampler:
    """Samples Rss and Pss summed over this process and its children (psutil finds them) every
    ``interval`` seconds while in use. Pss is the fair sum: forked workers share pages with the
    parent, which a sum of Rss counts once per process."""

    def __init__(self, interval: float = 0.05) -> None:
        import psutil

        self.me, self.interval = psutil.Process(), interval
        self.start_rss = self.start_pss = self.peak_rss = self.peak_pss = self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mem-sampler", daemon=True)

    def sample(self) -> tuple[int, int]:
        import psutil

        try:
            pids = [self.me.pid] + [c.pid for c in self.me.children(recursive=True)]
        except psutil.Error:
            pids = [self.me.pid]
        both = [_rollup(p) for p in pids]
        rss, pss = sum(r for r, _ in both), sum(p for _, p in both)
        self.peak_rss, self.peak_pss, self.samples = max(self.peak_rss, rss), max(self.peak_pss, pss), self.samples + 1
        return rss, pss

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> MemorySampler:
        self.start_rss, self.start_pss = self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


# -- writing -----------------------------------------------------------------------------


def _tally(samples: Iterable[dict[str, Any]], into: list[int]) -> Iterator[dict[str, Any]]:
    for s in samples:
        into[0], into[1] = into[0] + 1, into[1] + _payload(s)
        yield s


def write_sets(kind: str, n: int, work: str, keyring: str, shard_size: int) -> dict[str, Any]:
    """Each format once, ``shard_size`` per shard/chunk; exashard plain too (the zstd ceiling's
    frames). Returns the paths, write times and the expected ``(samples, payload)``."""
    out: dict[str, Any] = {"write_s": {}}

    def step(label: str, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        r = fn()
        out["write_s"][label] = time.perf_counter() - t
        return r

    tally = [0, 0]
    for label, encrypt in (("plain", False), ("encrypted", True)):
        root = out[label] = os.path.join(work, f"{kind}-exashard-{label}")
        shutil.rmtree(root, ignore_errors=True)

        def write(root: str = root, encrypt: bool = encrypt) -> None:
            samples = _tally(make_samples(kind, n), tally) if encrypt else make_samples(kind, n)
            with ShardWriter(root, name="bench", encrypt=encrypt, keyring=keyring if encrypt else None, target_size=shard_size) as w:
                for s in samples:
                    w.write(s)

        step(f"exashard {label}", write)
    out["expected"] = tuple(tally)
    out["wds_urls"] = step("webdataset", lambda: peers.write_wds(make_samples(kind, n), os.path.join(work, f"{kind}-wds"), maxsize=shard_size))
    out["mds"] = os.path.join(work, f"{kind}-mds")
    step("mosaic zstd", lambda: peers.write_mds(make_samples(kind, n), out["mds"], compression="zstd", size_limit=shard_size))
    # tuple rows: litdata skips zstd for bytes-heavy dict rows (see bench/peers.py)
    out["litdata"] = os.path.join(work, f"{kind}-litdata")
    step("litdata zstd", lambda: peers.write_litdata(make_samples(kind, n), out["litdata"], compression="zstd",
                                                     chunk_bytes=shard_size, as_tuple=True))
    return out


# -- readers -----------------------------------------------------------------------------


def read_exashard(root: str, keyring: str, *, workers: int = 0, batch_size: int = 64, batches: bool = False,
                  batch_format: str = "dict", **options: Any) -> tuple[int, int]:
    """One epoch of ``exashard.ShardDataset``: sample by sample in this process, or batches from
    ``exashard.ShardLoader`` (``batches``, or ``workers`` DataLoader workers; ``batch_format``)."""
    ds = exashard.ShardDataset(root, keyring=keyring, **options)
    if workers == 0 and not batches:
        n = b = 0
        for s in ds:
            n, b = n + 1, b + _payload(s)
        return n, b
    loader = exashard.ShardLoader(ds, batch_size=batch_size, num_workers=workers, batch_format=batch_format)
    return peers.count(loader, batched=True)


def _emptied(cache: str, fn: Reader) -> Callable[[], Reader]:
    def prepare() -> Reader:
        shutil.rmtree(cache, ignore_errors=True)
        return fn

    return prepare


def _ready(fn: Reader) -> Callable[[], Reader]:
    return lambda: fn


def _ceiling(build: Callable[[], Reader]) -> Callable[[], Reader]:
    """Built for each run and run once untimed, so the main process does not hold every shard
    in memory through the exashard epochs, and the timed run touches no fresh pages."""

    def prepare() -> Reader:
        go = build()
        go()
        return go

    return prepare


def entries(sets: dict[str, Any], kind: str, work: str, keyring: str, args: argparse.Namespace) -> list[Entry]:
    enc, urls, mds, lit, bs = sets["encrypted"], sets["wds_urls"], sets["mds"], sets["litdata"], args.batch_size
    cache = os.path.join(work, f"{kind}-cache")
    opts = {"prefetch": args.prefetch, "batch_size": bs}  # batch_size: ShardLoader's
    out = [
        Entry(CRYPTO_CEIL, 0, _ceiling(lambda: crypto_ceiling(enc, keyring))),
        Entry(ZSTD_CEIL, 0, _ceiling(lambda: zstd_ceiling(sets["plain"]))),
        Entry(f"{EXASHARD}, zero-copy", 0, _ready(lambda: read_exashard(enc, keyring, zero_copy=True, **opts)), warmup=True),
        Entry(f"{EXASHARD}, shuffled", 0, _ready(lambda: read_exashard(enc, keyring, shuffle=True, **opts)), warmup=True),
        Entry(EX_BATCHES, 0, _ready(lambda: read_exashard(enc, keyring, batches=True, **opts)), warmup=True),
        Entry(EX_ARROW, 0, _ready(lambda: read_exashard(enc, keyring, batches=True, batch_format="arrow", **opts)), warmup=True),
    ]
    warm_mds, warm_lit = os.path.join(cache, "mds-warm"), os.path.join(cache, "litdata-warm")  # kept: both modes share
    for w in (0, args.workers):
        cold_mds, cold_lit = os.path.join(cache, f"mds-cold-{w}"), os.path.join(cache, f"litdata-cold-{w}")
        lit_bs = bs if w else None  # litdata's own DataLoader needs a batch size; none in-process
        # in-process, litdata yields views of its mmap'd chunks: copied to bytes like every other
        # reader's fields (with workers, the collate copies them)
        out += [
            Entry(EXASHARD, w, _ready(lambda w=w: read_exashard(enc, keyring, workers=w, **opts)), warmup=True),
            *([Entry(EX_ARROW, w, _ready(lambda w=w: read_exashard(enc, keyring, workers=w, batch_format="arrow", **opts)),
                     warmup=True)] if w else []),  # (in the main process: above)
            Entry(WDS, w, _ready(lambda w=w: peers.read_wds(urls, num_workers=w, batch_size=bs if w else None))),
            Entry(MDS_COLD, w, _emptied(cold_mds, lambda w=w, c=cold_mds: peers.read_mds(
                mds, num_workers=w, batch_size=bs, batched=bool(w), cache_dir=c, keep_cache=True))),
            Entry(MDS_WARM, w, _ready(lambda w=w, c=warm_mds: peers.read_mds(
                mds, num_workers=w, batch_size=bs, batched=bool(w), cache_dir=c, keep_cache=True)), warmup=True),
            Entry(LIT_COLD, w, _emptied(cold_lit, lambda w=w, c=cold_lit, b=lit_bs: peers.read_litdata(
                lit, num_workers=w, batch_size=b, cache_dir=c, remote=True, copy=True))),
            Entry(LIT_WARM, w, _ready(lambda w=w, b=lit_bs: peers.read_litdata(
                lit, num_workers=w, batch_size=b, cache_dir=warm_lit, remote=True, copy=True)), warmup=True),
        ]
    out.append(Entry(LIT_VIEWS, 0, _ready(lambda: peers.read_litdata(lit, cache_dir=warm_lit, remote=True)), warmup=True))
    return out


def measure(e: Entry, sample: bool = False) -> tuple[float, int, int, MemorySampler | None]:
    """One run of ``e``: (seconds, samples, payload bytes, the memory sampler if ``sample``)."""
    fn = e.prepare()
    gc.collect()
    os.sync()  # a clean-cache run leaves its cache dirty: write it back before the next timing
    mem = MemorySampler() if sample else None
    if mem is not None:
        mem.__enter__()
    try:
        t = time.perf_counter()
        n, b = fn()
        dt = time.perf_counter() - t
    finally:
        if mem is not None:
            mem.__exit__()
    return dt, n, b, mem


# -- one set -----------------------------------------------------------------------------


def bench_set(kind: str, n: int, work: str, keyring: str, args: argparse.Namespace) -> dict[str, Any]:
    print(f"\n== {kind}: {n} samples ==", flush=True)
    sets = write_sets(kind, n, work, keyring, args.shard_size)
    todo = entries(sets, kind, work, keyring, args)
    for e in todo:  # fill the warm caches; exashard's too, for its first-use costs
        if e.warmup:
            measure(e)
    # memory: one epoch of each reader, sampled; it is not timed (the sampler's /proc reads
    # take ~10 ms of CPU each, a tenth of a core at 50 ms, and the GIL now and then)
    mem: dict[str, list[MemorySampler]] = {}
    counts: dict[str, tuple[int, int]] = {}
    for e in todo:
        _, cnt, nbytes, m = measure(e, sample=True)
        assert m is not None
        mem[e.name], counts[e.name] = [m], (cnt, nbytes)
    print("  memory pass done", flush=True)
    runs: dict[str, list[float]] = {e.name: [] for e in todo}
    for r in range(args.runs):
        for e in todo:
            dt, cnt, nbytes, _ = measure(e)
            runs[e.name].append(dt)
            assert counts[e.name] == (cnt, nbytes), (e.name, counts[e.name], (cnt, nbytes))
        print(f"  run {r + 1}/{args.runs} done", flush=True)
    expected = sets["expected"]
    for e in todo:
        if not e.reader.startswith("ceiling"):
            assert counts[e.name] == expected, (e.name, counts[e.name], expected)
    payload = expected[1]
    res: dict[str, Any] = {"samples": n, "payload_bytes": payload, "write_s": sets["write_s"], "readers": {}}
    budget = {0: args.prefetch, args.workers: args.prefetch * args.workers}  # one read-ahead budget per reading process
    for e in todo:
        med = statistics.median(runs[e.name])
        ms = mem[e.name]
        start, peak = statistics.median(m.start_pss for m in ms), max(m.peak_pss for m in ms)
        bound = 1.5 * start + budget[e.workers]
        res["readers"][e.name] = {
            "reader": e.reader, "workers": e.workers, "median_s": med, "runs_s": runs[e.name],
            # MB/s of payload delivered; a ceiling's figure is the same payload over its time
            "MB_per_s": payload / med / 1e6, "samples_per_s": n / med,
            "memory": {
                "start_pss_mb": start / 1e6, "peak_pss_mb": peak / 1e6, "growth_pss_mb": (peak - start) / 1e6,
                "start_rss_mb": statistics.median(m.start_rss for m in ms) / 1e6, "peak_rss_mb": max(m.peak_rss for m in ms) / 1e6,
                "prefetch_budget_mb": budget[e.workers] / 1e6, "bound_mb": bound / 1e6, "within_bound": peak <= bound,
                "samples": sum(m.samples for m in ms),
            },
        }
    res["targets"] = targets(res["readers"], args.workers)
    report(kind, res)
    return res


def targets(readers: dict[str, Any], workers: int) -> dict[str, Any]:
    """The loader issue's ratios, for the main process and for the DataLoader workers."""

    def mb(reader: str, mode: str) -> float:
        return readers[f"{reader} | {mode}"]["MB_per_s"]

    out: dict[str, Any] = {}
    ceiling = mb(CRYPTO_CEIL, "main")
    for mode in ("main", f"{workers} workers"):
        ex = mb(EXASHARD, mode)
        cold = max((LIT_COLD, MDS_COLD), key=lambda r: mb(r, mode))
        warm = max((LIT_WARM, MDS_WARM), key=lambda r: mb(r, mode))
        out[mode] = {
            "vs_webdataset": {"ratio": ex / mb(WDS, mode), "target": 1.5},
            "of_crypto_ceiling": {"ratio": ex / ceiling, "target": 0.8},
            **({"batches_of_crypto_ceiling": {"ratio": mb(EX_BATCHES, mode) / ceiling, "target": 0.8},
                "arrow_batches_of_crypto_ceiling": {"ratio": mb(EX_ARROW, mode) / ceiling, "target": 0.8}} if mode == "main" else {}),
            "first_epoch_vs_best_clean_cache_peer": {"ratio": ex / mb(cold, mode), "peer": cold, "target": 1.5},
            "steady_state_vs_best_warm_cache_peer": {"ratio": ex / mb(warm, mode), "peer": warm, "target": 0.5},
        }
        for t in out[mode].values():
            t["met"] = None if t["target"] is None else t["ratio"] >= t["target"]
        out[mode]["memory"] = readers[f"{EXASHARD} | {mode}"]["memory"]
    return out


def report(kind: str, res: dict[str, Any]) -> None:
    rd = res["readers"]
    wds = rd[f"{WDS} | main"]["MB_per_s"]
    ceil = rd[f"{CRYPTO_CEIL} | main"]["MB_per_s"]
    print(f"{'reader':46s} {'mode':>9s} {'MB/s':>7s} {'samples/s':>10s} {'x wds':>6s} {'of ceil':>7s} {'Pss start->peak MB':>19s}")
    for name, r in sorted(rd.items(), key=lambda kv: (kv[1]["workers"], kv[0])):
        m = r["memory"]
        flag = "" if m["within_bound"] else " !"
        print(f"{r['reader']:46s} {name.split(' | ')[1]:>9s} {r['MB_per_s']:7.0f} {r['samples_per_s']:10.0f} "
              f"{r['MB_per_s'] / wds:6.2f} {r['MB_per_s'] / ceil:7.2f} {m['start_pss_mb']:8.0f} -> {m['peak_pss_mb']:6.0f}{flag}")
    for mode, ts in res["targets"].items():
        for what, t in ts.items():
            if "ratio" in t:
                goal = "" if t["target"] is None else f" (target >= {t['target']}: {'met' if t['met'] else 'MISSED'})"
                peer = f" [{t['peer']}]" if "peer" in t else ""
                print(f"  {kind} {mode}: {what}{peer} = {t['ratio']:.2f}{goal}")
        m = ts["memory"]
        print(f"  {kind} {mode}: exashard Pss start {m['start_pss_mb']:.0f} MB, peak {m['peak_pss_mb']:.0f} MB "
              f"(+{m['growth_pss_mb']:.0f} MB, read-ahead budget {m['prefetch_budget_mb']:.0f} MB); "
              f"peak <= 1.5 x start + budget: {m['within_bound']}")


# -- chart -------------------------------------------------------------------------------


def chart(results: dict[str, Any], path: str, workers: int) -> bool:
    """Grouped bars, MB/s per reader, main process vs workers, one panel per set (log scale:
    the sets differ tenfold); the ceilings as dashed lines. False if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    groups = {EXASHARD: "exashard\nencrypted", f"{EXASHARD}, zero-copy": "exashard\nzero-copy",
              EX_BATCHES: "exashard\nbatches", EX_ARROW: "exashard\nArrow batches", f"{EXASHARD}, shuffled": "exashard\nshuffled", WDS: "webdataset\nplain tar",
              MDS_COLD: "mosaic zstd\nclean cache", MDS_WARM: "mosaic zstd\nwarm cache",
              LIT_COLD: "litdata zstd\nclean cache", LIT_WARM: "litdata zstd\nwarm cache",
              LIT_VIEWS: "litdata zstd\nwarm, views"}
    sets = results["sets"]
    fig, axes = plt.subplots(1, len(sets), figsize=(7.8 * len(sets), 5.5), squeeze=False)
    for ax, (label, res) in zip(axes[0], sets.items()):
        rd = res["readers"]
        for k, (mode, color) in enumerate((("main", "tab:blue"), (f"{workers} workers", "tab:orange"))):
            xs = [i + (k - 0.5) * 0.4 for i, g in enumerate(groups) if f"{g} | {mode}" in rd]
            ys = [rd[f"{g} | {mode}"]["MB_per_s"] for g in groups if f"{g} | {mode}" in rd]
            bars = ax.bar(xs, ys, width=0.4, color=color, label=mode)
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
        for name, style in ((CRYPTO_CEIL, "--"), (ZSTD_CEIL, ":")):
            ax.axhline(rd[f"{name} | main"]["MB_per_s"], color="gray", linestyle=style, label=name.removeprefix("ceiling: ") + " ceiling")
        ax.set_yscale("log")
        ax.set_xticks(range(len(groups)), list(groups.values()), fontsize=7)
        ax.set_ylabel("MB/s of payload (log)")
        ax.set_title(f"{label}: {res['samples']:,} samples, {res['payload_bytes'] / 1e9:.2f} GB")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=8)
    fig.suptitle(f"exashard loader vs peers, median of {results['runs']} runs, {results['machine']['cpus']} CPUs")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--big", type=int, default=10_000, help="samples of 100 KiB + JSON")
    ap.add_argument("--small", type=int, default=100_000, help="samples of ~1 KiB text + JSON")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sets", default="big,small", help="which sets to run")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers in the workers mode")
    ap.add_argument("--batch-size", type=int, default=64, help="DataLoader batch size (and MDS's per-device batch)")
    ap.add_argument("--prefetch", type=int, default=64 * MiB, help="exashard read-ahead budget in bytes, per process")
    ap.add_argument("--shard-size", type=int, default=64 * MiB, help="shard / chunk size for every format")
    ap.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "exashard-bench-loader"))
    ap.add_argument("--out", default=os.path.join(here, "results", "loader.json"))
    ap.add_argument("--chart", default=os.path.join(os.path.dirname(here), "docs", "loader_bench.png"))
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one run: checks the script works")
    ap.add_argument("--replot", action="store_true", help="only redraw the chart from the figures in --out")
    args = ap.parse_args(argv)
    if args.replot:
        with open(args.out) as f:
            saved = json.load(f)
        chart(saved, args.chart, saved["workers"])
        return
    if args.quick:
        args.big, args.small, args.runs = 200, 2000, 1
    import litdata
    import streaming  # slow to import (transformers): not inside a timing
    import torch
    import webdataset

    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    keyring = os.path.join(args.work, "keyring.json")
    LocalKeyring.create(keyring)
    sizes = {"big": ("big_100KiB", args.big), "small": ("small_1KiB", args.small)}
    results = {
        "benchmark": "loader",
        "python": sys.version.split()[0],
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "runs": args.runs, "workers": args.workers, "batch_size": args.batch_size,
        "prefetch_bytes": args.prefetch, "shard_size": args.shard_size,
        "peers": {"torch": torch.__version__, "litdata": litdata.__version__, "mosaicml-streaming": streaming.__version__,
                  "webdataset": webdataset.__version__},
        "sets": {sizes[k][0]: bench_set(k, sizes[k][1], args.work, keyring, args) for k in args.sets.split(",")},
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"\nfigures written to {args.out}")
    if chart(results, args.chart, args.workers):
        print(f"chart written to {args.chart}")
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
