"""Scheduled runs, locking, crash safety, deletion requests and retention, with real processes."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import pytest

import exashard
from exashard.errors import ConfigError, LockedError, NotFoundError, ShreddedError
from exashard.ingest.lock import RunLock
from exashard.ingest.ops import retained, vacuum
from exashard.ingest.pipeline import check_cron, load_pipeline
from exashard.shards import Manifest, iter_dataset, open_manifest, storage

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
USERS = 7


def make_raw(folder: Path, start: int, n: int, seed: int = 0) -> None:
    """Photos with GPS EXIF, captions and JSON sidecars; user ids repeat (USERS subjects)."""
    from PIL import Image

    rnd = random.Random(seed + start)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        img = Image.frombytes("RGB", (64, 48), rnd.randbytes(64 * 48 * 3))
        exif = Image.Exif()
        exif[0x8825] = {1: "N", 2: (37.0, 46.0, 0.0), 3: "W", 4: (122.0, 25.0, 0.0)}
        img.save(folder / f"p{i:05d}.jpg", quality=85, exif=exif.tobytes())
        (folder / f"p{i:05d}.json").write_text(json.dumps({"user_id": f"user-{i % USERS}", "caption": f"photo {i}"}))
        (folder / f"p{i:05d}.txt").write_text(f"photo {i}, mail me at u{i}@example.com")


def pipeline(tmp: Path, raw: Path, out: Path, **extra: str) -> Path:
    settings = {"task_size": '"20KiB"', **extra}
    lines = [f'sources = ["{raw}"]', f'output = "{out}"', f'policy = "{EXAMPLES / "policy.toml"}"']
    lines += [f"{k} = {v}" for k, v in settings.items() if k not in ("cluster", "retention", "lock")]
    lines += ["[cluster]", "workers = 1", "[retention]", 'grace = "0s"']
    if "keep_versions" in extra:
        lines.pop(lines.index(f"keep_versions = {extra['keep_versions']}"))
        lines.append(f"keep_versions = {extra['keep_versions']}")
    path = tmp / f"pipe-{os.urandom(3).hex()}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exashard.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def content(out: Path) -> Counter[tuple[str, str]]:
    """(sample key, field names) per sample: equal datasets hold the same samples once each."""
    return Counter((s["__key__"], ",".join(sorted(k for k in s if k != "__key__"))) for s in iter_dataset(str(out)))


def files_unreferenced(out: Path) -> list[str]:
    m = Manifest(str(out))
    latest = m.read().version
    keep = retained(m, 1, latest) if latest else set()
    return sorted(p.name for p in (out / "shards").glob("*") if p.name.removesuffix(".tar.zst") not in keep)


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("raw") / "in"
    make_raw(folder, 0, 24)
    return folder


@pytest.fixture(scope="module")
def clean(raw, tmp_path_factory) -> Counter[tuple[str, str]]:
    """What one uninterrupted run makes of ``raw``."""
    tmp = tmp_path_factory.mktemp("clean")
    out = tmp / "ds"
    res = run_cli("run", str(pipeline(tmp, raw, out)))
    assert res.returncode == 0, res.stderr
    c = content(out)
    assert sum(c.values()) == 24 and max(c.values()) == 1
    return c


# -- pipeline files -------------------------------------------------------------------------


def test_pipeline_file_errors_name_file_line_and_setting(tmp_path):
    def bad(text: str, match: str) -> None:
        p = tmp_path / "p.toml"
        p.write_text(text)
        with pytest.raises(ConfigError, match=match):
            load_pipeline(str(p))

    ok = 'sources = ["in"]\noutput = "out"\n'
    bad(ok + "colour = 1\n", r"p.toml:3: colour: unknown setting")
    bad('output = "x"\n', r"sources: must be a non-empty list")
    bad(ok + 'schedule = "61 * * * *"\n', r"p.toml:3: schedule: minute field '61'")
    bad(ok + 'schedule = "* * *"\n', r"5 fields")
    bad(ok + 'shard_size = "lots"\n', r"p.toml:3: shard_size")
    bad(ok + "[cluster]\nworkers = 0\n", r"p.toml:4: cluster.workers: must be an integer >= 1")
    bad(ok + '[cluster]\nscheduler = "localhost"\n', r"cluster.scheduler")
    bad(ok + '[retention]\ngrace = "soon"\n', r"retention.grace")
    bad(ok + 'policy = "missing.toml"\n', r"policy: .*missing.toml does not exist")
    bad("sources = [\n", r"not valid TOML")
    p = tmp_path / "good.toml"
    p.write_text(ok + 'schedule = "*/15 2-4 * jan-mar mon,fri"\nshard_size = "64MiB"\n[lock]\nlease = "2m"\n')
    cfg = load_pipeline(str(p))
    assert cfg.sources == [str(tmp_path / "in")] and cfg.output == str(tmp_path / "out")  # relative to the file
    assert (cfg.shard_size, cfg.lease, cfg.schedule) == (64 << 20, 120.0, "*/15 2-4 * jan-mar mon,fri")
    assert check_cron("@daily") is None and check_cron("0 0 32 * *")


# -- incremental runs ---------------------------------------------------------------------


def test_run_is_incremental_and_idempotent(tmp_path, raw, clean):
    src = tmp_path / "in"
    make_raw(src, 0, 12)
    out = tmp_path / "ds"
    cfg = pipeline(tmp_path, src, out)
    first = run_cli("run", str(cfg), "--json")
    assert first.returncode == 0, first.stderr
    rec = json.loads(first.stdout)
    assert rec["status"] == "ok" and rec["new_inputs"] == 12 and rec["samples"] == 12
    v1 = open_manifest(str(out)).read().version
    again = run_cli("run", str(cfg), "--json")  # nothing new: nothing done, exit 0
    assert again.returncode == 0, again.stderr
    rec2 = json.loads(again.stdout)
    assert rec2["new_inputs"] == 0 and rec2["skipped_inputs"] == 12 and rec2["versions"] == []
    assert open_manifest(str(out)).read().version == v1
    make_raw(src, 12, 12)  # new data arrives
    third = run_cli("run", str(cfg), "--json")
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout)["new_inputs"] == 12
    assert content(out) == clean  # the same samples as one run over everything, none twice
    records = sorted((out / "runs").glob("*.json"))
    assert len(records) == 3 and all(json.loads(r.read_text())["status"] == "ok" for r in records)


# -- locking --------------------------------------------------------------------------------


def test_overlapping_run_exits_4_and_touches_nothing(tmp_path, raw):
    out = tmp_path / "ds"
    cfg = pipeline(tmp_path, raw, out)
    fs, root = storage.resolve(str(out))
    with RunLock(fs, root, "run", lease=60):
        before = sorted(p.relative_to(out) for p in out.rglob("*"))
        res = run_cli("run", str(cfg))
        assert res.returncode == 4, res.stderr
        assert "locked by a run run" in res.stderr and "nothing was done" in res.stderr
        assert "Traceback" not in res.stderr
        assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # not even a run record
    res = run_cli("run", str(cfg))  # released: the next run proceeds
    assert res.returncode == 0, res.stderr


def test_two_real_runs_one_proceeds(tmp_path, raw):
    out = tmp_path / "ds"
    cfg = pipeline(tmp_path, raw, out)
    a = subprocess.Popen([sys.executable, "-m", "exashard.cli", "run", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (out / "locks" / "run.json").exists() and time.time() < deadline:
        time.sleep(0.02)
    b = run_cli("run", str(cfg))
    a_out, a_err = a.communicate(timeout=240)
    assert a.returncode == 0, a_err
    assert b.returncode == 4, b.stderr
    assert sum(content(out).values()) == 24


def test_stale_lock_is_taken_over(tmp_path):
    fs, root = storage.resolve(str(tmp_path / "ds"))
    clock = [1000.0]
    a = RunLock(fs, root, "run", lease=30, clock=lambda: clock[0])
    a.acquire()
    b = RunLock(fs, root, "run", lease=30, clock=lambda: clock[0])
    with pytest.raises(LockedError, match="locked by a run run"):
        b.acquire()
    clock[0] += 31  # the holder stopped renewing: its lease expired
    b.acquire()
    with pytest.raises(LockedError, match="lost its lock"):
        a.check()
    a.release()  # does not remove b's lock
    assert json.loads(fs.cat_file(f"{root}/locks/run.json"))["token"] == b.token
    b.release()
    # a holder on this machine whose process is gone is stale at once
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    c = RunLock(fs, root, "run", lease=3600)
    doc = c._doc()
    doc.update(token="dead", pid=int(dead.stdout))
    storage.exclusive_write(fs, f"{root}/locks/run.json", json.dumps(doc).encode())
    c.acquire()
    c.release()


@pytest.mark.s3
def test_lock_on_s3(s3root):
    root_url, so = s3root
    fs, root = storage.resolve(root_url, so)
    a = RunLock(fs, root, "run", lease=60)
    a.acquire()
    with pytest.raises(LockedError):
        RunLock(fs, root, "run", lease=60).acquire()
    a.release()
    b = RunLock(fs, root, "run", lease=60)
    b.acquire()
    b.release()
    assert not fs.exists(f"{root}/locks/run.json")


@pytest.mark.s3
def test_run_on_s3_locked_then_incremental(s3root, raw, clean, tmp_path):
    root_url, so = s3root
    ck = so["client_kwargs"]
    cfg = tmp_path / "s3.toml"
    cfg.write_text(
        f'sources = ["{raw}"]\noutput = "{root_url}"\npolicy = "{EXAMPLES / "policy.toml"}"\ntask_size = "40KiB"\n'
        f'[cluster]\nworkers = 1\n[storage]\nkey = "{so["key"]}"\nsecret = "{so["secret"]}"\n'
        f'[storage.client_kwargs]\nendpoint_url = "{ck["endpoint_url"]}"\nregion_name = "{ck["region_name"]}"\n'
    )
    fs, root = storage.resolve(root_url, so)
    with RunLock(fs, root, "run", lease=60):
        res = run_cli("run", str(cfg))
        assert res.returncode == 4 and "nothing was done" in res.stderr
        assert fs.ls(root, detail=False) == [f"{root}/locks"]
    res = run_cli("run", str(cfg))
    assert res.returncode == 0, res.stderr
    res = run_cli("run", str(cfg), "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["new_inputs"] == 0
    got = Counter((s["__key__"], ",".join(sorted(k for k in s if k != "__key__")))
                  for s in iter_dataset(root_url, storage_options=so))
    assert got == clean


# -- crash safety ---------------------------------------------------------------------------


@pytest.mark.parametrize("point", ["ingest.before-commit:1", "ingest.before-commit:3", "ingest.after-commit:2"])
def test_driver_killed_at_a_commit_point_then_rerun_equals_clean(tmp_path, raw, clean, point):
    out = tmp_path / "ds"
    cfg = pipeline(tmp_path, raw, out)
    res = run_cli("run", str(cfg), env={"EXASHARD_FAILPOINT": point})
    assert res.returncode == -signal.SIGKILL
    if point.startswith("ingest.before-commit"):
        assert files_unreferenced(out)  # a task's shards, written but never committed
    res = run_cli("run", str(cfg), "--json")  # the dead run's lock is stale at once (same machine)
    assert res.returncode == 0, res.stderr
    assert content(out) == clean
    assert files_unreferenced(out) == []  # swept (grace 0 in this pipeline)


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out + [g for c in out for g in _children(c)]


def test_driver_killed_mid_run_then_rerun_equals_clean(tmp_path, raw, clean):
    out = tmp_path / "ds"
    cfg = pipeline(tmp_path, raw, out)
    p = subprocess.Popen([sys.executable, "-m", "exashard.cli", "run", str(cfg)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "manifest").glob("v*.json"))) < 2:
        time.sleep(0.01)
    os.killpg(p.pid, signal.SIGKILL)  # the driver and its local workers, mid-run
    p.wait()
    res = run_cli("run", str(cfg))
    assert res.returncode == 0, res.stderr
    assert content(out) == clean


def test_worker_killed_mid_run(tmp_path, raw, clean):
    out = tmp_path / "ds"
    cfg = pipeline(tmp_path, raw, out, task_size='"10KiB"')
    p = subprocess.Popen([sys.executable, "-m", "exashard.cli", "run", str(cfg)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    killed = []
    deadline = time.time() + 120
    while time.time() < deadline and not killed and p.poll() is None:
        if list((out / "manifest").glob("v*.json")):
            for c in _children(p.pid):
                try:
                    cmd = Path(f"/proc/{c}/cmdline").read_bytes()
                except OSError:
                    continue
                if b"multiprocessing" in cmd or b"spawn" in cmd:
                    os.kill(c, signal.SIGKILL)
                    killed.append(c)
        time.sleep(0.01)
    p.communicate(timeout=240)
    assert killed, "no worker process was found to kill"
    res = run_cli("run", str(cfg))  # whatever the first run did, the next one completes it
    assert res.returncode == 0, res.stderr
    assert content(out) == clean


# -- deletion requests ----------------------------------------------------------------------


def test_forget_removes_a_subject_everywhere_and_for_good(tmp_path):
    src = tmp_path / "in"
    make_raw(src, 0, 21)
    out = tmp_path / "ds"
    cfg = pipeline(tmp_path, src, out)
    assert run_cli("run", str(cfg)).returncode == 0
    before = open_manifest(str(out)).read()
    everything = content(out)
    digests = {s["__key__"]: hashlib.sha256(b"".join(s[k] for k in sorted(s) if k != "__key__")).hexdigest()
               for s in iter_dataset(str(out))}
    ids = tmp_path / "ids.txt"
    ids.write_text("# deletion requests\nuser-3\n\n  user-5  \nnobody-at-all\n")
    res = run_cli("forget", str(out), "--ids", str(ids), "--json")
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stdout)
    assert rep["ids"] == 3 and rep["matched"] == 2 and rep["unmatched_lines"] == [5]
    assert rep["samples_removed"] == 6  # users 3 and 5 own 3 samples each of 21
    after = content(out)
    assert sum(after.values()) == 15 and set(after) < set(everything)
    # the samples gone are exactly those of users 3 and 5: their source files p{i}, i % 7 in (3, 5)
    gone = set(everything) - set(after)
    assert len(gone) == 6
    kept = {s["__key__"]: hashlib.sha256(b"".join(s[k] for k in sorted(s) if k != "__key__")).hexdigest()
            for s in iter_dataset(str(out))}
    assert kept == {k: d for k, d in digests.items() if (k, "jpg,json,txt") not in gone}  # every other sample intact
    subjects = {json.loads(s["json"])["user_id"] for s in iter_dataset(str(out))}
    assert len(subjects) == USERS - 2  # pseudonyms of the 5 remaining users
    # not readable through the old version either: its shards' keys are shredded
    changed = [sid for sid in rep["shards_rewritten"]]
    old_rows = [before.shards[s] for s in changed]
    assert old_rows
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        old_view = exashard.ShardDataset(str(out), version=before.version)
        left = [s["__key__"] for s in old_view]
    assert len(left) == 21 - sum(r.samples for r in old_rows)
    assert {k for k, _ in gone}.isdisjoint(left) and w
    with pytest.raises((ShreddedError, NotFoundError)):
        list(exashard.ShardDataset(str(out), version=before.version, on_shredded="raise"))
    # audit record: counts and shard ids, never raw ids
    audit = (out / rep["audit"]).read_text()
    assert "user-3" not in audit and "nobody" not in audit and json.loads(audit)["samples_removed"] == 6
    assert not list((out / "forget" / "pending").glob("*"))
    # a later ingest of the same subjects' new data leaves them out
    make_raw(src, 21, 14)
    res = run_cli("run", str(cfg), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["samples"] == 10  # 14 new, 4 of them users 3 and 5


def test_forget_needs_a_subject_field_and_good_ids(tmp_path):
    out = tmp_path / "ds"
    with exashard.ShardWriter(str(out)) as w:
        w.write({"__key__": "a", "txt": b"x"})
    ids = tmp_path / "ids.txt"
    ids.write_text("u1\n")
    res = run_cli("forget", str(out), "--ids", str(ids))
    assert res.returncode == 2 and "pass --field" in res.stderr and "Traceback" not in res.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    res = run_cli("forget", str(out), "--ids", str(empty))
    assert res.returncode == 2 and "no ids" in res.stderr


# -- retention ------------------------------------------------------------------------------


def test_vacuum_keeps_recent_versions_and_sweeps_old_orphans(tmp_path):
    out = tmp_path / "ds"
    keys = []
    for n in range(5):
        with exashard.ShardWriter(str(out), encrypt=False) as w:
            w.write({"__key__": f"k{n}", "txt": b"x" * 10})
            keys.append(f"k{n}")
    m = open_manifest(str(out))
    assert m.read().version == 5
    orphan_old = out / "shards" / "orphan-old.tar.zst"
    orphan_new = out / "shards" / "orphan-new.tar.zst"
    orphan_old.write_bytes(b"x")
    orphan_new.write_bytes(b"y")
    os.utime(orphan_old, (time.time() - 7200, time.time() - 7200))
    rep = vacuum(str(out), keep_versions=2, grace=3600)
    assert rep.versions_removed == [1, 2, 3] and rep.oldest_version == 4 and rep.files_removed == 1
    assert not orphan_old.exists() and orphan_new.exists()  # young files may be a writer's work in progress
    assert sorted(s["__key__"] for s in iter_dataset(str(out))) == keys  # latest intact
    assert exashard.inspect(str(out), version=4)["samples"] == 4
    with pytest.raises(NotFoundError, match="version 2 does not exist"):
        exashard.inspect(str(out), version=2)
    with exashard.ShardWriter(str(out), encrypt=False) as w:  # commits keep working after vacuum
        w.write({"__key__": "k5", "txt": b"x"})
    assert open_manifest(str(out)).read().version == 6
    res = run_cli("vacuum", str(out), "--keep", "1", "--grace", "0")
    assert res.returncode == 0, res.stderr
    assert "removed 2 versions" in res.stdout and not orphan_new.exists()
    assert sum(1 for _ in iter_dataset(str(out))) == 6
