"""Damaged shards raise IntegrityError naming the shard and offset; never a silent bad read."""

from __future__ import annotations

import os
import re

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exashard.cli import main
from exashard.errors import ExashardError, IntegrityError
from exashard.shards import Manifest, ShardReader, ShardWriter, iter_dataset, verify

SAMPLES = [{"__key__": f"s/{i:03d}", "bin": os.urandom(700 + i), "txt": f"text {i} " * 30} for i in range(40)]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    with ShardWriter(str(root), name="c", frame_size=4096, encrypt=False) as w:
        for s in SAMPLES:
            w.write(s)
    (info,) = w.shards
    return root, info, (root / info.path).read_bytes()


def _expected():
    return [{"__key__": s["__key__"], "bin": s["bin"], "txt": s["txt"].encode()} for s in SAMPLES]


def _read_all(path: str, info=None) -> list:
    with ShardReader.open(path, info=info) as r:
        out = list(r)
        out2 = [r[i] for i in range(len(r))]
    assert out == out2
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_byte_flip_is_detected_or_harmless(pristine, tmp_path_factory, data):
    _, info, blob = pristine
    pos = data.draw(st.integers(0, len(blob) - 1))
    bit = data.draw(st.integers(0, 7))
    bad = bytearray(blob)
    bad[pos] ^= 1 << bit
    path = tmp_path_factory.mktemp("flip") / "s.tar.zst"
    path.write_bytes(bad)
    for row in (None, info):
        try:
            got = _read_all(str(path), row)
        except IntegrityError as e:
            assert str(path) in str(e)
            continue
        assert got == _expected()  # bits zstd ignores may flip; the data must still be exact


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_truncation_always_raises(pristine, tmp_path_factory, data):
    _, info, blob = pristine
    cut = data.draw(st.integers(0, len(blob) - 1))
    path = tmp_path_factory.mktemp("cut") / "s.tar.zst"
    path.write_bytes(blob[:cut])
    for row in (None, info):
        with pytest.raises(IntegrityError) as e:
            _read_all(str(path), row)
        assert str(path) in str(e.value)
        assert re.search(r"offset|bytes|short", str(e.value))


def test_corrupt_frame_names_shard_and_offset(pristine, tmp_path):
    _, info, blob = pristine
    bad = bytearray(blob)
    bad[info.index_offset // 2] ^= 0xFF
    path = tmp_path / "s.tar.zst"
    path.write_bytes(bad)
    with pytest.raises(IntegrityError, match=r"s\.tar\.zst: frame \d+ at offset \d+"):
        _read_all(str(path), info)


def test_truncated_when_manifest_knows_size(pristine, tmp_path):
    _, info, blob = pristine
    path = tmp_path / "s.tar.zst"
    path.write_bytes(blob[:-100])
    with pytest.raises(IntegrityError, match="truncated or replaced"):
        ShardReader.open(str(path), info=info)


def test_verify_and_cli_name_the_bad_shard(tmp_path):
    root = tmp_path / "ds"
    with ShardWriter(str(root), name="v", max_samples=10, frame_size=4096) as w:
        for s in SAMPLES:
            w.write(s)
    assert verify(str(root)).ok
    ok = CliRunner().invoke(main, ["verify", str(root)])
    assert ok.exit_code == 0, ok.output
    victim = w.shards[2]
    p = root / victim.path
    data = bytearray(p.read_bytes())
    data[100] ^= 1
    p.write_bytes(bytes(data))
    report = verify(str(root))
    assert list(report.bad) == [victim.id]
    res = CliRunner().invoke(main, ["verify", str(root)])
    assert res.exit_code == 1
    assert victim.id in res.output and "1 bad shard" in res.output
    with pytest.raises(IntegrityError):
        list(iter_dataset(str(root)))


def test_verify_detects_silent_replacement(tmp_path):
    """A shard replaced by another valid shard of the same size fails the checksum."""
    blobs = [os.urandom(700) for _ in range(20)]
    roots = []
    for variant in (0, 1):
        root = tmp_path / f"ds{variant}"
        with ShardWriter(str(root), name="x", frame_size=4096, encrypt=False) as w:
            for i, b in enumerate(blobs):
                w.write({"__key__": f"s/{i:03d}", "bin": os.urandom(700) if (variant and i == 7) else b})
        roots.append((root, w.shards[0]))
    (a_root, a), (b_root, b) = roots
    assert a.bytes == b.bytes and a.checksum != b.checksum
    (a_root / a.path).write_bytes((b_root / b.path).read_bytes())
    report = verify(str(a_root))
    assert a.id in report.bad and "checksum" in report.bad[a.id]


def test_missing_shard_file(tmp_path):
    root = tmp_path / "ds"
    with ShardWriter(str(root), name="m") as w:
        w.write({"__key__": "a", "txt": "x"})
    (root / w.shards[0].path).unlink()
    with pytest.raises(ExashardError, match="not found"):
        list(iter_dataset(str(root)))
    assert "m-000000" in verify(str(root)).bad


def test_garbage_manifest_is_integrity_error(tmp_path):
    root = tmp_path / "ds"
    with ShardWriter(str(root), name="g") as w:
        w.write({"__key__": "a", "txt": "x"})
    (root / "manifest" / "v00000000000000000001.json").write_bytes(b"{not json")
    with pytest.raises(IntegrityError, match="v00000000000000000001.json: not valid JSON"):
        Manifest(str(root)).read()
