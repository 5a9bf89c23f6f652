"""Checksum and format validators behind the PII detectors (Luhn, IBAN mod-97, Bitcoin
base58check and bech32/bech32m, JWT header, SSA rules for SSNs, phone number layouts). Pure functions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from functools import reduce
from operator import xor

from exashard.privacy import pii_patterns as P

_SPLIT_DIGITS = re.compile(r"([0-9]+)").split
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_VALUES = bytes(_B58.find(chr(b)) % 256 for b in range(256))  # a character's value, 255 if none
_BECH = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH_VALUES = bytes(_BECH.find(chr(b)) % 256 for b in range(256))  # -1 (not in the alphabet) -> 255


# Luhn: the digits in odd places from the right are doubled (and 9 subtracted past 9).
_LUHN_DOUBLED = bytes.maketrans(b"0123456789", b"0246813579")


def luhn_ok(digits: str) -> bool:
    """Luhn check of a string of ASCII digits."""
    b = digits[::-1].encode("ascii")
    return (sum(b[::2]) + sum(b[1::2].translate(_LUHN_DOUBLED)) - 48 * len(b)) % 10 == 0


_IBAN_AS_DIGITS = {ord(c): str(int(c, 36)) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"}


def iban_ok(compact: str) -> bool:
    """Country length and ISO 7064 mod-97 check of an IBAN without spaces (ASCII letters, digits)."""
    if P.IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit():
        return False
    body = compact[4:]
    if body.isdigit() and body.isascii():  # most countries: the number is the body, then the country's letters as 10-35, then the check digits
        return (((int(body) * 100 + int(compact[0], 36)) * 100 + int(compact[1], 36)) * 100 + int(compact[2:4])) % 97 == 1
    return int((body + compact[:4]).translate(_IBAN_AS_DIGITS)) % 97 == 1


# Issuer prefix (as written, 1-4 digits) -> the card lengths it allows: P.CARD_IIN unrolled.
_IIN_LENGTHS: dict[str, frozenset[int]] = {}
for _lo, _hi, _lens in P.CARD_IIN:
    for _v in range(_lo, _hi + 1):
        _IIN_LENGTHS[str(_v)] = _IIN_LENGTHS.get(str(_v), frozenset()) | _lens
del _lo, _hi, _lens, _v
_NONE: frozenset[int] = frozenset()


def _card_ok(digits: str) -> bool:
    """An issuer range that allows this length, and the Luhn check (ASCII digits)."""
    n, get = len(digits), _IIN_LENGTHS.get
    return (n in get(digits[:1], _NONE) or n in get(digits[:2], _NONE) or n in get(digits[:3], _NONE)
            or n in get(digits[:4], _NONE)) and luhn_ok(digits)


def base58check_ok(addr: str) -> bool:
    """A P2PKH (version 0) or P2SH (version 5) address with a valid double-SHA-256 checksum
    (``addr``: base58 characters only)."""
    n = 0
    for v in addr.encode("ascii").translate(_B58_VALUES):
        n = n * 58 + v
    pad = len(addr) - len(addr.lstrip("1"))
    if n >= 1 << (8 * (25 - pad)):
        return False
    raw = b"\0" * pad + n.to_bytes(25 - pad, "big")
    return raw[0] in (0, 5) and hashlib.sha256(hashlib.sha256(raw[:21]).digest()).digest()[:4] == raw[21:]


_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_GEN_XOR = [reduce(xor, (g for i, g in enumerate(_GEN) if t >> i & 1), 0) for t in range(32)]  # per 5-bit top


def _step(chk: int, v: int) -> int:
    """One step of the bech32 checksum: the next 5-bit value in."""
    return ((chk & 0x1FFFFFF) << 5 ^ v) ^ _GEN_XOR[chk >> 25]


# Two steps at once: a step is linear over GF(2), so two of them are the low 20 bits shifted by 10,
# the two values in the low 10 bits, and one table entry for what the top 10 bits give.
_GEN_XOR2 = [_step(_step(t << 20, 0), 0) for t in range(1024)]


def _polymod(values: bytes) -> int:
    chk, it = 1, iter(values)
    if len(values) % 2:
        chk = _step(chk, next(it))
    for a, b in zip(it, it):
        chk = ((chk & 0xFFFFF) << 10 ^ a << 5 ^ b) ^ _GEN_XOR2[chk >> 20]
    return chk


def segwit_ok(addr: str) -> bool:
    """A ``bc1`` address: bech32 (witness v0) or bech32m (v1+) checksum and BIP-141 program rules."""
    if addr.lower() != addr and addr.upper() != addr or len(addr) > 90:
        return False
    data = addr.lower()[3:].encode("latin-1", "replace").translate(_BECH_VALUES)  # 5-bit values, 255: no bech32 character
    if 255 in data or len(data) < 7:
        return False
    # The program is data[1:-6] read as a bit string: whole bytes, then under 5 padding bits that must be 0.
    size, pad = divmod(5 * (len(data) - 7), 8)
    if pad >= 5 or data[0] > 16 or not 2 <= size <= 40 or data[-7] & ((1 << pad) - 1):
        return False
    const = _polymod(b"\x03\x03\x00\x02\x03" + data)  # "bc" expanded
    return const == 1 and size in (20, 32) if data[0] == 0 else const == 0x2BC830A3


def ipv6_ok(tok: str) -> bool:
    """Whether ``ipaddress.IPv6Address`` accepts ``tok``, a token the IPv6 pattern matched (hex groups
    of at most four digits joined by colons, maybe a dotted quad at the end), at a fraction of its
    cost: 8 groups, or fewer and one "::"; a dotted quad counts as two groups, its octets 0-255
    without leading zeros."""
    parts = tok.split(":")
    if len(parts) < 3:
        return False
    if "." in parts[-1]:
        octets = parts.pop().split(".")
        if len(octets) != 4 or not all(o.isdigit() and len(o) <= 3 and (o == "0" or o[0] != "0") and int(o) <= 255 for o in octets):
            return False
        parts += ("0", "0")
    n = len(parts)
    if n > 9:
        return False
    empty = [i for i in range(1, n - 1) if not parts[i]]
    if not empty:
        return n == 8 and bool(parts[0]) and bool(parts[-1])
    if len(empty) > 1:
        return False
    hi, lo = empty[0], n - empty[0] - 1
    if not parts[0]:
        hi -= 1
        if hi:
            return False
    if not parts[-1]:
        lo -= 1
        if lo:
            return False
    return hi + lo <= 7


def _jwt_ok(token: str) -> bool:
    head = token.split(".", 1)[0]
    try:
        obj = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    return isinstance(obj, dict) and "alg" in obj


def ssn_ok(area: str, group: str, serial: str) -> bool:
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def phone_shape(prefix: str | None, body: str) -> int:
    """How far the digits' layout alone decides: 2 a phone whatever the context, 1 a phone unless
    an id-ish label precedes, 0 only after a phone word, -1 not a phone. The caller has checked
    the digit count (8-17 after a prefix, 9-12 without)."""
    parts = _SPLIT_DIGITS(body.replace("\u00a0", " ").replace("\u202f", " "))
    groups, seps = parts[1::2], parts[::2]
    if seps[0] not in ("", "(") or seps[-1] or not P.PHONE_SEPS.issuperset(seps[1:-1]):
        return -1
    opening = body.count("(")
    if opening != body.count(")") or opening > 2:
        return -1
    if prefix:  # international: a calling code and 8-15 digits; "(0)" after the code is a trunk prefix
        nat = "".join(g for g, s in zip(groups, seps) if not (g == "0" and s.endswith("(")))
        cc = next((nat[:n] for n in (1, 2, 3) if nat[:n] in P.CALLING_CODES), None)
        lo, hi = P.NSN_LENGTHS.get(cc or "", (4, 14))
        if cc and 8 <= len(nat) <= 15 and lo <= len(nat) - len(cc) <= hi:
            return 2
        if prefix == "+":
            return -1
        groups[0] = "00" + groups[0]  # "00..." without a calling code: a national number
    digits = "".join(groups)
    n = len(digits)
    if len(groups) == 1:
        return -1 if not 9 <= n <= 12 else 1 if digits[0] == "0" and n <= 11 else 0
    sizes = [len(g) for g in groups]
    if not 9 <= n <= 12 or len(groups) > 6 or min(sizes) < 2:
        return -1
    if len(sizes) > 2 and sizes[1] <= 2 and ((sizes[0] == 4 and sizes[2] <= 2) or (sizes[0] <= 2 and sizes[2] == 4)):
        return -1  # a date: YYYY-MM-DD or DD.MM.YYYY
    inner = set(seps[1:-1])
    if "." in inner and (inner != {"."} or len(groups) < 3 or (len(groups) == 4 and max(sizes) <= 3)):
        return -1  # decimals, coordinates, dotted quads
    if any(seps[i] == "/" and sizes[i - 1] <= 2 and sizes[i] <= 2 for i in range(1, len(groups))):
        return -1  # "09/27": a date
    thousands = sizes[0] <= 3 and digits[0] != "0" and all(x == 3 for x in sizes[1:]) and len(inner) == 1
    card_like = len(sizes) >= 3 and set(sizes) == {4}  # 4-4-4: a card or account number
    return 0 if thousands or card_like or sizes == [3, 2, 4] else 1  # 3-2-4 is the SSN layout
