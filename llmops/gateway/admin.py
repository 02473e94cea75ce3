"""The gateway's non-inference routes: models, health, metrics, feedback, admin.

Each handler authenticates, parses, calls one library function and sends its result.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import parse_qs, unquote

from sqlalchemy import text

from llmops.errors import InvalidInput, LLMOpsError, NotFound
from llmops.gateway import http, openapi
from llmops.gateway.services import Services
from llmops.gateway.surfaces import MESSAGES_SURFACE


async def _json_body(services: Services, scope: dict, receive: http.Receive) -> dict[str, Any]:
    return http.parse_json_object(await http.read_body(scope, receive, services.config.max_body_bytes))


def _query(scope: dict) -> dict[str, str]:
    parsed = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return {k: v[-1] for k, v in parsed.items()}


def _model_card(name: str) -> dict[str, Any]:
    # Models exist from the gateway's start; clients read `created` only for display.
    return {"id": name, "object": "model", "created": _STARTED, "owned_by": "llmops"}


_STARTED = int(time.time())


async def models(services: Services, scope: dict, receive: http.Receive, send: http.Send) -> None:
    identity = await services.authenticate(scope)
    data = [_model_card(m.name) for m in services.config.models if identity is None or identity.allows(m.name)]
    await http.send_json(send, 200, {"object": "list", "data": data})


async def model_get(services: Services, scope: dict, receive: http.Receive, send: http.Send) -> None:
    identity = await services.authenticate(scope)
    prefix = "/v1/models/" if scope["path"].startswith("/v1/") else "/models/"
    name = unquote(scope["path"][len(prefix):])
    services.router.resolve(name)  # 404 model_not_found, saying why when it is off
    if identity is not None:
        identity.require_model(name)
    await http.send_json(send, 200, _model_card(name))


async def count_tokens(services: Services, scope: dict, receive: http.Receive, send: http.Send) -> None:
    """Anthropic's `POST /v1/messages/count_tokens`: the prompt's tokens as the gateway counts them."""
    from llmops import tokens
    from llmops.gateway.translate import messages as anthropic

    try:
        identity = await services.authenticate(scope)
        body = await _json_body(services, scope, receive)
        chat = anthropic.count_tokens_body(body)
        model = chat.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidInput("'model' is required: name one of the models in GET /v1/models", param="model")
        services.router.resolve(model)
        if identity is not None:
            identity.require_model(model)
        count = await asyncio.to_thread(tokens.count_prompt, chat)  # a long prompt would stall the loop
    except LLMOpsError as exc:
        await http.send_error(send, exc, render=MESSAGES_SURFACE.error_body)
        return
    await http.send_json(send, 200, {"input_tokens": count})


async def live(services: Services, scope: dict, receive: http.Receive, send: http.Send) -> None:
    await http.send_json(send, 200, {"status": "ok"})


def _database_ok(url: str) -> bool:
    from llmops.db import get_engine

    with get_engine(url).connect() as conn:
        conn.execute(text("SELECT 1"))
    return True


async def ready(services: Services, scope: dict, receive: http.Receive, send: http.Send) -> None:
    checks: dict[str, Any] = {}
    try:
        await asyncio.wait_for(asyncio.to_thread(_database_ok, services.database_url), timeout=5)
        checks["database"] = "ok"
    except Exception as exc:  # report, don't crash: this is what a probe reads
        checks["database"] = f"unreachable: {type(exc).__name__}"
    now = time.monotonic()
    # Healthy: not cooling down after failures, and answering its probe where it has one (vLLM).
    deployments = {
        d.name: d.available(now) and d.provider.reachable() is not False for d in services.router.all_deployments()
    }
    checks["healthy_deployments"] = sum(deployments.values())
    ok = checks["database"] == "ok" and checks["healthy_deployments"] > 0
    await http.send_json(
        send, 200 if ok else 503, {"status": "ready" if ok else "not ready", "checks": checks, "deployments": deployments}
    )


async def metrics(services: Services, scope: dict, receive: http.Receive, send: http.Send) -> None:
    if services.config.metrics_auth == "master_key":
        await services.authorize_admin(scope)
    await http.send_text(send, 200, services.metrics.render(), b"text/plain; version=0.0.4; charset=utf-8")


async def feedback(services: Services, scope: dict, receive: http.Receive, send: http.Send) -> None:
    await services.authenticate(scope)
    body = await _json_body(services, scope, receive)
    from llmops.experiments.feedback import record_feedback

    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise InvalidInput("'request_id' is required: the x-llmops-request-id of the call", param="request_id")
    score = body.get("score")
    thumbs = body.get("thumbs")
    if isinstance(score, str) and score in ("up", "down"):
        thumbs, score = score, None
    def save():
        return record_feedback(request_id, score=score, thumbs=thumbs, comment=body.get("comment"),
                               database_url=services.database_url, require_known=True)

    try:
        saved = await asyncio.to_thread(save)
    except NotFound:
        # A mistyped id must not vanish from every report; but a fresh row may still be
        # queued, here (flush it) or on another replica (wait out its flush interval).
        await asyncio.to_thread(services.governance.ledger.flush, 2.0)
        await asyncio.sleep(2 * services.governance.ledger.flush_interval)
        saved = await asyncio.to_thread(save)
    await http.send_json(send, 200, saved)


async def keys_create(services: Services, scope: dict, receive: http.Receive, send: http.Send) -> None:
    await services.authorize_admin(scope)
    body = await _json_body(services, scope, receive)
    services.check_key_guardrails(body)
    await http.send_json(send, 200, await services.governance.admin.create(body))


async def keys_list(services: Services, scope: dict, receive: http.Receive, send: http.Send) -> None:
    await services.authorize_admin(scope)
    await http.send_json(send, 200, await services.governance.admin.list())


def _last_segment(scope: dict) -> str:
    return scope["path"].rsplit("/", 1)[1]


async def keys_get(services: Services, scope: dict, receive: http.Receive, send: http.Send) -> None:
    await services.authorize_admin(scope)
    await http.send_json(send, 200, await services.governance.admin.get(_last_segment(scope)))


async def keys_update(services: Services, scope: dict, receive: http.Receive, send: http.Send) -> None:
    await services.authorize_admin(scope)
    body = await _json_body(services, scope, receive)
    services.check_key_guardrails(body)
    await http.send_json(send, 200, await services.governance.admin.update(_last_segment(scope), body))


async def keys_revoke(services: Services, scope: dict, receive: http.Receive, send: http.Send) -> None:
    await services.authorize_admin(scope)
    await http.send_json(send, 200, await services.governance.admin.revoke(_last_segment(scope)))


async def budgets_list(services: Services, scope: dict, receive: http.Receive, send: http.Send) -> None:
    await services.authorize_admin(scope)
    await http.send_json(send, 200, await services.governance.admin.budgets())


async def budgets_set(services: Services, scope: dict, receive: http.Receive, send: http.Send) -> None:
    await services.authorize_admin(scope)
    await http.send_json(send, 200, await services.governance.admin.set_budget(await _json_body(services, scope, receive)))


async def budgets_remove(services: Services, scope: dict, receive: http.Receive, send: http.Send) -> None:
    await services.authorize_admin(scope)
    body = await _json_body(services, scope, receive)
    await http.send_json(send, 200, await services.governance.admin.remove_budget(body))


async def spend(services: Services, scope: dict, receive: http.Receive, send: http.Send) -> None:
    await services.authorize_admin(scope)
    from llmops.governance.spend import parse_since, spend_report

    q = _query(scope)
    since = parse_since(q["since"]) if q.get("since") else None
    rows = await asyncio.to_thread(spend_report, services.database_url, by=q.get("by", "model"), since=since)
    await http.send_json(send, 200, {"by": q.get("by", "model"), "data": rows})


async def experiment_report(services: Services, scope: dict, receive: http.Receive, send: http.Send) -> None:
    await services.authorize_admin(scope)
    from llmops.experiments.report import experiment_report as report

    data = await asyncio.to_thread(report, _last_segment(scope), database_url=services.database_url)
    await http.send_json(send, 200, data)


ROUTES = [
    ("GET", "/v1/models", models),
    ("GET", "/models", models),
    ("POST", "/v1/messages/count_tokens", count_tokens),
    ("POST", "/messages/count_tokens", count_tokens),
    ("GET", "/health/live", live),
    ("GET", "/health/ready", ready),
    ("GET", "/metrics", metrics),
    ("GET", "/openapi.json", openapi.serve),
    ("POST", "/v1/feedback", feedback),
    ("POST", "/admin/keys", keys_create),
    ("GET", "/admin/keys", keys_list),
    ("GET", "/admin/spend", spend),
    ("GET", "/admin/budgets", budgets_list),
    ("POST", "/admin/budgets", budgets_set),
    ("DELETE", "/admin/budgets", budgets_remove),
]
# (method, prefix, handler) for paths that end in an id.
PREFIX_ROUTES = [
    ("GET", "/v1/models/", model_get),
    ("GET", "/models/", model_get),
    ("GET", "/admin/keys/", keys_get),
    ("PATCH", "/admin/keys/", keys_update),
    ("DELETE", "/admin/keys/", keys_revoke),
    ("GET", "/admin/experiments/", experiment_report),
]
