"""Long fuzzing run of the parsers: shard reader, index/seek table/Raw frames, encrypted
container, manifest reader, tar iterator (``tests/_fuzz.py`` holds the targets,
``tests/_mutate.py`` the mutators).

This is a seeded mutation loop, not hypothesis: each case draws its spec from
``random.Random(f"{seed}/{target}/{i}")``, so any case can be replayed alone
(``--target T --replay I``) and the run is reproducible. The generators are the ones
``tests/test_fuzz.py`` drives through hypothesis in CI. Per case the property is the
same: only ``ExashardError`` subclasses escape, no case passes the hard time limit, and
the tracemalloc peak stays under 64 MiB + 64 x the input size.

    python bench/fuzz.py                  # 100,000 cases (about 15-20 minutes on 2 cores)
    python bench/fuzz.py --quick          # a smoke run (seconds)
    python bench/fuzz.py --cases 20000 --seed 3

Prints per target: cases, failures (must be 0), ExashardError outcomes, median and max
time per case, max tracemalloc peak; writes ``bench/results/fuzz.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import _fuzz as F  # noqa: E402 - the harness lives beside the tests
import _mutate as M  # noqa: E402

BASES = ["zstd", "raw", "mixed"]


def _random_reader(c: F.Corpus, d: M.Draw) -> F.Outcome:
    data = d.bytes(0, 4096)
    if d.flag():  # random bytes behind a plausible footer: the seek table parser sees them
        n = d.int(1, 40)
        data += d.bytes(0, 16) + n.to_bytes(4, "little") + b"\0" + (0x8F92EAB1).to_bytes(4, "little")
    return F.random_shard_case(data, {"row": d.pick((None, d.int(0, 1 << 16))), "read_into": d.flag()})


def _random_encrypted(c: F.Corpus, d: M.Draw) -> F.Outcome:
    data = d.bytes(0, 4096)
    if d.flag():  # a real header (so the segments are what is random)
        data = c.encrypted[: F.HEADER_SIZE] + data
    ops = [("set", 0, data)] if data else [("truncate", 0)]
    return F.encrypted_case(c, {"mode": "stored", "ops": ops, "row": False, "zero_copy": d.flag(), "read_into": True})


def _zframe(c: F.Corpus, d: M.Draw) -> F.Outcome:
    return F.zframe_case(c, {"frame": d.int(0, 64), "ops": [M.draw_byte_op(d) for _ in range(d.int(1, 3))]})


# name -> (share of the cases, one case from a Draw)
TARGETS: dict[str, tuple[float, Callable[[F.Corpus, M.Draw], F.Outcome]]] = {
    "reader/mutated": (0.22, lambda c, d: F.reader_case(c, M.draw_shard_spec(d, BASES))),
    "reader/random": (0.06, _random_reader),
    "index+seek/mutated": (0.14, lambda c, d: F.index_case(c, M.draw_shard_spec(d, BASES))),
    "index+seek/random": (0.06, lambda c, d: F.random_index_case(d.bytes(0, 2048), d.int(0, 3))),
    "zframe/mutated": (0.06, _zframe),
    "encrypted/mutated": (0.16, lambda c, d: F.encrypted_case(c, F.draw_encrypted_spec(d, BASES))),
    "encrypted/random": (0.04, _random_encrypted),
    "manifest/mutated": (0.12, lambda c, d: F.manifest_case(c, F.draw_manifest_spec(d))),
    "tar/mutated": (0.10, lambda c, d: F.tar_case(c, F.draw_tar_spec(d))),
    "tar/random": (0.04, lambda c, d: F.tar_case(c, {"data": d.bytes(0, 3072), "ops": []})),
}


def _case(corpus: F.Corpus, seed: int, name: str, i: int) -> F.Outcome:
    d = M.RandDraw(random.Random(f"{seed}/{name}/{i}"))
    return TARGETS[name][1](corpus, d)


def run(cases: int, seed: int, only: str | None = None, show: int = 3) -> dict[str, Any]:
    corpus = F.build_corpus()
    names = [only] if only else list(TARGETS)
    total_share = sum(TARGETS[n][0] for n in names)
    plan = {n: max(1, round(cases * TARGETS[n][0] / total_share)) for n in names}
    tracemalloc.start()
    t_all = time.perf_counter()
    results: dict[str, Any] = {}
    for name in names:
        times: list[float] = []
        peaks: list[int] = []
        outcomes: Counter[str] = Counter()
        failures: list[str] = []
        t0 = time.perf_counter()
        for i in range(plan[name]):
            try:
                out = _case(corpus, seed, name, i)
            except F.FuzzFailure as e:
                failures.append(f"case {i}: {str(e)[:2000]}")
                continue
            except Exception as e:  # the harness itself failed to build the case: counted, shown
                failures.append(f"case {i}: harness error {type(e).__name__}: {e}")
                continue
            times.append(out.seconds)
            peaks.append(out.peak)
            outcomes[out.error or "ok"] += 1
        wall = time.perf_counter() - t0
        results[name] = {
            "cases": plan[name],
            "failures": len(failures),
            "outcomes": dict(outcomes.most_common()),
            "median_ms": round(statistics.median(times) * 1e3, 3) if times else None,
            "max_ms": round(max(times) * 1e3, 1) if times else None,
            "max_peak_mib": round(max(peaks) / 2**20, 2) if peaks else None,
            "wall_s": round(wall, 1),
            "first_failures": failures[:show],
        }
        r = results[name]
        print(f"{name:<20} {r['cases']:>7} cases  {r['failures']:>3} failures  median {r['median_ms']} ms  "
              f"max {r['max_ms']} ms  peak {r['max_peak_mib']} MiB  {r['wall_s']} s", flush=True)
        for f in failures[:show]:
            print("    " + f[:600], flush=True)
    tracemalloc.stop()
    return {
        "seed": seed,
        "cases": sum(plan.values()),
        "failures": sum(r["failures"] for r in results.values()),
        "wall_s": round(time.perf_counter() - t_all, 1),
        "limits": {"hard_limit_s": F.HARD_LIMIT_S, "memory": f"{F.MEM_BASE // 2**20} MiB + {F.MEM_PER_BYTE} x input"},
        "targets": results,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true", help="2,000 cases, results not written")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target", choices=sorted(TARGETS), help="run one target only")
    ap.add_argument("--replay", type=int, help="run case number I of --target alone and print its outcome")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "fuzz.json"))
    args = ap.parse_args()
    if args.replay is not None:
        if not args.target:
            ap.error("--replay needs --target")
        print(_case(F.build_corpus(), args.seed, args.target, args.replay))
        return 0
    cases = 2_000 if args.quick else args.cases
    report = run(cases, args.seed, args.target)
    print(f"total: {report['cases']} cases, {report['failures']} failures, {report['wall_s']} s wall")
    if not args.quick and not args.target:
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
        print(f"wrote {args.out}")
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
