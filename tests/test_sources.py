"""Sources other than plain folders: JSONL and Parquet tables (inline columns, columns of
URLs to media), existing WebDataset tars (plain and gzip), globs and several sources in
one run; and how their units are read on a worker (one pass per table, streamed tars)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exashard.ingest.plan import Task, plan
from exashard.ingest.run import run_task
from exashard.ingest.sources import Reader, Source, read_unit
from exashard.privacy.policy import default_policy
from exashard.shards import ShardReader, inspect, iter_dataset
from exashard.shards.storage import FsspecSource

EXAMPLES = Path(__file__).parent.parent / "examples"


def jpeg_with_gps() -> bytes:
    from PIL import Image

    img = Image.new("RGB", (16, 12), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 1
    exif[0x8825] = {1: "N", 2: (37.0, 46.0, 0.0), 3: "W", 4: (122.0, 25.0, 0.0)}
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


def write_tar(path: Path, samples: list[dict[str, bytes]], gz: bool = False) -> None:
    with tarfile.open(path, "w:gz" if gz else "w") as tf:
        for s in samples:
            for ext, data in s.items():
                if ext == "__key__":
                    continue
                info = tarfile.TarInfo(f"{s['__key__'].decode()}.{ext}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))


def ingest_task(units, tmp_path: Path, name: str = "t"):
    """Run one task in-process, unencrypted, and return (result, stored samples)."""
    out = tmp_path / f"ds-{name}"
    res = run_task(Task(name, tuple(units)), str(out), storage_options=None, source_options=None,
                   policy=default_policy(), secret=b"s" * 32, dataset_id="d", data_keys=None, keyring=None,
                   encrypt=False, shard_size=1 << 30)
    import fsspec

    fs = fsspec.filesystem("file")
    stored = []
    for sh in res.shards:  # the task's shards, written but not committed (the driver commits)
        stored.extend(ShardReader(FsspecSource(fs, f"{out}/{sh['path']}")))
    return res, stored


def test_jsonl_rows_with_inline_text_and_media_urls(tmp_path):
    jpg = tmp_path / "photo.jpg"
    jpg.write_bytes(jpeg_with_gps())
    rows = [
        {"caption": f"row {i}: mail me at user{i}@example.com", "jpg_url": str(jpg), "user_id": i, "lang": "en"}
        for i in range(5)
    ]
    table = tmp_path / "t.jsonl"
    table.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")  # a blank line is no row
    units = list(Source(str(table)).units())
    assert [u.kind for u in units] == ["row"] * 5 and [u.index for u in units] == list(range(5))
    fields = dict(read_unit(units[3]))["t.jsonl#3"]
    assert fields["txt"] == b"row 3: mail me at user3@example.com"
    assert fields["jpg"] == jpg.read_bytes()
    assert json.loads(fields["json"]) == {"lang": "en", "user_id": 3}

    res, stored = ingest_task(units, tmp_path)
    assert res.samples == 5 and not res.quarantined
    for s in stored:
        assert b"example.com" not in s["txt"] and b"<EMAIL_ADDRESS>" in s["txt"]
        assert b"GPS" not in s["jpg"] and s["jpg"].startswith(b"\xff\xd8")


def test_jsonl_gz_and_bad_lines_are_quarantined_per_row(tmp_path):
    table = tmp_path / "t.jsonl.gz"
    lines = [json.dumps({"txt": "first"}), "{not json", json.dumps(["a list"]), json.dumps({"txt": "last"})]
    table.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    units = list(Source(str(table)).units())
    assert len(units) == 4
    res, stored = ingest_task(units, tmp_path)
    assert res.samples == 2 and sorted(s["txt"] for s in stored) == [b"first", b"last"]
    reasons = sorted(q.reason for q in res.quarantined)
    assert len(reasons) == 2 and all("not a JSON object line" in r for r in reasons)


def test_parquet_rows_read_in_one_pass_from_the_right_row_group(tmp_path, monkeypatch):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    n = 1000
    table = pa.table({
        "jpg": [jpeg_with_gps()] * n,
        "caption": [f"caption {i}" for i in range(n)],
        "score": list(range(n)),
    })
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=100)
    units = list(Source(str(path)).units())
    assert len(units) == n
    tasks = list(plan(iter(units), max_units=300))
    assert [len(t.units) for t in tasks] == [300, 300, 300, 100]

    # a task starting at row 600 decodes from row group 6 on, never the groups before it
    batches: list[int] = []
    real = pq.ParquetFile.iter_batches

    def spy(self, *a, **kw):
        batches.append(min(kw["row_groups"]))
        return real(self, *a, **kw)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    rd = Reader()
    got = [rd.row(str(path), u.index)["score"] for u in tasks[2].units]
    rd.close()
    assert got == list(range(600, 900)) and batches == [6]

    stored_scores = []
    for k, t in enumerate(tasks):
        res, stored = ingest_task(t.units, tmp_path, name=f"t{k}")
        assert res.samples == len(t.units) and not res.quarantined
        stored_scores += [json.loads(s["json"])["score"] for s in stored]
    assert sorted(stored_scores) == list(range(n))  # every row once


def test_rows_of_a_task_open_their_table_once(tmp_path, monkeypatch):
    table = tmp_path / "t.jsonl"
    table.write_text("".join(json.dumps({"txt": f"line {i}"}) + "\n" for i in range(200)))
    units = list(Source(str(table)).units())
    import exashard.ingest.sources as sources

    opens = []
    real = sources.fsspec.open

    def counting(url, *a, **kw):
        opens.append(url)
        return real(url, *a, **kw)

    monkeypatch.setattr(sources.fsspec, "open", counting)
    res, stored = ingest_task(units, tmp_path)
    assert res.samples == 200 and len(opens) == 1
    assert [s["txt"] for s in stored] == [f"line {i}".encode() for i in range(200)]


def test_past_the_end_of_a_table_is_quarantined(tmp_path):
    table = tmp_path / "t.jsonl"
    table.write_text(json.dumps({"txt": "only"}) + "\n")
    unit = next(iter(Source(str(table)).units()))
    from exashard.ingest.sources import Unit

    ghost = Unit("row", "t.jsonl#5", unit.files, 5)
    res, _ = ingest_task([unit, ghost], tmp_path)
    assert res.samples == 1 and "past the end of the table" in res.quarantined[0].reason


@pytest.mark.parametrize("gz", [False, True])
def test_tar_sources_plain_and_gzip(tmp_path, gz):
    samples = [{"__key__": f"s{i:03d}".encode(), "txt": f"note {i} from a@b.co".encode(), "cls": str(i % 3).encode()}
               for i in range(30)]
    path = tmp_path / ("old.tar.gz" if gz else "old.tar")
    write_tar(path, samples, gz=gz)
    units = list(Source(str(path)).units())
    assert [u.kind for u in units] == ["tar"]
    res, stored = ingest_task(units, tmp_path)
    assert res.samples == 30 and not res.quarantined
    assert all(b"a@b.co" not in s["txt"] for s in stored)
    assert set(stored[0]) == {"__key__", "txt"}  # "cls" is not in the default policy: dropped


def test_damaged_tar_keeps_what_came_before_and_quarantines_the_rest(tmp_path):
    samples = [{"__key__": f"s{i:03d}".encode(), "txt": b"x" * 2000} for i in range(20)]
    path = tmp_path / "cut.tar"
    write_tar(path, samples)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 700])  # cut mid-member
    res, stored = ingest_task(list(Source(str(path)).units()), tmp_path)
    assert 0 < res.samples < 20 and len(stored) == res.samples
    assert len(res.quarantined) == 1 and "tar" in res.quarantined[0].reason
    not_tar = tmp_path / "junk.tar"
    not_tar.write_bytes(b"this is no tar at all" * 40)
    res, _ = ingest_task(list(Source(str(not_tar)).units()), tmp_path, name="junk")
    assert res.samples == 0 and "not a readable tar" in res.quarantined[0].reason


def test_glob_and_several_sources_in_one_run(tmp_path):
    import exashard

    a = tmp_path / "a"
    a.mkdir()
    for i in range(3):
        (a / f"part{i}.jsonl").write_text(json.dumps({"txt": f"a{i}"}) + "\n" + json.dumps({"txt": f"b{i}"}) + "\n")
    (a / "skip.csv").write_text("not,a,source")
    tars = tmp_path / "tars"
    tars.mkdir()
    write_tar(tars / "x.tar", [{"__key__": b"k1", "txt": b"from a tar"}, {"__key__": b"k2", "txt": b"another"}])
    out = tmp_path / "ds"
    report = exashard.ingest([str(a / "part*.jsonl"), str(tars), str(EXAMPLES / "raw")], str(out), workers=1,
                             progress=False)
    assert report.samples == 6 + 2 + 6 and not report.quarantined
    assert inspect(str(out))["samples"] == 14
    texts = {s["txt"] for s in iter_dataset(str(out)) if "txt" in s and s["txt"].startswith((b"a", b"b", b"f"))}
    assert {b"a0", b"b2", b"from a tar", b"another"} <= texts
    # a rerun finds nothing new in any of the three
    again = exashard.ingest([str(a / "part*.jsonl"), str(tars), str(EXAMPLES / "raw")], str(out), workers=1,
                            progress=False)
    assert again.samples == 0 and again.skipped_inputs == 6 + 1 + 6


_names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/"), min_size=1, max_size=120)


@settings(max_examples=60, deadline=None)
@given(
    fmt=st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]),
    members=st.lists(st.tuples(st.sampled_from(["file", "dir", "symlink"]), _names, st.binary(max_size=1500)),
                     max_size=8),
    gz=st.booleans(),
)
def test_input_tar_reader_agrees_with_tarfile(fmt, members, gz):
    """The streaming reader of input tars gives what Python's tarfile gives for every
    regular file, in every format tarfile writes (long and non-ASCII names included)."""
    from exashard.shards.tar import iter_file_members

    buf = io.BytesIO()
    expect = []
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for k, (kind, name, data) in enumerate(members):
            name = f"d{k}/{name}"
            if fmt == tarfile.USTAR_FORMAT and (len(name.encode()) > 100 or not name.isascii()):
                continue  # ustar cannot hold it: tarfile refuses
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, "x" * (150 if fmt != tarfile.USTAR_FORMAT else 50)
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
                expect.append((name, data))
    blob = gzip.compress(buf.getvalue()) if gz else buf.getvalue()
    f = gzip.GzipFile(fileobj=io.BytesIO(blob)) if gz else io.BytesIO(blob)
    assert list(iter_file_members(f)) == expect
