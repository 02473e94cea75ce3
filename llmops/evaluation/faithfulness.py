"""The offline faithfulness (hallucination) scorer, `scorer: offline` (or `lexical`), and
what every faithfulness scorer shares: claims (an output's sentences), ClaimVerdict and
FaithfulnessResult. It reads words, not meaning: "rose 12%" for "fell 12%" keeps every
word and passes; a detector model (`model:`, llmops/evaluation/entailment.py) or the judge
reads what it cannot.

No model download. Each sentence of the output is a claim; each claim is aligned with the
context and described by a few features that generalise across domains:

- how much of its content is novel (absent from the context after light lemmatisation),
  weighted by how specific each novel word is: a rare word or a name is far more often a
  hallucination than a common paraphrase ("has been", "people"). Specificity comes from the
  rank of the word in a BPE vocabulary (frequent words got merged first), which is
  offline and language-model free;
- the most specific novel word (one invented name is enough to be wrong);
- whether consecutive content words of the claim also stand near each other in the
  context (a claim built from context words put in a new relation is a typical error);
- novel numbers, dates and (when the text has case) capitalised names;
- a negation present on one side only of the claim and its best supporting sentence.

A logistic model combines them; its weights were fitted once on a development slice of
SummaC (XSum-Faith + SummEval) and are checked for generalisation on held-out halves by
`benchmarks/faithfulness_quality.py`. A claim with probability >= THRESHOLD is supported.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise
from typing import Protocol

# Fitted once (by the first benchmarks/faithfulness_quality.py, in git history): class-balanced logistic
# regression on all 585 development rows, then the bias moved to the balanced-accuracy
# optimum so that THRESHOLD 0.5 is the calibrated decision point. Order matches FEATURE_NAMES.
FEATURE_NAMES = ("novel_weighted", "max_specificity", "pair_support", "novel_specifics", "negation_mismatch")
WEIGHTS = (-1.77, -0.69, 2.74, -1.45, -3.0)
# Set by rule, not fitted: the development data holds two flipped negations, too few to
# learn from, and a restated sentence with its negation flipped is plainly unsupported.
FIXED_WEIGHTS = {"negation_mismatch": -3.0}
BIAS = 0.15
THRESHOLD = 0.5

_STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself of off on once only or other our ours ourselves out
    over own same she should so some such than that the their theirs them themselves then there
    these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself yourselves may might must shall
    said says say told according also new one s t""".split()
)
_NEGATIONS = frozenset({"not", "no", "never", "n't", "nobody", "none", "nothing", "neither", "nor", "without"})
_NUMBER_WORDS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "twenty": "20",
    "hundred": "100", "thousand": "1000", "million": "1000000", "billion": "1000000000",
    "first": "1st", "second": "2nd", "third": "3rd", "fourth": "4th", "fifth": "5th",
}  # fmt: skip
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:[.,:][0-9]+)*|n't")
# A sentence ends at . ! or ? (and any closing quote or bracket) followed by space, or at a
# line break. Matched forwards, not with a look-behind: this runs over every context.
_SENTENCE_END = re.compile(r"[.!?\n](?:(?<=\n)|[\"')\]]*\s)\s*")
_PAIR_WINDOW = 10  # tokens; "near each other" in the context
_NEGATION_SCOPE = 3  # tokens between a negation and the words it negates
_RESTATES = 0.6  # share of a claim's content words one context sentence must hold to be its source


def lemma(word: str) -> str:
    return _LEMMAS[word]


def _lemma(word: str) -> str:
    """Lemmatisation-lite: numbers normalised, common English suffixes stripped.

    Crude but symmetric: claim and context go through the same rules, so "losing",
    "lose" and "loses" all meet at "los", "planning" and "plans" at "plan".
    """
    word = word.lower()
    if word in _NUMBER_WORDS:
        return _NUMBER_WORDS[word]
    if word[0].isdigit():
        return word.replace(",", "")
    if len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("es") and word[-3] in "sxz" or word.endswith(("ches", "shes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    elif word.endswith("ly") and len(word) > 5:
        word = word[:-2]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            word = word[: -len(suffix)]
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]  # planning -> plan
            break
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]  # lose / losing, time / times
    return word


_SPLIT_THOUSANDS = re.compile(r"(\d), (\d{3})\b")


class _LemmaCache(dict):
    """word -> lemma, computed on first sight. A dict lookup is what runs per context
    token (hundreds per context), so it must cost no more than a dict lookup."""

    def __missing__(self, word: str) -> str:
        if len(self) > 500_000:  # vocabularies are finite, but be safe in a long-lived process
            self.clear()
        found = self[word] = _lemma(word)
        return found


_LEMMAS = _LemmaCache()


def _normalise(text: str) -> str:
    # Detokenised news text writes "50, 000" for "50,000" and "\\'" for "'".
    text = text.replace("\\'", "'").replace("\u2019", "'")
    return _SPLIT_THOUSANDS.sub(r"\1,\2", text) if ", " in text else text


def sentences(text: str) -> list[str]:
    """The sentences of a text, stripped, without empty ones."""
    found, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        end = match.start() + len(match.group().rstrip())
        sentence = text[start:end].strip()
        if sentence:
            found.append(sentence)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        found.append(tail)
    return found


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(_normalise(text))


def split_claims(text: str, min_words: int = 3) -> list[str]:
    """Sentences of an output, each a claim.

    A fragment shorter than min_words is not a claim of its own: a trailing one ("Sources:
    BBC.") joins the previous sentence, a leading one (a heading like "Summary:") the next.
    """
    claims: list[str] = []
    pending = ""
    for part in sentences(text):
        if len(_tokens(part)) < min_words:
            if claims:
                claims[-1] = f"{claims[-1]} {part}"
            else:
                pending = f"{pending} {part}".strip()
            continue
        claims.append(f"{pending} {part}".strip() if pending else part)
        pending = ""
    if pending:
        claims.append(pending)
    return claims


class _Specificity:
    """How specific a word is, from its rank in a BPE vocabulary (0 common .. >1 rare or split).

    A word that is one early token is frequent; a late token, or several tokens, is rare.
    Falls back to word length when tiktoken's encodings are unavailable offline.
    """

    def __init__(self) -> None:
        self._encode = None
        try:
            from llmops.settings import configure_offline_tokenizers

            configure_offline_tokenizers()
            import tiktoken

            self._encode = tiktoken.get_encoding("cl100k_base").encode_ordinary
        except Exception:  # no tiktoken data offline: length is a rough stand-in
            self._encode = None

    @lru_cache(maxsize=200_000)  # noqa: B019 - one instance per process, lives forever
    def __call__(self, word: str) -> float:
        if self._encode is None:
            return min(len(word) / 8.0, 2.0)
        ids = self._encode(" " + word)
        return math.log(2 + ids[0]) / math.log(100_000) + (len(ids) - 1)


_specificity: _Specificity | None = None


def specificity(word: str) -> float:
    global _specificity
    if _specificity is None:
        _specificity = _Specificity()
    return _specificity(word)


class ContextIndex:
    """A context tokenised once, so many claims can be checked against it cheaply."""

    def __init__(self, context: str) -> None:
        self.text = context
        self.sentences: list[str] = []
        self.sentence_lemmas: list[set[str]] = []
        self.sentence_negated: list[bool] = []
        self.sentence_spans: list[tuple[int, int]] = []
        self.lemmas: list[str] = []
        self.lowered: list[str] = []
        self._words: set[str] | None = None
        for sentence in sentences(_normalise(context)):
            lowered = _TOKEN.findall(sentence.lower())
            if not lowered:
                continue
            lemmas = list(map(_LEMMAS.__getitem__, lowered))
            self.sentence_spans.append((len(self.lemmas), len(self.lemmas) + len(lemmas)))
            self.sentences.append(sentence)
            self.sentence_lemmas.append(set(lemmas))
            self.sentence_negated.append(not _NEGATIONS.isdisjoint(lowered))
            self.lemmas.extend(lemmas)
            self.lowered.extend(lowered)
        # Case carries entity information only when the context is not all one case.
        self.has_case = context != context.lower() and context != context.upper()
        self.vocabulary = set(self.lemmas)
        self._positions: dict[str, list[int]] | None = None
        self._prefixes: set[str] | None = None

    @property
    def words(self) -> set[str]:
        """The context's words as written (lower-cased), before lemmatisation."""
        if self._words is None:
            self._words = set(self.lowered)
        return self._words

    def knows(self, token: str) -> bool:
        # A shared 5-letter stem counts, so "injured" is supported by "injuries".
        if token in self.vocabulary:
            return True
        if len(token) < 6:
            return False
        if self._prefixes is None:
            self._prefixes = {t[:5] for t in self.vocabulary if len(t) >= 5}
        return token[:5] in self._prefixes

    def positions(self, token: str) -> list[int]:
        if self._positions is None:
            # Built on first use, once: only claims with word pairs need it.
            found: dict[str, list[int]] = {}
            for position, lemma_ in enumerate(self.lemmas):
                seen = found.get(lemma_)
                if seen is None:
                    found[lemma_] = [position]
                else:
                    seen.append(position)
            self._positions = found
        return self._positions.get(token, [])

    def near(self, a: str, b: str, window: int = _PAIR_WINDOW) -> bool:
        first, second = self.positions(a), self.positions(b)
        if not first or not second:
            return False
        for position in first:
            i = bisect.bisect_left(second, position - window)
            if i < len(second) and second[i] <= position + window:
                return True
        return False

    def negated_near(self, sentence: int, content: set[str], window: int = _NEGATION_SCOPE) -> bool:
        """Whether a negation in the sentence stands within `window` tokens of a word of `content`.

        A negation in another clause ("... a season without a trophy") does not negate
        the part a claim restates.
        """
        start, end = self.sentence_spans[sentence]
        negations = [i for i in range(start, end) if self.lowered[i] in _NEGATIONS]
        if not negations:
            return False
        shared = [i for i in range(start, end) if self.lemmas[i] in content]
        return any(abs(n - i) <= window for n in negations for i in shared)

    def best_sentence(self, content: set[str]) -> int | None:
        """The index of the context sentence that shares the most content with a claim."""
        best, best_overlap = None, 0
        for i, lemmas in enumerate(self.sentence_lemmas):
            overlap = len(content & lemmas)
            if overlap > best_overlap:
                best, best_overlap = i, overlap
        return best


@dataclass(frozen=True)
class ClaimVerdict:
    claim: str
    score: float
    supported: bool
    unsupported_terms: list[str] = field(default_factory=list)
    evidence: str | None = None


@dataclass(frozen=True)
class FaithfulnessResult:
    """score in 0..1 (the weakest claim's), and the claims the context does not support."""

    score: float
    unsupported: list[str]
    claims: list[ClaimVerdict]
    threshold: float = THRESHOLD

    @property
    def passed(self) -> bool:
        return self.score >= self.threshold

    def to_dict(self) -> dict:
        return {
            "score": round(self.score, 4),
            "passed": self.passed,
            "unsupported": self.unsupported,
            "claims": [
                {
                    "claim": c.claim,
                    "score": round(c.score, 4),
                    "supported": c.supported,
                    "unsupported_terms": c.unsupported_terms,
                    "evidence": c.evidence,
                }
                for c in self.claims
            ],
        }


def claim_features(claim: str, index: ContextIndex) -> tuple[tuple[float, ...], list[str], str | None]:
    """The features of one claim against a context, the novel terms, and the best evidence."""
    raw = _tokens(claim)
    lowered = [t.lower() for t in raw]
    content = [_LEMMAS[t] for t in lowered if t not in _STOPWORDS and t not in _NEGATIONS]
    novel = [t for t in content if not index.knows(t)]
    specific = [specificity(t) for t in content]
    novel_specific = [specificity(t) for t in novel]
    novel_weighted = sum(novel_specific) / sum(specific) if specific and sum(specific) else 0.0
    max_specificity = max(novel_specific, default=0.0)

    pairs = list(pairwise(content))
    pair_support = sum(index.near(a, b) for a, b in pairs) / len(pairs) if pairs else 1.0

    specifics = [t for t in novel if t[0].isdigit()]
    if index.has_case:
        # Capitalised words inside a sentence are names; an unseen name is an invented entity.
        specifics += [
            t.lower() for i, t in enumerate(raw) if i > 0 and t[:1].isupper() and t.lower() not in index.words
        ]
    novel_specifics = float(min(len(specifics), 1))

    content_set = set(content)
    best = index.best_sentence(content_set)
    evidence = index.sentences[best] if best is not None else None
    # A flipped negation matters when the claim restates one sentence of the context
    # ("said it was enough" against "said it was not enough"); a negation elsewhere in a
    # loosely related sentence says nothing.
    negation_mismatch = 0.0
    if best is not None and len(content_set & index.sentence_lemmas[best]) >= _RESTATES * len(content_set):
        claim_negated = not _NEGATIONS.isdisjoint(lowered)
        if claim_negated != index.sentence_negated[best]:
            negation_mismatch = float(claim_negated or index.negated_near(best, content_set))

    terms = list(dict.fromkeys(novel + [s for s in specifics if s not in novel]))
    features = (novel_weighted, max_specificity, pair_support, novel_specifics, negation_mismatch)
    return features, terms, evidence


def probability(features: tuple[float, ...], weights: tuple[float, ...] = WEIGHTS, bias: float = BIAS) -> float:
    z = bias + sum(w * x for w, x in zip(weights, features, strict=True))
    return 1.0 / (1.0 + math.exp(-z))


class FaithfulnessScorer(Protocol):
    def score(self, output: str, context: str | list[str]) -> FaithfulnessResult: ...


@lru_cache(maxsize=64)
def context_index(context: str) -> ContextIndex:
    """Indexes of recent contexts: a suite grades each case's context once per prompt × model."""
    return ContextIndex(context)


class LexicalFaithfulnessScorer:
    """Scores an output against its context with no model: see the module docstring."""

    def __init__(self, threshold: float = THRESHOLD) -> None:
        self.threshold = threshold

    def score(self, output: str, context: str | list[str]) -> FaithfulnessResult:
        if isinstance(context, list):
            context = "\n".join(context)
        claims = split_claims(output)
        if not claims:
            return FaithfulnessResult(1.0, [], [], self.threshold)
        index = context_index(context)
        verdicts = []
        for claim in claims:
            features, terms, evidence = claim_features(claim, index)
            p = probability(features)
            verdicts.append(ClaimVerdict(claim, p, p >= self.threshold, terms, evidence))
        return FaithfulnessResult(
            score=min(v.score for v in verdicts),
            unsupported=[v.claim for v in verdicts if not v.supported],
            claims=verdicts,
            threshold=self.threshold,
        )
