"""Credentials: provider API keys, cloud credentials, private keys, JWTs, passwords in URLs.

Patterns are provider formats, each with a typed placeholder. A private key block that
has begun but not ended (a stream cut mid-key) is matched to the end of the text, so a
streaming redactor holds it back instead of leaking its first lines.
"""

from __future__ import annotations

import re
from typing import ClassVar

from llmops.guardrails.base import Check, CheckOptions, register
from llmops.guardrails.text import TextView
from llmops.guardrails.types import Claims, Detection, Span

# (kind, placeholder, pattern). Order matters where formats nest: Anthropic's sk-ant-
# before OpenAI's sk-. Group "v", when present, is the part to replace.
_PATTERNS: list[tuple[str, str, str]] = [
    ("private_key", "[PRIVATE_KEY]",
     r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|[\s\S]*\Z)"),
    ("anthropic_key", "[ANTHROPIC_KEY]", r"\bsk-ant-(?:api\d\d-|admin\d\d-|sid\d\d-)?[A-Za-z0-9_-]{20,}"),
    ("openai_key", "[OPENAI_KEY]", r"\bsk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{20,}"),
    ("aws_access_key", "[AWS_ACCESS_KEY]", r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|APKA)[0-9A-Z]{16}\b"),
    ("aws_secret_key", "[AWS_SECRET_KEY]",
     r"(?i:aws[_\s-]?secret[_\s-]?(?:access[_\s-]?)?key|secret[_\s-]?access[_\s-]?key)[\"']?\s*[:=]\s*[\"']?(?P<v>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"),
    ("gcp_api_key", "[GCP_KEY]", r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"),
    ("gcp_oauth_token", "[GCP_TOKEN]", r"\bya29\.[0-9A-Za-z_-]{20,}"),
    ("gcp_client_secret", "[GCP_KEY]", r"\bGOCSPX-[0-9A-Za-z_-]{20,}"),
    ("gcp_service_account", "[GCP_KEY]", r"\"private_key_id\"\s*:\s*\"(?P<v>[0-9a-f]{40})\""),
    ("github_token", "[GITHUB_TOKEN]", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})"),
    ("gitlab_token", "[GITLAB_TOKEN]", r"\bglpat-[A-Za-z0-9_-]{20,}"),
    ("slack_token", "[SLACK_TOKEN]", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    ("slack_webhook", "[SLACK_WEBHOOK]", r"https://hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+"),
    ("stripe_key", "[STRIPE_KEY]", r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}|\bwhsec_[A-Za-z0-9]{24,}"),
    ("huggingface_token", "[HF_TOKEN]", r"\bhf_[A-Za-z0-9]{30,}"),
    ("azure_storage_key", "[AZURE_KEY]", r"AccountKey=(?P<v>[A-Za-z0-9+/=]{60,})"),
    ("sendgrid_key", "[SENDGRID_KEY]", r"\bSG\.[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}"),
    ("npm_token", "[NPM_TOKEN]", r"\bnpm_[A-Za-z0-9]{36}\b"),
    ("twilio_key", "[TWILIO_KEY]", r"\bSK[0-9a-f]{32}\b"),
    ("groq_key", "[GROQ_KEY]", r"\bgsk_[A-Za-z0-9]{40,}"),
    ("xai_key", "[XAI_KEY]", r"\bxai-[A-Za-z0-9]{40,}"),
    ("jwt", "[JWT]", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ("url_password", "[PASSWORD]",
     r"\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@]{1,64}:(?P<v>[^\s@/]{3,128})@[\w.-]+"),
    ("password_assignment", "[PASSWORD]",
     r"\b(?i:password|passwd|pwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token|client[_-]?secret)[\"']?\s*[:=]\s*[\"'](?P<v>[^\s\"']{8,})[\"']"),
]

KINDS = tuple(kind for kind, _, _ in _PATTERNS)


def _compile(pattern: str) -> re.Pattern[str]:
    # A leading \b stops `re` from jumping to the literal prefix ("sk-ant-") and makes
    # it try every position: drop it and check the boundary on each match instead.
    return re.compile(pattern[2:] if pattern.startswith(r"\b") else pattern)


_COMPILED = [(kind, placeholder, _compile(pattern), pattern.startswith(r"\b")) for kind, placeholder, pattern in _PATTERNS]
# Kinds whose value is one long token: a text whose longest word is shorter has none.
_LONG_TOKEN_KINDS = frozenset(KINDS) - {"private_key", "url_password", "password_assignment", "slack_token"}
# Fragments (lowercase) without which a kind cannot match: checked before its regex runs.
_NEEDS: dict[str, tuple[str, ...]] = {
    "private_key": ("private key",),
    "aws_secret_key": ("secret",),
    "stripe_key": ("_live_", "_test_", "whsec_"),
    "url_password": ("://",),
    "password_assignment": ("password", "passwd", "pwd", "secret", "apikey", "api_key", "api-key", "access_token",
                            "access-token", "auth_token", "auth-token", "client_secret", "client-secret"),
    "slack_token": ("xox",),
    "slack_webhook": ("hooks.slack",),
    "azure_storage_key": ("accountkey=",),
    "gcp_service_account": ("private_key_id",),
}


# Words without which only the long-token kinds can match.
_CLUE_WORDS = frozenset(
    {"password", "passwd", "pwd", "secret", "private", "apikey", "api_key", "api", "access_token", "auth_token",
     "client_secret", "secret_key", "accountkey", "private_key_id", "key", "token"}
)


def _looks_random(value: str) -> bool:
    """A password-like value: long enough and mixing character classes (not `changeme`)."""
    classes = sum((any(c.islower() for c in value), any(c.isupper() for c in value), any(c.isdigit() for c in value),
                   any(not c.isalnum() for c in value)))
    return classes >= 2 and len(set(value)) >= 6


def find_secrets(text: str, kinds: frozenset[str], view: TextView | None = None) -> list[tuple[str, Span]]:
    view = view or TextView(text)
    # Cheap gates first: most kinds need a long token, the rest a telltale word.
    long_tokens = view.longest_word >= 16
    if not long_tokens and view.main.words.isdisjoint(_CLUE_WORDS) and "://" not in text:
        return []
    lower = view.lower if view.is_ascii else text.lower()
    found: list[tuple[str, Span]] = []
    taken = Claims()
    for kind, placeholder, pattern, word_start in _COMPILED:
        if kind not in kinds:
            continue
        if kind in _LONG_TOKEN_KINDS and not long_tokens:
            continue
        needs = _NEEDS.get(kind)
        if needs is not None and not any(fragment in lower for fragment in needs):
            continue
        for m in pattern.finditer(text):
            if word_start and m.start() > 0 and _is_word_char(text[m.start() - 1]):
                continue
            if "v" in pattern.groupindex and m.group("v") is not None:
                start, end = m.span("v")
                if kind in ("password_assignment", "url_password") and not _looks_random(m.group("v")):
                    continue
            else:
                start, end = m.span()
            if taken.claim(start, end):
                found.append((kind, Span(start, end, placeholder)))
    return found


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


class SecretsOptions(CheckOptions):
    # Which kinds to look for (default: all of KINDS).
    kinds: list[str] | None = None


@register
class SecretsCheck(Check):
    name: ClassVar[str] = "secrets"
    redactable = True
    block_message = "The request was blocked: it contains a credential (an API key, token or private key). Remove it and rotate that credential."
    Options = SecretsOptions

    def __init__(self, options: SecretsOptions):
        super().__init__(options)
        unknown = set(options.kinds or ()) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown secret kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
        self._kinds = frozenset(options.kinds or KINDS)

    def scan(self, view: TextView) -> Detection | None:
        found = find_secrets(view.text, self._kinds, view)
        if not found:
            return None
        return Detection(score=1.0, labels=tuple(sorted({kind for kind, _ in found})), spans=[s for _, s in found])
