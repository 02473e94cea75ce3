"""`llmops monitor`: online evals on the captured sample, and the drift report."""

from __future__ import annotations

import argparse
from typing import Any

from llmops.commands.output import add_json_flag, print_json, print_table


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "monitor",
        help="online evals and drift of deployed prompts and models",
        description="Score captured calls (online evals) and compare a recent window with a reference window.",
    )
    sub = parser.add_subparsers(dest="monitor_command", metavar="COMMAND")
    sub.required = True

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config",
            help="gateway YAML whose `monitoring:` section to use "
            "(default: LLMOPS_GATEWAY_CONFIG, else the defaults)",
        )
        p.add_argument("--database-url", help="the ledger's database (default: LLMOPS_DATABASE_URL)")
        add_json_flag(p)

    score = sub.add_parser("score", help="run the online scorers on captured calls not scored yet")
    score.add_argument("--suite", help="an eval suite whose default assertions grade each reply")
    score.add_argument("--limit", type=int, help="score at most this many calls")
    score.add_argument(
        "--judge-model",
        help="the judge for judged assertions (default: online_eval.judge, else the suite's judge)",
    )
    score.add_argument(
        "--gateway-url",
        help="the gateway that serves the judge (default: LLMOPS_GATEWAY_URL, "
        "else one started in this process from --config)",
    )
    common(score)
    score.set_defaults(func=run_score)

    report = sub.add_parser("report", help="drift and degradation: the recent window against the reference")
    report.add_argument(
        "--since",
        metavar="SPAN",
        help="the recent window: the last SPAN (30m, 24h, 7d; default: the config's drift.recent, 24h)",
    )
    report.add_argument(
        "--reference",
        choices=["previous", "first_week"],
        help="the reference window (default: the config's, `previous`)",
    )
    report.add_argument("--all", action="store_true", help="print every check, not only alarms and a summary")
    report.add_argument(
        "--save",
        action="store_true",
        help="keep this report's checks for drift over time (the gateway's worker saves each of its runs)",
    )
    common(report)
    report.set_defaults(func=run_report)

    variants = sub.add_parser("variants", help="online eval scores of A/B variants, beside each other")
    variants.add_argument("--experiment", help="one experiment (default: all)")
    variants.add_argument("--since", metavar="SPAN", help="only scores of calls in the last SPAN")
    common(variants)
    variants.set_defaults(func=run_variants)

    prune = sub.add_parser("prune", help="delete captured calls past retention or beyond the size cap now")
    common(prune)
    prune.set_defaults(func=run_prune)


def _monitoring(args: argparse.Namespace):
    from llmops.monitoring.config import MonitoringConfig
    from llmops.settings import get_settings

    path = args.config or get_settings().gateway_config
    if not path:
        return MonitoringConfig()
    from llmops.gateway.config import load_config

    return load_config(path).monitoring


def run_score(args: argparse.Namespace) -> int:
    import asyncio

    from llmops.monitoring.scoring import SuiteChecks, score_pending

    config = _monitoring(args).online_eval
    if args.suite:
        config = config.model_copy(update={"suite": args.suite})
    suite = SuiteChecks.load(config.suite) if config.suite else None
    judge_model = args.judge_model or config.judge or (suite.judge if suite else None)
    judged = config.faithfulness_scorer == "judge" or (
        suite is not None and any(spec.needs_judge for spec in suite.assertions)
    )
    if judge_model and judged:
        summary = asyncio.run(
            _score_with_judge(args, config, judge_model, suite.judge_params if suite else {})
        )
    else:
        summary = score_pending(args.database_url, config, limit=args.limit)
    if args.json:
        print_json(summary.to_dict())
        return 0
    print(f"scored {summary.calls} captured calls: {summary.scores} scores")
    for metric, n in sorted(summary.by_metric.items()):
        print(f"  {metric}: {n}")
    for name, why in sorted(summary.skipped.items()):
        print(f"  skipped {name}: {why}")
    return 0


async def _score_with_judge(args: argparse.Namespace, config, model: str, params: dict[str, Any]):
    from llmops.evaluation.judge import Judge
    from llmops.gateway.clients import open_client
    from llmops.monitoring.scoring import score_pending_async

    async with open_client(args.gateway_url, None, args.config) as client:
        judge = Judge(client, model, params)
        return await score_pending_async(args.database_url, config, limit=args.limit, judge=judge)


def _value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, dict):
        return ", ".join(f"{k} {share:.0%}" for k, share in list(v.items())[:3])
    return f"{v:.4g}"


def run_report(args: argparse.Namespace) -> int:
    from llmops.governance.spend import parse_since
    from llmops.monitoring.drift import alarm_message, build_report, save_report

    drift = _monitoring(args).drift
    if args.reference:
        drift = drift.model_copy(update={"reference": args.reference})
    report = build_report(args.database_url, drift, since=parse_since(args.since) if args.since else None)
    if args.save:
        save_report(report, args.database_url)
    if args.json:
        print_json(report.to_dict())
        return 0
    print(
        f"recent window {report.recent_start:%Y-%m-%d %H:%M} .. {report.recent_end:%Y-%m-%d %H:%M} UTC; "
        f"reference: {report.reference}; topic: {report.topic_method}"
    )
    if not report.subjects:
        print("no calls in either window")
        return 0
    alarms = report.alarms()
    rows = []
    for s in report.subjects:
        shown = s.checks if args.all else s.alarms
        status = f"{len(s.alarms)} alarm(s)" if s.alarms else "ok"
        if s.sampled:
            status += " (sampled)"
        if not args.all:
            rows.append([s.key, s.calls_reference, s.calls_recent, "", status, "", "", "", ""])
        for c in shown:
            rows.append(
                [
                    s.key if args.all else "",
                    c.n_reference,
                    c.n_recent,
                    c.metric,
                    c.status,
                    _value(c.reference),
                    _value(c.recent),
                    "" if c.effect is None else f"{c.effect:.3f}",
                    "" if c.p_value is None else f"{c.p_value:.2g}",
                ]
            )
    print_table(
        ["subject", "n_ref", "n_recent", "check", "status", "reference", "recent", "effect", "p"], rows
    )
    if alarms:
        print()
        for s, c in alarms:
            print(f"ALARM {alarm_message(s, c)}")
    return 0


def run_prune(args: argparse.Namespace) -> int:
    from llmops.monitoring.capture import PayloadCapture

    capture = PayloadCapture(_monitoring(args).capture, args.database_url)
    removed = capture.prune()
    if args.json:
        print_json({"removed": removed})
    else:
        print(f"removed {removed} captured calls")
    return 0


def run_variants(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from llmops.governance.spend import parse_since
    from llmops.monitoring.history import scores_by_variant

    rows = scores_by_variant(
        args.database_url, experiment=args.experiment, since=parse_since(args.since) if args.since else None
    )
    if args.json:
        print_json([asdict(r) for r in rows])
        return 0
    if not rows:
        print(
            "no online eval scores on calls of an experiment: capture and score them first (see README, Monitoring)"
        )
        return 0
    print_table(
        ["experiment", "variant", "score", "n", "mean", "95% CI", "p vs first"],
        [
            [
                r.experiment,
                r.variant,
                r.metric,
                r.n,
                _value(r.mean),
                "" if r.ci_low is None else f"{r.ci_low:.3f} .. {r.ci_high:.3f}",
                _value(r.p_value),
            ]
            for r in rows
        ],
    )
    return 0
