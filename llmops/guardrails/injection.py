"""Direct prompt injection and jailbreaks, in what a user types: weighted cue families,
a few structural signs, and a learned model.

Documents (tool results, retrieved text) are a different problem, judged by the
`indirect_injection` check (indirect_injection.py): this check reads user messages only.

The score of a text is the sum over the cue families it shows (see injection_cues.py)
of the strongest cue's weight (other cues of the family add a quarter of theirs), plus:
  - a bonus when a persona is set up *and* rules are removed (the shape of a role-play
    jailbreak; an ordinary role prompt only sets the persona),
  - a bonus when the text talks to the model about being an AI while also setting a
    role, a name or an answer format,
  - a bonus for showing many different families at once,
  - points for shouted rules (ALWAYS, NEVER, DO NOT...) and capitalised persona names (DAN),
  - a bonus when a cue appears only after undoing obfuscation (leetspeak, spaced-out
    letters, look-alike letters, a base64 / hex / ROT13 blob, Unicode tag characters).
The check flags when the sum reaches `threshold_points`; the reported score maps the sum
to 0..1 so that the threshold sits at 0.5. When the cues do not flag, the learned model
(injection_model.json: n-gram logistic regression trained on direct injections, role-play
jailbreaks, goal hijacking in seven languages and ordinary prompts, see
scripts/train_guardrail_models.py) is asked. Cues and model read the first and last 512 characters
of a longer text (`window`): a user's own instruction sits at the start or end of a long
prompt, and the cost per message stays bounded (a RAG prompt runs to 100 KB).
"""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import Field

from llmops.guardrails.base import Check, CheckOptions, register
from llmops.guardrails.cues import CueSet, merge_families
from llmops.guardrails.injection_cues import ALL_CUES
from llmops.guardrails.linear_model import bounded, load
from llmops.guardrails.text import TAG_RE, TextView
from llmops.guardrails.types import Detection

CUES = CueSet(ALL_CUES)

# Names written in capitals that jailbreak prompts give their persona; matched on the
# cased text so the given name "Dan" is left alone.
_SHOUTED_PERSONA = re.compile(r"\b(?:DAN|STAN|DUDE|UCAR|KEVIN|OPPO|SDA|BetterDAN|AntiGPT|NRAF|APOPHIS)\b")
_PERSONA_WORDS = frozenset({"dan", "stan", "dude", "ucar", "kevin", "oppo", "sda", "betterdan", "antigpt", "nraf", "apophis"})

# Rules shouted in capitals: typical of jailbreak templates, rare in ordinary prompts.
# (No leading \b: it would make `re` try every position instead of jumping to capitals.)
_SHOUTED_RULE = re.compile(r"(?:ALWAYS|NEVER|MUST|DO NOT|DON'T|NOT ALLOWED|NO MATTER WHAT|UNDER NO CIRCUMSTANCES)\b")

ROLE_SETUP = frozenset({"persona", "persona_switch"})
RULE_BREAKING = frozenset({"rule_removal", "named", "compliance", "permission", "threat", "dual", "stay"})

THRESHOLD_POINTS = 2.0
# Characters read from each end of a longer text when there is no model to say.
WINDOW = 512
# A second, different cue of a family already seen adds this fraction of its weight.
SAME_FAMILY_EXTRA = 0.25
ROLE_AND_RULES_BONUS = 0.8
AI_COMBO = frozenset({"persona", "persona_switch", "dual", "named", "template", "hijack", "stay"})
AI_COMBO_BONUS = 0.5
FAMILY_BONUS_STEP = 0.4
FAMILY_BONUS_CAP = 1.6
OBFUSCATION_BONUS = 1.0
HIDDEN_TEXT_POINTS = 1.5


def cue_families(view: TextView) -> dict[str, float]:
    """Every cue family the text shows, with its points (strongest cue, plus a share of the others)."""
    non_ascii = not view.is_ascii
    main = CUES.families(view.main, non_ascii, extra=SAME_FAMILY_EXTRA)
    variants = view.variants
    if len(variants) == 1:  # nothing was de-obfuscated: the common case, kept short
        families = {family: weight for family, weight in main.items() if weight > 0.0}
    else:
        others = [CUES.families(v, True, extra=SAME_FAMILY_EXTRA) for v in variants[1:]]
        families = merge_families([main, *others])
        if any(weight > main.get(family, 0.0) for family, weight in families.items()):
            families["obfuscated"] = OBFUSCATION_BONUS
    words = view.main.words
    if (words & _PERSONA_WORDS and _SHOUTED_PERSONA.search(view.normalized)) or (
        "gpt" in view.lower and any(len(w) > 5 and w.endswith("gpt") and w != "chatgpt" for w in words)
    ):
        families["named"] = max(families.get("named", 0.0), 1.0)
    if len(_SHOUTED_RULE.findall(view.normalized)) >= 2:
        families["insistence"] = max(families.get("insistence", 0.0), 0.5)
    if non_ascii and TAG_RE.search(view.text):
        families["hidden_text"] = HIDDEN_TEXT_POINTS
    return families


def points(families: dict[str, float]) -> float:
    total = sum(families.values())
    if families.keys() & ROLE_SETUP and families.keys() & RULE_BREAKING:
        total += ROLE_AND_RULES_BONUS
    # Talking to the model about being an AI while also setting a role, a format or a name.
    if "ai_meta" in families and families.keys() & AI_COMBO:
        total += AI_COMBO_BONUS
    if len(families) >= 3:
        total += min(FAMILY_BONUS_STEP * (len(families) - 2), FAMILY_BONUS_CAP)
    return total


def classify(families: dict[str, float]) -> tuple[str, ...]:
    """Labels for the ledger: what kind of attack this looks like."""
    labels: set[str] = set()
    if families.keys() & {"override", "new_task", "hijack", "attention", "spoof", "pivot"}:
        labels.add("instruction_override")
    if "prompt_leak" in families and families["prompt_leak"] >= 2.0:
        labels.add("system_prompt_extraction")
    if families.keys() & RULE_BREAKING or (families.keys() & ROLE_SETUP and len(families) > 2):
        labels.add("jailbreak")
    if families.keys() & {"obfuscated", "hidden_text", "encoded"}:
        labels.add("obfuscated")
    return tuple(sorted(labels)) or ("injection",)


class InjectionOptions(CheckOptions):
    # Points needed to flag; lower catches more and blocks more ordinary prompts.
    threshold_points: float = THRESHOLD_POINTS
    # Also ask the learned model (injection_model.json) when the cues alone do not flag;
    # `model_threshold` overrides its calibrated threshold.
    learned: bool = True
    model_threshold: float | None = Field(default=None, gt=0, lt=1)
    # A model file trained by scripts/train_guardrail_models.py (default: the shipped one).
    model_file: str | None = None
    # Characters read from each end of a longer text, by cues and model alike (default:
    # the model's window, 512); the middle of a longer text is not read.
    window: int | None = Field(default=None, ge=256)


@register
class InjectionCheck(Check):
    name: ClassVar[str] = "injection"
    default_roles = frozenset({"user"})
    block_message = (
        "The request was blocked: it looks like an attempt to override the model's "
        "instructions or safety rules (prompt injection or jailbreak). Rephrase it as a plain request."
    )
    Options = InjectionOptions

    def __init__(self, options: InjectionOptions):
        super().__init__(options)
        # Loaded now, not on the first request that needs it.
        self.model = load("injection", options.model_file) if options.learned else None
        self.model_threshold = options.model_threshold or (self.model.threshold if self.model else 1.0)
        self.window = options.window or (self.model.window if self.model else WINDOW)

    def scan(self, view: TextView) -> Detection | None:
        view = bounded(view, self.window)
        families = cue_families(view)
        threshold = self.options.threshold_points  # type: ignore[attr-defined]
        total = points(families) if families else 0.0
        if total >= threshold:
            return Detection(score=round(total / (total + threshold), 3), labels=classify(families))
        if self.model is not None:
            p, _ = self.model.best(view.lower)
            if p >= self.model_threshold:
                return Detection(score=round(p, 3), labels=("injection", "learned"))
        return None
