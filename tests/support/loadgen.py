"""A small HTTP/1.1 load generator: N keep-alive connections, each sending one request
after another for a fixed time (or a fixed count), on raw asyncio streams so that the
client costs less CPU than the server it measures.

    python -m tests.support.loadgen http://127.0.0.1:4000/v1/chat/completions \
        --connections 256 --seconds 6 --key sk-llmops-... [--json]

Every response is read whole (Content-Length or chunked). A status is counted by
code; a connection that fails (refused, reset, closed mid-response, timed out) counts
as an error and is reopened. `errors` is what a client would see as a failed call:
non-2xx statuses plus connection errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

CHAT_BODY = {"model": "demo", "messages": [{"role": "user", "content": "Hello there."}], "max_tokens": 8}


@dataclass
class LoadResult:
    connections: int
    seconds: float
    statuses: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)  # connection-level, by exception type
    latencies: list[float] = field(default_factory=list)

    @property
    def completed(self) -> int:
        return sum(self.statuses.values())

    @property
    def ok(self) -> int:
        return sum(n for s, n in self.statuses.items() if 200 <= s < 300)

    @property
    def errors(self) -> int:
        return self.completed - self.ok + sum(self.failures.values())

    @property
    def rps(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict:
        return {
            "connections": self.connections, "seconds": round(self.seconds, 2), "requests": self.completed,
            "ok": self.ok, "errors": self.errors, "rps": round(self.rps, 1),
            "p50_ms": round(self.percentile(0.5) * 1000, 1), "p99_ms": round(self.percentile(0.99) * 1000, 1),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "failures": dict(self.failures),
        }

    def line(self) -> str:
        s = self.summary()
        return (f"{s['connections']:>5} connections: {s['requests']:>6} requests in {s['seconds']} s = "
                f"{s['rps']:>7.1f} req/s, errors {s['errors']}, p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, "
                f"statuses {s['statuses']}, failures {s['failures']}")


def build_request(url: str, body: dict, key: str | None) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    payload = json.dumps(body).encode()
    head = [f"POST {parts.path} HTTP/1.1", f"host: {parts.hostname}:{parts.port}",
            "content-type: application/json", f"content-length: {len(payload)}"]
    if key:
        head.append(f"authorization: Bearer {key}")
    return parts.hostname or "127.0.0.1", parts.port or 80, ("\r\n".join(head) + "\r\n\r\n").encode() + payload


async def _read_response(reader: asyncio.StreamReader) -> int:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionResetError("closed before a response")
    status = int(status_line.split(b" ", 2)[1])
    length, chunked, close = None, False, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            close = True
    if chunked:
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    if close:
        raise _Closed(status)
    return status


class _Closed(Exception):
    """The server answered and asked to close: the answer counts, the connection is reopened."""

    def __init__(self, status: int):
        self.status = status


async def run_load(
    url: str, *, connections: int, seconds: float | None = None, requests: int | None = None,
    body: dict | None = None, key: str | None = None, timeout: float = 30.0,
) -> LoadResult:
    """Drive `url` with `connections` keep-alive connections for `seconds` (or until
    `requests` responses in all). Returns the counts and latencies."""
    host, port, request = build_request(url, body or CHAT_BODY, key)
    result = LoadResult(connections, 0.0)
    started = time.perf_counter()
    stop_at = started + seconds if seconds else float("inf")
    budget = [requests if requests is not None else -1]

    def take() -> bool:
        if time.perf_counter() >= stop_at:
            return False
        if budget[0] == 0:
            return False
        if budget[0] > 0:
            budget[0] -= 1
        return True

    async def one_connection() -> None:
        writer = None
        while take():
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
                sent = time.perf_counter()
                writer.write(request)
                status = await asyncio.wait_for(_read_response(reader), timeout)
                result.latencies.append(time.perf_counter() - sent)
                result.statuses[status] += 1
            except _Closed as closed:
                result.latencies.append(time.perf_counter() - sent)
                result.statuses[closed.status] += 1
                writer.close()
                writer = None
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
                result.failures[type(exc).__name__] += 1
                if writer is not None:
                    writer.close()
                    writer = None
                await asyncio.sleep(0.01)  # a refused connection is not retried in a hot loop
        if writer is not None:
            writer.close()

    await asyncio.gather(*(one_connection() for _ in range(connections)))
    result.seconds = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--key", default=None)
    parser.add_argument("--model", default="demo")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    body = {**CHAT_BODY, "model": args.model}
    result = asyncio.run(run_load(args.url, connections=args.connections, seconds=args.seconds, body=body,
                                  key=args.key))
    print(json.dumps(result.summary()) if args.json else result.line())


if __name__ == "__main__":
    main()
