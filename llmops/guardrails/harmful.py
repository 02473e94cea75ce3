"""Harmful requests: weapons, self-harm, sexual content with minors, hate, malware, drugs,
violence and other crime.

For each category the strongest act found (see harmful_cues.py) is weighed with the
frame around it: asking for a procedure raises it, a protective or historical frame
lowers it. A text is flagged when some category reaches `threshold_points`.
"""

from __future__ import annotations

from typing import ClassVar

from llmops.guardrails.base import Check, CheckOptions, register
from llmops.guardrails.cues import CueSet
from llmops.guardrails.harmful_cues import CATEGORY_CUES, MODIFIERS
from llmops.guardrails.text import TextView, Variant
from llmops.guardrails.types import Detection

CUES = CueSet(CATEGORY_CUES)
# Modifiers weigh a category cue; they are only looked for once one was found.
MODIFIER_CUES = CueSet(MODIFIERS)
CATEGORIES = ("weapons", "self_harm", "sexual_minors", "hate", "malware", "drugs", "violence", "crime")
THRESHOLD_POINTS = 2.0
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


@register
class HarmfulCheck(Check):
    name: ClassVar[str] = "harmful"
    default_roles = frozenset({"user", "tool", "function"})
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

    def scan(self, view: TextView) -> Detection | None:
        points = category_points(view)
        threshold = self.options.threshold_points  # type: ignore[attr-defined]
        hits = {c: p for c, p in points.items() if p >= threshold and c in self._categories}
        if not hits:
            return None
        top = max(hits.values())
        return Detection(score=round(top / (top + threshold), 3), labels=tuple(sorted(hits)))
