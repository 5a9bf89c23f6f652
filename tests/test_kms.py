"""The AWS KMS keyring against a real moto_server on loopback."""

from __future__ import annotations

import os
import pickle

import pytest
from click.testing import CliRunner

from exashard.cli import main
from exashard.errors import KeyAccessError
from exashard.privacy.keyops import rotate
from exashard.privacy.keys import KmsKeyring, WrappedKey, context
from exashard.shards import ShardWriter, iter_dataset, verify


@pytest.fixture(scope="module")
def kms(tmp_path_factory):
    from _moto import moto_kms

    with moto_kms(str(tmp_path_factory.mktemp("moto"))) as server:
        yield server


@pytest.fixture
def aws_env(kms, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", kms.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", kms.secret_key)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


def uri(kms, key_id: str) -> str:
    return f"kms://{key_id}?region={kms.region}&endpoint={kms.endpoint_url}"


SAMPLES = [{"__key__": f"k{i}", "txt": f"private caption {i}", "bin": os.urandom(2000)} for i in range(40)]


def test_kms_write_read_rotate(tmp_path, kms, aws_env):
    key = kms.create_key()
    u = uri(kms, key)
    root = str(tmp_path / "ds")
    with ShardWriter(root, keyring=u, max_samples=15) as w:
        for s in SAMPLES:
            w.write(s)
    assert all(s.encryption["keyring"] == f"kms:{key}" for s in w.shards)
    want = [{**s, "txt": s["txt"].encode()} for s in SAMPLES]
    assert list(iter_dataset(root, keyring=u)) == want
    r = rotate(root, keyring=u)  # re-wrap under a new KMS key
    assert r.rewrapped == 3 and r.kek != key
    assert list(iter_dataset(root, keyring=u)) == want
    assert verify(root, keyring=u).ok
    res = CliRunner().invoke(main, ["head", root, "--kms", u, "-n", "1"])
    assert res.exit_code == 0 and "private caption 0" in res.output


def test_kms_context_binds_dataset_and_shard(kms, aws_env):
    kr = KmsKeyring(uri(kms, kms.create_key()))
    ctx = context("ds-1", "shard-1")
    data_key, wrapped = kr.new_data_key(ctx)
    assert len(data_key) == 32 and kr.unwrap(wrapped, ctx) == data_key
    with pytest.raises(KeyAccessError, match="KMS Decrypt .* failed: InvalidCiphertextException") as e:
        kr.unwrap(wrapped, context("ds-1", "shard-2"))
    assert data_key.hex() not in str(e.value)
    with pytest.raises(KeyAccessError):
        kr.unwrap(WrappedKey(wrapped.kek, wrapped.blob[:-1] + bytes([wrapped.blob[-1] ^ 1])), ctx)


def test_kms_keyring_pickles_without_client(kms, aws_env):
    """Workers get the URI and make their own client: nothing secret travels."""
    kr = KmsKeyring(uri(kms, kms.create_key()))
    kr.new_data_key(context("a", "b"))
    clone = pickle.loads(pickle.dumps(kr))
    assert clone.uri == kr.uri and clone._client is None
    assert len(clone.new_data_key(context("a", "b"))[0]) == 32


def test_kms_bad_uri():
    from exashard.errors import ConfigError

    with pytest.raises(ConfigError, match="kms://<key-id>"):
        KmsKeyring("kms://")
