"""Reference-based text similarity: Levenshtein, ROUGE-L and BLEU, each in 0..1.

Pure Python and dependency-free, so the offline assertions stay fast and install-free.
"""

from __future__ import annotations

import math
import re
from collections import Counter

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-cased word tokens, the unit ROUGE and BLEU count in."""
    return _WORD.findall(text.lower())


def levenshtein_distance(a: str, b: str) -> int:
    """Edit distance in characters (insertions, deletions, substitutions).

    Myers' bit-parallel algorithm (Hyyrö's formulation for edit distance): one column of
    the DP table is a pair of bit vectors held in Python integers, so a pair of 300-char
    strings takes well under a millisecond instead of tens in a cell-by-cell loop.
    """
    if a == b:
        return 0
    if not a or not b:
        return len(a) or len(b)
    if len(b) > len(a):
        a, b = b, a  # the loop runs over b: make it the shorter
    masks: dict[str, int] = {}
    for i, char in enumerate(a):
        masks[char] = masks.get(char, 0) | (1 << i)
    all_bits = (1 << len(a)) - 1
    top = 1 << (len(a) - 1)
    positive, negative, distance = all_bits, 0, len(a)
    for char in b:
        eq = masks.get(char, 0)
        xv = eq | negative
        xh = (((eq & positive) + positive) ^ positive) | eq
        horizontal_up = negative | ~(xh | positive)
        horizontal_down = positive & xh
        if horizontal_up & top:
            distance += 1
        elif horizontal_down & top:
            distance -= 1
        horizontal_up = (horizontal_up << 1) | 1
        horizontal_down <<= 1
        positive = (horizontal_down | ~(xv | horizontal_up)) & all_bits
        negative = horizontal_up & xv & all_bits
    return distance


def levenshtein_similarity(a: str, b: str) -> float:
    """1 - distance / length of the longer string; 1.0 for two empty strings."""
    longest = max(len(a), len(b))
    if longest == 0:
        return 1.0
    return 1.0 - levenshtein_distance(a, b) / longest


def _lcs_length(x: list[str], y: list[str]) -> int:
    """Length of the longest common subsequence, bit-parallel (Allison-Dix, Hyyrö 2004)."""
    if len(x) < len(y):
        x, y = y, x
    masks: dict[str, int] = {}
    for i, token in enumerate(x):
        masks[token] = masks.get(token, 0) | (1 << i)
    all_bits = (1 << len(x)) - 1
    row = all_bits
    for token in y:
        matches = row & masks.get(token, 0)
        row = ((row + matches) | (row - matches)) & all_bits
    return len(x) - row.bit_count()


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 over words (longest common subsequence)."""
    cand, ref = words(candidate), words(reference)
    if not cand or not ref:
        return 1.0 if cand == ref else 0.0
    lcs = _lcs_length(cand, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(cand), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(zip(*(tokens[i:] for i in range(n)), strict=False)) if n > 1 else Counter(tokens)


def bleu(candidate: str, reference: str, max_n: int = 4) -> float:
    """Sentence BLEU with add-one smoothing on higher orders (Lin & Och 2004).

    Without smoothing a short candidate with no matching 4-gram scores 0 however close
    it is, which makes BLEU useless as a per-case threshold.
    """
    cand, ref = words(candidate), words(reference)
    if not cand or not ref:
        return 1.0 if cand == ref else 0.0
    log_total = 0.0
    for n in range(1, max_n + 1):
        cand_ngrams, ref_ngrams = _ngrams(cand, n), _ngrams(ref, n)
        overlap = sum(min(count, ref_ngrams[gram]) for gram, count in cand_ngrams.items())
        total = max(sum(cand_ngrams.values()), 0)
        if n == 1:
            if overlap == 0:
                return 0.0
            log_total += math.log(overlap / total)
        else:
            log_total += math.log((overlap + 1) / (total + 1))
    brevity = 1.0 if len(cand) > len(ref) else math.exp(1 - len(ref) / len(cand))
    return brevity * math.exp(log_total / max_n)
