"""Text PII detection and redaction with typed placeholders (Presidio's entity names).

Entities: EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD (Luhn + issuer ranges), US_SSN (SSA rules),
IP_ADDRESS (v4; v6 through :mod:`ipaddress`), IBAN_CODE (length + mod-97), MAC_ADDRESS, CRYPTO
(Bitcoin base58check, bech32/bech32m), URL_CREDENTIALS (the ``user:pass`` of ``scheme://user:pass@``)
and SECRET (AWS key ids, AWS secret keys after a label, PEM private keys, JWTs, GitHub/Slack/Stripe/
Google tokens, ``Bearer`` tokens); Presidio has no entity for the last two, hence our names. US_SSN
takes a bare nine-digit run only right after an SSN label (bare nine digits are mostly other
things). PHONE_NUMBER: ``+CC``/``00CC`` numbers pass on structure (calling code, national length);
national ones need a plausible grouping (no date, IP, ISBN, card or thousands layout) and no id-ish
label ("order", "serial"...) as the nearest word before them; a bare run must start with a trunk
``0`` or follow a phone word. Overlaps keep the stronger entity (checksummed > structural >
heuristic), then the longer span.

Fast path (most text has no PII): detectors are gated by *triggers*, cheap scans that every match of
the detector hits. Level 1 (11 patterns: 7 digits with separators or ``d.d.d.d`` or ``XX00``...,
``:h:``/``::``/``://``, ``@``, ``eyJ``, ``AKIA``, ``secret``...) runs over the UTF-8 of the texts with
every digit made ``0``: each regex then starts with one literal character and CPython skips ahead
with its fast substring search instead of testing a class at every position (the digit scan went
from ~150 to ~600 MB/s). The batch forms join the texts with NUL (no pattern crosses one), scan once
per trigger (a regex trigger runs on to the next NUL, so one ``finditer`` yields one hit per text),
then run each detector *once* over the texts flagged for it, joined again, so call overhead is paid
per detector rather than per text; a clean text costs no Python-level work. Flagged texts are
*translated* to one byte per character (Latin-1, others as ``?``, digits as ``0``): offsets carry
over, so the digit-heavy detectors (phone, card, SSN, IPv4, IBAN) search the translation with
literal-first patterns and read the digits from the text, and level 2 narrows the IPv4, bech32 and
MAC detectors with triggers of their own. Phone runs laid out alike (same translation, same first
digit or calling code) share one validation plan. ``prefilter="arrow"`` (opt-in) replaces the level-1
scans by one RE2 regex (``pyarrow.compute.match_substring_regex``); it is native, so the portable
scan stays the default; both give identical results (tested). Figures: ``bench/redact.py``.
"""

from __future__ import annotations

import ipaddress
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from operator import attrgetter
from typing import Any

from exashard.privacy import pii_patterns as P
from exashard.privacy.pii_checks import (
    _card_ok,
    _jwt_ok,
    base58check_ok,
    iban_ok,
    phone_shape,
    segwit_ok,
    ssn_ok,
)

ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IP_ADDRESS", "IBAN_CODE", "MAC_ADDRESS",
            "CRYPTO", "URL_CREDENTIALS", "SECRET")
# Overlap resolution: higher wins (validated by checksum > by structure > by heuristics).
_RANK = {"SECRET": 9, "URL_CREDENTIALS": 8, "CRYPTO": 7, "IBAN_CODE": 7, "CREDIT_CARD": 7, "EMAIL_ADDRESS": 6,
         "IP_ADDRESS": 5, "MAC_ADDRESS": 5, "US_SSN": 4, "PHONE_NUMBER": 3}


@dataclass(frozen=True, slots=True, init=False)
class Finding:
    entity: str
    start: int
    end: int

    def __init__(self, entity: str, start: int, end: int) -> None:
        # The generated frozen __init__ goes through object.__setattr__ per field; the slots'
        # own setters do the same at half the cost (a batch builds thousands of findings).
        _SET_ENTITY(self, entity)
        _SET_START(self, start)
        _SET_END(self, end)


_SET_ENTITY, _SET_START, _SET_END = Finding.entity.__set__, Finding.start.__set__, Finding.end.__set__  # type: ignore[attr-defined]

Cand = tuple[str, int, int]
_START = attrgetter("start")

def _trie(words: Iterable[str]) -> str:
    """A regex matching any of ``words``, factored by first character (CPython tries the
    alternatives of a plain ``a|b|c`` one by one at every position)."""
    by_first: dict[str, list[str]] = {}
    for w in sorted(set(words), key=len, reverse=True):
        by_first.setdefault(w[0], []).append(re.escape(w[1:]))
    return "|".join(f"{re.escape(c)}(?:{'|'.join(rest)})" for c, rest in by_first.items())


# Labels are matched on lower-cased text; a label must start a word (checked in code). No phone
# word is a prefix of an id-ish word or the reverse (tested), so one trie finds the same labels.
_LABELS = re.compile(_trie(P.PHONE_WORDS + P.NOT_PHONE_WORDS))
_LABEL_SIGN = {**{w: -1 for w in P.NOT_PHONE_WORDS}, **{w: 1 for w in P.PHONE_WORDS}}
_SSN_CTX = re.compile(_trie(P.SSN_WORDS))
_VERSION_CTX = re.compile(rf"(?<![a-z])(?:{_trie(P.VERSION_WORDS)})(?: to)?[ :=]*$")  # the word right before


def _before(text: str, start: int, window: int) -> str:
    """Up to ``window`` characters before ``start``, lower-cased, not reaching back past a NUL
    (the batch forms join texts with NUL)."""
    w = text[max(0, start - window) : start]
    return w[w.rfind("\0") + 1 :].lower()


def _label(w: str) -> int:
    """+1 if the last label in ``w`` is a phone word, -1 if an id-ish word, else 0."""
    last, low = 0, w.lower()
    for m in _LABELS.finditer(low):
        if not (m.start() and low[m.start() - 1].isalpha() and low[m.start() - 1].isascii()):
            last = _LABEL_SIGN[m.group()]
    return last


def _context(text: str, tb: bytes, start: int, window: int = 28) -> str:
    """The text up to ``window`` characters before ``start`` that a label for a number there may
    sit in: a label followed by another number belongs to that number, so it starts after the last
    digit (and after a NUL: the batch forms join texts with it)."""
    lo = max(0, start - window)
    return text[max(lo, tb.rfind(b"0", lo, start) + 1, tb.rfind(b"\0", lo, start) + 1) : start]


# Detectors take the text and its translation (``_translated``: one byte per character, so offsets
# carry over, every digit "0") and return their candidates in order of start. The digit-heavy ones
# search the translation: their patterns then start with the literal "0" (CPython jumps between
# digits with a fast byte search instead of testing a class at every character), and the layout
# checks (digit counts, separators) are byte counts and finds; digits are read from the text.
Detector = Callable[[str, bytes], list[Cand]]
_DIGIT_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")


def _translated(text: str) -> bytes:
    """``text`` as one byte per character: Latin-1 with every other character as "?" (no pattern
    run on it gives "?" or a character above U+00FF a meaning), U+202F as U+00A0 (both are phone
    separators), and every ASCII digit as "0"."""
    return text.replace("\u202f", "\xa0").encode("latin-1", "replace").translate(_DIGIT_TO_ZERO)


def _zeroed(pattern: str) -> re.Pattern[bytes]:
    """``pattern`` for the translation: its digit range ``0-9`` becomes the digit "0", and a fixed
    run of them a literal ("000"), which CPython can search for (it finds no prefix in a repeat)."""
    zeroed = re.sub(r"\[0-9\]\{(\d+)\}", lambda m: "0" * int(m[1]), pattern)
    return re.compile(zeroed.replace("0-9", "0").replace(r"\u00a0\u202f", r"\xa0").encode("ascii"))


_EMAIL_LOCAL = re.compile(P.EMAIL_LOCAL)
_EMAIL_DOMAIN = re.compile(P.EMAIL_DOMAIN)
_IPV6 = re.compile(P.IPV6)
_B58_ADDRESS = re.compile(P.BASE58_ADDRESS)
_ALNUM_AS_A = bytes(97 if chr(b).isascii() and chr(b).isalnum() else 46 for b in range(256))  # see _b58
_A26 = b"a" * 26
_IPV6_COLON = re.compile(r":(?=[0-9A-Fa-f]{0,4}:)")
_HEX = frozenset("0123456789ABCDEFabcdef")
_NOT_EMAIL = re.compile(r"[^\w.%+\-\u00c0-\u024f]")  # no character of a local part
_CARD, _SSN, _IPV4, _IBAN, _PHONE = map(_zeroed, (P.CARD, P.SSN, P.IPV4, P.IBAN, P.PHONE))
_ID_PUNCT = re.compile(rb"[\-./)]")
_PAREN_DIGIT = re.compile(rb"\(0(?!0)")  # a one-digit group after "("
_IBAN_TAKE = {cc: re.compile(rb"(?: ?[0A-Z]){%d}" % n) for cc, n in P.IBAN_LENGTHS.items()}  # see _iban


def _simple(entity: str, pattern: str, group: int = 0, ok: Callable[[re.Match[str]], bool] | None = None, flags: int = 0) -> Detector:
    """A detector returning ``group`` of each match of ``pattern`` that passes ``ok``."""
    rx = re.compile(pattern, flags)

    def detect(text: str, tb: bytes) -> list[Cand]:
        if ok is None:
            return [(entity, *m.span(group)) for m in rx.finditer(text)]
        return [(entity, *m.span(group)) for m in rx.finditer(text) if ok(m)]

    return detect


def _token_start(m: re.Match[str]) -> bool:
    c = m.string[m.start() - 1] if m.start() else " "
    return not (c.isascii() and (c.isalnum() or c in "_-"))


_url_creds = _simple("URL_CREDENTIALS", P.URL_CREDENTIALS, 1)
_mac = _simple("MAC_ADDRESS", P.MAC)
_bech32 = _simple("CRYPTO", P.BECH32_ADDRESS, ok=lambda m: segwit_ok(m.group()))
_tokens = _simple("SECRET", P.TOKENS, ok=_token_start)
_pem = _simple("SECRET", P.PEM, flags=re.S)
_jwt = _simple("SECRET", P.JWT, ok=lambda m: _jwt_ok(m.group()))
_aws_secret = _simple("SECRET", P.AWS_SECRET, 1)
_bearer = _simple("SECRET", P.BEARER, 1)


def _b58(text: str, tb: bytes) -> list[Cand]:
    # A base58 address is a whole run of 26-35 letters and digits. Runs of 26 or more are rare:
    # with every letter and digit as "a" and everything else as ".", bytes.find skips to them.
    out, runs = [], tb.translate(_ALNUM_AS_A)
    start = runs.find(_A26)
    while start >= 0:
        end = runs.find(b".", start)
        end = len(runs) if end < 0 else end
        if end - start <= 35 and _B58_ADDRESS.fullmatch(text, start, end) and base58check_ok(text[start:end]):
            out.append(("CRYPTO", start, end))
        start = runs.find(_A26, end)
    return out


def _email(text: str, tb: bytes) -> list[Cand]:
    # Anchored on "@" (fast literal search), then the local part is searched for backwards, from
    # the start of the run of characters an address can hold (a search over the whole window would
    # try, and backtrack from, every word in it).
    out, end = [], 0
    for m in _EMAIL_DOMAIN.finditer(text):
        at = m.start()
        lo = max(end, at - 130)
        before = text[lo:at][::-1]
        other = _NOT_EMAIL.search(before, before[:1] == "\n")  # "$" also matches before a final newline
        local = _EMAIL_LOCAL.search(text, at - other.start() if other else lo, at)
        if local:
            end = m.end()
            out.append(("EMAIL_ADDRESS", local.start(), end))
    return out


def _card(text: str, tb: bytes) -> list[Cand]:
    out, search = [], _CARD.search
    m = search(tb)
    while m:
        start, end = m.span()
        s = text[start:end]
        if m.start(1) < 0:  # one run of 13-19 digits
            ok = _card_ok(s)
            groups = [s]
        else:  # groups joined by one separator; drop trailing ones only when the whole run is no card layout ("... 1111 12/27")
            sep = text[m.start(1)]
            groups = s.split(sep)
            kept = groups[:-1] if text[end : end + 1] in ("-", "/", ".", ":") and text[end] != sep else groups  # "... 1111 123-45-6789": another token
            sizes = tuple(map(len, kept))
            k = next((k for k in range(len(kept), 2, -1) if sizes[:k] in P.CARD_LAYOUTS), 0)
            ok = k > 0 and _card_ok("".join(kept[:k]))
            end = start + sum(sizes[:k]) + k - 1
        if ok:
            out.append(("CREDIT_CARD", start, end))
            m = search(tb, end)  # a dropped group may start the next card
            continue
        # No card here. A short group ends some other number ("... 0130 00 4111 1111 ..."): look
        # again after it; never inside a run of full groups (a tracking number's tail is no card).
        pos = start
        for g in groups[:-1]:
            pos += len(g)
            if len(g) < 4:
                break
            pos += 1
        else:
            pos = m.end()
        m = search(tb, pos)
    return out


def _ssn(text: str, tb: bytes) -> list[Cand]:
    out = []
    for m in _SSN.finditer(tb):
        start, end = m.span()
        group = m.start(3)
        if ssn_ok(text[start : start + 3], text[group : group + 2], text[end - 4 : end]) and (
            m.end(2) > m.start(2) or _SSN_CTX.search(_before(text, start, 24))
        ):
            out.append(("US_SSN", start, end))
    return out


def _ipv4(text: str, tb: bytes) -> list[Cand]:
    out = []
    for m in _IPV4.finditer(tb):  # octets 0-255 without leading zeros, not right after "version"
        start, end = m.span()
        octets_ok = all(o == "0" or (o[0] != "0" and int(o) <= 255) for o in text[start:end].split("."))
        if octets_ok and not _VERSION_CTX.search(_before(text, start, 16)):
            out.append(("IP_ADDRESS", start, end))
    return out


def _ipv6(text: str, tb: bytes) -> list[Cand]:
    # The first colon of an address follows at most 4 hex digits and is followed by another within
    # 5 characters: search for such colons (fast literal search) and try the address regex from the
    # start of the hex digits before each, as a left-to-right finditer would (no address can start
    # inside them: the character before an address is no letter or digit).
    out, pos, search, match = [], 0, _IPV6_COLON.search, _IPV6.match
    colon = search(text)
    while colon:
        start = at = colon.start()
        while start > at - 4 and start > 0 and text[start - 1] in _HEX:
            start -= 1
        m = match(text, start) if start >= pos else None
        if m:
            tok = m.group()
            tok = tok[:-1] if tok.endswith(":") and not tok.endswith("::") else tok  # "at 2001:db8::1: down"
            try:  # without "::" an address has 8 groups, or 6 and an IPv4 (a time of day has neither)
                if len(tok) > 2 and ("::" in tok or tok.count(":") >= 6) and ipaddress.IPv6Address(tok):
                    out.append(("IP_ADDRESS", start, start + len(tok)))
            except ValueError:
                pass
            pos = m.end()
        colon = search(text, max(pos, at + 1))
    return out


def _iban(text: str, tb: bytes) -> list[Cand]:
    out, search = [], _IBAN.search  # matches start at the check digits, after the country code
    m = search(tb)
    while m:
        start = m.start() - 2
        pos = start + 1
        # The first `need` IBAN characters (single spaces between them): the regex may have run on
        # into the next word.
        take = _IBAN_TAKE.get(text[start : m.start()])
        head = take.match(tb, start, m.end()) if take else None
        if head and iban_ok(text[start : head.end()].replace(" ", "")):
            out.append(("IBAN_CODE", start, head.end()))
            pos = head.end()
        m = search(tb, pos + 2)
    return out


Plan = tuple[int, tuple[tuple[int, int], ...], int]


def _phone_plan(text: str, tb: bytes, m: re.Match[bytes], prefix: str | None) -> Plan:
    """What the candidate run ``m`` can hold, relative to its start: ``(shift, levels, resume)``.
    The phone would start at ``shift``; ``levels`` are the ``(end, shape)`` of the run and of its
    trimmed forms that may be a phone (see ``pii_checks.phone_shape``), longest first; ``resume`` is where
    to search again if none is. Without a prefix the plan depends only on the run's translation and
    on whether its first digit is 0, with one on its calling code too (``_phone_digits``), so
    ``_phone`` reuses it for runs laid out alike."""
    start, end = m.span()
    if tb.count(b"0", start, end) < 8:  # most runs are dates, times, prices: too few digits
        return 0, (), _phone_resume(tb, start, end) - start
    body_end = m.start(1) if m.start(1) >= 0 else end  # without the extension ("x123")
    body_at = start + len(prefix or "")
    shift = 1 if not prefix and tb[start] == 40 and tb.find(b")", start, body_end) < 0 else 0  # 40: "("
    body_at += shift
    lo, hi = (9, 12) if prefix is None else (8, 17)
    levels = []
    while True:  # the run may have swallowed a following number ("04 57 32 97 35 437"): trim it
        n = tb.count(b"0", body_at, body_end)
        if n < lo:  # trimming only loses digits
            break
        if n <= hi:
            shape = phone_shape(prefix, text[body_at:body_end])
            if shape >= 0:
                levels.append((end - start, shape))
                if shape == 2:
                    break
        cut = tb.rfind(b" ", body_at, body_end)
        if cut <= body_at:
            break
        body_end = end = body_at + len(tb[body_at:cut].rstrip(b" (-/."))
    return shift, tuple(levels), _phone_resume(tb, *m.span()) - start


def _phone_digits(text: str, tb: bytes, body_at: int, end: int) -> tuple[str, tuple[bool, ...]]:
    """What a prefixed run's plan depends on beyond its layout: its calling code (from the first
    three digits, not counting a trunk "(0)"; "" if none) and which one-digit groups after "(" are
    a trunk 0 (see pii_checks.phone_shape)."""
    paren = [m.start() + 1 for m in _PAREN_DIGIT.finditer(tb, body_at, end)]
    trunk = [text[p] == "0" for p in paren]
    digits, pos = "", tb.find(b"0", body_at, end)
    while pos >= 0 and len(digits) < 3:
        if pos not in paren or text[pos] != "0":
            digits += text[pos]
        pos = tb.find(b"0", pos + 1, end)
    cc = next((digits[:n] for n in (1, 2, 3) if digits[:n] in P.CALLING_CODES), "")
    return cc, tuple(trunk)


def _phone_resume(tb: bytes, start: int, end: int) -> int:
    """Where to search again after a run that holds no phone: after its first space-separated
    chunk if that chunk is a self-contained number ("123-45-6789 (202) 555-0143"), or at a later
    chunk that opens like a phone ("+", "("); never inside a plain digit-group run like a card."""
    first = tb.find(b" ", start, end)
    if first < 0:
        return end
    if _ID_PUNCT.search(tb, start, first):
        return first + 1
    opens = [i for i in (tb.find(b" +", first, end), tb.find(b" (", first, end)) if i >= 0]
    return min(opens) + 1 if opens else end


def _phone(text: str, tb: bytes) -> list[Cand]:
    out, search = [], _PHONE.search
    national: dict[tuple[bytes, bool], Plan] = {}  # plans shared by runs laid out alike (_phone_plan)
    prefixed: dict[tuple[bytes, str, str, tuple[bool, ...]], Plan] = {}
    labels: dict[str, int] = {}  # the label before a run, by the text it is read from
    m = search(tb)
    while m:
        start, end = m.span()
        if tb[start] == 43 or (tb[start + 2] == 48 and text.startswith("00", start)):  # 43: "+"
            prefix = "+" if tb[start] == 43 else "00"
            pkey = (m.group(), prefix, *_phone_digits(text, tb, start + len(prefix), end))
            plan = prefixed.get(pkey)  # type: ignore[assignment]
            if plan is None:
                plan = prefixed[pkey] = _phone_plan(text, tb, m, prefix)
        else:
            key = (m.group(), text[tb.find(b"0", start, end)] == "0")
            plan = national.get(key)  # type: ignore[assignment]
            if plan is None:
                plan = national[key] = _phone_plan(text, tb, m, None)
        shift, levels, resume = plan
        ctx = None
        for stop, shape in levels:  # 2: a phone; 1: unless an id-ish label precedes; 0: only after a phone word
            if shape < 2 and ctx is None:
                w = _context(text, tb, start + shift)
                ctx = labels.get(w)
                if ctx is None:
                    ctx = labels[w] = _label(w)
            if shape == 2 or ctx + shape > 0:  # type: ignore[operator]
                out.append(("PHONE_NUMBER", start + shift, start + stop))
                m = search(tb, start + stop)
                break
        else:
            m = search(tb, start + resume)
    return out


# Level 1: (trigger, the detectors it gates), scanned over the translation of the texts (see
# pii_patterns). Every match of a gated detector contains a hit of one of its
# triggers, so skipping a text whose triggers did not fire loses nothing (the tests compare against
# running every detector on every text). A literal is searched for with ``bytes.find``; a regex
# runs on to the next NUL, so that one finditer over the joined texts yields one hit per text.
_TRIGGERS: tuple[tuple[bytes | re.Pattern[bytes], tuple[Detector, ...]], ...] = tuple(
    (t if isinstance(t, bytes) else re.compile(t[0] + rb"[^\0]*"), ds) for t, ds in (
        ((P.TRIGGER_DIGITS,), (_phone, _card, _ssn, _iban, _b58, _ipv4, _bech32)),
        ((P.TRIGGER_COLON,), (_ipv6, _mac, _url_creds)),
        ((P.TRIGGER_DASH,), (_mac, _pem, _tokens)),
        ((P.TRIGGER_DOT,), (_mac,)),
        ((P.TRIGGER_UNDERSCORE,), (_tokens,)),
        ((P.TRIGGER_A,), (_tokens,)),
        ((rb"J(?<=eyJ)",), (_jwt,)),
        (b"@", (_email,)),
        (b"ecret", (_aws_secret,)),
        (b"ECRET", (_aws_secret,)),
        (b"earer", (_bearer,)),
    )
)
# Level 2: for a detector that shares its level-1 trigger, triggers of its own, run over the texts
# level 1 sent to it (any hit keeps a text).
_NARROW: dict[Detector, tuple[re.Pattern[bytes], ...]] = {
    det: tuple(re.compile(t + rb"[^\0]*") for t in ts)
    for det, ts in ((_ipv4, P.NARROW_IPV4), (_bech32, P.NARROW_BECH32), (_mac, P.NARROW_MAC))
}
_DETECTOR_ENTITY: dict[Detector, str] = {
    _email: "EMAIL_ADDRESS", _phone: "PHONE_NUMBER", _card: "CREDIT_CARD", _ssn: "US_SSN", _ipv4: "IP_ADDRESS",
    _ipv6: "IP_ADDRESS", _iban: "IBAN_CODE", _mac: "MAC_ADDRESS", _b58: "CRYPTO", _bech32: "CRYPTO",
    _url_creds: "URL_CREDENTIALS", _tokens: "SECRET", _pem: "SECRET", _jwt: "SECRET", _aws_secret: "SECRET",
    _bearer: "SECRET",
}


def _resolve(found: list[Finding]) -> list[Finding]:
    """Non-overlapping findings: stronger entity first, then longer span, then earlier start."""
    if len(found) == 2:  # the common case, spelled out
        a, b = found
        if a.end <= b.start:
            return found
        if b.end <= a.start:
            return [b, a]
    if len(found) > 1:
        found.sort(key=_START)
        if any(a.end > b.start for a, b in zip(found, found[1:])):  # some overlap (spans are never empty)
            found.sort(key=lambda f: (-_RANK[f.entity], f.start - f.end, f.start))
            kept: list[Finding] = []
            for f in found:
                if all(f.end <= k.start or f.start >= k.end for k in kept):
                    kept.append(f)
            found = sorted(kept, key=_START)
    return found


def _apply(text: str, findings: Sequence[Finding]) -> str:
    if not findings:
        return text
    out, pos = [], 0
    for f in findings:
        out += (text[pos : f.start], "<", f.entity, ">")
        pos = f.end
    out.append(text[pos:])
    return "".join(out)


def _as_texts(items: list[str | None]) -> list[str]:
    """The texts with ``""`` for a null; a TypeError names the first text that is no str."""
    for i, t in enumerate(items):
        if t is not None and not isinstance(t, str):
            raise TypeError(f"texts[{i}] is {type(t).__name__}, expected str")
    return ["" if t is None else t for t in items]


def _hit(buf: bytes, trigger: bytes | re.Pattern[bytes], pos: int) -> int:
    if isinstance(trigger, bytes):
        return buf.find(trigger, pos)
    m = trigger.search(buf, pos)
    return m.start() if m else -1


def _offsets(texts: Sequence[str | bytes]) -> list[int]:
    """Where each text starts once the texts are joined by NUL, and where the next one would."""
    return list(accumulate(map((1).__add__, map(len, texts)), initial=0))


class _Joined:
    """Some of a batch's texts joined by NUL, the translation of that, and where each text starts."""

    __slots__ = ("idxs", "text", "tb", "offsets")

    def __init__(self, texts: list[str], tb: bytes, starts: list[int], idxs: list[int]) -> None:
        """``tb`` and ``starts``: the translation of all ``texts`` joined by NUL, and their offsets."""
        sub = [texts[i] for i in idxs]
        self.idxs, self.text, self.offsets = idxs, "\0".join(sub), _offsets(sub)
        self.tb = tb if len(idxs) == len(texts) else b"\0".join([tb[starts[i] : starts[i + 1] - 1] for i in idxs])

    def narrow(self, triggers: tuple[re.Pattern[bytes], ...]) -> list[int]:
        """The indexes of the texts where one of ``triggers`` hits."""
        ks = {bisect_right(self.offsets, m.start()) - 1 for t in triggers for m in t.finditer(self.tb)}
        return [self.idxs[k] for k in sorted(ks)]


class Redactor:
    """``entities``: the names to detect (default :data:`ENTITIES`); ``prefilter``: ``"python"``
    (portable default) or ``"arrow"`` (RE2 through pyarrow.compute, for the batch forms)."""

    __slots__ = ("entities", "_triggers", "_prefilter")

    def __init__(self, entities: Iterable[str] | None = None, *, prefilter: str = "python") -> None:
        chosen = frozenset(ENTITIES if entities is None else entities)
        unknown = chosen - set(ENTITIES)
        if unknown:
            raise ValueError(f"unknown entities {sorted(unknown)}; known: {', '.join(ENTITIES)}")
        if prefilter not in ("python", "arrow"):
            raise ValueError(f"prefilter must be 'python' or 'arrow', not {prefilter!r}")
        self.entities = chosen
        self._prefilter = prefilter
        gated = ((t, tuple(d for d in ds if _DETECTOR_ENTITY[d] in chosen)) for t, ds in _TRIGGERS)
        self._triggers = tuple((t, ds) for t, ds in gated if ds)

    def _detect(self, text: str, detectors: Iterable[Detector]) -> list[Finding]:
        tb = _translated(text)
        return _resolve([Finding(*c) for det in detectors for c in det(text, tb)])

    def find(self, text: str) -> list[Finding]:
        """Sorted, non-overlapping findings in ``text``."""
        if not isinstance(text, str):
            raise TypeError(f"text is {type(text).__name__}, expected str")
        tb = _translated(text)
        fired = {det for trig, dets in self._triggers if _hit(tb, trig, 0) >= 0 for det in dets}
        if not fired:
            return []
        fired = {det for det in fired if det not in _NARROW or any(t.search(tb) for t in _NARROW[det])}
        return _resolve([Finding(*c) for det in fired for c in det(text, tb)])

    def redact(self, text: str) -> str:
        """``text`` with each finding replaced by ``<ENTITY>``."""
        return _apply(text, self.find(text))

    def redact_with_counts(self, text: str) -> tuple[str, dict[str, int]]:
        """``(redacted text, {entity: count})``: counts for statistics, never the values."""
        findings = self.find(text)
        return _apply(text, findings), dict(Counter(f.entity for f in findings))

    def find_batch(self, texts: Any) -> list[list[Finding]]:
        """``find`` over a list of ``str`` or a pyarrow string array (nulls give ``[]``)."""
        items, hits = self._hits(texts)
        out: list[list[Finding]] = [[] for _ in items]
        for i, found in hits:
            out[i] = found
        return out

    def redact_batch(self, texts: Any) -> list[str | None]:
        """``redact`` over a list of ``str`` or a pyarrow string array (nulls stay ``None``)."""
        items, hits = self._hits(texts)
        out = list(items)
        for i, found in hits:
            out[i] = _apply(items[i], found)  # type: ignore[arg-type]
        return out

    def _hits(self, texts: Any) -> tuple[list[str | None], list[tuple[int, list[Finding]]]]:
        """The texts as a list, and ``(index, findings)`` for the texts that have findings."""
        items = texts.to_pylist() if hasattr(texts, "to_pylist") else texts
        items = items if isinstance(items, list) else list(items)
        keep = self._arrow_candidates(texts, items) if self._prefilter == "arrow" else None
        if keep is None:
            return items, self._batch(items)
        return items, [(keep[j], found) for j, found in self._batch([items[i] for i in keep])]

    def _batch(self, items: list[str | None]) -> list[tuple[int, list[Finding]]]:
        try:  # fast path: all str
            texts, joined = items, "\0".join(items)  # type: ignore[arg-type]
        except TypeError:
            texts = _as_texts(items)
            joined = "\0".join(texts)
        tb, starts = _translated(joined), _offsets(texts)
        found: dict[int, list[Finding]] = {}
        subs: dict[tuple[int, ...], _Joined] = {}  # detectors sent the same texts share one joining
        for det, idxs in self._scan(tb, starts).items():
            if det is _pem:  # its ".*?" could run past a NUL: run it text by text (it is rare)
                for i in idxs:
                    found.setdefault(i, []).extend(Finding(*c) for c in det(texts[i], tb[starts[i] : starts[i + 1] - 1]))  # type: ignore[arg-type]
                continue
            # One call over the flagged texts joined by NUL (no pattern crosses one): the per-call
            # overhead is paid once per detector instead of once per text and detector.
            key = tuple(idxs)
            sub = subs.get(key) or subs.setdefault(key, _Joined(texts, tb, starts, idxs))  # type: ignore[arg-type]
            if det in _NARROW:
                idxs = sub.narrow(_NARROW[det])
                key = tuple(idxs)
                sub = subs.get(key) or subs.setdefault(key, _Joined(texts, tb, starts, idxs))  # type: ignore[arg-type]
            text, sub_tb, offsets = sub.text, sub.tb, sub.offsets
            for entity, s, e in det(text, sub_tb):
                k = bisect_right(offsets, s) - 1
                at, i = offsets[k], idxs[k]
                if i in found:
                    found[i].append(Finding(entity, s - at, e - at))
                else:
                    found[i] = [Finding(entity, s - at, e - at)]
        return [(i, f if len(f) == 1 else _resolve(f)) for i, f in found.items()]

    def _scan(self, tb: bytes, starts: list[int]) -> dict[Detector, list[int]]:
        """Run every level-1 trigger once over the translated texts joined by NUL; return, for each
        detector, the sorted indexes of the texts where one of its triggers fired."""
        nul_inside = tb.count(b"\0") >= len(starts) - 1  # a text holds a NUL: a trigger may hit it twice
        by_det: dict[Detector, list[int]] = {}
        for trig, dets in self._triggers:
            if isinstance(trig, bytes):
                hits, pos = [], tb.find(trig)
                while pos >= 0:
                    hits.append(i := bisect_right(starts, pos) - 1)
                    pos = tb.find(trig, starts[i + 1])  # the rest of this text cannot add anything
            else:
                hits = [bisect_right(starts, m.start()) - 1 for m in trig.finditer(tb)]
                if nul_inside:
                    hits = sorted(set(hits))
            for det in dets:
                by_det[det] = sorted({*by_det[det], *hits}) if det in by_det else hits
        return by_det

    def _arrow_candidates(self, texts: Any, items: list[str | None]) -> list[int] | None:
        """Indexes of the texts the RE2 trigger matches; None if Arrow cannot hold the texts (lone
        surrogates), and the Python scan takes over."""
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            arr = texts if isinstance(texts, pa.Array | pa.ChunkedArray) else pa.array(items, pa.string())
        except (pa.ArrowException, UnicodeEncodeError):  # lone surrogates, or not str
            return None
        mask = pc.fill_null(pc.match_substring_regex(arr, P.ARROW_TRIGGER), False)
        return pc.indices_nonzero(mask).to_pylist()
