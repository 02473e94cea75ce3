"""Guardrails: checks on what goes into a model and what comes out, all offline.

```python
from llmops.guardrails import GuardrailsConfig, Pipeline, GuardrailBlocked

pipe = Pipeline(GuardrailsConfig.default())
res = pipe.check_input(messages, model="gpt-4o")      # .blocked .blocked_by .message .messages .verdicts
out = pipe.check_output(reply_text, model="gpt-4o")   # .text is the redacted reply
stream = pipe.output_stream(model="gpt-4o")           # .feed(delta) -> str, .finish() -> str
```

Built-in checks: injection (prompt injection and jailbreaks a user types),
indirect_injection (instructions planted in tool results and documents), harmful, pii, secrets,
invisible_chars, banned, token_limit, json_schema, judge (asks a model; never on by
default). A user's own check plugs in by import path (`check: mypkg.mod:fn`).
"""

from llmops.guardrails.config import CheckPatch, CheckSpec, GuardrailsConfig, GuardrailsOverride
from llmops.guardrails.pipeline import GuardrailResult, Pipeline
from llmops.guardrails.stream import OutputStream
from llmops.guardrails.types import Detection, GuardrailBlocked, GuardrailConfigError, Span

__all__ = [
    "CheckPatch",
    "CheckSpec",
    "Detection",
    "GuardrailBlocked",
    "GuardrailConfigError",
    "GuardrailResult",
    "GuardrailsConfig",
    "GuardrailsOverride",
    "OutputStream",
    "Pipeline",
    "Span",
]
