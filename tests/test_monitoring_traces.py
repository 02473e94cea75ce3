"""OpenTelemetry export: each gateway call reaches a real OTLP/HTTP receiver (an HTTP
server here that decodes the protobuf, as a collector does) as a SERVER span with the
GenAI attributes and the upstream call as its CLIENT child; failures carry error status."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import openai
import pytest

pytest.importorskip("opentelemetry.proto", reason="opentelemetry-proto (the dev extra) decodes the export")
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

from tests.support.gateway_proc import run_gateway  # noqa: E402


class _Receiver(BaseHTTPRequestHandler):
    spans: list = []
    services: set = set()

    def do_POST(self):  # noqa: N802
        assert self.path == "/v1/traces" and self.headers["content-type"] == "application/x-protobuf"
        assert self.headers["authorization"] == "Bearer collector-token"
        request = ExportTraceServiceRequest.FromString(self.rfile.read(int(self.headers["content-length"])))
        for resource in request.resource_spans:
            for attr in resource.resource.attributes:
                if attr.key == "service.name":
                    type(self).services.add(attr.value.string_value)
            for scope in resource.scope_spans:
                type(self).spans.extend(scope.spans)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args):
        pass


def _attrs(span) -> dict:
    out = {}
    for a in span.attributes:
        v = a.value
        if v.WhichOneof("value") == "array_value":
            out[a.key] = [item.string_value for item in v.array_value.values]
            continue
        out[a.key] = {"string_value": v.string_value, "int_value": v.int_value, "double_value": v.double_value,
                      "bool_value": v.bool_value}[v.WhichOneof("value")]
    return out


def test_calls_reach_an_otlp_receiver_as_genai_spans(tmp_path):
    _Receiver.spans, _Receiver.services = [], set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = {
        "models": [{"name": "demo", "deployments": [
            {"provider": "mock", "model": "demo-upstream", "pricing": {"input_cost_per_token": 1e-6,
                                                                       "output_cost_per_token": 2e-6}}]},
            {"name": "broken", "deployments": [{"provider": "openai", "model": "gone",
                                                "api_base": "http://127.0.0.1:9/v1", "api_key": "x"}]}],
        "router": {"retries": 0},
        "guardrails": {"enabled": False, "input": [], "output": []},  # not what this test is about
        "monitoring": {"traces": {"enabled": True, "endpoint": f"http://127.0.0.1:{server.server_address[1]}/v1/traces",
                                  "headers": {"authorization": "Bearer collector-token"}, "flush_interval": 0.2,
                                  "service_name": "gw-test"}},
    }
    try:
        with run_gateway(config, tmp_path) as gw:
            client = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
            whole = client.chat.completions.with_raw_response.create(
                model="demo", messages=[{"role": "user", "content": "Tell me about foxes. They are quick."}])
            with client.chat.completions.with_streaming_response.create(
                    model="demo", messages=[{"role": "user", "content": "Stream this. Please."}], stream=True,
                    stream_options={"include_usage": True}) as streamed:
                list(streamed.iter_lines())
            failed = httpx.post(gw.base_url + "/chat/completions", timeout=30,
                                json={"model": "broken", "messages": [{"role": "user", "content": "hi"}]})
            assert failed.status_code >= 500
            ids = [whole.headers["x-llmops-request-id"], streamed.headers["x-llmops-request-id"],
                   failed.headers["x-llmops-request-id"]]
            deadline = time.monotonic() + 15
            while len(_Receiver.spans) < 6 and time.monotonic() < deadline:
                time.sleep(0.1)
    finally:
        server.shutdown()
        server.server_close()

    assert _Receiver.services == {"gw-test"}
    roots = {_attrs(s)["llmops.request_id"]: s for s in _Receiver.spans if s.kind == s.SPAN_KIND_SERVER}
    children = {s.parent_span_id: s for s in _Receiver.spans if s.kind == s.SPAN_KIND_CLIENT}
    assert set(roots) == set(ids)
    for rid in ids[:2]:
        root = roots[rid]
        a = _attrs(root)
        assert root.name == "chat demo"
        assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.model"] == "demo"
        assert a["gen_ai.response.model"] == "demo-upstream" and a["gen_ai.system"] == "mock"
        assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
        assert a["llmops.cost_usd"] > 0 and a["http.response.status_code"] == 200
        assert a["gen_ai.response.finish_reasons"] == ["stop"]
        assert root.status.code != root.status.STATUS_CODE_ERROR
        child = children[root.span_id]
        assert child.trace_id == root.trace_id and child.name == "chat demo-upstream"
        assert root.start_time_unix_nano <= child.start_time_unix_nano <= child.end_time_unix_nano
        assert child.end_time_unix_nano <= root.end_time_unix_nano
        assert abs(root.start_time_unix_nano / 1e9 - time.time()) < 120
    assert _attrs(roots[ids[1]])["llmops.streamed"] is True
    bad = roots[ids[2]]
    assert bad.status.code == bad.status.STATUS_CODE_ERROR and _attrs(bad)["error.type"]
    assert _attrs(bad)["gen_ai.request.model"] == "broken"
