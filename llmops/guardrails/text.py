"""One view of a text that every check shares, so the work of normalising it is done once.

Attackers hide instructions from pattern matching with look-alike letters, invisible
characters, leetspeak, spaced-out letters or an encoded blob. The view undoes those
tricks once, lazily: a plain ASCII prompt pays only for what a check asks for.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata

# Characters that render as nothing: zero-width, bidi controls, word joiners, soft
# hyphen, BOM, and the Unicode "tag" block that can smuggle a whole ASCII sentence.
INVISIBLE_RE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb\U000e0000-\U000e007f]"
)
TAG_RE = re.compile("[\U000e0020-\U000e007e]{3,}")
WORD_RE = re.compile(r"\w+")

# Cyrillic and Greek letters that look like Latin ones; folded only inside words that
# also contain Latin letters, so real Russian or Greek text is left alone.
_CONFUSABLES = str.maketrans(
    "аеорсухіјѕԁһӏԛԝАВЕКМНОРСТХІЈЅαοτνυκιρΑΒΕΗΙΚΜΝΟΡΤΧΥΖ",
    "aeopcyxijsdhlqwABEKMHOPCTXIJSaotvukipABEHIKMNOPTXYZ",
)
_MIXED_SCRIPT_WORD = re.compile(r"\w*[a-zA-Z]\w*")
_CONFUSABLE_SCRIPT = re.compile("[\u0370-\u03ff\u0400-\u04ff\u0500-\u052f]")

# Leetspeak: digits and symbols standing for letters, only inside tokens that mix them.
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a", "$": "s"})
_LEET_TOKEN = re.compile(r"(?<![\w@$])(?=[\w@$]*[a-z])(?=[\w@$]*[0134578@$])[a-z0-9@$]{3,}")
# "i g n o r e" / "i.g.n.o.r.e": four or more single letters joined by one separator.
_SPACED = re.compile(r"(?<!\w)(?:[a-z][ .\-_*]){3,}[a-z](?!\w)")
_SPACED_SEP = re.compile(r"[ .\-_*]")
# A blob worth trying to decode: long base64 (standard or URL-safe) or hex.
_BASE64_BLOB = re.compile(r"[A-Za-z0-9+/_-]{24,}={0,2}")
_HEX_BLOB = re.compile(r"(?:(?:0x|\\x)?[0-9a-fA-F]{2}[ :]?){12,}")
_HEX_STRIP = re.compile(r"0x|\\x|[ :]")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_PUNCT = "()[]{}<>,;:.!?'\"`"
_LEET_PIECES = re.compile(r"[a-z0-9@$]+")
_LEET_CHAR = re.compile(r"[0134578@$]")
_HYPHENATED = re.compile(r"[a-z]+(?:[-_]+[a-z]+)+")


def _printable_ratio(text: str) -> float:
    if not text:
        return 0.0
    good = sum(1 for c in text if c.isprintable() or c in "\n\t")
    return good / len(text)


def _decode_text(data: bytes) -> str | None:
    """Decoded bytes if they read as human text (what an attacker would hide)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(text) < 8 or " " not in text or _printable_ratio(text) < 0.9:
        return None
    return text


def decode_base64_blob(blob: str) -> str | None:
    padded = blob + "=" * (-len(blob) % 4)
    try:
        if "-" in blob or "_" in blob:
            data = base64.urlsafe_b64decode(padded)
        else:
            data = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None
    return _decode_text(data)


def decode_hex_blob(blob: str) -> str | None:
    digits = _HEX_STRIP.sub("", blob)
    if len(digits) % 2:
        digits = digits[:-1]
    try:
        return _decode_text(bytes.fromhex(digits))
    except ValueError:
        return None


def decode_tags(text: str) -> str:
    """Unicode tag characters (U+E0020..U+E007E) spell ASCII invisibly: read them out."""
    return "".join(chr(ord(c) - 0xE0000) for c in text)


# ASCII punctuation to spaces, for a fast split into words (bytes.translate is C-speed).
_ASCII_PUNCT = bytes(i for i in range(128) if not (chr(i).isalnum() or chr(i) == "_"))
_TO_SPACE = bytes.maketrans(_ASCII_PUNCT, b" " * len(_ASCII_PUNCT))


def word_set(lower: str) -> frozenset[str]:
    if lower.isascii():
        return frozenset(lower.encode("ascii").translate(_TO_SPACE).decode("ascii").split())
    return frozenset(WORD_RE.findall(lower))


class Variant:
    """A lowercased text and its set of words: the unit the cue engine scans."""

    __slots__ = ("lower", "words")

    def __init__(self, lower: str):
        self.lower = lower
        self.words = word_set(lower)


_INNER_HYPHEN = re.compile(r"(?<=[a-z])[-_]+(?=[a-z])")
# Words the cue lexicons look for (filled in by cues.CueSet): a de-obfuscated variant of a
# text is scanned only if it spells one of them.
VOCABULARY: set[str] = set()
_VOCAB_WORD = re.compile(r"[a-z]{3,}")


def register_vocabulary(text: str) -> None:
    VOCABULARY.update(_VOCAB_WORD.findall(text.lower()))

_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz")


class TextView:
    """A text plus lazily computed normal forms. Checks read only what they need.

    (Plain attributes rather than functools.cached_property, which takes a lock on every
    first access and costs more than some of the values it caches.)
    """

    __slots__ = ("text", "_ascii", "_ascii_bytes", "_normalized", "_lower", "_main", "_longest", "_hidden", "_variants")

    def __init__(self, text: str):
        self.text = text
        self._ascii: bool | None = None
        self._ascii_bytes: bytes | None = None
        self._normalized: str | None = None
        self._lower: str | None = None
        self._main: Variant | None = None
        self._longest: int | None = None
        self._hidden: list[str] | None = None
        self._variants: list[Variant] | None = None

    @property
    def is_ascii(self) -> bool:
        if self._ascii is None:
            self._ascii = self.text.isascii()
        return self._ascii

    @property
    def ascii_bytes(self) -> bytes:
        """The text as bytes, one a character (each non-ASCII one a "?"): the pattern checks
        search these at C speed, at the text's own positions."""
        if self._ascii_bytes is None:
            self._ascii_bytes = self.text.encode("ascii", "replace")
        return self._ascii_bytes

    @property
    def normalized(self) -> str:
        """NFKC, invisible characters removed, look-alike letters folded to Latin."""
        if self._normalized is None:
            text = self.text
            if not self.is_ascii:
                text = INVISIBLE_RE.sub("", text)
                text = unicodedata.normalize("NFKC", text)
                if not text.isascii() and _CONFUSABLE_SCRIPT.search(text):
                    text = _MIXED_SCRIPT_WORD.sub(_fold_confusables, text)
            self._normalized = text
        return self._normalized

    @property
    def lower(self) -> str:
        if self._lower is None:
            self._lower = self.normalized.lower()
        return self._lower

    @property
    def main(self) -> Variant:
        if self._main is None:
            self._main = Variant(self.lower)
        return self._main

    @property
    def longest_word(self) -> int:
        if self._longest is None:
            words = self.main.words
            self._longest = max(map(len, words)) if words else 0
        return self._longest

    @property
    def hidden_texts(self) -> list[str]:
        """Text an attacker hid in this one: tag characters, base64 and hex blobs, ROT13."""
        if self._hidden is not None:
            return self._hidden
        found: list[str] = []
        if not self.is_ascii:
            for m in TAG_RE.finditer(self.text):
                found.append(decode_tags(m.group()))
        words = self.main.words
        # An encoded blob has a long run of letters and digits; ordinary words do not.
        if self.longest_word >= 16:
            for token in self.text.split():
                if len(token) < 24:
                    continue
                token = token.strip(_PUNCT)
                if len(token) >= 24 and all(c in _HEX_DIGITS for c in token):
                    decoded = decode_hex_blob(token)
                    if decoded:
                        found.append(decoded)
                    continue
                blob_match = _BASE64_BLOB.search(token)
                if blob_match is None:
                    continue
                blob = blob_match.group()
                # English words are letters only; an encoded blob mixes in digits or case.
                if blob.isalpha() and (blob.islower() or blob.isupper()):
                    continue
                decoded = decode_base64_blob(blob)
                if decoded:
                    found.append(decoded)
        if "hex" in words or "0x" in self.text or "\\x" in self.text:
            # Spaced or escaped hex ("49 67 6e", "\x49\x67"): rarer, and slower to find.
            for m in _HEX_BLOB.finditer(self.text):
                decoded = decode_hex_blob(m.group())
                if decoded:
                    found.append(decoded)
        if "rot13" in words or "rot" in words:
            found.append(codecs.decode(self.normalized, "rot_13"))
        self._hidden = found
        return found

    @property
    def variants(self) -> list[Variant]:
        """The main text plus de-obfuscated forms worth scanning for the same cues."""
        if self._variants is not None:
            return self._variants
        out = [self.main]
        lower = self.lower
        words = self.main.words
        # Each de-obfuscated form is only worth scanning when it spells a word the checks
        # look for (VOCABULARY): "1gn0r3" -> "ignore" is, "mp3" -> "mpe" is not.
        # Leetspeak: words that mix letters with digits (or split at @ and $).
        if _LEET_CHAR.search(lower):
            # (set difference first: it drops the plain words in C before the Python loop)
            mixed = [w for w in words - _alpha_words(words) if not w.isdigit()]
            if "@" in lower or "$" in lower:
                # "@" and "$" split words: take the pieces of the tokens that hold them.
                mixed += [p for t in lower.split() if "@" in t or "$" in t for p in _LEET_PIECES.findall(t)]
            if any(w.translate(_LEET) in VOCABULARY for w in mixed if w.translate(_LEET) != w):
                unleet = _LEET_TOKEN.sub(lambda m: m.group().translate(_LEET), lower)
                if unleet != lower:
                    out.append(Variant(unleet))
        # Hyphens or underscores inside words ("i-nstruction", "termin_ation").
        if lower.count("-") + lower.count("_") >= 3 and any(
            _INNER_HYPHEN.sub("", piece) in VOCABULARY
            for token in lower.split()
            if "-" in token or "_" in token
            for piece in _HYPHENATED.findall(token)
        ):
            out.append(Variant(_INNER_HYPHEN.sub("", lower)))
        # Spaced-out letters: many distinct one-letter words.
        if len(words & _LETTERS) >= 4 and _SPACED.search(lower):
            variant = Variant(_SPACED.sub(lambda m: _SPACED_SEP.sub("", m.group()), lower))
            if not (variant.words - words).isdisjoint(VOCABULARY):
                out.append(variant)
        for hidden in self.hidden_texts:
            out.append(Variant(TextView(hidden).lower))
        self._variants = out
        return out


def _alpha_words(words: frozenset[str]) -> set[str]:
    return set(filter(str.isalpha, words))


def _fold_confusables(match: re.Match[str]) -> str:
    word = match.group()
    if word.isascii():
        return word
    return word.translate(_CONFUSABLES)
