"""The ingest runner: plan on the driver, read/privatize/write on Dask workers, commit.

Data bytes never pass through the scheduler: each task reads its own inputs and writes
its own shards through fsspec and returns a small ``TaskResult``. The driver keeps a
bounded window of tasks in flight, so ten million inputs never mean ten million
futures, and commits each finished task's shards as one manifest version.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError, QuarantineError
from ..record import Sample
from ..shards import storage
from ..shards.manifest import Manifest
from ..shards.writer import MiB, ShardInfo, ShardWriter
from .ledger import Ledger, commit_meta
from .plan import Task, dumps_task, plan
from .sources import Source, Unit, read_unit, unit_ref

# Exit codes of `exashard ingest` (documented in the README)
EXIT_OK, EXIT_QUARANTINE, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3


@dataclass
class Quarantined:
    input: str  # keyed hash of the input's identity (or its URL if the policy allows)
    reason: str


@dataclass
class TaskResult:
    task: str
    shards: list[dict[str, Any]] = field(default_factory=list)
    samples: int = 0
    units: int = 0
    input_bytes: int = 0
    excluded: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)


@dataclass
class RunReport:
    """What a run did; ``exashard ingest --report`` writes it as JSON."""

    dataset: str
    dataset_id: str
    policy: dict[str, Any]
    encrypted: bool
    tasks: int = 0
    inputs: int = 0
    input_bytes: int = 0
    samples: int = 0
    shards: int = 0
    bytes: int = 0
    excluded: int = 0
    skipped_inputs: int = 0  # already in the dataset (the ledger): committed by an earlier run
    quarantined: list[Quarantined] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    versions: list[int] = field(default_factory=list)
    seconds: float = 0.0
    exit_code: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def failpoint(name: str) -> None:
    """Crash tests: ``EXASHARD_FAILPOINT=name[:n]`` kills this process with SIGKILL the
    n-th time (default 1st) it reaches ``name``, as a power cut or ``kill -9`` would."""
    spec = os.environ.get("EXASHARD_FAILPOINT")
    if not spec:
        return
    want, _, nth = spec.partition(":")
    if want != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= int(nth or 1):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


_hits: dict[str, int] = {}


def load_forget_list(m: Manifest) -> frozenset[str]:
    """Every pseudonym of the dataset's deletion requests (``forget/*.json``)."""
    try:
        names = m.fs.ls(m._path("forget"), detail=False)
    except FileNotFoundError:
        return frozenset()
    out: set[str] = set()
    for n in names:
        base = n.rstrip("/").rsplit("/", 1)[-1]
        if base.endswith(".json") and not base.startswith("."):
            doc = storage.read_json(m.fs, m._path(f"forget/{base}"))
            items = doc.get("pseudonyms") if isinstance(doc, dict) else None
            if not isinstance(items, list):
                raise ConfigError(f"{m.where}/forget/{base}: not a forget list")
            out.update(str(x) for x in items)
    return frozenset(out)


# -- keys for tasks ---------------------------------------------------------------------


class TaskKeys:
    """Data keys the driver made for one task (local keyring: workers get keys, not keyrings).

    Called as ``data_keys(dataset_id, shard_id)`` by the task's ShardWriter; the wrapped
    key is made for exactly that shard id, so one list of pre-made pairs is not enough:
    the driver wraps for the shard ids the task will use (``<task>-<seq>``).
    """

    def __init__(self, pairs: dict[str, tuple[bytes, Any]], keyring_id: str) -> None:
        self.pairs = pairs
        self.keyring_id = keyring_id

    def __call__(self, dataset_id: str, shard_id: str) -> tuple[bytes, Any]:
        try:
            return self.pairs[shard_id]
        except KeyError:
            raise ConfigError(f"task has no data key for shard {shard_id} (more output than planned)") from None


def pseudonym_master(keyring: Any, fs: Any, root: str, dataset_id: str) -> bytes:
    """The dataset's pseudonym key: the local keyring's HMAC key, or (KMS) a random key
    wrapped by KMS and kept in ``keys/_pseudonym.json``."""
    if hasattr(keyring, "hmac_key"):
        return keyring.hmac_key()
    from ..privacy.keys import WrappedKey, context

    path = storage.join(root, "keys/_pseudonym.json")
    ctx = context(dataset_id, "_pseudonym")
    try:
        doc = json.loads(fs.cat_file(path))
        return keyring.unwrap(WrappedKey.from_dict(doc, path), ctx)
    except FileNotFoundError:
        key, wrapped = keyring.new_data_key(ctx)
        storage.atomic_write(fs, path, json.dumps(wrapped.to_dict()).encode())
        return key


def sample_key(secret: bytes, name: str) -> str:
    """Shard keys are never raw file names: a stable keyed hash of the source name."""
    return hmac.new(secret, b"exashard key v1\x00" + name.encode(), hashlib.sha256).hexdigest()[:24]


# -- the task (runs on a worker) ----------------------------------------------------------


def run_task(
    task: Task | bytes,
    out: str,
    *,
    storage_options: dict[str, Any] | None,
    source_options: dict[str, Any] | None,
    policy: Any,
    secret: bytes,
    dataset_id: str,
    data_keys: Any,
    keyring: Any,
    encrypt: bool,
    shard_size: int,
    forget: frozenset[str] = frozenset(),
    clear_urls: bool = False,
) -> TaskResult:
    from ..privacy.pseudonym import Pseudonymizer
    from ..privacy.stage import PrivacyStage
    from .plan import loads_task
    from .sources import Reader

    if isinstance(task, bytes):  # as the driver submits it (plan.dumps_task)
        task = loads_task(task)
    stage = PrivacyStage(policy, pseudonyms=Pseudonymizer(secret, dataset_id), forget=forget)
    res = TaskResult(task.id)
    stats: Counter[str] = Counter()
    subject_field = None if policy.subject is None else ".".join([policy.subject[0], *policy.subject[1]])
    writer = ShardWriter(
        out, name=task.id, commit=False, encrypt=encrypt, target_size=shard_size,
        keyring=keyring if data_keys is None else None, data_keys=data_keys, storage_options=storage_options,
        subject_field=subject_field,
    )
    reader = Reader(source_options)
    try:
        with writer:
            for pos, unit in enumerate(task.units):
                ref = unit.files[0][1].url if clear_urls else unit_ref(unit, secret)
                res.units += 1
                try:
                    for sub, (name, fields) in enumerate(read_unit(unit, source_options, reader)):
                        res.input_bytes += sum(len(v) for v in fields.values())
                        s = Sample(sample_key(secret, f"{unit.name}\x00{sub}\x00{name}"), fields, source=f"{ref}#{sub}")
                        try:
                            if not fields or not any(len(v) for v in fields.values()):
                                raise QuarantineError(f"sample {s.source}: empty input")
                            out_s = stage.apply(s)
                        except QuarantineError as e:
                            res.quarantined.append(Quarantined(s.source or ref, str(e)))
                            continue
                        if out_s is None:
                            res.excluded += 1
                            continue
                        if not out_s.fields:
                            res.quarantined.append(Quarantined(s.source or ref, "no field survived the policy"))
                            continue
                        writer.write(out_s)
                        stats.update(out_s.stats)
                        res.samples += 1
                except QuarantineError as e:
                    res.quarantined.append(Quarantined(ref, str(e)))
                except FileNotFoundError:
                    res.quarantined.append(Quarantined(ref, f"input {pos} vanished between listing and reading"))
                except (PermissionError, IsADirectoryError) as e:
                    res.quarantined.append(Quarantined(ref, f"input {pos} unreadable ({e.__class__.__name__})"))
    finally:
        reader.close()
    res.shards = [s.to_dict() for s in writer.shards]
    res.stats = dict(stats)
    return res


# -- the driver ---------------------------------------------------------------------------


def _units(sources: Iterable[Source]) -> Iterator[Unit]:
    for s in sources:
        yield from s.units()


class _Progress:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.t0 = time.monotonic()
        self.last = 0.0

    def update(self, report: RunReport, done: int, planned: int | None, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.5 and not force):
            return
        self.last = now
        dt = max(now - self.t0, 1e-6)
        rate = report.input_bytes / dt
        eta = ""
        if planned:
            left = (planned - done) * (dt / max(done, 1))
            eta = f" ETA {left:5.0f}s"
        sys.stderr.write(
            f"\r{done}/{planned or '?'} tasks  {report.samples} samples  {report.input_bytes / 1e6:.1f} MB  "
            f"{rate / 1e6:.1f} MB/s  {len(report.quarantined)} quarantined{eta}   "
        )
        sys.stderr.flush()
        if force:
            sys.stderr.write("\n")


def local_cluster(n_workers: int) -> Any:
    """The embedded default: a ``LocalCluster`` of single-threaded worker processes, with no
    dashboard and so no use for the workers' statistical profiler, which is turned off: its
    10 ms sampling thread takes each worker's GIL from the task (~8% of a worker's
    throughput here, measured with ``get_task_stream``)."""
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.worker.profile.enabled": False}):
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)


def ingest(
    sources: str | Iterable[str],
    out: str,
    *,
    policy: Any = None,
    keyring: Any = None,
    encrypt: bool = True,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    shard_size: int = 256 * MiB,
    task_bytes: int = 128 * MiB,
    window: int | None = None,
    storage_options: dict[str, Any] | None = None,
    source_options: dict[str, Any] | None = None,
    strict: bool = False,
    progress: bool | None = None,
    forget: Iterable[str] = (),
    lock: Any = None,
) -> RunReport:
    """Ingest raw inputs into committed, private, (by default) encrypted shards at ``out``.

    ``policy`` is a path, a ``Policy`` or None (the built-in default). ``client`` is a
    ``distributed.Client``; else ``scheduler`` (an address) is connected to; else a
    ``LocalCluster`` of ``workers`` processes is started. Returns the ``RunReport``.

    Inputs the dataset's ledger already holds are skipped, so a rerun does only what is
    new. Subjects on the dataset's forget list (and ``forget``, pseudonyms) are excluded.
    ``lock`` (a held ``RunLock``) is checked before every commit.
    """
    from ..privacy.policy import Policy, default_policy, load_policy

    t0 = time.monotonic()
    if isinstance(sources, str):
        sources = [sources]
    pol = policy if isinstance(policy, Policy) else (load_policy(policy) if policy else default_policy())
    srcs = [Source(s, source_options) for s in sources]  # bad URLs fail here, before any work
    if not srcs:
        raise ConfigError("no sources given")
    fs, root = storage.resolve(out, storage_options)
    m = Manifest(root, fs=fs)
    dataset_id = m.dataset_id(create=True)
    assert dataset_id is not None
    from ..privacy.keys import resolve_keyring

    # only ingest may create the default keyring: here, on the driver, on first use
    kr = resolve_keyring(keyring, create=keyring is None)
    secret = pseudonym_master(kr, fs, root, dataset_id)  # keys and pseudonyms need it even unencrypted
    report = RunReport(storage.display(fs, root), dataset_id, pol.describe(), encrypt)
    ledger = Ledger(m, secret)
    ledger.load(merge=lock is not None)

    digests: dict[str, str] = {}  # identity -> ledger digest, for planned, uncommitted units

    def new_units() -> Iterator[Unit]:
        for u in _units(srcs):
            d = ledger.digest(u.identity)
            if d in ledger:
                report.skipped_inputs += 1
            else:
                digests[u.identity] = d
                yield u

    tasks = plan(new_units(), max_bytes=task_bytes)
    first = next(tasks, None)
    if first is None:  # nothing new: no cluster, no commit
        report.seconds = time.monotonic() - t0
        return report
    tasks = itertools.chain([first], tasks)  # the listing goes on from here: never twice
    own_cluster = own_client = None
    if client is None:
        from distributed import Client

        if scheduler:
            client = own_client = Client(scheduler)
        else:
            own_cluster = local_cluster(workers or os.cpu_count() or 1)
            client = Client(own_cluster)
    window = window or max(2, 2 * len(client.scheduler_info().get("workers", {})) or 2)
    prog = _Progress(sys.stderr.isatty() if progress is None else progress)
    kms = not hasattr(kr, "hmac_key")  # KMS: workers get data keys from KMS, not from the driver
    try:
        from distributed import as_completed

        pending = as_completed()
        by_key: dict[str, Task] = {}
        inflight = 0
        planned = 0
        done = 0
        exhausted = False
        forget_set = frozenset(forget) | load_forget_list(m)
        while True:
            while not exhausted and inflight < window:
                task = next(tasks, None)
                if task is None:
                    exhausted = True
                    break
                planned += 1
                data_keys = None
                if encrypt and not kms:  # local keyring: the driver makes the task's data keys
                    from ..privacy.keys import context

                    n_keys = task.size // shard_size + 3
                    pairs = {}
                    for k in range(n_keys):
                        sid = f"{task.id}-{k:06d}"
                        pairs[sid] = kr.new_data_key(context(dataset_id, sid))  # type: ignore[union-attr]
                    data_keys = TaskKeys(pairs, kr.id)  # type: ignore[union-attr]
                fut = client.submit(
                    run_task, dumps_task(task), root if storage.is_local(fs) else out,
                    storage_options=storage_options, source_options=source_options, policy=pol, secret=secret,
                    dataset_id=dataset_id, data_keys=data_keys, keyring=kr if kms else None, encrypt=encrypt,
                    shard_size=shard_size, forget=forget_set, clear_urls=pol.clear_urls,
                    key=f"exashard-ingest-{dataset_id}-{task.id}", retries=2, pure=False,
                )
                pending.add(fut)
                by_key[fut.key] = task
                inflight += 1
            if inflight == 0:
                break
            fut = next(pending)
            inflight -= 1
            res: TaskResult = fut.result()
            task = by_key.pop(fut.key)
            done += 1
            _merge(report, res)
            if lock is not None:
                lock.check()
            failpoint("ingest.before-commit")
            # shards and the ledger entries of their inputs become visible in one commit
            rows = [ShardInfo.from_dict(d, "task result") for d in res.shards]
            meta = commit_meta(task.id, [digests.pop(u.identity, None) or ledger.digest(u.identity) for u in task.units])
            report.versions.append(m.commit(add=rows, operation="ingest", meta=meta))
            failpoint("ingest.after-commit")
            prog.update(report, done, planned if exhausted else None)
        report.tasks = done
        prog.update(report, done, planned, force=True)
    finally:
        if own_client is not None:
            own_client.close()
        if own_cluster is not None:
            client.close()
            own_cluster.close()
    report.seconds = time.monotonic() - t0
    report.exit_code = EXIT_QUARANTINE if (strict and report.quarantined) else EXIT_OK
    return report


def _merge(report: RunReport, res: TaskResult) -> None:
    report.inputs += res.units
    report.input_bytes += res.input_bytes
    report.samples += res.samples
    report.excluded += res.excluded
    report.shards += len(res.shards)
    report.bytes += sum(int(s["bytes"]) for s in res.shards)
    report.quarantined.extend(res.quarantined)
    for k, v in res.stats.items():
        report.stats[k] = report.stats.get(k, 0) + v
