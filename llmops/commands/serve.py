"""`llmops serve`: run the gateway."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("serve", help="run the OpenAI-compatible gateway")
    p.add_argument("--config", default=None, help="gateway YAML (default: the embedded gateway/config.yaml)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run)


def run(args) -> int:
    from llmops.gateway.server import serve

    serve(args.config, args.host, args.port, args.workers, args.log_level)
    return 0
