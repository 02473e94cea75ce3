"""What capture stores is redacted here, whatever the gateway's own guardrails did.

The guardrails' checks in redact mode (default: secrets and personal data), run off the
request path in the capture writer: a gateway with guardrails off, or a streamed reply
(captured as it came from the model), still stores no secret.
"""

from __future__ import annotations

from llmops.guardrails import CheckSpec, GuardrailsConfig, Pipeline


class Redactor:
    def __init__(self, checks: list[str]):
        specs = [CheckSpec(check=name, action="redact") for name in checks]
        self._pipeline = Pipeline(GuardrailsConfig(input=[], output=specs)) if specs else None

    def __call__(self, text: str) -> str:
        if self._pipeline is None or not text:
            return text
        result = self._pipeline.check_output(text)
        return result.text if result.text is not None else text
