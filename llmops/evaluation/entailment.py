"""Faithfulness with an entailment model: is each sentence of an output entailed?

The SummaC recipe, with the model llmops ships (llmops/evaluation/alignment.py) or a
detector from a local directory (llmops/evaluation/nli.py):

1. the output is split into claims (its sentences);
2. the context into windows: each sentence, each two neighbouring sentences, and the
   sentences that share most words with the claim taken together (for a claim that
   gathers facts from several places);
3. for each claim, the windows that share most words with it (at most `windows`, so a
   100 KB context costs what a short one does) are scored by the entailment model, the two
   closest first: a claim one of them supports with 0.9 or more is settled there;
4. a claim is as supported as its best window, and the output as its weakest claim.

Each unsupported claim is named with the evidence it was compared to, and the words of
it that appear nowhere in the context, when there are some.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from llmops.evaluation.faithfulness import (
    ClaimVerdict,
    FaithfulnessResult,
    claim_features,
    context_index,
    sentences,
    split_claims,
)
from llmops.evaluation.nli import EntailmentModel, entailment_model, select_evidence

# P(supported) of the weakest claim at or above which an output passes; a detector's own
# calibration may differ: `llmops eval calibrate --model DIR` finds it on your labels.
THRESHOLD = 0.5
WINDOWS = 6
# Windows scored in the first round, and the support that ends a claim's search there.
FIRST_ROUND = 2
SETTLED = 0.9
_WORD = re.compile(r"\w+")
_COMMON = frozenset(
    "the a an and or of to in on at by for with from as is are was were be been has have had it its this that "
    "these those he she they his her their them we our you your i not no but if than then so also which who".split()
)


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _COMMON}


def context_windows(context: str | Sequence[str]) -> list[str]:
    """Sentences and pairs of neighbouring sentences of each context document."""
    documents = [context] if isinstance(context, str) else list(context)
    windows: list[str] = []
    for document in documents:
        parts = [s.strip() for s in sentences(document) if s.strip()]
        windows += parts
        windows += [f"{a} {b}" for a, b in zip(parts, parts[1:], strict=False)]
    return list(dict.fromkeys(windows))


def best_windows(claim: str, windows: list[tuple[str, set[str]]], limit: int) -> list[str]:
    """The `limit` windows (each with its word set, made once per context) that share most
    words with the claim, shorter ones first on a tie."""
    wanted = _words(claim)
    ranked = sorted(windows, key=lambda w: -len(wanted & w[1]) / (1 + 0.01 * len(w[0])))
    return [window for window, _ in ranked[:limit]]


class EntailmentFaithfulnessScorer:
    """Scores outputs with an entailment model (a local detector, by its directory)."""

    def __init__(
        self, model: EntailmentModel | None = None, *, model_path: str | None = None, threshold: float = THRESHOLD,
        windows: int = WINDOWS,
    ) -> None:  # fmt: skip
        self._model = model
        self._model_path = model_path
        self.threshold = threshold
        self.windows = windows

    @property
    def model(self) -> EntailmentModel:
        """The detector named by its directory, else the one llmops ships; loaded on first use."""
        if self._model is None:
            if self._model_path:
                self._model = entailment_model(self._model_path)
            else:
                from llmops.evaluation.alignment import shipped_detector

                self._model = shipped_detector()
        return self._model

    def score(self, output: str, context: str | list[str]) -> FaithfulnessResult:
        joined = context if isinstance(context, str) else "\n\n".join(context)
        claims = split_claims(output) or ([output.strip()] if output.strip() else [])
        if not claims:
            return FaithfulnessResult(score=1.0, unsupported=[], claims=[], threshold=self.threshold)
        windows = [(window, _words(window)) for window in context_windows(context)]
        candidates = []
        for claim in claims:
            found = best_windows(claim, windows, self.windows)
            gathered = select_evidence(joined, claim)
            candidates.append(found + ([gathered] if gathered not in found else []))
        # Two rounds: the windows that share most words with each claim first; the rest only
        # for claims those did not clearly support. Most supported claims need one round,
        # and each pair is a full pass of the model (the cost is in the benchmark).
        scored: list[list[tuple[str, float]]] = [[] for _ in claims]
        first = [c[:FIRST_ROUND] for c in candidates]
        self._score_round(claims, first, scored)
        rest = [
            c[FIRST_ROUND:] if max((p for _, p in scored[i]), default=0.0) < SETTLED else []
            for i, c in enumerate(candidates)
        ]
        self._score_round(claims, rest, scored)
        index = context_index(joined)
        verdicts = []
        for claim, judged, found in zip(claims, scored, candidates, strict=True):
            evidence, support = max(judged, key=lambda pair: pair[1])
            supported = support >= self.threshold
            if not supported:
                evidence = found[0]  # what the claim should have matched: its closest passage
            novel = [] if supported else claim_features(claim, index)[1]
            verdicts.append(ClaimVerdict(claim, support, supported, novel, evidence))
        return FaithfulnessResult(
            score=min(v.score for v in verdicts),
            unsupported=[v.claim for v in verdicts if not v.supported],
            claims=verdicts,
            threshold=self.threshold,
        )

    def _score_round(
        self, claims: list[str], windows: list[list[str]], scored: list[list[tuple[str, float]]]
    ) -> None:
        pairs = [(window, claim) for claim, found in zip(claims, windows, strict=True) for window in found]
        if not pairs:
            return
        support = self.model.scores(pairs)[:, 0]
        at = 0
        for i, found in enumerate(windows):
            for window in found:
                scored[i].append((window, float(support[at])))
                at += 1
