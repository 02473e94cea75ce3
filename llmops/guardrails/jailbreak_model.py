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
from functools import cache
from pathlib import Path

MODEL_PATH = Path(__file__).with_name("jailbreak_model.json")
_TOKEN = re.compile(r"(?u)\b\w\w+\b")


class JailbreakModel:
    def __init__(self, terms: dict[str, list[float]], intercept: float, threshold: float, min_words: int):
        self.terms = terms
        self.intercept = intercept
        self.threshold = threshold
        self.min_words = min_words

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> JailbreakModel:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(data["terms"], data["intercept"], data["threshold"], data["min_words"])

    def probability(self, lower: str) -> float | None:
        """P(jailbreak) for a lowercased text; None when it is too short to judge."""
        words = _TOKEN.findall(lower)
        if len(words) < self.min_words:
            return None
        counts: dict[str, int] = {}
        for i, word in enumerate(words):
            counts[word] = counts.get(word, 0) + 1
            if i:
                bigram = words[i - 1] + " " + word
                counts[bigram] = counts.get(bigram, 0) + 1
        terms = self.terms
        dot = norm = 0.0
        for term, n in counts.items():
            found = terms.get(term)
            if found is not None:
                value = (1.0 + math.log(n)) * found[0]
                dot += value * found[1]
                norm += value * value
        z = self.intercept + (dot / math.sqrt(norm) if norm else 0.0)
        return 1.0 / (1.0 + math.exp(-z))


@cache
def default_model() -> JailbreakModel:
    return JailbreakModel.load()
