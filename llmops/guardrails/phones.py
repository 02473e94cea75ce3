"""Telephone numbers, judged against national numbering plans rather than one pattern.

A candidate (a run of digits and separators, found by pii.py) is read as:
- international: `+CC` or `00CC`, then the national significant number (NSN), with an
  optional `(0)` trunk prefix; the NSN must fit that country's plan, or, for a country
  not in the table, have an ITU-plausible length;
- national: a trunk prefix (`0` in DE, UK, FR, JP, KR) then an NSN that fits one of
  those plans, or the NANP's ten digits (area and exchange codes starting 2-9).

Each plan lists NSN prefixes with their lengths, and whether that kind of number is
written without separators often enough to be accepted bare (mobiles: 01065925705,
07700900123). A bare landline-shaped run, or a short one, needs a word like "phone",
"Tel." or "전화" just before it: an order or customer number has the same digits.
Dates, times, versions, ISBNs and decimals are ruled out by shape before any plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# --- the tables -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Range:
    """NSNs that start with one of `prefixes` and have one of `lengths` digits."""

    prefixes: tuple[str, ...]
    lengths: tuple[int, ...]
    # Written without separators often enough to count bare (mobiles, VoIP).
    bare: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    country: str
    code: str  # the ITU country calling code
    trunk: str  # the national trunk prefix ("" when numbers are dialled as written)
    ranges: tuple[Range, ...]

    def fits(self, nsn: str) -> Range | None:
        size = len(nsn)
        for r in self.ranges:
            if size in r.lengths and nsn.startswith(r.prefixes):
                return r
        return None


def _digits(first: str, last: str) -> tuple[str, ...]:
    return tuple(str(d) for d in range(int(first), int(last) + 1))


PLANS: tuple[Plan, ...] = (
    # Germany (BNetzA): mobiles 015x/016x/017x; geographic area codes start 2-9 and with the
    # subscriber number make 6-11 digits; 0180x/0800/0900 services.
    Plan("DE", "49", "0", (
        Range(("15", "16", "17"), (10, 11), bare=True),
        Range(_digits("2", "9"), (7, 8, 9, 10, 11)),
        Range(("180", "800", "900"), (9, 10, 11)),
    )),
    # South Korea: 010 mobiles (8 digits after), legacy 011/016-019, Seoul 02, other areas
    # 031-064, 070 VoIP, 050x personal numbers.
    Plan("KR", "82", "0", (
        Range(("10",), (10,), bare=True),
        Range(("11", "16", "17", "18", "19"), (9, 10), bare=True),
        Range(("2",), (8, 9)),
        Range(("31", "32", "33", "41", "42", "43", "44", "51", "52", "53", "54", "55", "61", "62", "63", "64"), (9, 10)),
        Range(("70",), (10,), bare=True),
        Range(("50",), (10, 11)),
        Range(("80",), (9, 10)),
    )),
    # United Kingdom (Ofcom): 07 mobiles, 01/02/03 geographic and national, 08 services.
    Plan("GB", "44", "0", (
        Range(("7",), (10,), bare=True),
        Range(("1",), (9, 10)),
        Range(("2", "3", "5"), (10,)),
        Range(("8",), (9, 10)),
    )),
    # France (ARCEP): ten digits with the trunk 0; 06/07 mobiles, 01-05 geographic, 09 VoIP.
    Plan("FR", "33", "0", (
        Range(("6", "7"), (9,), bare=True),
        Range(("1", "2", "3", "4", "5", "8", "9"), (9,)),
    )),
    # Japan (MIC): 070/080/090 mobiles and 050 IP phones (11 digits with 0), geographic
    # numbers 10 digits with 0, 0120 and 0800 toll-free.
    Plan("JP", "81", "0", (
        Range(("70", "80", "90"), (10,), bare=True),
        Range(("50",), (10,)),
        Range(("120",), (9,)),
        Range(("800",), (10,)),
        Range(_digits("1", "9"), (9,)),
    )),
    # North America (NANP): NPA-NXX-XXXX, both codes starting 2-9.
    Plan("US", "1", "", (Range(_digits("2", "9"), (10,)),)),
)

# Plans only read after a country code (their national forms are not recognised bare:
# without the code, nothing tells them from other numbers).
INTERNATIONAL_ONLY: tuple[Plan, ...] = (
    Plan("IT", "39", "", (Range(("3",), (9, 10)), Range(("0",), (6, 7, 8, 9, 10, 11)))),
    Plan("ES", "34", "", (Range(_digits("6", "9"), (9,)),)),
    Plan("NL", "31", "0", (Range(_digits("1", "9"), (9,)),)),
    Plan("CH", "41", "0", (Range(_digits("2", "9"), (9,)),)),
    Plan("AT", "43", "0", (Range(_digits("1", "9"), tuple(range(4, 14))),)),
    Plan("AU", "61", "0", (Range(_digits("2", "8"), (9,)),)),
    Plan("CN", "86", "0", (Range(("13", "14", "15", "16", "17", "18", "19"), (11,)), Range(_digits("2", "9"), (9, 10, 11)))),
    Plan("IN", "91", "0", (Range(_digits("6", "9"), (10,)), Range(_digits("1", "8"), (10,)))),
    Plan("BR", "55", "0", (Range(_digits("1", "9"), (10, 11)),)),
)

_BY_CODE = {p.code: p for p in (*PLANS, *INTERNATIONAL_ONLY)}
# Country calling codes in use (ITU E.164 assignments), for numbers whose country has no plan.
_CALLING_CODES = frozenset(
    "1 7 20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58 60 61 62 63 64 "
    "65 66 81 82 84 86 90 91 92 93 94 95 98 211 212 213 216 218 220 221 222 223 224 225 226 227 228 229 "
    "230 231 232 233 234 235 236 237 238 239 240 241 242 243 244 245 246 248 249 250 251 252 253 254 255 "
    "256 257 258 260 261 262 263 264 265 266 267 268 269 290 291 297 298 299 350 351 352 353 354 355 356 "
    "357 358 359 370 371 372 373 374 375 376 377 378 380 381 382 383 385 386 387 389 420 421 423 500 501 "
    "502 503 504 505 506 507 508 509 590 591 592 593 594 595 596 597 598 599 670 672 673 674 675 676 677 "
    "678 679 680 681 682 683 685 686 687 688 689 690 691 692 850 852 853 855 856 880 886 960 961 962 963 "
    "964 965 966 967 968 970 971 972 973 974 975 976 977 992 993 994 995 996 998".split()
)
_TRUNK_PLANS = tuple(p for p in PLANS if p.trunk)
_NANP = next(p for p in PLANS if p.code == "1")

# Words that say a number is a phone number, in the languages the tables cover: a word in
# the few before the number that starts with one of these (lowercase: "tele" for telefon,
# telephone, teléfono; "tel" itself for "Tel.", never inside "Bestellnummer"); and words in
# scripts without spaces between words, looked for anywhere there.
CONTEXT_WORDS = (
    "phone", "tele", "call", "mobile", "cell", "fax", "whatsapp", "sms", "text", "reach", "contact", "hotline",
    "dial", "ring", "handy", "mobil", "rufnummer", "ruf", "anruf", "erreichbar", "téléphone", "portable", "appel",
    "appelez", "joindre", "numéro", "cellulare", "móvil",
)
CONTEXT_SCRIPT_WORDS = ("전화", "연락", "휴대", "핸드폰", "폰", "電話", "携帯", "連絡", "番号")
_CONTEXT_REACH = 32

# --- shapes that are not phone numbers ------------------------------------------------------

_DATE = re.compile(
    r"(?:19|20)\d\d([-./])(?:0?[1-9]|1[0-2])\1(?:0?[1-9]|[12]\d|3[01])"
    r"|(?:0?[1-9]|[12]\d|3[01])([-./])(?:0?[1-9]|1[0-2])\2(?:19|20)?\d\d"
    r"|(?:0?[1-9]|1[0-2])([-./])(?:0?[1-9]|[12]\d|3[01])\3(?:19|20)?\d\d"
)
# A dotted run whose groups are all short: a version, a build number, an address (but
# not the French way of writing a number in pairs, "06.12.34.56.78").
_DOTTED_SHORT = re.compile(r"(?!0\d(?:\.\d\d){4}$)\d{1,3}(?:\.\d{1,3}){2,}")
_SEPARATORS = re.compile(r"[ .\-/()]+")


def _ascii_alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


# Latin words at a word start ("tel" in "Tel.", not in "Bestellnummer"); CJK words anywhere.
_LEAD_WORDS = re.compile(r"[^\W\d_]+")


def _context(text: str, start: int) -> bool:
    lead = text[max(0, start - _CONTEXT_REACH) : start].lower()
    if any(word == "tel" or word.startswith(CONTEXT_WORDS) for word in _LEAD_WORDS.findall(lead)):
        return True
    return not lead.isascii() and any(word in lead for word in CONTEXT_SCRIPT_WORDS)


def _groups_ok(raw: str) -> bool:
    """Separators as people write phone numbers: at most one slash, short groups (the last
    may be a whole subscriber number), and no run of dots like a version."""
    if raw.count("/") > 1 or raw.count("(") != raw.count(")"):
        return False
    groups = _SEPARATORS.split(raw)
    # At most eight groups ("+33 (0)6 12 34 56 78" has seven), none longer than eight digits.
    return len(groups) <= 9 and max(map(len, groups)) <= 8


_NOT_DIGITS = str.maketrans("", "", " .-/()+")


def is_phone(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] (a run of digits and separators, trimmed) is a phone number."""
    # Part of an identifier ("SN-0748-9385-41", "1ZH2W3W01059243220", "12345ABC") or a
    # reference number ("#0195 2859 00"): not a phone.
    before = text[start - 1] if start else ""
    if before == "#" or _ascii_alnum(before) or (before == "-" and start > 1 and _ascii_alnum(text[start - 2])):
        return False
    if end < len(text) and _ascii_alnum(text[end]):
        return False
    raw = text[start:end]
    digits = raw.translate(_NOT_DIGITS)
    n = len(digits)
    if n < 7 or n > 15 or not digits.isdigit():
        return False
    if _DATE.fullmatch(raw) or _DOTTED_SHORT.fullmatch(raw):
        return False
    plus = raw[0] == "+"
    separated = n + plus != len(raw)
    if separated and not _groups_ok(raw[plus:]):
        return False
    if plus or raw.startswith("00"):
        return _international(raw, digits[0 if plus else 2 :], separated)
    context = _context(text, start)
    if digits[0] == "0" and not raw.startswith("(0)"):
        nsn = digits[1:]
        for plan in _TRUNK_PLANS:
            r = plan.fits(nsn)
            if r is not None and (r.bare or context or (separated and len(nsn) >= 8)):
                return True
        # Written in groups after a trunk prefix ("0#### ######", "(0##) ### ####"), in a
        # plan the tables do not know: the grouping says phone.
        return separated and 9 <= n <= 12 and _trunk_grouped(raw)
    # NANP: 3-3-4 in groups, or ten bare digits (eleven with the leading 1) that fit the
    # plan (NPA and NXX starting 2-9) with a word like "phone" before them.
    if separated:
        return _NANP_GROUPED.fullmatch(raw) is not None
    if digits[0] == "1" and n == 11:
        digits = digits[1:]
    return context and len(digits) == 10 and _NANP.fits(digits) is not None and digits[3] not in "01"


_NANP_GROUPED = re.compile(r"(?:1[ .-]?)?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}")
_TRUNK_GROUPED = re.compile(r"(?:\(0\d{1,4}\)|0\d{1,4})(?:[ ./-]\d{2,8}){1,4}")


def _trunk_grouped(raw: str) -> bool:
    return _TRUNK_GROUPED.fullmatch(raw) is not None


def _international(raw: str, digits: str, separated: bool) -> bool:
    for size in (1, 2, 3):
        code = digits[:size]
        plan = _BY_CODE.get(code)
        if plan is None and code not in _CALLING_CODES:
            continue
        nsn = digits[size:]
        # "+49 (0)711 ...": the trunk prefix in parentheses is not part of the number.
        if "(0)" in raw and nsn.startswith("0"):
            nsn = nsn[1:]
        if plan is not None:
            if plan.trunk and nsn.startswith(plan.trunk) and plan.fits(nsn[len(plan.trunk) :]) is not None:
                return True  # written with the trunk prefix kept: "+82 010-..."
            if plan.fits(nsn) is not None:
                return True
        # A "+" or "00", a calling code and digits in groups: a phone number, whatever the plan.
        return separated and 6 <= len(nsn) <= 13
    return False
