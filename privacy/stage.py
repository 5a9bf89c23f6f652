"""The privacy stage: one ``Sample`` in, a policy-conforming ``Sample`` out (or none).

Order per sample: fields the policy does not name are dropped; the subject pseudonym is
computed from the raw subject value; a sample whose subject is on the forget list is
excluded; then each kept field gets its action. Bad input (invalid JSON, undecodable
text, malformed media) raises ``QuarantineError`` with a reason that names the field,
never its content. Stats count actions and entities, never values.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from ..errors import QuarantineError
from ..record import Sample
from .policy import JsonRule, Policy, default_policy, match_rule, prefix_possible
from .pseudonym import Pseudonymizer

_DROP = object()


class PrivacyStage:
    """Apply ``policy`` to samples. ``pseudonyms`` is needed if the policy pseudonymizes;
    ``forget`` is a set of subject pseudonyms whose samples are excluded."""

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        pseudonyms: Pseudonymizer | None = None,
        forget: set[str] | frozenset[str] = frozenset(),
        redactor: Any = None,
    ) -> None:
        self.policy = policy or default_policy()
        self.pseudonyms = pseudonyms
        self.forget = forget
        # (field, JSON path) -> (its own rule, whether any rule reaches below it): the same
        # paths come back in every sample
        self._rules_at: dict[tuple[str, tuple[str, ...]], tuple[Any, bool]] = {}
        if redactor is None:
            from .redact import Redactor

            redactor = Redactor()
        self.redactor = redactor
        needs = any(
            (a == "pseudonymize") if isinstance(a, str) else any(r.action == "pseudonymize" for r in a)
            for a in self.policy.fields.values()
        )
        if (needs or self.policy.subject) and pseudonyms is None:
            raise ValueError("this policy pseudonymizes: pass pseudonyms=Pseudonymizer(key, dataset_id)")

    def apply(self, sample: Sample) -> Sample | None:
        stats: Counter[str] = Counter()
        where = f"sample {sample.source or sample.key}"
        parsed: dict[str, Any] = {}
        kept: dict[str, bytes] = {}
        pol = self.policy
        for ext, data in sample.fields.items():
            act = pol.action(ext)
            if act == "drop":
                stats["action.drop"] += 1
                continue
            if not isinstance(act, str):
                try:
                    parsed[ext] = json.loads(data)
                except (UnicodeDecodeError, json.JSONDecodeError):
                    raise QuarantineError(f"{where}: field {ext!r} is not valid JSON") from None
        subject = self._subject(sample, parsed, where)
        if subject is not None and subject in self.forget:
            return None
        for ext, data in sample.fields.items():
            act = pol.action(ext)
            if act == "drop":
                continue
            fwhere = f"{where}: field {ext!r}"
            if isinstance(act, str):
                out = self._field(ext, act, data, fwhere, stats)
            else:
                value = self._json(ext, parsed[ext], (), act, None, stats)
                out = b"{}" if value is _DROP else json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
                stats["action.json"] += 1
            kept[ext] = out
        return Sample(sample.key, kept, sample.source, subject, dict(stats))

    def _subject(self, sample: Sample, parsed: dict[str, Any], where: str) -> str | None:
        spec = self.policy.subject
        if spec is None or self.pseudonyms is None:
            return None
        ext, path = spec
        if ext not in sample.fields:
            return None
        value: Any = parsed[ext] if path else sample.fields[ext]
        for seg in path:
            if not isinstance(value, dict) or seg not in value:
                return None
            value = value[seg]
        return self.pseudonyms.pseudonym(".".join([ext, *path]), value)

    def _field(self, ext: str, act: str, data: bytes, where: str, stats: Counter[str]) -> bytes:
        stats[f"action.{act}"] += 1
        if act == "keep":
            return data
        if act == "strip":
            from .media import STRIPPABLE, strip

            kind = STRIPPABLE.get(ext.rsplit(".", 1)[-1].lower())
            if kind is None:
                raise QuarantineError(f"{where}: cannot strip this media type")
            out, st = strip(data, kind, where=where)
            for k, v in st.as_dict().items():
                if v:
                    stats[f"media.{k}"] += int(v)
            return out
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise QuarantineError(f"{where}: text is not valid UTF-8") from None
        if act == "redact":
            out_text, counts = self.redactor.redact_with_counts(text)
            for ent, n in counts.items():
                stats[f"entity.{ent}"] += n
            return out_text.encode("utf-8")
        assert act == "pseudonymize" and self.pseudonyms is not None
        return self.pseudonyms.pseudonym(ext, text).encode()

    def _json(
        self, ext: str, value: Any, path: tuple[str, ...], rules: list[JsonRule], inherited: JsonRule | None,
        stats: Counter[str],
    ) -> Any:
        memo = self._rules_at.get((ext, path))
        if memo is None:
            if len(self._rules_at) >= 4096:  # keys come from input: keep the memo bounded
                self._rules_at.clear()
            memo = self._rules_at[(ext, path)] = (match_rule(rules, path), prefix_possible(rules, path))
        own, below = memo
        rule = own
        if inherited is not None and (own is None or inherited.specificity > own.specificity):
            rule = inherited
        if below and isinstance(value, (dict, list)):
            if isinstance(value, dict):
                out: Any = {}
                for k, v in value.items():
                    r = self._json(ext, v, (*path, str(k)), rules, rule, stats)
                    if r is not _DROP:
                        out[k] = r
                    else:
                        stats["json.dropped"] += 1
            else:
                out = [r for v in value if (r := self._json(ext, v, (*path, "[]"), rules, rule, stats)) is not _DROP]
            if not out and (rule is None or rule.action == "drop"):
                return _DROP
            return out
        if rule is None or rule.action == "drop":
            return _DROP
        return self._json_leaf(ext, value, path, rule.action, stats)

    def _json_leaf(self, ext: str, value: Any, path: tuple[str, ...], action: str, stats: Counter[str]) -> Any:
        if action == "keep":
            return value
        if action == "pseudonymize":
            assert self.pseudonyms is not None
            stats["json.pseudonymized"] += 1
            if isinstance(value, (dict, list)):
                value = json.dumps(value, sort_keys=True, separators=(",", ":"))
            return self.pseudonyms.pseudonym(".".join([ext, *path]), value)
        # redact: strings and numbers whose digits hold PII; containers recursively
        if isinstance(value, str):
            out, counts = self.redactor.redact_with_counts(value)
            for ent, n in counts.items():
                stats[f"entity.{ent}"] += n
            return out
        if isinstance(value, dict):
            return {k: self._json_leaf(ext, v, (*path, str(k)), action, stats) for k, v in value.items()}
        if isinstance(value, list):
            return [self._json_leaf(ext, v, (*path, "[]"), action, stats) for v in value]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out, counts = self.redactor.redact_with_counts(str(value))
            if counts:
                for ent, n in counts.items():
                    stats[f"entity.{ent}"] += n
                return out
        return value
