"""The gateway's HTTP/1.1 connection handling (llmops/gateway/http_protocol.py), seen
from a raw socket against a real `llmops serve`: what any HTTP client relies on."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.support.gateway_proc import run_gateway

CHAT = json.dumps({"model": "demo", "messages": [{"role": "user", "content": "Hello there. How are you?"}]}).encode()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    config = {"models": [{"name": "demo", "deployments": [{"provider": "mock", "model": "demo"}]}]}
    with run_gateway(config, tmp_path_factory.mktemp("http")) as gw:
        yield gw


def _connect(gw) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _post(body: bytes, extra: str = "") -> bytes:
    return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


class Reader:
    """Reads HTTP/1.1 responses off a socket, one at a time."""

    def __init__(self, sock: socket.socket):
        self.sock, self.buf = sock, b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            if not self._fill():
                raise ConnectionError(f"closed before {marker!r}; got {self.buf!r}")
        head, self.buf = self.buf.split(marker, 1)
        return head

    def response(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        lines = self._until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        if head_only or status in (100, 204, 304):
            return status, headers, b""
        if "content-length" in headers:
            size = int(headers["content-length"])
            while len(self.buf) < size:
                if not self._fill():
                    raise ConnectionError("closed mid-body")
            body, self.buf = self.buf[:size], self.buf[size:]
            return status, headers, body
        assert headers.get("transfer-encoding") == "chunked", headers
        body = b""
        while True:
            size = int(self._until(b"\r\n"), 16)
            while len(self.buf) < size + 2:
                self._fill()
            body, self.buf = body + self.buf[:size], self.buf[size + 2:]
            if size == 0:
                return status, headers, body

    def closed(self) -> bool:
        self.sock.settimeout(5)
        return self.buf == b"" and self.sock.recv(1) == b""


def test_keep_alive_serves_many_requests_on_one_connection(gateway):
    with _connect(gateway) as sock:
        reader = Reader(sock)
        for _ in range(3):
            sock.sendall(_post(CHAT))
            status, headers, body = reader.response()
            assert status == 200
            assert headers["content-length"] == str(len(body))  # sized, not chunked
            assert json.loads(body)["object"] == "chat.completion"
            assert headers["x-llmops-request-id"].startswith("req-")


def test_pipelined_requests_are_answered_in_order(gateway):
    with _connect(gateway) as sock:
        # A chat call, then a cheap GET, sent before either is answered.
        sock.sendall(_post(CHAT) + b"GET /health/live HTTP/1.1\r\nHost: gw\r\n\r\n" + _post(CHAT))
        reader = Reader(sock)
        first, second, third = reader.response(), reader.response(), reader.response()
        assert json.loads(first[2])["object"] == "chat.completion"
        assert json.loads(second[2]) == {"status": "ok"}
        assert json.loads(third[2])["object"] == "chat.completion"
        assert first[1]["x-llmops-request-id"] != third[1]["x-llmops-request-id"]


def test_chunked_request_body_and_expect_100_continue(gateway):
    with _connect(gateway) as sock:
        reader = Reader(sock)
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n")
        status, _, _ = reader.response()
        assert status == 100  # the client may now send its body
        half = len(CHAT) // 2
        for piece in (CHAT[:half], CHAT[half:]):
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            time.sleep(0.05)
        sock.sendall(b"0\r\n\r\n")
        status, _, body = reader.response()
        assert status == 200 and json.loads(body)["object"] == "chat.completion"


def test_http_1_0_and_connection_close_end_the_connection(gateway):
    for request in (_post(CHAT).replace(b"HTTP/1.1", b"HTTP/1.0"), _post(CHAT, "Connection: close\r\n")):
        with _connect(gateway) as sock:
            sock.sendall(request)
            reader = Reader(sock)
            status, headers, _ = reader.response()
            assert status == 200 and headers["connection"] == "close"
            assert reader.closed()


def test_head_gets_headers_only(gateway):
    with _connect(gateway) as sock:
        sock.sendall(b"HEAD /health/live HTTP/1.1\r\nHost: gw\r\n\r\nGET /health/live HTTP/1.1\r\nHost: gw\r\n\r\n")
        reader = Reader(sock)
        status, headers, _ = reader.response(head_only=True)
        assert "x-llmops-request-id" in headers
        # Nothing of a body follows the head: the next bytes are the next response.
        status, _, body = reader.response()
        assert status == 200 and json.loads(body) == {"status": "ok"}


def test_malformed_request_gets_400_and_the_connection_closes(gateway):
    with _connect(gateway) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello")
        reader = Reader(sock)
        status, _, body = reader.response()
        assert status == 400 and b"invalid HTTP request" in body
        assert reader.closed()


def test_large_body_is_read_whole(gateway):
    # Past the read high-water mark (64 KiB): reading pauses and resumes as the app reads.
    content = "word " * 60_000
    big = json.dumps({"model": "demo", "messages": [{"role": "user", "content": content}]}).encode()
    with _connect(gateway) as sock:
        sock.sendall(_post(big))
        status, _, body = Reader(sock).response()
        assert status == 200, body[:300]


def test_a_client_that_leaves_does_not_disturb_the_next(gateway):
    with _connect(gateway) as sock:
        sock.sendall(_post(CHAT)[:-10])  # half a request, then gone
    with _connect(gateway) as sock:
        sock.sendall(_post(CHAT))
        status, _, _ = Reader(sock).response()
        assert status == 200


def test_oversized_headers_get_431(gateway):
    with _connect(gateway) as sock:
        padding = "".join(f"X-Pad-{i}: {'a' * 1000}\r\n" for i in range(70))
        sock.sendall(_post(CHAT, padding))
        reader = Reader(sock)
        status, _, body = reader.response()
        assert status == 431 and b"exceed" in body
        assert reader.closed()


def test_several_workers_serve_and_stop_cleanly(tmp_path):
    config = {"models": [{"name": "demo", "deployments": [{"provider": "mock", "model": "demo"}]}]}
    with run_gateway(config, tmp_path, workers=2) as gw:
        for _ in range(6):  # new connections land on either worker
            with _connect(gw) as sock:
                sock.sendall(_post(CHAT))
                status, _, body = Reader(sock).response()
                assert status == 200 and json.loads(body)["object"] == "chat.completion"
        code = gw.stop()
    assert code in (0, -15), gw.log()  # uvicorn re-raises SIGTERM after a clean shutdown
    assert "Traceback" not in gw.log()


def test_requests_before_a_malformed_one_are_still_answered(gateway):
    with _connect(gateway) as sock:
        sock.sendall(_post(CHAT) + b"GARBAGE\r\n\r\n")
        reader = Reader(sock)
        status, _, body = reader.response()
        assert status == 200 and json.loads(body)["object"] == "chat.completion"
        status, _, _ = reader.response()
        assert status == 400
        assert reader.closed()
