"""The aiohttp session for what the gateway's lean client does not speak: https
upstreams (TLS, proxies) and vLLM's /metrics.

aiohttp is imported, and the session opened, on first use: a gateway whose upstreams
are all plain http (local vLLM, in-cluster servers, the benchmarks' fake upstream) does
without both, about 10 MB of resident memory.
"""

from __future__ import annotations

import sys
from typing import Any

from llmops.gateway.upstream_http import UpstreamConnectionError


class LazySession:
    """Stands in for aiohttp.ClientSession: `post` and `get` as aiohttp's, and `close`."""

    def __init__(self) -> None:
        self._session: Any = None

    def _open(self) -> Any:
        if self._session is None:
            import aiohttp

            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True)
        return self._session

    def post(self, url: str, **kwargs: Any) -> Any:
        return self._open().post(url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> Any:
        return self._open().get(url, **kwargs)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def client_timeout(**kwargs: Any) -> Any:
    """An aiohttp.ClientTimeout (aiohttp is imported now, when a call needs it)."""
    import aiohttp

    return aiohttp.ClientTimeout(**kwargs)


def transport_or_timeout_errors() -> tuple[type[Exception], ...]:
    """`transport_errors()` and TimeoutError: what a read that may also time out raises."""
    return (*transport_errors(), TimeoutError)


def transport_errors() -> tuple[type[Exception], ...]:
    """What a failed or broken upstream connection raises, from either client. (aiohttp's
    errors only exist once something imported it; until then none can be raised.)"""
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is None:
        return (UpstreamConnectionError,)
    return (aiohttp.ClientError, UpstreamConnectionError)
