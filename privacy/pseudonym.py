"""Keyed pseudonyms for subject ids: canonicalize, then HMAC-SHA256, never a plain hash.

The key is separated per dataset and per field: ``HMAC(master, "exashard pseudonym v1" 0
dataset id 0 field)``, where ``master`` is the keyring's pseudonym key (it survives KEK
rotation, so deletion requests still find old pseudonyms).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import unicodedata
from typing import Any

from ..errors import QuarantineError


def canonical(value: Any, where: str = "subject id") -> bytes:
    """JSON numbers as decimal strings (``12``, ``12.0`` -> ``"12"``), strings trimmed and
    NFC-normalized; anything else (objects, lists, booleans, null, NaN) is not an id."""
    if isinstance(value, bool) or value is None:
        raise QuarantineError(f"{where}: a subject id must be a string or number, got {type(value).__name__}")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise QuarantineError(f"{where}: a subject id cannot be {value}")
        text = str(int(value)) if value.is_integer() else repr(value)
    elif isinstance(value, (bytes, bytearray)):
        try:
            text = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise QuarantineError(f"{where}: subject id is not UTF-8") from None
        text = text.strip()
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise QuarantineError(f"{where}: a subject id must be a string or number, got {type(value).__name__}")
    text = unicodedata.normalize("NFC", text)
    if not text:
        raise QuarantineError(f"{where}: subject id is empty")
    return text.encode("utf-8")


class Pseudonymizer:
    """``pseudonym(field, value)``: 32 hex digits (128 bits of HMAC-SHA256)."""

    def __init__(self, master_key: bytes, dataset_id: str) -> None:
        if len(master_key) < 32:
            raise ValueError("pseudonym key must be at least 32 bytes")
        self._master = master_key
        self.dataset_id = dataset_id
        self._keys: dict[str, bytes] = {}

    def _key(self, field_name: str) -> bytes:
        k = self._keys.get(field_name)
        if k is None:
            info = b"exashard pseudonym v1\x00" + self.dataset_id.encode() + b"\x00" + field_name.encode()
            k = self._keys[field_name] = hmac.new(self._master, info, hashlib.sha256).digest()
        return k

    def pseudonym(self, field_name: str, value: Any) -> str:
        return hmac.new(self._key(field_name), canonical(value, field_name), hashlib.sha256).hexdigest()[:32]
