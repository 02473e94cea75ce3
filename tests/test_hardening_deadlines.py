"""Deadlines (issue 19): `timeouts.total` bounds a whole request, retries included; slow
clients cannot hold a connection open by trickling a request's head or body; a template
cannot render past the body limit or for long. Real `llmops serve` processes."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_proc import free_port, run_gateway

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def upstream():
    fake = FakeUpstream(free_port()).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    from llmops.registry.service import Registry

    tmp = tmp_path_factory.mktemp("deadlines")
    registry = Registry(f"sqlite:///{tmp}/llmops.db")
    registry.create_version("huge", template="{% for i in range(100000) %}{{ chunk }}{% endfor %}",
                            labels=["production"])
    registry.create_version("busy", template="{% for i in range(100000) %}{% for j in range(100000) %}"
                                             "{% endfor %}{% endfor %}done", labels=["production"])
    dep = {"provider": "openai", "api_base": upstream.base_url, "api_key": "k"}
    config = {
        "models": [
            {"name": "stall", "deployments": [{**dep, "model": "stall", "name": "a"},
                                              {**dep, "model": "stall", "name": "b"}]},
            {"name": "plain", "deployments": [{**dep, "model": "ok"}]},
        ],
        "timeouts": {"total": 1.5, "first_byte": 60, "idle": 60, "connect": 5},
        "router": {"retries": 2, "backoff_base": 0.01, "cooldown_failures": 100},
        "guardrails": {"input": [], "output": []},
    }
    env = {"LLMOPS_HEAD_TIMEOUT": "1", "LLMOPS_BODY_TIMEOUT": "2"}
    with run_gateway(config, tmp, env=env) as gw:
        yield gw


@pytest.mark.parametrize("stream", [False, True])
def test_total_timeout_bounds_the_request_across_retries(gateway, upstream, stream):
    upstream.reset()
    start = time.monotonic()
    r = httpx.post(gateway.base_url + "/chat/completions", json={"model": "stall", "messages": MSG, "stream": stream},
                   timeout=30)
    took = time.monotonic() - start
    assert r.status_code == 504, r.text
    assert took < 2.5, took  # one total (1.5 s), not one per attempt (3 x 1.5 s)


def _slow_client(port: int, head: bytes, trickle: bytes, seconds: float) -> tuple[bool, bytes]:
    """Send `head`, then one byte of `trickle` every 0.3 s: whether the gateway closed the
    connection within `seconds`, and what it said."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head)
        sock.settimeout(0.3)
        got = b""
        deadline = time.monotonic() + seconds
        i = 0
        while time.monotonic() < deadline:
            try:
                data = sock.recv(4096)
                if not data:
                    return True, got
                got += data
            except TimeoutError:
                pass
            except ConnectionResetError:
                return True, got
            try:
                sock.sendall(trickle[i % len(trickle):i % len(trickle) + 1] or b"x")
            except (BrokenPipeError, ConnectionResetError):
                return True, got
            i += 1
        return False, got


def test_clients_trickling_their_headers_or_body_are_cut_off(gateway):
    from concurrent.futures import ThreadPoolExecutor

    body_head = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                 b"content-length: 100000\r\n\r\n")
    start = time.monotonic()
    with ThreadPoolExecutor(2) as pool:  # at once: each waits for the keep-alive timer
        head = pool.submit(_slow_client, gateway.port, b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n",
                           b"x-slow-header-abcdefghijklmnopqrstuvwxyz: 1\r\n", 12)
        body = pool.submit(_slow_client, gateway.port, body_head, b'{"model": "plain"', 14)
        (head_closed, said), (body_closed, _) = head.result(), body.result()
    assert head_closed and said.startswith(b"HTTP/1.1 408"), said
    assert body_closed and time.monotonic() - start < 10


def test_a_template_cannot_render_past_the_body_limit(gateway):
    start = time.monotonic()
    r = httpx.post(gateway.base_url + "/chat/completions", timeout=30, json={
        "model": "plain", "prompt": {"name": "huge", "variables": {"chunk": "x" * 200}}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "template_error", r.text
    assert "characters" in r.json()["error"]["message"]
    assert time.monotonic() - start < 3


def test_a_template_cannot_render_for_long(gateway):
    start = time.monotonic()
    r = httpx.post(gateway.base_url + "/chat/completions", timeout=60, json={
        "model": "plain", "prompt": {"name": "busy", "variables": {}}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "template_error", r.text
    assert time.monotonic() - start < 5
    assert httpx.post(gateway.base_url + "/chat/completions", json={"model": "plain", "messages": MSG},
                      timeout=10).status_code == 200
