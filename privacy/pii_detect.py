"""The PII detectors behind :class:`exashard.privacy.redact.Redactor`, one function per
entity family: each takes a text and its translation (:func:`_translated`: one byte per
character, every ASCII digit as ``0``) and returns candidate spans ``(entity, start, end)``.
Which detectors run on which text, overlap resolution and the batch forms live in
``redact.py``; patterns and word lists in ``pii_patterns.py``; checksums in ``pii_checks.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from exashard.privacy import pii_patterns as P
from exashard.privacy.pii_checks import (
    _card_ok,
    _jwt_ok,
    base58check_ok,
    iban_ok,
    ipv6_ok,
    phone_shape,
    segwit_ok,
    ssn_ok,
)

Cand = tuple[str, int, int]


def _trie(words: Iterable[str]) -> str:
    """A regex matching any of ``words``, factored by first character (CPython tries the
    alternatives of a plain ``a|b|c`` one by one at every position)."""
    by_first: dict[str, list[str]] = {}
    for w in sorted(set(words), key=len, reverse=True):
        by_first.setdefault(w[0], []).append(re.escape(w[1:]))
    return "|".join(f"{re.escape(c)}(?:{'|'.join(rest)})" for c, rest in by_first.items())


# Labels are matched on lower-cased text and must start a word (no ASCII letter before). No phone
# word is a prefix of an id-ish word or the reverse (tested), so one trie finds the same labels.
_LABELS = re.compile(f"(?<![a-z])(?:{_trie(P.PHONE_WORDS + P.NOT_PHONE_WORDS)})")
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
    found = _LABELS.findall(w.lower())
    return _LABEL_SIGN[found[-1]] if found else 0


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
_CARD, _SSN, _IPV4, _PHONE = map(_zeroed, (P.CARD, P.SSN, P.IPV4, P.PHONE))
_IBAN = re.compile(P.IBAN)
_CAPITAL_AS_A = bytes.maketrans(bytes(range(65, 91)), b"A" * 26)
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"  # 0-255, no leading zero
_OCTETS = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_ID_PUNCT = re.compile(rb"[\-./)]")
_PAREN_DIGIT = re.compile(rb"\(0(?!0)")  # a one-digit group after "("
_IBAN_TAKE = {cc: re.compile(rb"(?: ?[0A]){%d}" % n) for cc, n in P.IBAN_LENGTHS.items()}  # see _iban


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
        if end - start <= 35 and text[start] in "13" and _B58_ADDRESS.fullmatch(text, start, end) and base58check_ok(text[start:end]):
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
    layouts: dict[tuple[bytes, bool], tuple[int, int]] = {}  # see _card_layout
    m = search(tb)
    while m:
        start, end = m.span()
        if m.start(1) < 0:  # one run of 13-19 digits
            if _card_ok(text[start:end]):
                out.append(("CREDIT_CARD", start, end))
            m = search(tb, end)
            continue
        # Groups joined by one separator: what the run can hold depends only on its layout and on
        # whether a delimiter other than the separator follows it.
        sep = text[m.start(1)]
        after = text[end : end + 1]
        key = (m.group(), after in ("-", "/", ".", ":") and after != sep)
        layout = layouts.get(key)
        if layout is None:
            layout = layouts[key] = _card_layout(*key)
        size, resume = layout
        if size and _card_ok(text[start : start + size].replace(sep, "")):
            out.append(("CREDIT_CARD", start, start + size))
            m = search(tb, start + size)  # a dropped group may start the next card
        else:
            m = search(tb, start + resume)
    return out


def _card_layout(run: bytes, delimited: bool) -> tuple[int, int]:
    """For a run of digit groups (translated) that ``_card`` found: the length of the card it may
    hold (0: none), and where to search again if it is none. ``delimited``: another delimiter follows
    the run, so its last group is part of another token ("... 1111 12/27", "... 1111 123-45-6789")."""
    sizes = [len(g) for g in re.split(rb"[ \-]", run)]
    kept = sizes[:-1] if delimited else sizes
    k = next((k for k in range(len(kept), 2, -1) if tuple(kept[:k]) in P.CARD_LAYOUTS), 0)
    size = sum(kept[:k]) + k - 1 if k else 0
    # No card here. A short group ends some other number ("... 0130 00 4111 1111 ..."): look
    # again after it; never inside a run of full groups (a tracking number's tail is no card).
    pos = 0
    for n in sizes[:-1]:
        pos += n
        if n < 4:
            return size, pos
        pos += 1
    return size, len(run)


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
        if _OCTETS.fullmatch(text, start, end) and not _VERSION_CTX.search(_before(text, start, 16)):
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
            # without "::" an address has 8 groups, or 6 and an IPv4 (a time of day has neither)
            if len(tok) > 2 and ("::" in tok or tok.count(":") >= 6) and ipv6_ok(tok):
                out.append(("IP_ADDRESS", start, start + len(tok)))
            pos = m.end()
        colon = search(text, max(pos, at + 1))
    return out


def _iban(text: str, tb: bytes) -> list[Cand]:
    ab = tb.translate(_CAPITAL_AS_A)
    out, search, lengths = [], _IBAN.search, P.IBAN_LENGTHS
    m = search(ab)
    while m:
        start, end = m.span()
        # The first `need` IBAN characters (single spaces between them): the regex may have run on
        # into the next word. Written without spaces (most are), they are simply the next `need`.
        cc = text[start : start + 2]
        need = lengths.get(cc)
        if need is None:
            stop = -1
        elif end - start >= need and ab.find(b" ", start, start + need) < 0:
            stop = start + need
        else:
            head = _IBAN_TAKE[cc].match(ab, start, end)
            stop = head.end() if head else -1
        if stop > 0 and iban_ok(text[start:stop].replace(" ", "")):
            out.append(("IBAN_CODE", start, stop))
            m = search(ab, stop)
        else:
            m = search(ab, start + 1)
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


# The calling code that a run's first digits (up to three) start with, "" if none.
_CC_OF = {
    d: next((d[:n] for n in (1, 2, 3) if d[:n] in P.CALLING_CODES), "")
    for n in (1, 2, 3) for d in (str(i).zfill(n) for i in range(10**n))
}


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


# Plans by layout (see _phone_plan), kept across calls: a stream of texts repeats a small set of
# layouts ("000-000-0000", "+00 00 0000 0000"), so a long ingest computes each plan about once. The
# key is the layout, never the digits (beyond a calling code); bounded by clearing when full.
_NATIONAL_PLANS: tuple[dict[bytes, Plan], dict[bytes, Plan]] = ({}, {})  # [first digit is "0"][translation]
_PREFIXED_PLANS: dict[tuple[bytes, str, str, tuple[bool, ...]], Plan] = {}
_PLANS_MAX = 1 << 14


def clear_plans() -> None:
    """Forget every kept plan (benchmarks and tests start from none)."""
    for plans in (*_NATIONAL_PLANS, _PREFIXED_PLANS):
        plans.clear()


def _phone(text: str, tb: bytes) -> list[Cand]:
    # The hot loop of the slowest detector (thousands of runs per batch of dense text): most runs
    # reuse a plan and need no context, so those paths are kept to a few operations each.
    out, search = [], _PHONE.search
    national, prefixed = _NATIONAL_PLANS, _PREFIXED_PLANS
    if len(national[0]) + len(national[1]) > _PLANS_MAX or len(prefixed) > _PLANS_MAX:  # unusual layouts galore: start over
        clear_plans()
    labels: dict[str, int] = {}  # the label before a run, by the text it is read from
    zero, nul = b"0", b"\0"
    m = search(tb)
    while m:
        start = m.start()
        g = m.group()
        c = g[0]
        if c == 48:  # a national run starting with a digit (48: "0"), unless it is "00" and a digit
            first0 = text[start] == "0"
            if first0 and g[2] == 48 and text[start + 1] == "0":
                plan = _prefixed_plan(text, tb, m, "00", prefixed)
            else:
                plans = national[first0]
                plan = plans.get(g)  # type: ignore[assignment]
                if plan is None:
                    plan = plans[g] = _phone_plan(text, tb, m, None)
        elif c == 43:  # "+"
            plan = _prefixed_plan(text, tb, m, "+", prefixed)
        else:  # "(": the first digit decides
            plans = national[text[start + g.find(zero)] == "0"]
            plan = plans.get(g)  # type: ignore[assignment]
            if plan is None:
                plan = plans[g] = _phone_plan(text, tb, m, None)
        shift, levels, resume = plan
        if not levels:
            m = search(tb, start + resume)
            continue
        ctx = None
        for stop, shape in levels:  # 2: a phone; 1: unless an id-ish label precedes; 0: only after a phone word
            if shape < 2 and ctx is None:
                # The label of a number sits in the 28 characters before it, after any digit (a
                # label followed by another number belongs to that one) and any NUL (batch joins).
                at = start + shift
                lo = at - 28 if at > 28 else 0
                w = text[max(lo, tb.rfind(zero, lo, at) + 1, tb.rfind(nul, lo, at) + 1) : at]
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


def _prefixed_plan(text: str, tb: bytes, m: re.Match[bytes], prefix: str, plans: dict[tuple[bytes, str, str, tuple[bool, ...]], Plan]) -> Plan:
    """The plan of a run that starts with ``prefix`` ("+" or "00"), from ``plans`` if one laid
    out alike, with the same calling code and trunk digits, was seen."""
    start, end = m.span()
    g = m.group()
    if g.find(b"(") < 0:  # no trunk "(0)": the calling code is in the first three digits
        p0 = g.find(b"0", len(prefix))
        p1 = g.find(b"0", p0 + 1)
        p2 = g.find(b"0", p1 + 1) if p1 > 0 else -1
        head = text[start + p0] + (text[start + p1] if p1 > 0 else "") + (text[start + p2] if p2 > 0 else "")
        key = (g, prefix, _CC_OF[head], ())
    else:
        key = (g, prefix, *_phone_digits(text, tb, start + len(prefix), end))
    plan = plans.get(key)
    if plan is None:
        plan = plans[key] = _phone_plan(text, tb, m, prefix)
    return plan


# Level 1: (trigger, the detectors it gates), scanned over the translation of the texts (see
# pii_patterns). Every match of a gated detector contains a hit of one of its
# triggers, so skipping a text whose triggers did not fire loses nothing (the tests compare against
# running every detector on every text). A literal is searched for with ``bytes.find``; a regex
# runs on to the next NUL, so that one finditer over the joined texts yields one hit per text.
