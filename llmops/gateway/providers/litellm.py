"""Any model litellm can reach (`anthropic/…`, `gemini/…`, `bedrock/…`), translated to
OpenAI's shape by litellm.

litellm takes seconds to import and pulls in a great deal, so it is imported only
when a deployment of this kind is configured, never on the OpenAI/vLLM hot path.

Only an allowlist of a client's request fields reaches litellm (`ALLOWED`, per endpoint:
the parameters OpenAI's API reference documents for chat, completions and embeddings).
litellm takes its whole configuration as keyword arguments of the same call that carries
the request (`api_base`, `model_list`, `fallbacks`, `success_callback`,
`langsmith_base_url`, `mock_response`, `aws_*` and dozens more, a set that grows with each
release), so a denylist cannot keep up: a client field litellm reads as a setting would
send the gateway's key to a host of the client's choosing, post call logs anywhere or
fake a reply. Anything not on the list is dropped, not refused: OpenAI's SDKs and other
gateways send vendor extras, and dropping them keeps those clients working. The routing
arguments (model, api_base, api_key, timeout) come from the deployment's config only;
its `extra_params` are the operator's and pass as they are.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from llmops.gateway.config import DeploymentConfig
from llmops.gateway.deadline import attempt_deadline
from llmops.gateway.errors import UpstreamError, UpstreamTimeout, deployment_secrets
from llmops.gateway.lazy_session import transport_errors
from llmops.gateway.providers.base import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    MESSAGES,
    Provider,
    ProviderContext,
    ProviderOptions,
    UpstreamReply,
    UpstreamStream,
    passed_headers,
    register,
)
from llmops.gateway.providers.openai import RETRYABLE_STATUS, error_from_response

# Sampling and output fields shared by chat and completions (OpenAI's API reference).
_SAMPLING = frozenset({
    "temperature", "top_p", "n", "stop", "max_tokens", "presence_penalty", "frequency_penalty",
    "logit_bias", "logprobs", "user", "seed", "stream_options",
})
# The request fields a client may send to litellm, per endpoint; "model", "stream",
# "messages", "prompt" and "input" are passed by the gateway itself. `metadata` is not
# here: litellm reads it as its own logging input.
ALLOWED: dict[str, frozenset[str]] = {
    CHAT: _SAMPLING | {
        "max_completion_tokens", "top_logprobs", "tools", "tool_choice", "parallel_tool_calls",
        "response_format", "reasoning_effort", "modalities", "audio", "prediction", "service_tier",
        "store", "functions", "function_call", "web_search_options", "verbosity", "safety_identifier",
        "prompt_cache_key",
    },
    COMPLETIONS: _SAMPLING | {"best_of", "echo", "suffix"},
    EMBEDDINGS: frozenset({"dimensions", "encoding_format", "user"}),
    # Anthropic's Messages API, passed to an `anthropic/...` model as it came (`metadata`
    # left out here too).
    MESSAGES: frozenset({
        "max_tokens", "system", "stop_sequences", "temperature", "top_p", "top_k", "tools", "tool_choice",
        "thinking", "service_tier",
    }),
}


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    if hasattr(obj, "model_dump"):
        return obj.model_dump(exclude_none=False)
    return dict(obj)


class _SSEPayloads:
    """The data payloads of server-sent events arriving as byte pieces."""

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, piece: bytes) -> list[bytes]:
        self.pending += piece.replace(b"\r\n", b"\n")
        *events, self.pending = self.pending.split(b"\n\n")
        payloads = []
        for event in events:
            for line in event.split(b"\n"):
                if line.startswith(b"data:") and line[5:].strip() not in (b"", b"[DONE]"):
                    payloads.append(line[5:].strip())
        return payloads


class LiteLLMOptions(ProviderOptions):
    """None yet: litellm's own call arguments go in the deployment's `extra_params`."""


# litellm providers that pass a completions prompt of token ids on (OpenAI's API takes them).
TOKEN_PROMPT_PREFIXES = ("openai/", "text-completion-openai/", "azure/", "azure_text/", "hosted_vllm/")


def _is_text(prompt: Any) -> bool:
    return isinstance(prompt, str) or (isinstance(prompt, list) and all(isinstance(p, str) for p in prompt))


@register
class LiteLLMProvider(Provider):
    kind = "litellm"
    Options = LiteLLMOptions
    native = frozenset({CHAT, COMPLETIONS, EMBEDDINGS})
    options: LiteLLMOptions

    def __init__(self, deployment: DeploymentConfig, context: ProviderContext):
        super().__init__(deployment, context)
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        litellm.telemetry = False
        self.litellm = litellm
        self.where = f"upstream {deployment.name or deployment.model}"
        self.secrets = deployment_secrets(deployment.api_key, deployment.api_base)
        if deployment.model.startswith("anthropic/"):
            # Anthropic's own Messages API goes to Anthropic untranslated, on the gateway's
            # HTTP client (litellm's pass-through needs its proxy's web framework, and a
            # call through it would be translated twice).
            self.native = self.native | {MESSAGES}
            self.session = context.session
            base = (deployment.api_base or "https://api.anthropic.com").rstrip("/")
            self.messages_url = base + "/v1/messages"
            self.messages_headers = {"content-type": "application/json", "anthropic-version": "2023-06-01",
                                     "x-api-key": deployment.api_key or ""}

    def _kwargs(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        allowed = ALLOWED.get(endpoint, frozenset())
        kwargs = {k: v for k, v in body.items() if k in allowed}
        kwargs.update(self.deployment.extra_params)
        kwargs["model"] = self.deployment.model
        kwargs["timeout"] = self.timeouts.total
        kwargs["num_retries"] = 0  # the gateway's router retries, across deployments
        if self.deployment.api_key:
            kwargs["api_key"] = self.deployment.api_key
        if self.deployment.api_base:
            kwargs["api_base"] = self.deployment.api_base
        return kwargs

    def _error(self, exc: Exception) -> UpstreamError:
        # litellm's messages name the host it called and may quote the upstream's
        # answer (which may echo the key) or a traceback: scrubbed before any client sees it.
        return self._mapped(exc).scrubbed(self.secrets)

    def _mapped(self, exc: Exception) -> UpstreamError:
        status = getattr(exc, "status_code", None) or 502
        name = type(exc).__name__
        if "Timeout" in name:
            return UpstreamTimeout(f"{self.where} timed out")
        if status in (401, 403):
            return UpstreamError(f"{self.where} rejected the gateway's credentials", status=502)
        message = str(getattr(exc, "message", "") or exc)[:300]
        return UpstreamError(
            f"{self.where} failed ({name}): {message}",
            status=status if 400 <= status < 500 and status not in RETRYABLE_STATUS else (429 if status == 429 else 502),
            retryable=status in RETRYABLE_STATUS or status >= 500,
            code=f"upstream_{status}",
        )

    async def _call(self, endpoint: str, body: dict[str, Any], stream: bool) -> Any:
        kwargs = self._kwargs(endpoint, body)
        if stream:
            kwargs["stream"] = True
            kwargs["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        try:
            if endpoint == CHAT:
                return await self.litellm.acompletion(messages=body.get("messages"), **kwargs)
            if endpoint == COMPLETIONS:
                prompt = body.get("prompt")
                if not _is_text(prompt) and not self.deployment.model.startswith(TOKEN_PROMPT_PREFIXES):
                    # litellm fails inside itself on token ids for other providers (a 502 that
                    # counted toward cooling the deployment down); it is the request's fault.
                    raise UpstreamError(f"{self.where} takes a text prompt, not token ids", status=400,
                                        retryable=False, code="invalid_prompt")
                return await self.litellm.atext_completion(prompt=prompt, **kwargs)
            if endpoint == EMBEDDINGS:
                kwargs.pop("stream_options", None)
                return await self.litellm.aembedding(input=body.get("input"), **kwargs)
        except UpstreamError:
            raise
        except Exception as exc:  # litellm raises its own hierarchy, mapped here
            raise self._error(exc) from exc
        raise UpstreamError(f"endpoint {endpoint} is not supported by litellm", status=400, retryable=False)

    async def _within(self, seconds: float, awaitable: Any, what: str) -> Any:
        # litellm knows only one timeout; the gateway's first-byte, idle-gap and total
        # limits are kept here, as the OpenAI provider keeps them on its socket.
        try:
            async with asyncio.timeout(max(0.001, seconds)):
                return await awaitable
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{self.where} {what}") from exc

    def _messages_body(self, body: dict[str, Any], stream: bool) -> bytes:
        out = {k: v for k, v in body.items() if k in ALLOWED[MESSAGES]}
        out.update(self.deployment.extra_params)
        out["model"] = self.deployment.model.removeprefix("anthropic/")
        out["messages"] = body.get("messages")
        if stream:
            out["stream"] = True
        return orjson.dumps(out)

    async def _post_messages(self, body: dict[str, Any], stream: bool, deadline: float) -> Any:
        """Anthropic's answer once its status is in: a 200, or the error it stands for."""
        try:
            async with asyncio.timeout(max(0.001, deadline - time.monotonic())):
                resp = await self.session.post(self.messages_url, data=self._messages_body(body, stream),
                                               headers=self.messages_headers)
                if resp.status == 200:
                    return resp
                raw = await resp.read()
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{self.where} sent no response in time") from exc
        except transport_errors() as exc:
            raise UpstreamError(f"{self.where} could not be reached: {type(exc).__name__}") from exc
        resp.release()
        raise error_from_response(resp.status, raw, resp.headers, self.where).scrubbed(self.secrets)

    async def _native_request(self, body: dict[str, Any]) -> UpstreamReply:
        started = time.perf_counter()
        t = self.timeouts
        resp = await self._post_messages(body, False, time.monotonic() + min(t.first_byte, t.total))
        raw = await self._within(t.total, resp.read(), "did not finish its reply in time")
        resp.release()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(f"{self.where} sent a reply that is not JSON") from exc
        return UpstreamReply(data=data, raw=raw, upstream_ms=(time.perf_counter() - started) * 1000,
                             headers=passed_headers(resp.headers))

    async def _native_stream(self, body: dict[str, Any]) -> UpstreamStream:
        started = time.perf_counter()
        t = self.timeouts
        deadline = time.monotonic() + t.total
        resp = await self._post_messages(body, True, time.monotonic() + min(t.first_byte, t.total))
        sse = _SSEPayloads()

        async def events() -> AsyncIterator[list[bytes]]:
            # Anthropic's stream ends with message_stop and the connection's end; no [DONE].
            try:
                while True:
                    piece = await self._within(min(t.idle, deadline - time.monotonic()), resp.content.readany(),
                                               f"stalled mid-stream (no data for {t.idle:.1f}s)")
                    if not piece:
                        return
                    batch = sse.feed(piece)
                    if batch:
                        yield batch
            finally:
                resp.close()

        gen = events()
        try:
            first = await anext(gen)
        except StopAsyncIteration as exc:
            raise UpstreamError(f"{self.where} ended the stream before sending anything") from exc
        return UpstreamStream(first=first, rest=gen, closer=resp.close,
                              first_byte_ms=(time.perf_counter() - started) * 1000, headers=passed_headers(resp.headers))

    async def request(self, endpoint: str, body: dict[str, Any]) -> UpstreamReply:
        if endpoint == MESSAGES and MESSAGES in self.native:
            return await self._native_request(body)
        started = time.perf_counter()
        limit = min(self.timeouts.first_byte, attempt_deadline(self.timeouts.total) - time.monotonic())
        result = await self._within(limit, self._call(endpoint, body, stream=False),
                                    f"sent no response within {limit:.1f}s")
        data = _as_dict(result)
        data.pop("_hidden_params", None)
        return UpstreamReply(data=data, upstream_ms=(time.perf_counter() - started) * 1000)

    async def stream(self, endpoint: str, body: dict[str, Any]) -> UpstreamStream:
        if endpoint == MESSAGES and MESSAGES in self.native:
            return await self._native_stream(body)
        started = time.perf_counter()
        t = self.timeouts
        deadline = attempt_deadline(t.total)
        first_by = min(time.monotonic() + t.first_byte, deadline)
        wrapper = await self._within(first_by - time.monotonic(), self._call(endpoint, body, stream=True),
                                     f"sent no response within {t.first_byte:.1f}s")
        iterator = wrapper.__aiter__()

        async def events() -> AsyncIterator[list[bytes]]:
            waiting_for_first = True
            while True:
                now = time.monotonic()
                until = first_by if waiting_for_first else min(now + t.idle, deadline)
                try:
                    async with asyncio.timeout(max(0.001, until - now)):
                        chunk = await anext(iterator)
                except StopAsyncIteration:
                    return
                except TimeoutError as exc:
                    if waiting_for_first:
                        raise UpstreamTimeout(f"{self.where} sent nothing within {t.first_byte:.1f}s") from exc
                    if until >= deadline:
                        cut = UpstreamTimeout(f"{self.where} did not finish its stream within the total "
                                              f"timeout ({t.total:g}s)")
                        cut.code = "upstream_total_timeout"
                        raise cut from exc
                    raise UpstreamTimeout(f"{self.where} stalled mid-stream (no data for {t.idle:.1f}s)") from exc
                except Exception as exc:
                    raise self._error(exc) from exc
                waiting_for_first = False
                yield [orjson.dumps(_as_dict(chunk), default=str)]

        gen = events()
        try:
            first = await anext(gen)
        except StopAsyncIteration as exc:
            raise UpstreamError(f"{self.where} ended the stream before sending anything") from exc
        closer = getattr(wrapper, "aclose", None)
        return UpstreamStream(first=first, rest=gen, closer=closer, first_byte_ms=(time.perf_counter() - started) * 1000)
