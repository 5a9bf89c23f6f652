"""exashard.privacy.redact: accuracy on the frozen labelled corpus, per-entity rules, properties."""

from __future__ import annotations

import ipaddress
import string

import faker
import pyarrow as pa
import pytest
from _pii_corpus import b58check, fingerprint, generate, score, segwit_address
from _pii_corpus import iban_ok as oracle_iban_ok
from _pii_corpus import luhn_ok as oracle_luhn_ok
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exashard.privacy import pii_patterns as P
from exashard.privacy.pii_checks import iban_ok, ipv6_ok, luhn_ok, segwit_ok
from exashard.privacy.pii_detect import clear_plans
from exashard.privacy.redact import _DETECTOR_ENTITY, ENTITIES, Finding, Redactor

R = Redactor()
TARGETS = {  # entity: (recall, precision) from the issue
    "CREDIT_CARD": (0.98, 0.95), "IBAN_CODE": (0.98, 0.95), "CRYPTO": (0.98, 0.95),
    "EMAIL_ADDRESS": (0.97, 0.95), "IP_ADDRESS": (0.97, 0.95), "PHONE_NUMBER": (0.95, 0.90),
}
FROZEN_FINGERPRINT = ("40.63.0", "73aec3a496e5cf8b")  # Faker version, fingerprint(generate())


@pytest.fixture(scope="module")
def corpus():
    return generate()


def found(text: str, redactor: Redactor = R) -> list[tuple[str, str]]:
    return [(f.entity, text[f.start : f.end]) for f in redactor.find(text)]


def unfiltered(text: str) -> list[Finding]:
    """Every detector on the text, no trigger: what the pre-filter must not change."""
    return R._detect(text, list(_DETECTOR_ENTITY))


# ---------------------------------------------------------------- the labelled corpus
def test_corpus_is_frozen(corpus):
    version, expected = FROZEN_FINGERPRINT
    if version != faker.VERSION:
        pytest.skip(f"corpus fingerprint recorded with Faker {version}, running {faker.VERSION}")
    assert fingerprint(corpus) == expected


def test_corpus_targets(corpus):
    res = score(R, corpus)
    misses = []
    for entity, (recall, precision) in TARGETS.items():
        got = res[entity]
        if got["recall"] < recall or got["precision"] < precision:
            misses.append(f"{entity}: recall {got['recall']:.3f} (>= {recall}), precision {got['precision']:.3f} (>= {precision})")
    assert not misses, misses
    for entity in ("US_SSN", "MAC_ADDRESS", "URL_CREDENTIALS", "SECRET"):  # no target in the issue; keep them honest
        assert res[entity]["f2"] >= 0.9, (entity, res[entity])


def test_batch_equals_per_text_and_prefilter_loses_nothing(corpus):
    texts = [s.text for s in corpus]
    per_text = [R.find(t) for t in texts]
    assert R.find_batch(texts) == per_text
    assert Redactor(prefilter="arrow").find_batch(texts) == per_text
    assert R.redact_batch(texts) == [R.redact(t) for t in texts]
    assert [unfiltered(t) for t in texts[:1000]] == per_text[:1000]


def test_batch_gives_each_text_a_list_of_its_own():
    out = R.find_batch(["no pii here", "nor here", "call +44 20 7946 0958", "plain"])
    assert [len(f) for f in out] == [0, 0, 1, 0]
    out[0].append("mine")
    assert out[1] == [] and out[3] == [] and len(out[2]) == 1


def test_dense_and_sparse_batches_scan_alike(corpus):
    """A batch whose first texts mostly hold digit runs skips the level-1 digit scan; one whose first
    texts are plain runs it: both give the per-text findings."""
    dense = [s.text for s in corpus[:700]]
    plain = [f"caption {i}: a dog\0on a beach" if i % 7 == 0 else f"caption {i}: a cat on a sofa" for i in range(700)]
    for texts in (dense + plain, plain + dense):
        assert R.find_batch(texts) == [R.find(t) for t in texts]



def test_pyarrow_input(corpus):
    texts = [s.text for s in corpus[:200]]
    arr = pa.array([*texts, None])
    expected = [*[R.redact(t) for t in texts], None]
    for redactor in (R, Redactor(prefilter="arrow")):
        assert redactor.redact_batch(arr) == expected
        assert redactor.redact_batch(pa.chunked_array([arr[:50], arr[50:]])) == expected
        assert redactor.find_batch(arr.cast(pa.large_string()))[-1] == []


# ---------------------------------------------------------------- entities
@pytest.mark.parametrize("value", ["4111 1111 1111 1111", "4111-1111-1111-1111", "5500000000000004", "378282246310005",
                                   "3782 822463 10005", "6011111111111117", "3530111333300000", "4222222222222"])
def test_card_valid(value):
    assert found(f"paid with {value}, thanks") == [("CREDIT_CARD", value)]


@pytest.mark.parametrize("value", ["4111 1111 1111 1112", "9111111111111111", "4111 1111-1111 1111", "1234567812345678"])
def test_card_invalid(value):  # bad Luhn, unknown issuer, mixed separators
    assert ("CREDIT_CARD", value) not in found(f"ref {value}")


def test_card_followed_by_expiry():
    assert found("card 4111 1111 1111 1111 12/27") == [("CREDIT_CARD", "4111 1111 1111 1111")]


@pytest.mark.parametrize("value", ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "FR1420041010050500013M02606",
                                   "NL91ABNA0417164300", "BR1800360305000010009795493C1"])
def test_iban_valid(value):
    assert found(f"IBAN: {value}.") == [("IBAN_CODE", value)]


@pytest.mark.parametrize("value", ["DE88 3704 0044 0532 0130 00", "GB82WEST1234569876543", "XX82WEST12345698765432"])
def test_iban_invalid(value):  # checksum, length, country
    assert not [f for f in found(f"IBAN: {value}.") if f[0] == "IBAN_CODE"]


def test_two_ibans_in_a_row():
    text = "DE89370400440532013000 IBAN GB82WEST12345698765432"
    assert found(text) == [("IBAN_CODE", "DE89370400440532013000"), ("IBAN_CODE", "GB82WEST12345698765432")]


BTC_VALID = ["1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
             "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
             "bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3",
             "bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297"]


@pytest.mark.parametrize("value", BTC_VALID)
def test_bitcoin_valid(value):
    assert found(f"send to {value} now") == [("CRYPTO", value)]


@pytest.mark.parametrize("value", ["1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdr",
                                   "bc1Qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",  # mixed case
                                   "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7k7grplx",  # v1 with bech32
                                   segwit_address(0, bytes(25))])  # v0 program of 25 bytes
def test_bitcoin_invalid(value):
    assert found(f"send to {value} now") == []


def test_bitcoin_reference_encoders_agree():
    assert b58check(bytes(21)) == "1111111111111111111114oLvT2"
    assert found(b58check(b"\x05" + bytes(range(20)))) == [("CRYPTO", b58check(b"\x05" + bytes(range(20))))]
    assert found(b58check(b"\x6f" + bytes(range(20)))) == []  # testnet version byte


def test_ssn_rules():
    assert found("SSN 123-45-6789") == [("US_SSN", "123-45-6789")]
    assert found("ssn 123 45 6789") == [("US_SSN", "123 45 6789")]
    for bad in ("000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000"):
        assert found(f"SSN {bad}") == [], bad
    assert found("id 123456789") == []  # bare nine digits: only after an SSN label
    assert found("SSN: 123456789") == [("US_SSN", "123456789")]
    assert found("call 555-123-4567") == [("PHONE_NUMBER", "555-123-4567")]


@pytest.mark.parametrize("value", ["192.168.1.1", "8.8.8.8", "2001:db8::1", "::1", "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
                                   "::ffff:192.0.2.128", "fe80::1ff:fe23:4567:890a", "2001:DB8:0:0:8:800:200C:417A"])
def test_ip_valid(value):
    assert found(f"from {value}, retrying") == [("IP_ADDRESS", value)]


def test_ip_forms():
    assert found("[2001:db8::1]:443") == [("IP_ADDRESS", "2001:db8::1")]
    assert found("fe80::1%eth0") == [("IP_ADDRESS", "fe80::1")]
    for text in ("256.1.1.1", "1.2.3.4.5", "version 1.2.3.4", "at 12:30:45", "std::vector", "a:b:c", "10.0.19045.2965",
                 "1:2:3:4:5:6:7:8:9", "2001:db8:::1"):
        assert not [f for f in found(text) if f[0] == "IP_ADDRESS"], text


@pytest.mark.parametrize("value", ["aa:bb:cc:dd:ee:ff", "AA-BB-CC-DD-EE-FF", "00:1a:2B:3c:4D:5e", "aabb.ccdd.eeff"])
def test_mac(value):
    assert found(f"device {value} joined") == [("MAC_ADDRESS", value)]


def test_mac_negatives():
    assert found("aa:bb:cc:dd:ee") == [] and found("aa:bb-cc:dd:ee:ff") == [] and found("12:30:45") == []


SECRETS = [
    ("key ", "AKIAIOSFODNN7EXAMPLE", ""),
    ("aws_secret_access_key = ", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""),
    ('"SecretAccessKey": "', "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", '"'),
    ("jwt ", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", ""),
    ("GITHUB_TOKEN=", "ghp_" + "aB3" * 12, ""),
    ("token ", "github_pat_" + "A1" * 11 + "_" + "b2c" * 19 + "d2", ""),
    ("slack ", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", ""),
    ("stripe ", "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", ""),
    ("key=", "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", ""),
    ("Authorization: Bearer ", "mF_9.B5f-4.1JqMzz0123", ""),
]


@pytest.mark.parametrize(("before", "value", "after"), SECRETS)
def test_secrets(before, value, after):
    text = f"{before}{value}{after} end"
    assert found(text) == [("SECRET", value)]
    assert R.redact(text) == f"{before}<SECRET>{after} end"


def test_secret_negatives():
    assert found("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY") == []  # 40 chars but no label
    assert found("eyJub3RqdXN0IjoxfQ.eyJzdWIiOiIxIn0.abc") == []  # header has no "alg"
    assert found("the bearer of bad news") == []
    assert found("xAKIAIOSFODNN7EXAMPLE") == []


def test_pem_block():
    block = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----"
    assert found(f"key:\n{block}\nbye") == [("SECRET", block)]
    truncated = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"
    assert found(truncated) == [("SECRET", truncated)]
    assert found("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----") == []


def test_url_credentials():
    assert R.redact("clone https://alice:s3cr%40t@example.com/x") == "clone https://<URL_CREDENTIALS>@example.com/x"
    assert R.redact("postgres://u:p@10.0.0.5:5432/db") == "postgres://<URL_CREDENTIALS>@<IP_ADDRESS>:5432/db"
    assert found("https://example.com/a:b") == [] and found("see https://example.com") == []


def test_email():
    assert R.redact("Mail bob.smith+tag@mail.example.co.uk.") == "Mail <EMAIL_ADDRESS>."
    assert found("問い合わせはrei57@example.comまで") == [("EMAIL_ADDRESS", "rei57@example.com")]
    assert found("npm i react@18.2.0 and @handle") == []


@pytest.mark.parametrize("value", ["+1-202-555-0143", "(202) 555-0143", "202.555.0143x123", "+44 20 7946 0958", "+44(0)115 4960914",
                                   "(0161) 4960066", "+49 (0) 30 1234567", "030 12345678", "+33 1 41 63 60 83", "01 23 45 67 89",
                                   "+34 912 345 678", "+39 06 1234 5678", "+31 20 123 4567", "+55 11 91234-5678", "090-1234-5678",
                                   "+91 98765 43210", "001-202-555-0143"])
def test_phone_valid(value):
    assert found(f"Tel: {value}") == [("PHONE_NUMBER", value)]
    assert found(f"電話番号は{value}です") == [("PHONE_NUMBER", value)]


@pytest.mark.parametrize("text", ["on 2023-01-15 at 12:30:45", "dated 15.01.2023", "ISBN 978-3-16-148410-0", "ISBN 0-306-40615-2",
                                  "id 123e4567-e89b-12d3-a456-426614174000", "costs $1,234,567.89", "version 10.0.19045.2965",
                                  "Order #112-4567890-1234567", "serial SN 4821-9931-2204", "population 8 336 817",
                                  "at 48.8566123, 2.3522", "ts=1699999999", "1920x1080 pixels", "tracking 9400 1234 5678 9012 3456 78"])
def test_phone_negatives(text):
    assert found(text) == []


def test_overlaps_prefer_validated():
    assert found("4111 1111 1111 1111") == [("CREDIT_CARD", "4111 1111 1111 1111")]  # also phone-shaped
    assert found("IBAN GB82 WEST 1234 5698 7654 32") == [("IBAN_CODE", "GB82 WEST 1234 5698 7654 32")]
    findings = R.find("a 192.168.0.1 b alice@example.org c")
    assert findings == sorted(findings, key=lambda f: f.start)


# ---------------------------------------------------------------- checksums against the corpus oracles
@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.digits, min_size=1, max_size=24))
def test_luhn_matches_oracle(digits):
    assert luhn_ok(digits) == oracle_luhn_ok(digits)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(P.IBAN_LENGTHS)), st.data())
def test_iban_matches_oracle(country, data):
    n = P.IBAN_LENGTHS[country]
    alphabet = data.draw(st.sampled_from([string.digits, string.digits + string.ascii_uppercase]))  # all-digit bodies take a fast path
    rest = data.draw(st.text(alphabet=alphabet, min_size=n - 4, max_size=n - 4))
    check = data.draw(st.integers(0, 99))
    if data.draw(st.booleans()):  # make it valid: the check digits that give mod 97 == 1
        check = 98 - int("".join(str(int(c, 36)) for c in rest + country + "00")) % 97
    iban = f"{country}{check:02d}{rest}"
    assert iban_ok(iban) == oracle_iban_ok(iban)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 16), st.binary(min_size=1, max_size=42))
def test_segwit_rules(version, program):
    address = segwit_address(version, program)
    assert segwit_ok(address) == (len(program) in (20, 32) if version == 0 else 2 <= len(program) <= 40)


_HEXTET = st.text(alphabet="0123456789abcdefABCDEF", max_size=4)
_OCTET = st.sampled_from(["0", "7", "00", "01", "010", "99", "199", "255", "256", "999"])


@settings(max_examples=500, deadline=None)
@given(st.lists(_HEXTET, min_size=1, max_size=11), st.none() | st.lists(_OCTET, min_size=4, max_size=4))
def test_ipv6_ok_matches_ipaddress(groups, quad):
    # ipv6_ok stands in for ipaddress.IPv6Address on what the IPv6 pattern matches: hex groups of
    # at most 4 digits joined by colons, maybe a dotted quad at the end (many "::" and ":::" included).
    tok = ":".join(groups) + ("" if quad is None else ":" + ".".join(quad))
    try:
        ipaddress.IPv6Address(tok)
        expected = True
    except ValueError:
        expected = False
    assert ipv6_ok(tok) == expected


def test_label_words_are_not_prefixes_of_each_other():
    # The context check finds phone and id-ish labels with one trie; that equals trying the phone
    # words first only while no word of one list is a prefix of a word of the other.
    assert not [(a, b) for a in P.PHONE_WORDS for b in P.NOT_PHONE_WORDS if a.startswith(b) or b.startswith(a)]


def test_redact_with_counts_and_entities():
    text = "mail a@b.co or c@d.co, call +44 20 7946 0958"
    redacted, counts = R.redact_with_counts(text)
    assert redacted == "mail <EMAIL_ADDRESS> or <EMAIL_ADDRESS>, call <PHONE_NUMBER>"
    assert counts == {"EMAIL_ADDRESS": 2, "PHONE_NUMBER": 1}
    only = Redactor(["EMAIL_ADDRESS"])
    assert only.redact(text) == "mail <EMAIL_ADDRESS> or <EMAIL_ADDRESS>, call +44 20 7946 0958"
    assert Redactor([]).find(text) == [] and Redactor([]).redact_batch([text]) == [text]
    with pytest.raises(ValueError, match="unknown entities"):
        Redactor(["NAME"])
    with pytest.raises(ValueError, match="prefilter"):
        Redactor(prefilter="re2")
    with pytest.raises(TypeError):
        R.find(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        R.find_batch(["ok", 3])
    assert set(ENTITIES) == set(_DETECTOR_ENTITY.values())


# ---------------------------------------------------------------- properties
PII_VALUES = BTC_VALID + [
    "4111 1111 1111 1111", "DE89 3704 0044 0532 0130 00", "bob@example.com", "+44 20 7946 0958", "(202) 555-0143",
    "123-45-6789", "192.168.1.1", "2001:db8::1", "aa:bb:cc:dd:ee:ff", "AKIAIOSFODNN7EXAMPLE", "https://u:p@h.io/x",
    "2023-01-15", "12:30", "$1,234.56", "v1.2.3", "ISBN 978-3-16-148410-0", "Order #112-4567890-1234567",
    # phone runs laid out alike but told apart by a digit (the plans _phone shares across runs)
    "+44 (0) 20 7946 0958", "+44 (1) 20 7946 0958", "0044 20 7946 0958", "+1 202 555 0143", "+12 025 550 143",
    "020 7946 0958", "120 7946 0958", "(0161) 4960066", "(1161) 4960066", "02079460958", "12079460958",
]
NEUTRAL = ["the", "from", "é", "\0", "x", "1", "42", "-", "@", ":", "."]
LABELS = ["call", "Tel:", "SSN", "IBAN", "電話", "order", "version"]  # context words change what is found


def _texts(words: list[str], seps: list[str]) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(PII_VALUES + words), max_size=8).flatmap(
        lambda parts: st.lists(st.sampled_from(seps), min_size=len(parts), max_size=len(parts)).map(
            lambda chosen: "".join(p + s for p, s in zip(parts, chosen))
        )
    )


# Digit groups separated by a bare space run together ("+44 20 7946 0958 4111 1111 ...": where does
# the card start?), so the no-leak property uses punctuation between values; the others do not.
texts_with_pii = _texts(NEUTRAL, [", ", "\n", "; ", " | "])
texts_with_labels = _texts(NEUTRAL + LABELS, [" ", ", ", "\n", " - ", "; "])
any_text = st.text(st.characters(blacklist_categories=()), max_size=200)  # surrogates and NUL included
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(any_text)
def test_redact_never_raises(text):
    out, counts = R.redact_with_counts(text)
    assert isinstance(out, str) and sum(counts.values()) == len(R.find(text))


@FAST
@given(st.one_of(texts_with_pii, any_text))
def test_redacted_text_has_no_found_value(text):
    # Without labels: a value next to "SSN" or "order" is (by design) not read as a phone number,
    # so the same digits found elsewhere would legitimately survive there.
    redacted = R.redact(text)
    for f in R.find(text):
        assert text[f.start : f.end] not in redacted


@FAST
@given(st.one_of(texts_with_labels, any_text))
def test_findings_sorted_and_prefilter_loses_nothing(text):
    findings = R.find(text)
    assert all(a.end <= b.start for a, b in zip(findings, findings[1:]))  # sorted, non-overlapping
    assert findings == unfiltered(text)


@FAST
@given(st.lists(texts_with_labels, min_size=2, max_size=8))
def test_phone_plans_kept_across_calls_change_nothing(texts):
    # _phone keeps its plans by layout from call to call: what it finds must not depend on the
    # texts that came before (runs laid out alike but told apart by a digit are in PII_VALUES).
    warm = [R.find(t) for t in texts]
    for text, expected in zip(texts, warm):
        clear_plans()
        assert R.find(text) == expected


@FAST
@given(st.text(alphabet=string.ascii_letters + " ", max_size=300))
def test_clean_text_has_no_findings(text):
    assert R.find(text) == []


@FAST
@given(st.lists(st.one_of(texts_with_labels, any_text, st.none()), max_size=12))
def test_batch_equals_per_text(texts):
    expected = [[] if t is None else R.find(t) for t in texts]
    assert R.find_batch(texts) == expected
    assert R.redact_batch(texts) == [None if t is None else R.redact(t) for t in texts]
    arrow = Redactor(prefilter="arrow")
    assert arrow.find_batch(texts) == expected  # texts Arrow cannot hold (lone surrogates) fall back
    if all(t is None or not any(0xD800 <= ord(c) <= 0xDFFF for c in t) for t in texts):
        assert arrow.find_batch(pa.array(texts, pa.string())) == expected
