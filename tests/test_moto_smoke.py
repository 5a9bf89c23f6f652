"""Smoke tests pinning the KMS behaviour of a real ``moto_server`` (moto 5.2.5).

These record what exashard's KMS envelope code can rely on when tested against
moto, including where moto deviates from real AWS KMS.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from _moto import MotoKMS, moto_kms
from botocore.exceptions import ClientError

CTX = {"exashard:dataset": "ds-1", "exashard:shard": "00000"}
OTHER_CTX = {"exashard:dataset": "ds-1", "exashard:shard": "00001"}


@pytest.fixture(scope="module")
def kms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoKMS]:
    with moto_kms(str(tmp_path_factory.mktemp("moto"))) as server:
        yield server


@pytest.fixture(scope="module")
def client(kms: MotoKMS) -> Any:
    return kms.client()


@pytest.fixture(scope="module")
def key_id(kms: MotoKMS) -> str:
    return kms.create_key()


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return exc.value.response["Error"]["Code"]


def test_create_key_returns_bare_key_id(kms: MotoKMS, client: Any, key_id: str) -> None:
    meta = client.describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["KeyId"] == key_id and not key_id.startswith("arn:")
    assert meta["Arn"].endswith(f":key/{key_id}") and ":us-east-1:" in meta["Arn"]
    assert meta["KeySpec"] == "SYMMETRIC_DEFAULT" and meta["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert meta["KeyState"] == "Enabled"


def test_generate_data_key_and_decrypt(client: Any, key_id: str) -> None:
    resp = client.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=CTX)
    assert isinstance(resp["Plaintext"], bytes) and len(resp["Plaintext"]) == 32
    blob = resp["CiphertextBlob"]
    assert isinstance(blob, bytes) and len(blob) > 32
    assert resp["KeyId"].endswith(f":key/{key_id}")  # the ARN, not the bare id

    out = client.decrypt(CiphertextBlob=blob, EncryptionContext=CTX, KeyId=key_id)
    assert out["Plaintext"] == resp["Plaintext"]
    assert out["KeyId"] == resp["KeyId"]


def test_decrypt_without_key_id_uses_key_from_blob(client: Any, key_id: str) -> None:
    resp = client.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=CTX)
    out = client.decrypt(CiphertextBlob=resp["CiphertextBlob"], EncryptionContext=CTX)
    assert out["Plaintext"] == resp["Plaintext"]
    assert out["KeyId"].endswith(f":key/{key_id}")


def test_decrypt_with_wrong_or_missing_context_fails(client: Any, key_id: str) -> None:
    blob = client.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=CTX)["CiphertextBlob"]
    with pytest.raises(client.exceptions.InvalidCiphertextException) as exc:
        client.decrypt(CiphertextBlob=blob, EncryptionContext=OTHER_CTX, KeyId=key_id)
    assert _code(exc) == "InvalidCiphertextException"
    with pytest.raises(client.exceptions.InvalidCiphertextException):
        client.decrypt(CiphertextBlob=blob, KeyId=key_id)  # no context at all


def test_decrypt_tampered_blob_fails(client: Any, key_id: str) -> None:
    blob = bytearray(client.encrypt(KeyId=key_id, Plaintext=b"x" * 32, EncryptionContext=CTX)["CiphertextBlob"])
    blob[-1] ^= 1
    with pytest.raises(client.exceptions.InvalidCiphertextException):
        client.decrypt(CiphertextBlob=bytes(blob), EncryptionContext=CTX)


def test_encrypt_decrypt_roundtrip(client: Any, key_id: str) -> None:
    plaintext = os.urandom(32)
    enc = client.encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext=CTX)
    assert enc["CiphertextBlob"] != plaintext
    out = client.decrypt(CiphertextBlob=enc["CiphertextBlob"], EncryptionContext=CTX, KeyId=key_id)
    assert out["Plaintext"] == plaintext


def test_decrypt_specifying_other_key_fails(kms: MotoKMS, client: Any, key_id: str) -> None:
    other = kms.create_key("exashard test B")
    blob = client.encrypt(KeyId=key_id, Plaintext=b"k" * 32, EncryptionContext=CTX)["CiphertextBlob"]
    with pytest.raises(ClientError) as exc:
        client.decrypt(CiphertextBlob=blob, EncryptionContext=CTX, KeyId=other)
    assert _code(exc) == "AccessDeniedException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_decrypt_with_unknown_key_id_fails(client: Any, key_id: str) -> None:
    blob = client.encrypt(KeyId=key_id, Plaintext=b"k" * 32, EncryptionContext=CTX)["CiphertextBlob"]
    missing = "00000000-0000-0000-0000-000000000000"
    with pytest.raises(client.exceptions.NotFoundException) as exc:
        client.decrypt(CiphertextBlob=blob, EncryptionContext=CTX, KeyId=missing)
    assert _code(exc) == "NotFoundException"


def test_disabled_key_is_not_enforced_by_moto(kms: MotoKMS, client: Any) -> None:
    """Real KMS: DisabledException. moto 5.2.5 ignores key state: decrypt/encrypt still work."""
    kid = kms.create_key("exashard disabled")
    resp = client.generate_data_key(KeyId=kid, KeySpec="AES_256", EncryptionContext=CTX)
    client.disable_key(KeyId=kid)
    assert client.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "Disabled"
    out = client.decrypt(CiphertextBlob=resp["CiphertextBlob"], EncryptionContext=CTX, KeyId=kid)
    assert out["Plaintext"] == resp["Plaintext"]
    client.encrypt(KeyId=kid, Plaintext=b"k" * 32, EncryptionContext=CTX)


def test_pending_deletion_key_is_not_enforced_by_moto(kms: MotoKMS, client: Any) -> None:
    """Real KMS: KMSInvalidStateException. moto 5.2.5 ignores key state: decrypt still works."""
    kid = kms.create_key("exashard doomed")
    resp = client.generate_data_key(KeyId=kid, KeySpec="AES_256", EncryptionContext=CTX)
    client.schedule_key_deletion(KeyId=kid, PendingWindowInDays=7)
    assert client.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    out = client.decrypt(CiphertextBlob=resp["CiphertextBlob"], EncryptionContext=CTX, KeyId=kid)
    assert out["Plaintext"] == resp["Plaintext"]
    client.generate_data_key(KeyId=kid, KeySpec="AES_256", EncryptionContext=CTX)


def test_re_encrypt_to_other_key_and_context(kms: MotoKMS, client: Any, key_id: str) -> None:
    other = kms.create_key("exashard test C")
    resp = client.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=CTX)
    re = client.re_encrypt(
        CiphertextBlob=resp["CiphertextBlob"],
        SourceEncryptionContext=CTX,
        DestinationKeyId=other,
        DestinationEncryptionContext=OTHER_CTX,
    )
    assert re["SourceKeyId"].endswith(f":key/{key_id}")
    assert re["KeyId"].endswith(f":key/{other}")
    assert re["CiphertextBlob"] != resp["CiphertextBlob"]
    out = client.decrypt(CiphertextBlob=re["CiphertextBlob"], EncryptionContext=OTHER_CTX)
    assert out["Plaintext"] == resp["Plaintext"] and out["KeyId"] == re["KeyId"]
    with pytest.raises(client.exceptions.InvalidCiphertextException):
        client.re_encrypt(
            CiphertextBlob=resp["CiphertextBlob"], SourceEncryptionContext=OTHER_CTX, DestinationKeyId=other
        )
