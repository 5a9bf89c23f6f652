"""The benchmark scripts still run (tiny sizes); their figures come from full runs, not here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

HERE = os.path.dirname(__file__)


def test_shard_read_bench_quick(tmp_path):
    out = tmp_path / "r.json"
    res = subprocess.run(
        [sys.executable, os.path.join(HERE, "..", "bench", "shard_read.py"), "--quick", "--out", str(out),
         "--work", str(tmp_path / "w")],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    figures = json.loads(out.read_text())
    for name in ("big_100KiB", "small_1KiB"):
        readers = figures["sets"][name]["readers"]
        assert set(readers) >= {"webdataset (plain tar)", "exashard plain (bytes)", "exashard encrypted (bytes)",
                                "ceiling: zstd only, 2 threads", "ceiling: AES-GCM + zstd, 2 threads"}
        assert all(r["MB_per_s"] > 0 and r["ratio_vs_webdataset"] > 0 for r in readers.values())
