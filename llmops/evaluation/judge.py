"""A judge model grades what string checks cannot: rubrics, factuality, relevance, faithfulness.

Each question asks the judge for a small JSON object and parses it tolerantly (a fenced
block or prose around the JSON is fine); a reply with no usable JSON is a failed grade
whose reason says so, never a crash of the run. Calls go through the same ModelClient as
the cases, so they are cached and counted the same way.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

from llmops.evaluation.client import ModelClient
from llmops.evaluation.faithfulness import ClaimVerdict, FaithfulnessResult, split_claims


@dataclass(frozen=True)
class Verdict:
    score: float
    passed: bool
    reason: str


_RUBRIC = """You grade an output against a rubric. Reply with JSON only:
{"reason": "<one sentence>", "score": <number from 0 to 1>, "pass": <true|false>}"""

_FACTUALITY = """You compare a submitted answer with an expert reference answer, ignoring style.
Choose one category:
(A) the submission is a subset of the reference and fully consistent with it
(B) the submission is a superset of the reference and fully consistent with it
(C) the submission contains all the same details as the reference
(D) there is a disagreement between the submission and the reference
(E) the answers differ, but the differences do not matter for factuality
Reply with JSON only: {"category": "<A|B|C|D|E>", "reason": "<one sentence>"}"""

_RELEVANCE = """You rate how well an answer addresses a question: 1 fully answers it, 0.5 partly,
0 does not address it (off topic, evasive, or about something else).
Reply with JSON only: {"score": <number from 0 to 1>, "reason": "<one sentence>"}"""

_CLAIMS = """Split the text into short, self-contained factual claims (resolve pronouns).
Reply with JSON only: {"claims": ["<claim>", ...]}"""

_VERIFY = """You check one claim against a source. The claim is supported only if the source
states it or it follows directly from the source; a claim the source does not mention is
NOT supported. Reply with JSON only: {"supported": <true|false>, "reason": "<one sentence>"}"""

_FACT_SCORES = {"A": 1.0, "B": 1.0, "C": 1.0, "E": 1.0, "D": 0.0}
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def parse_json_reply(text: str) -> dict[str, Any] | None:
    """The first JSON object in a reply, or None."""
    match = _JSON_OBJECT.search(text)
    if not match:
        return None
    candidate = match.group(0)
    # A reply may hold a JSON object followed by prose with braces: shrink until it parses.
    while candidate:
        try:
            value = json.loads(candidate)
            return value if isinstance(value, dict) else None
        except ValueError:
            end = candidate.rfind("}", 0, len(candidate) - 1)
            if end < 0:
                return None
            candidate = candidate[: end + 1]
    return None


def _score(value: Any) -> float | None:
    try:
        return min(1.0, max(0.0, float(value)))
    except (TypeError, ValueError):
        return None


class Judge:
    def __init__(self, client: ModelClient, model: str, params: dict[str, Any] | None = None) -> None:
        self.client = client
        self.model = model
        self.params = {"temperature": 0, "max_tokens": 512, **(params or {})}

    def using(self, model: str) -> Judge:
        return Judge(self.client, model, self.params)

    async def ask(self, system: str, user: str) -> tuple[dict[str, Any] | None, str]:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        response = await self.client.chat(self.model, messages, self.params)
        return parse_json_reply(response.text), response.text

    def _unparsed(self, text: str) -> Verdict:
        return Verdict(0.0, False, f"judge {self.model} gave no JSON verdict: {text[:120]!r}")

    async def rubric(self, output: str, rubric: str) -> Verdict:
        data, text = await self.ask(_RUBRIC, f"<rubric>\n{rubric}\n</rubric>\n<output>\n{output}\n</output>")
        if data is None:
            return self._unparsed(text)
        score = _score(data.get("score"))
        passed = data.get("pass")
        if score is None and isinstance(passed, bool):
            score = 1.0 if passed else 0.0
        if score is None:
            return self._unparsed(text)
        passed = bool(passed) if isinstance(passed, bool) else score >= 0.5
        return Verdict(score, passed, str(data.get("reason", "")))

    async def factuality(self, output: str, reference: str, question: str | None = None) -> Verdict:
        prompt = f"<question>\n{question or '(not given)'}\n</question>\n<reference>\n{reference}\n</reference>\n"
        data, text = await self.ask(_FACTUALITY, prompt + f"<submission>\n{output}\n</submission>")
        category = str((data or {}).get("category", "")).strip().strip("()").upper()[:1]
        if category not in _FACT_SCORES:
            return self._unparsed(text)
        score = _FACT_SCORES[category]
        return Verdict(score, score >= 0.5, f"({category}) {(data or {}).get('reason', '')}".strip())

    async def relevance(self, output: str, question: str) -> Verdict:
        data, text = await self.ask(_RELEVANCE, f"<question>\n{question}\n</question>\n<answer>\n{output}\n</answer>")
        score = _score((data or {}).get("score"))
        if score is None:
            return self._unparsed(text)
        return Verdict(score, score >= 0.5, str((data or {}).get("reason", "")))

    async def claims(self, output: str) -> list[str]:
        """Atomic claims of an output, by the judge; its sentences when the judge's reply is unusable."""
        data, _ = await self.ask(_CLAIMS, output)
        found = (data or {}).get("claims")
        if isinstance(found, list) and found and all(isinstance(c, str) for c in found):
            return [c.strip() for c in found if c.strip()]
        return split_claims(output)

    async def faithfulness(self, output: str, context: str | list[str]) -> FaithfulnessResult:
        """Split the output into claims, then have the judge verify each against the context."""
        source = "\n".join(context) if isinstance(context, list) else context
        claims = await self.claims(output)
        if not claims:
            return FaithfulnessResult(1.0, [], [])

        async def verify(claim: str) -> ClaimVerdict:
            data, text = await self.ask(_VERIFY, f"<source>\n{source}\n</source>\n<claim>\n{claim}\n</claim>")
            supported = data.get("supported") if data else None
            if data is None or not isinstance(supported, bool):
                return ClaimVerdict(claim, 0.0, False, [], f"no verdict: {text[:80]!r}")
            return ClaimVerdict(claim, 1.0 if supported else 0.0, supported, [], str(data.get("reason", "")) or None)

        verdicts = await asyncio.gather(*(verify(c) for c in claims))
        supported = sum(v.supported for v in verdicts)
        return FaithfulnessResult(
            score=supported / len(verdicts),
            unsupported=[v.claim for v in verdicts if not v.supported],
            claims=list(verdicts),
        )
