"""Runs the gateway under uvicorn: uvloop, and the gateway's own HTTP/1.1 protocol
(http_protocol.py, on httptools), which costs less per request than uvicorn's."""

from __future__ import annotations

import os
import sys
from pathlib import Path

CONFIG_ENV = "LLMOPS_GATEWAY_CONFIG"
HTTP_PROTOCOL = "llmops.gateway.http_protocol:GatewayHttpProtocol"


def app_factory():
    """Uvicorn's entry for every worker; the config path travels in the environment."""
    from llmops.gateway.app import create_app

    # Background threads (the ledger writer, database calls in to_thread) hand the GIL
    # back to the event loop within 1 ms instead of the default 5 ms.
    sys.setswitchinterval(0.001)
    return create_app(os.environ.get(CONFIG_ENV) or None)


def serve(config: str | Path | None, host: str, port: int, workers: int = 1, log_level: str = "info") -> None:
    import uvicorn

    from llmops.gateway.config import load_config

    load_config(config)  # fail fast, with a clear message, before any worker starts
    if config:
        os.environ[CONFIG_ENV] = str(Path(config).resolve())
    uvicorn.run(
        "llmops.gateway.server:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http=HTTP_PROTOCOL,
        lifespan="on",
        access_log=False,  # the ledger is the access log, without secrets
        proxy_headers=False,  # client addresses are not used; saves a middleware hop
        log_level=log_level,
        timeout_graceful_shutdown=30,
    )
