"""Errors a gateway client sees, each with OpenAI's error shape and the right status."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from llmops.errors import LLMOpsError

if TYPE_CHECKING:
    from llmops.gateway.router import Deployment


REDACTED = "[redacted]"


def deployment_secrets(api_key: str | None, api_base: str | None) -> tuple[str, ...]:
    """What an error relayed to a client must never show of a deployment: its key, its
    URL (the userinfo in it above all) and its host, longest first."""
    found: set[str] = set()
    if api_key:
        found.add(api_key)
    if api_base:
        base = api_base.rstrip("/")
        found.update({api_base, base})
        parts = urlsplit(base)
        if parts.netloc:
            userinfo, _, hostport = parts.netloc.rpartition("@")
            found.update({parts.netloc, hostport, f"{parts.scheme}://{hostport}{parts.path}"})
            if userinfo:
                found.add(userinfo)
                found.update(p for p in userinfo.split(":", 1) if len(p) >= 4)
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced, and cut before any traceback."""
    for marker in ("Traceback (most recent call last)", "\nTraceback", "\n  File \""):
        at = text.find(marker)
        if at >= 0:
            text = text[:at].rstrip()
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _scrub_value(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):
        return {k: _scrub_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_value(v, secrets) for v in value]
    return value


class ModelNotFound(LLMOpsError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class RouteNotFound(LLMOpsError):
    status = 404
    type = "invalid_request_error"
    code = "unknown_url"


class MethodNotAllowed(LLMOpsError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class PayloadTooLarge(LLMOpsError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UpstreamError(LLMOpsError):
    """The provider answered with an error, or could not be reached.

    `retryable` says whether another attempt (same or other deployment) may help;
    `retry_after` is the provider's own hint in seconds, when it gave one.
    """

    status = 502
    type = "upstream_error"
    code = "upstream_error"
    # Set by the router on the error it gives up with: the last deployment it tried
    # (a router.Deployment) and how many attempts it made in all.
    deployment: Deployment | None = None
    attempts = 0

    def __init__(
        self,
        message: str,
        *,
        status: int = 502,
        retryable: bool = True,
        retry_after: float | None = None,
        code: str | None = None,
        body: dict | None = None,
    ):
        super().__init__(message, code=code)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.body = body

    def scrubbed(self, secrets: tuple[str, ...]) -> UpstreamError:
        """This error with the deployment's `secrets` (deployment_secrets) taken out of
        its message and the upstream's body, for relaying to a client. In place."""
        self.message = scrub(self.message, secrets)
        self.args = (self.message,)
        if self.body is not None:
            self.body = _scrub_value(self.body, secrets)
        return self

    def to_openai(self) -> dict:
        # An upstream's own 4xx error body (its message and param) is passed through:
        # it tells the client what was wrong with its request.
        if self.body and isinstance(self.body.get("error"), dict) and 400 <= self.status < 500:
            theirs = self.body["error"]
            # Every key of OpenAI's shape, even when the upstream left some out.
            return {"error": {
                "message": str(theirs.get("message") or self.message),
                "type": theirs.get("type") or self.type,
                "param": theirs.get("param"),
                "code": theirs["code"] if "code" in theirs else self.code,
            }}
        return super().to_openai()


class UpstreamTimeout(UpstreamError):
    type = "timeout_error"
    code = "upstream_timeout"

    def __init__(self, message: str):
        super().__init__(message, status=504, retryable=True)


class NoHealthyDeployment(LLMOpsError):
    status = 503
    type = "service_unavailable"
    code = "no_healthy_deployment"
    retry_after: float | None = None  # seconds until the first rest ends: the client's Retry-After


class InternalError(LLMOpsError):
    """A bug in the gateway: the client still gets OpenAI's shape and the request its ledger row."""

    status = 500
    type = "server_error"
    code = "internal_error"
