"""The gateway, driven by the real OpenAI SDK against a real `llmops serve` process
and a fake upstream that is a real HTTP server (tests/support/fake_upstream.py)."""

from __future__ import annotations

import re
import ssl
import subprocess
import threading
import time

import httpx
import openai
import pytest

from tests.support.fake_upstream import REPLY, FakeUpstream
from tests.support.gateway_proc import free_port, run_gateway
from tests.support.gateway_proc import ledger_row as read_ledger_row


def _model(name: str, upstream: str, base: str, **dep) -> dict:
    return {"name": name, "deployments": [{"provider": "openai", "model": upstream, "api_base": base,
                                           "api_key": "sk-upstream-secret-123", **dep}]}


@pytest.fixture(scope="module")
def upstream():
    fake = FakeUpstream(free_port()).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    base = upstream.base_url
    config = {
        "models": [
            _model("chat", "ok", base, pricing={"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}),
            _model("flaky", "flaky-2", base),
            {**_model("broken", "fail500", base), "fallbacks": ["chat"]},
            _model("limited", "rate429", base),
            _model("reset", "reset-mid-stream", base),
            _model("stall", "stall", base, timeouts={"connect": 1, "first_byte": 0.5, "idle": 0.5, "total": 5}),
            _model("stall-stream", "stall-mid-stream", base,
                   timeouts={"connect": 1, "first_byte": 2, "idle": 0.5, "total": 5}),
            _model("slow", "slow-first-byte", base),
            _model("slow-stream", "slow-stream", base),
            _model("bad", "bad-request", base),
            _model("nousage", "no-usage", base),
            _model("down", "ok", f"http://127.0.0.1:{free_port()}/v1"),
            _model("leaky", "leak-secret", base),
            _model("garbled", "not-an-object", base),
            _model("garbled-stream", "bad-chunk", base),
            {"name": "litellm-stall", "deployments": [{"provider": "litellm", "model": "openai/stall", "api_base": base,
                                                       "api_key": "sk-upstream-secret-123",
                                                       "timeouts": {"connect": 1, "first_byte": 0.5, "idle": 0.5, "total": 5}}]},
            {"name": "litellm-stall-stream", "deployments": [{"provider": "litellm", "model": "openai/stall-mid-stream",
                                                              "api_base": base, "api_key": "sk-upstream-secret-123",
                                                              "timeouts": {"connect": 1, "first_byte": 2, "idle": 0.5,
                                                                           "total": 5}}]},
            {"name": "via-litellm", "deployments": [{"provider": "litellm", "model": "openai/ok", "api_base": base,
                                                     "api_key": "sk-upstream-secret-123"}]},
            {"name": "demo", "deployments": [{"provider": "mock", "model": "demo", "pricing": {"cost": 0}}]},
        ],
        "router": {"retries": 2, "backoff_base": 0.01, "cooldown_failures": 3, "cooldown_seconds": 60},
        "max_body_bytes": 100_000,
    }
    tmp = tmp_path_factory.mktemp("gw")
    with run_gateway(config, tmp) as gw:
        gw.tmp = tmp
        yield gw


@pytest.fixture()
def client(gateway, upstream):
    upstream.reset()
    return openai.OpenAI(base_url=gateway.base_url, api_key="anything", max_retries=0, timeout=20)


def test_chat_reply_and_headers(client):
    raw = client.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], user="alice"
    )
    reply = raw.parse()
    assert reply.choices[0].message.content == REPLY
    assert reply.usage.prompt_tokens == 21 and reply.usage.completion_tokens == 10
    assert raw.headers["x-llmops-request-id"].startswith("req-")
    assert raw.headers["x-llmops-model"] == "chat"
    assert raw.headers["x-llmops-deployment"]
    assert float(raw.headers["x-llmops-overhead-ms"]) >= 0
    assert float(raw.headers["x-llmops-cost"]) == pytest.approx(21e-6 + 20e-6)


def test_stream_passes_chunks_and_drops_usage_unless_asked(client, upstream):
    chunks = list(client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    # The gateway asked the upstream for usage anyway, for its ledger.
    assert upstream.received[-1]["stream_options"] == {"include_usage": True}

    chunks = list(client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True}))
    assert chunks[-1].usage.completion_tokens == len(REPLY.split(" "))


def test_stream_headers_disable_buffering(gateway):
    with httpx.stream("POST", gateway.base_url + "/chat/completions", json={
            "model": "chat", "stream": True, "messages": [{"role": "user", "content": "hi"}]}) as r:
        assert r.headers["x-accel-buffering"] == "no"
        assert r.headers["content-type"].startswith("text/event-stream")
        body = r.read().decode()
    assert body.rstrip().endswith("data: [DONE]")


def test_completions_embeddings_models(client):
    c = client.completions.create(model="chat", prompt="Say something")
    assert c.choices[0].text == REPLY
    e = client.embeddings.create(model="chat", input=["a", "b"])
    assert len(e.data) == 2 and e.data[0].embedding == [0.1, 0.2, 0.3]
    ids = {m.id for m in client.models.list()}
    assert {"chat", "demo", "flaky"} <= ids


def test_demo_model_answers_offline(client):
    r = client.chat.completions.create(model="demo", messages=[
        {"role": "user", "content": "Rates rose 2% in May. Markets fell. Then they recovered. Nobody knows why."}])
    assert r.choices[0].message.content == "Rates rose 2% in May. Markets fell. Then they recovered."
    assert r.usage.prompt_tokens > 0


def test_errors_are_openai_shaped(client, gateway):
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert "nope" in exc.value.message and exc.value.code == "model_not_found"
    assert float(exc.value.response.headers["x-llmops-overhead-ms"]) >= 0
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="chat", messages=[])
    assert exc.value.body["param"] == "messages"
    r = httpx.post(gateway.base_url + "/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = httpx.post(gateway.base_url + "/chat/completions", json={"model": "chat", "messages": [
        {"role": "user", "content": "x" * 200_000}]})
    assert r.status_code == 413 and "limit" in r.json()["error"]["message"]
    # An upstream's own 400 reaches the client with its message, not retried.
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="bad", messages=[{"role": "user", "content": "x"}])
    assert "max_tokens is too large" in exc.value.message


def test_unreachable_upstream_is_502_and_secret_never_leaks(client, gateway):
    started = time.perf_counter()
    with pytest.raises(openai.InternalServerError) as exc:
        client.chat.completions.create(model="down", messages=[{"role": "user", "content": "x"}])
    took_ms = (time.perf_counter() - started) * 1000
    assert exc.value.status_code == 502 and "could not be reached" in exc.value.message
    # A failed call says who failed it and what the gateway itself spent, retries aside.
    headers = exc.value.response.headers
    assert headers["x-llmops-request-id"].startswith("req-")
    assert headers["x-llmops-deployment"] == "down/openai/0"
    assert 0 <= float(headers["x-llmops-overhead-ms"]) < took_ms
    assert "sk-upstream-secret" not in str(exc.value.body)
    assert "sk-upstream-secret" not in gateway.log()


def test_client_cannot_redirect_upstream(client, upstream):
    r = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}],
        extra_body={"api_base": "http://169.254.169.254/v1", "base_url": "http://evil.example/v1", "top_k": 5})
    assert r.choices[0].message.content == REPLY
    sent = upstream.received[-1]
    assert "api_base" not in sent and "base_url" not in sent
    assert sent["top_k"] == 5  # provider-specific fields still pass through


def test_retries_then_success(client, gateway, upstream):
    raw = client.chat.completions.with_raw_response.create(model="flaky", messages=[{"role": "user", "content": "x"}])
    assert raw.parse().choices[0].message.content == REPLY
    assert upstream.calls["flaky-2"] == 3
    metrics = httpx.get(gateway.url + "/metrics").text
    assert 'llmops_upstream_retries_total{model="flaky"} 2' in metrics  # the two extra attempts


def test_retry_after_is_honoured(client, upstream):
    t = time.monotonic()
    r = client.chat.completions.create(model="limited", messages=[{"role": "user", "content": "x"}])
    assert r.choices[0].message.content == REPLY
    assert time.monotonic() - t >= 0.95
    assert upstream.calls["rate429"] == 2


def test_fallback_to_another_model(client, upstream):
    raw = client.chat.completions.with_raw_response.create(model="broken", messages=[{"role": "user", "content": "x"}])
    assert raw.parse().choices[0].message.content == REPLY
    assert raw.headers["x-llmops-model"] == "chat"
    assert upstream.calls["fail500"] == 3  # first try and two retries, then the fallback


def test_failing_deployment_cools_down(client, gateway, upstream):
    # "broken" already failed 3 times in a row above (module scope): it now rests, so
    # calls go straight to the fallback without touching the failing upstream.
    client.chat.completions.create(model="broken", messages=[{"role": "user", "content": "x"}])
    assert upstream.calls["fail500"] == 0
    metrics = httpx.get(gateway.url + "/metrics").text
    assert 'llmops_deployment_available{model="broken",deployment="broken/openai/0"} 0.0' in metrics


def test_upstream_reset_mid_stream_is_an_error_event(client):
    stream = client.chat.completions.create(model="reset", messages=[{"role": "user", "content": "x"}], stream=True)
    seen = []
    with pytest.raises(openai.APIError) as exc:
        for chunk in stream:
            seen.append(chunk)
    assert "closed the stream" in str(exc.value) or "broke off" in str(exc.value)
    assert seen and all(c.choices[0].finish_reason is None for c in seen)


def test_timeouts(client):
    t = time.monotonic()
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="stall", messages=[{"role": "user", "content": "x"}])
    assert exc.value.status_code == 504
    assert time.monotonic() - t < 10
    stream = client.chat.completions.create(model="stall-stream", messages=[{"role": "user", "content": "x"}], stream=True)
    with pytest.raises(openai.APIError) as exc:
        for _ in stream:
            pass
    assert "stalled" in str(exc.value)
    r = client.chat.completions.create(model="slow", messages=[{"role": "user", "content": "x"}])
    assert r.choices[0].message.content == REPLY


def test_client_disconnect_cancels_upstream(gateway, upstream):
    upstream.reset()
    with httpx.stream("POST", gateway.base_url + "/chat/completions", json={
            "model": "slow-stream", "stream": True, "messages": [{"role": "user", "content": "x"}]}) as r:
        for _ in r.iter_bytes():
            break  # read the first chunk, then hang up
    assert upstream.stream_cancelled.wait(5), "the upstream stream was not cut when the client left"


def ledger_row(gateway, request_id: str) -> dict:
    return read_ledger_row(gateway.tmp / "llmops.db", request_id)


def test_usage_estimated_when_upstream_reports_none(client, gateway):
    raw = client.chat.completions.with_raw_response.create(model="nousage", messages=[{"role": "user", "content": "hi"}])
    assert raw.parse().usage is None
    row = ledger_row(gateway, raw.headers["x-llmops-request-id"])
    assert row["usage_source"] == "estimated" and row["input_tokens"] > 0 and row["output_tokens"] > 0


def test_a_garbled_upstream_reply_is_an_upstream_error_not_a_success(client, gateway):
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="garbled", messages=[{"role": "user", "content": "x"}])
    assert exc.value.status_code == 502 and "not a JSON object" in exc.value.message
    row = ledger_row(gateway, exc.value.response.headers["x-llmops-request-id"])
    assert (row["status"], row["outcome"]) == (502, "upstream_error")

    stream = client.chat.completions.with_raw_response.create(
        model="garbled-stream", messages=[{"role": "user", "content": "x"}], stream=True
    )
    seen = []
    with pytest.raises(openai.APIError) as exc:
        for chunk in stream.parse():
            seen.append(chunk.choices[0].delta.content)
    assert "not JSON" in str(exc.value)
    assert len(seen) == 2  # the chunks before the bad one arrived (their text may sit in the output guard)
    row = ledger_row(gateway, stream.headers["x-llmops-request-id"])
    assert row["outcome"] == "upstream_error" and row["streamed"]


def test_concurrent_calls(gateway):
    errors = []

    def worker():
        c = openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0)
        for _ in range(10):
            try:
                c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
            except Exception as exc:  # collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_health_and_metrics(gateway, client):
    client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model="down", messages=[{"role": "user", "content": "hi"}])
    assert httpx.get(gateway.url + "/health/live").json() == {"status": "ok"}
    ready = httpx.get(gateway.url + "/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    metrics = httpx.get(gateway.url + "/metrics").text
    for name in ("llmops_requests_total", "llmops_request_duration_seconds_bucket",
                 "llmops_upstream_duration_seconds_bucket", "llmops_tokens_total", "llmops_cost_usd_total"):
        assert name in metrics
    # By model and deployment; the unreachable `down` failed after the router's 2 retries.
    assert 'llmops_tokens_total{model="chat",deployment="chat/openai/0",direction="input"}' in metrics
    assert 'llmops_errors_total{model="down",deployment="down/openai/0",type="upstream_error"}' in metrics
    retries = re.search(r'llmops_upstream_retries_total\{model="down"\} (\d+)', metrics)
    assert retries and int(retries.group(1)) % 2 == 0 and int(retries.group(1)) >= 2


def test_every_response_carries_a_request_id(gateway, client):
    """Health, metrics, models, admin and unknown routes too: an operator can quote it.
    They carry the gateway's time as overhead too (no model or deployment applies)."""
    ids = set()
    for method, path in (("GET", "/health/live"), ("GET", "/health/ready"), ("GET", "/metrics"),
                         ("GET", "/v1/models"), ("GET", "/no/such/route"), ("DELETE", "/v1/chat/completions")):
        response = httpx.request(method, gateway.url + path)
        request_id = response.headers.get("x-llmops-request-id", "")
        assert request_id.startswith("req-"), (method, path, response.status_code)
        assert float(response.headers["x-llmops-overhead-ms"]) >= 0, (method, path)
        ids.add(request_id)
    assert len(ids) == 6


def test_secret_in_reply_is_redacted_even_split_across_chunks(client):
    from tests.support.fake_upstream import SECRET

    r = client.chat.completions.create(model="leaky", messages=[{"role": "user", "content": "x"}])
    assert SECRET not in r.choices[0].message.content and "the key is" in r.choices[0].message.content
    chunks = list(client.chat.completions.create(model="leaky", messages=[{"role": "user", "content": "x"}],
                                                 stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert SECRET not in text
    assert text.startswith("Sure, the key is ") and text.endswith(" and that is all.")


def test_litellm_deployments_keep_the_first_byte_and_idle_timeouts(client):
    t = time.monotonic()
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="litellm-stall", messages=[{"role": "user", "content": "x"}])
    assert exc.value.status_code == 504 and time.monotonic() - t < 5
    stream = client.chat.completions.create(model="litellm-stall-stream", messages=[{"role": "user", "content": "x"}],
                                            stream=True)
    t = time.monotonic()
    with pytest.raises(openai.APIError) as exc:
        for _ in stream:
            pass
    assert "stalled" in str(exc.value) and time.monotonic() - t < 5


def test_litellm_provider_translates_to_an_openai_compatible_upstream(client, upstream):
    r = client.chat.completions.create(model="via-litellm", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == REPLY
    assert upstream.received[-1]["model"] == "ok"
    chunks = list(client.chat.completions.create(model="via-litellm", messages=[{"role": "user", "content": "hi"}],
                                                 stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY


def test_weights_and_vllm_load_pick_the_deployment(tmp_path):
    a, b = FakeUpstream(free_port()).start(), FakeUpstream(free_port()).start()
    try:
        config = {"models": [
            {"name": "weighted", "deployments": [
                {"provider": "openai", "model": "ok", "api_base": a.base_url, "weight": 3},
                {"provider": "openai", "model": "ok", "api_base": b.base_url, "weight": 1}]},
            {"name": "replicas", "deployments": [
                {"provider": "vllm", "model": "ok", "api_base": a.base_url},
                {"provider": "vllm", "model": "ok", "api_base": b.base_url}]},
        ], "router": {"vllm_metrics_interval": 0.2}}
        a.load, b.load = 7, 0  # replica a is busy, by its own /metrics
        with run_gateway(config, tmp_path) as gw:
            c = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
            time.sleep(0.6)  # a couple of metrics polls
            for _ in range(400):
                c.chat.completions.create(model="weighted", messages=[{"role": "user", "content": "x"}])
            share_a = a.calls["ok"] / 400
            assert 0.68 <= share_a <= 0.82, share_a
            a.reset(), b.reset()
            for _ in range(30):
                c.chat.completions.create(model="replicas", messages=[{"role": "user", "content": "x"}])
            assert (a.calls["ok"], b.calls["ok"]) == (0, 30)
    finally:
        a.stop(), b.stop()


def test_ready_counts_a_vllm_server_that_does_not_answer_as_unhealthy(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    config = {"models": [{"name": "local", "deployments": [{"provider": "vllm", "model": "m", "api_base": dead}]}],
              "router": {"vllm_metrics_interval": 0.2}}
    with run_gateway(config, tmp_path) as gw:
        time.sleep(0.5)  # a poll or two of vLLM's /metrics
        ready = httpx.get(gw.url + "/health/ready")
        assert ready.status_code == 503 and ready.json()["deployments"] == {"local/vllm/0": False}
    config["models"].append({"name": "demo", "deployments": [{"provider": "mock", "model": "demo"}]})
    with run_gateway(config, tmp_path) as gw:
        time.sleep(0.5)
        ready = httpx.get(gw.url + "/health/ready")
        assert ready.status_code == 200 and ready.json()["checks"]["healthy_deployments"] == 1


def test_a_failing_deployment_rests_then_gets_a_single_probe(upstream, tmp_path):
    """After `cooldown_failures` failures in a row a deployment takes no calls; when its
    rest is over, one call probes it while the others keep going elsewhere."""
    base = upstream.base_url
    config = {
        "models": [{"name": "recovering", "deployments": [
            {"provider": "openai", "model": "fail500", "api_base": base, "api_key": "k", "weight": 1000},
            {"provider": "openai", "model": "ok", "api_base": base, "api_key": "k", "weight": 1}]}],
        "router": {"retries": 1, "backoff_base": 0.001, "cooldown_failures": 2, "cooldown_seconds": 1},
    }
    upstream.reset()
    with run_gateway(config, tmp_path) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0, timeout=20)

        def ask() -> str:
            return client.chat.completions.create(
                model="recovering", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content

        assert [ask() for _ in range(6)] == [REPLY] * 6  # each failure was retried on the healthy one
        assert upstream.calls["fail500"] == 2  # then it rested
        available = 'llmops_deployment_available{model="recovering",deployment="recovering/openai/0"} 0'
        assert available in httpx.get(gw.url + "/metrics").text

        time.sleep(1.2)
        replies: list[str] = []
        threads = [threading.Thread(target=lambda: replies.append(ask())) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert replies == [REPLY] * 8
        assert upstream.calls["fail500"] == 3  # one probe, which failed: it rests again
        assert [ask() for _ in range(3)] == [REPLY] * 3 and upstream.calls["fail500"] == 3


def test_https_upstream_goes_through_aiohttp_with_tls(tmp_path):
    """Hosted APIs are https: the gateway's aiohttp session carries those calls (TLS
    verified against the CA bundle the operator names, here a self-signed certificate)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    tls = FakeUpstream(free_port(), ssl_context=context).start()
    try:
        assert tls.base_url.startswith("https://")
        config = {"models": [_model("hosted", "ok", tls.base_url)]}
        with run_gateway(config, tmp_path, env={"SSL_CERT_FILE": str(cert)}) as gw:
            client = openai.OpenAI(base_url=gw.base_url, api_key="anything", max_retries=0, timeout=20)
            reply = client.chat.completions.create(model="hosted", messages=[{"role": "user", "content": "hi"}])
            assert reply.choices[0].message.content == REPLY
            stream = client.chat.completions.create(model="hosted", messages=[{"role": "user", "content": "hi"}],
                                                    stream=True)
            assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == REPLY
            assert tls.received and tls.received[-1]["stream"] is True
        # Without the CA, the certificate is refused: a 502, not a silent downgrade.
        with run_gateway(config, tmp_path) as gw:
            client = openai.OpenAI(base_url=gw.base_url, api_key="anything", max_retries=0, timeout=20)
            with pytest.raises(openai.InternalServerError):
                client.chat.completions.create(model="hosted", messages=[{"role": "user", "content": "hi"}])
    finally:
        tls.stop()
