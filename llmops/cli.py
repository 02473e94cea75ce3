"""The `llmops` command: a thin shell over the library.

Each command group lives in `llmops/commands/<group>.py` and exposes
`register(subparsers)`; every subcommand sets `func(args) -> int`. Library errors
become a one-line message on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from llmops.errors import LLMOpsError

COMMAND_GROUPS = ["prompts", "serve", "keys", "spend", "guard", "eval", "experiments", "monitor", "db"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmops", description="Prompt registry, evals and an LLM gateway.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for group in COMMAND_GROUPS:
        try:
            module = importlib.import_module(f"llmops.commands.{group}")
        except ModuleNotFoundError as exc:
            if exc.name == f"llmops.commands.{group}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from llmops.settings import configure_offline_tokenizers

    configure_offline_tokenizers()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LLMOpsError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `llmops ... | head` closed the pipe: not an error of ours. Point stdout at
        # devnull so the interpreter's own flush at exit stays quiet too.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        # Not a library error: still one line a person can act on, with the full trace
        # only when asked for (it may hold paths and values a terminal log should not).
        import os

        if os.environ.get("LLMOPS_DEBUG"):
            raise
        print(f"error: {describe_unexpected(exc)} (set LLMOPS_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


def describe_unexpected(exc: BaseException) -> str:
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    if isinstance(exc, DBAPIError):
        # The driver's first line says what went wrong (never the password of the URL).
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        return f"the database (LLMOPS_DATABASE_URL or --database-url) could not be used: {reason}"
    if isinstance(exc, SQLAlchemyError):
        return f"database error: {type(exc).__name__}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unexpected failure'}"


if __name__ == "__main__":
    sys.exit(main())
