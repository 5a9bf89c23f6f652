"""Start a real ``moto_server`` (KMS only is used) on loopback for tests.

Usage::

    with moto_kms(str(tmp_path)) as kms:
        key_id = kms.create_key()
        resp = kms.client().generate_data_key(KeyId=key_id, KeySpec="AES_256")

Hermetic: the server runs with a scrubbed environment (no ``AWS_*``/``MOTO_*``
from the caller, ``HOME`` and the AWS config/credentials files pointed into
``tmp_dir``), and :meth:`MotoKMS.client` uses a botocore session that ignores
``~/.aws``, ``AWS_PROFILE`` and friends.

Known moto 5.2.5 KMS deviations from real AWS (see ``test_moto_smoke.py``):
key state is not enforced (encrypt/decrypt with a Disabled or PendingDeletion
key succeed; real KMS raises ``DisabledException`` / ``KMSInvalidStateException``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.session
from _seaweed import (  # shared process helpers
    _die_with_parent,
    _tail,
    free_port,
    stop_group,
    venv_binary,
)
from botocore.config import Config

__all__ = ["MotoKMS", "moto_kms"]

HOST = "127.0.0.1"
REGION = "us-east-1"
ACCESS_KEY = "testing"
SECRET_KEY = "testing"
STARTUP_TIMEOUT_S = 30.0
TERM_GRACE_S = 2.0
_LOG_TAIL_LINES = 60


def _moto_binary() -> str:
    return venv_binary("moto_server", "pip install 'moto[server]'")


def _server_env(home: Path) -> dict[str, str]:
    """Caller's env minus AWS_*/MOTO_*, with dummy credentials and no readable ~/.aws."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_", "TEST_SERVER_MODE"))}
    env.update(
        HOME=str(home),
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_CONFIG_FILE=str(home / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def _hermetic_botocore_session() -> botocore.session.Session:
    """A botocore session that reads no config/credentials files and no AWS_* env vars."""
    # session_vars entries are (config_key, env_var, default, converter); dropping
    # the env var name makes botocore ignore AWS_PROFILE, AWS_ENDPOINT_URL, ...
    base = botocore.session.Session()
    session_vars = {name: (spec[0], None, *spec[2:]) for name, spec in base.session_var_map.items()}
    session = botocore.session.Session(session_vars=session_vars)
    session.set_config_variable("config_file", os.devnull)
    session.set_config_variable("credentials_file", os.devnull)
    session.set_config_variable("profile", None)
    return session


@dataclass(frozen=True)
class MotoKMS:
    """A running moto_server; only its KMS API is used by exashard tests."""

    endpoint_url: str
    region: str
    access_key: str
    secret_key: str
    log_path: Path = field(repr=False, compare=False)
    proc: subprocess.Popen[bytes] = field(repr=False, compare=False)

    def client(self, *, read_timeout: float = 10.0, max_attempts: int = 1) -> Any:
        """A fresh boto3 KMS client bound to this server with explicit dummy credentials."""
        session = boto3.session.Session(botocore_session=_hermetic_botocore_session())
        return session.client(
            "kms",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(connect_timeout=1, read_timeout=read_timeout, retries={"max_attempts": max_attempts}),
        )

    def create_key(self, description: str = "exashard test") -> str:
        """Create a SYMMETRIC_DEFAULT ENCRYPT_DECRYPT key; returns its bare KeyId (a UUID, not the ARN)."""
        meta = self.client().create_key(
            Description=description, KeyUsage="ENCRYPT_DECRYPT", KeySpec="SYMMETRIC_DEFAULT"
        )["KeyMetadata"]
        return meta["KeyId"]


def _wait_ready(kms: MotoKMS, timeout: float) -> None:
    """Poll ``ListKeys`` until it answers (proves HTTP and the KMS backend are up)."""
    client = kms.client(read_timeout=2.0)
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        rc = kms.proc.poll()
        if rc is not None:
            raise RuntimeError(
                f"moto_server exited with code {rc} during startup; log tail ({kms.log_path}):\n{_tail(kms.log_path)}"
            )
        try:
            client.list_keys(Limit=1)
            return
        except Exception as exc:  # noqa: BLE001 - anything means "not ready yet"
            last_error = exc
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"moto_server at {kms.endpoint_url} not ready after {timeout:g} s "
                f"(last error: {last_error!r}); log tail ({kms.log_path}):\n{_tail(kms.log_path)}"
            )
        time.sleep(0.1)


@contextlib.contextmanager
def moto_kms(tmp_dir: str, *, timeout: float = STARTUP_TIMEOUT_S) -> Iterator[MotoKMS]:
    """Run ``moto_server`` on a free loopback port (log: ``tmp_dir/moto.log``) for the ``with`` body."""
    root = Path(tmp_dir)
    home = root / "moto-home"
    home.mkdir(parents=True, exist_ok=True)
    log_path = root / "moto.log"
    env = _server_env(home)
    kms: MotoKMS | None = None
    try:
        # The port is free when picked but could be grabbed before moto binds it;
        # retry with a fresh port if that (rarely) happens.
        for attempt in range(3):
            port = free_port()
            with log_path.open("ab") as log:
                log.write(f"\n=== exashard: starting moto_server on port {port} at {time.ctime()} ===\n".encode())
                log.flush()
                proc = subprocess.Popen(
                    [_moto_binary(), "-H", HOST, "-p", str(port)],
                    cwd=home,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            kms = MotoKMS(
                endpoint_url=f"http://{HOST}:{port}",
                region=REGION,
                access_key=ACCESS_KEY,
                secret_key=SECRET_KEY,
                log_path=log_path,
                proc=proc,
            )
            try:
                _wait_ready(kms, timeout)
                break
            except (RuntimeError, TimeoutError):
                stop_group(proc, grace=0)
                if attempt == 2 or "address already in use" not in _tail(log_path).lower():
                    raise
        assert kms is not None
        yield kms
    finally:
        if kms is not None:
            stop_group(kms.proc, grace=TERM_GRACE_S)
