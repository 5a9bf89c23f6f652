"""Write -> read round trips: sequential, by position and by key, on several filesystems."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exashard.errors import ConfigError, SampleError
from exashard.shards import Manifest, ShardWriter, iter_dataset, open_shard

_part_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="/.\x00")
_part = st.text(_part_chars, min_size=1, max_size=12)
_dir = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=8).filter(
    lambda p: p not in (".", "..")
)
keys = st.builds(lambda dirs, last: "/".join([*dirs, last]), st.lists(_dir, max_size=3), _part)
exts = st.from_regex(r"[a-z0-9]{1,4}(\.[a-z0-9]{1,4})?", fullmatch=True)
values = st.one_of(st.binary(max_size=3000), st.just(b""), st.text(max_size=200))
samples = st.lists(
    st.tuples(keys, st.dictionaries(exts, values, min_size=1, max_size=4)),
    max_size=40,
    unique_by=lambda kv: kv[0],
)


def _as_bytes(v: bytes | str) -> bytes:
    return v.encode() if isinstance(v, str) else v


def _roundtrip(root: str, items: list, fs=None, **kw) -> None:
    with ShardWriter(root, fs=fs, name="rt", frame_size=4096, **kw) as w:
        for key, fields in items:
            w.write({"__key__": key, **fields})
    expected = [{"__key__": k, **{e: _as_bytes(v) for e, v in f.items()}} for k, f in items]
    got = list(iter_dataset(root)) if items else []
    assert got == expected
    if not items:
        assert w.shards == [] and w.version is None
        return
    m = Manifest(root)
    snap = m.read()
    assert snap.samples == len(items)
    pos = 0
    for info in snap.shards.values():
        with open_shard(m, info) as r:
            assert len(r) == info.samples
            for i in reversed(range(len(r))):
                assert r[i] == expected[pos + i]
                assert r.get(expected[pos + i]["__key__"]) == expected[pos + i]
        pos += info.samples


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=samples, max_samples=st.integers(1, 50))
def test_roundtrip_memory(memfs, items, max_samples):
    fs, root = memfs
    fs.rm(root, recursive=True) if fs.exists(root) else None
    _roundtrip(root, items, max_samples=max_samples)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=samples)
def test_roundtrip_local(tmp_path_factory, items):
    root = str(tmp_path_factory.mktemp("ds"))
    _roundtrip(root, items, max_samples=7)


def test_multi_mib_and_zero_copy(tmp_path):
    big = os.urandom(5 * 1024 * 1024 + 3)
    text = b"a caption " * 400_000  # 4 MB, compressible
    items = [
        ("small/0", {"txt": "x"}),
        ("big/1", {"bin": big, "txt": ""}),
        ("big/2", {"txt": text}),
        ("small/3", {"json": b"{}"}),
    ]
    _roundtrip(str(tmp_path / "ds"), items, target_size=1 << 30)
    m = Manifest(str(tmp_path / "ds"))
    (info,) = m.read().shards.values()
    assert info.frames == 4  # a sample larger than the frame target gets its own frame
    assert info.bytes < len(big) + len(text) // 10
    with open_shard(m, info, zero_copy=True) as r:
        s = r.get("big/1")
        assert isinstance(s["bin"], memoryview) and s["bin"] == big
        assert [bytes(x["txt"]) for x in r if "txt" in x] == [b"x", b"", text]


def test_rolls_by_target_size(tmp_path):
    root = str(tmp_path / "ds")
    with ShardWriter(root, target_size=100_000, frame_size=16_384, name="r") as w:
        for i in range(100):
            w.write({"__key__": f"{i:04d}", "bin": os.urandom(5000)})
    sizes = [s.bytes for s in w.shards]
    assert len(sizes) >= 4
    assert all(s < 100_000 + 16_384 + 8192 for s in sizes)
    assert sum(s.samples for s in w.shards) == 100
    assert [s["__key__"] for s in iter_dataset(root)] == [f"{i:04d}" for i in range(100)]


def test_deterministic_bytes(tmp_path):
    def write(root):
        with ShardWriter(root, name="d", max_samples=30, encrypt=False) as w:
            for i in range(70):
                w.write({"__key__": f"k/{i}", "txt": f"caption {i}" * i, "ünï": bytes(range(i % 256))})
        return [open(os.path.join(root, s.path), "rb").read() for s in w.shards]

    assert write(str(tmp_path / "a")) == write(str(tmp_path / "b"))


@pytest.mark.parametrize(
    "key",
    ["a.b", "dir/x.jpg", "", "/abs", "a//b", "a/../b", "./a", "a\x00b"],
)
def test_bad_keys_rejected(tmp_path, key):
    with pytest.raises(SampleError) as e, ShardWriter(str(tmp_path / "ds")) as w:
        w.write({"__key__": key, "txt": "x"})
    assert "key" in str(e.value)
    assert not (tmp_path / "ds" / "manifest").exists()  # nothing committed


def test_dot_in_key_message(tmp_path):
    with pytest.raises(SampleError, match="dot in its last path part"), ShardWriter(str(tmp_path / "ds")) as w:
        w.write({"__key__": "photos/IMG.0001", "jpg": b""})


@pytest.mark.parametrize(
    "sample, match",
    [
        ({"txt": "x"}, "no '__key__'"),
        ({"__key__": 5, "txt": "x"}, "must be a str"),
        ({"__key__": "k"}, "no fields"),
        ({"__key__": "k", "txt": 5}, "field 'txt' must be bytes or str"),
        ({"__key__": "k", "a/b": b""}, "not a valid extension"),
        ({"__key__": "k", ".x": b""}, "not a valid extension"),
        ("notadict", "must be a dict"),
    ],
)
def test_bad_samples_rejected(tmp_path, sample, match):
    with ShardWriter(str(tmp_path / "ds"), commit=False) as w, pytest.raises(SampleError, match=match):
        w.write(sample)


def test_duplicate_key_in_shard(tmp_path):
    with ShardWriter(str(tmp_path / "ds"), commit=False) as w:
        w.write({"__key__": "k", "txt": "a"})
        with pytest.raises(SampleError, match="duplicate sample key 'k'"):
            w.write({"__key__": "k", "txt": "b"})


def test_dunder_fields_ignored(memfs):
    _, root = memfs
    with ShardWriter(root) as w:
        w.write({"__key__": "k", "__url__": "x.tar", "txt": "a"})
    assert list(iter_dataset(root)) == [{"__key__": "k", "txt": b"a"}]


@pytest.mark.parametrize(
    "kw",
    [{"target_size": 0}, {"max_samples": 0}, {"frame_size": 10}, {"level": 99}, {"name": "bad/name"}],
)
def test_bad_writer_options(tmp_path, kw):
    with pytest.raises(ConfigError):
        ShardWriter(str(tmp_path / "ds"), **kw)


def test_failed_writer_commits_nothing(tmp_path):
    root = tmp_path / "ds"
    with pytest.raises(RuntimeError), ShardWriter(str(root), max_samples=2) as w:
        for i in range(5):
            w.write({"__key__": str(i), "txt": "x"})
        raise RuntimeError("boom")
    assert not list((root / "manifest").glob("v*.json"))  # no version committed
