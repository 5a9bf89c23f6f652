"""Encryption at rest: the STREAM container, tamper matrix, keys, rotation, shredding."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from exashard.cli import main
from exashard.errors import ConfigError, IntegrityError, KeyAccessError, NotFoundError
from exashard.privacy.keyops import rotate, shred
from exashard.privacy.keys import LocalKeyring, resolve_keyring
from exashard.privacy.stream import HEADER_SIZE, TAG, DecryptingSource, EncryptingWriter
from exashard.shards import Manifest, ShardWriter, iter_dataset, open_manifest, open_shard, verify


class MemSource:
    def __init__(self, data: bytes, name: str = "mem") -> None:
        self.data, self.name, self.size = data, name, len(data)

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]

    def close(self) -> None:
        pass


class FillSource(MemSource):
    """A stored source that fills buffers (as local files do): ciphertext lands in recycled scratch."""

    def read_into(self, offset: int, buf: memoryview) -> int:
        chunk = self.data[offset : offset + len(buf)]
        buf[: len(chunk)] = chunk
        return len(chunk)


def seal(plain: bytes, key=b"k" * 32, seg=4096, ds="ds", shard="s", **kw) -> bytes:
    out = io.BytesIO()
    w = EncryptingWriter(out, key, dataset_id=ds, shard_id=shard, segment_size=seg, **kw)
    for i in range(0, len(plain), 5000):
        w.write(plain[i : i + 5000])
    w.close()
    return out.getvalue()


# -- the container -------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 40_000), seg=st.sampled_from([4096, 5000, 65536]), fill=st.booleans(), data=st.data())
def test_stream_roundtrip_random_ranges(size, seg, fill, data):
    plain = os.urandom(size)
    ct = seal(plain, seg=seg)
    n = max(1, -(-size // seg))
    assert len(ct) == HEADER_SIZE + size + TAG * n
    src = DecryptingSource((FillSource if fill else MemSource)(ct), b"k" * 32, dataset_id="ds", shard_id="s")
    assert src.size == size and src.segments == n
    for _ in range(5):
        a = data.draw(st.integers(0, size))
        b = data.draw(st.integers(a, size))
        assert src.read(a, b - a) == plain[a:b]
        buf = bytearray(b - a)
        assert src.read_into(a, memoryview(buf)) == b - a and bytes(buf) == plain[a:b]


def test_neighbouring_ranges_decrypt_each_segment_once():
    """Frames rarely end on a segment boundary: the segment two neighbouring reads share is
    decrypted once, also when a second reader interleaves its own neighbouring reads."""
    seg, plain = 4096, os.urandom(4096 * 40)
    src = DecryptingSource(FillSource(seal(plain, seg=seg)), b"k" * 32, dataset_id="ds", shard_id="s")
    opened: list[int] = []
    decrypt = src._decrypt
    src._decrypt = lambda k, ct, out=None: (opened.append(k), decrypt(k, ct, out))[1]
    step = 3000  # two interleaved runs of consecutive 3000-byte ranges, as two loading threads read
    for a in range(0, 20 * seg - step, step):
        for off in (a, 20 * seg + a):
            buf = bytearray(min(step, len(plain) - off))
            assert src.read_into(off, memoryview(buf)) == len(buf) and bytes(buf) == plain[off : off + len(buf)]
    assert sorted(opened) == list(range(40))


def test_concurrent_readers_share_scratch_buffers_safely():
    """Ciphertext scratch buffers are shared by every source in the process: many threads
    reading many sources at once each get exactly their own bytes."""
    plains = [os.urandom(50_000 + 777 * i) for i in range(3)]
    srcs = [DecryptingSource(FillSource(seal(p, seg=5000, shard=f"s{i}")), b"k" * 32, dataset_id="ds", shard_id=f"s{i}")
            for i, p in enumerate(plains)]

    def work(seed: int) -> int:
        rnd = random.Random(seed)
        for _ in range(300):
            i = rnd.randrange(3)
            a = rnd.randrange(len(plains[i]))
            b = min(len(plains[i]), a + rnd.randrange(1, 20_000))
            buf = bytearray(b - a)
            assert srcs[i].read_into(a, memoryview(buf)) == b - a
            assert bytes(buf) == plains[i][a:b], (seed, i, a, b)
        return seed

    with ThreadPoolExecutor(6) as ex:
        assert sorted(ex.map(work, range(12))) == list(range(12))


def test_known_answer_vector():
    """docs/FORMAT.md section 4: fixed key, salt, prefix and ids give these exact bytes."""
    plain = bytes(range(256)) * 40  # 10240 bytes: 2 full segments of 4096 and one of 2048
    ct = seal(plain, key=bytes(range(32)), seg=4096, ds="dataset-1", shard="shard-1",
              salt=bytes(range(32, 64)), nonce_prefix=bytes(range(64, 71)))
    doc = Path(__file__).parent.parent.joinpath("docs", "FORMAT.md").read_text(encoding="utf-8")
    block = doc.split("<!-- vector-3 -->", 1)[1].split("```", 2)[1]
    want = dict(line.split(None, 1) for line in block.strip().splitlines())
    assert len(ct) == int(want["size"])
    assert ct[:HEADER_SIZE].hex() == want["header"].replace(" ", "")
    assert hashlib.sha256(ct).hexdigest() == want["sha256"]
    assert ct[-16:].hex() == want["last-tag"].replace(" ", "")


def test_segment_reorder_duplicate_and_truncation_detected():
    plain = os.urandom(4096 * 4 + 100)
    ct = seal(plain)
    stride = 4096 + TAG
    segs = [ct[HEADER_SIZE + i * stride : HEADER_SIZE + (i + 1) * stride] for i in range(5)]
    head = ct[:HEADER_SIZE]
    variants = {
        "swap": head + segs[1] + segs[0] + b"".join(segs[2:]),
        "dup": head + segs[0] + segs[0] + b"".join(segs[2:]),
        "drop": head + segs[0] + b"".join(segs[2:]),
        "cut-boundary": head + b"".join(segs[:4]),
        "cut-mid": ct[:-50],
    }
    for name, bad in variants.items():
        src = DecryptingSource(MemSource(bad, name), b"k" * 32, dataset_id="ds", shard_id="s")
        with pytest.raises(IntegrityError, match=f"{name}: segment"):
            src.read(0, src.size)


def test_wrong_identity_fails():
    ct = seal(b"x" * 10000)
    for kw in ({"dataset_id": "other", "shard_id": "s"}, {"dataset_id": "ds", "shard_id": "t"}):
        src = DecryptingSource(MemSource(ct), b"k" * 32, **kw)
        with pytest.raises(IntegrityError, match="authentication failed"):
            src.read(0, 10)
    with pytest.raises(IntegrityError):
        DecryptingSource(MemSource(ct), b"j" * 32, dataset_id="ds", shard_id="s").read(0, 10)


# -- encrypted datasets: tamper matrix --------------------------------------------------

SAMPLES = [{"__key__": f"s/{i:03d}", "bin": os.urandom(3000), "txt": f"caption {i}".encode()} for i in range(60)]


def _dataset(root, name="t", **kw):
    with ShardWriter(str(root), name=name, max_samples=30, frame_size=16384, segment_size=4096, **kw) as w:
        for s in SAMPLES:
            w.write(s)
    return w.shards


def _drain(root) -> tuple[list, Exception | None]:
    got = []
    try:
        for s in iter_dataset(str(root)):
            got.append(s)
    except IntegrityError as e:
        return got, e
    return got, None


@pytest.mark.parametrize(
    "damage",
    ["header-bit", "segment-bit", "tag-bit", "cut-boundary", "cut-mid", "drop-segment", "dup-segment",
     "swap-segments", "replace-header"],
)
def test_tamper_matrix(tmp_path, damage):
    shards = _dataset(tmp_path / "ds")
    victim = tmp_path / "ds" / shards[1].path
    other = (tmp_path / "ds" / shards[0].path).read_bytes()
    data = bytearray(victim.read_bytes())
    stride = 4096 + TAG
    seg = lambda k: bytes(data[HEADER_SIZE + k * stride : HEADER_SIZE + (k + 1) * stride])  # noqa: E731
    if damage == "header-bit":
        data[20] ^= 1
    elif damage == "segment-bit":
        data[HEADER_SIZE + 2 * stride + 100] ^= 0x10
    elif damage == "tag-bit":
        data[HEADER_SIZE + 3 * stride - 3] ^= 1
    elif damage == "cut-boundary":
        n = (len(data) - HEADER_SIZE) // stride
        data = data[: HEADER_SIZE + n * stride]
    elif damage == "cut-mid":
        data = data[: len(data) - 1000]
    elif damage == "drop-segment":
        data = data[: HEADER_SIZE + stride] + data[HEADER_SIZE + 2 * stride :]
    elif damage == "dup-segment":
        data = data[: HEADER_SIZE + 2 * stride] + seg(1) + data[HEADER_SIZE + 2 * stride :]
    elif damage == "swap-segments":
        data[HEADER_SIZE + stride : HEADER_SIZE + 3 * stride] = seg(2) + seg(1)
    elif damage == "replace-header":
        data[:HEADER_SIZE] = other[:HEADER_SIZE]
    victim.write_bytes(bytes(data))
    got, err = _drain(tmp_path / "ds")
    assert err is not None, "damage went unnoticed"
    assert shards[1].id in str(err) or victim.name in str(err)
    assert got == SAMPLES[: len(got)]  # only authentic samples, in order, before the damage
    assert len(got) < 60
    assert shards[1].id in verify(str(tmp_path / "ds")).bad


def test_swapped_shards_within_and_across_datasets(tmp_path):
    a = _dataset(tmp_path / "a")
    b = _dataset(tmp_path / "b")
    pa0, pa1 = (tmp_path / "a" / s.path for s in a)
    blob0, blob1 = pa0.read_bytes(), pa1.read_bytes()
    pa0.write_bytes(blob1)  # within the dataset
    pa1.write_bytes(blob0)
    got, err = _drain(tmp_path / "a")
    assert err is not None and got == []
    pa0.write_bytes((tmp_path / "b" / b[0].path).read_bytes())  # across datasets, same shard id
    pa1.write_bytes(blob1)
    got, err = _drain(tmp_path / "a")
    assert err is not None and got == []


def test_shard_cannot_be_read_as_plain_or_by_header_identity(tmp_path):
    shards = _dataset(tmp_path / "ds")
    raw = (tmp_path / "ds" / shards[0].path).read_bytes()
    assert raw[:4] == b"EXAE"
    for s in SAMPLES[:30]:
        assert s["bin"][:64] not in raw


# -- keys -------------------------------------------------------------------------------


def test_keyring_file_mode_and_no_overwrite(tmp_path):
    p = tmp_path / "kr.json"
    kr = LocalKeyring.create(p)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    assert kr.id.startswith("kr-")
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        LocalKeyring.create(p)
    os.chmod(p, 0o644)
    with pytest.raises(KeyAccessError, match="readable by others"):
        LocalKeyring(p)


def test_missing_keyring_names_paths_and_id(tmp_path, monkeypatch):
    shards = _dataset(tmp_path / "ds")
    needed = shards[0].encryption["keyring"]
    monkeypatch.setenv("EXASHARD_KEYRING", str(tmp_path / "nope.json"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(NotFoundError) as e:
        list(iter_dataset(str(tmp_path / "ds")))
    msg = str(e.value)
    assert str(tmp_path / "nope.json") in msg and ".config/exashard/keyring.json" in msg and needed in msg
    assert not (tmp_path / "nope.json").exists() and not (tmp_path / "home").exists()  # readers create nothing
    res = CliRunner().invoke(main, ["head", str(tmp_path / "ds")])
    assert res.exit_code == 2 and needed in res.output


def test_wrong_keyring_and_missing_kek(tmp_path):
    shards = _dataset(tmp_path / "ds")
    other = LocalKeyring.create(tmp_path / "other.json")
    with pytest.raises(KeyAccessError, match=f"needs keyring {shards[0].encryption['keyring']}"):
        list(iter_dataset(str(tmp_path / "ds"), keyring=str(tmp_path / "other.json")))
    # a keyring whose id matches but lacks the KEK (e.g. a stale backup)
    doc = json.loads(Path(os.environ["EXASHARD_KEYRING"]).read_text())
    doc["keks"] = {}
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps(doc))
    os.chmod(stale, 0o600)
    with pytest.raises(KeyAccessError) as e:
        list(iter_dataset(str(tmp_path / "ds"), keyring=str(stale)))
    assert "has no KEK 'kek-" in str(e.value)
    for secret in json.loads(Path(os.environ["EXASHARD_KEYRING"]).read_text())["keks"].values():
        if secret.get("key"):  # retired KEKs (other tests shred) keep no key bytes
            assert secret["key"] not in str(e.value)
    assert other.id not in str(e.value)


def test_rotation_keeps_shard_checksums(tmp_path):
    root = tmp_path / "ds"
    shards = _dataset(root)
    before = {s.path: hashlib.sha256((root / s.path).read_bytes()).hexdigest() for s in shards}
    keys_before = {p.name: p.read_bytes() for p in (root / "keys").iterdir()}
    r = rotate(str(root))
    assert r.rewrapped == len(shards)
    assert {p.name: p.read_bytes() for p in (root / "keys").iterdir()} != keys_before
    assert before == {s.path: hashlib.sha256((root / s.path).read_bytes()).hexdigest() for s in shards}
    assert verify(str(root)).ok
    assert [s["__key__"] for s in iter_dataset(str(root))] == [s["__key__"] for s in SAMPLES]
    kek = json.loads((root / "keys" / f"{shards[0].id}.json").read_text())["wrapped"]["kek"]
    assert kek == r.kek


def test_shred_is_final_even_with_an_old_key_store(tmp_path):
    root = tmp_path / "ds"
    shards = _dataset(root)
    backup = tmp_path / "keys-backup"
    shutil.copytree(root / "keys", backup)
    res = CliRunner().invoke(main, ["keys", "shred", str(root), "--shard", shards[0].id])
    assert res.exit_code == 0, res.output
    m = open_manifest(str(root))
    snap = m.read()
    with pytest.raises(KeyAccessError, match="shredded"):
        open_shard(m, snap.shards[shards[0].id])
    with open_shard(m, snap.shards[shards[1].id]) as r:  # every other shard still reads
        assert list(r) == SAMPLES[30:]
    shutil.rmtree(root / "keys")
    shutil.copytree(backup, root / "keys")  # the attacker restores the old key store
    with pytest.raises(KeyAccessError, match="retired"):
        open_shard(m, snap.shards[shards[0].id])


def test_shred_unknown_shard(tmp_path):
    _dataset(tmp_path / "ds")
    with pytest.raises(KeyAccessError, match="no data key"):
        shred(str(tmp_path / "ds"), ["nope"])


def test_keys_cli_new_and_export(tmp_path):
    r = CliRunner()
    res = r.invoke(main, ["keys", "new", "--keyring", str(tmp_path / "k.json")])
    assert res.exit_code == 0 and "kr-" in res.output
    assert r.invoke(main, ["keys", "new", "--keyring", str(tmp_path / "k.json")]).exit_code == 2
    res = r.invoke(main, ["keys", "export", "--keyring", str(tmp_path / "k.json"), "--out", str(tmp_path / "b.json")])
    assert res.exit_code == 0
    assert stat.S_IMODE(os.stat(tmp_path / "b.json").st_mode) == 0o600
    assert json.loads((tmp_path / "b.json").read_text())["id"] == LocalKeyring(tmp_path / "k.json").id


def test_writer_never_creates_a_keyring(tmp_path, monkeypatch):
    monkeypatch.setenv("EXASHARD_KEYRING", str(tmp_path / "none.json"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(NotFoundError, match="no keyring found"):
        ShardWriter(str(tmp_path / "ds"))
    assert not (tmp_path / "none.json").exists()
    with ShardWriter(str(tmp_path / "ds"), encrypt=False) as w:  # explicit opt-out works
        w.write({"__key__": "a", "txt": "x"})
    assert w.shards[0].encryption is None
    created = resolve_keyring(create=True)  # what ingest does, on the driver only
    assert os.path.exists(tmp_path / "none.json") and created.id.startswith("kr-")


# -- plaintext never on disk ------------------------------------------------------------


def _scan(dirs, needles) -> list[str]:
    hits = []
    for d in dirs:
        for dirpath, _, files in os.walk(d):
            for f in files:
                p = os.path.join(dirpath, f)
                with open(p, "rb") as fh:
                    blob = fh.read()
                hits += [f"{p}: {n[:12]!r}" for n in needles if n in blob]
    return hits


@pytest.mark.parametrize("encrypt", [True, False])
def test_no_plaintext_on_disk(tmp_path, monkeypatch, encrypt):
    import zstandard

    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    sentinel = b"SENTINEL-7f3a9c-do-not-leak-" + os.urandom(8).hex().encode()
    text = b" ".join([sentinel] * 200)
    compressed = zstandard.ZstdCompressor(level=3).compress(text)
    needles = [sentinel, compressed[20:52]]
    root = tmp_path / "ds"
    with ShardWriter(str(root), frame_size=8192, encrypt=encrypt) as w:
        for i in range(50):
            w.write({"__key__": f"k{i}", "txt": text, "bin": sentinel + os.urandom(50_000)})
    assert sum(1 for s in iter_dataset(str(root)) if sentinel in s["txt"]) == 50
    assert verify(str(root)).ok
    hits = _scan([tmp_path], needles)
    if encrypt:
        assert hits == []
    else:
        assert hits  # the control: the scan does find plaintext when there is some


def test_manifest_rows_record_encryption(tmp_path):
    shards = _dataset(tmp_path / "ds")
    snap = Manifest(str(tmp_path / "ds")).read()
    row = snap.shards[shards[0].id]
    assert row.encryption["scheme"] == "aes256gcm-hkdf-stream-v1"
    assert row.encryption["key_ref"] == f"keys/{row.id}.json"
    assert row.encryption["keyring"] == LocalKeyring(os.environ["EXASHARD_KEYRING"]).id
