"""Storage faults: SeaweedFS killed and restarted mid-read and mid-ingest (real processes)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from test_operations import EXAMPLES, content, make_raw

import exashard
from exashard.errors import StorageError
from exashard.shards import ShardWriter, iter_dataset

pytestmark = pytest.mark.s3


@pytest.fixture
def weed(tmp_path):
    """A SeaweedFS of this test's own, so killing it disturbs no other test."""
    from _seaweed import seaweed_s3

    with seaweed_s3(str(tmp_path / "weed")) as s3:
        yield s3


def _fast_fail(so: dict) -> dict:
    """botocore retries a refused connection for ~10 s by itself; one try makes tests quick."""
    return {**so, "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1}}


def _write(root: str, so: dict, n: int = 240) -> list[str]:
    keys = []
    with ShardWriter(root, storage_options=so, target_size=24_000, frame_size=4096) as w:
        for i in range(n):
            w.write({"__key__": f"s{i:04d}", "bin": bytes([i % 251]) * 700, "json": json.dumps({"i": i}).encode()})
            keys.append(f"s{i:04d}")
    return keys


def test_loader_rides_out_a_storage_restart(weed):
    so = _fast_fail(weed.storage_options())
    root = f"s3://{weed.bucket}/ds"
    keys = _write(root, so)
    full = [s["__key__"] for s in exashard.ShardDataset(root, storage_options=so, shuffle=True, seed=2)]
    assert sorted(full) == keys
    ds = exashard.ShardDataset(root, storage_options=so, shuffle=True, seed=2, prefetch=0, retry_seconds=120)
    it = iter(ds)
    got = [next(it)["__key__"] for _ in range(80)]
    weed.kill()
    # the reader carries on in a thread and meets the outage; the server is restarted from
    # this thread (weed dies with the thread that started it)
    reader = threading.Thread(target=lambda: got.extend(s["__key__"] for s in it))
    reader.start()
    time.sleep(1.5)
    weed.restart()
    reader.join(timeout=300)
    assert not reader.is_alive()
    assert got == full  # reads failed while it was down, and were retried


def test_loader_fails_cleanly_then_resumes_exactly(weed):
    so = _fast_fail(weed.storage_options())
    root = f"s3://{weed.bucket}/ds"
    _write(root, so)
    full = [s["__key__"] for s in exashard.ShardDataset(root, storage_options=so)]
    ds = exashard.ShardDataset(root, storage_options=so, prefetch=0, retry_seconds=2)
    got = []
    weed_down = False
    with pytest.raises(StorageError, match=r"unreachable after \d+ tries"):
        for s in ds:
            got.append(s["__key__"])
            if len(got) == 100:
                weed.kill()
                weed_down = True
    assert weed_down
    state = ds.state_dict()
    assert state["delivered"] == len(got)
    weed.restart()
    again = exashard.ShardDataset(root, storage_options=so)
    again.load_state_dict(state)
    assert got + [s["__key__"] for s in again] == full


def _content_s3(root: str, so: dict) -> Counter[tuple[str, str]]:
    return Counter((s["__key__"], ",".join(sorted(k for k in s if k != "__key__")))
                   for s in iter_dataset(root, storage_options=so))


def test_ingest_through_a_storage_restart_loses_nothing(weed, tmp_path):
    raw = tmp_path / "raw"
    make_raw(raw, 0, 24)
    clean_cfg = tmp_path / "clean.toml"
    clean_cfg.write_text(f'sources = ["{raw}"]\noutput = "{tmp_path / "clean"}"\npolicy = "{EXAMPLES / "policy.toml"}"\n'
                         f'task_size = "20KiB"\n[cluster]\nworkers = 1\n')
    res = subprocess.run([sys.executable, "-m", "exashard.cli", "run", str(clean_cfg)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    clean = content(tmp_path / "clean")
    so = weed.storage_options()
    root = f"s3://{weed.bucket}/ds"
    cfg = tmp_path / "s3.toml"
    cfg.write_text(
        f'sources = ["{raw}"]\noutput = "{root}"\npolicy = "{EXAMPLES / "policy.toml"}"\ntask_size = "20KiB"\n'
        f'[cluster]\nworkers = 1\n[retention]\ngrace = "0s"\n[storage]\nkey = "{so["key"]}"\nsecret = "{so["secret"]}"\n'
        f'[storage.client_kwargs]\nendpoint_url = "{weed.endpoint_url}"\nregion_name = "us-east-1"\n'
    )
    run = subprocess.Popen([sys.executable, "-m", "exashard.cli", "run", str(cfg)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    fs = weed.fs()
    deadline = time.time() + 180
    while time.time() < deadline and run.poll() is None:
        try:
            if fs.ls(f"{weed.bucket}/ds/manifest", detail=False, refresh=True):
                break
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    weed.kill()  # mid-ingest: tasks writing shards and the driver committing lose storage
    time.sleep(2)
    weed.restart()
    _, err = run.communicate(timeout=600)
    assert run.returncode in (0, 3), err  # rode it out, or failed cleanly
    if run.returncode == 3:
        assert len([line for line in err.splitlines() if line.startswith("exashard:")]) == 1 and "Traceback" not in err
    res = subprocess.run([sys.executable, "-m", "exashard.cli", "run", str(cfg)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert _content_s3(root, so) == clean  # nothing lost, nothing twice
