"""Runs the gateway under uvicorn: uvloop, and the gateway's own HTTP/1.1 protocol
(http_protocol.py, on httptools), which costs less per request than uvicorn's.

SIGTERM drains each worker: for `drain_seconds` it keeps serving but answers
/health/ready with 503 and closes every connection after its response (a load
balancer or Kubernetes takes it out of rotation meanwhile); then uvicorn's own
shutdown: stop accepting, finish the calls in progress (up to `graceful_timeout`),
stop the services (the ledger writer flushes its queue to the database), exit. A
second SIGTERM skips what is left of the drain period.

Stopping to accept is done in two steps, so that no call is lost in between: first the
listening socket drops new connection attempts (a socket filter that drops SYNs; the
client's SYN is retried a second later and then refused, so a load balancer moves on),
while the connections already queued in the kernel are accepted and answered; a
moment later the socket is closed. Closing it at once would reset the queued ones,
whose requests a load balancer may already have sent (a POST it will not retry).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from llmops.errors import LLMOpsError

CONFIG_ENV = "LLMOPS_GATEWAY_CONFIG"
DRAIN_ENV = "LLMOPS_DRAIN_SECONDS"  # set by serve() for its workers
ACCEPT_QUEUED = 0.25  # seconds between dropping new connection attempts and closing the socket
SO_ATTACH_FILTER = 26  # Linux, <asm-generic/socket.h>
# Classic BPF over the TCP header: drop a segment with SYN set, pass anything else.
_DROP_SYN = [(0x30, 0, 0, 13), (0x45, 0, 1, 0x02), (0x06, 0, 0, 0), (0x06, 0, 0, 0xFFFFFFFF)]
HTTP_PROTOCOL = "llmops.gateway.http_protocol:GatewayHttpProtocol"
STARTUP_FAILURE = 3  # uvicorn's exit code when the app does not start


class CannotListen(LLMOpsError):
    code = "cannot_listen"


def app_factory():
    """Uvicorn's entry for every worker; the config path travels in the environment."""
    from llmops.gateway.app import create_app

    # Background threads (the ledger writer, database calls in to_thread) hand the GIL
    # back to the event loop within 1 ms instead of the default 5 ms.
    sys.setswitchinterval(0.001)
    app = create_app(os.environ.get(CONFIG_ENV) or None)
    drain_on_sigterm(app, float(os.environ.get(DRAIN_ENV) or 0))
    return app


def drain_on_sigterm(app, seconds: float) -> None:
    """Put draining in front of uvicorn's SIGTERM handler. Called inside uvicorn's
    `capture_signals` (the factory runs there), so its handler is the one in place."""
    from llmops.gateway.http_protocol import Draining

    if threading.current_thread() is not threading.main_thread():
        return
    uvicorn_exit = signal.getsignal(signal.SIGTERM)
    if not callable(uvicorn_exit):
        return
    log = logging.getLogger("llmops.gateway")

    def stop_accepting(sig: int) -> None:
        if refuse_new_connections():
            loop.call_later(ACCEPT_QUEUED, uvicorn_exit, sig, None)
        else:
            uvicorn_exit(sig, None)

    def on_sigterm(sig, frame) -> None:
        again = app.draining
        app.draining = Draining.active = True
        if again:
            uvicorn_exit(sig, frame)
        elif seconds > 0:
            log.info("SIGTERM: draining for %g s (not ready, closing connections after each response)", seconds)
            # A signal handler may run while the loop sleeps: wake it.
            loop.call_soon_threadsafe(loop.call_later, seconds, stop_accepting, sig)
        else:
            loop.call_soon_threadsafe(stop_accepting, sig)

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return

    signal.signal(signal.SIGTERM, on_sigterm)


def refuse_new_connections() -> bool:
    """Make this process's listening sockets drop new connection attempts (their queued
    connections stay acceptable). False where that cannot be done (not Linux)."""
    import ctypes
    import struct

    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return False
    program = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *op) for op in _DROP_SYN))
    fprog = struct.pack("HL", len(_DROP_SYN), ctypes.addressof(program))
    done = False
    for fd in fds:
        try:
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue  # not a socket (or already closed)
        try:
            if sock.type == socket.SOCK_STREAM and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
                done = True
        except OSError:
            pass
        finally:
            sock.close()  # a duplicate: the socket itself stays open
    return done


def listen_socket(host: str, port: int) -> socket.socket:
    """The gateway's socket, bound as uvicorn would bind it. Bound first thing, so a
    taken port is one line and exit 1 before any start-up work; the workers inherit it,
    so nothing can take the port between this check and serving."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family=family, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise CannotListen(f"cannot listen on {where}: {reason[:1].lower()}{reason[1:]}") from None
    sock.set_inheritable(True)
    return sock


def log_config(log_level: str) -> dict:
    """Uvicorn's logging, with the gateway's own loggers (`llmops.*`) on the same stream."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["llmops"] = {"handlers": ["default"], "level": log_level.upper(), "propagate": False}
    return config


def serve(
    config: str | Path | None, host: str, port: int, workers: int = 1, log_level: str = "info",
    drain_seconds: float = 0.0, graceful_timeout: float = 30.0,
) -> None:
    sock = listen_socket(host, port)
    try:
        _serve(sock, config, host, port, workers, log_level, drain_seconds, graceful_timeout)
    finally:
        sock.close()


def _serve(
    sock: socket.socket, config: str | Path | None, host: str, port: int, workers: int, log_level: str,
    drain_seconds: float, graceful_timeout: float,
) -> None:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from llmops.gateway.config import load_config

    gateway_config = load_config(config)  # fail fast, with a clear message, before any worker starts
    if workers > 1:
        from llmops.governance.workers import check_workers
        from llmops.settings import get_settings

        settings = get_settings()
        check_workers(workers, settings.redis_url, gateway_config.limits, settings.database_url)
    if config:
        os.environ[CONFIG_ENV] = str(Path(config).resolve())
    os.environ[DRAIN_ENV] = str(drain_seconds)
    uv_config = uvicorn.Config(
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
        log_config=log_config(log_level),
        log_level=log_level,
        timeout_graceful_shutdown=int(graceful_timeout),
    )
    # Once here, not in every worker: what this gateway serves, and why a model is off.
    log = logging.getLogger("llmops.gateway")
    for line in gateway_config.model_lines():
        log.info("%s", line)
    # Uvicorn says this only when it binds the socket itself.
    shown = f"[{host}]" if ":" in host else host
    logging.getLogger("uvicorn.error").info(
        "Uvicorn running on http://%s:%d (Press CTRL+C to quit)", shown, sock.getsockname()[1]
    )
    try:
        if uv_config.workers > 1:
            Multiprocess(uv_config, sockets=[sock]).run()
            return
        server = uvicorn.Server(uv_config)
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        return
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)
