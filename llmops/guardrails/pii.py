"""Personal data: e-mail, phone numbers, payment cards, IBANs, national IDs and IP
addresses, each replaced by a typed placeholder on redact.

Numbers are validated, not just shaped: phones against national numbering plans
(phones.py), IDs by their check digits (national_ids.py), cards by Luhn, issuer prefix and
issuers' groupings, IBANs by mod 97 and their country's length, dotted quads told from
versions and build numbers. The text is read at C speed first (a bytes translation
marks digits, separators and capitals; bytes searches with a literal start find number
runs, dotted quads, IBAN and NINO shapes), so Python runs only on those candidates. On a
stream, `stream_hold` says which tail of unsent text could still become an entity (the
last word; a number with spaces; an IBAN in groups) and `stream_trigger` which text must
be scanned before it goes out (digits, '@', ':').
"""

from __future__ import annotations

import ipaddress
import re
from typing import ClassVar

from llmops.guardrails.base import Check, CheckOptions, register
from llmops.guardrails.national_ids import ID_KINDS, find_id
from llmops.guardrails.phones import is_phone
from llmops.guardrails.text import TextView
from llmops.guardrails.types import Claims, Detection, Span

PLACEHOLDERS = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "credit_card": "[CREDIT_CARD]",
    "iban": "[IBAN]",
    **{kind.entity: kind.placeholder for kind in ID_KINDS},
    "ip_address": "[IP_ADDRESS]",
}
ENTITIES = tuple(PLACEHOLDERS)

EMAIL_RE = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])")
# 13-19 digits, optionally in groups separated by single spaces or dashes.
CARD_RE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
IBAN_RE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
IPV4_RE = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.]|\.\d)")
# Words before a dotted quad that make it a version or build number, not an address; and
# words that make it an address whatever its numbers.
_VERSION_WORDS = frozenset(("version", "versions", "ver", "v", "build", "release", "firmware", "update", "patch",
                            "stand", "driver", "sdk", "level", "kernel", "버전", "빌드", "バージョン"))
_ADDRESS_WORDS = frozenset(("ip", "ips", "ipv4", "address", "addr", "host", "hostname", "server", "gateway", "dns",
                            "subnet", "router", "ping", "ssh", "connect", "connected", "adresse", "from", "client",
                            "proxy", "network", "lan", "wan", "주소", "서버", "アドレス"))
_LEAD_WORDS = re.compile(r"[^\W\d_]+")


# Lengths per country (ISO 13616), for the countries whose IBANs people paste most.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AT": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21, "CY": 28, "CZ": 24,
    "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GI": 23, "GR": 27, "HR": 21,
    "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TR": 26, "UA": 29, "VA": 22,
}


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_issuer_ok(digits: str) -> bool:
    """Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay, Maestro prefixes."""
    n = len(digits)
    if digits[0] == "4":
        return n in (13, 16, 19)
    two, four, six = int(digits[:2]), int(digits[:4]), int(digits[:6])
    if 51 <= two <= 55 or 222100 <= six <= 272099:
        return n == 16
    if two in (34, 37):
        return n == 15
    if four == 6011 or two == 65 or 644 <= int(digits[:3]) <= 649 or 622126 <= six <= 622925:
        return 16 <= n <= 19
    if 3528 <= four <= 3589:
        return 16 <= n <= 19
    if two in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:
        return 14 <= n <= 19
    if two == 62:
        return 16 <= n <= 19
    return two in (50, 56, 57, 58, 63, 67) and 12 <= n <= 19


def card_groups_ok(raw: str) -> bool:
    """Written as issuers print cards: no separators, fours (the last group shorter), or
    Amex and Diners' 4-6-5 and 4-6-4. ("633-2327879-2164816" is an order number.)"""
    groups = raw.replace("-", " ").split()
    if len(groups) == 1:
        return True
    sizes = [len(g) for g in groups]
    if sizes in ([4, 6, 5], [4, 6, 4]):
        return True
    return all(size == 4 for size in sizes[:-1]) and 1 <= sizes[-1] <= 4


def iban_ok(raw: str) -> bool:
    iban = raw.replace(" ", "")
    expected = IBAN_LENGTHS.get(iban[:2])
    if expected is not None and len(iban) != expected:
        return False
    if expected is None and not 15 <= len(iban) <= 34:
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


# Candidates, found with patterns that start with a character class so `re` can skip
# ahead quickly; each candidate is then checked with the precise patterns above, which
# (starting with look-behinds) would be slow to run over a whole text.
_LOCAL_REVERSED = re.compile(r"[A-Za-z0-9._%+-]+")
_DOMAIN_AFTER = re.compile(r"[A-Za-z0-9.-]{1,255}")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")
_V6_PAIR = re.compile(rb":(?::|[0-9a-fA-F]{1,4}:)")
_ASCII_DIGIT = re.compile("[0-9]")


def find_pii(text: str, entities: frozenset[str], view: TextView | None = None) -> list[Span]:
    spans: list[Span] = []
    taken = Claims()

    def add(start: int, end: int, entity: str) -> None:
        # A more specific entity (found earlier) may already have claimed these characters.
        if taken.claim(start, end):
            spans.append(Span(start, end, PLACEHOLDERS[entity]))

    if "email" in entities and "@" in text:
        # Grow each "@" into the address around it (two anchored regexes, at C speed), then
        # check that with the pattern.
        at = text.find("@")
        while at >= 0:
            # The local part, matched forwards on the reversed 64 characters before the "@".
            local = _LOCAL_REVERSED.match(text[max(0, at - 64) : at][::-1])
            domain = _DOMAIN_AFTER.match(text, at + 1)
            end = at + 1
            if local is not None and domain is not None:
                start, end = at - local.end(), domain.end()
                while end > at + 1 and text[end - 1] in ".-":
                    end -= 1
                if start < at < end - 1 and EMAIL_RE.fullmatch(text, start, end):
                    add(start, end, "email")
            at = text.find("@", end)
    raw_bytes = view.ascii_bytes if view is not None else text.encode("ascii", "replace")
    marked = raw_bytes.translate(_RUN_TABLE)
    runs, quads = _number_runs(text, marked)
    # Most specific first: an IBAN or card contains runs that look like phone numbers.
    if "iban" in entities or "phone" in entities:
        for shaped in _IBAN_CANDIDATE.finditer(marked):
            m = IBAN_RE.match(text, shaped.start())  # (its look-behind checks the letter before)
            if m is None:
                continue
            if "iban" in entities and iban_ok(m.group()):
                add(m.start(), m.end(), "iban")
            else:
                # Shaped like an IBAN but not one: its digit groups are not a phone number.
                taken.claim(m.start(), m.end())
    ids = entities & _ID_ENTITIES
    if "uk_nino" in ids:  # the one ID with fewer than seven digits: "AB 12 34 56 C"
        for shaped in _NINO_CANDIDATE.finditer(marked):
            at = shaped.start() + 2 + (marked[shaped.start() + 2] == 0x73)
            found = find_id(text, at, shaped.end() - 1, ids, 6)
            if found is not None:
                add(*found)
    if "ip_address" in entities:
        for start, end in quads:
            if IPV4_RE.fullmatch(text, start, end) and _is_address(text, start, end):
                add(start, end, "ip_address")
    for start, end in runs:
        raw = text[start:end].rstrip(" -./(")
        end = start + len(raw)
        digits = sum(map(str.isdigit, raw))
        if digits < 7:
            continue
        found = _classify_run(text, start, end, digits, entities, ids)
        if found is not None:
            add(*found)
            continue
        # Not one entity as a whole (two numbers in a row, a card number and a year): look
        # inside, at the pieces between wide separators and at the patterns' own matches.
        lo, hi = max(0, start - 1), min(len(text), end + 1)
        if "credit_card" in entities and digits >= 13:
            for m in CARD_RE.finditer(text, lo, hi):
                number = m.group().replace(" ", "").replace("-", "")
                if 13 <= len(number) <= 19 and card_issuer_ok(number) and luhn_ok(number) and card_groups_ok(m.group()):
                    add(m.start(), m.end(), "credit_card")
        if "ip_address" in entities and raw.count(".") >= 3:
            for m in IPV4_RE.finditer(text, lo, hi):
                if _is_address(text, m.start(), m.end()):
                    add(m.start(), m.end(), "ip_address")
        for piece in _PIECE_SPLIT.split(raw) if len(raw) > 9 else ():
            piece = piece.strip(" -./(")
            if piece == raw or sum(map(str.isdigit, piece)) < 7:
                continue
            at = text.find(piece, start, end + 1)
            found = _classify_run(text, at, at + len(piece), sum(map(str.isdigit, piece)), entities, ids)
            if found is not None:
                add(*found)
    if "ip_address" in entities:
        # IPv6: "::" or two colons around a hex group (found in the bytes at C speed); the
        # address around them is then validated.
        end = 0
        for pair in _V6_PAIR.finditer(raw_bytes):
            colon = pair.start()
            if colon < end:
                continue
            start = colon
            while start > 0 and text[start - 1] in _IPV6_CHARS:
                start -= 1
            end = colon
            while end < len(text) and text[end] in _IPV6_CHARS:
                end += 1
            candidate = text[start:end].rstrip(".")
            if len(candidate) >= 6 and candidate.count(":") >= 2 and _is_ipv6(candidate):
                add(start, start + len(candidate), "ip_address")
    return spans


# Digits as "0", "." as "d", other number separators as "s", capital letters as "A",
# everything else (and every non-ASCII character, which "replace" encodes as one "?") as
# " ". Then bytes regexes with a literal start find, at C speed and at the text's own
# positions, what is worth a look: runs of digits and separators with seven digits or
# more (every phone, card and ID but two), dotted quads (IPv4), IBAN and NINO shapes.
_RUN_TABLE = bytes(
    0x30 if chr(i).isdigit() else 0x64 if chr(i) == "." else 0x73 if chr(i) in " -()/"
    else 0x41 if chr(i).isupper() and chr(i).isascii() else 0x20 for i in range(256)
)
# (The simplest pattern is the fastest: seven run characters from a digit on, then the
# digits are counted; the shortest dotted quad, "1.1.1.1", has seven characters too.)
_RUN_RE = re.compile(rb"0[0sd]{6,}(?<=0)")
_QUAD = re.compile(rb"0{1,3}d0{1,3}d0{1,3}d0{1,3}")
_IBAN_CANDIDATE = re.compile(rb"AA00(?:s?[A0]){11}")
_NINO_CANDIDATE = re.compile(rb"AAs?00s?00s?00s?A")
# Runs that are whole dates (2024-03-15, 30.04.2024) or numbers with "." between thousands
# (1.234.567): the most common long runs in documents, none of them personal data; dropped
# before any Python work. (A dotted quad goes to the IPv4 pass, not here.)
_PLAIN_NUMBER = re.compile(rb"0000([sd])00\1(?:00|0)|00?([sd])00?\2(?:0000|00)|0{1,3}(?:d000)+")


def _number_runs(text: str, marked: bytes) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Spans of digits and number separators with at least seven digits, each starting at
    a digit (or at the + or ( before one); and the dotted quads (for the IPv4 pass)."""
    # (Comprehensions over the matches: this runs for every number of a long text.)
    count = marked.count
    spans = [m.span() for m in _RUN_RE.finditer(marked)]
    quads = [(s, e) for s, e in spans if count(b"d", s, e) == 3 and _QUAD.fullmatch(marked, s, e)]
    plain = _PLAIN_NUMBER.fullmatch
    runs = [(s, e) for s, e in spans if count(b"0", s, e) >= 7 and not plain(marked, s, e)]
    if quads:
        taken = set(quads)
        runs = [span for span in runs if span not in taken]
    return [(s - 1, e) if s and text[s - 1] in "+(" else (s, e) for s, e in runs], quads


_ID_ENTITIES = frozenset(kind.entity for kind in ID_KINDS)
# Where a run holds two numbers: a dash or slash between spaces, two spaces.
_PIECE_SPLIT = re.compile(r" [-/] | {2,}")


def _classify_run(text: str, start: int, end: int, digits: int, entities: frozenset[str],
                  ids: frozenset[str]) -> tuple[int, int, str] | None:
    """The entity a run of digits and separators is, as (start, end, entity): most
    specific first (a card, then an ID with its check), then an address, then a phone."""
    if "credit_card" in entities and 13 <= digits <= 19 and CARD_RE.fullmatch(text, start, end):
        number = text[start:end].replace(" ", "").replace("-", "")
        if card_issuer_ok(number) and luhn_ok(number) and card_groups_ok(text[start:end]):
            return start, end, "credit_card"
    if ids:
        found = find_id(text, start, end, ids, digits)
        if found is not None:
            return found
    if "phone" in entities and 7 <= digits <= 15 and is_phone(text, start, end):
        return start, end, "phone"
    return None


def _is_address(text: str, start: int, end: int) -> bool:
    """A dotted quad is an IP address unless it reads as a version or build number: words
    before it say so, or (with no word either way) all its parts are small ("5.5.0.1")."""
    words = _LEAD_WORDS.findall(text[max(0, start - 24) : start].lower())
    if not _ADDRESS_WORDS.isdisjoint(words):
        return True
    if not _VERSION_WORDS.isdisjoint(words) or (start > 0 and text[start - 1] in "vV"):
        return False
    parts = [int(p) for p in text[start:end].split(".")]
    return parts[0] in (10, 127) or max(parts) >= 26


def _is_ipv6(candidate: str) -> bool:
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


# --- streaming (see guardrails/stream.py) ----------------------------------------------------

_NUMBER_SEPARATORS = frozenset(" -.()/+")
# An IBAN in groups, still being written: "GB82 WEST 1234 56".
_IBAN_TAIL = re.compile(r"[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){0,30}[ ]?\Z")
# Longer than any entity written with separators (an IBAN: 34 characters, 64 in groups).
_LONGEST_NUMBER = 80
_TRIGGER = re.compile(r"[\d@:]")
_DIGIT = re.compile(r"\d")


def stream_hold(text: str, before: str = "") -> int:
    """Where the tail of unsent `text` that could still become an entity starts: its last
    word (an e-mail, an IPv6 address, a number without spaces), a number with spaces at
    the end (a card, phone or IBAN may go on), an IBAN in groups of letters and digits."""
    size = len(text)
    hold = max(text.rfind(" "), text.rfind("\n"), text.rfind("\t")) + 1
    if _DIGIT.search(text) is None:
        return hold  # no number to hold (one sent already cannot grow: it was held until it ended)
    # The run of digits and separators at the end, if it holds a digit.
    floor = max(0, size - _LONGEST_NUMBER)
    i = size
    digit = False
    while i > floor:
        ch = text[i - 1]
        if ch.isdecimal():
            digit = True
        elif ch not in _NUMBER_SEPARATORS:
            break
        i -= 1
    if digit:
        while text[i] == " ":
            i += 1
        # From the start of its word: "+44", "(020)", "DE89" belong to the number.
        hold = min(hold, max(text.rfind(" ", 0, i), text.rfind("\n", 0, i), text.rfind("\t", 0, i)) + 1)
    if hold > 0 and _ASCII_DIGIT.search(text, max(0, size - 70)) is not None:
        m = _IBAN_TAIL.search(text, max(0, size - 70))
        while m is not None and m.start() > 0 and text[m.start() - 1].isalnum():
            m = _IBAN_TAIL.search(text, m.start() + 1)
        if m is not None:
            hold = min(hold, m.start())
    return hold


def stream_trigger(piece: str) -> bool:
    """Whether a piece of a stream may hold an entity: every one has a digit, an '@' or a ':'."""
    return _TRIGGER.search(piece) is not None


class PiiOptions(CheckOptions):
    # Which entities to look for (default: all of ENTITIES).
    entities: list[str] | None = None


@register
class PiiCheck(Check):
    name: ClassVar[str] = "pii"
    redactable = True
    block_message = "The request was blocked: it contains personal data (such as contact, card or ID numbers). Remove it and try again."
    Options = PiiOptions

    def __init__(self, options: PiiOptions):
        super().__init__(options)
        unknown = set(options.entities or ()) - set(ENTITIES)
        if unknown:
            raise ValueError(f"unknown PII entities {sorted(unknown)}; known: {', '.join(ENTITIES)}")
        self._entities = frozenset(options.entities or ENTITIES)

    # On a stream: what to hold back and what to scan (see stream_hold, stream_trigger).
    stream_hold = staticmethod(stream_hold)
    stream_trigger = staticmethod(stream_trigger)

    def scan(self, view: TextView) -> Detection | None:
        spans = find_pii(view.text, self._entities, view)
        if not spans:
            return None
        labels = tuple(sorted({_ENTITY_OF[s.placeholder] for s in spans}))
        return Detection(score=1.0, labels=labels, spans=spans)


_ENTITY_OF = {v: k for k, v in PLACEHOLDERS.items()}
