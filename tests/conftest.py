"""Shared fixtures: a fresh in-memory filesystem per test, and SeaweedFS S3 on loopback."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import fsspec
import pytest


@pytest.fixture(scope="session", autouse=True)
def default_keyring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Every test runs with ``$EXASHARD_KEYRING`` pointing at a fresh keyring, never ~/.config."""
    from exashard.privacy.keys import LocalKeyring

    path = str(tmp_path_factory.mktemp("keyring") / "keyring.json")
    LocalKeyring.create(path)
    old = os.environ.get("EXASHARD_KEYRING")
    os.environ["EXASHARD_KEYRING"] = path
    yield path
    if old is None:
        os.environ.pop("EXASHARD_KEYRING", None)
    else:
        os.environ["EXASHARD_KEYRING"] = old


@pytest.fixture
def memfs() -> Iterator[tuple[object, str]]:
    """``(fs, "memory://<unique>")``: an isolated in-memory dataset root, removed afterwards."""
    fs = fsspec.filesystem("memory")
    root = f"memory://t-{uuid.uuid4().hex}"
    yield fs, root
    try:
        fs.rm(root, recursive=True)
    except FileNotFoundError:
        pass


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory):
    """One SeaweedFS server (S3 API on a free loopback port) for the whole session."""
    from _seaweed import seaweed_s3

    with seaweed_s3(str(tmp_path_factory.mktemp("seaweed"))) as server:
        yield server


@pytest.fixture
def s3root(seaweed) -> tuple[str, dict]:
    """A fresh ``s3://`` dataset root in the SeaweedFS bucket and its storage options."""
    return f"s3://{seaweed.bucket}/t-{uuid.uuid4().hex}", seaweed.storage_options()


def pytest_configure(config: pytest.Config) -> None:
    # tests import helper modules that live beside them (e.g. _seaweed)
    here = os.path.dirname(__file__)
    import sys

    if here not in sys.path:
        sys.path.insert(0, here)
