"""`llmops serve`: run the gateway."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("serve", help="run the OpenAI-compatible gateway")
    p.add_argument("--config", default=None, help="gateway YAML (default: the embedded gateway/config.yaml)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--drain-seconds", type=float, default=0.0,
                   help="on SIGTERM, keep serving this long while /health/ready says 503 and each connection "
                        "closes after its response, then stop accepting (default 0)")
    p.add_argument("--graceful-timeout", type=float, default=30.0,
                   help="on shutdown, seconds to let calls in progress finish before cancelling them (default 30)")
    p.set_defaults(func=run)


def run(args) -> int:
    from llmops.gateway.server import serve

    serve(args.config, args.host, args.port, args.workers, args.log_level, args.drain_seconds, args.graceful_timeout)
    return 0
