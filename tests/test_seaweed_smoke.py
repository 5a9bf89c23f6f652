"""Smoke tests: s3fs against a real SeaweedFS 4.48 S3 server (see ``_seaweed.py``).

The exclusive-create tests pin SeaweedFS/s3fs behaviour that exashard relies on,
so that an upgrade of either shows up here first.
"""

from __future__ import annotations

import errno
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from _seaweed import SeaweedS3, seaweed_s3
from botocore.exceptions import ClientError

pytestmark = pytest.mark.s3

#: What s3fs 2026.9.0 raises when SeaweedFS 4.48 rejects ``If-None-Match: *``.
#: SeaweedFS answers 412 PreconditionFailed without the ``Condition`` field AWS
#: sends, so s3fs maps it via its generic table to OSError(EINVAL), *not* to
#: FileExistsError.
PRECONDITION_MSG = "At least one of the pre-conditions you specified did not hold"


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    with seaweed_s3(str(tmp_path_factory.mktemp("seaweed"))) as s3:
        yield s3


@pytest.fixture
def fs(seaweed: SeaweedS3) -> Any:
    return seaweed.fs()


@pytest.fixture
def key(seaweed: SeaweedS3) -> str:
    """A fresh object path so tests sharing the module server never collide."""
    return f"{seaweed.bucket}/smoke/{uuid.uuid4().hex}"


def _assert_precondition_failed(exc: BaseException) -> None:
    assert type(exc) is OSError  # exactly OSError: not FileExistsError
    assert isinstance(exc, OSError)
    assert exc.errno == errno.EINVAL
    assert exc.args == (errno.EINVAL, PRECONDITION_MSG)
    assert str(exc) == f"[Errno 22] {PRECONDITION_MSG}"
    cause = exc.__cause__
    assert isinstance(cause, ClientError)
    assert cause.response["Error"]["Code"] == "PreconditionFailed"
    assert cause.response["ResponseMetadata"]["HTTPStatusCode"] == 412


def test_put_get_ls(fs: Any, seaweed: SeaweedS3, key: str) -> None:
    fs.pipe_file(key, b"hello seaweed")
    with fs.open(key + ".2", "wb") as f:
        f.write(b"second")

    assert fs.cat_file(key) == b"hello seaweed"
    with fs.open(key + ".2", "rb") as f:
        assert f.read() == b"second"
    parent = key.rsplit("/", 1)[0]
    assert sorted(fs.ls(parent, detail=False)) == [key, key + ".2"]
    assert fs.info(key)["size"] == len(b"hello seaweed")
    assert seaweed.bucket in fs.ls("", detail=False)


def test_ranged_read(fs: Any, key: str) -> None:
    data = bytes(range(256)) * 4
    fs.pipe_file(key, data)

    assert fs.cat_file(key, start=10, end=20) == data[10:20]
    assert fs.cat_file(key, start=1000) == data[1000:]
    assert fs.cat_file(key, start=-5) == data[-5:]
    with fs.open(key, "rb") as f:
        f.seek(500)
        assert f.read(7) == data[500:507]


def test_exclusive_create_new_key_succeeds(fs: Any, key: str) -> None:
    with fs.open(key, "xb") as f:
        f.write(b"first")
    assert fs.cat_file(key) == b"first"


def test_exclusive_create_existing_key_fails(fs: Any, key: str) -> None:
    with fs.open(key, "xb") as f:
        f.write(b"first")

    # The PUT (with If-None-Match: *) only happens on close, so the error too.
    with pytest.raises(OSError) as excinfo, fs.open(key, "xb") as f:
        f.write(b"second")
    _assert_precondition_failed(excinfo.value)
    assert fs.cat_file(key) == b"first"


def test_exclusive_create_multipart_existing_key_fails(fs: Any, key: str) -> None:
    """Multipart "xb" is checked at CompleteMultipartUpload; SeaweedFS honours it."""
    chunk = b"z" * (6 * 2**20)  # > block_size, so s3fs uses a multipart upload
    with fs.open(key, "xb", block_size=5 * 2**20) as f:
        f.write(chunk)
    with pytest.raises(OSError) as excinfo, fs.open(key, "xb", block_size=5 * 2**20) as f:
        f.write(b"y" * len(chunk))
    _assert_precondition_failed(excinfo.value)
    assert fs.cat_file(key, start=0, end=4) == b"zzzz"


def test_pipe_file_mode_create(fs: Any, key: str) -> None:
    """s3fs 2026.9.0 also offers exclusive create as ``pipe_file(..., mode="create")``."""
    fs.pipe_file(key, b"first", mode="create")
    with pytest.raises(OSError) as excinfo:
        fs.pipe_file(key, b"second", mode="create")
    _assert_precondition_failed(excinfo.value)
    assert fs.cat_file(key) == b"first"


def test_empty_exclusive_create_is_not_exclusive(fs: Any, key: str) -> None:
    """s3fs quirk: an "xb" file closed with 0 bytes is written via ``touch``
    WITHOUT If-None-Match, so it silently truncates an existing object."""
    fs.pipe_file(key, b"precious")
    with fs.open(key, "xb"):
        pass
    assert fs.cat_file(key) == b""


def test_kill_and_restart_keeps_data(seaweed: SeaweedS3, key: str) -> None:
    seaweed.fs().pipe_file(key, b"durable")
    old_pid = seaweed.proc.pid

    seaweed.kill()
    assert seaweed.proc.returncode == -9
    seaweed.restart()

    assert seaweed.proc.pid != old_pid
    assert seaweed.proc.poll() is None
    assert seaweed.fs().cat_file(key) == b"durable"
