"""Harmful requests: weapons, self-harm, child safety, hate, malware, drugs, violence,
fraud, privacy violations and other crime.

Two readers, either of which flags:
  - cues (harmful_cues.py): for each category the strongest act found is weighed with the
    frame around it (asking for a procedure raises it, a protective or historical frame
    lowers it); a category that reaches `threshold_points` flags. Precise, narrow.
  - a learned model (harmful_model.json, see linear_model.py and
    scripts/train_guardrail_models.py): a logistic regression over word and character
    n-grams, trained on harmful and ordinary requests in English, German and Korean,
    including "looks unsafe but is safe" prompts, and on requests written for the
    project (scripts/guardrail_contrast_data.jsonl: ordinary requests phrased like
    harmful ones and harmful ones phrased like ordinary ones, also in Italian, Chinese,
    French and Spanish), each source and each language weighed so that neither stands
    for a class; its threshold was calibrated on
    leave-one-source-out scores so that at most 3% of ordinary requests and 5% of the
    look-alike ones are stopped. A second head names the category for the verdict.

Only what a user writes is a request: the check reads user messages, not documents, and
of a longer message its first and last 512 characters (`window`), cues and model alike, so the cost
per message stays bounded.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from llmops.guardrails.base import Check, CheckOptions, register
from llmops.guardrails.cues import CueSet
from llmops.guardrails.harmful_cues import CATEGORY_CUES, MODIFIERS
from llmops.guardrails.linear_model import bounded, load
from llmops.guardrails.text import TextView, Variant
from llmops.guardrails.types import Detection

CUES = CueSet(CATEGORY_CUES)
# Modifiers weigh a category cue; they are only looked for once one was found.
MODIFIER_CUES = CueSet(MODIFIERS)
# Cue categories first, then those only the learned model names.
CATEGORIES = (
    "weapons", "self_harm", "sexual_minors", "hate", "malware", "drugs", "violence", "crime",
    "child_safety", "fraud", "privacy", "sexual", "misinformation", "other",
)
THRESHOLD_POINTS = 2.0
# Characters read from each end of a longer text when there is no model to say.
WINDOW = 512
# How far (characters) from the act a request frame or protective frame still counts.
FRAME_REACH = 160
# A protective frame ("signs of", "how to talk to my kids about") counts more against
# the child-safety category, whose base weight is high so that fiction cannot excuse it.
PROTECT_WEIGHT = {"sexual_minors": 2.0}


def category_points(view: TextView) -> dict[str, float]:
    """Points per category found in the text, each weighed by the frame around it."""
    non_ascii = not view.is_ascii
    out: dict[str, float] = {}
    for variant in view.variants:
        for cue, at in CUES.matches(variant, non_ascii):
            # The frame that counts is the one around the act: a "can you help me" in one
            # paragraph does not turn a film plot's "he shoots him" into a request.
            near = Variant(variant.lower[max(0, at - FRAME_REACH) : at + FRAME_REACH])
            frame = MODIFIER_CUES.families(near, non_ascii)
            boost = frame.get("_request", 0.0) + frame.get("_detail", 0.0) + frame.get("_evasion", 0.0)
            # Someone asking how not to get caught is not asking for protection.
            protect = 0.0 if "_evasion" in frame else frame.get("_protect", 0.0)
            discount = PROTECT_WEIGHT.get(cue.family, protect) if protect else 0.0
            points = round(cue.weight + boost - discount, 3)
            if points > out.get(cue.family, float("-inf")):
                out[cue.family] = points
    return out


class HarmfulOptions(CheckOptions):
    threshold_points: float = THRESHOLD_POINTS
    # Only these categories count (default: all of CATEGORIES).
    categories: list[str] | None = None
    # Also ask the learned model (harmful_model.json); `model_threshold` overrides its
    # calibrated threshold (lower catches more and stops more ordinary requests).
    learned: bool = True
    model_threshold: float | None = Field(default=None, gt=0, lt=1)
    # A model file trained by scripts/train_guardrail_models.py (default: the shipped one).
    model_file: str | None = None
    # Characters read from each end of a longer text, by cues and model alike (default:
    # the model's window, 512); the middle of a longer text is not read.
    window: int | None = Field(default=None, ge=256)


@register
class HarmfulCheck(Check):
    name: ClassVar[str] = "harmful"
    default_roles = frozenset({"user"})
    block_message = (
        "The request was blocked: it asks for content this service does not provide "
        "(for example weapons, self-harm, sexual content involving minors, hate, malware or drugs). "
        "If you or someone you know is in danger, please contact local emergency services."
    )
    Options = HarmfulOptions

    def __init__(self, options: HarmfulOptions):
        super().__init__(options)
        unknown = set(options.categories or ()) - set(CATEGORIES)
        if unknown:
            raise ValueError(f"unknown harmful categories {sorted(unknown)}; known: {', '.join(CATEGORIES)}")
        self._categories = frozenset(options.categories or CATEGORIES)
        # Loaded now, not on the first request that needs it.
        self.model = load("harmful", options.model_file) if options.learned else None
        self.model_threshold = options.model_threshold or (self.model.threshold if self.model else 1.0)
        self.window = options.window or (self.model.window if self.model else WINDOW)

    def scan(self, view: TextView) -> Detection | None:
        view = bounded(view, self.window)
        points = category_points(view)
        threshold = self.options.threshold_points  # type: ignore[attr-defined]
        hits = {c: p for c, p in points.items() if p >= threshold and c in self._categories}
        if hits:
            top = max(hits.values())
            return Detection(score=round(top / (top + threshold), 3), labels=tuple(sorted(hits)))
        if self.model is None:
            return None
        p, piece = self.model.best(view.lower)
        if p < self.model_threshold:
            return None
        category = self.model.label(piece) or "other"
        if category not in self._categories:
            return None
        return Detection(score=round(p, 3), labels=(category, "learned"))
