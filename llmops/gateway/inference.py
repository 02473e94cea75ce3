"""One inference request through the gateway, step by step in this order:

auth ─► parse ─► model and prompt resolution ─► input guardrails ─► limits
─► router (retries, fallbacks) ─► output guardrails ─► tokens and cost ─► ledger.

Each step is a call into a library module; this file only keeps the order and turns
outcomes into responses and ledger rows.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from llmops.errors import InvalidInput, LLMOpsError
from llmops.gateway import http
from llmops.gateway.call import Call
from llmops.gateway.errors import InternalError, UpstreamError
from llmops.gateway.providers.base import CHAT, COMPLETIONS, EMBEDDINGS, reply_texts, upstream_request_id
from llmops.gateway.streaming import stream_to_client
from llmops.gateway.surfaces import Surface
from llmops.monitoring.traces import finish_reasons

if TYPE_CHECKING:
    from llmops.gateway.services import Services

log = logging.getLogger("llmops.gateway")

# Fields that would let a client steer the gateway's credentials to another host,
# or make litellm answer without calling anyone: never forwarded.
ROUTING_FIELDS = frozenset(
    {
        # Where a call goes and with whose credentials: the deployment's config decides.
        "api_base", "base_url", "api_key", "api_version", "api_type", "organization", "azure_endpoint",
        "azure_ad_token", "azure_ad_token_provider", "custom_llm_provider", "extra_headers", "headers",
        "extra_body", "extra_query", "aws_access_key_id", "aws_secret_access_key", "aws_session_token",
        "aws_region_name", "aws_profile_name", "aws_role_name", "aws_web_identity_token",
        "aws_bedrock_runtime_endpoint", "aws_sts_endpoint", "vertex_credentials", "vertex_project",
        "vertex_location", "vertex_ai_project", "vertex_ai_location", "litellm_params", "deployment_id",
        "model_list", "fallbacks", "context_window_fallback_dict", "proxy", "proxies", "http_client",
        "client", "timeout", "request_timeout", "num_retries", "max_retries", "retry_policy",
        # litellm's callbacks, loggers, mocks, caches and cost overrides.
        "success_callback", "failure_callback", "callbacks", "logger_fn", "litellm_logging_obj",
        "litellm_call_id", "litellm_trace_id", "litellm_session_id", "langsmith_base_url",
        "langsmith_api_key", "langsmith_project", "langfuse_host", "langfuse_public_key",
        "langfuse_secret_key", "mock_response", "mock_timeout", "mock_tool_calls", "mock_delay",
        "mock_testing_fallbacks", "cache", "caching", "no-log", "input_cost_per_token",
        "output_cost_per_token", "input_cost_per_second", "output_cost_per_second", "user_api_key",
        "acompletion", "api_key_header", "model_info", "hf_model_name", "preset_cache_key",
        "custom_prompt_dict", "initial_prompt_value", "roles", "final_prompt_value", "bos_token",
        "eos_token", "base_model", "azure_username", "azure_password", "tenant_id", "client_id",
        "client_secret", "aws_secret_name", "watsonx_region_name", "ssl_verify",
    }
)
"""Fields a client may never set, dropped before any provider sees the body. The litellm
provider goes further and forwards only an allowlist (providers/litellm.py); HTTP
pass-through providers forward the rest, since vLLM's own sampling fields must pass."""


MAX_MODEL_NAME = 256


def _token_ids(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value)


def _text_input(value: Any, *, empty_text: bool) -> bool:
    """OpenAI's text input (completions' `prompt`, embeddings' `input`): a string, or a
    non-empty list of strings, of token ids, or of token-id lists. Anything else made
    litellm fail inside itself (a 502 that cooled a healthy deployment down)."""
    if isinstance(value, str):
        return empty_text or bool(value)
    if not isinstance(value, list) or not value:
        return False
    return (all(isinstance(v, str) for v in value) or _token_ids(value)
            or all(_token_ids(v) for v in value))


_NUMBER = (int, float)
# OpenAI request fields a provider library reads, by type. A wrong type reached litellm,
# which failed inside itself: a 502 that counted toward cooling the deployment down.
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "temperature": _NUMBER, "top_p": _NUMBER, "presence_penalty": _NUMBER, "frequency_penalty": _NUMBER,
    "n": (int,), "seed": (int,), "max_completion_tokens": (int,), "stop": (str, list), "tools": (list,),
    "tool_choice": (str, dict), "response_format": (dict,), "user": (str,), "logit_bias": (dict,),
    "parallel_tool_calls": (bool,), "metadata": (dict,), "top_k": (int,),
}
_TYPE_NAMES = {int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object",
               bool: "true or false"}
RESPONSE_FORMATS = ("text", "json_object", "json_schema")


def _check_fields(body: dict[str, Any]) -> None:
    for name, types in FIELD_TYPES.items():
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            kinds = " or ".join(dict.fromkeys(_TYPE_NAMES[t] for t in types))
            raise InvalidInput(f"'{name}' must be {kinds}", param=name)
    stop = body.get("stop")
    if isinstance(stop, list) and not all(isinstance(s, str) for s in stop):
        raise InvalidInput("'stop' must be a string or a list of strings", param="stop")
    response_format = body.get("response_format")
    if response_format is not None:
        if response_format.get("type") not in RESPONSE_FORMATS:
            raise InvalidInput(f"'response_format.type' must be one of {', '.join(RESPONSE_FORMATS)}",
                               param="response_format")
        spec = response_format.get("json_schema")
        if response_format["type"] == "json_schema" and not (
                isinstance(spec, dict) and isinstance(spec.get("name"), str) and isinstance(spec.get("schema"), dict)):
            raise InvalidInput("a json_schema response_format needs 'json_schema': {\"name\": ..., \"schema\": {...}}",
                               param="response_format.json_schema")
    for i, tool in enumerate(body.get("tools") or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str) or (
                tool["type"] == "function" and not (isinstance(function, dict) and isinstance(function.get("name"), str))):
            raise InvalidInput(f"tools[{i}] must be an object like {{\"type\": \"function\", \"function\": "
                               "{\"name\": ...}}", param=f"tools[{i}]")
    choice = body.get("tool_choice")
    if isinstance(choice, str) and choice not in ("none", "auto", "required"):
        raise InvalidInput("'tool_choice' must be none, auto, required or an object naming a tool", param="tool_choice")


ROLES = ("system", "developer", "user", "assistant", "tool", "function")


def _check_message(i: int, m: Any) -> None:
    """A chat message as OpenAI's API takes it. A malformed one used to reach a provider
    library (litellm) and fail inside it: a 502 that counted toward cooling a healthy
    deployment down, so a few bad requests took a model offline for everyone."""
    where = f"messages[{i}]"
    if not isinstance(m, dict) or m.get("role") not in ROLES:
        raise InvalidInput(f"{where} must be an object with a 'role' ({', '.join(ROLES)})", param=where)
    content = m.get("content")
    if content is None:
        if m["role"] == "assistant" and (m.get("tool_calls") or m.get("function_call")):
            return
        raise InvalidInput(f"{where} needs 'content' (a string or a list of content parts)", param=f"{where}.content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise InvalidInput(f"{where}.content must be a string or a list of content parts", param=f"{where}.content")
    for j, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str) or (
                part["type"] == "text" and not isinstance(part.get("text"), str)):
            raise InvalidInput(f"{where}.content[{j}] must be a content part such as "
                               "{\"type\": \"text\", \"text\": \"...\"}", param=f"{where}.content[{j}]")


def _validate(endpoint: str, body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidInput("'model' is required: name one of the models in GET /v1/models", param="model")
    # The name is echoed in a response header (x-llmops-model) and in logs and metrics.
    if len(model) > MAX_MODEL_NAME or not model.isprintable():
        raise InvalidInput(
            f"'model' must be a printable name of at most {MAX_MODEL_NAME} characters", param="model"
        )
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidInput("'stream_options' must be an object, e.g. {\"include_usage\": true}", param="stream_options")
    if endpoint == CHAT:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidInput("'messages' is required: a non-empty list of {role, content}", param="messages")
        for i, m in enumerate(messages):
            _check_message(i, m)
    elif endpoint == COMPLETIONS:
        if not _text_input(body.get("prompt"), empty_text=True):
            raise InvalidInput("'prompt' is required: a string, a non-empty list of strings, or token ids",
                               param="prompt")
    elif endpoint == EMBEDDINGS:
        if not _text_input(body.get("input"), empty_text=False):
            raise InvalidInput("'input' is required: a non-empty string, a non-empty list of strings, or token ids",
                               param="input")
    if endpoint in (CHAT, COMPLETIONS):
        _check_fields(body)
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        raise InvalidInput("'max_tokens' must be a positive integer", param="max_tokens")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise InvalidInput("'stream' must be true or false", param="stream")
    return model


def response_headers(call: Call) -> list[tuple[bytes, bytes]]:
    # Overhead: the whole time so far less the router's upstream phase (the upstream's
    # answer, retries and backoff included); on a refusal before any upstream call, all of it.
    overhead = call.elapsed_ms() - call.upstream_ms
    headers = [
        (b"x-llmops-request-id", call.id.encode()),
        (b"x-llmops-model", (call.served_model or call.model or "").encode()),
        (b"x-llmops-deployment", (call.deployment or "").encode()),
        (b"x-llmops-overhead-ms", f"{overhead:.3f}".encode()),
    ]
    if call.cost is not None:
        headers.append((b"x-llmops-cost", f"{call.cost:.8f}".encode()))
    if call.prompt_name:
        headers.append((b"x-llmops-prompt-version", f"{call.prompt_name}:{call.prompt_version}".encode()))
    if call.variant:
        headers.append((b"x-llmops-variant", call.variant.encode()))
    return headers


async def handle(services: Services, surface: Surface, scope: dict, receive: http.Receive, send: http.Send) -> None:
    endpoint = surface.upstream
    call = Call(endpoint=surface.path)
    reservation = None
    responded = False
    try:
        key = await services.authenticate(scope)
        if key is not None:
            call.key_id, call.key_name, call.team = key.id, key.name, key.team
            call.user = key.user
            call.guardrails = key.guardrails
        raw = await http.read_body(scope, receive, services.config.max_body_bytes)
        body = http.parse_json_object(raw)
        for name in ROUTING_FIELDS.intersection(body):
            del body[name]
        body = await surface.prepare(services, body, call, scope)
        endpoint = surface.upstream_for(call)
        if isinstance(body.get("user"), str) and not call.user:
            call.user = body["user"]  # a key bound to a user keeps that user (and budget)
        model = _validate(endpoint, body)
        call.model = model
        services.router.resolve(model)
        if key is not None:
            key.require_model(model)
        view = surface.input_view(body, call)
        if endpoint != EMBEDDINGS:
            await services.check_input(view, call)
            surface.input_checked(body, view, call)
        reservation = await services.admit(key, call, view)
        stream = bool(body.get("stream")) and endpoint != EMBEDDINGS
        call.streamed = stream
        before_upstream = time.perf_counter()
        try:
            route = await services.router.call(model, endpoint, body, stream)
        finally:
            call.upstream_ms = (time.perf_counter() - before_upstream) * 1000
        call.attempts = route.attempts
        d = route.deployment
        call.served_model = route.model
        call.served_by(d)
        passed = route.stream.headers if route.stream is not None else route.whole.headers
        if passed:
            call.upstream_request_id = upstream_request_id(passed)
        if stream:
            call.ttft_ms = call.elapsed_ms()
            services.metrics.upstream_latency.observe(call.upstream_ms / 1000, model, d.name)
            headers = response_headers(call) + passed
            responded = True
            writer = surface.streamer(services, call, body)
            await stream_to_client(services, call, body, route, endpoint, writer, headers, receive, send)
        else:
            reply = route.whole
            services.metrics.upstream_latency.observe(reply.upstream_ms / 1000, model, d.name)
            data = reply.data
            changed = await services.check_output(endpoint, data, call)
            usage = data.get("usage")
            # The reply's texts are only counted when the upstream reported no usage.
            await services.account_async(call, d, body, usage, [] if usage else reply_texts(endpoint, data))
            capture = services.capture  # payload capture for monitoring: None when off
            if capture is not None and capture.sampled(call):
                capture.keep(call, view, reply_texts(endpoint, data))
            if services.tracer is not None:  # OpenTelemetry export: None when off
                call.finish_reasons = finish_reasons(data)
            out = surface.whole(data, call)
            if out is None:
                out = reply.raw if (reply.raw is not None and not changed) else orjson.dumps(data)
            responded = True
            await http.send_bytes(send, 200, out, response_headers(call) + passed)
        if surface.keeps_state and call.outcome == "success":
            await surface.finished(services, call)
    except http.ClientGone:
        call.failed(499, "cancelled", "client_disconnected")
    except LLMOpsError as exc:
        call.tried_until(exc)
        outcome = "upstream_error" if isinstance(exc, UpstreamError) or exc.status >= 500 else "client_error"
        if exc.code == "guardrail_blocked":
            outcome = "blocked"
        elif exc.status == 429 and not isinstance(exc, UpstreamError):
            outcome = "refused"
        call.failed(exc.status, outcome, exc.code or exc.type)
        services.metrics.errors.inc(call.model or "", call.deployment or "", exc.code or exc.type)
        if not responded:
            await http.send_error(send, exc, response_headers(call), render=surface.error_body)
    except Exception:
        # A bug, not the client's fault: it still gets its API's error shape, and the ledger its row.
        log.exception("request %s failed inside the gateway", call.id)
        call.failed(500, "gateway_error", "internal_error")
        services.metrics.errors.inc(call.model or "", call.deployment or "", "internal_error")
        if not responded:
            error = InternalError(f"the gateway failed on request {call.id}; its operator can find it in the log")
            await http.send_error(send, error, response_headers(call), render=surface.error_body)
    finally:
        await services.settle(reservation, call)
        services.finish(call)
