"""Errors the library raises; each knows its HTTP status and OpenAI error type.

The CLI prints `message` on one line; the gateway wraps it in OpenAI's error shape.
"""

from __future__ import annotations


class LLMOpsError(Exception):
    status = 400
    type = "invalid_request_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def to_openai(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class InvalidInput(LLMOpsError):
    status = 400
    code = "invalid_request"


class AuthenticationError(LLMOpsError):
    """No key, or a key that may not be used (unknown, revoked, expired): 401."""

    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(LLMOpsError):
    """A known key asked for something it may not do: 403."""

    status = 403
    type = "permission_error"
    code = "model_not_allowed"


class NotFound(LLMOpsError):
    status = 404
    code = "not_found"


class Conflict(LLMOpsError):
    status = 409
    code = "conflict"


class TemplateError(InvalidInput):
    code = "template_error"
