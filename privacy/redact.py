"""Text PII detection and redaction with typed placeholders (Presidio's entity names).

Entities: EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD (Luhn + issuer ranges), US_SSN (SSA rules),
IP_ADDRESS (v4; v6 with :mod:`ipaddress`'s rules), IBAN_CODE (length + mod-97), MAC_ADDRESS, CRYPTO
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
per detector rather than per text; a clean text costs no Python-level work. A dense batch (more than
half of its first 256 texts fire the digit trigger) skips the rest of that scan and sends every
text to the digit detectors: their literal-first searches cost less than the pass. Flagged texts are
*translated* to one byte per character (Latin-1, others as ``?``, digits as ``0``): offsets carry
over, so the digit-heavy detectors (phone, card, SSN, IPv4, IBAN) search the translation with
literal-first patterns and read the digits from the text, and level 2 narrows the IPv4, bech32 and
MAC detectors with triggers of their own. Phone runs laid out alike (same translation, same first
digit or calling code) share one validation plan, kept across calls. ``prefilter="arrow"`` (opt-in) replaces the level-1
scans by one RE2 regex (``pyarrow.compute.match_substring_regex``); it is native, so the portable
scan stays the default; both give identical results (tested). Figures: ``bench/redact.py``.
The detectors themselves are in ``pii_detect.py``; this module chooses which run, resolves
overlaps and applies placeholders.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from itertools import accumulate, islice, repeat
from operator import gt, itemgetter
from typing import Any, NamedTuple

from exashard.privacy import pii_patterns as P
from exashard.privacy.pii_detect import (
    Detector,
    _aws_secret,
    _b58,
    _bearer,
    _bech32,
    _card,
    _email,
    _iban,
    _ipv4,
    _ipv6,
    _jwt,
    _mac,
    _pem,
    _phone,
    _ssn,
    _tokens,
    _translated,
    _url_creds,
)

ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IP_ADDRESS", "IBAN_CODE", "MAC_ADDRESS",
            "CRYPTO", "URL_CREDENTIALS", "SECRET")
# Overlap resolution: higher wins (validated by checksum > by structure > by heuristics).
_RANK = {"SECRET": 9, "URL_CREDENTIALS": 8, "CRYPTO": 7, "IBAN_CODE": 7, "CREDIT_CARD": 7, "EMAIL_ADDRESS": 6,
         "IP_ADDRESS": 5, "MAC_ADDRESS": 5, "US_SSN": 4, "PHONE_NUMBER": 3}


class Finding(NamedTuple):
    """A PII value: its entity name and its span ``text[start:end]``. A named tuple: a batch builds
    thousands, and a tuple is the cheapest immutable record to build (see ``_NEW``)."""

    entity: str
    start: int
    end: int


_NEW = tuple.__new__  # _NEW(Finding, (entity, start, end)): what Finding(...) does, without its Python-level __new__


_START, _END = itemgetter(1), itemgetter(2)


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
_DIGITS, _COLON = _TRIGGERS[0][0], _TRIGGERS[1][0]
_SAMPLE = 256  # texts the digit trigger is tried on before the rest of a batch (see Redactor._scan)
# Level 2: where a level-1 trigger sends a detector many texts it has nothing for (a date sends a
# text to the IPv4 detector, a time of day to the MAC one), triggers of the detector's own, run over
# the texts that trigger sent (any hit keeps a text). Keyed by (detector, level-1 trigger).
_NARROW: dict[tuple[Detector, bytes | re.Pattern[bytes]], tuple[re.Pattern[bytes], ...]] = {
    (det, trig): tuple(re.compile(t + rb"[^\0]*") for t in ts)
    for det, trig, ts in ((_ipv4, _DIGITS, P.NARROW_IPV4), (_bech32, _DIGITS, P.NARROW_BECH32), (_mac, _COLON, P.NARROW_MAC))
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
        if any(map(gt, map(_END, found), map(_START, islice(found, 1, None)))):  # some end past the next start: an overlap
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

    def __init__(self, texts: list[str], joined: str, tb: bytes, starts: list[int], idxs: list[int]) -> None:
        """``joined``, ``tb`` and ``starts``: all ``texts`` joined by NUL, its translation, their offsets."""
        if len(idxs) == len(texts):
            self.idxs, self.text, self.tb, self.offsets = idxs, joined, tb, starts
            return
        sub = [texts[i] for i in idxs]
        self.idxs, self.text, self.offsets = idxs, "\0".join(sub), _offsets(sub)
        self.tb = b"\0".join([tb[starts[i] : starts[i + 1] - 1] for i in idxs])

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
        return _resolve([_NEW(Finding, c) for det in detectors for c in det(text, tb)])

    def find(self, text: str) -> list[Finding]:
        """Sorted, non-overlapping findings in ``text``."""
        if not isinstance(text, str):
            raise TypeError(f"text is {type(text).__name__}, expected str")
        tb = _translated(text)
        fired = {det for trig, dets in self._triggers if _hit(tb, trig, 0) >= 0 for det in dets
                 if (det, trig) not in _NARROW or any(t.search(tb) for t in _NARROW[det, trig])}
        return _resolve([_NEW(Finding, c) for det in fired for c in det(text, tb)])

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
        out: list[list[Finding]] = list(map(list, repeat((), len(items))))  # a list per text, built in C
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
        found: defaultdict[int, list[Finding]] = defaultdict(list)
        subs: dict[tuple[int, ...], _Joined] = {}  # detectors sent the same texts share one joining

        def joining(idxs: list[int]) -> _Joined:
            key = tuple(idxs)
            sub = subs.get(key)
            if sub is None:
                sub = subs[key] = _Joined(texts, joined, tb, starts, idxs)  # type: ignore[arg-type]
            return sub

        for det, parts in self._scan(tb, starts).items():
            idxs: list[int] = []
            for trig, hits in parts:
                narrow = _NARROW.get((det, trig))
                if narrow is not None:
                    hits = joining(hits).narrow(narrow)
                idxs = sorted({*idxs, *hits}) if idxs else hits
            if not idxs:
                continue
            if det is _pem:  # its ".*?" could run past a NUL: run it text by text (it is rare)
                for i in idxs:
                    found[i].extend(_NEW(Finding, c) for c in det(texts[i], tb[starts[i] : starts[i + 1] - 1]))  # type: ignore[arg-type]
                continue
            # One call over the flagged texts joined by NUL (no pattern crosses one): the per-call
            # overhead is paid once per detector instead of once per text and detector.
            sub = joining(idxs)
            text, sub_tb, offsets = sub.text, sub.tb, sub.offsets
            cands = det(text, sub_tb)
            # Which text each candidate is in: one bisection per candidate, mapped in C.
            for (entity, s, e), k in zip(cands, map(bisect_right, repeat(offsets), map(_START, cands))):
                at = offsets[k - 1]
                found[idxs[k - 1]].append(_NEW(Finding, (entity, s - at, e - at)))
        return [(i, f if len(f) == 1 else _resolve(f)) for i, f in found.items()]

    def _scan(self, tb: bytes, starts: list[int]) -> dict[Detector, list[tuple[bytes | re.Pattern[bytes], list[int]]]]:
        """Run every level-1 trigger once over the translated texts joined by NUL; return, for each
        detector, its triggers that fired, each with the sorted indexes of the texts it fired in."""
        n = len(starts) - 1
        by_det: dict[Detector, list[tuple[bytes | re.Pattern[bytes], list[int]]]] = {}
        for trig, dets in self._triggers:
            if isinstance(trig, bytes):
                hits, pos = [], tb.find(trig)
                while pos >= 0:
                    hits.append(i := bisect_right(starts, pos) - 1)
                    pos = tb.find(trig, starts[i + 1])  # the rest of this text cannot add anything
            elif trig is _DIGITS and n > 2 * _SAMPLE:
                # Dense batches (most texts hold long digit runs: logs, forms, tables): where the
                # first texts mostly fire, every text goes to the digit detectors without this pass
                # (their own literal-first searches cost less than it; a text it would have skipped
                # gives them no match, so the findings are the same).
                hits = [bisect_right(starts, m.start()) - 1 for m in trig.finditer(tb, 0, starts[_SAMPLE])]
                if 2 * len(set(hits)) > _SAMPLE:
                    hits = list(range(n))
                else:
                    hits += [bisect_right(starts, m.start()) - 1 for m in trig.finditer(tb, starts[_SAMPLE])]
                    hits = list(dict.fromkeys(hits))
            else:  # a regex trigger runs on to the next NUL, so a text holding a NUL may be hit twice
                hits = list(dict.fromkeys([bisect_right(starts, m.start()) - 1 for m in trig.finditer(tb)]))
            if hits:
                for det in dets:
                    by_det.setdefault(det, []).append((trig, hits))
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
