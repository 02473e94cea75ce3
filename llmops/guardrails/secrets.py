"""Credentials: provider keys and tokens, cloud credentials, private keys, JWTs, and
values assigned to a secret's name, each replaced by a typed placeholder on redact.

Three families, all judged from the match itself: token kinds known by their prefix or
shape (and a generic rule for the common "prefix_ + random body" shape of vendors with no
pattern here), read only inside long runs of token characters, found at C speed; kinds
read from the words around a value (an AWS secret key, a password in a URL, a bearer
token, a config key/value pair); and assignments to names ending in a secret's word
(`DB_PASSWORD="..."`, `smtp_password = ...`, `비밀번호: ...`), whose value must not be a
reference or a placeholder and, under names like `key` or `token`, must read as random.
A private key block that has begun but not ended (a stream cut mid-key) is matched to the
end of the text, so a streaming redactor holds it back instead of leaking its first lines.

For a stream (guardrails/stream.py), `SecretsCheck` also says which tail of unsent text
could still begin a match (`stream_hold`) and which text must be scanned before it goes
out (`stream_trigger`): ordinary prose goes out as it comes.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import ClassVar

from llmops.guardrails.base import Check, CheckOptions, register
from llmops.guardrails.stream import prefix_regex
from llmops.guardrails.text import TextView
from llmops.guardrails.types import Claims, Detection, Span

# Kinds known by a literal start: (kind, placeholder, pattern). Found together, only inside
# the long runs of token characters (see _long_runs), by one alternation without groups
# whose every branch begins with a literal character, so that `re` skips to the next
# possible first character at C speed; the kind is then the first pattern that matches
# there. (Each pattern's own "|" branches must begin with a literal too.) Order matters where formats
# nest: Anthropic's sk-ant- before OpenAI's sk-; the generic token last.
_TOKEN_PATTERNS: list[tuple[str, str, str]] = [
    ("anthropic_key", "[ANTHROPIC_KEY]", r"sk-ant-(?:api\d\d-|admin\d\d-|sid\d\d-)?[A-Za-z0-9_-]{20,}"),
    ("openai_key", "[OPENAI_KEY]", r"sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{20,}"),
    ("aws_access_key", "[AWS_ACCESS_KEY]", r"A(?:KIA|SIA|BIA|CCA|GPA|IDA|ROA|NPA|NVA|PKA)[0-9A-Z]{16}(?![0-9A-Za-z])"),
    ("gcp_api_key", "[GCP_KEY]", r"AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"),
    ("gcp_oauth_token", "[GCP_TOKEN]", r"ya29\.[0-9A-Za-z_-]{20,}"),
    ("gcp_client_secret", "[GCP_KEY]", r"GOCSPX-[0-9A-Za-z_-]{20,}"),
    ("github_token", "[GITHUB_TOKEN]", r"gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}"),
    ("gitlab_token", "[GITLAB_TOKEN]", r"gl(?:pat|dt|rt|ptt|ft|soat|cbt|imt|agent)-[A-Za-z0-9_-]{20,}"),
    ("slack_token", "[SLACK_TOKEN]", r"xox[abposr]-[A-Za-z0-9-]{10,}"),
    ("stripe_key", "[STRIPE_KEY]",
     r"sk_(?:live|test)_[A-Za-z0-9]{16,}|rk_(?:live|test)_[A-Za-z0-9]{16,}|pk_(?:live|test)_[A-Za-z0-9]{16,}|whsec_[A-Za-z0-9]{24,}"),
    ("huggingface_token", "[HF_TOKEN]", r"hf_[A-Za-z0-9]{30,}"),
    ("sendgrid_key", "[SENDGRID_KEY]", r"SG\.[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}"),
    ("npm_token", "[NPM_TOKEN]", r"npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])"),
    ("twilio_key", "[TWILIO_KEY]", r"SK[0-9a-f]{32}(?![0-9A-Za-z])"),
    ("groq_key", "[GROQ_KEY]", r"gsk_[A-Za-z0-9]{40,}"),
    ("xai_key", "[XAI_KEY]", r"xai-[A-Za-z0-9]{40,}"),
]
# Kinds that begin with digits, "eyJ" or any word: matched only where a token begins (the
# look-behind), with bounded parts, so that a long run of look-alikes ("aa-aa-aa-...",
# "eyJeyJ...") costs a linear scan, not one attempt per position to the run's end.
# Searched after the kinds above (which win where both match).
_ANCHORED_PATTERNS: list[tuple[str, str, str]] = [
    ("telegram_bot_token", "[TELEGRAM_TOKEN]", r"(?<![0-9])\d{8,10}:AA[A-Za-z0-9_-]{33}(?![A-Za-z0-9_-])"),
    ("jwt", "[JWT]",
     r"(?<![A-Za-z0-9_.-])eyJ[A-Za-z0-9_-]{8,512}\.eyJ[A-Za-z0-9_-]{8,8192}\.[A-Za-z0-9_-]{8,1024}"),
    # Any vendor's token of the common shape: a short lowercase prefix (with a version or a
    # scope: "dop_v1_", "lin_api_", "hvs.") and a long random body. The body must read as
    # random (see _random_body), which names, paths and digests do not.
    ("generic_token", "[TOKEN]",
     r"(?<![A-Za-z0-9_.-])[a-z]{2,10}(?:[_-][a-z0-9]{1,6}){0,2}[_.-][A-Za-z0-9_-]{28,1024}"),
]
# Kinds read from the words around a value, each with its own pattern and a fragment
# (lowercase) it needs: (kind, placeholder, pattern, fragments). Group "v", when present,
# is the part to replace.
_CONTEXT_PATTERNS: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("private_key", "[PRIVATE_KEY]",
     r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|[\s\S]*\Z)",
     ("private key",)),
    ("aws_secret_key", "[AWS_SECRET_KEY]",
     r"(?i:aws[_\s-]?secret[_\s-]?(?:access[_\s-]?)?key|secret[_\s-]?access[_\s-]?key)[\"']?\s*[:=]\s*[\"']?(?P<v>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
     ("secret",)),
    ("gcp_service_account", "[GCP_KEY]", r"\"private_key_id\"\s*:\s*\"(?P<v>[0-9a-f]{40})\"", ("private_key_id",)),
    ("slack_webhook", "[SLACK_WEBHOOK]", r"https://hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+",
     ("hooks.slack",)),
    ("azure_storage_key", "[AZURE_KEY]", r"AccountKey=(?P<v>[A-Za-z0-9+/=]{60,})", ("accountkey=",)),
    ("url_password", "[PASSWORD]", r"\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@]{0,64}:(?P<v>[^\s@/]{3,128})@[\w.-]+", ("://",)),
    # A config file's key/value pair: <add key="ApiSecret" value="..."/>, name="db.password" value="...".
    ("config_value", "[PASSWORD]",
     r"(?i:(?:key|name)\s*=\s*\"[\w.:-]*(?:passw|pwd|secret|token|api_?key)[\w.:-]*\"\s+value\s*=\s*\")(?P<v>[^\"]{6,200})\"",
     ("value",)),
    ("bearer_token", "[TOKEN]", r"(?i:bearer)\s+(?P<v>[A-Za-z0-9._~+/-]{20,}=*)", ("bearer",)),
]
_UNSIGNED = frozenset(("private_key", "bearer_token"))
# Values assigned to a name that ends in a secret's word: DB_PASSWORD="...", smtp_password = ...,
# "password": "...", api_key='...', --password=..., dbPassword: ... (found by _assignments).
_ASSIGNMENT = ("password_assignment", "[PASSWORD]")

KINDS = (
    *(k for k, _, _ in _TOKEN_PATTERNS), *(k for k, _, _ in _ANCHORED_PATTERNS),
    *(k for k, _, _, _ in _CONTEXT_PATTERNS), _ASSIGNMENT[0],
)
_TOKEN_PLACEHOLDER = {kind: placeholder for kind, placeholder, _ in (*_TOKEN_PATTERNS, *_ANCHORED_PATTERNS)}


def _alternation(patterns: list[tuple[str, str, str]]) -> tuple[re.Pattern[str], dict[str, str]]:
    """One regex for several kinds (a named group each) and the kind of each group."""
    groups = {f"k{i}": kind for i, (kind, _, _) in enumerate(patterns)}
    return re.compile("|".join(f"(?P<k{i}>{pattern})" for i, (_, _, pattern) in enumerate(patterns))), groups


_TOKEN_ANY = re.compile("|".join(pattern for _, _, pattern in _TOKEN_PATTERNS))
_TOKEN_EACH = [(kind, re.compile(pattern)) for kind, _, pattern in _TOKEN_PATTERNS]
_ANCHORED_RE, _ANCHORED_GROUP = _alternation(_ANCHORED_PATTERNS)
_CONTEXT_COMPILED = [(kind, placeholder, re.compile(pattern), needs) for kind, placeholder, pattern, needs in _CONTEXT_PATTERNS]

# A run of token characters this long: every token kind's value is one (the shortest, an
# AWS access key, has 20), and so is a Slack token ("xoxb-" and 10 more). Dashes and dots
# count: "glpat-AbCdEfGhIj-KlMnOpQrSt" and a JWT are long runs even when each of their
# words is short.
LONG_RUN = 15
_RUN_TABLE = bytes(
    0x61 if chr(i).isascii() and (chr(i).isalnum() or chr(i) in "_-+/=.:") else 0x20 for i in range(256)
)
_LONG_RUN_MARK = b"a" * LONG_RUN


def _has_long_run(text: str) -> bool:
    # C speed: mark token characters "a", the rest " ", and look for LONG_RUN "a"s.
    return _LONG_RUN_MARK in text.encode("ascii", "replace").translate(_RUN_TABLE)


def _long_runs(text: str, ascii_bytes: bytes | None = None) -> list[tuple[int, int]]:
    """The runs of LONG_RUN or more token characters, as (start, end): every token kind's
    match lies inside one, so the token patterns read only these. ("replace" encodes each
    non-ASCII character as one "?", so positions stay those of the text.)"""
    if ascii_bytes is None:
        ascii_bytes = text.encode("ascii", "replace")
    marked = ascii_bytes.translate(_RUN_TABLE)
    runs = []
    find = marked.find
    at = find(_LONG_RUN_MARK)
    while at >= 0:  # bytes.find jumps to the next run at C speed; a regex would try each position
        end = find(b" ", at + LONG_RUN)
        if end < 0:
            end = len(marked)
        runs.append((at, end))
        at = find(_LONG_RUN_MARK, end)
    return runs


# --- telling a random value from a word, a name, a reference or a placeholder --------------------

def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    size = len(value)
    return -sum(c / size * math.log2(c / size) for c in Counter(value).values())


_HEX = frozenset("0123456789abcdef")
_DIGEST_PREFIXES = ("sha1", "sha224", "sha256", "sha384", "sha512", "md5", "blake2", "base64", "data")
_LOWER_RUN = re.compile(r"[a-z]{12,}")


def _random_body(prefix: str, body: str) -> bool:
    """A generic token's body: hex with digits and letters mixed, or letters of both cases
    and digits spread evenly (high entropy, no long lowercase word)."""
    if prefix.startswith(_DIGEST_PREFIXES):
        return False
    chars = body.replace("-", "").replace("_", "")
    digits = sum(c.isdigit() for c in chars)
    if set(chars.lower()) <= _HEX and (chars.islower() or chars.isupper() or chars.isdigit()):
        return len(chars) >= 32 and digits >= len(chars) // 5 and len(chars) - digits >= len(chars) // 6
    upper = sum(c.isupper() for c in chars)
    lower = sum(c.islower() for c in chars)
    return (digits >= 2 and upper >= 3 and lower >= 3 and entropy(chars) >= 4.0
            and _LOWER_RUN.search(chars) is None)


# A value that stands for a secret instead of being one: a variable, an env reference, a
# template, a call, a placeholder.
_REFERENCE = re.compile(
    r"\$\{|\$\(|^\$[A-Za-z_]|\$[A-Z_]{3,}\b|\{\{|\}\}|^\{.*\}$|%\(|\w\(.*\)$|\w\[|^<.*>$|^\[.*\]$"
    r"|\*\*\*|xxxx|\.\.\.|^(?:os|env|process|settings|config|self|this|request|params|args)\."
    r"|(?i:your[-_ ]|[-_ ]here$|changeme|change[-_]me|replace[-_ ]?me|placeholder|redacted|example|dummy|secret_?here)"
)
_REFERENCE_WORD = re.compile(r"(?i:none|null|nil|true|false|undefined|required|optional|string|str|bytes|int|env|todo|tbd)")
_IDENTIFIER = re.compile(r"[a-z_]+(?:\.[A-Za-z_]+)+|[A-Z]+(?:_[A-Z0-9]+)+|[a-z]+(?:_[a-z]+)+")


def _is_value(value: str, strong: bool) -> bool:
    """An assigned value that is a secret: not a reference or a placeholder, long enough,
    and mixing character classes (a password); a `strong` name (key, token, auth...) needs
    a longer, more random value, since such names also hold ids and settings."""
    if _REFERENCE.search(value) or _REFERENCE_WORD.fullmatch(value) or _IDENTIFIER.fullmatch(value):
        return False
    if len(set(value)) < 6:
        return False
    classes = (any(c.islower() for c in value) + any(c.isupper() for c in value) + any(c.isdigit() for c in value)
               + any(not c.isalnum() for c in value))
    if not strong:
        return classes >= 2
    if _PATH.search(value):
        return False
    if _WORDY.fullmatch(value):
        return False  # lower-case words joined by separators: a name ("my-service-key-2024")
    # Random hex (and a UUID) carries 4 bits a character at most, other alphabets more.
    floor = 3.2 if set(value.lower()) <= _HEX_OR_DASH else 3.5
    return len(value) >= 12 and classes >= 2 and entropy(value) >= floor


_HEX_OR_DASH = _HEX | {"-"}
_WORDY = re.compile(r"[a-z]+(?:[-_.][a-z0-9]+)+")


# A path or a URL, not a secret: "uploads/2024/03/report.pdf", "./keys", "https://...".
_PATH = re.compile(r"^(?:\.{0,2}/|~/|[a-z][a-z0-9+.-]*://)|/[\w-]+\.[a-z0-9]{2,4}$")


# The words a secret's name ends with, each with the endings it may take, and whether the
# value must be strong; found with str.find (C speed) in the lowercased text.
_NAME_WORDS: dict[str, tuple[str, bool]] = {
    "pass": (r"(?:w(?:or)?d|wort|phrase|wd|e)?s?", False),  # and "mot de passe"
    "pwd": ("", False),
    "secret": ("s?", True),
    "token": ("s?", True),
    "key": ("s?", True),
    "auth": ("", True),
    "cred": (r"(?:entials?|s)?", True),
    # The same names in the other languages people write configs and notes in.
    "kennwort": ("", False),
    "비밀번호": ("", False),
    "암호": ("", False),
    "パスワード": ("", False),
    "contraseña": ("", False),
}
# After the word and its ending, at most one short word more ("secret_key_base", "api_key_prod");
# a name with one ("password_file", "token_url") often holds a setting about a secret, so
# its value must be strong, as under `key` or `token`.
_NAME_END = {
    word: re.compile(rf"{ending}(?P<more>[_-][a-z0-9]{{1,6}})?[\"']?[ \t]*(?::=|=>|[:=])[ \t]*")
    for word, (ending, _) in _NAME_WORDS.items()
}
_QUOTED = re.compile(r"([\"'`])([^\"'`\n]{6,200}?)\1")
_UNQUOTED = re.compile(r"[^\s\"'`,;<>(){}\[\]]{8,200}")


def _assignments(text: str, lower: str, taken: Claims | None = None) -> list[tuple[int, int]]:
    """The values assigned to secrets' names, as (start, end). `lower`: the text in lower
    case at the text's positions (ASCII letters only: names in other scripts, which have
    no case but "Contraseña", are looked for in the text). A value overlapping `taken` (a
    token found already, as in `api_key = sk-...`) is not judged again."""
    found = []
    ascii_only = text.isascii()
    for word, (_, strong) in _NAME_WORDS.items():
        if not word.isascii():
            if ascii_only:
                continue
            lower_or_text = text
            if word[0] == "c" and "Contraseña" in text:
                lower_or_text = text.replace("Contraseña", "contraseña")
        else:
            lower_or_text = lower
        at = lower_or_text.find(word)
        while at >= 0:
            nxt = at + len(word)
            m = _NAME_END[word].match(lower, nxt)
            # "monkey", "bypass": the word inside another one; camelCase ("dbPassword") counts.
            if m is not None and at > 0 and lower[at - 1].isalpha() and (word != "pass" or m.end() - nxt < 2):
                if not text[at].isupper() or text[at - 1].isupper():
                    m = None
            if m is not None:
                q = _QUOTED.match(text, m.end())
                if q is not None:
                    start, end = q.span(2)
                else:
                    u = _UNQUOTED.match(text, m.end())
                    start, end = u.span() if u is not None else (0, 0)
                    while end > start and text[end - 1] in ".:!?":  # the end of a sentence
                        end -= 1
                needs_strong = (strong and not (q is not None and word == "pass")) or m.group("more") is not None
                if end > start and (taken is None or not taken.overlaps(start, end)) \
                        and _is_value(text[start:end], needs_strong):
                    found.append((start, end))
                nxt = max(nxt, end)  # a name inside this value is part of the value
            at = lower_or_text.find(word, nxt)
    return found


def find_secrets(text: str, kinds: frozenset[str], view: TextView | None = None) -> list[tuple[str, Span]]:
    view = view or TextView(text)
    found: list[tuple[str, Span]] = []
    taken = Claims()
    ascii_bytes = view.ascii_bytes  # one byte a character: the text's positions
    # One pass for every token kind, and only when some long run of token characters could
    # hold one. Each match is checked from the match itself, never from text around it
    # (beyond the character before it), so a part of a text (a stream's window) finds what
    # the whole text finds there.
    for run_start, run_end in _long_runs(text, ascii_bytes):
        # Every kind's match but a Slack token's has 20 characters or more: a shorter run
        # (most code identifiers) is read only when it holds "xox".
        if run_end - run_start < 20 and text.find("xox", run_start, run_end) < 0:
            continue
        _scan_run(text, run_start, run_end, kinds, taken, found)
        if run_end - run_start >= 31:  # the shortest anchored match, a generic token
            _scan_starts(text, run_start, run_end, kinds, taken, found)
    # Every context kind but two reads a value after "=" or ":" (or in a URL, after ":"); the
    # two others, a private key and a bearer token, have their own words to look for.
    signed = "=" in text or ":" in text
    if not signed and "PRIVATE KEY" not in text and "earer" not in text and "EARER" not in text:
        return found
    # The text in lower case at its own positions: the shared view's when the text is ASCII
    # (elsewhere the view's is normalised, its positions shifted); else the ASCII letters
    # lowered and every other character a "?" (C speed; the names in other scripts are
    # looked for in the text itself, see _assignments).
    lower = view.lower if view.is_ascii else ascii_bytes.lower().decode("ascii")
    for kind, placeholder, pattern, needs in _CONTEXT_COMPILED:
        if kind not in kinds or (not signed and kind not in _UNSIGNED) or not any(fragment in lower for fragment in needs):
            continue
        for m in pattern.finditer(text):
            if "v" in pattern.groupindex and m.group("v") is not None:
                start, end = m.span("v")
                if taken.overlaps(start, end):
                    continue  # a token found already: not judged again
                if kind == "url_password" and not _is_value(m.group("v"), False):
                    continue
                if kind in ("bearer_token", "config_value") and not _is_value(m.group("v"), kind == "bearer_token"):
                    continue
            else:
                start, end = m.span()
            if taken.claim(start, end):
                found.append((kind, Span(start, end, placeholder)))
    if _ASSIGNMENT[0] in kinds and signed:
        for start, end in _assignments(text, lower, taken):
            if taken.claim(start, end):
                found.append((_ASSIGNMENT[0], Span(start, end, _ASSIGNMENT[1])))
    return found


def _scan_run(text: str, pos: int, end: int, kinds: frozenset[str], taken: Claims,
              found: list[tuple[str, Span]]) -> None:
    """The literal-start kinds' matches in text[pos:end], a long run, each claimed once."""
    search = _TOKEN_ANY.search
    while True:
        m = search(text, pos, end)
        if m is None:
            return
        start = m.start()
        pos = start + 1
        if start > 0 and _is_word_char(text[start - 1]):
            continue
        for kind, pattern in _TOKEN_EACH:
            hit = pattern.match(text, start, end)
            if hit is not None:
                pos = hit.end()
                if kind in kinds and taken.claim(start, pos):
                    found.append((kind, Span(start, pos, _TOKEN_PLACEHOLDER[kind])))
                break


_INNER_START = re.compile(r"[+/=:]")


def _scan_starts(text: str, run_start: int, run_end: int, kinds: frozenset[str], taken: Claims,
                 found: list[tuple[str, Span]]) -> None:
    """The anchored kinds, tried only where a token can begin inside a run: at its start and
    after "+", "/", "=" or ":" (the run's other characters continue a word). One attempt
    per such place keeps a run of look-alikes linear."""
    starts = [run_start, *(m.end() for m in _INNER_START.finditer(text, run_start, run_end))]
    match = _ANCHORED_RE.match
    end = run_start
    for at in starts:
        if at < end or taken.overlaps(at, at + 1):
            continue  # inside a match already found (here, or of a literal-start kind)
        m = match(text, at, run_end)
        if m is None:
            continue
        kind = _ANCHORED_GROUP[m.lastgroup or ""]
        if kind == "generic_token" and not _generic_ok(m.group()):
            continue
        end = m.end()
        if kind in kinds and taken.claim(at, end):
            found.append((kind, Span(at, end, _TOKEN_PLACEHOLDER[kind])))


_GENERIC_SPLIT = re.compile(r"[a-z]{2,10}(?:[_-][a-z0-9]{1,6}){0,2}[_.-]")


def _generic_ok(token: str) -> bool:
    m = _GENERIC_SPLIT.match(token)
    prefix = m.group() if m else ""
    return _random_body(prefix, token[len(prefix) :])


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
_VALUE_NAME = re.compile(
    r"pass|pwd|secret|key|token|auth|cred|kennwort|비밀번호|암호|パスワード|contraseña", re.IGNORECASE
)
# A last word that may still grow into a token of a kind without a literal start: a generic
# token once its prefix's separator came ("shpat_3f9a"), a Telegram bot token ("123456789:AA").
_MAY_GROW = re.compile(r"(?:[a-z]{2,10}(?:[_-][a-z0-9]{1,6}){0,2}(?:[_-]|\.(?=\w))[A-Za-z0-9_-]*|\d{6,10}(?::[A-Za-z0-9_-]*)?)\Z")
_BEARER = re.compile(r"(?i:bearer)[ \t]+\Z")
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
        if hold > start and not joined and not word.isalpha() and _MAY_GROW.match(text, start):
            hold = start
        elif hold > 0 and start == 0 and joined and ("_" in text or "-" in text or "." in text or ":" in text):
            # The word began in text already sent ("shpat" + "_3f9a", "123456789:" + "AA"):
            # its start is out, but what follows may still be the token's secret part.
            joint = before[-48:] + text
            at = max(joint.rfind(" "), joint.rfind("\n"), joint.rfind("\t")) + 1
            if _MAY_GROW.match(joint, at):
                hold = 0
        if hold > start and not joined:  # (a word that goes on was judged where it began)
            lead = text[max(0, start - 16) : start] if start >= 16 or not before else (before[-16:] + text[:start])[-16:]
            if ("arer" in lead or "ARER" in lead) and _BEARER.search(lead):
                hold = start  # "Authorization: Bearer " and the token
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
    if '"' in piece or "'" in piece or "@" in piece or "=" in piece or ":" in piece or "-----BEGIN" in piece:
        return True
    # A value assigned without quotes ("smtp_password = Xk9mPq2v", held as the word after
    # the sign until it ends) mixes letters with digits, capitals or symbols.
    return _NOT_PLAIN.search(piece) is not None and _MIXED.search(piece) is not None


_NOT_PLAIN = re.compile(r"[0-9A-Z!#$%&*?^~]")
_MIXED = re.compile(r"[A-Za-z]\S*\d|\d\S*[A-Za-z]|[a-z][A-Z]|\w[!#$%&*?^~]\w")


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
