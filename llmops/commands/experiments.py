"""`llmops experiments ...`: A/B tests of prompt versions (see llmops.experiments)."""

from __future__ import annotations

import getpass

from llmops.commands.output import add_json_flag, print_json, print_table

VARIANT_HELP = (
    "NAME=REF[:WEIGHT], repeated; REF is a label (production, staging) or a version (v3 or 3; "
    "@v3 for a label named like a version); WEIGHT is relative (default 1)"
)


def _actor() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers; the action still happens
        return None


def _service():
    from llmops.experiments.service import ExperimentService

    return ExperimentService()


def _variants_text(view) -> str:
    return " ".join(v.spec() for v in view.variants)


def _print_view(view) -> None:
    print(
        f"{view.name}: {view.status} on prompt {view.prompt_name} (unit {view.unit}, allocation {view.allocation})"
    )
    for v in view.variants:
        marker = " (control)" if v.name == view.control else ""
        print(f"  {v.name}{marker}: {v.ref_for(view.prompt_name)}  weight {v.weight:g}")
    if view.winner:
        print(
            f"  promoted: {view.winner} -> {view.prompt_name}@{view.promoted_label} = version {view.promoted_version}"
        )


def cmd_create(args) -> int:
    view = _service().create(
        args.name,
        args.prompt,
        args.variant,
        unit=args.unit,
        allocation=args.allocation,
        actor=_actor(),
        check_refs=not args.no_check,
    )
    print_json(view.to_dict()) if args.json else _print_view(view)
    return 0


def cmd_list(args) -> int:
    views = _service().list(status=args.status, prompt=args.prompt)
    if args.json:
        print_json([v.to_dict() for v in views])
        return 0
    if not views:
        print("no experiments; create one with `llmops experiments create NAME --prompt P --variant ...`")
        return 0
    print_table(
        ["NAME", "PROMPT", "STATUS", "UNIT", "ALLOCATION", "VARIANTS", "CREATED"],
        [
            [
                v.name,
                v.prompt_name,
                v.status,
                v.unit,
                v.allocation,
                _variants_text(v),
                v.created_at.strftime("%Y-%m-%d %H:%M"),
            ]
            for v in views
        ],
    )
    return 0


def cmd_show(args) -> int:
    view = _service().get(args.name)
    print_json(view.to_dict()) if args.json else _print_view(view)
    return 0


def _status_command(action: str):
    def run(args) -> int:
        view = getattr(_service(), action)(args.name, actor=_actor())
        print_json(view.to_dict()) if args.json else print(f"{view.name}: {view.status}")
        return 0

    return run


def cmd_promote(args) -> int:
    view = _service().promote(args.name, args.variant, label=args.label, actor=_actor())
    if args.json:
        print_json(view.to_dict())
    else:
        print(
            f"{view.prompt_name}@{view.promoted_label} -> version {view.promoted_version} ({view.winner}); {view.name} stopped"
        )
    return 0


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def print_report(report: dict) -> None:
    exp = report["experiment"]
    print(
        f"experiment {exp['name']} on {exp['prompt']}: {exp['status']}, unit {exp['unit']}, "
        f"allocation {exp['allocation']}, control {report['control']}"
    )
    rows = []
    for v in report["variants"]:
        fb = v["feedback"]
        ci = fb["ci95"]
        rows.append(
            [
                v["name"],
                v["ref"] or "?",
                ",".join(str(x) for x in v["versions"]) or "-",
                _num(v["share"], ".0%"),
                v["requests"],
                _num(v["error_rate"], ".1%"),
                _num(v["latency_ms"]["mean"], ".0f"),
                _num(v["latency_ms"]["p95"], ".0f"),
                _num(v["tokens_per_call"]["input"], ".0f"),
                _num(v["tokens_per_call"]["output"], ".0f"),
                _num(v["cost_per_call"], ".6f"),
                f"{_num(fb['mean'], '.3f')} (n={fb['rated_requests']})",
                f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "-",
            ]
        )
    print_table(
        [
            "VARIANT",
            "REF",
            "VERSIONS",
            "SHARE",
            "REQUESTS",
            "ERRORS",
            "LAT MEAN",
            "LAT P95",
            "IN TOK",
            "OUT TOK",
            "COST/CALL",
            "FEEDBACK",
            "95% CI",
        ],
        rows,
    )
    for v in report["variants"]:
        for version, scores in (v["eval"] or {}).items():
            print(
                f"eval {v['name']} (version {version}): "
                + ", ".join(
                    f"{k} {val:.3f}" if isinstance(val, float) else f"{k} {val}" for k, val in scores.items()
                )
            )
    for line in report["summary"]:
        print(line)


def cmd_report(args) -> int:
    from llmops.experiments.report import experiment_report

    report = experiment_report(args.name, min_samples=args.min_samples)
    print_json(report) if args.json else print_report(report)
    return 0


# A gateway writes its ledger in batches (every 0.25 s by default): an id this command
# does not find yet is looked up once more after this many seconds, as POST /v1/feedback
# waits out two flush intervals before it answers 404.
FEEDBACK_RETRY_SECONDS = 0.5


def cmd_feedback(args) -> int:
    import time

    from llmops.errors import NotFound
    from llmops.experiments.feedback import record_feedback

    thumbs = "up" if args.up else "down" if args.down else None

    def save():
        return record_feedback(
            args.request_id,
            score=args.score,
            thumbs=thumbs,
            comment=args.comment,
            source="cli",
            require_known=True,
        )

    try:
        view = save()
    except NotFound:
        time.sleep(FEEDBACK_RETRY_SECONDS)
        view = save()  # a second NotFound is the one-line error and exit 1 of `llmops`
    print_json(view.to_dict()) if args.json else print(f"feedback {view.id} recorded for {view.request_id}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("experiments", help="A/B tests of prompt versions")
    sub = parser.add_subparsers(dest="experiments_command", metavar="SUBCOMMAND")
    sub.required = True

    p = sub.add_parser(
        "create",
        help="start an experiment on a prompt",
        description="Variant syntax: " + VARIANT_HELP + ". Example: "
        "llmops experiments create sum-test --prompt summarize "
        "--variant control=production:50 --variant candidate=v3:50",
    )
    p.add_argument("name")
    p.add_argument("--prompt", required=True, help="the prompt whose bare-name requests are split")
    p.add_argument("--variant", action="append", required=True, help=VARIANT_HELP)
    p.add_argument(
        "--unit",
        choices=["user", "session", "request"],
        default="user",
        help="what sticks to a variant: the request's user, its x-llmops-session header, or nothing",
    )
    p.add_argument(
        "--allocation",
        choices=["fixed", "thompson"],
        default="fixed",
        help="fixed weights, or Thompson sampling on feedback",
    )
    p.add_argument(
        "--no-check", action="store_true", help="do not check that each variant resolves in the registry"
    )
    add_json_flag(p)
    p.set_defaults(func=cmd_create)

    p = sub.add_parser("list", help="list experiments")
    p.add_argument("--status", choices=["running", "paused", "stopped"])
    p.add_argument("--prompt")
    add_json_flag(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="one experiment's definition")
    p.add_argument("name")
    add_json_flag(p)
    p.set_defaults(func=cmd_show)

    for action, text in (
        ("pause", "stop assigning for now"),
        ("resume", "assign again"),
        ("stop", "end the experiment for good"),
    ):
        p = sub.add_parser(action, help=text)
        p.add_argument("name")
        add_json_flag(p)
        p.set_defaults(func=_status_command(action))

    p = sub.add_parser("report", help="per-variant numbers and each candidate against control")
    p.add_argument("name")
    p.add_argument(
        "--min-samples", type=int, default=30, help="below this, a comparison says not enough data"
    )
    add_json_flag(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "promote", help="move the production label to a variant's version and end the experiment"
    )
    p.add_argument("name")
    p.add_argument("variant")
    p.add_argument("--label", default="production", help="the label to move (default production)")
    add_json_flag(p)
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser(
        "feedback",
        help="record feedback on a request (as POST /v1/feedback does)",
        description="Record a score, thumbs up/down or a comment on one gateway request. "
        "REQUEST_ID is the x-llmops-request-id header of its response; an id the ledger does "
        "not hold is refused (exit status 1), as POST /v1/feedback answers 404.",
    )
    p.add_argument("request_id", help="the x-llmops-request-id header of the request's response")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--score", type=float, help="a score in 0..1")
    group.add_argument("--up", action="store_true", help="thumbs up (1)")
    group.add_argument("--down", action="store_true", help="thumbs down (0)")
    p.add_argument("--comment")
    add_json_flag(p)
    p.set_defaults(func=cmd_feedback)
