"""Keyrings: key-encryption keys (KEKs) that wrap per-shard data keys.

Two providers sit behind one small interface (``Keyring``):

* ``LocalKeyring``: a JSON file, mode 0600, holding KEKs with ids. KEKs are scoped to a
  dataset (each dataset has its own primary KEK), so retiring a dataset's old KEK after a
  shred never touches another dataset. Retired KEKs keep their id and lose their bytes.
* ``KmsKeyring``: AWS KMS (``kms://<key-id>?region=..&endpoint=..``). Data keys come
  from ``GenerateDataKey`` and are unwrapped with ``Decrypt``, both bound to an
  encryption context naming the dataset and shard. Workers can call KMS themselves.

Adding a provider (Vault Transit, GCP KMS, ...): implement ``id``, ``new_data_key``,
``unwrap``, ``rewrap``, ``begin_rotation`` and ``retire`` as below; ``resolve_keyring``
maps a URI scheme to it. Nothing here logs or puts key bytes in messages.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, urlparse

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import ConfigError, KeyAccessError, MissingDependencyError, NotFoundError, ShreddedError
from ..shards.writer import utc_now

KEYRING_FORMAT = "exashard-keyring"
_WRAP_AAD = b"exashard data key v1\x00"


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A data key sealed under a KEK: what the dataset's key store keeps."""

    kek: str  # KEK id (local) or KMS key id/ARN
    blob: bytes

    def to_dict(self) -> dict[str, str]:
        return {"kek": self.kek, "blob": base64.b64encode(self.blob).decode()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str) -> WrappedKey:
        try:
            return cls(str(d["kek"]), base64.b64decode(d["blob"], validate=True))
        except (KeyError, TypeError, ValueError):
            raise KeyAccessError(f"{where}: malformed wrapped key") from None


def context(dataset_id: str, shard_id: str) -> dict[str, str]:
    return {"exashard:dataset": dataset_id, "exashard:shard": shard_id}


def _aad(ctx: Mapping[str, str]) -> bytes:
    return _WRAP_AAD + json.dumps(dict(ctx), sort_keys=True, separators=(",", ":")).encode()


class Keyring(Protocol):
    id: str
    location: str

    def new_data_key(self, ctx: Mapping[str, str]) -> tuple[bytes, WrappedKey]: ...

    def unwrap(self, wrapped: WrappedKey, ctx: Mapping[str, str]) -> bytes: ...

    def rewrap(self, wrapped: WrappedKey, ctx: Mapping[str, str], kek: str) -> WrappedKey: ...

    def begin_rotation(self, dataset_id: str) -> str: ...

    def retire(self, keks: set[str]) -> None: ...


# -- local keyring file -------------------------------------------------------------


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


class LocalKeyring:
    """A keyring file: ``{"format", "version", "id", "keks": {id: {...}}, "primary": {dataset: id}, "hmac": ...}``.

    Every change is a locked read-modify-write (``flock`` on ``<file>.lock``) replaced
    atomically with mode 0600, so concurrent writers on one machine do not lose KEKs.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.location = self.path
        self._doc = self._load()
        self.id: str = self._doc["id"]

    # -- file handling
    def _load(self) -> dict[str, Any]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise NotFoundError(f"keyring {self.path} does not exist (create one with 'exashard keys new --keyring {self.path}')") from None
        if st.st_mode & 0o077:
            raise KeyAccessError(f"keyring {self.path} is readable by others (mode {stat.S_IMODE(st.st_mode):o}); chmod 600 it")
        try:
            with open(self.path, "rb") as f:
                doc = json.loads(f.read())
        except (OSError, ValueError) as e:
            raise KeyAccessError(f"keyring {self.path} is unreadable or not JSON ({e.__class__.__name__})") from None
        if not isinstance(doc, dict) or doc.get("format") != KEYRING_FORMAT or doc.get("version") != 1:
            raise KeyAccessError(f"keyring {self.path} is not an exashard keyring file")
        if not isinstance(doc.get("keks"), dict) or not isinstance(doc.get("id"), str):
            raise KeyAccessError(f"keyring {self.path} is malformed")
        doc.setdefault("primary", {})
        return doc

    @staticmethod
    def create(path: str | os.PathLike[str]) -> LocalKeyring:
        """Create a new keyring file (0600); refuses to overwrite an existing file."""
        path = os.path.abspath(os.fspath(path))
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        doc = {
            "format": KEYRING_FORMAT,
            "version": 1,
            "id": "kr-" + os.urandom(8).hex(),
            "created": utc_now(),
            "keks": {},
            "primary": {},
            "hmac": {"pseudonym": _b64(os.urandom(32))},
        }
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ConfigError(f"keyring {path} already exists; refusing to overwrite it") from None
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps(doc, indent=1).encode())
            f.flush()
            os.fsync(f.fileno())
        return LocalKeyring(path)

    @contextlib.contextmanager
    def _update(self) -> Iterator[dict[str, Any]]:
        lock_path = self.path + ".lock"
        fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            doc = self._load()
            yield doc
            tmp = f"{self.path}.tmp-{os.getpid()}"
            wfd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(wfd, "wb") as f:
                f.write(json.dumps(doc, indent=1).encode())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            self._doc = doc
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # -- KEKs
    def _kek(self, kek_id: str, doc: dict[str, Any] | None = None) -> AESGCM:
        entry = (doc or self._doc)["keks"].get(kek_id)
        if entry is None:
            self._doc = self._load()  # another process may have added it
            entry = self._doc["keks"].get(kek_id)
        if entry is None:
            raise KeyAccessError(f"keyring {self.path} (id {self.id}) has no KEK {kek_id!r}")
        if entry.get("state") != "active" or not entry.get("key"):
            raise ShreddedError(f"KEK {kek_id!r} in keyring {self.path} is retired: data it wrapped is shredded")
        return AESGCM(base64.b64decode(entry["key"]))

    def primary(self, dataset_id: str) -> str:
        """The dataset's current KEK, created on first use (only where keyrings may change)."""
        kek = self._doc["primary"].get(dataset_id)
        if kek is not None:
            return kek
        with self._update() as doc:
            kek = doc["primary"].get(dataset_id)
            if kek is None:
                kek = self._add_kek(doc, dataset_id)
        return kek

    @staticmethod
    def _add_kek(doc: dict[str, Any], dataset_id: str) -> str:
        kek = "kek-" + os.urandom(8).hex()
        doc["keks"][kek] = {"key": _b64(os.urandom(32)), "dataset": dataset_id, "state": "active", "created": utc_now()}
        doc["primary"][dataset_id] = kek
        return kek

    def _wrap(self, data_key: bytes, ctx: Mapping[str, str], kek: str) -> WrappedKey:
        nonce = os.urandom(12)
        return WrappedKey(kek, nonce + self._kek(kek).encrypt(nonce, data_key, _aad(ctx)))

    def new_data_key(self, ctx: Mapping[str, str]) -> tuple[bytes, WrappedKey]:
        data_key = os.urandom(32)
        return data_key, self._wrap(data_key, ctx, self.primary(ctx["exashard:dataset"]))

    def unwrap(self, wrapped: WrappedKey, ctx: Mapping[str, str]) -> bytes:
        aead = self._kek(wrapped.kek)
        try:
            key = aead.decrypt(wrapped.blob[:12], wrapped.blob[12:], _aad(ctx))
        except (InvalidTag, ValueError):
            raise KeyAccessError(
                f"KEK {wrapped.kek!r} does not open the data key of shard {ctx.get('exashard:shard')!r} "
                f"(keyring {self.id}): wrong keyring or a tampered key store"
            ) from None
        return key

    def rewrap(self, wrapped: WrappedKey, ctx: Mapping[str, str], kek: str) -> WrappedKey:
        return self._wrap(self.unwrap(wrapped, ctx), ctx, kek)

    def begin_rotation(self, dataset_id: str) -> str:
        """Make a fresh KEK the dataset's primary; returns its id."""
        with self._update() as doc:
            return self._add_kek(doc, dataset_id)

    def retire(self, keks: set[str]) -> None:
        """Destroy these KEKs' bytes for good (ids stay, marked retired)."""
        with self._update() as doc:
            for k in keks:
                entry = doc["keks"].get(k)
                if entry is not None:
                    entry.update(state="retired", key="", retired=utc_now())

    def keks_of(self, dataset_id: str) -> list[str]:
        return [k for k, e in self._doc["keks"].items() if e.get("dataset") == dataset_id and e.get("state") == "active"]

    def hmac_key(self, name: str = "pseudonym") -> bytes:
        return base64.b64decode(self._doc["hmac"][name])

    def export(self, out: str | os.PathLike[str]) -> str:
        """Write a backup copy (0600); refuses to overwrite."""
        out = os.path.abspath(os.fspath(out))
        try:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ConfigError(f"{out} already exists; refusing to overwrite it") from None
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps(self._load(), indent=1).encode())
            f.flush()
            os.fsync(f.fileno())
        return out


# -- AWS KMS --------------------------------------------------------------------------


class KmsKeyring:
    """AWS KMS as the KEK: ``kms://<key-id or ARN>?region=us-east-1&endpoint=http://...``."""

    def __init__(self, uri: str, *, client: Any = None) -> None:
        p = urlparse(uri)
        if p.scheme != "kms" or not (p.netloc or p.path.strip("/")):
            raise ConfigError(f"KMS keyring URI {uri!r} must look like kms://<key-id>?region=<region>[&endpoint=<url>]")
        q = {k: v[-1] for k, v in parse_qs(p.query).items()}
        self.key_id = (p.netloc + p.path).strip("/")
        self.region = q.get("region") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.endpoint = q.get("endpoint")
        self.id = f"kms:{self.key_id}"
        self.location = uri
        self.uri = uri
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                import boto3
            except ImportError:
                raise MissingDependencyError("the KMS keyring needs boto3: pip install 'exashard[kms]'") from None
            self._client = boto3.client("kms", region_name=self.region, endpoint_url=self.endpoint)
        return self._client

    def __getstate__(self) -> dict[str, Any]:  # clients do not pickle; workers make their own
        return {"uri": self.uri}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["uri"])  # type: ignore[misc]

    def _call(self, what: str, fn: Any, **kw: Any) -> Any:
        try:
            return fn(**kw)
        except Exception as e:
            code = getattr(e, "response", {}).get("Error", {}).get("Code", e.__class__.__name__)
            raise KeyAccessError(f"KMS {what} with key {kw.get('KeyId', self.key_id)!r} failed: {code}") from None

    def new_data_key(self, ctx: Mapping[str, str]) -> tuple[bytes, WrappedKey]:
        r = self._call("GenerateDataKey", self.client.generate_data_key, KeyId=self.key_id, KeySpec="AES_256", EncryptionContext=dict(ctx))
        return r["Plaintext"], WrappedKey(self.key_id, r["CiphertextBlob"])

    def unwrap(self, wrapped: WrappedKey, ctx: Mapping[str, str]) -> bytes:
        r = self._call("Decrypt", self.client.decrypt, KeyId=wrapped.kek, CiphertextBlob=wrapped.blob, EncryptionContext=dict(ctx))
        return r["Plaintext"]

    def rewrap(self, wrapped: WrappedKey, ctx: Mapping[str, str], kek: str) -> WrappedKey:
        r = self._call(
            "ReEncrypt", self.client.re_encrypt, CiphertextBlob=wrapped.blob, SourceKeyId=wrapped.kek,
            SourceEncryptionContext=dict(ctx), DestinationKeyId=kek, DestinationEncryptionContext=dict(ctx),
        )
        return WrappedKey(kek, r["CiphertextBlob"])

    def begin_rotation(self, dataset_id: str) -> str:
        """A new KMS key becomes this keyring's KEK (needs kms:CreateKey)."""
        r = self._call("CreateKey", self.client.create_key, Description=f"exashard KEK for dataset {dataset_id}")
        self.key_id = r["KeyMetadata"]["KeyId"]
        return self.key_id

    def retire(self, keks: set[str]) -> None:
        """Disable now and schedule deletion (KMS's minimum window is 7 days)."""
        for k in keks:
            self._call("DisableKey", self.client.disable_key, KeyId=k)
            self._call("ScheduleKeyDeletion", self.client.schedule_key_deletion, KeyId=k, PendingWindowInDays=7)

    def primary(self, dataset_id: str) -> str:
        return self.key_id


# -- resolution -----------------------------------------------------------------------


def _home_keyring_path() -> str:
    return os.path.join(os.path.expanduser("~"), ".config", "exashard", "keyring.json")


def default_keyring_path() -> str:
    """Where the default keyring lives: ``$EXASHARD_KEYRING``, else under ``~/.config``."""
    return os.environ.get("EXASHARD_KEYRING") or _home_keyring_path()


def resolve_keyring(keyring: Any = None, *, create: bool = False, needed: str | None = None) -> Keyring:
    """A keyring from an object, a ``kms://`` URI, a file path, or the default location.

    ``create=True`` (ingest on the driver only) creates the default keyring on first use,
    with a one-line notice on stderr. Otherwise a missing keyring is an error naming the
    paths searched and, when known, the keyring id the dataset needs.
    """
    if keyring is not None and not isinstance(keyring, (str, os.PathLike)):
        return keyring
    if isinstance(keyring, str) and keyring.startswith("kms://"):
        return KmsKeyring(keyring)
    searched = [os.fspath(keyring)] if keyring is not None else []
    if keyring is None:
        env = os.environ.get("EXASHARD_KEYRING")
        searched = ([env] if env else []) + [_home_keyring_path()]
        for p in searched:
            if os.path.exists(p):
                return LocalKeyring(p)
        if create:
            path = default_keyring_path()
            kr = LocalKeyring.create(path)
            import sys

            print(f"exashard: created keyring {path} (id {kr.id}); back it up with 'exashard keys export'", file=sys.stderr)
            return kr
    elif os.path.exists(searched[0]):
        return LocalKeyring(searched[0])
    need = f"; this dataset needs keyring {needed}" if needed else ""
    raise NotFoundError(f"no keyring found (looked in: {', '.join(searched)}){need}")
