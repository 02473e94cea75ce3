"""Credentials: provider API keys, cloud credentials, private keys, JWTs, passwords in URLs.

Patterns are provider formats, each with a typed placeholder. A private key block that
has begun but not ended (a stream cut mid-key) is matched to the end of the text, so a
streaming redactor holds it back instead of leaking its first lines.

For a stream (guardrails/stream.py), `SecretsCheck` also says which tail of unsent text
could still begin a match (`stream_hold`) and which text must be scanned before it goes
out (`stream_trigger`): ordinary prose goes out as it comes.
"""

from __future__ import annotations

import re
from typing import ClassVar

from llmops.guardrails.base import Check, CheckOptions, register
from llmops.guardrails.stream import prefix_regex
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
    ("slack_webhook", "[SLACK_WEBHOOK]", r"\bhttps://hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+"),
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
    # No word boundary before the name: DB_PASSWORD="..." and dbPassword: "..." count too.
    ("password_assignment", "[PASSWORD]",
     r"(?i:password|passwd|pwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token|client[_-]?secret)[\"']?\s*[:=]\s*[\"'](?P<v>[^\s\"']{8,})[\"']"),
]

KINDS = tuple(kind for kind, _, _ in _PATTERNS)


def _compile(pattern: str) -> re.Pattern[str]:
    # A leading \b stops `re` from jumping to the literal prefix ("sk-ant-") and makes
    # it try every position: drop it and check the boundary on each match instead.
    return re.compile(pattern[2:] if pattern.startswith(r"\b") else pattern)


_COMPILED = [(kind, placeholder, _compile(pattern), pattern.startswith(r"\b")) for kind, placeholder, pattern in _PATTERNS]
# Kinds whose value is one long token: a text without a long run of token characters
# (see _has_long_run) has none. All the others need one of _SHORT_KIND_FRAGMENTS.
_LONG_TOKEN_KINDS = frozenset(KINDS) - {"private_key", "url_password", "password_assignment", "slack_token"}
# The names password_assignment matches, as lowercase fragments ("token" for access_token,
# auth-token, accesstoken...).
_ASSIGNMENT_NAMES = ("passw", "pwd", "secret", "apikey", "api_key", "api-key", "token")
# Fragments (lowercase) without which a kind cannot match: checked before its regex runs.
_NEEDS: dict[str, tuple[str, ...]] = {
    "private_key": ("private key",),
    "aws_secret_key": ("secret",),
    "stripe_key": ("_live_", "_test_", "whsec_"),
    "url_password": ("://",),
    "password_assignment": _ASSIGNMENT_NAMES,
    "slack_token": ("xox",),
    "slack_webhook": ("hooks.slack",),
    "azure_storage_key": ("accountkey=",),
    "gcp_service_account": ("private_key_id",),
}
# Without a long run, only these can match: every match holds one of them.
_SHORT_KIND_FRAGMENTS = ("://", "private key", *_ASSIGNMENT_NAMES)

# A run of token characters this long: every long-token kind's value is one (the
# shortest, an AWS access key, has 20), and so is a Slack token ("xoxb-" and 10 more).
# Dashes and dots count: "glpat-AbCdEfGhIj-KlMnOpQrSt" and a JWT are long runs even when
# each of their words is short.
LONG_RUN = 15
_RUN_TABLE = bytes(
    0x61 if chr(i).isascii() and (chr(i).isalnum() or chr(i) in "_-+/=.") else 0x20 for i in range(256)
)
_LONG_RUN_MARK = b"a" * LONG_RUN


def _has_long_run(text: str) -> bool:
    # C speed: mark token characters "a", the rest " ", and look for LONG_RUN "a"s.
    return _LONG_RUN_MARK in text.encode("ascii", "replace").translate(_RUN_TABLE)


def _looks_random(value: str) -> bool:
    """A password-like value: long enough and mixing character classes (not `changeme`)."""
    classes = sum((any(c.islower() for c in value), any(c.isupper() for c in value), any(c.isdigit() for c in value),
                   any(not c.isalnum() for c in value)))
    return classes >= 2 and len(set(value)) >= 6


def find_secrets(text: str, kinds: frozenset[str], view: TextView | None = None) -> list[tuple[str, Span]]:
    view = view or TextView(text)
    lower = view.lower if view.is_ascii else text.lower()
    # Cheap gates first: most kinds need a long run of token characters, the rest a
    # telltale fragment. Both are read from the match itself, never from text around it,
    # so a part of a text (a stream's window) finds what the whole text finds there.
    long_tokens = _has_long_run(text)
    if not long_tokens and not any(fragment in lower for fragment in _SHORT_KIND_FRAGMENTS):
        return []
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


# --- streaming ------------------------------------------------------------------------------
# A stream (guardrails/stream.py) sends text before the reply ends, so it must hold back
# any tail of unsent text where a match could still begin. A match is redacted whole,
# except for the value kinds (only the value after "=" or ":"), and only the private key
# header has spaces in it. So what may still begin a match is, in the last word (the
# text after the last space, which may still grow):
# - a literal start ("sk-", "AKIA", "eyJ"...) or the beginning of one ("gh", "AKI") at a
#   word start: the match (or the literal) may still grow;
# - a value: after "=" or ":" that follow a secret's name or a URL's "://user", in the
#   word or just before it;
# and an unfinished "-----BEGIN ... PRIVATE KEY-----" header. Everything else goes out.

# The literal starts of the kinds matched whole, each after a word boundary (\b).
_STARTS = (
    "sk-", "sk_live_", "sk_test_", "rk_live_", "rk_test_", "pk_live_", "pk_test_", "whsec_",
    "AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "APKA", "AIza", "ya29.", "GOCSPX-",
    "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-",
    "xoxa-", "xoxb-", "xoxp-", "xoxo-", "xoxs-", "xoxr-", "https://hooks.slack.com/services/T",
    "hf_", "SG.", "npm_", "gsk_", "xai-", "eyJ", *(f"SK{c}" for c in "0123456789abcdef"),
)
_HEADER = "-----BEGIN "  # the private key, at any position (its pattern has no \b)


# Where a match may still begin in the last word: a whole literal start (the word may go on
# growing), or a word ending in the beginning of one.
_MAY_BEGIN = re.compile(
    r"(?<!\w)(?:" + "|".join(re.escape(s) for s in _STARTS) + "|" + prefix_regex(list(_STARTS)) + r"\Z)"
    + "|" + re.escape(_HEADER) + "|" + prefix_regex([_HEADER]) + r"\Z"
)
# A value comes after "=" or ":" that follow a secret's name (password, api_key, "secret" of
# aws_secret_access_key, private_key_id, AccountKey...), or after "user:" in a URL.
_SIGN = re.compile(r"[=:]")
_VALUE_NAME = re.compile(r"passw|pwd|secret|api[_-]?key|token|private_key_id|accountkey", re.IGNORECASE)
_NAME_REACH = 72
# A private key header still being written ("-----BEGIN RSA PRIV").
_HEADER_TAIL = re.compile(r"-----BEGIN(?: [A-Z0-9]*)*-{0,5}\Z")
_STREAM_SPACE = " \n\t"
_START_PREFIXES = frozenset(s[:i] for s in _STARTS for i in range(1, len(s)))
# The literal starts a word of letters and digits can begin with, and their first letters.
_ALNUM_STARTS = tuple(s for s in _STARTS if s.isalnum())
_ALNUM_FIRST = "".join(sorted({s[0] for s in _ALNUM_STARTS}))


def _is_value_sign(text: str, at: int, before: str) -> bool:
    """Whether the "=" or ":" at text[at] may be followed by a secret value."""
    lead = text[max(0, at - _NAME_REACH) : at]
    if len(lead) < _NAME_REACH and before:
        lead = before[len(lead) - _NAME_REACH :] + lead
    return "://" in lead or _VALUE_NAME.search(lead) is not None


def stream_hold(text: str, before: str = "") -> int:
    """Where the tail of `text` that could still begin a match starts (`len(text)` when
    none could): unsent text of a stream, `before` the text already sent before it."""
    # Called for every chunk of a stream: the common case (a plain word) is kept short.
    size = len(text)
    start = text.rfind(" ") + 1
    if "\n" in text or "\t" in text:
        start = max(start, text.rfind("\n") + 1, text.rfind("\t") + 1)
    hold = size
    if start < size:
        word = text[start:] if start else text
        # Does the word go on one already sent? Then no literal can begin where it begins.
        joined = start == 0 and (before[-1:].isalnum() or before[-1:] == "_")
        if word.isalnum():  # most words: a literal start can only begin at the word's start
            if not joined and (
                word in _START_PREFIXES or (word[0] in _ALNUM_FIRST and word.startswith(_ALNUM_STARTS))
            ):
                hold = start
        else:
            if start == 0 and before:
                m = _MAY_BEGIN.search(before[-1] + word, 1)
                if m is not None:
                    hold = m.start() - 1
            else:
                m = _MAY_BEGIN.search(text, start)
                if m is not None:
                    hold = m.start()
            if hold > start and ("=" in word or ":" in word):
                for sign in _SIGN.finditer(text, start, hold):
                    if _is_value_sign(text, sign.start(), before):
                        hold = sign.end()
                        break
        if hold > start:
            # A word just after "=" or ":" (spaces between) may be a value: 'password = "...'.
            i = start - 1
            while i >= 0 and text[i] in _STREAM_SPACE:
                i -= 1
            if i >= 0:
                if text[i] in "=:" and _is_value_sign(text, i, before):
                    hold = start
            else:
                last = before[-1:]
                if last and last in _STREAM_SPACE:
                    lead = before.rstrip(_STREAM_SPACE)
                    last = lead[-1:]
                else:
                    lead = before
                if (last == "=" or last == ":") and _is_value_sign(lead, len(lead) - 1, ""):
                    hold = start
    if "-----BEGIN" in text:
        at = text.rfind("-----BEGIN")
        if _HEADER_TAIL.match(text, at):
            # From the start of its word: a match may end in it ("xoxb------BEGIN").
            hold = min(hold, max(text.rfind(" ", 0, at), text.rfind("\n", 0, at), text.rfind("\t", 0, at)) + 1)
    return hold


def stream_trigger(piece: str) -> bool:
    """Whether a piece of a stream (ending where stream_hold said) may hold a match, so
    must be scanned before it goes out: a long run (every literal kind's match is one,
    and so are the AWS, GCP and Azure values), a private key header, a quote (a password
    value ends with one) or an "@" (a password in a URL ends before one)."""
    if len(piece) >= LONG_RUN and _has_long_run(piece):
        return True
    return '"' in piece or "'" in piece or "@" in piece or "-----BEGIN" in piece


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

    # On a stream: what to hold back and what to scan (see stream_hold, stream_trigger).
    stream_hold = staticmethod(stream_hold)
    stream_trigger = staticmethod(stream_trigger)

    def scan(self, view: TextView) -> Detection | None:
        found = find_secrets(view.text, self._kinds, view)
        if not found:
            return None
        return Detection(score=1.0, labels=tuple(sorted({kind for kind, _ in found})), spans=[s for _, s in found])
