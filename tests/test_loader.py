"""The training loader: split, order, resume, workers, shredded shards, map view, cache, no-torch."""

from __future__ import annotations

import json
import os
import random
import threading
import warnings
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import exashard
from exashard.errors import ConfigError, ShreddedError
from exashard.shards import ShardWriter
from exashard.shards.order import EpochPlan

torch = pytest.importorskip("torch")  # the no-torch path is tested in a subprocess below

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")  # 3 workers, 2 cores

N = 487  # samples: odd, so world sizes 2 and 3 drop some


def _write(out: str, n: int = N, *, seed: int = 0, encrypt: bool = True, **kw) -> list[str]:
    rnd = random.Random(seed)
    keys = []
    kw.setdefault("target_size", 60_000)  # several shards of uneven sample counts
    kw.setdefault("frame_size", 8 * 1024)
    with ShardWriter(out, encrypt=encrypt, **kw) as w:
        for i in range(n):
            k = f"s{i:05d}"
            w.write({"__key__": k, "bin": rnd.randbytes(rnd.randint(50, 900)), "json": json.dumps({"i": i}).encode()})
            keys.append(k)
    return keys


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[str, list[str]]:
    out = str(tmp_path_factory.mktemp("loader") / "ds")
    return out, _write(out)


def _keys(items) -> list[str]:
    return [s["__key__"] for s in items]


def _loader_keys(loader) -> list[str]:
    return [k for b in loader for k in b["__key__"]]


# -- the order, as a pure function ---------------------------------------------------------


def _frames(plan: EpochPlan, counts: list[int], w: int, frame: int) -> dict[int, list[tuple[int, int]]]:
    """Window ``w``'s shards cut into frames of ``frame`` samples, as ``EpochPlan.blocks`` takes them."""
    return {slot: [(a, min(counts[plan.order[slot]], a + frame)) for a in range(0, counts[plan.order[slot]], frame)]
            for slot in plan.window_slots(w)}


@settings(max_examples=150, deadline=None)
@given(
    counts=st.lists(st.integers(0, 40), min_size=1, max_size=12),
    world=st.integers(1, 5),
    shuffle=st.booleans(),
    seed=st.integers(0, 2**32),
    epoch=st.integers(0, 3),
    window=st.integers(1, 4),
    block=st.integers(1, 3),
    frame=st.integers(1, 9),
)
def test_plan_splits_every_position_once(counts, world, shuffle, seed, epoch, window, block, frame):
    """Ranks get equal, disjoint parts; fewer than world positions dropped; order deterministic."""
    seen: list[tuple[int, int]] = []
    per_rank = []
    for rank in range(world):
        plan = EpochPlan(counts, seed=seed, epoch=epoch, version=3, rank=rank, world=world, shuffle=shuffle,
                         window=window, block=block)
        got = []
        for w in range(plan.windows()):
            for blk in plan.blocks(w, _frames(plan, counts, w, frame)):
                locs = blk.locate()
                for j, p in plan.positions(blk, 0, 1, 0, 1):
                    k, i = locs[j]
                    got.append((p, (plan.order[blk.units[k].slot], i)))
        assert [p for p, _ in got] == list(range(plan.per_rank))  # the rank's positions, in order
        per_rank.append(len(got))
        seen += [s for _, s in got]
    total = sum(counts)
    assert len(set(per_rank)) == 1
    assert len(seen) == len(set(seen))  # at most once
    assert 0 <= total - len(seen) < world  # fewer than world size dropped
    assert all(0 <= i < counts[s] for s, i in seen)


def _positions_one_by_one(plan: EpochPlan, blk, start: int, workers: int, worker: int, batch: int) -> list[tuple[int, int]]:
    """``EpochPlan.positions`` by its definition, sample by sample."""
    out = []
    for g in range(max(blk.gstart, plan.lo), min(blk.gstart + len(blk), plan.hi)):
        if g in plan.drops:
            continue
        p = g - sum(d < g for d in plan.drops) - plan.rank * plan.per_rank
        if p >= start and ((p - start) // batch) % workers == worker:
            out.append((g - blk.gstart, p))
    return out


@settings(max_examples=150, deadline=None)
@given(
    counts=st.lists(st.integers(0, 40), min_size=1, max_size=8),
    world=st.integers(1, 4),
    shuffle=st.booleans(),
    seed=st.integers(0, 2**32),
    frame=st.integers(1, 30),
    workers=st.integers(1, 4),
    batch=st.integers(1, 9),
    start=st.integers(0, 120),
    data=st.data(),
)
def test_positions_match_their_definition(counts, world, shuffle, seed, frame, workers, batch, start, data):
    """A worker's positions in a block, computed run by run between drops, are exactly those
    the definition gives one by one, for any resume position, batch size and worker count."""
    rank = data.draw(st.integers(0, world - 1))
    plan = EpochPlan(counts, seed=seed, epoch=1, version=2, rank=rank, world=world, shuffle=shuffle, window=2, block=2)
    union = []
    for w in range(plan.windows()):
        for blk in plan.blocks(w, _frames(plan, counts, w, frame)):
            for worker in range(workers):
                got = plan.positions(blk, start, workers, worker, batch)
                assert got == _positions_one_by_one(plan, blk, start, workers, worker, batch)
                union += [p for _, p in got]
    assert sorted(union) == list(range(start, plan.per_rank))  # the workers share the rest of the epoch


def test_drops_change_with_epoch():
    counts = [10, 7, 13, 9]  # 39 samples, world 4: 3 dropped each epoch
    sets = {tuple(EpochPlan(counts, seed=5, epoch=e, version=1, rank=0, world=4, shuffle=False, window=1, block=1).drops)
            for e in range(6)}
    assert len(sets) > 1 and all(len(s) == 3 for s in sets)


# -- the dataset ---------------------------------------------------------------------------


def test_in_order_reads_every_sample(dataset):
    out, keys = dataset
    ds = exashard.ShardDataset(out)
    assert len(ds) == N and ds.total == N
    got = list(ds)
    assert _keys(got) == keys
    assert json.loads(got[17]["json"]) == {"i": 17} and isinstance(got[17]["bin"], bytes)


def test_shuffle_is_seeded_and_changes_per_epoch(dataset):
    out, keys = dataset
    a = _keys(exashard.ShardDataset(out, shuffle=True, seed=7))
    assert sorted(a) == keys and a != keys
    assert _keys(exashard.ShardDataset(out, shuffle=True, seed=7)) == a  # a pure function
    assert _keys(exashard.ShardDataset(out, shuffle=True, seed=8)) != a
    ds = exashard.ShardDataset(out, shuffle=True, seed=7)
    ds.set_epoch(1)
    b = _keys(ds)
    assert sorted(b) == keys and b != a
    # mixing across shards: the first 50 samples lie far apart in commit order
    assert len(ds.rows) > 3
    where = {k: i for i, k in enumerate(keys)}
    assert max(where[k] for k in b[:50]) - min(where[k] for k in b[:50]) > 100


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("workers", [0, 2, 3])
def test_ranks_and_workers_split_exactly(dataset, world, workers):
    out, keys = dataset
    parts = []
    for rank in range(world):
        ds = exashard.ShardDataset(out, shuffle=True, seed=3, rank=rank, world_size=world)
        got = _loader_keys(exashard.ShardLoader(ds, batch_size=16, num_workers=workers))
        # the order does not depend on num_workers: it is the in-process order
        assert got == _keys(exashard.ShardDataset(out, shuffle=True, seed=3, rank=rank, world_size=world))
        parts.append(got)
    assert len({len(p) for p in parts}) == 1 and len(parts[0]) == N // world
    flat = [k for p in parts for k in p]
    assert len(flat) == len(set(flat)) and set(flat) <= set(keys)
    assert N - len(flat) < world


def test_rank_from_environment(dataset, monkeypatch):
    out, _ = dataset
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    ds = exashard.ShardDataset(out)
    assert (ds.rank, ds.world_size, len(ds)) == (1, 2, N // 2)
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ConfigError, match="rank"):
        exashard.ShardDataset(out)


def test_plain_dataloader_with_matching_batch_size_keeps_the_order(dataset):
    out, _ = dataset
    ds = exashard.ShardDataset(out, shuffle=True, seed=1, batch_size=8)
    dl = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2, collate_fn=lambda b: [s["__key__"] for s in b])
    assert [k for b in dl for k in b] == _keys(exashard.ShardDataset(out, shuffle=True, seed=1))


# -- resume --------------------------------------------------------------------------------


def test_resume_in_process_at_random_points(dataset):
    out, _ = dataset
    full = _keys(exashard.ShardDataset(out, shuffle=True, seed=11, epoch=2))
    rnd = random.Random(0)
    for cut in [0, 1, rnd.randrange(N), rnd.randrange(N), N - 1]:
        ds = exashard.ShardDataset(out, shuffle=True, seed=11, epoch=2)
        it = iter(ds)
        head = [next(it)["__key__"] for _ in range(cut)]
        state = json.loads(json.dumps(ds.state_dict()))  # states survive a JSON round trip
        it.close()
        again = exashard.ShardDataset(out, shuffle=True, seed=11)
        again.load_state_dict(state)
        again.set_epoch(2)  # the same epoch keeps the resumed position
        assert head + _keys(again) == full, cut


@pytest.mark.parametrize("before,after", [(2, 3), (3, 0), (0, 2)])
def test_resume_with_other_num_workers(dataset, before, after):
    out, _ = dataset
    ds = exashard.ShardDataset(out, shuffle=True, seed=4, rank=1, world_size=2)
    full = _keys(exashard.ShardDataset(out, shuffle=True, seed=4, rank=1, world_size=2))
    for stop in (1, 5, 9):
        ds = exashard.ShardDataset(out, shuffle=True, seed=4, rank=1, world_size=2)
        loader = exashard.ShardLoader(ds, batch_size=10, num_workers=before)
        head: list[str] = []
        for i, b in enumerate(loader):
            head += b["__key__"]
            if i + 1 == stop:
                state = loader.state_dict()
                break
        del loader
        ds2 = exashard.ShardDataset(out, shuffle=True, seed=4, rank=1, world_size=2)
        ds2.load_state_dict(state)
        rest = _loader_keys(exashard.ShardLoader(ds2, batch_size=7, num_workers=after))
        assert head + rest == full, stop


def test_resume_state_must_match(dataset):
    out, _ = dataset
    state = exashard.ShardDataset(out, seed=1).state_dict()
    with pytest.raises(ConfigError, match="seed"):
        exashard.ShardDataset(out, seed=2).load_state_dict(state)
    with pytest.raises(ConfigError, match="world_size"):
        exashard.ShardDataset(out, seed=1, rank=0, world_size=2).load_state_dict(state)
    with pytest.raises(ConfigError, match="not an exashard loader state"):
        exashard.ShardDataset(out).load_state_dict({"delivered": 3})
    with pytest.raises(ConfigError, match="delivered"):
        exashard.ShardDataset(out, seed=1).load_state_dict({**state, "delivered": N + 1})


def test_a_finished_epoch_starts_over_and_set_epoch_resets(dataset):
    out, keys = dataset
    ds = exashard.ShardDataset(out)
    assert _keys(ds) == keys
    assert ds.state_dict()["delivered"] == N
    assert _keys(ds) == keys
    it = iter(ds)
    next(it)
    it.close()
    ds.set_epoch(1)
    assert ds.state_dict()["delivered"] == 0


# -- versions, shredding, random access, zero copy, cache -------------------------------------


def test_pins_one_version(tmp_path):
    out = str(tmp_path / "ds")
    keys = _write(out, 50)
    ds = exashard.ShardDataset(out)
    _write(out, 30, seed=9)  # a second commit: new shards, new version
    assert _keys(ds) == keys
    assert len(exashard.ShardDataset(out)) == 80


def test_shredded_shard_is_skipped_with_a_warning(tmp_path):
    from exashard.privacy.keyops import shred

    out = str(tmp_path / "ds")
    keys = _write(out, 200)
    ds = exashard.ShardDataset(out, prefetch=0)
    rows = ds.rows
    assert len(rows) >= 3
    it = iter(ds)
    first = [next(it)["__key__"] for _ in range(3)]
    victim = rows[1]
    shred(out, [victim.id])
    with pytest.warns(UserWarning, match=victim.id):
        rest = [s["__key__"] for s in it]
    got = first + rest
    gone = set(keys[rows[0].samples : rows[0].samples + victim.samples])
    assert got == [k for k in keys if k not in gone]
    assert ds.skipped_shards == {victim.id} and ds.skipped_samples == victim.samples
    assert ds.state_dict()["delivered"] == 200  # positions of skipped samples count as passed
    strict = exashard.ShardDataset(out, on_shredded="raise")
    with pytest.raises(ShreddedError, match=victim.id):
        list(strict)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = exashard.ShardLoader(exashard.ShardDataset(out), batch_size=16, num_workers=2)
        assert _loader_keys(loader) == [k for k in keys if k not in gone]
        assert loader.dataset.skipped_samples == victim.samples


def test_map_view_and_random_access(dataset):
    out, keys = dataset
    ds = exashard.ShardDataset(out)
    for i in [0, 1, 100, N - 1, -1]:
        assert ds.at(i)["__key__"] == keys[i]
    with pytest.raises(IndexError, match="out of range"):
        ds.at(N)
    view = exashard.ShardMapDataset(ds)
    assert len(view) == N
    order = list(range(N))
    random.Random(2).shuffle(order)
    dl = torch.utils.data.DataLoader(view, batch_size=None, sampler=order[:40], num_workers=2)
    assert [s["__key__"] for s in dl] == [keys[i] for i in order[:40]]


def test_zero_copy_yields_memoryviews(dataset):
    out, _ = dataset
    s = next(iter(exashard.ShardDataset(out, zero_copy=True)))
    assert isinstance(s["bin"], memoryview) and json.loads(bytes(s["json"])) == {"i": 0}


def test_cache_holds_ciphertext_and_serves_later_epochs(memfs, tmp_path):
    fs, root = memfs
    keys = _write(root, 120, target_size=20_000)
    cache = tmp_path / "cache"
    ds = exashard.ShardDataset(root, cache_dir=str(cache))
    assert _keys(ds) == keys
    files = [p for p in cache.rglob("*.shard")]
    assert len(files) == len(ds.rows)
    blob = b"".join(p.read_bytes() for p in files)
    assert b'{"i": 5}' not in blob and b"s00005" not in blob  # stored bytes: encrypted
    for row in ds.rows:  # later epochs need only the cache
        fs.rm(f"{root}/{row.path}")
    ds.set_epoch(1)
    assert _keys(ds) == keys
    small = exashard.ShardDataset(root, cache_dir=str(tmp_path / "c2"), cache_limit=1, on_shredded="raise")
    with pytest.raises(exashard.NotFoundError):
        list(small)  # nothing cached there, and the shards are gone


def test_bad_arguments_are_named(dataset):
    out, _ = dataset
    with pytest.raises(ConfigError, match="window"):
        exashard.ShardDataset(out, window=0)
    with pytest.raises(ConfigError, match="on_shredded"):
        exashard.ShardDataset(out, on_shredded="ignore")
    with pytest.raises(ConfigError, match="shuffle"):
        exashard.ShardLoader(exashard.ShardDataset(out), batch_size=4, shuffle=True)
    with pytest.raises(exashard.NotFoundError):
        exashard.ShardDataset(str(os.path.join(out, "nope")))


def test_unencrypted_dataset_reads_the_same(tmp_path):
    out = str(tmp_path / "plain")
    keys = _write(out, 90, encrypt=False)
    got = _keys(exashard.ShardDataset(out, shuffle=True, seed=2))
    assert Counter(got) == Counter(keys)


@pytest.mark.s3
def test_streams_from_s3(s3root):
    root, so = s3root
    keys = _write(root, 150, storage_options=so)
    ds = exashard.ShardDataset(root, storage_options=so, shuffle=True, seed=5)
    got = _loader_keys(exashard.ShardLoader(ds, batch_size=8, num_workers=2))
    assert sorted(got) == keys and got == _keys(exashard.ShardDataset(root, storage_options=so, shuffle=True, seed=5))


def test_spawned_workers(dataset):
    """Workers started with 'spawn' (macOS's default) get a pickled dataset: same order."""
    out, _ = dataset
    ds = exashard.ShardDataset(out, shuffle=True, seed=6)
    loader = exashard.ShardLoader(ds, batch_size=32, num_workers=2, multiprocessing_context="spawn")
    assert _loader_keys(loader) == _keys(exashard.ShardDataset(out, shuffle=True, seed=6))


@pytest.mark.parametrize("zero_copy", [False, True])
def test_raw_frames_load_on_their_own_thread_when_cores_are_scarce(tmp_path, monkeypatch, zero_copy):
    """With no spare core, bytes-mode Raw-block frames (incompressible samples) load on a
    single thread of their own, compressed frames on all; the samples are the same."""
    from exashard.shards import reader as rd

    out = str(tmp_path / "ds")
    rnd = random.Random(5)
    want = []
    with ShardWriter(out, encrypt=True, target_size=800_000, frame_size=64 * 1024) as w:
        for i in range(120):  # runs of incompressible and of compressible samples: Raw and zstd frames
            s = {"__key__": f"k{i:04d}", "bin": rnd.randbytes(40_960) if i // 20 % 2 else bytes(3000)}
            w.write(s)
            want.append(s)
    names: set[str] = set()

    def load(self, i, pool=None, _orig=rd.ShardReader._load):
        out = _orig(self, i, pool)
        names.add(threading.current_thread().name.rsplit("_", 1)[0])
        return out

    monkeypatch.setattr(rd.ShardReader, "_load", load)
    monkeypatch.setattr(rd, "_usable_cpus", lambda: 2)
    got = [{k: bytes(v) if isinstance(v, memoryview) else v for k, v in s.items()}
           for s in exashard.ShardDataset(out, threads=2, zero_copy=zero_copy)]
    assert got == want
    raw_thread = "exashard-load-raw"
    assert (raw_thread in names) is (not zero_copy) and "exashard-load" in names
    names.clear()
    monkeypatch.setattr(rd, "_usable_cpus", lambda: 8)  # cores to spare: one pool for all frames
    assert [s["__key__"] for s in exashard.ShardDataset(out, threads=2)] == [s["__key__"] for s in want]
    assert names == {"exashard-load"}
