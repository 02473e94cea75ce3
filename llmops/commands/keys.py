"""`llmops keys ...`: virtual keys of the gateway, and budgets of users and teams.

A new key is printed once; only its hash and a short prefix are stored. Gateways see a
change (update, revoke) within their key cache TTL (5 s by default).
"""

from __future__ import annotations

import argparse
from typing import Any

from llmops.commands.output import add_json_flag, print_json, print_table
from llmops.errors import InvalidInput

CLEAR_WORDS = ("none", "unlimited", "off")
KEY_FIELDS = ("name", "models", "rpm", "tpm", "parallel", "budget", "period", "expires", "user", "team", "guardrails")


def _store(args):
    from llmops.governance.keys import KeyStore

    return KeyStore(args.database_url)


def _whole(text: str) -> int | None:
    if text.strip().lower() in CLEAR_WORDS:
        return None
    try:
        return int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'none', not {text!r}") from exc


def _usd(text: str) -> float | None:
    if text.strip().lower() in CLEAR_WORDS:
        return None
    try:
        return float(text.strip().lstrip("$"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an amount in USD or 'none', not {text!r}") from exc


def _money(value: float | None) -> str:
    from llmops.governance.limits.base import usd

    return "-" if value is None else usd(value)


def _limits_line(info: Any) -> str:
    models = ",".join(info.models) if info.models is not None else "all"
    budget = f"{_money(info.budget)}/{info.period}" if info.budget is not None else "-"
    parts = [
        f"models {models}",
        f"rpm {info.rpm if info.rpm is not None else '-'}",
        f"tpm {info.tpm if info.tpm is not None else '-'}",
        f"parallel {info.parallel if info.parallel is not None else '-'}",
        f"budget {budget}",
    ]
    if info.guardrails:
        parts.append("own guardrails")
    return ", ".join(parts)


def _status(info: Any) -> str:
    if info.revoked_at is not None:
        return "revoked"
    if info.expired():
        return "expired"
    return "active"


def _date(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def _given(args) -> dict[str, Any]:
    return {name: getattr(args, name) for name in KEY_FIELDS if hasattr(args, name)}


def cmd_create(args) -> int:
    fields = _given(args)
    plaintext, info = _store(args).create(**fields)
    if args.json:
        print_json({"key": plaintext, **info.to_dict()})
        return 0
    print(f"Created key '{info.name}' ({info.id}). It is shown only now; store it safely:\n")
    print(f"    {plaintext}\n")
    print(_limits_line(info))
    if info.expires_at:
        print(f"expires at {_date(info.expires_at)} UTC")
    return 0


def cmd_list(args) -> int:
    store = _store(args)
    infos = store.list(include_revoked=not args.active)
    spent = {
        info.id: store.spent("key", info.id, info.period) for info in infos if info.budget is not None
    }
    if args.json:
        print_json([{**info.to_dict(), "spent": spent.get(info.id), "status": _status(info)} for info in infos])
        return 0
    if not infos:
        print("No keys yet. Create one with `llmops keys create --name NAME`.")
        return 0
    print_table(
        ["ID", "NAME", "PREFIX", "MODELS", "RPM", "TPM", "PAR", "BUDGET", "SPENT", "USER", "TEAM", "EXPIRES", "STATUS"],
        [
            [
                info.id,
                info.name,
                info.prefix + "...",
                ",".join(info.models) if info.models is not None else "all",
                info.rpm,
                info.tpm,
                info.parallel,
                f"{_money(info.budget)}/{info.period}" if info.budget is not None else None,
                _money(spent[info.id]) if info.id in spent else None,
                info.user,
                info.team,
                _date(info.expires_at) if info.expires_at else None,
                _status(info),
            ]
            for info in infos
        ],
    )
    return 0


def cmd_show(args) -> int:
    store = _store(args)
    info = store.get(args.key)
    spent = store.spent("key", info.id, info.period) if info.budget is not None else None
    if args.json:
        print_json({**info.to_dict(), "spent": spent, "status": _status(info)})
        return 0
    print(f"{info.id}  '{info.name}'  {info.prefix}...  {_status(info)}")
    print(_limits_line(info))
    if spent is not None:
        print(f"spent this {info.period}: {_money(spent)}")
    print(f"user {info.user or '-'}, team {info.team or '-'}, expires {_date(info.expires_at)}")
    return 0


def cmd_update(args) -> int:
    fields = _given(args)
    if not fields:
        raise InvalidInput("nothing to change: give at least one option (see `llmops keys update --help`)")
    info = _store(args).update(args.key, **fields)
    if args.json:
        print_json(info.to_dict())
        return 0
    print(f"Updated key '{info.name}' ({info.id}): {_limits_line(info)}")
    return 0


def cmd_revoke(args) -> int:
    info = _store(args).revoke(args.key)
    if args.json:
        print_json(info.to_dict())
        return 0
    print(f"Revoked key '{info.name}' ({info.id}, {info.prefix}...). Gateways refuse it within seconds.")
    return 0


def cmd_budget(args) -> int:
    store = _store(args)
    scope, subject = ("user", args.user) if args.user else ("team", args.team)
    if args.remove:
        if not store.remove_budget(scope, subject):
            raise InvalidInput(f"no budget for {scope} {subject!r}")
        if args.json:
            print_json({"scope": scope, "subject": subject, "removed": True})
        else:
            print(f"Removed the budget of {scope} '{subject}'.")
        return 0
    if args.budget is None:
        raise InvalidInput("give --budget USD (or --remove)")
    rule = store.set_budget(scope, subject, args.budget, args.period)
    spent = store.spent(scope, subject, rule.period)
    if args.json:
        print_json({**rule.to_dict(), "spent": spent})
        return 0
    print(f"Budget of {scope} '{subject}': {_money(rule.budget)} per {rule.period} ({_money(spent)} spent so far).")
    return 0


def cmd_budgets(args) -> int:
    store = _store(args)
    rows = [(rule, store.spent(rule.scope, rule.subject, rule.period)) for rule in store.budgets()]
    if args.json:
        print_json([{**rule.to_dict(), "spent": spent} for rule, spent in rows])
        return 0
    if not rows:
        print("No user or team budgets. Set one with `llmops keys budget --team T --budget USD`.")
        return 0
    print_table(
        ["SCOPE", "NAME", "BUDGET", "PERIOD", "SPENT"],
        [[rule.scope, rule.subject, _money(rule.budget), rule.period, _money(spent)] for rule, spent in rows],
    )
    return 0


def _key_options(parser: argparse.ArgumentParser, *, creating: bool) -> None:
    # On update an absent option is left as it is (SUPPRESS keeps it out of args).
    keep: dict[str, Any] = {} if creating else {"default": argparse.SUPPRESS}
    parser.add_argument("--name", required=creating, **keep, help="a name to recognise the key by")
    parser.add_argument(
        "--models", **keep, help="comma-separated models (fnmatch patterns allowed, e.g. 'openai/*'); '*' = all"
    )
    parser.add_argument("--rpm", type=_whole, **keep, help="requests per minute ('none' = unlimited)")
    parser.add_argument("--tpm", type=_whole, **keep, help="tokens per minute ('none' = unlimited)")
    parser.add_argument("--parallel", type=_whole, **keep, help="requests in flight at once ('none' = unlimited)")
    parser.add_argument("--budget", type=_usd, **keep, help="USD per period ('none' = unlimited)")
    parser.add_argument(
        "--period", choices=["day", "month", "total"], **({"default": "total"} if creating else keep),
        help="budget period, reset at 00:00 UTC (default total: never resets)",
    )
    parser.add_argument(
        "--expires", **keep, help="date (2026-01-31: valid through that day, UTC), ISO time, or duration (90d, 12h); 'never'"
    )
    parser.add_argument("--user", **keep, help="the user the key belongs to (for user budgets); '' clears")
    parser.add_argument("--team", **keep, help="the team the key belongs to (for team budgets); '' clears")
    parser.add_argument(
        "--guardrails", **keep,
        help="""guardrails override for this key's calls, as JSON, e.g. '{"checks": {"pii": {"action": "block"}}}'; '{}' clears""",
    )
    add_json_flag(parser)


def register(subparsers) -> None:
    url_help = "database URL (default: LLMOPS_DATABASE_URL or sqlite:///./llmops.db)"
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database-url", default=argparse.SUPPRESS, help=url_help)

    group = subparsers.add_parser("keys", help="gateway virtual keys, limits and budgets")
    group.add_argument("--database-url", default=None, help=url_help)
    sub = group.add_subparsers(dest="keys_command", metavar="SUBCOMMAND")
    sub.required = True

    create = sub.add_parser("create", parents=[common], help="create a key (shown once)")
    _key_options(create, creating=True)
    create.set_defaults(func=cmd_create)

    listing = sub.add_parser("list", parents=[common], help="list keys with their limits and spend")
    listing.add_argument("--active", action="store_true", help="hide revoked keys")
    add_json_flag(listing)
    listing.set_defaults(func=cmd_list)

    show = sub.add_parser("show", parents=[common], help="one key, with its spend this period")
    show.add_argument("key", metavar="KEY_ID", help="key id (or its name, when unique)")
    add_json_flag(show)
    show.set_defaults(func=cmd_show)

    update = sub.add_parser("update", parents=[common], help="change a key's limits, models, expiry")
    update.add_argument("key", metavar="KEY_ID", help="key id (or its name, when unique)")
    _key_options(update, creating=False)
    update.set_defaults(func=cmd_update)

    revoke = sub.add_parser("revoke", parents=[common], help="stop a key for good")
    revoke.add_argument("key", metavar="KEY_ID", help="key id (or its name, when unique)")
    add_json_flag(revoke)
    revoke.set_defaults(func=cmd_revoke)

    budget = sub.add_parser("budget", parents=[common], help="set or remove a user's or a team's budget")
    who = budget.add_mutually_exclusive_group(required=True)
    who.add_argument("--team", help="team name (keys created with --team T)")
    who.add_argument("--user", help="user name (a key's --user, or the request's `user` field)")
    budget.add_argument("--budget", type=_usd, default=None, help="USD per period")
    budget.add_argument("--period", choices=["day", "month", "total"], default="month", help="default month")
    budget.add_argument("--remove", action="store_true", help="remove the budget")
    add_json_flag(budget)
    budget.set_defaults(func=cmd_budget)

    budgets = sub.add_parser("budgets", parents=[common], help="list user and team budgets with spend")
    add_json_flag(budgets)
    budgets.set_defaults(func=cmd_budgets)
