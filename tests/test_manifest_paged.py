"""Paged checkpoints: a loader starts from shard ids and counts, reading rows on demand."""

from __future__ import annotations

import json

import pytest

import exashard
from exashard.ingest.ops import vacuum
from exashard.shards import Manifest, ShardInfo, manifest


def row(i: int, samples: int = 3) -> ShardInfo:
    return ShardInfo(id=f"s{i:05d}", path=f"shards/s{i:05d}.tar.zst", samples=samples, bytes=10, tar_bytes=1024,
                     frames=1, checksum=f"sha256:{i:064x}", index_offset=0, index_size=10)


class Counting:
    """Wraps a filesystem; counts reads per kind of manifest file."""

    def __init__(self, fs):
        self.fs = fs
        self.reads: list[str] = []

    def __getattr__(self, name):
        return getattr(self.fs, name)

    def cat_file(self, path, *a, **kw):
        self.reads.append(path)
        return self.fs.cat_file(path, *a, **kw)


@pytest.fixture
def small_pages(monkeypatch):
    monkeypatch.setattr(manifest, "PAGE_ROWS", 7)


def test_paged_checkpoint_round_trip(tmp_path, small_pages):
    m = Manifest(str(tmp_path / "ds"), checkpoint_interval=5)
    n = 0
    for _ in range(12):  # 12 versions of 4 shards; checkpoints at 5 and 10 hold 20 and 40 rows
        m.commit(add=[row(n + k, samples=k + 1) for k in range(4)])
        n += 4
    m.commit(add=[row(999)], remove=["s00002", "s00030"])
    pages = sorted(p.name for p in (tmp_path / "ds" / "manifest" / "checkpoints").glob("pages/*.json"))
    assert len(pages) == 3 + 6 - 2  # 20 rows / 7 and 40 rows / 7; the first two full pages are shared
    snap = m.read()
    want = [f"s{i:05d}" for i in range(48) if i not in (2, 30)] + ["s00999"]
    assert list(snap.shards) == want
    fresh = Manifest(str(tmp_path / "ds"))
    counting = Counting(fresh.fs)
    fresh.fs = counting
    idx = fresh.read_index()
    assert idx.version == 13 and idx.ids == want and idx.samples == [snap.shards[s].samples for s in want]
    assert not any("/pages/" in p for p in counting.reads)  # started without reading a single row page
    assert idx.row(len(want) - 1).id == "s00999"  # added by a commit: known without a page
    assert idx.row(idx.ids.index("s00003")).checksum == snap.shards["s00003"].checksum
    assert sum("/pages/" in p for p in counting.reads) == 1  # one page for that row
    assert [idx.row(i) for i in range(len(idx))] == list(snap.shards.values())
    old = fresh.read_index(7)
    assert old.ids == list(m.read(7).shards)


def test_loader_starts_without_reading_rows(tmp_path, small_pages):
    m = Manifest(str(tmp_path / "ds"), checkpoint_interval=3)
    for v in range(9):
        m.commit(add=[row(v * 10 + k) for k in range(10)])
    assert (tmp_path / "ds" / "manifest" / "checkpoints").exists()
    reads = []
    real = Manifest._page

    def spy(self, version, name):
        reads.append(name)
        return real(self, version, name)

    Manifest._page = spy
    try:
        ds = exashard.ShardDataset(str(tmp_path / "ds"), shuffle=True, seed=1, rank=1, world_size=4)
        assert len(ds) == 90 * 3 // 4 and ds.total == 270
        plan = ds.plan()
        assert plan.per_rank == 67
        assert reads == []  # the plan needs ids and counts only
        assert ds.rows[5].id == "s00005" and len(reads) == 1
    finally:
        Manifest._page = real


def test_vacuum_removes_old_checkpoint_pages(tmp_path, small_pages):
    root = tmp_path / "ds"
    m = Manifest(str(root), checkpoint_interval=3)
    for v in range(10):
        m.commit(add=[row(v * 10 + k) for k in range(10)], remove=[f"s{(v - 1) * 10:05d}"] if v else [])
    folder = root / "manifest" / "checkpoints"
    before = {p.name for p in folder.glob("pages/*.json")}
    vacuum(str(root), keep_versions=2, grace=3600)
    assert sorted(p.name for p in folder.glob("*.json")) == ["v00000000000000000009.json"]
    kept = json.loads((folder / "v00000000000000000009.json").read_text())["paged"]["pages"]
    after = {p.name for p in folder.glob("pages/*.json")}
    assert after == set(kept) and after < before
    fresh = Manifest(str(root))
    assert list(fresh.read().shards) == [f"s{i:05d}" for i in range(100) if i % 10 or i == 90]
