"""National identity and tax numbers, one table row per kind: its shape and its check.

Each kind has a shape (a pattern matched at a number run that pii.py found, so it never
scans text without digits), a validator (a check digit, a real date, issued ranges) and
whether it needs a word nearby ("Steuer-ID", "マイナンバー"): a bare eleven-digit number
with a valid check digit is still one in ten of all such numbers, so kinds whose shape
is plain digits count only with such a word, or written in the kind's own groups.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class IdKind:
    entity: str
    placeholder: str
    # Matched with .match() at the run's start minus `lead` characters (letters before digits).
    pattern: re.Pattern[str]
    lead: int
    valid: Callable[[str], bool]
    # Words (lowercase) of which one must come shortly before a plain-digit form.
    context: tuple[str, ...] = ()
    # A form with these separators counts without context (if grouped_check agrees).
    grouped: re.Pattern[str] | None = None
    grouped_check: Callable[[str], bool] | None = None
    # How many digits the run at which it starts may hold (a cheap test before the pattern).
    digits: tuple[int, ...] = ()


def _digits(value: str) -> str:
    return "".join(c for c in value if c.isdigit())


def _ssn_ok(value: str) -> bool:
    d = _digits(value)
    return len(d) == 9 and d[:3] not in ("000", "666") and d[0] != "9" and d[3:5] != "00" and d[5:] != "0000"


def _rrn_ok(value: str) -> bool:
    # YYMMDD then a gender/century digit 1-8. Written as 13 bare digits (which EANs and
    # millisecond timestamps also are) it must also carry the check digit numbers issued
    # before October 2020 have, or come after a word like "주민등록번호" (see find_id).
    d = _digits(value)
    month, day = int(d[2:4]), int(d[4:6])
    return len(d) == 13 and 1 <= month <= 12 and 1 <= day <= 31 and d[6] in "12345678"


def rrn_checksum_ok(digits: str) -> bool:
    total = sum(int(c) * w for c, w in zip(digits[:12], (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5), strict=True))
    return (11 - total % 11) % 10 == int(digits[12])


def _nir_ok(value: str) -> bool:
    # France's NIR: sex, year, month, department (2A/2B in Corsica), commune, order, then a
    # key = 97 - (number mod 97).
    raw = re.sub(r"\s", "", value).upper()
    number = raw[:13].replace("2A", "19").replace("2B", "18")
    if not number.isdigit() or not raw[13:].isdigit():
        return False
    month = int(number[3:5])
    if number[0] not in "12" or not (1 <= month <= 12 or 20 <= month <= 42 or month >= 50):
        return False
    return 97 - int(number) % 97 == int(raw[13:])


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def _dni_ok(value: str) -> bool:
    # Spain's DNI: eight digits and a letter; NIE: X/Y/Z, seven digits and a letter.
    raw = value.replace("-", "").replace(" ", "").upper()
    head = raw[:-1]
    if head[0] in "XYZ":
        head = str("XYZ".index(head[0])) + head[1:]
    return head.isdigit() and _DNI_LETTERS[int(head) % 23] == raw[-1]


_NINO_BAD_PREFIX = frozenset(("BG", "GB", "KN", "NK", "NT", "TN", "ZZ"))


def _nino_ok(value: str) -> bool:
    raw = value.replace(" ", "").upper()
    return raw[:2] not in _NINO_BAD_PREFIX


def _steuer_id_ok(value: str) -> bool:
    # Germany's Steuer-ID: 11 digits, no leading zero, in the first ten one digit appears
    # twice or three times and the others at most once; check digit by ISO 7064 MOD 11,10.
    d = _digits(value)
    if len(d) != 11 or d[0] == "0":
        return False
    counts = sorted((d[:10].count(c) for c in set(d[:10])), reverse=True)
    if counts[0] not in (2, 3) or (len(counts) > 1 and counts[1] > 1):
        return False
    product = 10
    for c in d[:10]:
        total = (int(c) + product) % 10 or 10
        product = (total * 2) % 11
    check = 11 - product
    return (0 if check == 10 else check) == int(d[10])


def _my_number_ok(value: str) -> bool:
    # Japan's My Number: 12 digits, the last a check digit (weights 2-7 from the right).
    d = _digits(value)
    if len(d) != 12:
        return False
    body = [int(c) for c in reversed(d[:11])]
    total = sum(p * (n + 2 if n < 6 else n - 4) for n, p in enumerate(body))
    rest = total % 11
    return int(d[11]) == (0 if rest <= 1 else 11 - rest)


ID_KINDS: tuple[IdKind, ...] = (
    IdKind("us_ssn", "[US_SSN]", re.compile(r"\d{3}([- ])\d{2}\1\d{4}(?![\d-])"), 0, _ssn_ok,
           context=("ssn", "social security"), grouped=re.compile(r"\d{3}-\d{2}-\d{4}"), digits=(9,)),
    IdKind("kr_rrn", "[KR_RRN]", re.compile(r"\d{6}-?\d{7}(?![\d-])"), 0, _rrn_ok,
           context=("주민", "rrn", "resident", "등록번호"), grouped=re.compile(r"\d{6}-\d{7}|\d{13}"),
           grouped_check=lambda v: "-" in v or rrn_checksum_ok(v), digits=(13,)),
    IdKind("fr_nir", "[FR_NIR]",
           re.compile(r"[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}(?![\d])"), 0, _nir_ok, digits=(13, 14, 15)),
    IdKind("es_dni", "[ES_DNI]", re.compile(r"(?:[XYZ]-?)?\d{7,8}-?[A-Z](?![A-Za-z0-9])"), 2, _dni_ok, digits=(7, 8)),
    IdKind("uk_nino", "[UK_NINO]",
           re.compile(r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])"), 3, _nino_ok, digits=(6,)),
    IdKind("de_tax_id", "[DE_TAX_ID]", re.compile(r"\d{2} ?\d{3} ?\d{3} ?\d{3}(?![\d])"), 0, _steuer_id_ok,
           context=("steuer", "tax id", "tax-id", "idnr", "identifikationsnummer", "tin"),
           grouped=re.compile(r"\d{2} \d{3} \d{3} \d{3}"), digits=(11,)),
    IdKind("jp_my_number", "[JP_MY_NUMBER]", re.compile(r"\d{4}[ -]?\d{4}[ -]?\d{4}(?![\d])"), 0, _my_number_ok,
           context=("マイナンバー", "個人番号", "my number", "mynumber"), digits=(12,)),
)
ID_ENTITIES = tuple(k.entity for k in ID_KINDS)
_REACH = 40


def find_id(text: str, start: int, end: int, entities: frozenset[str], digits: int) -> tuple[int, int, str] | None:
    """The national ID at a number run text[start:end] of `digits` digits, as (start, end,
    entity), if any."""
    for kind in ID_KINDS:
        if digits not in kind.digits or kind.entity not in entities:
            continue
        for lead in range(kind.lead, -1, -1):
            at = start - lead
            if at < 0 or (at > 0 and text[at - 1].isalnum()):
                continue
            m = kind.pattern.match(text, at)
            if m is None or m.end() < end - 1 and text[m.end()].isdigit():
                continue
            value = m.group()
            if not kind.valid(value):
                continue
            if kind.context and not (
                kind.grouped is not None and kind.grouped.fullmatch(value)
                and (kind.grouped_check is None or kind.grouped_check(value))
            ):
                lead_text = text[max(0, m.start() - _REACH) : m.start()].lower()
                if not any(word in lead_text for word in kind.context):
                    continue
            return m.start(), m.end(), kind.entity
    return None
