"""End-to-end ingest: local -> local on a LocalCluster, bad inputs, and SeaweedFS S3 -> S3
on a real `dask scheduler` with two `dask worker` processes on loopback."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exashard.errors import ConfigError
from exashard.privacy.policy import PolicyError
from exashard.shards import inspect, iter_dataset, verify

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture(scope="module")
def local_client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_example_folder_local(tmp_path, local_client):
    import exashard

    out = tmp_path / "ds"
    report = exashard.ingest(str(EXAMPLES / "raw"), str(out), policy=str(EXAMPLES / "policy.toml"), client=local_client)
    assert report.samples == 6 and report.inputs == 6 and not report.quarantined
    assert report.encrypted and report.policy["fields"]["jpg"] == "strip"
    assert inspect(str(out))["samples"] == 6 and verify(str(out)).ok
    samples = list(iter_dataset(str(out)))
    blob = b"".join(v for s in samples for k, v in s.items() if k != "__key__")
    for secret in (b"jane.doe@example.com", b"4111 1111 1111 1111", b"GB82 WEST", b"99812", b"img_0000", b"37.77"):
        assert secret not in blob
    assert b"<EMAIL_ADDRESS>" in blob and b"<CREDIT_CARD>" in blob
    for s in samples:
        assert set(s) == {"__key__", "jpg", "txt", "json"}
        assert b"GPS" not in s["jpg"] and b"ExampleCam" not in s["jpg"]
        side = json.loads(s["json"])
        assert set(side) <= {"user_id", "caption", "camera", "tags"} and "serial" not in side.get("camera", {})
        assert len(side["user_id"]) == 32  # a pseudonym
    stats = report.stats
    assert stats["entity.EMAIL_ADDRESS"] >= 2 and stats["action.strip"] == 6
    # stats and subject side tables reach the manifest
    rows = inspect(str(out))["shard_rows"]
    assert sum(r["extra"]["privacy"]["subjects"] for r in rows) == 6
    # a rerun over the same inputs does nothing
    again = exashard.ingest(str(EXAMPLES / "raw"), str(out), policy=str(EXAMPLES / "policy.toml"), client=local_client)
    assert again.samples == 0 and again.skipped_inputs == 6 and inspect(str(out))["samples"] == 6


def test_incremental_run_lists_once_and_counts_skips_once(tmp_path, local_client):
    """A new input listed after committed ones: the committed ones are skipped (and
    counted) exactly once, and only the new one is ingested."""
    import exashard

    src = tmp_path / "raw"
    shutil.copytree(EXAMPLES / "raw", src)
    out = tmp_path / "ds"
    exashard.ingest(str(src), str(out), policy=str(EXAMPLES / "policy.toml"), client=local_client)
    (src / "zz_new.txt").write_text("a new caption")
    again = exashard.ingest(str(src), str(out), policy=str(EXAMPLES / "policy.toml"), client=local_client)
    assert (again.skipped_inputs, again.inputs, again.samples) == (6, 1, 1)
    assert inspect(str(out))["samples"] == 7


def test_rerun_plans_the_same_tasks(tmp_path):
    from exashard.ingest.plan import plan
    from exashard.ingest.sources import Source

    a = [t.id for t in plan(Source(str(EXAMPLES / "raw")).units(), max_bytes=4000)]
    b = [t.id for t in plan(Source(str(EXAMPLES / "raw")).units(), max_bytes=4000)]
    assert a == b and len(a) > 1


def test_local_listing_equals_fsspec_listing(tmp_path):
    """The local scandir fast path gives the same units (URL, size, mtime: the ledger's
    identities) in the same order as the generic fsspec walk, links and dotfiles included."""
    import pickle

    from exashard.ingest import sources
    from exashard.ingest.sources import Source

    src = tmp_path / "raw"
    for d in ("b", "a/z", "a/c", "c"):
        (src / d).mkdir(parents=True)
    (src / "top.txt").write_text("t")
    (src / "a/z/1.jpg").write_bytes(b"j" * 10)
    (src / "a/z/1.json").write_text("{}")
    (src / "a/c/2.txt").write_text("two")
    (src / "b/.hidden.txt").write_text("h")
    (src / "b/noext").write_text("n")
    (src / "c/link.txt").symlink_to(src / "a/c/2.txt")
    (src / "c/dangling.txt").symlink_to(src / "missing.txt")
    (src / "c/dirlink.txt").symlink_to(src / "a")

    def listing(local: bool):
        real = sources.storage.is_local
        try:
            sources.storage.is_local = lambda fs: local
            return list(Source(str(src)).units())
        finally:
            sources.storage.is_local = real

    fast, generic = listing(True), listing(False)
    assert fast == generic
    assert [u.name for u in fast] == ["top", "a/c/2", "a/z/1", "c/dangling", "c/dirlink", "c/link"]
    link = next(u for u in fast if u.name == "c/link")
    assert link.files[0][1].size == 3  # the target's size, as fsspec reports it
    assert pickle.loads(pickle.dumps(fast)) == fast


def test_bad_inputs_quarantined_and_counted(tmp_path, local_client):
    import exashard

    src = tmp_path / "raw"
    shutil.copytree(EXAMPLES / "raw", src)
    (src / "empty.jpg").write_bytes(b"")
    (src / "trunc.jpg").write_bytes((src / "img_0000.jpg").read_bytes()[:300])
    (src / "badside.json").write_text("{not json")
    (src / "orphan.json").write_text(json.dumps({"user_id": 5, "caption": "only a sidecar"}))
    unreadable = src / "locked.txt"
    unreadable.write_text("secret")
    unreadable.chmod(0)
    big = src / "big.txt"
    big.write_bytes(b"word " * (3 << 20))  # 15 MB of text
    report = exashard.ingest(str(src), str(tmp_path / "ds"), policy=str(EXAMPLES / "policy.toml"), client=local_client)
    reasons = {q.reason for q in report.quarantined}
    assert any("empty input" in r for r in reasons)
    assert any("JPEG" in r or "jpeg" in r.lower() for r in reasons)
    assert any("not valid JSON" in r for r in reasons)
    if os.geteuid() != 0:  # root reads anything
        assert any("unreadable" in r for r in reasons)
    assert report.samples + len(report.quarantined) + report.excluded == report.inputs
    assert report.samples == inspect(str(tmp_path / "ds"))["samples"]
    for q in report.quarantined:
        assert q.input.startswith("in-") and "trunc.jpg" not in q.reason and "badside" not in q.reason


def test_vanishing_file_is_quarantined(tmp_path):
    from exashard.ingest.plan import Task
    from exashard.ingest.run import run_task
    from exashard.ingest.sources import Source
    from exashard.privacy.policy import default_policy

    src = tmp_path / "raw"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    (src / "b.txt").write_text("bye")
    units = list(Source(str(src)).units())
    (src / "a.txt").unlink()  # vanishes between listing and reading
    res = run_task(Task("tv", tuple(units)), str(tmp_path / "ds"), storage_options=None, source_options=None,
                   policy=default_policy(), secret=b"s" * 32, dataset_id="d", data_keys=None, keyring=None,
                   encrypt=False, shard_size=1 << 20)
    assert res.samples == 1 and len(res.quarantined) == 1 and "vanished" in res.quarantined[0].reason


def test_policy_error_stops_before_any_work(tmp_path):
    import exashard

    bad = tmp_path / "p.toml"
    bad.write_text("[fields]\nmp4 = 'strip'\n")
    with pytest.raises(PolicyError):
        exashard.ingest(str(EXAMPLES / "raw"), str(tmp_path / "ds"), policy=str(bad))
    assert not (tmp_path / "ds").exists()
    with pytest.raises(ConfigError, match="does not exist"):
        exashard.ingest(str(tmp_path / "nope"), str(tmp_path / "ds"))


def test_cli_ingest_report_and_exit_codes(tmp_path):
    out, rep = tmp_path / "ds", tmp_path / "r.json"
    env = {**os.environ}
    cmd = [sys.executable, "-m", "exashard.cli", "ingest", str(EXAMPLES / "raw"), "--out", str(out), "--workers", "1",
           "--report", str(rep), "--no-progress"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    assert res.returncode == 0, res.stderr
    doc = json.loads(rep.read_text())
    assert doc["samples"] == 6 and doc["policy"]["source"] == "<built-in default>"
    res = subprocess.run([*cmd[:5], "--out", str(out), "--shard-size", "12 parsecs"], capture_output=True, text=True)
    assert res.returncode == 2 and "not a size" in res.stderr


# -- S3 -> S3 on a real Dask cluster ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """`dask scheduler` + two `dask worker` processes on loopback; workers have no keyring
    and a HOME of their own, so a test can prove they never create one."""
    home = tmp_path_factory.mktemp("worker-home")
    port = _free_port()
    bindir = Path(sys.executable).parent
    env = {**os.environ, "HOME": str(home), "EXASHARD_KEYRING": str(home / "must-not-exist.json")}
    procs = [subprocess.Popen([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)]
    addr = f"tcp://127.0.0.1:{port}"
    for _ in range(2):
        procs.append(subprocess.Popen([str(bindir / "dask"), "worker", addr, "--nthreads", "1", "--host", "127.0.0.1",
                                       "--no-dashboard", "--memory-limit", "2GiB"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
    from distributed import Client

    client = None
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            client = Client(addr, timeout=5)
            client.wait_for_workers(2, timeout=30)
            break
        except Exception:
            time.sleep(0.5)
    assert client is not None, "dask cluster did not start"
    yield addr, client, home
    client.close()
    for p in procs:
        p.kill()
        p.wait()


@pytest.mark.s3
def test_s3_to_s3_on_dask_cluster(seaweed, dask_cluster):
    import exashard

    addr, client, home = dask_cluster
    so = seaweed.storage_options()
    fs = seaweed.fs()
    prefix = f"{seaweed.bucket}/raw-{os.urandom(4).hex()}"
    for p in sorted((EXAMPLES / "raw").iterdir()):
        fs.pipe_file(f"{prefix}/{p.name}", p.read_bytes())
    out = f"s3://{seaweed.bucket}/ds-{os.urandom(4).hex()}"
    report = exashard.ingest(f"s3://{prefix}", out, policy=str(EXAMPLES / "policy.toml"), scheduler=addr,
                             storage_options=so, source_options=so)
    assert report.samples == 6 and report.encrypted and not report.quarantined
    samples = list(iter_dataset(out, storage_options=so))
    assert len(samples) == 6 and all(b"jane.doe" not in s["txt"] for s in samples)
    assert verify(out, storage_options=so).ok
    assert not (home / "must-not-exist.json").exists()  # workers never create keyrings
    assert not (home / ".config" / "exashard").exists()
