"""A small learned scorer for role-play jailbreaks, beside the injection check's cues.

Long role-play jailbreaks ("you are X, who ...") differ from ordinary role prompts in
many small ways that hand-written cues only partly reach. This is a logistic regression
over word unigrams and bigrams (tf-idf with sublinear tf, l2-normalised), trained by
`scripts/train_jailbreak_model.py`; the file next to this module holds its vocabulary
terms with their idf and weight, nothing else. Scoring is plain Python: the same
tokenisation as scikit-learn's TfidfVectorizer (words of two or more characters,
lowercased), a dot product and a sigmoid.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from functools import cache
from pathlib import Path

MODEL_PATH = Path(__file__).with_name("jailbreak_model.json")
_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_ASCII_PUNCT = bytes(i for i in range(128) if not (chr(i).isalnum() or chr(i) == "_"))
_ASCII_TO_SPACE = bytes.maketrans(_ASCII_PUNCT, b" " * len(_ASCII_PUNCT))


class JailbreakModel:
    def __init__(self, terms: dict[str, list[float]], intercept: float, threshold: float, min_words: int):
        self.intercept = intercept
        self.threshold = threshold
        self.min_words = min_words
        # Bigrams keyed by word pairs, so that counting them stays in C (Counter over zip).
        self._unigrams = {t: tuple(v) for t, v in terms.items() if " " not in t}
        self._bigrams = {tuple(t.split(" ")): tuple(v) for t, v in terms.items() if " " in t}

    @property
    def terms(self) -> dict[str, tuple[float, float]]:
        """Each vocabulary term (a word, or two joined by a space) with its idf and weight."""
        return {**self._unigrams, **{" ".join(pair): v for pair, v in self._bigrams.items()}}

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> JailbreakModel:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(data["terms"], data["intercept"], data["threshold"], data["min_words"])

    def probability(self, lower: str) -> float | None:
        """P(jailbreak) for a lowercased text; None when it is too short to judge."""
        # n tokens of two or more characters, each apart from the next, take at least
        # 3n - 1 characters: a shorter text is too short without tokenising it.
        if len(lower) < 3 * self.min_words - 1:
            return None
        words = _words(lower)
        if len(words) < self.min_words:
            return None
        dot = norm = 0.0
        bigrams = Counter(zip(words, words[1:], strict=False))  # each word with the next
        for counts, table in ((Counter(words), self._unigrams), (bigrams, self._bigrams)):
            # Only the terms the model knows: a set intersection, in C.
            for term in counts.keys() & table.keys():
                idf, weight = table[term]
                n = counts[term]
                value = idf if n == 1 else (1.0 + math.log(n)) * idf
                dot += value * weight
                norm += value * value
        z = self.intercept + (dot / math.sqrt(norm) if norm else 0.0)
        return 1.0 / (1.0 + math.exp(-z))


def _words(lower: str) -> list[str]:
    """scikit-learn's default tokens: runs of two or more word characters."""
    if lower.isascii():
        # The same tokens for ASCII text, three times faster: punctuation to spaces, then split.
        return [w for w in lower.encode("ascii").translate(_ASCII_TO_SPACE).decode("ascii").split() if len(w) > 1]
    return _TOKEN.findall(lower)


@cache
def default_model() -> JailbreakModel:
    return JailbreakModel.load()
