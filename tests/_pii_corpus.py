"""A labelled PII corpus for the Redactor: Faker sentences with planted values and hard negatives.

Frozen: the generator and its seed were fixed before the detectors were tuned; change it only to
fix a bug in the generator itself (never to suit a detector), and then say so in
``bench/results/redact_accuracy.md``. ``fingerprint()`` of the default corpus is recorded there.

Every text is a few segments joined by spaces; a segment is a PII sentence (one planted value,
whose entity, start and end are recorded), a hard-negative sentence (dates, times, prices,
version numbers, order ids, ISBNs, UUIDs, phone-like serials, plain numbers, checksum-invalid
look-alikes...; recorded as negatives for diagnostics, not scored) or filler text.

``score(redactor, corpus)``: a finding matches a planted value when the entity is the same and
it covers at least half of the value; a finding overlapping no planted value of its entity is a
false positive. Independent reference encoders (Luhn, mod-97, base58check, bech32) live here so
that the tests do not check the detectors against themselves.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import random
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from faker import Faker

SEED = 20240917
LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR", "ja_JP", "en_IN")


@dataclass(frozen=True, slots=True)
class Span:
    entity: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Sample:
    text: str
    locale: str
    spans: tuple[Span, ...]  # planted PII
    negatives: tuple[Span, ...]  # hard negatives (entity = kind), for diagnostics only


# ---------------------------------------------------------------- reference encoders (oracles)
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
BECH = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    s = iban.replace(" ", "").upper()
    s = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in s)) % 97 == 1


def b58check(payload: bytes) -> str:
    data = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, rem = divmod(n, 58)
        out = B58[rem] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def _polymod(values: Sequence[int]) -> int:
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def segwit_address(version: int, program: bytes, hrp: str = "bc") -> str:
    acc = bits = 0
    data = [version]
    for b in program:
        acc, bits = (acc << 8) | b, bits + 8
        while bits >= 5:
            bits -= 5
            data.append((acc >> bits) & 31)
    if bits:
        data.append((acc << (5 - bits)) & 31)
    const = 1 if version == 0 else 0x2BC830A3
    hrp_exp = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    pm = _polymod(hrp_exp + data + [0] * 6) ^ const
    return hrp + "1" + "".join(BECH[d] for d in data + [(pm >> 5 * (5 - i)) & 31 for i in range(6)])


# ---------------------------------------------------------------- planted values
def _group(s: str, sizes: Sequence[int], sep: str) -> str:
    out, i = [], 0
    for n in sizes:
        if i >= len(s):
            break
        out.append(s[i : i + n])
        i += n
    if i < len(s):
        out.append(s[i:])
    return sep.join(out)


CARD_TYPES = ("visa16", "visa16", "visa16", "mastercard", "mastercard", "amex", "discover", "jcb16", "jcb15", "diners", "visa13", "visa19")


def gen_card(f: Faker, r: random.Random) -> str:
    num = f.credit_card_number(r.choice(CARD_TYPES))
    style = r.random()
    if style < 0.4:
        return num
    sep = " " if style < 0.8 else "-"
    if len(num) == 15:
        return _group(num, (4, 6, 5), sep)
    if len(num) == 14:
        return _group(num, (4, 6, 4), sep)
    return _group(num, (4, 4, 4, 4), sep)


IBAN_LEN = {"GB": 22, "DE": 22, "FR": 27, "ES": 24, "IT": 27, "NL": 18, "BR": 29}


def gen_iban(f: Faker, r: random.Random) -> str:
    iban = f.iban()
    # Bug fix (not tuning): Faker's en_US/ja_JP/en_IN providers emit 21-character "GB" IBANs, which no
    # bank would accept; pad the BBAN to the country's length and recompute the check digits.
    need = IBAN_LEN.get(iban[:2], len(iban))
    if len(iban) != need:
        bban = (iban[4:] + "".join(r.choice(string.digits) for _ in range(need)))[: need - 4]
        check = 98 - int("".join(str(int(ch, 36)) for ch in bban + iban[:2] + "00")) % 97
        iban = f"{iban[:2]}{check:02d}{bban}"
    return _group(iban, [4] * 9, " ") if r.random() < 0.4 else iban


def gen_ip(f: Faker, r: random.Random) -> str:
    x = r.random()
    if x < 0.55:
        return r.choice((f.ipv4, f.ipv4_public, f.ipv4_private))()
    if x < 0.8:
        return f.ipv6()
    words = [r.getrandbits(16) for _ in range(8)]
    zero_from = r.randrange(0, 7)
    for i in range(zero_from, min(8, zero_from + r.randint(2, 5))):
        words[i] = 0
    if r.random() < 0.2:
        words[:2] = [0xFE80, 0]
    addr = str(ipaddress.IPv6Address(b"".join(w.to_bytes(2, "big") for w in words)))
    return addr.upper() if r.random() < 0.15 else addr


def gen_mac(f: Faker, r: random.Random) -> str:
    mac = f.mac_address()
    x = r.random()
    if x < 0.45:
        return mac
    if x < 0.7:
        return mac.upper()
    if x < 0.9:
        return mac.upper().replace(":", "-")
    h = mac.replace(":", "")
    return f"{h[:4]}.{h[4:8]}.{h[8:]}"


def gen_ssn(us: Faker, r: random.Random) -> str:
    ssn = us.ssn()
    return ssn.replace("-", " ") if r.random() < 0.2 else ssn


def gen_btc(r: random.Random) -> str:
    x = r.random()
    if x < 0.35:
        return b58check(b"\x00" + r.randbytes(20))
    if x < 0.55:
        return b58check(b"\x05" + r.randbytes(20))
    if x < 0.8:
        return segwit_address(0, r.randbytes(20))
    if x < 0.9:
        return segwit_address(0, r.randbytes(32))
    return segwit_address(1, r.randbytes(32))


def _rand(r: random.Random, alphabet: str, n: int) -> str:
    return "".join(r.choice(alphabet) for _ in range(n))


ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"


def _b64url(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=").decode()


def gen_secret(f: Faker, r: random.Random) -> tuple[str, str, str]:
    """(before, value, after): the planted value is the secret itself, labels stay outside."""
    k = r.randrange(10)
    upper32 = string.ascii_uppercase + "234567"
    if k == 0:
        return r.choice(("aws_access_key_id = ", "AWS key ", "AccessKeyId: ")), r.choice(("AKIA", "ASIA")) + _rand(r, upper32, 16), ""
    if k == 1:
        label = r.choice(("aws_secret_access_key = ", "AWS_SECRET_ACCESS_KEY=", '"SecretAccessKey": "', "secret key: "))
        return label, _rand(r, B64, 40), '"' if label.endswith('"') else ""
    if k == 2:
        kind = r.choice(("RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY"))
        body = base64.b64encode(r.randbytes(r.randint(90, 400))).decode()
        lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
        return "key:\n", f"-----BEGIN {kind}-----\n{lines}\n-----END {kind}-----", "\n"
    if k == 3:
        head = {"alg": r.choice(("HS256", "RS256", "ES256")), "typ": "JWT"}
        body = {"sub": str(r.randint(1, 10**9)), "name": f.name(), "iat": r.randint(1_500_000_000, 1_800_000_000)}
        sig = base64.urlsafe_b64encode(r.randbytes(r.choice((32, 64, 256)))).rstrip(b"=").decode()
        return r.choice(("token=", "jwt: ", "cookie session=", "")), f"{_b64url(head)}.{_b64url(body)}.{sig}", ""
    if k == 4:
        if r.random() < 0.8:
            return "GITHUB_TOKEN=", r.choice(("ghp_", "gho_", "ghs_")) + _rand(r, ALNUM, 36), ""
        return "token ", "github_pat_" + _rand(r, ALNUM, 22) + "_" + _rand(r, ALNUM, 59), ""
    if k == 5:
        parts = [str(r.randint(10**9, 10**13)) for _ in range(2)]
        return "slack: ", f"xox{r.choice('abpr')}-{parts[0]}-{parts[1]}-{_rand(r, ALNUM, 24)}", ""
    if k == 6:
        return "stripe key ", r.choice(("sk_live_", "rk_live_")) + _rand(r, ALNUM, r.choice((24, 34, 99))), ""
    if k == 7:
        return "maps api key=", "AIza" + _rand(r, ALNUM + "-_", 35), ""
    return r.choice(("Authorization: Bearer ", "-H 'Authorization: Bearer ", "bearer ")), _rand(r, B64URL + ".", r.randint(24, 80)), ""


def gen_url_creds(f: Faker, r: random.Random) -> tuple[str, str, str]:
    """(before, value, after); an IP host is labelled too, by ``_pii``."""
    scheme = r.choice(("https", "http", "ftp", "postgres", "postgresql", "mysql", "redis", "amqp", "mongodb+srv", "sftp"))
    user = f.user_name()
    pw = quote(f.password(length=r.randint(8, 20)), safe="!$&'()*+,;=-._~")
    host = f.domain_name() if r.random() < 0.8 else f.ipv4_private()
    port = f":{r.choice((5432, 3306, 6379, 5672, 8080, 21))}" if r.random() < 0.4 else ""
    path = "/" + f.uri_path() if r.random() < 0.6 else ""
    return f"{scheme}://", f"{user}:{pw}", f"@{host}{port}{path}"


def gen_email(f: Faker, r: random.Random) -> str:
    x = r.random()
    if x < 0.4:
        return f.email()
    if x < 0.6:
        return f.free_email()
    if x < 0.8:
        return f.company_email()
    user, domain = f.email().split("@")
    last = f.last_name().lower().replace(" ", "")  # bug fix: "da luz" put a space in the address
    return f"{user}+{f.word().replace(' ', '')}@{domain}" if x < 0.9 else f"{user}.{last}@{domain}".encode("ascii", "ignore").decode()


# ---------------------------------------------------------------- templates
PHONE_CTX = {
    "en_US": ("Call me at {}", "Phone: {}", "mobile {}", "Reach the office on {} after 5pm", "tel. {}", "text {} for details"),
    "en_GB": ("Ring me on {}", "Tel: {}", "mobile: {}", "Call the surgery on {}", "phone {}"),
    "de_DE": ("Telefon: {}", "Tel.: {}", "Rufen Sie uns an unter {}", "Handy {}", "Erreichbar unter {}"),
    "fr_FR": ("Téléphone : {}", "Tél. {}", "Appelez le {}", "portable : {}", "Contactez-nous au {}"),
    "es_ES": ("Teléfono: {}", "Llámame al {}", "Tel. {}", "móvil: {}", "Contacto: {}"),
    "it_IT": ("Telefono: {}", "chiamare il {}", "Tel. {}", "cellulare {}", "Contatto: {}"),
    "nl_NL": ("Bel {}", "Telefoon: {}", "tel. {}", "mobiel: {}", "Bereikbaar op {}"),
    "pt_BR": ("Telefone: {}", "Ligue para {}", "Tel. {}", "celular: {}", "WhatsApp {}"),
    "ja_JP": ("電話番号は{}です", "TEL {}", "連絡先：{}", "お問い合わせ: {}", "携帯 {}"),
    "en_IN": ("Call {}", "WhatsApp {}", "Mobile no. {}", "Contact: {}", "Ph: {}"),
}
PHONE_BARE = ("{name}, {}, {city}", "{name} ({})", "{} — {name}", "{city} office {} open daily", "{name}: {}")
TEMPLATES: dict[str, tuple[str, ...]] = {
    "EMAIL_ADDRESS": ("Contact me at {}.", "email: {}", "Send the files to {} before Friday.", "({})", "<{}>", "mailto:{}",
                      "{} wrote:", "メール: {}", "問い合わせは{}まで", "cc {}, thanks"),
    "CREDIT_CARD": ("card number {}", "Paid with {} exp 09/27", "CC: {}", "my card is {}", "{} was charged",
                    "Kartennummer {}", "carte {}"),
    "IBAN_CODE": ("IBAN: {}", "Please transfer to {}", "Bankverbindung: {}", "IBAN {} (BIC {bic})", "compte {}", "rekening {}"),
    "IP_ADDRESS": ("from {}", "IP {}", "connect to {} on port 22", "login from {} failed", "host={}", "client {} said hi",
                   "server at {} is down"),
    "MAC_ADDRESS": ("MAC {}", "device {} joined the network", "hwaddr {}", "ether {}", "bssid={}"),
    "US_SSN": ("SSN: {}", "social security number {}", "SSN {}", "ssn={}", "Her SSN is {}.", "{} on file"),
    "CRYPTO": ("Send BTC to {}", "donations: {}", "bitcoin:{}", "wallet {}", "pay {} please", "{}"),
    "URL_CREDENTIALS": ("clone from {}", "DATABASE_URL={}", "see {}", "endpoint: {}", "curl {}"),
    "SECRET": ("{}", "config {}", "leaked {} oops", "export {}"),
}
WEIGHTS = {"PHONE_NUMBER": 25, "EMAIL_ADDRESS": 12, "CREDIT_CARD": 10, "IBAN_CODE": 10, "IP_ADDRESS": 12, "CRYPTO": 8,
           "US_SSN": 5, "MAC_ADDRESS": 5, "URL_CREDENTIALS": 5, "SECRET": 8}


# ---------------------------------------------------------------- hard negatives
def _neg(f: Faker, r: random.Random) -> tuple[str, str, str]:
    """(kind, sentence template, value)."""
    # Fixed bounds: Faker's defaults end at "now", which would make the corpus depend on the clock.
    dt = f.date_time_between(datetime(1970, 1, 1), datetime(2030, 12, 31))
    d = dt.date()
    k = r.randrange(22)
    if k == 0:
        fmt = r.choice(("%Y-%m-%d", "%d.%m.%Y", "%m/%d/%Y", "%d/%m/%Y", "%Y/%m/%d", "%d-%m-%Y", "%Y%m%d"))
        return "date", r.choice(("on {}", "dated {}", "Datum: {}", "le {}", "{}")), d.strftime(fmt)
    if k == 1:
        return "datetime", r.choice(("at {}", "timestamp {}", "{}")), r.choice((dt.isoformat(), f"{d} {dt:%H:%M:%S}", f"{dt:%Y-%m-%dT%H:%M:%S}"))
    if k == 2:
        return "time", r.choice(("at {}", "meeting {}", "{} Uhr")), r.choice((f"{dt:%H:%M:%S}", f"{dt:%H:%M}", f"{r.randint(1, 12)}:{r.randint(0, 59):02d} pm"))
    if k == 3:
        return "price", r.choice(("costs {}", "total {}", "Preis: {}", "{} incl. VAT")), r.choice((f.pricetag(), f"${r.randint(1000, 9_999_999):,}.{r.randint(0, 99):02d}", f"{r.randint(100, 99999)} JPY", f"USD {r.randint(1, 999)} {r.randint(100, 999)},00"))
    if k == 4:
        v = r.choice((f"{r.randint(0, 20)}.{r.randint(0, 40)}.{r.randint(0, 200)}", f"v{r.randint(0, 9)}.{r.randint(0, 30)}.{r.randint(0, 99)}",
                      f"{r.randint(60, 130)}.0.{r.randint(1000, 7000)}.{r.randint(0, 300)}", f"10.0.{r.randint(10000, 22999)}.{r.randint(100, 4000)}",
                      f"{r.randint(1, 9)}.{r.randint(0, 9)}.{r.randint(0, 9)}.{r.randint(0, 99)}", f"{r.randint(1, 4)}.{r.randint(0, 99)}.{r.randint(0, 999)}-rc{r.randint(1, 5)}"))
        return "version", r.choice(("version {}", "upgrade to {}", "Chrome {}", "firmware {}", "release {}", "{} is out")), v
    if k == 5:
        v = r.choice((f"{r.randint(100, 999)}-{r.randint(10**6, 10**7 - 1)}-{r.randint(10**6, 10**7 - 1)}", f"ORD-{d.year}-{r.randint(0, 10**7):07d}",
                      f"{d:%Y%m%d}-{r.randint(0, 999999):06d}", f"#{r.randint(10**5, 10**9)}", f"A{r.randint(10**7, 10**8)}", f"{r.randint(10**9, 10**10 - 1)}"))
        return "order_id", r.choice(("Order #{}", "order no. {}", "Bestellnummer {}", "commande {}", "order {} shipped", "ref {}")), v
    if k == 6:
        return "isbn", r.choice(("ISBN {}", "ISBN: {}", "isbn {}", "(ISBN {})")), r.choice((f.isbn13(), f.isbn10(), f.isbn13().replace("-", ""), f.isbn10().replace("-", "")))
    if k == 7:
        u = f.uuid4()
        return "uuid", r.choice(("id {}", "request {} failed", "trace_id={}", "{}")), u.upper() if r.random() < 0.2 else u
    if k == 8:
        v = r.choice((f.bothify("####-####-####"), f.bothify("##-#######-#"), f.bothify("### #### ###"), f.bothify("SN########"),
                      f.bothify("###-###-####"), f.bothify("####.####.##"), f.bothify("(##) ####-####")))
        return "serial", r.choice(("SN {}", "S/N: {}", "Serial no. {}", "Part no. {}", "Model {}", "Lot {}", "Batch {}", "Ticket {}", "Case {}", "Invoice {}")), v
    if k == 9:
        n = r.randint(0, 10 ** r.randint(1, 12))
        v = r.choice((str(n), f"{n:,}", f"{n:,}".replace(",", "."), f"{n:,}".replace(",", " ")))
        return "number", r.choice(("{} visitors", "population {}", "{} bytes", "ID {}", "account {} items", "we sold {} units", "{}")), v
    if k == 10:
        return "timestamp", r.choice(("ts={}", "epoch {}", "created_at: {}")), str(r.randint(1_000_000_000, 1_900_000_000) * r.choice((1, 1000)))
    if k == 11:
        digits = f.credit_card_number(r.choice(CARD_TYPES))
        bad = digits[:-1] + str((int(digits[-1]) + r.randint(1, 9)) % 10)
        return "card_bad_luhn", r.choice(("ref {}", "no. {}", "{}")), _group(bad, (4, 4, 4, 4), r.choice(("", " ", "-")))
    if k == 12:
        iban = f.iban()
        bad = iban[:2] + f"{(int(iban[2:4]) + r.randint(1, 50)) % 97 + 2:02d}" + iban[4:]
        return "iban_bad", r.choice(("IBAN {}", "acct {}")), bad
    if k == 13:
        addr = gen_btc(r)
        i = r.randrange(5, len(addr) - 1)
        alphabet = BECH if addr.startswith("bc1") else B58
        bad = addr[:i] + r.choice(alphabet.replace(addr[i], "")) + addr[i + 1 :]
        return "btc_bad", r.choice(("address {}", "{}")), bad
    if k == 14:
        return "pkg", r.choice(("npm i {}", "requires {}")), f"{f.word()}@{r.randint(0, 20)}.{r.randint(0, 9)}.{r.randint(0, 20)}"
    if k == 15:
        return "handle", r.choice(("follow @{} for more", "thanks @{}!", "cc @{}")), f.user_name()
    if k == 16:
        return "hash", r.choice(("commit {}", "sha256 {}", "digest: {}", "etag {}")), r.choice((r.randbytes(20).hex(), r.randbytes(32).hex(), base64.b64encode(r.randbytes(30)).decode()))
    if k == 17:
        return "coords", r.choice(("at {}", "GPS {}")), f"{f.latitude()}, {f.longitude()}"
    if k == 18:
        return "measure", r.choice(("{} screen", "size {}", "{} pixels")), r.choice((f"{r.randint(320, 7680)}x{r.randint(240, 4320)}", f"{r.randint(1, 999)},{r.randint(0, 99)} km", f"{r.randint(1, 100)}%"))
    if k == 19:
        return "postcode", r.choice(("{city} {}", "PLZ {}", "ZIP {}")), f.postcode()
    if k == 20:
        pem = "PUBLIC KEY" if r.random() < 0.5 else "CERTIFICATE"
        body = base64.b64encode(r.randbytes(120)).decode()
        return "pem_public", "{}", f"-----BEGIN {pem}-----\n{body[:64]}\n{body[64:]}\n-----END {pem}-----"
    return "tracking", r.choice(("tracking {}", "Sendungsnummer {}", "colis {}")), r.choice((f"1Z{f.bothify('???######??######').upper()}", f.bothify("9400 #### #### #### #### ##"), f.bothify("JD0#############")))


# ---------------------------------------------------------------- assembly
def _fill(template: str, f: Faker) -> str:
    # ``str.format`` would choke on braces in values, so substitute the named fields only.
    return template.replace("{name}", f.name()).replace("{city}", f.city()).replace("{bic}", f.swift())


def _pii(entity: str, f: Faker, us: Faker, r: random.Random, locale: str) -> tuple[str, str, str, list[Span]]:
    """(before, value, after, extra) of one PII sentence; ``extra`` holds spans relative to ``after``."""
    before = after = ""
    extra: list[Span] = []
    if entity == "PHONE_NUMBER":
        value = f.phone_number()
        template = r.choice(PHONE_BARE) if r.random() < 0.2 else r.choice(PHONE_CTX[locale])
    elif entity == "SECRET":
        before, value, after = gen_secret(f, r)
        template = r.choice(TEMPLATES[entity])
    elif entity == "URL_CREDENTIALS":
        before, value, after = gen_url_creds(f, r)
        template = r.choice(TEMPLATES[entity])
        host = after[1:].split("/")[0].split(":")[0]
        if host[0].isdigit():  # bug fix: an IP host is an IP_ADDRESS too, and was left unlabelled
            extra.append(Span("IP_ADDRESS", 1, 1 + len(host)))
    else:
        gens: dict[str, Callable[[], str]] = {
            "EMAIL_ADDRESS": lambda: gen_email(f, r), "CREDIT_CARD": lambda: gen_card(f, r), "IBAN_CODE": lambda: gen_iban(f, r),
            "IP_ADDRESS": lambda: gen_ip(f, r), "MAC_ADDRESS": lambda: gen_mac(f, r), "US_SSN": lambda: gen_ssn(us, r),
            "CRYPTO": lambda: gen_btc(r),
        }
        value = gens[entity]()
        template = r.choice(TEMPLATES[entity])
        if entity == "IP_ADDRESS" and ":" in value and "port" in template:
            template = "connect to [{}]:22"
    head, _, tail = _fill(template, f).partition("{}")
    return head + before, value, after + tail, extra


def _faker(locale: str, seed: int) -> Faker:
    f = Faker(locale)
    f.seed_instance(seed)
    for provider in f.providers:  # it_IT builds its city list from a set: fix its order
        if isinstance(getattr(provider, "cities", None), list):
            provider.cities = sorted(provider.cities)
    return f


def generate(n: int = 3000, seed: int = SEED) -> list[Sample]:
    """``n`` labelled texts, a pure function of ``(n, seed)`` and the Faker version."""
    r = random.Random(seed)
    fakers = {}
    for i, loc in enumerate(LOCALES):
        fakers[loc] = _faker(loc, seed + i)
    us = fakers["en_US"]
    entities, weights = zip(*WEIGHTS.items())
    out: list[Sample] = []
    for _ in range(n):
        loc = r.choice(LOCALES)
        f = fakers[loc]
        parts: list[str] = []
        spans: list[Span] = []
        negs: list[Span] = []
        pos = 0
        for _seg in range(r.randint(1, 4)):
            x = r.random()
            if x < 0.45:
                entity = r.choices(entities, weights)[0]
                head, value, tail, extra = _pii(entity, f, us, r, loc)
                spans.append(Span(entity, pos + len(head), pos + len(head) + len(value)))
                base = pos + len(head) + len(value)
                spans.extend(Span(e.entity, base + e.start, base + e.end) for e in extra)
            elif x < 0.75:
                kind, template, value = _neg(f, r)
                head, _, tail = _fill(template, f).partition("{}")
                negs.append(Span(kind, pos + len(head), pos + len(head) + len(value)))
            else:
                head, value, tail = "", f.sentence(nb_words=r.randint(4, 14)), ""
            seg = head + value + tail
            sep = "" if loc == "ja_JP" and not seg[-1].isascii() and r.random() < 0.5 else " "
            parts.append(seg + sep)
            pos += len(seg) + len(sep)
        out.append(Sample("".join(parts).rstrip(), loc, tuple(spans), tuple(negs)))
    return out


def low_pii_captions(n: int = 100_000, seed: int = SEED, pii_rate: float = 0.01) -> list[str]:
    """Caption-like texts (Faker sentences, mostly en_US), about ``pii_rate`` of them with one PII value."""
    r = random.Random(seed + 1)
    fakers = [_faker(loc, seed + 100 + i) for i, loc in enumerate(("en_US", "en_US", "en_US", "en_GB", "de_DE", "fr_FR"))]
    us = fakers[0]
    entities, weights = zip(*WEIGHTS.items())
    texts = []
    words = fakers[0].words(5000)
    for _ in range(n):
        f = r.choice(fakers)
        x = r.random()
        if x < pii_rate:
            entity = r.choices(entities, weights)[0]
            head, value, tail, _ = _pii(entity, f, us, r, "en_US" if f is us else "en_GB")
            texts.append(f"{f.sentence()} {head}{value}{tail}")
        elif x < 0.3:
            texts.append(f.sentence(nb_words=r.randint(6, 20)))
        else:  # cheaper than Faker, same flavour: a caption from a word pool, sometimes with a number
            cap = " ".join(r.choices(words, k=r.randint(6, 24))).capitalize()
            texts.append(f"{cap}, {r.randint(1990, 2024)}." if r.random() < 0.2 else cap + ".")
    return texts


def fingerprint(corpus: Sequence[Sample]) -> str:
    h = hashlib.sha256()
    for s in corpus:
        h.update(s.text.encode() + b"\0" + repr(s.spans).encode() + b"\1")
    return h.hexdigest()[:16]


# ---------------------------------------------------------------- scoring
def _find_all(redactor: Any, texts: list[str]) -> list[Sequence[Any]]:
    if hasattr(redactor, "find_batch"):
        return list(redactor.find_batch(texts))
    return [redactor.find(t) for t in texts]


def score(redactor: Any, corpus: Sequence[Sample]) -> dict[str, dict[str, float]]:
    """Per-entity ``{tp, fp, fn, precision, recall, f2}``. ``redactor`` needs ``find`` (or
    ``find_batch``) returning objects with ``entity``, ``start`` and ``end``."""
    found = _find_all(redactor, [s.text for s in corpus])
    counts: dict[str, list[int]] = {}
    for sample, findings in zip(corpus, found):
        matched: set[int] = set()
        for fd in findings:
            c = counts.setdefault(fd.entity, [0, 0, 0])
            overlaps = False
            for i, sp in enumerate(sample.spans):
                if sp.entity != fd.entity:
                    continue
                ov = min(sp.end, fd.end) - max(sp.start, fd.start)
                if ov > 0:
                    overlaps = True
                    if 2 * ov >= sp.end - sp.start:
                        matched.add(i)
            if not overlaps:
                c[1] += 1
        for i, sp in enumerate(sample.spans):
            c = counts.setdefault(sp.entity, [0, 0, 0])
            if i in matched:
                c[0] += 1
            else:
                c[2] += 1
    out = {}
    for entity, (tp, fp, fn) in sorted(counts.items()):
        p = tp / (tp + fp) if tp + fp else 1.0
        rc = tp / (tp + fn) if tp + fn else 1.0
        f2 = 5 * p * rc / (4 * p + rc) if p + rc else 0.0
        out[entity] = {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": rc, "f2": f2}
    return out


def misses(redactor: Any, corpus: Sequence[Sample], entity: str) -> tuple[list[str], list[str]]:
    """(missed planted values, false-positive substrings) of one entity: a debugging aid."""
    found = _find_all(redactor, [s.text for s in corpus])
    fns, fps = [], []
    for sample, findings in zip(corpus, found):
        for sp in sample.spans:
            if sp.entity == entity and not any(
                fd.entity == entity and 2 * (min(sp.end, fd.end) - max(sp.start, fd.start)) >= sp.end - sp.start for fd in findings
            ):
                fns.append(sample.text[sp.start : sp.end])
        for fd in findings:
            if fd.entity == entity and not any(
                sp.entity == entity and min(sp.end, fd.end) > max(sp.start, fd.start) for sp in sample.spans
            ):
                fps.append(f"{sample.text[fd.start : fd.end]!r} in {sample.text!r}")
    return fns, fps
