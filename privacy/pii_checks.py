"""Checksum and format validators behind the PII detectors (Luhn, IBAN mod-97, Bitcoin
base58check and bech32/bech32m, JWT header, SSA rules for SSNs). Pure functions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable
from functools import reduce
from operator import xor

from exashard.privacy import pii_patterns as P

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}
_BECH = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH_INDEX = {c: i for i, c in enumerate(_BECH)}


def luhn_ok(digits: str) -> bool:
    doubled = ((ord(c) - 48) << (i & 1) for i, c in enumerate(reversed(digits)))
    return sum(d - 9 if d > 9 else d for d in doubled) % 10 == 0


def iban_ok(compact: str) -> bool:
    """Country length and ISO 7064 mod-97 check of an IBAN without spaces."""
    if P.IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit():
        return False
    s = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in s)) % 97 == 1


def _card_ok(digits: str) -> bool:
    n = len(digits)
    return any(n in lens and lo <= int(digits[: len(str(lo))]) <= hi for lo, hi, lens in P.CARD_IIN) and luhn_ok(digits)


def base58check_ok(addr: str) -> bool:
    """A P2PKH (version 0) or P2SH (version 5) address with a valid double-SHA-256 checksum."""
    n = reduce(lambda acc, c: acc * 58 + _B58_INDEX[c], addr, 0)
    pad = len(addr) - len(addr.lstrip("1"))
    if n >= 1 << (8 * (25 - pad)):
        return False
    raw = b"\0" * pad + n.to_bytes(25 - pad, "big")
    return raw[0] in (0, 5) and hashlib.sha256(hashlib.sha256(raw[:21]).digest()).digest()[:4] == raw[21:]


_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_GEN_XOR = [reduce(xor, (g for i, g in enumerate(_GEN) if t >> i & 1), 0) for t in range(32)]  # per 5-bit top


def _polymod(values: Iterable[int]) -> int:
    chk = 1
    for v in values:
        chk = ((chk & 0x1FFFFFF) << 5 ^ v) ^ _GEN_XOR[chk >> 25]
    return chk


def segwit_ok(addr: str) -> bool:
    """A ``bc1`` address: bech32 (witness v0) or bech32m (v1+) checksum and BIP-141 program rules."""
    if addr.lower() != addr and addr.upper() != addr or len(addr) > 90:
        return False
    addr = addr.lower()
    data = [_BECH_INDEX.get(c, -1) for c in addr[3:]]
    if -1 in data or len(data) < 7:
        return False
    const = _polymod([3, 3, 0, 2, 3] + data)  # "bc" expanded
    ver, acc, bits, prog = data[0], 0, 0, bytearray()
    for v in data[1:-6]:
        acc, bits = (acc << 5) | v, bits + 5
        if bits >= 8:
            bits -= 8
            prog.append((acc >> bits) & 0xFF)
    if bits >= 5 or acc & ((1 << bits) - 1) or ver > 16 or not 2 <= len(prog) <= 40:
        return False
    return const == 1 and len(prog) in (20, 32) if ver == 0 else const == 0x2BC830A3


def _jwt_ok(token: str) -> bool:
    head = token.split(".", 1)[0]
    try:
        obj = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    return isinstance(obj, dict) and "alg" in obj


def ssn_ok(area: str, group: str, serial: str) -> bool:
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"
