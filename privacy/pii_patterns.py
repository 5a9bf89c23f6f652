"""Data tables for :mod:`exashard.privacy.redact`: IBAN lengths, card IIN ranges, calling codes,
context words. Kept apart from the code so that the detector logic stays short and reviewable."""

from __future__ import annotations

# IBAN length per country (SWIFT IBAN registry).
IBAN_LENGTHS: dict[str, int] = {
    cc: int(n)
    for cc, n in (
        item.split(":")
        for item in ["AD:24", "AE:23", "AL:28", "AT:20", "AZ:28", "BA:20", "BE:16", "BG:22", "BH:22", "BI:27", "BR:29", "BY:28", "CH:21", "CR:22", "CY:28", "CZ:24", "DE:22", "DJ:27", "DK:18", "DO:28", "EE:20", "EG:29", "ES:24", "FI:18", "FK:18", "FO:18", "FR:27", "GB:22", "GE:22", "GI:23", "GL:18", "GR:27", "GT:28", "HR:21", "HU:28", "IE:22", "IL:23", "IQ:23", "IS:26", "IT:27", "JO:30", "KW:30", "KZ:20", "LB:28", "LC:32", "LI:21", "LT:20", "LU:20", "LV:21", "LY:25", "MC:27", "MD:24", "ME:22", "MK:19", "MN:20", "MR:27", "MT:31", "MU:30", "NI:28", "NL:18", "NO:15", "OM:23", "PK:24", "PL:28", "PS:29", "PT:25", "QA:29", "RO:24", "RS:22", "RU:33", "SA:24", "SC:31", "SD:18", "SE:24", "SI:19", "SK:24", "SM:27", "SO:23", "ST:25", "SV:28", "TL:23", "TN:24", "TR:26", "UA:29", "VA:22", "VG:24", "XK:20", "YE:30"]
    )
}

# Card issuer ranges: (first digits low, high, allowed lengths). A number is a card when a prefix
# of it falls in a range whose lengths include its length (and the Luhn check holds).
CARD_IIN: tuple[tuple[int, int, frozenset[int]], ...] = tuple(
    (lo, hi, frozenset(lengths))
    for lo, hi, lengths in (
        (4, 4, (13, 16, 19)),  # Visa
        (51, 55, (16,)),  # Mastercard
        (2221, 2720, (16,)),  # Mastercard 2-series
        (34, 34, (15,)),  # American Express
        (37, 37, (15,)),
        (6011, 6011, (16, 17, 18, 19)),  # Discover
        (644, 649, (16, 17, 18, 19)),
        (65, 65, (16, 17, 18, 19)),
        (3500, 3599, (16, 17, 18, 19)),  # JCB (3528-3589 assigned; the whole 35 block is seen in the wild)
        (1800, 1800, (15,)),  # JCB (legacy)
        (2131, 2131, (15,)),
        (300, 305, (14, 15, 16, 17, 18, 19)),  # Diners Club
        (3095, 3095, (14, 15, 16, 17, 18, 19)),
        (36, 36, (14, 15, 16, 17, 18, 19)),
        (38, 39, (14, 15, 16, 17, 18, 19)),
        (62, 62, (16, 17, 18, 19)),  # UnionPay
        (2200, 2204, (16, 17, 18, 19)),  # Mir
        (5018, 5018, (13, 14, 15, 16, 17, 18, 19)),  # Maestro
        (5020, 5020, (13, 14, 15, 16, 17, 18, 19)),
        (5038, 5038, (13, 14, 15, 16, 17, 18, 19)),
        (56, 58, (13, 14, 15, 16, 17, 18, 19)),
        (6304, 6304, (13, 14, 15, 16, 17, 18, 19)),
        (6759, 6763, (13, 14, 15, 16, 17, 18, 19)),
        (60, 60, (16, 19)),  # RuPay
        (508, 508, (16,)),
        (81, 82, (16,)),
        (9792, 9792, (16,)),  # Troy
    )
)

# ITU-T E.164 country calling codes (1 to 3 digits).
CALLING_CODES: frozenset[str] = frozenset(
    ["1", "7", "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98", "211", "212", "213", "216", "218", "290", "291", "297", "298", "299", "350", "351", "352", "353", "354", "355", "356", "357", "358", "359", "370", "371", "372", "373", "374", "375", "376", "377", "378", "380", "381", "382", "383", "385", "386", "387", "389", "420", "421", "423", "500", "501", "502", "503", "504", "505", "506", "507", "508", "509", "590", "591", "592", "593", "594", "595", "596", "597", "598", "599", "670", "672", "673", "674", "675", "676", "677", "678", "679", "680", "681", "682", "683", "685", "686", "687", "688", "689", "690", "691", "692", "850", "852", "853", "855", "856", "880", "886", "960", "961", "962", "963", "964", "965", "966", "967", "968", "970", "971", "972", "973", "974", "975", "976", "977", "992", "993", "994", "995", "996", "998"]
    + [str(c) for c in range(220, 270) if c not in (259,)]
)

# Words that, shortly before a digit run, say it is a phone number (lower case; any language).
PHONE_WORDS: tuple[str, ...] = (
    "phone", "tel", "call", "mobile", "cell", "fax", "ring", "text", "whatsapp", "contact", "reach", "sms",
    "ph:", "ph.", "telefon", "handy", "erreichbar", "anrufen", "téléphone", "tél", "portable", "appelez",
    "appeler", "contactez", "teléfono", "llám", "llama", "móvil", "contacto", "telefono", "cellulare",
    "chiama", "contatto", "bel ", "telefoon", "mobiel", "bereikbaar", "telefone", "ligue", "celular", "contato",
    "電話", "携帯", "連絡", "問い合わせ", "お問合せ", "番号",
)
# Words that, shortly before a digit run, say it is something else (an id, serial, amount...).
NOT_PHONE_WORDS: tuple[str, ...] = (
    "isbn", "issn", "order", "bestell", "commande", "pedido", "ordine", "invoice", "rechnung", "facture",
    "serial", "s/n", "sn ", "sn:", "part", "model", "lot ", "batch", "ticket", "case ", "ref", "tracking",
    "sendung", "colis", "id ", "id:", "id=", "account", "acct", "konto", "version", "build", "release",
    "firmware", "epoch", "ts=", "timestamp", "created", "population", "bytes", "units", "visitors", "item",
    "sku", "ean", "upc", "iban", "bic", "swift", "card", "karte", "carte", "ssn", "social security", "zip",
    "plz", "postal", "postcode", "gps", "lat", "lon",
)
SSN_WORDS: tuple[str, ...] = ("ssn", "social security", "ss#", "soc. sec", "sozialversicherung")
VERSION_WORDS: tuple[str, ...] = ("version", "ver.", "release", "firmware", "build", "chrome", "upgrade", "update", "v.")
# National significant number lengths (digits after the calling code) for common countries; other
# codes accept 4-14 digits. Stops "+31 20 1234567 430" from swallowing the number after it.
NSN_LENGTHS: dict[str, tuple[int, int]] = {
    "1": (10, 10), "7": (10, 10), "20": (8, 10), "27": (9, 9), "30": (10, 10), "31": (9, 9), "32": (8, 9),
    "33": (9, 9), "34": (9, 9), "36": (8, 9), "39": (6, 11), "40": (9, 9), "41": (9, 9), "43": (4, 13),
    "44": (9, 10), "45": (8, 8), "46": (7, 13), "47": (8, 8), "48": (9, 9), "49": (6, 13), "51": (8, 9),
    "52": (10, 10), "54": (10, 11), "55": (10, 11), "61": (9, 9), "62": (8, 12), "63": (8, 10),
    "64": (8, 10), "65": (8, 8), "66": (8, 9), "81": (9, 10), "82": (8, 10), "84": (9, 10), "86": (10, 11),
    "90": (10, 10), "91": (10, 10), "92": (9, 10), "351": (9, 9), "353": (7, 9), "358": (5, 12),
    "972": (8, 9), "971": (8, 9),
}

# ---------------------------------------------------------------- detector regexes (sources)
# No pattern may match across a NUL: the batch forms join texts with it and run each detector once.
# Each starts with a character class and checks the boundary *after* it, with a lookbehind that
# spans the character before and the class itself: a pattern that starts with a lookbehind would
# be tried at every position, one that starts with a class lets CPython skip to candidates. The
# digit patterns run over text whose digits are all "0" (see pii_detect._translated), so a leading
# digit run is a literal: the longer it is, the fewer places CPython tries the rest.
# Boundaries are ASCII: \b would not split "電話090-..." (kana are \w).
_ALNUM = "0-9A-Za-z"
EMAIL_LOCAL = (r"[A-Za-z0-9_%+\-\u00c0-\u024f](?<![A-Za-z0-9._%+\-\u00c0-\u024f].)[A-Za-z0-9._%+\-\u00c0-\u024f]{0,63}"
               r"(?:\+[\w.\-]{1,64})?$")  # searched in the text before an "@"
EMAIL_DOMAIN = r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9\-])"
URL_CREDENTIALS = r"://(?<=[A-Za-z0-9]://)([^\s\0:/?#@\[\]]+:[^\s\0/?#\[\]]+)@"
CARD = rf"[0-9]{{4}}(?<![{_ALNUM}][0-9]{{4}})(?:[0-9]{{9,15}}|([ \-])[0-9]{{4,6}}(?:\1[0-9]{{1,5}}){{1,4}})(?![{_ALNUM}])"
CARD_LAYOUTS = frozenset({(4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4), (4, 4, 4, 1), (4, 4, 4, 3)})
# AAA-GG-SSSS, AAA GG SSSS, or AAAGGSSSS (the bare form is accepted only after an SSN label, in code)
SSN = rf"([0-9]{{3}})(?<![{_ALNUM}][0-9]{{3}})(?<![0-9]-[0-9]{{3}})([ \-]?)([0-9]{{2}})\2([0-9]{{4}})(?![{_ALNUM}]|-[0-9])"
IPV4 = rf"[0-9](?<![{_ALNUM}.][0-9])[0-9]{{0,2}}(?:\.[0-9]{{1,3}}){{3}}(?![{_ALNUM}]|\.[0-9])"  # octets checked in code
IPV6 = (r"(?<![0-9A-Za-z:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,8}"
        r"(?:(?<=:)[0-9]{1,3}(?:\.[0-9]{1,3}){3})?(?![0-9A-Za-z.])")
# Searched in the translation with every capital letter as "A" too (pii_detect._iban): a country
# code, check digits, and the rest. Both leading pairs are then literals, found by a fast search.
IBAN = rb"AA00(?<![0Aa-z]AA00)(?: ?[0A]){11,32}"
MAC = (r"[0-9A-Fa-f](?<![0-9A-Za-z:\-][0-9A-Fa-f])(?:[0-9A-Fa-f]([:\-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}"
       r"(?![0-9A-Za-z]|[:\-][0-9A-Fa-f])|(?<![.][0-9A-Fa-f])[0-9A-Fa-f]{3}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}(?![0-9A-Za-z]|\.[0-9A-Za-z]))")
BASE58_ADDRESS = rf"[13](?<![{_ALNUM}][13])[1-9A-HJ-NP-Za-km-z]{{25,34}}(?![{_ALNUM}])"
BECH32_ADDRESS = rf"(?:bc1|BC1)(?<![{_ALNUM}]...)[02-9ac-hj-np-zAC-HJ-NP-Z]{{6,87}}(?![{_ALNUM}])"
# Alternatives all start with a literal (so CPython can skip ahead); the boundary before is checked in code.
TOKENS = (r"(?:AKIA[A-Z0-9]{16}|ASIA[A-Z0-9]{16}|gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}"
          r"|xox[abpros]-[A-Za-z0-9\-]{10,250}|sk_live_[A-Za-z0-9]{16,250}|rk_live_[A-Za-z0-9]{16,250}"
          r"|AIza[0-9A-Za-z_\-]{35})(?![A-Za-z0-9_\-])")
# A whole block, or (truncated text) the header and the base64 lines after it.
PEM = (r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY-----(?:.*?-----END \1PRIVATE KEY-----"
       r"|(?:[ \t]*\r?\n[ \t]*[A-Za-z0-9+/=:,\- ]*)*)")
JWT = r"eyJ(?<![A-Za-z0-9_\-]eyJ)[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*(?![A-Za-z0-9_\-])"
AWS_SECRET = (r"(?:[Ss]ecret|SECRET)(?:[ _]?(?:[Aa]ccess|ACCESS))?(?:[ _]?(?:[Kk]ey|KEY))?[\"']?\s*[:=]{1,2}\s*"
              r"[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])")
BEARER = r"[Bb]earer[ \t]+([A-Za-z0-9\-._~+/]{16,}=*)(?![A-Za-z0-9\-._~+/=])"
# A phone candidate: an optional "+" or "00", digits with separators, an optional extension (group 1).
PHONE = (r"[+(0-9](?<![0-9A-Za-z+_/\\.\-@#].)(?<![0-9]:.)[0-9 ().\-/\u00a0\u202f]{5,27}[0-9]"
         r"([ ]?(?:x|ext\.?|#)[ ]?[0-9]{1,6})?(?![0-9A-Za-z]|[.\-/][0-9])")
PHONE_SEPS = frozenset((" ", "-", ".", "/", ")", ") ", ")-", " (", "(", " - ", " / ", ") (", ")."))

# ---------------------------------------------------------------- triggers (pre-filter)
# Level 1 runs over every text's translation (pii_detect._translated: one byte per character, Latin-1
# with other characters as "?" and U+202F as U+00A0, every digit "0"), so that each regex starts
# with one literal character (CPython then skips ahead with a fast substring search instead of
# testing a character class at every position). Few patterns, one pass each: on mostly clean text
# the passes are the cost.
TRIGGER_DIGITS = (rb"0(?:(?:[ \-.()/\xa0]{0,3}0){6}|\.0{1,3}\.0{1,3}\.0|[0A-HJ-NP-Za-km-z]{25}"
                  rb"|(?<=[bB][cC]0)[0ac-hj-np-zAC-HJ-NP-Z]{6}|(?<=[A-Z]{2}0)0)")
TRIGGER_COLON = rb":(?://|:|[0A-Fa-f]{1,4}:)"
TRIGGER_DASH = rb"-(?:[0A-Fa-f]{2}-[0A-Fa-f]{2}-|----(?=BEGIN)|(?<=xox[abpros]-))"
TRIGGER_DOT = rb"\.[0A-Fa-f]{4}\."
TRIGGER_UNDERSCORE = rb"_(?:(?<=gh[pousr]_)|(?<=github_)pat_|(?<=[sr]k_)live_)"
TRIGGER_A = rb"A(?:KIA|SIA|Iza)"
# Level 2 runs over the texts that level 1 sent to a detector, with a trigger of its own, where that
# narrows them a lot (a date sends a text to the IPv4 detector, a time of day to the MAC detector).
NARROW_IPV4 = (rb"\.(?<=0\.)0{1,3}\.0{1,3}\.0",)
NARROW_BECH32 = (rb"c0(?<=[bB]c0)[0ac-hj-np-zAC-HJ-NP-Z]{6}", rb"C0(?<=[bB]C0)[0ac-hj-np-zAC-HJ-NP-Z]{6}")
NARROW_MAC = (rb":[0A-Fa-f]{2}:[0A-Fa-f]{2}:",)  # of the colon trigger's texts (its dash and dot triggers are MAC-shaped)
# All triggers as one RE2 pattern over the original text, for pyarrow.compute (RE2 has no
# lookbehind: each alternative is a superset of its Python counterpart).
ARROW_TRIGGER = (
    r"[0-9](?:[ \-.()/\x{a0}\x{202f}]{0,3}[0-9]){6}|[0-9]\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]|[0-9][0-9A-HJ-NP-Za-km-z]{25}"
    r"|[bB][cC][0-9][0-9ac-hj-np-zAC-HJ-NP-Z]{6}|[A-Z]{2}[0-9]{2}|:(?://|:|[0-9A-Fa-f]{1,4}:)|-[0-9A-Fa-f]{2}-[0-9A-Fa-f]{2}-"
    r"|-----BEGIN|xox[abpros]-|\.[0-9A-Fa-f]{4}\.|gh[pousr]_|github_pat_|[sr]k_live_|A(?:KIA|SIA|Iza)|@|eyJ|ecret|ECRET|earer"
)
