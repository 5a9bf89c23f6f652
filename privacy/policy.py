"""The field policy: what of each record may be kept. Fail-closed.

A policy names, per sample field (the WebDataset extension), one action::

    keep          store the bytes as they are
    drop          do not store the field
    redact        text: replace PII with typed placeholders (<EMAIL_ADDRESS>, ...)
    pseudonymize  replace the value by a keyed HMAC-SHA256 pseudonym
    strip         media: remove metadata losslessly (JPEG, PNG, WebP)

or, for a JSON field, a table of actions per path inside the document. Any field the
policy does not name is dropped, and inside JSON any key no path names is dropped.

JSON path grammar (``docs/PRIVACY.md``)::

    path     := segment ("." segment)*
    segment  := name | "*" | "**" | name "[]" | "*[]"
    name     := [A-Za-z0-9_-]+  |  '"' any characters except '"' '"'

``*`` matches one key, ``**`` any number of keys (zero or more), ``name[]`` every
element of the array under ``name``. When several paths match a value, the most
specific wins (fewest wildcards, then longest); an exact path beats ``*``, which beats
``**``. Actions on JSON values: keep, drop, redact (strings; and numbers whose digits
hold PII), pseudonymize.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

ACTIONS = frozenset({"keep", "drop", "redact", "pseudonymize", "strip"})
JSON_ACTIONS = frozenset({"keep", "drop", "redact", "pseudonymize"})
STRIPPABLE_EXTS = frozenset({"jpg", "jpeg", "png", "webp"})
_NAME = r'(?:[A-Za-z0-9_\-]+|"[^"]+")'
_SEGMENT = re.compile(rf"^(?:{_NAME}|\*\*|\*)(?:\[\])?$")
_EXT = re.compile(r"^[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*$")


class PolicyError(ConfigError):
    """A policy file is invalid; the message names the file, line and field."""


@dataclass(frozen=True, slots=True)
class JsonRule:
    path: tuple[str, ...]  # segments, "[]" kept as a separate segment
    action: str
    specificity: tuple[int, int]


@dataclass
class Policy:
    """A validated policy. ``fields`` maps extension -> action or list of JSON rules."""

    fields: dict[str, str | list[JsonRule]] = field(default_factory=dict)
    subject: tuple[str, tuple[str, ...]] | None = None  # (field, JSON path or ())
    source: str = "<built-in default>"
    clear_urls: bool = False
    default_json_rules: list[JsonRule] | None = None  # for JSON fields named by a pattern

    def action(self, ext: str) -> str | list[JsonRule]:
        """The action for a field; ``drop`` for anything not named (fail-closed)."""
        return self.fields.get(ext, "drop")

    def describe(self) -> dict[str, Any]:
        """The policy in force, for run reports."""
        out: dict[str, Any] = {}
        for ext, act in self.fields.items():
            out[ext] = act if isinstance(act, str) else {".".join(r.path): r.action for r in act}
        return {
            "source": self.source,
            "fields": out,
            "unnamed": "drop",
            "subject": None if self.subject is None else ":".join([self.subject[0], ".".join(self.subject[1])]).rstrip(":"),
        }


def parse_path(text: str, where: str) -> tuple[str, ...]:
    """Split a JSON path into segments; ``a.b[].c`` -> ("a", "b", "[]", "c")."""
    if not text:
        raise PolicyError(f"{where}: empty JSON path")
    parts: list[str] = []
    for seg in _split(text, where):
        if not _SEGMENT.match(seg):
            raise PolicyError(f"{where}: bad JSON path segment {seg!r} in {text!r}")
        arr = seg.endswith("[]")
        name = seg[:-2] if arr else seg
        parts.append(name[1:-1] if name.startswith('"') else name)
        if arr:
            parts.append("[]")
    return tuple(parts)


def _split(text: str, where: str) -> list[str]:
    out, cur, quoted = [], "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
            cur += ch
        elif ch == "." and not quoted:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if quoted:
        raise PolicyError(f"{where}: unterminated quote in JSON path {text!r}")
    out.append(cur)
    if any(not s for s in out):
        raise PolicyError(f"{where}: empty segment in JSON path {text!r}")
    return out


def _rule(path: str, action: str, where: str) -> JsonRule:
    if action not in JSON_ACTIONS:
        raise PolicyError(f"{where}: JSON path {path!r}: action {action!r} is not one of {sorted(JSON_ACTIONS)}")
    segs = parse_path(path, where)
    wild = sum(1 for s in segs if s in ("*", "**")) * 2 + sum(1 for s in segs if s == "**") * 8
    return JsonRule(segs, action, (-wild, len(segs)))


def _line_of(text: str, table: str | None, key: str) -> int | None:
    """Best-effort line number of ``key = ...`` inside ``[table]`` of the TOML text."""
    current = None
    k = re.escape(key)
    pat = re.compile(rf"""^\s*(?:"{k}"|'{k}'|{k})\s*=""")
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^\s*\[([^\]]+)\]\s*$", line)
        if m:
            current = m.group(1).strip()
            continue
        if current == table and pat.match(line):
            return n
    return None


def _where(path: str, text: str, table: str | None, key: str) -> str:
    line = _line_of(text, table, key)
    return f"{path}:{line}: field {key!r}" if line else f"{path}: field {key!r}"


def read_toml(path: str, what: str, error: type[Exception]) -> tuple[dict[str, Any], str]:
    """(document, text) of a TOML file; ``error`` names the file for unreadable or invalid TOML."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise error(f"{path}: cannot read {what} ({e.strerror or e})") from None
    text = raw.decode("utf-8", "replace")
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as e:
        raise error(f"{path}: not valid TOML ({e})") from None


def load_policy(path: str) -> Policy:
    """Read and validate a TOML policy file; every error names the file, line and field."""
    doc, text = read_toml(path, "policy file", PolicyError)
    return policy_from_dict(doc, source=path, text=text)


def policy_from_dict(doc: dict[str, Any], *, source: str = "<dict>", text: str = "") -> Policy:
    unknown = set(doc) - {"version", "subject", "fields", "clear_urls"}
    if unknown:
        key = sorted(unknown)[0]
        raise PolicyError(f"{_where(source, text, None, key)}: unknown setting (expected version, subject, fields, clear_urls)")
    if doc.get("version", 1) != 1:
        raise PolicyError(f"{_where(source, text, None, 'version')}: policy version {doc.get('version')!r} is not supported (1)")
    fields_doc = doc.get("fields")
    if not isinstance(fields_doc, dict) or not fields_doc:
        raise PolicyError(f"{source}: a policy needs a [fields] table naming at least one field")
    pol = Policy(source=source, clear_urls=bool(doc.get("clear_urls", False)))
    for ext, act in fields_doc.items():
        where = _where(source, text, "fields", ext)
        if not _EXT.match(ext):
            raise PolicyError(f"{where}: not a valid sample extension")
        if isinstance(act, str):
            if act not in ACTIONS:
                raise PolicyError(f"{where}: action {act!r} is not one of {sorted(ACTIONS)}")
            if act == "strip" and ext.rsplit(".", 1)[-1].lower() not in STRIPPABLE_EXTS:
                raise PolicyError(
                    f"{where}: 'strip' is not possible for {ext!r} (strippable: {sorted(STRIPPABLE_EXTS)}); "
                    "use 'drop', or 'keep' to allow it explicitly with its metadata"
                )
            pol.fields[ext] = act
        elif isinstance(act, dict):
            if not act:
                raise PolicyError(f"{where}: a JSON field table needs at least one path")
            rules = []
            for p, a in act.items():
                pwhere = _where(source, text, f"fields.{ext}", p)
                if not isinstance(a, str):
                    raise PolicyError(f"{pwhere}: action must be a string")
                rules.append(_rule(p, a, pwhere))
            pol.fields[ext] = sorted(rules, key=lambda r: r.specificity, reverse=True)
        else:
            raise PolicyError(f"{where}: expected an action string or a table of JSON paths")
    subject = doc.get("subject")
    if subject is not None:
        pol.subject = _subject(pol, subject, _where(source, text, None, "subject"))
    return pol


def _subject(pol: Policy, spec: Any, where: str) -> tuple[str, tuple[str, ...]]:
    if not isinstance(spec, str) or not spec:
        raise PolicyError(f"{where}: subject must be 'FIELD' or 'FIELD:json.path'")
    ext, _, path = spec.partition(":")
    if ext not in pol.fields:
        raise PolicyError(f"{where}: subject field {ext!r} is not named in [fields]")
    act = pol.fields[ext]
    if path:
        if isinstance(act, str):
            raise PolicyError(f"{where}: subject path {path!r} needs [fields.{ext}] to be a JSON table")
        segs = parse_path(path, where)
        if any(s in ("*", "**", "[]") for s in segs):
            raise PolicyError(f"{where}: subject path {path!r} must name one value (no wildcards)")
        rule = match_rule(act, segs)
        if rule is None or rule.action not in ("pseudonymize", "drop"):
            raise PolicyError(f"{where}: subject {spec!r} must be pseudonymized or dropped, never stored in clear")
        return ext, segs
    if act not in ("pseudonymize", "drop"):
        raise PolicyError(f"{where}: subject field {ext!r} must be pseudonymized or dropped, never stored in clear")
    return ext, ()


def _matches(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    if not pattern:
        return not path
    head = pattern[0]
    if head == "**":
        return any(_matches(pattern[1:], path[i:]) for i in range(len(path) + 1))
    if not path:
        return False
    if head == "*":
        return path[0] != "[]" and _matches(pattern[1:], path[1:])
    return head == path[0] and _matches(pattern[1:], path[1:])


def match_rule(rules: list[JsonRule], path: tuple[str, ...]) -> JsonRule | None:
    """The most specific rule matching ``path`` (rules come sorted most specific first)."""
    for r in rules:
        if _matches(r.path, path):
            return r
    return None


def prefix_possible(rules: list[JsonRule], path: tuple[str, ...]) -> bool:
    """Whether some rule could match a value below ``path`` (so a container is kept)."""
    return any(_prefix(r.path, path) for r in rules)


def _prefix(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    if not path:
        return True
    if not pattern:
        return False
    head = pattern[0]
    if head == "**":
        return True
    if head == "*":
        return path[0] != "[]" and _prefix(pattern[1:], path[1:])
    return head == path[0] and _prefix(pattern[1:], path[1:])


def default_policy() -> Policy:
    """Safe with no configuration: images stripped, ``txt`` redacted, every JSON string
    value redacted, everything else dropped."""
    return policy_from_dict(
        {
            "fields": {
                "jpg": "strip", "jpeg": "strip", "png": "strip", "webp": "strip",
                "txt": "redact", "json": {"**": "redact"},
            }
        },
        source="<built-in default>",
    )
