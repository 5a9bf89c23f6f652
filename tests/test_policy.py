"""Policy files: validation with file/line/field errors, path grammar, fail-closed stage."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exashard.errors import ConfigError, QuarantineError
from exashard.privacy.policy import PolicyError, default_policy, load_policy, match_rule, parse_path, policy_from_dict
from exashard.privacy.pseudonym import Pseudonymizer, canonical
from exashard.privacy.stage import PrivacyStage
from exashard.record import Sample

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "policy.toml")


class NoPII:
    """A redactor stand-in that finds 'SECRET' only: keeps these tests about the policy."""

    def redact_with_counts(self, text):
        n = text.count("SECRET")
        return text.replace("SECRET", "<X>"), ({"X": n} if n else {})


def stage(doc, **kw):
    pol = policy_from_dict(doc) if isinstance(doc, dict) else doc
    return PrivacyStage(pol, pseudonyms=Pseudonymizer(b"k" * 32, "ds"), redactor=NoPII(), **kw)


def write(tmp_path, text):
    p = tmp_path / "p.toml"
    p.write_text(text)
    return str(p)


def test_example_policy_loads():
    pol = load_policy(EXAMPLE)
    assert pol.action("jpg") == "strip" and pol.action("mp4") == "drop"
    assert pol.subject == ("json", ("user_id",))
    assert pol.describe()["unnamed"] == "drop"


@pytest.mark.parametrize(
    "text, line, match",
    [
        ("[fields]\ntxt = 'redact'\nmp4 = 'strip'\n", 3, "'strip' is not possible for 'mp4'"),
        ("[fields]\ntxt = 'shred'\n", 2, "action 'shred' is not one of"),
        ("[fields]\ntxt = 'keep'\n[fields.json]\n'a..b' = 'keep'\n", 4, "empty segment"),
        ("[fields]\n[fields.json]\n'a' = 'strip'\n", 3, "action 'strip' is not one of"),
        ("subject = 'txt'\n[fields]\ntxt = 'keep'\n", 1, "must be pseudonymized or dropped"),
        ("subject = 'json:a.*'\n[fields]\n[fields.json]\na = 'pseudonymize'\n", 1, "no wildcards"),
        ("colour = 'red'\n[fields]\ntxt = 'keep'\n", 1, "unknown setting"),
        ("version = 2\n[fields]\ntxt = 'keep'\n", 1, "not supported"),
    ],
)
def test_policy_errors_name_file_line_field(tmp_path, text, line, match):
    path = write(tmp_path, text)
    with pytest.raises(PolicyError, match=match) as e:
        load_policy(path)
    assert str(e.value).startswith(f"{path}:{line}: field ")
    assert isinstance(e.value, ConfigError)


def test_policy_file_errors(tmp_path):
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(write(tmp_path, "[fields\n"))
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(str(tmp_path / "missing.toml"))
    with pytest.raises(PolicyError, match="needs a \\[fields\\] table"):
        load_policy(write(tmp_path, "version = 1\n"))


def test_path_grammar():
    assert parse_path('a.b[].c', "t") == ("a", "b", "[]", "c")
    assert parse_path('"x.y".*', "t") == ("x.y", "*")
    assert parse_path("**", "t") == ("**",)
    for bad in ["", "a.", ".a", "a b", 'a."b', "a[0]"]:
        with pytest.raises(PolicyError):
            parse_path(bad, "t")
    pol = policy_from_dict({"fields": {"j": {"a.b": "keep", "a.*": "drop", "**": "redact"}}})
    rules = pol.fields["j"]
    assert match_rule(rules, ("a", "b")).action == "keep"
    assert match_rule(rules, ("a", "c")).action == "drop"
    assert match_rule(rules, ("z", "c", "d")).action == "redact"


def test_fail_closed_fields_and_json_keys():
    st_ = stage({"fields": {"txt": "keep", "json": {"caption": "keep", "tags[]": "keep"}}})
    out = st_.apply(Sample("k", {
        "txt": b"hello", "mp4": b"\x00" * 10, "secret": b"pw",
        "json": json.dumps({"caption": "c", "tags": ["a", "b"], "email": "x@y.z", "nested": {"a": 1}}).encode(),
    }))
    assert set(out.fields) == {"txt", "json"}
    assert json.loads(out.fields["json"]) == {"caption": "c", "tags": ["a", "b"]}
    assert out.stats["action.drop"] == 2 and out.stats["json.dropped"] == 2


def test_specific_rules_win_and_inherit():
    st_ = stage({"fields": {"json": {"**": "redact", "meta": "keep", "meta.owner": "drop", "uid": "pseudonymize"}}})
    doc = {"a": "SECRET here", "meta": {"x": "SECRET", "owner": "bob"}, "uid": 42, "n": 7, "l": ["SECRET"]}
    out = json.loads(st_.apply(Sample("k", {"json": json.dumps(doc).encode()})).fields["json"])
    assert out["a"] == "<X> here" and out["meta"] == {"x": "SECRET"} and out["n"] == 7 and out["l"] == ["<X>"]
    assert out["uid"] == Pseudonymizer(b"k" * 32, "ds").pseudonym("json.uid", "42")


def test_subject_pseudonym_and_forget_list():
    doc = {"fields": {"json": {"user_id": "pseudonymize", "c": "keep"}}, "subject": "json:user_id"}
    p = Pseudonymizer(b"k" * 32, "ds")
    gone = p.pseudonym("json.user_id", "u-7")
    st_ = stage(doc, forget={gone})
    assert st_.apply(Sample("a", {"json": b'{"user_id": " u-7 ", "c": 1}'})) is None  # canonicalized, then forgotten
    kept = st_.apply(Sample("b", {"json": b'{"user_id": 8, "c": 1}'}))
    assert kept.subject == p.pseudonym("json.user_id", "8") == json.loads(kept.fields["json"])["user_id"]
    assert st_.apply(Sample("c", {"json": b'{"c": 1}'})).subject is None


def test_pseudonyms_keyed_and_separated():
    a, b = Pseudonymizer(b"k" * 32, "ds1"), Pseudonymizer(b"k" * 32, "ds2")
    assert a.pseudonym("f", "x") != b.pseudonym("f", "x") != a.pseudonym("g", "x")
    assert a.pseudonym("f", 12) == a.pseudonym("f", "12") == a.pseudonym("f", 12.0) == a.pseudonym("f", " 12 ")
    import hashlib

    assert a.pseudonym("f", "x") not in (hashlib.sha256(b"x").hexdigest()[:32], hashlib.md5(b"x").hexdigest())
    for bad in (None, True, [1], {}, "", float("nan")):
        with pytest.raises(QuarantineError):
            canonical(bad)


def test_bad_json_is_quarantined_by_name():
    with pytest.raises(QuarantineError, match="field 'json' is not valid JSON") as e:
        stage({"fields": {"json": {"**": "keep"}}}).apply(Sample("k", {"json": b"{user: secret"}, source="in#3"))
    assert "secret" not in str(e.value) and "in#3" in str(e.value)


def test_default_policy_shape():
    pol = default_policy()
    assert {e: pol.action(e) for e in ("jpg", "png", "webp", "txt", "mp4", "cls")} == {
        "jpg": "strip", "png": "strip", "webp": "strip", "txt": "redact", "mp4": "drop", "cls": "drop"}
    assert [r.path for r in pol.fields["json"]] == [("**",)]


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=15))
def test_json_keep_all_roundtrips_and_drop_all_empties(doc):
    data = json.dumps({"d": doc}).encode()
    kept = stage({"fields": {"j": {"**": "keep"}}}).apply(Sample("k", {"j": data}))
    assert json.loads(kept.fields["j"]) == {"d": doc}
    none = stage({"fields": {"j": {"other": "keep"}}}).apply(Sample("k", {"j": data}))
    assert json.loads(none.fields["j"]) == {}
