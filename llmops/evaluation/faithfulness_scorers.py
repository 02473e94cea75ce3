"""Which faithfulness scorer a name means: one place for the suite's `scorer:`, the CLI's
`--scorer` and `--metric`, and calibration.

- "offline" (the default) and its other name "lexical": word overlap with checks for
  figures, names and negations, no model (llmops/evaluation/faithfulness.py);
- "entailment": the entailment model llmops ships (llmops/evaluation/alignment.py), scored
  the SummaC way (llmops/evaluation/entailment.py); it needs the `semantic` extra. It
  catches changed figures, directions, names and negations that word overlap passes, but
  on whole held-out sources it is no better than word overlap yet, so it is not the
  default (figures in benchmarks/README.md);
- with a model directory (`model: /path`): a Hugging Face-format detector you have, scored
  the SummaC way;
- "judge": a model of the gateway; it is awaited, so callers handle it themselves.
"""

from __future__ import annotations

from llmops.errors import InvalidInput
from llmops.evaluation.faithfulness import THRESHOLD as LEXICAL_THRESHOLD
from llmops.evaluation.faithfulness import FaithfulnessScorer, LexicalFaithfulnessScorer

OFFLINE = "offline"
LEXICAL = "lexical"
ENTAILMENT = "entailment"
JUDGE = "judge"
SCORERS = (OFFLINE, LEXICAL, ENTAILMENT, JUDGE)
# `llmops eval score --metric ...` names: each is faithfulness with one scorer.
METRICS = {"faithfulness": OFFLINE, "faithfulness-lexical": LEXICAL, "faithfulness-entailment": ENTAILMENT}


def offline_scorer(
    scorer: str | None = None, model: str | None = None, threshold: float | None = None
) -> FaithfulnessScorer:
    """The scorer that runs in this process for `scorer` (and `model`, a detector's path)."""
    name = scorer or OFFLINE
    if name not in (OFFLINE, LEXICAL, ENTAILMENT):
        known = ", ".join(SCORERS)
        raise InvalidInput(f"faithfulness scorer {name!r} does not run offline; known scorers: {known}")
    if model is not None and name != OFFLINE:
        raise InvalidInput(f"faithfulness: `model` is a detector for the offline scorer, not for {name!r}")
    if name != ENTAILMENT and model is None:
        return LexicalFaithfulnessScorer(threshold=LEXICAL_THRESHOLD if threshold is None else threshold)
    from llmops.evaluation.entailment import THRESHOLD, EntailmentFaithfulnessScorer

    return EntailmentFaithfulnessScorer(
        model_path=model, threshold=THRESHOLD if threshold is None else threshold
    )
