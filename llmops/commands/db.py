"""`llmops db ...`: the database's schema and the ledger's upkeep, run by an operator or a job.

Every process migrates the database it opens, so neither command is needed to run the
gateway; `upgrade` lets a deployment migrate once, before its replicas start (the
Kubernetes Job in gateway/deploy/), and `maintain` does now what the gateway does
hourly.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("db", help="schema upgrade and ledger upkeep", description=__doc__)
    sub = parser.add_subparsers(dest="db_command", metavar="ACTION")
    sub.required = True
    upgrade = sub.add_parser(
        "upgrade",
        help="apply pending schema migrations (safe to run from many processes at once)",
        description="Apply pending schema migrations and print their ids. Processes that start "
        "at the same moment wait for each other (a database lock), so each migration runs once.",
    )
    upgrade.add_argument("--database-url", help="the database (default: LLMOPS_DATABASE_URL)")
    upgrade.set_defaults(func=run_upgrade)
    maintain = sub.add_parser(
        "maintain",
        help="make the coming months' ledger partitions and apply retention",
        description="Postgres: create the ledger's monthly partitions for this month and the next two; "
        "with --retention-days, drop partitions whose rows are all older (SQLite: delete older rows).",
    )
    maintain.add_argument("--database-url", help="the database (default: LLMOPS_DATABASE_URL)")
    maintain.add_argument(
        "--retention-days", type=float, metavar="DAYS", help="keep ledger rows this many days"
    )
    maintain.set_defaults(func=run_maintain)


def run_upgrade(args: argparse.Namespace) -> int:
    from llmops.db import upgrade

    applied = upgrade(args.database_url)
    print("applied: " + ", ".join(applied) if applied else "the schema is current")
    return 0


def run_maintain(args: argparse.Namespace) -> int:
    from llmops.db import get_engine
    from llmops.errors import InvalidInput
    from llmops.governance.ledger_storage import maintain

    if args.retention_days is not None and args.retention_days <= 0:
        raise InvalidInput("--retention-days must be greater than zero", param="retention_days")
    done = maintain(get_engine(args.database_url), args.retention_days)
    print(f"partitions created: {', '.join(done['created']) or 'none'}")
    print(f"partitions dropped: {', '.join(done['dropped']) or 'none'}")
    return 0
