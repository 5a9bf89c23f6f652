"""ShardLoader's column batches (dicts of lists, and Arrow tables): equal to collating the
samples one by one, in every layout."""

from __future__ import annotations

import json
import random
import sys
import warnings
from unittest import mock

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import exashard
from exashard.shards import ShardWriter, batching
from exashard.shards.arrow import payload_bytes
from exashard.shards.batching import Packed, collate_lists, pack, unpack

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")


def _write(out: str, n: int, *, kind: str, encrypt: bool, seed: int = 0) -> list[str]:
    """``uniform``: every sample has bin + json; ``mixed``: some lack json, some add txt, and
    field order varies; ``raw``: incompressible members, mostly bigger than a frame's blocks
    are cut at (Raw-block frames, served by block slicing)."""
    rnd = random.Random(seed)
    keys = []
    with ShardWriter(out, encrypt=encrypt, target_size=60_000, frame_size=8 * 1024) as w:
        for i in range(n):
            k = f"s{i:05d}"
            s = {"__key__": k}
            if kind == "raw":  # now and then one past 128 KiB: it straddles two Raw blocks
                s["bin"] = rnd.randbytes(150_000 if i % 97 == 50 else rnd.choice([300, 5000, 20_000]))
            else:
                s["bin"] = bytes(rnd.randint(0, 3) for _ in range(rnd.randint(50, 900)))
            if kind != "mixed" or i % 7:
                s["json"] = json.dumps({"i": i}).encode()
            if kind == "mixed" and i % 5 == 0:
                s["txt"] = f"caption {i}".encode()
            w.write(s)
            keys.append(k)
    return keys


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, str]:
    out = {}
    for kind, encrypt in (("uniform", True), ("mixed", True), ("raw", False), ("raw", True)):
        path = str(tmp_path_factory.mktemp("batching") / f"{kind}-{encrypt}")
        _write(path, 300, kind=kind, encrypt=encrypt)
        out[f"{kind}-{encrypt}"] = path
    return out


def _plain(batch: dict) -> dict:
    return {k: [bytes(v) if isinstance(v, memoryview) else v for v in vs] for k, vs in batch.items()}


def _batches(path: str, batch: int, *, collate=None, workers: int = 0, **kw) -> list[dict]:
    loader = exashard.ShardLoader(exashard.ShardDataset(path, **kw), batch_size=batch, num_workers=workers, collate_fn=collate)
    return [_plain(b) for b in loader]


@settings(max_examples=40, deadline=None)
@given(
    which=st.sampled_from(["uniform-True", "mixed-True", "raw-False", "raw-True"]),
    batch=st.integers(1, 70),
    shuffle=st.booleans(),
    seed=st.integers(0, 5),
    world=st.integers(1, 3),
    zero_copy=st.booleans(),
    data=st.data(),
)
def test_column_batches_equal_collated_samples(datasets, which, batch, shuffle, seed, world, zero_copy, data):
    """The default (column) batches are exactly what collating each sample gives: same
    batches, same fields in the same order, None where a sample lacks a field. Arrow
    tables hold the same: null where a sample lacks a field, no column for a field none
    of the batch's samples has."""
    rank = data.draw(st.integers(0, world - 1))
    kw = {"shuffle": shuffle, "seed": seed, "rank": rank, "world_size": world, "zero_copy": zero_copy}
    fast = _batches(datasets[which], batch, **kw)
    slow = _batches(datasets[which], batch, collate=lambda s: collate_lists(s), **kw)
    assert fast == slow
    assert _arrow(datasets[which], batch, **kw) == fast
    assert sum(len(b["__key__"]) for b in fast) == 300 // world


def test_column_batches_from_workers_and_resume(datasets):
    """Through 2 DataLoader workers the batches are the same; a state taken mid-epoch
    resumes with the same remaining batches (column and collated alike)."""
    path = datasets["mixed-True"]
    whole = _batches(path, 13, shuffle=True, seed=1)
    assert _batches(path, 13, shuffle=True, seed=1, workers=2) == whole
    assert any(None in b.get("json", []) for b in whole) and any("txt" in b for b in whole)
    ds = exashard.ShardDataset(path, shuffle=True, seed=1)
    loader = exashard.ShardLoader(ds, batch_size=13)
    it = iter(loader)
    head = [_plain(next(it)) for _ in range(5)]
    state = loader.state_dict()
    ds2 = exashard.ShardDataset(path, shuffle=True, seed=1)
    ds2.load_state_dict(state)
    rest = [_plain(b) for b in exashard.ShardLoader(ds2, batch_size=13)]
    assert head + rest == whole


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.none() | st.binary(max_size=3000), max_size=40), views=st.booleans(),
       floor=st.integers(0, 20_000), zero_copy=st.booleans())
def test_pack_roundtrip(values, views, floor, zero_copy):
    """A field crosses from a worker as one shared-memory tensor once its values reach
    ``PACK_MIN`` bytes; unpacked, it is the same values: bytes, or memoryviews with
    ``zero_copy``, None kept. Smaller fields stay lists, their views made bytes."""
    field = [memoryview(v) if views and v is not None else v for v in values]
    with mock.patch.object(batching, "PACK_MIN", floor):
        batch = pack({"__key__": [str(i) for i in range(len(values))], "bin": field, "n": [1] * len(values)})
    total = sum(len(v) for v in values if v is not None)
    big = total >= floor and total > 0
    assert (type(batch["bin"]) is Packed) == big and batch["n"] == [1] * len(values)
    if not big:
        assert all(v is None or type(v) is bytes for v in batch["bin"])
    out = unpack(batch, zero_copy)
    assert [None if v is None else bytes(v) for v in out["bin"]] == values
    assert all(v is None or type(v) is (memoryview if zero_copy else bytes) for v in out["bin"])


@pytest.mark.parametrize("zero_copy", [False, True])
def test_worker_batches_cross_in_shared_memory(tmp_path, monkeypatch, zero_copy):
    """Big fields from DataLoader workers (packed) and small ones (pickled), some values
    missing: the same batches as in-process; with ``zero_copy`` every value is a memoryview
    (a view used to reach the main process as a list of ints)."""
    out = str(tmp_path / "ds")
    rnd = random.Random(3)
    with ShardWriter(out, encrypt=True, target_size=400_000) as w:
        for i in range(60):
            s = {"__key__": f"k{i:03d}", "json": b'{"i": %d}' % i}
            if i % 9:
                s["bin"] = rnd.randbytes(rnd.randint(70_000, 90_000))
            w.write(s)
    want = _batches(out, 20)
    packed = []

    def seen(batch, zc):
        packed.append(sorted(k for k, v in batch.items() if type(v) is Packed))
        return unpack(batch, zc)

    monkeypatch.setattr(batching, "unpack", seen)
    got = list(exashard.ShardLoader(exashard.ShardDataset(out, zero_copy=zero_copy), batch_size=20, num_workers=2))
    assert [_plain(b) for b in got] == want and any(None in b["bin"] for b in want)
    assert packed == [["bin"]] * 3  # the json fields (small) were pickled
    kinds = {type(v) for b in got for k, vs in b.items() if k != "__key__" for v in vs if v is not None}
    assert kinds == ({memoryview} if zero_copy else {bytes})


@pytest.mark.parametrize("fmt", ["dict", "arrow"])
def test_column_batches_skip_a_shredded_shard_in_process(tmp_path, fmt):
    """A shard shredded mid-epoch: its samples are skipped and counted, in the main process."""
    from exashard.privacy.keyops import shred

    def keys_of(b):
        return b.column("__key__").to_pylist() if fmt == "arrow" else b["__key__"]

    out = str(tmp_path / "ds")
    keys = _write(out, 60, kind="raw", encrypt=True)
    ds = exashard.ShardDataset(out, prefetch=0)
    rows = ds.rows
    loader = exashard.ShardLoader(ds, batch_size=10, batch_format=fmt)
    it = iter(loader)
    first = keys_of(next(it))
    victim = rows[2]
    shred(out, [victim.id])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rest = [k for b in it for k in keys_of(b)]
    start = sum(r.samples for r in rows[:2])
    gone = set(keys[start : start + victim.samples])
    assert first + rest == [k for k in keys if k not in gone]
    assert ds.skipped_samples == victim.samples and ds.state_dict()["delivered"] == 60


# -- Arrow batches (batch_format="arrow") --------------------------------------------------


def _arrow(path: str, batch: int, *, workers: int = 0, **kw) -> list[dict]:
    loader = exashard.ShardLoader(exashard.ShardDataset(path, **kw), batch_size=batch, num_workers=workers, batch_format="arrow")
    out = []
    for t in loader:
        assert isinstance(t, pa.Table)
        assert t.schema.field("__key__").type == pa.string() and t.column_names[0] == "__key__"
        assert all(f.type == pa.binary() for f in t.schema if f.name != "__key__")
        assert payload_bytes(t) == sum(len(v) for c in t.columns[1:] for v in c.to_pylist() if v is not None)
        out.append(t.to_pydict())
    return out


def test_arrow_batches_from_workers_and_resume(datasets):
    """Through 2 DataLoader workers the tables are the same; a state taken mid-epoch resumes
    with the same remaining tables."""
    path = datasets["mixed-True"]
    whole = _arrow(path, 13)
    assert whole == _batches(path, 13)
    assert _arrow(path, 13, workers=2) == whole
    assert any(None in b.get("json", []) for b in whole) and any("txt" in b for b in whole)
    ds = exashard.ShardDataset(path)
    loader = exashard.ShardLoader(ds, batch_size=13, batch_format="arrow")
    it = iter(loader)
    head = [next(it).to_pydict() for _ in range(5)]
    ds2 = exashard.ShardDataset(path)
    ds2.load_state_dict(loader.state_dict())
    rest = [t.to_pydict() for t in exashard.ShardLoader(ds2, batch_size=13, batch_format="arrow")]
    assert head + rest == whole


def test_arrow_batch_format_errors(datasets, monkeypatch):
    ds = exashard.ShardDataset(datasets["uniform-True"])
    with pytest.raises(exashard.ConfigError, match="batch_format must be 'dict' or 'arrow', got 'polars'"):
        exashard.ShardLoader(ds, batch_size=4, batch_format="polars")
    with pytest.raises(exashard.ConfigError, match="collate_fn and batch_format='arrow'"):
        exashard.ShardLoader(ds, batch_size=4, batch_format="arrow", collate_fn=collate_lists)
    monkeypatch.setitem(sys.modules, "numpy", None)  # numpy not installed
    with pytest.raises(exashard.MissingDependencyError, match=r"exashard\[arrow\]"):
        exashard.ShardLoader(ds, batch_size=4, batch_format="arrow")


def test_arrow_worker_batches_carry_only_their_own_bytes(tmp_path):
    """A batch sliced out of a frame's table refers to the frame's whole buffers (and the
    shard's key blob); from workers, each batch crosses as a compact copy, not all of that."""
    path = str(tmp_path / "ds")
    with ShardWriter(path, encrypt=False, frame_size=256 * 1024) as w:
        for i in range(600):
            w.write({"__key__": f"k{i:05d}", "txt": f"sample {i} ".encode() * 20, "json": b'{"i": %d}' % i})
    whole = _arrow(path, 10)
    tables = list(exashard.ShardLoader(exashard.ShardDataset(path), batch_size=10, num_workers=2, batch_format="arrow"))
    assert [t.to_pydict() for t in tables] == whole and len(tables) == 60
    for t in tables:
        assert t.get_total_buffer_size() <= t.nbytes + 256, (t.get_total_buffer_size(), t.nbytes)
    in_process = next(iter(exashard.ShardLoader(exashard.ShardDataset(path), batch_size=10, batch_format="arrow")))
    assert in_process.get_total_buffer_size() > 10 * in_process.nbytes  # what would have crossed
