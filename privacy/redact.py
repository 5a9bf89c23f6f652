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
the detector hits (7 digits with separators, ``d.d.d.d``, ``:h:``/``::``/``://``, ``@``, ``eyJ``,
``AKIA``, ``secret``...), run over UTF-8 with every digit made ``0``: each regex then starts with one
literal character and CPython skips ahead with its fast substring search instead of testing a class
at every position (the digit scan went from ~150 to ~600 MB/s). The batch forms join the texts with
NUL (no pattern crosses one), scan once per trigger, map hits back by bisection, then run each
detector *once* over the flagged texts joined again, so call overhead is paid per detector rather
than per text; a clean text costs no Python-level work. ``prefilter="arrow"`` (opt-in) replaces the
scans by one RE2 regex (``pyarrow.compute.match_substring_regex``); it is native, so the portable
scan stays the default; both give identical results (tested). Figures: ``bench/redact.py``.
"""

from __future__ import annotations

import ipaddress
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from exashard.privacy import pii_patterns as P
from exashard.privacy.pii_checks import (
    _card_ok,
    _jwt_ok,
    base58check_ok,
    iban_ok,
    segwit_ok,
    ssn_ok,
)

ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IP_ADDRESS", "IBAN_CODE", "MAC_ADDRESS",
            "CRYPTO", "URL_CREDENTIALS", "SECRET")
# Overlap resolution: higher wins (validated by checksum > by structure > by heuristics).
_RANK = {"SECRET": 9, "URL_CREDENTIALS": 8, "CRYPTO": 7, "IBAN_CODE": 7, "CREDIT_CARD": 7, "EMAIL_ADDRESS": 6,
         "IP_ADDRESS": 5, "MAC_ADDRESS": 5, "US_SSN": 4, "PHONE_NUMBER": 3}


@dataclass(frozen=True, slots=True)
class Finding:
    entity: str
    start: int
    end: int


Cand = tuple[str, int, int]

def _trie(words: Iterable[str]) -> str:
    """A regex matching any of ``words``, factored by first character (CPython tries the
    alternatives of a plain ``a|b|c`` one by one at every position)."""
    by_first: dict[str, list[str]] = {}
    for w in sorted(set(words), key=len, reverse=True):
        by_first.setdefault(w[0], []).append(re.escape(w[1:]))
    return "|".join(f"{re.escape(c)}(?:{'|'.join(rest)})" for c, rest in by_first.items())


# Labels are matched on lower-cased text; a label must start a word (checked in code).
_CTX = re.compile(f"({_trie(P.PHONE_WORDS)})|({_trie(P.NOT_PHONE_WORDS)})")
_SSN_CTX = re.compile(_trie(P.SSN_WORDS))
_VERSION_CTX = re.compile(rf"(?<![a-z])(?:{_trie(P.VERSION_WORDS)})(?: to)?[ :=]*$")  # the word right before
_LAST_DIGIT = re.compile(r".*[0-9]", re.S)


def _before(text: str, start: int, window: int) -> str:
    """Up to ``window`` characters before ``start``, lower-cased, not reaching back past a NUL
    (the batch forms join texts with NUL)."""
    w = text[max(0, start - window) : start]
    return w[w.rfind("\0") + 1 :].lower()


def _context(text: str, start: int, window: int = 28) -> int:
    """+1 if the nearest label before ``start`` is a phone word, -1 if an id-ish word, else 0. A
    label followed by another number belongs to that number, so the window starts after it."""
    w = _before(text, start, window)
    m = _LAST_DIGIT.match(w)
    w = w[m.end() :] if m else w
    last = 0
    for m in _CTX.finditer(w):
        if not (m.start() and w[m.start() - 1].isalpha() and w[m.start() - 1].isascii()):
            last = 1 if m.group(1) else -1
    return last


Detector = Callable[[str], Iterator[Cand]]
_DIGITS = re.compile(r"[0-9]+")
_EIGHT_DIGITS = re.compile(r"(?:[^0-9]*[0-9]){8}")
_EXTENSION = re.compile(r" ?(?:x|ext\.?|#) ?[0-9]{1,6}$")
_EMAIL_LOCAL = re.compile(P.EMAIL_LOCAL)
_EMAIL_DOMAIN = re.compile(P.EMAIL_DOMAIN)
_CARD, _SSN, _IPV4, _IPV6, _IBAN, _PHONE = map(re.compile, (P.CARD, P.SSN, P.IPV4, P.IPV6, P.IBAN, P.PHONE))


def _simple(entity: str, pattern: str, group: int = 0, ok: Callable[[re.Match[str]], bool] | None = None, flags: int = 0) -> Detector:
    """A detector yielding ``group`` of each match of ``pattern`` that passes ``ok``."""
    rx = re.compile(pattern, flags)

    def detect(text: str) -> Iterator[Cand]:
        for m in rx.finditer(text):
            if ok is None or ok(m):
                yield entity, m.start(group), m.end(group)

    return detect


def _token_start(m: re.Match[str]) -> bool:
    c = m.string[m.start() - 1] if m.start() else " "
    return not (c.isascii() and (c.isalnum() or c in "_-"))


_url_creds = _simple("URL_CREDENTIALS", P.URL_CREDENTIALS, 1)
_mac = _simple("MAC_ADDRESS", P.MAC)
_b58 = _simple("CRYPTO", P.BASE58_ADDRESS, ok=lambda m: base58check_ok(m.group()))
_bech32 = _simple("CRYPTO", P.BECH32_ADDRESS, ok=lambda m: segwit_ok(m.group()))
_tokens = _simple("SECRET", P.TOKENS, ok=_token_start)
_pem = _simple("SECRET", P.PEM, flags=re.S)
_jwt = _simple("SECRET", P.JWT, ok=lambda m: _jwt_ok(m.group()))
_aws_secret = _simple("SECRET", P.AWS_SECRET, 1)
_bearer = _simple("SECRET", P.BEARER, 1)


def _email(text: str) -> Iterator[Cand]:
    end = 0  # anchored on "@" (fast literal search), then the local part is read backwards
    for m in _EMAIL_DOMAIN.finditer(text):
        local = _EMAIL_LOCAL.search(text, max(end, m.start() - 130), m.start())
        if local:
            end = m.end()
            yield "EMAIL_ADDRESS", local.start(), end


def _card(text: str) -> Iterator[Cand]:
    m = _CARD.search(text)
    while m:
        s, end = m.group(), m.end()
        groups = _DIGITS.findall(s)
        if len(groups) == 1:
            ok = 13 <= len(s) <= 19 and _card_ok(s)
        else:  # drop trailing groups only when the whole run is no card layout ("... 1111 12/27")
            after = text[end : end + 1]
            if after and after in "-/.:" and after != m.group(1):  # "... 1111 123-45-6789": another token
                groups.pop()
            sizes = tuple(map(len, groups))
            k = next((k for k in range(len(groups), 2, -1) if sizes[:k] in P.CARD_LAYOUTS), 0)
            ok = k > 0 and _card_ok("".join(groups[:k]))
            end = m.start() + sum(sizes[:k]) + k - 1
        if ok:
            yield "CREDIT_CARD", m.start(), end
            m = _CARD.search(text, end)  # a dropped group may start the next card
            continue
        # No card here. A short group ends some other number ("... 0130 00 4111 1111 ..."): look
        # again after it; never inside a run of full groups (a tracking number's tail is no card).
        nxt = next((g.end() for g in list(_DIGITS.finditer(s))[:-1] if len(g.group()) < 4), None)
        m = _CARD.search(text, m.start() + nxt if nxt else m.end())


def _ssn(text: str) -> Iterator[Cand]:
    for m in _SSN.finditer(text):
        if ssn_ok(m.group(1), m.group(3), m.group(4)) and (m.group(2) or _SSN_CTX.search(_before(text, m.start(), 24))):
            yield "US_SSN", m.start(), m.end()


def _ipv4(text: str) -> Iterator[Cand]:
    for m in _IPV4.finditer(text):  # octets 0-255 without leading zeros, not right after "version"
        octets_ok = all(o == "0" or (o[0] != "0" and int(o) <= 255) for o in m.group().split("."))
        if octets_ok and not _VERSION_CTX.search(_before(text, m.start(), 16)):
            yield "IP_ADDRESS", m.start(), m.end()


def _ipv6(text: str) -> Iterator[Cand]:
    for m in _IPV6.finditer(text):
        tok = m.group()
        tok = tok[:-1] if tok.endswith(":") and not tok.endswith("::") else tok  # "at 2001:db8::1: down"
        try:
            if len(tok) > 2 and tok.count(":") > 1 and ipaddress.IPv6Address(tok):
                yield "IP_ADDRESS", m.start(), m.start() + len(tok)
        except ValueError:
            pass


def _iban(text: str) -> Iterator[Cand]:
    m = _IBAN.search(text)
    while m:
        s, pos = m.group(), m.start() + 1
        need = P.IBAN_LENGTHS.get(s[:2], 99)
        compact, end = [], m.start()
        for ch in s:  # the first `need` IBAN characters: the regex may have run on into the next word
            if len(compact) == need:
                break
            end += 1
            if ch != " ":
                compact.append(ch)
        if iban_ok("".join(compact)):
            yield "IBAN_CODE", m.start(), end
            pos = end
        m = _IBAN.search(text, pos)


def _phone_shape(prefix: str | None, body: str) -> int:
    """How far the digits' layout alone decides: 2 a phone whatever the context, 1 a phone unless
    an id-ish label precedes, 0 only after a phone word, -1 not a phone."""
    groups = _DIGITS.findall(body)
    if not 8 <= sum(map(len, groups)) <= 17:  # cheap first: most candidates are dates, prices...
        return -1
    body = body.replace("\u00a0", " ").replace("\u202f", " ")
    seps = _DIGITS.split(body)
    if seps[0] not in ("", "(") or seps[-1] or not all(s in P.PHONE_SEPS for s in seps[1:-1]):
        return -1
    if body.count("(") != body.count(")") or body.count("(") > 2:
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


def _phone_span(text: str, m: re.Match[str]) -> tuple[int, int] | None:
    start, body = m.start(), m.group()
    if not _EIGHT_DIGITS.match(body):  # most runs are dates, times, prices: too few digits
        return None
    ext = _EXTENSION.search(body)
    if ext:
        body = body[: ext.start()]
    prefix = "+" if body[0] == "+" else "00" if body.startswith("00") and body[2:3].isdigit() else None
    body_at = start + len(prefix or "")
    body = body[len(prefix or "") :]
    if not prefix and body.startswith("(") and ")" not in body:
        body, start, body_at = body[1:], start + 1, body_at + 1
    end, ctx = m.end(), None
    while body:  # the run may have swallowed a following number ("04 57 32 97 35 437"): trim it
        shape = _phone_shape(prefix, body)
        if shape >= 0 and shape < 2 and ctx is None:
            ctx = _context(text, start)
        if shape == 2 or (shape == 1 and ctx >= 0) or (shape == 0 and ctx > 0):  # type: ignore[operator]
            return start, end
        cut = body.rfind(" ")
        body = body[:cut].rstrip(" (-/.") if cut > 0 else ""
        end = body_at + len(body)
    return None


def _phone_resume(m: re.Match[str]) -> int:
    """Where to search again after a run that holds no phone: after its first space-separated
    chunk if that chunk is a self-contained number ("123-45-6789 (202) 555-0143"), or at a later
    chunk that opens like a phone ("+", "("); never inside a plain digit-group run like a card."""
    s = m.group()
    first = s.find(" ")
    if first > 0 and any(c in s[:first] for c in "-./)"):
        return m.start() + first + 1
    opens = [i for i in (s.find(" +", first), s.find(" (", first)) if i >= 0]
    return m.start() + min(opens) + 1 if first >= 0 and opens else m.end()


def _phone(text: str) -> Iterator[Cand]:
    m = _PHONE.search(text)
    while m:
        span = _phone_span(text, m)
        if span:
            yield "PHONE_NUMBER", *span
        m = _PHONE.search(text, span[1] if span else _phone_resume(m))


_DIGIT_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
# (trigger, the detectors it gates), scanned over UTF-8 with every digit made "0" (see
# pii_patterns). A trigger is a literal (substring search) or a compiled regex; every match of a
# gated detector contains a hit of its trigger, so skipping a text whose trigger did not fire
# loses nothing (the tests compare against running every detector on every text).
_TRIGGERS: tuple[tuple[bytes | re.Pattern[bytes], tuple[Detector, ...]], ...] = (
    (re.compile(P.TRIGGER_DIGITS), (_phone, _card, _ssn, _iban, _ipv4, _b58, _bech32)),
    (re.compile(P.TRIGGER_COLON), (_ipv6, _mac, _url_creds)),
    (re.compile(P.TRIGGER_DASH), (_mac, _pem, _tokens)),
    (re.compile(P.TRIGGER_DOT), (_mac,)),
    (re.compile(P.TRIGGER_UNDERSCORE), (_tokens,)),
    (re.compile(P.TRIGGER_A), (_tokens,)),
    (re.compile(P.TRIGGER_J), (_jwt,)),
    (b"@", (_email,)),
    (b"ecret", (_aws_secret,)),
    (b"ECRET", (_aws_secret,)),
    (b"earer", (_bearer,)),
)
_DETECTOR_ENTITY: dict[Detector, str] = {
    _email: "EMAIL_ADDRESS", _phone: "PHONE_NUMBER", _card: "CREDIT_CARD", _ssn: "US_SSN", _ipv4: "IP_ADDRESS",
    _ipv6: "IP_ADDRESS", _iban: "IBAN_CODE", _mac: "MAC_ADDRESS", _b58: "CRYPTO", _bech32: "CRYPTO",
    _url_creds: "URL_CREDENTIALS", _tokens: "SECRET", _pem: "SECRET", _jwt: "SECRET", _aws_secret: "SECRET",
    _bearer: "SECRET",
}


def _next_hit(buf: bytes, trigger: bytes | re.Pattern[bytes], pos: int) -> int:
    if isinstance(trigger, bytes):
        return buf.find(trigger, pos)
    m = trigger.search(buf, pos)
    return m.start() if m else -1


def _resolve(cands: list[Cand]) -> list[Finding]:
    """Non-overlapping findings: stronger entity first, then longer span, then earlier start."""
    if len(cands) > 1:
        cands.sort(key=lambda c: (-_RANK[c[0]], c[1] - c[2], c[1]))
        kept: list[Cand] = []
        for c in cands:
            if all(c[2] <= k[1] or c[1] >= k[2] for k in kept):
                kept.append(c)
        cands = sorted(kept, key=lambda c: c[1])
    return [Finding(*c) for c in cands]


def _apply(text: str, findings: Sequence[Finding]) -> str:
    if not findings:
        return text
    out, pos = [], 0
    for f in findings:
        out += (text[pos : f.start], "<", f.entity, ">")
        pos = f.end
    out.append(text[pos:])
    return "".join(out)


def _encode(items: list[str | None]) -> list[bytes]:
    """UTF-8 of each text (``b""`` for a null); a TypeError names the first text that is no str."""
    try:  # fast path: all str (bytes and None have no .encode)
        return [t.encode("utf-8", "surrogatepass") for t in items]  # type: ignore[union-attr]
    except AttributeError:
        pass
    for i, t in enumerate(items):
        if t is not None and not isinstance(t, str):
            raise TypeError(f"texts[{i}] is {type(t).__name__}, expected str")
    return [b"" if t is None else t.encode("utf-8", "surrogatepass") for t in items]


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
        return _resolve([c for det in detectors for c in det(text)])

    def find(self, text: str) -> list[Finding]:
        """Sorted, non-overlapping findings in ``text``."""
        if not isinstance(text, str):
            raise TypeError(f"text is {type(text).__name__}, expected str")
        buf = text.encode("utf-8", "surrogatepass").translate(_DIGIT_TO_ZERO)
        fired = {det for trig, dets in self._triggers if _next_hit(buf, trig, 0) >= 0 for det in dets}
        return self._detect(text, fired) if fired else []

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
        cands: dict[int, list[Cand]] = {}
        for det, idxs in self._scan(items).items():
            if det is _pem:  # its ".*?" could run past a NUL: run it text by text (it is rare)
                for i in idxs:
                    cands.setdefault(i, []).extend(det(items[i]))  # type: ignore[arg-type]
                continue
            # One call over the flagged texts joined by NUL (no pattern crosses one): the per-call
            # overhead is paid once per detector instead of once per text and detector.
            sub = [items[i] for i in idxs]
            starts = list(accumulate(map((1).__add__, map(len, sub)), initial=0))  # type: ignore[arg-type]
            for entity, s, e in det("\0".join(sub)):  # type: ignore[arg-type]
                k = bisect_right(starts, s) - 1
                cands.setdefault(idxs[k], []).append((entity, s - starts[k], e - starts[k]))
        return [(i, _resolve(c)) for i, c in sorted(cands.items())]

    def _scan(self, items: list[str | None]) -> dict[Detector, list[int]]:
        """Run every trigger once over the texts joined by NUL (digits made "0"); return, for each
        detector, the sorted indexes of the texts where one of its triggers fired."""
        encoded = _encode(items)
        buf = b"\0".join(encoded).translate(_DIGIT_TO_ZERO)
        starts = list(accumulate(map((1).__add__, map(len, encoded)), initial=0))
        by_det: dict[Detector, list[int]] = {}
        for trig, dets in self._triggers:
            hits, pos = [], _next_hit(buf, trig, 0)
            while pos >= 0:
                hits.append(i := bisect_right(starts, pos) - 1)
                pos = _next_hit(buf, trig, starts[i + 1])  # the rest of this text cannot add anything
            for det in dets:
                by_det.setdefault(det, []).extend(hits)
        return {det: sorted(set(idxs)) for det, idxs in by_det.items()}

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
