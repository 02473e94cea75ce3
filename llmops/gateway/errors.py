"""Errors a gateway client sees, each with OpenAI's error shape and the right status."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmops.errors import LLMOpsError

if TYPE_CHECKING:
    from llmops.gateway.router import Deployment


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


class InternalError(LLMOpsError):
    """A bug in the gateway: the client still gets OpenAI's shape and the request its ledger row."""

    status = 500
    type = "server_error"
    code = "internal_error"
