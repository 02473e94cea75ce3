"""Who may call what, through a running gateway, in every auth mode.

The authorization matrix is generated from the gateway's route table: every route ×
identity (none, wrong, virtual, virtual of another team, master) × mode (open,
`auth: keys`, master key set) gets the status written below, in OpenAI's error shape.
A route added to the gateway without an entry here fails the test.

Then the master key as an operator uses it: the OpenAI SDK on every endpoint, whole and
streamed, with ledger rows that say who called.
"""

from __future__ import annotations

import sqlite3
import time

import httpx
import openai
import pytest

from llmops.gateway.app import PREFIX_ROUTES, ROUTES
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_proc import free_port, run_gateway

MASTER = "sk-master-access-0123456789abcdef"
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "Hello there."}], "max_tokens": 8}
RESPONSES = {"model": "chat", "input": "Hello there.", "max_output_tokens": 16}
COUNT = {"model": "chat", "messages": [{"role": "user", "content": "Hello there."}]}

# (method, path) -> (kind, JSON body, status once authorized). For a prefix route the
# path is the prefix; the test appends the id of a key made for the purpose.
# Kinds: "public" answers anyone; "caller" answers whoever authenticates (anyone while
# the gateway is open); "admin" answers the master key only.
EXPECTED: dict[tuple[str, str], tuple[str, dict | None, int]] = {
    ("POST", "/v1/chat/completions"): ("caller", CHAT, 200),
    ("POST", "/chat/completions"): ("caller", CHAT, 200),
    ("POST", "/v1/completions"): ("caller", {"model": "chat", "prompt": "Hi", "max_tokens": 8}, 200),
    ("POST", "/completions"): ("caller", {"model": "chat", "prompt": "Hi", "max_tokens": 8}, 200),
    ("POST", "/v1/embeddings"): ("caller", {"model": "chat", "input": "Hi"}, 200),
    ("POST", "/embeddings"): ("caller", {"model": "chat", "input": "Hi"}, 200),
    ("POST", "/v1/responses"): ("caller", RESPONSES, 200),
    ("POST", "/responses"): ("caller", RESPONSES, 200),
    ("POST", "/v1/messages"): ("caller", CHAT, 200),
    ("POST", "/messages"): ("caller", CHAT, 200),
    ("POST", "/v1/messages/count_tokens"): ("caller", COUNT, 200),
    ("POST", "/messages/count_tokens"): ("caller", COUNT, 200),
    ("GET", "/v1/models"): ("caller", None, 200),
    ("GET", "/models"): ("caller", None, 200),
    ("GET", "/v1/models/"): ("caller", None, 200),
    ("GET", "/models/"): ("caller", None, 200),
    # An id the ledger never had: authorized callers get past auth to a 404.
    ("POST", "/v1/feedback"): ("caller", {"request_id": "req-never-made", "score": 1}, 404),
    ("GET", "/health/live"): ("public", None, 200),
    ("GET", "/health/ready"): ("public", None, 200),
    ("GET", "/metrics"): ("public", None, 200),
    ("GET", "/openapi.json"): ("public", None, 200),
    ("POST", "/admin/keys"): ("admin", {"name": "made-by-matrix"}, 200),
    ("GET", "/admin/keys"): ("admin", None, 200),
    ("GET", "/admin/spend"): ("admin", None, 200),
    ("GET", "/admin/budgets"): ("admin", None, 200),
    ("POST", "/admin/budgets"): ("admin", {"team": "matrix", "budget": 5}, 200),
    ("DELETE", "/admin/budgets"): ("admin", {"team": "matrix"}, 200),
    ("GET", "/admin/keys/"): ("admin", None, 200),
    ("PATCH", "/admin/keys/"): ("admin", {"rpm": 100}, 200),
    ("DELETE", "/admin/keys/"): ("admin", None, 200),
    # No experiment of that name: the master key gets past auth to a 404.
    ("GET", "/admin/experiments/"): ("admin", None, 404),
}
# Routes about one model: a key that may not call it gets 403 there.
MODEL_ROUTES = {path for (_, path), (_, body, _) in EXPECTED.items() if body and "model" in body} | {
    "/v1/models/", "/models/"
}
IDENTITIES = ("none", "wrong", "virtual", "other_team", "master")
MODES = ("open", "keys", "master")


def _route_table() -> list[tuple[str, str]]:
    return list(ROUTES) + [(method, prefix) for method, prefix, _ in PREFIX_ROUTES]


def test_every_route_has_an_entry_in_the_matrix():
    routes = set(_route_table())
    assert routes - set(EXPECTED) == set(), "a route without an expected status per identity: add it to EXPECTED"
    assert set(EXPECTED) - routes == set(), "EXPECTED names a route the gateway no longer has"


def expected_status(mode: str, identity: str, method: str, path: str) -> int:
    kind, _, ok = EXPECTED[(method, path)]
    is_master = identity == "master" and mode == "master"  # elsewhere that token is just a wrong key
    keys_required = mode in ("keys", "master")
    known = identity in ("virtual", "other_team") or is_master
    if kind == "public":
        return ok
    if keys_required and not known:
        return 401
    if kind == "admin":
        return ok if is_master else 403
    if identity == "other_team" and path in MODEL_ROUTES:
        return 403  # its key may not call the model
    return ok


def _config(base: str, mode: str) -> dict:
    config = {
        "models": [{"name": "chat", "deployments": [{"provider": "openai", "model": "ok", "api_base": base}]}],
        "router": {"retries": 0},
    }
    if mode == "keys":
        config["auth"] = "keys"
    return config


def _make_keys(database_url: str) -> dict[str, str]:
    """Keys straight in the database, as `llmops keys create` makes them in every mode."""
    from llmops.governance import KeyStore

    store = KeyStore(database_url, master_key="")
    tokens = {
        "virtual": store.create("team-a", models=["chat"], team="a")[0],
        "other_team": store.create("team-b", models=["other-model"], team="b")[0],
    }
    tokens["target_id"] = store.create("target", team="a")[1].id
    return tokens


@pytest.fixture(scope="module")
def upstream():
    fake = FakeUpstream(free_port()).start()
    yield fake
    fake.stop()


@pytest.mark.parametrize("mode", MODES)
def test_authorization_matrix(upstream, tmp_path, mode):
    database_url = f"sqlite:///{tmp_path}/llmops.db"
    tokens = _make_keys(database_url)
    tokens.update(none="", wrong="sk-llmops-wrong-0000000000000000000000000000000000", master=MASTER)
    env = {"LLMOPS_MASTER_KEY": MASTER} if mode == "master" else {"LLMOPS_MASTER_KEY": ""}
    failures = []
    with run_gateway(_config(upstream.base_url, mode), tmp_path, env=env) as gw, httpx.Client(timeout=10) as http:
        for method, path in _route_table():
            _, body, _ = EXPECTED[(method, path)]
            target = "chat" if path.endswith("/models/") else tokens["target_id"]
            url = gw.url + path + (target if path.endswith("/") else "")
            for identity in IDENTITIES:
                headers = {"Authorization": f"Bearer {tokens[identity]}"} if tokens[identity] else {}
                r = http.request(method, url, json=body, headers=headers)
                want = expected_status(mode, identity, method, path)
                if r.status_code != want:
                    failures.append(f"{mode} {identity:10s} {method} {path}: {r.status_code}, expected {want}: {r.text[:200]}")
                elif r.status_code in (401, 403) and "/messages" in path:
                    answer = r.json()  # Anthropic's shape on Anthropic's routes
                    assert answer["type"] == "error"
                    assert answer["error"]["type"] in ("authentication_error", "permission_error")
                elif r.status_code in (401, 403):
                    error = r.json()["error"]
                    assert set(error) == {"message", "type", "param", "code"} and error["message"]
                    assert tokens[identity] not in r.text or not tokens[identity]
                    if path.startswith("/admin") and mode != "master":
                        if r.status_code == 403:
                            assert error["code"] == "master_key_required" and "LLMOPS_MASTER_KEY" in error["message"]
    assert not failures, "\n".join(failures)


def test_revoked_and_expired_keys_get_their_own_codes(upstream, tmp_path):
    from llmops.governance import KeyStore

    database_url = f"sqlite:///{tmp_path}/llmops.db"
    store = KeyStore(database_url, master_key="")
    revoked, revoked_info = store.create("gone")
    store.revoke(revoked_info.id)
    with run_gateway(_config(upstream.base_url, "open"), tmp_path, env={"LLMOPS_MASTER_KEY": MASTER}) as gw:
        # Made once the gateway is up, so a slow start cannot use up the key's life before
        # its first call; the wait is measured from the expiry the store gave it.
        expiring, expiring_info = store.create("soon", expires="3s")
        client = openai.OpenAI(base_url=gw.base_url, api_key=expiring, max_retries=0)
        assert client.chat.completions.create(**CHAT).choices[0].message.content
        assert expiring_info.expires_at is not None
        time.sleep(max(0.0, expiring_info.expires_at.timestamp() - time.time()) + 0.1)
        with pytest.raises(openai.AuthenticationError) as expired:
            client.chat.completions.create(**CHAT)
        assert expired.value.code == "expired_api_key"
        with pytest.raises(openai.AuthenticationError) as gone:
            openai.OpenAI(base_url=gw.base_url, api_key=revoked, max_retries=0).chat.completions.create(**CHAT)
        assert gone.value.code == "revoked_api_key" and revoked not in str(gone.value.body)


def test_the_master_key_calls_every_endpoint_with_the_openai_sdk(upstream, tmp_path):
    config = _config(upstream.base_url, "master")
    # The fake upstream streams chat only; the built-in mock streams completions too.
    config["models"].append({"name": "demo", "deployments": [{"provider": "mock", "model": "demo"}]})
    with run_gateway(config, tmp_path, env={"LLMOPS_MASTER_KEY": MASTER}) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0)
        chat = client.chat.completions.with_raw_response.create(**CHAT)
        assert chat.status_code == 200 and chat.parse().choices[0].message.content
        stream = client.chat.completions.create(**CHAT, stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert chunks[-1].usage is not None
        completion = client.completions.create(model="chat", prompt="Hi", max_tokens=8)
        assert completion.choices[0].text
        streamed = list(client.completions.create(model="demo", prompt="Hi there.", max_tokens=8, stream=True))
        assert streamed
        embedding = client.embeddings.create(model="chat", input=["a", "b"])
        assert len(embedding.data) == 2
        assert [m.id for m in client.models.list()] == ["chat", "demo"]
        assert client.models.retrieve("demo").id == "demo"
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("no-such-model")
        request_id = chat.headers["x-llmops-request-id"]
    with sqlite3.connect(tmp_path / "llmops.db") as db:
        rows = db.execute("SELECT key_id, key_name, status FROM ledger").fetchall()
        assert len(rows) == 5 and set(rows) == {("master", "master", 200)}
        assert db.execute("SELECT count(*) FROM ledger WHERE id = ?", (request_id,)).fetchone() == (1,)
    spend = _spend_by_key(f"sqlite:///{tmp_path}/llmops.db")
    assert spend.get("master", {}).get("requests") == 5


def _spend_by_key(database_url: str) -> dict[str, dict]:
    from llmops.governance.spend import spend_report

    return {row["group"]: row for row in spend_report(database_url, by="key")}
