"""Manifest: versioned append-only commits, checkpoints, racing committers."""

from __future__ import annotations

import json
import multiprocessing as mp
import threading

import pytest

from exashard.errors import ConfigError, IntegrityError, NotFoundError
from exashard.shards import Manifest, ShardInfo, ShardWriter, open_manifest
from exashard.shards.manifest import commit_name


def row(i: int | str, checksum: str = "sha256:00") -> ShardInfo:
    return ShardInfo(
        id=f"s{i}", path=f"shards/s{i}.tar.zst", samples=1, bytes=10, tar_bytes=1024, frames=1,
        checksum=checksum, index_offset=0, index_size=10,
    )


def test_commit_read_versions(memfs):
    _, root = memfs
    m = Manifest(root, clock=lambda: "T")
    assert m.read().version == 0
    assert m.commit(add=[row(1), row(2)]) == 1
    assert m.commit(add=[row(3)], remove=["s1"], operation="rewrite") == 2
    snap = m.read()
    assert snap.version == 2 and list(snap.shards) == ["s2", "s3"]
    assert list(m.read(1).shards) == ["s1", "s2"]
    assert m.read(0).shards == {}
    assert m.versions() == [1, 2]
    assert snap.dataset_id == m.read(1).dataset_id and len(snap.dataset_id) == 32
    with pytest.raises(NotFoundError, match="version 7 does not exist"):
        m.read(7)


def test_commit_is_idempotent_and_checked(memfs):
    _, root = memfs
    m = Manifest(root)
    m.commit(add=[row(1)])
    assert m.commit(add=[row(1)]) == 1  # same shard, same checksum: nothing new
    with pytest.raises(IntegrityError, match="already committed with other content"):
        m.commit(add=[row(1, "sha256:ff")])
    with pytest.raises(NotFoundError, match="cannot remove"):
        m.commit(remove=["nope"])
    with pytest.raises(ConfigError):
        m.commit()


def test_checkpoints_bound_reads(memfs):
    fs, root = memfs
    m = Manifest(root, checkpoint_interval=10)
    for i in range(95):
        m.commit(add=[row(i)])
    assert m.checkpoint_versions() == [10, 20, 30, 40, 50, 60, 70, 80, 90]
    calls = []
    orig = fs.cat_file

    def counting(path, *a, **k):
        calls.append(path)
        return orig(path, *a, **k)

    fs.cat_file = counting
    try:
        snap = Manifest(root).read()
    finally:
        del fs.cat_file
    assert snap.version == 95 and len(snap.shards) == 95
    # hint + checkpoint 90 + commits 91..95 + one probe for 96
    assert len(calls) == 8, calls
    assert list(Manifest(root).read(33).shards) == [f"s{i}" for i in range(33)]


def test_damaged_checkpoint_falls_back(memfs):
    fs, root = memfs
    m = Manifest(root, checkpoint_interval=5)
    for i in range(12):
        m.commit(add=[row(i)])
    fs.pipe_file(f"{root}/manifest/checkpoints/v{10:020d}.json", b"garbage")
    assert len(Manifest(root).read().shards) == 12


def test_open_manifest_missing(tmp_path):
    with pytest.raises(NotFoundError, match="not an exashard dataset"):
        open_manifest(str(tmp_path / "nothing"))


def test_commit_files_are_immutable(tmp_path):
    m = Manifest(str(tmp_path))
    m.commit(add=[row(1)])
    doc = json.loads((tmp_path / commit_name(1)).read_text())
    assert doc["version"] == 1 and doc["add"][0]["id"] == "s1"
    from exashard.errors import VersionConflict
    from exashard.shards.storage import exclusive_write

    with pytest.raises(VersionConflict):
        exclusive_write(m.fs, str(tmp_path / commit_name(1)), b"x")
    assert json.loads((tmp_path / commit_name(1)).read_text()) == doc
    assert not [p for p in (tmp_path / "manifest").iterdir() if p.name.startswith(".tmp")]


def _commit_many(root: str, who: int, n: int, storage_options: dict | None = None) -> list[int]:
    m = Manifest(root, storage_options=storage_options, checkpoint_interval=7)
    return [m.commit(add=[row(f"{who}-{i}")]) for i in range(n)]


def _check_race(root: str, versions: list[list[int]], writers: int, n: int, storage_options=None) -> None:
    flat = sorted(v for vs in versions for v in vs)
    assert flat == list(range(1, writers * n + 1))  # each version won by exactly one committer
    snap = Manifest(root, storage_options=storage_options).read()
    assert snap.version == writers * n
    assert sorted(snap.shards) == sorted(f"s{w}-{i}" for w in range(writers) for i in range(n))


def test_racing_committers_local_processes(tmp_path):
    writers, n = 4, 15
    ctx = mp.get_context("spawn")
    with ctx.Pool(writers) as pool:
        versions = pool.starmap(_commit_many, [(str(tmp_path), w, n) for w in range(writers)])
    _check_race(str(tmp_path), versions, writers, n)


def test_racing_committers_threads_memory(memfs):
    _, root = memfs
    writers, n = 4, 20
    out: list[list[int]] = [[] for _ in range(writers)]
    ts = [threading.Thread(target=lambda w=w: out[w].extend(_commit_many(root, w, n))) for w in range(writers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    _check_race(root, out, writers, n)


@pytest.mark.s3
def test_racing_committers_seaweedfs(s3root):
    root, so = s3root
    writers, n = 3, 6
    ctx = mp.get_context("spawn")
    with ctx.Pool(writers) as pool:
        versions = pool.starmap(_commit_many, [(root, w, n, so) for w in range(writers)])
    _check_race(root, versions, writers, n, so)


@pytest.mark.s3
def test_writer_reader_on_seaweedfs(s3root):
    from exashard.shards import iter_dataset, verify

    root, so = s3root
    samples = [{"__key__": f"k/{i}", "txt": f"t{i}".encode(), "bin": bytes([i]) * (i * 1000)} for i in range(50)]
    with ShardWriter(root, storage_options=so, max_samples=20, frame_size=8192) as w:
        for s in samples:
            w.write(s)
    assert [s for s in iter_dataset(root, storage_options=so)] == samples
    assert verify(root, storage_options=so).ok
    m = open_manifest(root, storage_options=so)
    from exashard.shards import open_shard

    info = list(m.read().shards.values())[1]
    with open_shard(m, info) as r:
        assert r.get("k/25") == samples[25]


@pytest.mark.s3
def test_open_tar_stream_on_seaweedfs(s3root):
    import tarfile

    from exashard.shards import open_tar_stream

    root, so = s3root
    with ShardWriter(root, storage_options=so, name="ts") as w:
        w.write({"__key__": "a/1", "txt": b"hello", "bin": bytes(range(200))})
    with open_tar_stream(f"{root}/{w.shards[0].path}", storage_options=so) as f, tarfile.open(fileobj=f, mode="r|") as t:
        members = [(m.name, t.extractfile(m).read()) for m in t]
    assert members == [("a/1.txt", b"hello"), ("a/1.bin", bytes(range(200)))]
