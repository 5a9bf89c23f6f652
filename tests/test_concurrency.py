"""Concurrency: a loader reading while versions commit or a deletion request runs; two
ingests into different datasets on one Dask cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import warnings

from test_ingest import EXAMPLES, dask_cluster  # noqa: F401 - the fixture: real scheduler + 2 workers
from test_operations import USERS, make_raw, pipeline, run_cli

import exashard
from exashard.privacy.keys import LocalKeyring
from exashard.privacy.pseudonym import Pseudonymizer
from exashard.shards import ShardWriter, iter_dataset, open_manifest


def test_loader_keeps_its_version_while_writers_commit(tmp_path):
    out = str(tmp_path / "ds")
    with ShardWriter(out, target_size=5_000, frame_size=4096) as w:
        for i in range(300):
            w.write({"__key__": f"a{i:04d}", "txt": b"x" * 200})
    ds = exashard.ShardDataset(out, shuffle=True, seed=1, prefetch=0)
    got: list[str] = []
    errors: list[BaseException] = []

    def write_more() -> None:
        try:
            for n in range(5):  # five more versions while the loader reads
                with ShardWriter(out, target_size=5_000) as w:
                    for i in range(40):
                        w.write({"__key__": f"b{n}-{i:03d}", "txt": b"y" * 200})
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    it = iter(ds)
    got += [next(it)["__key__"] for _ in range(50)]
    writer = threading.Thread(target=write_more)
    writer.start()
    got += [s["__key__"] for s in it]
    writer.join()
    assert not errors
    assert sorted(got) == [f"a{i:04d}" for i in range(300)]  # exactly the pinned version
    assert open_manifest(out).read().version == ds.version + 5
    assert len(exashard.ShardDataset(out)) == 500


def test_forget_while_a_loader_reads(tmp_path):
    src = tmp_path / "in"
    make_raw(src, 0, 28)
    out = tmp_path / "ds"
    assert run_cli("run", str(pipeline(tmp_path, src, out))).returncode == 0
    owner = {s["__key__"]: json.loads(s["json"])["user_id"] for s in iter_dataset(str(out))}
    assert len(set(owner.values())) == USERS
    ds = exashard.ShardDataset(str(out), prefetch=0)
    it = iter(ds)
    first = [next(it)["__key__"] for _ in range(4)]
    victim = owner[first[-1]]  # a subject whose data this job is reading right now
    # the victim's raw id: the one whose pseudonym (dataset key, field json.user_id) it is
    pz = Pseudonymizer(LocalKeyring(os.environ["EXASHARD_KEYRING"]).hmac_key(), ds.dataset_id)
    raw_id = next(f"user-{u}" for u in range(USERS) if pz.pseudonym("json.user_id", f"user-{u}") == victim)
    ids = tmp_path / "ids.txt"
    ids.write_text(raw_id + "\n")
    res = subprocess.run([sys.executable, "-m", "exashard.cli", "forget", str(out), "--ids", str(ids), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stdout)
    assert rep["samples_removed"] == 4 and rep["shards_rewritten"]
    gone_owner = {owner[k] for k in owner if k not in {s["__key__"] for s in iter_dataset(str(out))}}
    assert len(gone_owner) == 1
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        rest = [s["__key__"] for s in it]  # the job goes on reading its pinned version
    after = [k for k in rest if owner[k] in gone_owner]
    assert after == []  # deleted data is never read after the deletion
    assert ds.skipped_shards and any("skipping shard" in str(x.message) for x in w)
    assert len(first) + len(rest) + ds.skipped_samples == len(owner)


def test_two_ingests_into_different_datasets_on_one_cluster(tmp_path, dask_cluster):  # noqa: F811
    addr, _, _ = dask_cluster
    outs = [tmp_path / "one", tmp_path / "two"]
    procs = [
        subprocess.Popen([sys.executable, "-m", "exashard.cli", "ingest", str(EXAMPLES / "raw"), "--out", str(o),
                          "--policy", str(EXAMPLES / "policy.toml"), "--scheduler", addr],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for o in outs
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    a, b = (sorted(s["__key__"] for s in iter_dataset(str(o))) for o in outs)
    assert len(a) == len(b) == 6 and a == b  # the same inputs, each dataset holds all of them once
    ida, idb = (open_manifest(str(o)).read().dataset_id for o in outs)
    assert ida != idb
    for o in outs:  # every shard a dataset names lies in that dataset
        assert exashard.verify(str(o)).ok
