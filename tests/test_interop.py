"""Ordinary tools read unencrypted shards: the zstd CLI, GNU tar, Python's tarfile, webdataset."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile

import pytest
import zstandard

from exashard.shards import ShardWriter

SAMPLES = [
    {"__key__": f"part/{i:05d}", "txt": f"caption {i}".encode(), "bin": os.urandom(i * 300), "json": b'{"i": %d}' % i}
    for i in range(60)
] + [{"__key__": "unicode/ключ-🙂", "txt": b"u"}, {"__key__": "long/" + "d" * 150 + "/name", "txt": b"l"}]


@pytest.fixture(scope="module")
def shard(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("ds")
    with ShardWriter(str(root), name="i", frame_size=8192, encrypt=False) as w:
        for s in SAMPLES:
            w.write(s)
    (info,) = w.shards
    assert info.frames > 3
    return str(root / info.path)


def _names(samples):
    return [f"{s['__key__']}.{e}" for s in samples for e in s if e != "__key__"]


@pytest.mark.skipif(shutil.which("zstd") is None or shutil.which("tar") is None, reason="zstd/tar CLI not installed")
def test_zstd_cli_and_tar_list(shard):
    tar_bytes = subprocess.run(["zstd", "-dc", shard], check=True, capture_output=True).stdout
    listing = subprocess.run(["tar", "-t"], input=tar_bytes, check=True, capture_output=True).stdout.decode()
    assert listing.splitlines() == _names(SAMPLES)


def test_python_zstd_and_tarfile(shard):
    with open(shard, "rb") as f:
        data = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True).read()
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        members = t.getmembers()
        assert [m.name for m in members] == _names(SAMPLES)
        assert all(m.mtime == 0 and m.uid == 0 and m.mode == 0o644 for m in members)
        first = t.extractfile(members[1]).read()
    assert first == SAMPLES[0]["bin"]


def _zst_opener(data):
    for src in data:
        f = open(src["url"], "rb")  # noqa: SIM115 - closed with the stream by webdataset
        src["stream"] = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True, closefd=True)
        yield src


def test_webdataset_reads_shard(shard):
    import webdataset as wds

    pipeline = wds.DataPipeline(
        wds.SimpleShardList([shard]),
        _zst_opener,
        wds.tariterators.tar_file_expander,
        wds.tariterators.group_by_keys,
    )
    got = [{k: v for k, v in s.items() if not k.startswith("__") or k == "__key__"} for s in pipeline]
    assert got == SAMPLES


@pytest.mark.skipif(shutil.which("zstd") is None, reason="zstd CLI not installed")
def test_webdataset_pipe_url(shard):
    import webdataset as wds

    ds = wds.WebDataset(f"pipe:zstd -dc {shard}", shardshuffle=False)
    got = [{k: v for k, v in s.items() if not k.startswith("__") or k == "__key__"} for s in ds]
    assert got == SAMPLES


def test_webdataset_reads_encrypted_shard_through_open_tar_stream(tmp_path):
    import webdataset as wds

    from exashard.shards import open_tar_stream

    root = tmp_path / "enc"
    with ShardWriter(str(root), name="e", frame_size=8192) as w:  # encrypted (the default)
        for s in SAMPLES:
            w.write(s)
    (info,) = w.shards
    url = str(root / info.path)
    assert b"caption 1" not in (root / info.path).read_bytes()

    def opener(data):
        for src in data:
            src["stream"] = open_tar_stream(src["url"])
            yield src

    pipeline = wds.DataPipeline(
        wds.SimpleShardList([url]), opener, wds.tariterators.tar_file_expander, wds.tariterators.group_by_keys
    )
    got = [{k: v for k, v in s.items() if not k.startswith("__") or k == "__key__"} for s in pipeline]
    assert got == SAMPLES
    with open_tar_stream(url) as f, tarfile.open(fileobj=f, mode="r|") as t:
        assert [m.name for m in t] == _names(SAMPLES)


def test_open_tar_stream_bad_urls(tmp_path):
    from exashard.errors import ConfigError, NotFoundError
    from exashard.shards import open_tar_stream

    with pytest.raises(ConfigError, match="not a shard URL"):
        open_tar_stream(str(tmp_path / "x.tar"))
    root = tmp_path / "ds"
    with ShardWriter(str(root), name="z") as w:
        w.write({"__key__": "a", "txt": "x"})
    with pytest.raises(NotFoundError, match="'nope' is not in version 1"):
        open_tar_stream(str(root / "shards" / "nope.tar.zst"))
