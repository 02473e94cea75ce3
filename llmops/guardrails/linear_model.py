"""Learned text scorers: a logistic regression over word and character n-grams.

The harmful-request and injection checks each load one such model (a JSON file next to
this module, written by `scripts/train_guardrail_models.py`; it holds vocabulary terms
with their idf and weight, never training text). Scoring is plain Python with the work
in C: the text's terms are counted with `Counter`, intersected with the model's
vocabulary as sets, and summed, so a model adds a few MB to the process and no import.

Features (one `terms()` for training and scoring, so they cannot drift apart):
  - words (runs of word characters; digits folded to 0, so "card 4605" and "card 1234"
    are one feature),
  - word bigrams,
  - character 3-grams of each word padded with spaces: they carry German compounds,
    Korean particles and misspellings that whole words miss; a run of Chinese or Japanese
    (a whole clause, written without spaces) gives its character pairs instead (the harmful and injection
    models; the document model does without: on held-out document sources they made it
    worse, taking words such as "system" in code for attacks).
Values are tf-idf with sublinear tf, l2-normalised. The harmful and injection models
(`unknown_idf` in their file) count the terms they do not know in the norm too, each at
the largest idf of the vocabulary: a text the model knows one word of (a question in a
language it never saw) then scores near the intercept instead of getting that word's whole
weight (held out, Hindi questions stopped as injections 35% -> 22%; balanced accuracy of
the harmful check 0.634 -> 0.643, of the injection model alone 0.733 -> 0.739). Without it,
the norm is over the known terms only, as scikit-learn's TfidfTransformer gives it.

Long texts: a check reads a bounded part of a text (`bounded`: its first and last
`window` characters), cues and model alike, so its cost per message is bounded whatever
the message's length (a RAG prompt runs to 100 KB); each check documents what that
leaves unread.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Collection
from functools import cache, lru_cache
from operator import mul
from pathlib import Path
from typing import Any

from llmops.guardrails.text import TextView

HERE = Path(__file__).parent
_WORD = re.compile(r"\w+")
_ASCII_PUNCT = bytes(i for i in range(128) if not (chr(i).isalnum() or chr(i) == "_"))
_ASCII_TO_SPACE = bytes.maketrans(_ASCII_PUNCT, b" " * len(_ASCII_PUNCT))
_DIGITS = str.maketrans("123456789", "000000000")
# Character n-grams are taken from words of at most this many characters: a longer run
# (a hash, base64, a sentence of Chinese without spaces) would add hundreds of grams.
_MAX_GRAM_WORD = 24
CHAR_N = 3
# Chinese and Japanese write a sentence without spaces, so one "word" is a whole clause:
# such a run gives its character pairs instead (up to this many characters of it).
_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_MAX_CJK_RUN = 256


def words(lower: str) -> list[str]:
    """The words of a lowercased text, digits folded to 0."""
    lower = lower.translate(_DIGITS)
    if lower.isascii():
        # Same tokens as the regex for ASCII text, several times faster.
        return lower.encode("ascii").translate(_ASCII_TO_SPACE).decode("ascii").split()
    return _WORD.findall(lower)


@lru_cache(maxsize=8)
def terms(lower: str, chars: bool = True) -> Counter[str]:
    """Every feature of a lowercased text with its count (`chars=False`: words and word
    pairs only). Cached for the last few texts: the harmful and injection checks read the
    same window of a message. Callers must not change the Counter."""
    ws = words(lower)
    unique = Counter(ws)
    counts = Counter(unique)
    counts.update([f"{a} {b}" for a, b in zip(ws, ws[1:], strict=False)])
    if not chars:
        return counts
    grams: list[str] = []
    for w, k in unique.items():
        word_grams = _grams(w)
        grams.extend(word_grams if k == 1 else word_grams * k)
    counts.update(grams)
    return counts


@lru_cache(maxsize=8)
def repeated(lower: str, chars: bool = True) -> frozenset[str]:
    """The features of a text that occur more than once (shared by the models that read it)."""
    return frozenset(t for t, n in terms(lower, chars).items() if n > 1)


@lru_cache(maxsize=1 << 16)
def _grams(word: str) -> tuple[str, ...]:
    """A word's character n-grams, padded with spaces (cached: words repeat across texts);
    for a run of Chinese or Japanese, its character pairs."""
    if not word.isascii() and _CJK.search(word):
        run = word[:_MAX_CJK_RUN]
        return tuple("~" + run[i : i + 2] for i in range(len(run) - 1))
    if len(word) > _MAX_GRAM_WORD:
        return ()
    padded = f" {word} "
    return tuple("~" + padded[i : i + CHAR_N] for i in range(len(padded) - CHAR_N + 1))


def bounded(view: TextView, window: int) -> TextView:
    """The part of a text a check reads: all of it up to 2 x `window` characters, else its
    first and last `window` characters (a request, or an instruction planted in what an
    attacker controls, sits at either end far more often than deep inside)."""
    text = view.text
    if len(text) <= 2 * window:
        return view
    global _last_bounded
    last = _last_bounded  # one tuple, read and written whole: safe across threads
    if last[0] is view and last[1] == window:
        return last[2]
    part = TextView(text[:window] + "\n" + text[-window:])
    _last_bounded = (view, window, part)
    return part


# The last long text bounded, and its part: the harmful and injection checks read the same
# window of the same message, which is then normalised once.
_last_bounded: tuple[TextView | None, int, TextView] = (None, 0, TextView(""))


def chunks(text: str, width: int) -> list[tuple[int, str]]:
    """Windows of `width` characters overlapping by half, each with its start; a text no
    longer than one window is one window."""
    if len(text) <= width:
        return [(0, text)]
    step = width // 2
    out = []
    for start in range(0, len(text) - step, step):
        out.append((start, text[start : start + width]))
    return out


class LinearModel:
    """A trained scorer: P(positive) for a text, and optionally the most likely label."""

    def __init__(self, data: dict[str, Any]):
        self.name: str = data["name"]
        self.intercept: float = data["intercept"]
        self.threshold: float = data["threshold"]
        # Characters read from each end of a longer text (see windows()).
        self.window: int = data["window"]
        # Documents are cut into windows of this width and the best window counts (0: the
        # text is scored whole).
        self.chunk: int = data.get("chunk", 0)
        self.char_ngrams: bool = data.get("char_ngrams", True)
        # Each unknown term's share of the norm, squared (0: unknown terms are left out).
        self._unknown_squared: float = data.get("unknown_idf", 0.0) ** 2
        # Each vocabulary term's idf and weight, as two flat tables (scoring maps over them in C).
        self._idf: dict[str, float] = {t: v[0] for t, v in data["terms"].items()}
        self._weight: dict[str, float] = {t: v[1] for t, v in data["terms"].items()}
        # idf x weight and idf squared: a text's score is two sums over its known terms.
        self._idf_weight: dict[str, float] = {t: v[0] * v[1] for t, v in data["terms"].items()}
        self._idf_squared: dict[str, float] = {t: v[0] * v[0] for t, v in data["terms"].items()}
        # label -> (intercept, {term: weight}): a multinomial head over the same features.
        self.labels: dict[str, tuple[float, dict[str, float]]] = {
            k: (v["intercept"], v["weights"]) for k, v in data.get("labels", {}).items()
        }

    @property
    def terms(self) -> dict[str, tuple[float, float]]:
        """Each vocabulary term (a word, two words, or "~" and a character 3-gram) with its idf and weight."""
        return {t: (idf, self._weight[t]) for t, idf in self._idf.items()}

    @classmethod
    def load(cls, path: Path) -> LinearModel:
        return cls(json.loads(path.read_text(encoding="utf-8")))

    def windows(self, text: str) -> list[str]:
        """What the model reads of a text: its first and last `window` characters (see
        `bounded`), cut into `chunk`-wide windows when the model has a chunk width."""
        w = self.window
        pieces = [text] if len(text) <= 2 * w else [text[:w], text[-w:]]
        if not self.chunk:
            return pieces
        return [c for p in pieces for _, c in chunks(p, self.chunk)]

    def _values(self, lower: str) -> tuple[list[str], list[float]]:
        """The text's known terms and their l2-normalised tf-idf values (iteration in C:
        this runs on every message)."""
        counts = terms(lower, self.char_ngrams)
        known = list(counts.keys() & self._idf.keys())
        values = list(map(self._idf.__getitem__, known))
        for i, n in enumerate(map(counts.__getitem__, known)):
            if n > 1:  # sublinear tf: 1 + log(n)
                values[i] *= 1.0 + math.log(n)
        norm = math.sqrt(sum(map(mul, values, values)) + self._unknown_mass(lower, counts, known))
        if norm:
            values = [v / norm for v in values]
        return known, values

    def score(self, lower: str) -> tuple[float, dict[str, float]]:
        """P(positive) of one lowercased piece of text, with its feature values."""
        known, values = self._values(lower)
        z = self.intercept + sum(map(mul, values, map(self._weight.__getitem__, known)))
        return _sigmoid(z), dict(zip(known, values, strict=True))

    def probability(self, lower: str) -> float:
        """P(positive) of one lowercased piece of text: `score` without building the values.

        With tf-idf values v_t = idf_t x tf_t / norm, z is the intercept plus
        sum(idf_t x w_t x tf_t) / sqrt(sum(idf_t^2 x tf_t^2)); most terms occur once (tf 1),
        so both sums run over the dicts in C and only repeated terms are corrected."""
        counts = terms(lower, self.char_ngrams)
        known = counts.keys() & self._idf.keys()
        numerator = sum(map(self._idf_weight.__getitem__, known))
        squares = sum(map(self._idf_squared.__getitem__, known))
        for term in repeated(lower, self.char_ngrams) & known:
            tf = 1.0 + math.log(counts[term])
            numerator += self._idf_weight[term] * (tf - 1.0)
            squares += self._idf_squared[term] * (tf * tf - 1.0)
        squares += self._unknown_mass(lower, counts, known)
        return _sigmoid(self.intercept + (numerator / math.sqrt(squares) if squares else 0.0))

    def _unknown_mass(self, lower: str, counts: Counter[str], known: Collection[str]) -> float:
        """The squared tf-idf of the text's unknown terms, each at `unknown_idf` (0 for a
        model without it)."""
        if not self._unknown_squared:
            return 0.0
        mass = float(len(counts) - len(known))
        for term in repeated(lower, self.char_ngrams).difference(known):
            tf = 1.0 + math.log(counts[term])
            mass += tf * tf - 1.0
        return self._unknown_squared * mass

    def best(self, text_lower: str) -> tuple[float, str]:
        """The highest score over the windows the model reads, and that window (for `label`)."""
        top, top_piece = 0.0, ""
        for piece in self.windows(text_lower):
            p = self.probability(piece)
            if p > top:
                top, top_piece = p, piece
        return top, top_piece

    def label(self, lower: str) -> str | None:
        """The most likely label of a lowercased piece of text (None without a label head);
        asked only of a text the model flagged, so its values are built only then."""
        if not self.labels:
            return None
        values = self.score(lower)[1]
        scores = {
            name: b + sum(v * weights.get(t, 0.0) for t, v in values.items()) for name, (b, weights) in self.labels.items()
        }
        return max(scores, key=scores.__getitem__)


def _sigmoid(z: float) -> float:
    if z < -60:
        return 0.0
    return 1.0 / (1.0 + math.exp(-z))


@cache
def load(name: str, path: str | None = None) -> LinearModel:
    """The shipped model `name` (harmful, injection, indirect), or the file at `path` (a model
    trained by scripts/train_guardrail_models.py on other data), loaded once per process."""
    file = Path(path) if path else HERE / f"{name}_model.json"
    try:
        model = LinearModel.load(file)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"cannot load the {name} model from {file}: {type(exc).__name__}") from None
    if model.name != name:
        raise ValueError(f"{file} holds the {model.name!r} model, not the {name!r} one")
    return model
