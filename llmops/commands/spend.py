"""`llmops spend`: tokens and cost from the request ledger, grouped."""

from __future__ import annotations

import argparse

from llmops.commands.output import add_json_flag, print_json, print_table


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "spend",
        help="tokens and cost from the gateway's ledger",
        description="Requests, errors, tokens and cost per model, key, user, team, prompt or A/B variant.",
    )
    parser.add_argument(
        "--by",
        choices=["model", "key", "user", "team", "prompt", "variant"],
        default="model",
        help="what to group by (default: model)",
    )
    parser.add_argument("--since", metavar="SPAN", help="only requests in the last SPAN: 30m, 24h, 7d")
    parser.add_argument("--database-url", help="the ledger's database (default: LLMOPS_DATABASE_URL)")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def _money(cost: float | None) -> str:
    return "unknown" if cost is None else f"${cost:,.6f}"


def run(args: argparse.Namespace) -> int:
    from llmops.governance.spend import parse_since, spend_report

    since = parse_since(args.since) if args.since else None
    report = spend_report(args.database_url, by=args.by, since=since)
    if args.json:
        print_json(report)
        return 0
    if not report:
        window = f" in the last {args.since}" if args.since else ""
        print(f"no requests in the ledger{window}")
        return 0
    headers = [args.by]
    if args.by == "key":
        headers.append("name")
    if args.by == "variant":
        headers = ["experiment", "variant"]
    headers += ["requests", "errors", "input_tokens", "output_tokens", "cost", "unknown_cost"]
    rows = []
    for item in report:
        row: list[object] = [item["group"] if item["group"] is not None else "(none)"]
        if args.by == "key":
            row.append(item.get("key_name"))
        if args.by == "variant":
            row.append(item.get("variant"))
        row += [
            item["requests"],
            item["errors"],
            item["input_tokens"],
            item["output_tokens"],
            _money(item["cost"]),
            item["unknown_cost_requests"],
        ]
        rows.append(row)
    known = [item["cost"] for item in report if item["cost"] is not None]
    unknown = sum(item["unknown_cost_requests"] for item in report)
    total: list[object] = ["TOTAL", *[""] * (len(headers) - 7)]
    total += [
        sum(item["requests"] for item in report),
        sum(item["errors"] for item in report),
        sum(item["input_tokens"] for item in report),
        sum(item["output_tokens"] for item in report),
        _money(sum(known)) if known or not unknown else "unknown",
        unknown,
    ]
    rows.append(total)
    print_table(headers, rows)
    return 0
