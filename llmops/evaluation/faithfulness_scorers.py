"""Which faithfulness scorer a name means: one place for the suite's `scorer:`, the CLI's
`--scorer` and `--metric`, and calibration.

- "offline" (the default) and its other name "lexical": the scorer llmops ships, with no
  model (llmops/evaluation/faithfulness.py);
- with a model directory (`model: /path`): a Hugging Face-format detector you have, scored
  the SummaC way (llmops/evaluation/entailment.py);
- "judge": a model of the gateway; it is awaited, so callers handle it themselves.
"""

from __future__ import annotations

from llmops.errors import InvalidInput
from llmops.evaluation.faithfulness import THRESHOLD as LEXICAL_THRESHOLD
from llmops.evaluation.faithfulness import FaithfulnessScorer, LexicalFaithfulnessScorer

OFFLINE = "offline"
LEXICAL = "lexical"
JUDGE = "judge"
SCORERS = (OFFLINE, LEXICAL, JUDGE)
# `llmops eval score --metric ...` names: each is faithfulness with one scorer.
METRICS = {"faithfulness": OFFLINE, "faithfulness-lexical": LEXICAL}


def offline_scorer(
    scorer: str | None = None, model: str | None = None, threshold: float | None = None
) -> FaithfulnessScorer:
    """The scorer that runs in this process for `scorer` (and `model`, a detector's path)."""
    name = scorer or OFFLINE
    if name not in (OFFLINE, LEXICAL):
        known = ", ".join(SCORERS)
        raise InvalidInput(f"faithfulness scorer {name!r} does not run offline; known scorers: {known}")
    if model is not None and name != OFFLINE:
        raise InvalidInput(f"faithfulness: `model` is a detector for the offline scorer, not for {name!r}")
    if model is None:
        return LexicalFaithfulnessScorer(threshold=LEXICAL_THRESHOLD if threshold is None else threshold)
    from llmops.evaluation.entailment import THRESHOLD, EntailmentFaithfulnessScorer

    return EntailmentFaithfulnessScorer(
        model_path=model, threshold=THRESHOLD if threshold is None else threshold
    )
