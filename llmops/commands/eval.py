"""`llmops eval ...`: run suites, read stored runs, compare them, score files.

    llmops eval run evals/summarize.yaml [--json] [--junit FILE] [--baseline RUN|last]
                    [--concurrency N] [--no-cache] [--gateway-url URL] [--repeat N] [--mlflow [URI]]
    llmops eval list | show RUN | compare A B | datasets [--suite NAME]
    llmops eval cases from-ledger --prompt NAME[@label] [--since 7d] [--sample 200]
                    [--with-feedback down|up|any] -o cases.jsonl
    llmops eval score --metric faithfulness --input FILE.jsonl [--scorer offline|lexical|judge]
    llmops eval calibrate --metric faithfulness LABELLED.jsonl [--scorer ...] [--json]

`run` exits 1 when a case misses its threshold or the run regresses against the baseline.
Ctrl-C stops a run (exit 130) keeping every answer received in the cache, and prints the
command that resumes it: the same run again, which calls the models only for the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from llmops.commands.output import add_json_flag, print_json, print_table
from llmops.errors import InvalidInput

if TYPE_CHECKING:
    from llmops.evaluation.faithfulness import FaithfulnessResult


class ProgressBar:
    """A one-line progress bar on a terminal's stderr (done/total, cases per second, time
    left); silent when stderr is not a TTY or `draw` is False, but counting either way."""

    def __init__(
        self,
        stream: TextIO = sys.stderr,
        width: int = 30,
        *,
        draw: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.width = width
        self.enabled = draw and stream.isatty()
        self.clock = clock
        self.first: tuple[int, float] | None = None  # (done, when) at the first case done: the rate's start
        self.failed = 0
        self.done = 0
        self.total = 0
        self.drawn_at: float | None = None

    def __call__(self, done: int, total: int, result: Any) -> None:
        self.done, self.total = done, total
        if not result.passed:
            self.failed += 1
        if not self.enabled:
            return
        now = self.clock()
        if self.first is None:
            self.first = (done, now)  # counted from here: not the start-up before the first answer
        if done < total and self.drawn_at is not None and now - self.drawn_at < 0.1:
            return  # at most ten redraws a second
        self.drawn_at = now
        filled = int(self.width * done / total) if total else self.width
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = now - self.first[1]
        rate = (done - self.first[0]) / elapsed if elapsed > 0 else 0.0
        speed = f"  {rate:.1f}/s" if rate > 0 else ""
        left = f"  ETA {_duration((total - done) / rate)}" if rate > 0 and done < total else ""
        self.stream.write(f"\r[{bar}] {done}/{total}{speed}{left}  {self.failed} failed\033[K")
        if done == total:
            self.stream.write("\n")
        self.stream.flush()

    def interrupted(self) -> None:
        """Leave the bar's line before a message is printed under it."""
        if self.enabled and self.drawn_at is not None and self.done < self.total:
            self.stream.write("\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def resume_command(args) -> str:
    """The command that resumes an interrupted `eval run`: the same run, reading the cache."""
    words = ["llmops", "eval", "run", args.suite]
    for flag, value in (
        ("--database-url", args.database_url), ("--gateway-url", args.gateway_url),
        ("--gateway-config", args.gateway_config), ("--concurrency", args.concurrency),
        ("--repeat", args.repeat), ("--baseline", args.baseline), ("--junit", args.junit),
    ):  # fmt: skip
        if value is not None:
            words += [flag, str(value)]
    if args.mlflow is not None:
        words += ["--mlflow", args.mlflow] if args.mlflow else ["--mlflow"]
    if args.json:
        words.append("--json")
    return shlex.join(words)


def _time(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else ""


def cmd_run(args) -> int:
    from llmops.evaluation import reports
    from llmops.gateway.clients import run_suite_file

    progress = ProgressBar(draw=not args.json)
    try:
        run, comparison = run_suite_file(
            args.suite,
            gateway_url=args.gateway_url,
            gateway_config=args.gateway_config,
            concurrency=args.concurrency,
            use_cache=not args.no_cache,
            database_url=args.database_url,
            baseline=args.baseline,
            progress=progress,
            repeat=args.repeat,
            mlflow=True if args.mlflow == "" else args.mlflow,
        )
    except KeyboardInterrupt:
        progress.interrupted()
        if progress.total:
            done = f"{progress.done} of {progress.total} calls done, their answers kept in the cache"
        else:
            done = "no call done yet"
        print(f"interrupted: {done}. To resume (calling only for the rest):", file=sys.stderr)
        print(f"  {resume_command(args)}", file=sys.stderr)
        return 130
    if args.junit:
        Path(args.junit).write_text(reports.junit_xml(run), encoding="utf-8")
    regressed = comparison is not None and comparison.regressed
    if args.json:
        print_json({**run.to_dict(), "comparison": comparison.to_dict() if comparison else None})
    else:
        flaky = f"  {run.flaky} flaky" if run.flaky else ""
        print(f"run {run.id}  suite {run.suite}  {run.passed_count}/{run.total} passed{flaky}  score {run.score:.3f}")
        print_table(reports.SUMMARY_HEADERS, reports.summary_rows(run))
        hits, calls = run.parameters.get("cache_hits", 0), len(run.calls)
        attempts = f"  attempts passed {run.pass_rate:.0%} of {calls}" if calls != run.total else ""
        print(f"cost ${run.cost:.6f}  cached responses {hits}/{calls}  git {run.git_commit or '-'}{attempts}")
        logged = run.parameters.get("mlflow")
        if logged:
            print(f"mlflow run {logged['run_id']} in experiment {logged['experiment_id']} at {logged['tracking_uri']}")
        for line in reports.failure_lines(run):
            print(line)
        if comparison is not None:
            _print_comparison(comparison)
    return 1 if (not run.passed or regressed) else 0


def _print_comparison(comparison) -> None:
    from llmops.evaluation import reports

    print(f"\ncompared with {comparison.baseline.id}:")
    for difference in comparison.differences:
        print(f"note: {difference}")
    total = max(len(comparison.baseline.results), len(comparison.current.results))
    if comparison.common < total:
        print(f"note: compared on the {comparison.common} items both runs have ({total} in the larger run)")
    print_table(reports.COMPARE_HEADERS, reports.compare_rows(comparison))
    for item in comparison.regressions:
        case_id, prompt_id, model_id = item.key
        print(f"REGRESSION {case_id}[{prompt_id}|{model_id}]: passed before, fails now")
    for (prompt_id, model_id), change in comparison.score_drops.items():
        print(f"REGRESSION {prompt_id} on {model_id}: mean score {change:+.3f}")
    for item in comparison.fixes:
        case_id, prompt_id, model_id = item.key
        print(f"fixed {case_id}[{prompt_id}|{model_id}]: failed before, passes now")
    if not comparison.regressed:
        print("no regression")


def cmd_datasets(args) -> int:
    from llmops.evaluation.storage import list_datasets

    versions = list_datasets(args.database_url, suite=args.suite)
    if args.json:
        print_json([v.to_dict() for v in versions])
        return 0
    if not versions:
        print("no runs with a recorded dataset yet: `llmops eval run SUITE` records one")
        return 0
    print_table(
        ["SUITE", "CASES", "ROWS", "FILES", "RUNS", "FIRST RUN", "LAST RUN", "NEWEST RUN IDS"],
        [
            [
                v.suite, v.cases, v.case_count,
                ", ".join(f"{name}@{h[:8]}" for name, h in v.case_files.items()) or "-",
                len(v.runs), v.first_run.strftime("%Y-%m-%d %H:%M"), v.last_run.strftime("%Y-%m-%d %H:%M"),
                " ".join(v.runs[:3]),
            ]
            for v in versions
        ],
    )  # fmt: skip
    return 0


def _capture_config(path: str | None) -> tuple[str | None, Any]:
    from llmops.monitoring.config import MonitoringConfig
    from llmops.settings import get_settings

    config_path = path or get_settings().gateway_config
    if not config_path:
        return None, MonitoringConfig().capture
    from llmops.gateway.config import load_config

    return config_path, load_config(config_path).monitoring.capture


def cmd_cases_from_ledger(args) -> int:
    from datetime import UTC, datetime

    from llmops.columns import table_of
    from llmops.evaluation.from_ledger import export_cases, write_jsonl
    from llmops.experiments.models import FeedbackRow
    from llmops.governance.spend import parse_since
    from llmops.monitoring.models import PAYLOADS

    if args.sample is not None and args.sample < 1:
        raise InvalidInput("--sample must be at least 1")
    since = datetime.now(UTC) - parse_since(args.since)
    exported = export_cases(
        args.prompt, since, PAYLOADS, table_of(FeedbackRow), sample=args.sample, seed=args.seed,
        with_feedback=args.with_feedback, database_url=args.database_url,
    )  # fmt: skip
    if not exported.cases:
        where, capture = _capture_config(args.gateway_config)
        name = args.prompt.split("@")[0].split(":")[0]
        if exported.matched:
            raise InvalidInput(f"no cases from prompt {args.prompt}: {exported.summary()}")
        if not capture.enabled:
            raise InvalidInput(
                f"no captured calls of prompt {args.prompt} in the last {args.since}, and payload capture is off "
                f"in {where or 'the default gateway config'}. Cases come from calls the gateway captured: turn it on in "
                f"the gateway's config (`monitoring: {{capture: {{enabled: true, rules: [{{prompt: \"{name}\", sample: 1.0}}]}}}}`, "
                "see README, Payload capture), restart the gateway, and export once calls have come in"
            )
        share = capture.share("", name)
        feedback = f" with {args.with_feedback} feedback" if args.with_feedback else ""
        raise InvalidInput(
            f"no captured calls of prompt {args.prompt}{feedback} in the last {args.since}: capture is on in "
            f"{where or 'the gateway config'} and keeps {share:.0%} of this prompt's calls (by its rules) for "
            f"{capture.retention_days:g} days"
            + ("; raise its share with a rule `{prompt: \"" + name + "\", sample: 1.0}`" if share == 0 else "")
        )
    text = write_jsonl(exported.cases)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {exported.summary()} to {args.output}")
    if args.output == "-":
        print(exported.summary(), file=sys.stderr)
    return 0


def cmd_list(args) -> int:
    from llmops.evaluation.storage import list_runs

    runs = list_runs(args.database_url, suite=args.suite, limit=args.limit)
    if args.json:
        print_json([r.model_dump() for r in runs])
        return 0
    print_table(
        ["RUN", "SUITE", "STATUS", "PASSED", "SCORE", "COST $", "PROMPTS", "GIT", "STARTED"],
        [
            [
                r.id,
                r.suite,
                r.status,
                f"{r.passed}/{r.total}",
                f"{r.score:.3f}",
                f"{r.cost:.6f}",
                " ".join(sorted(set(r.prompts.values()))),
                (r.git_commit or "")[:10],
                _time(r.started_at),
            ]
            for r in runs
        ],
    )
    return 0


def cmd_show(args) -> int:
    from llmops.evaluation import reports
    from llmops.evaluation.storage import load_run

    run = load_run(args.run, args.database_url)
    if args.json:
        print_json(run.to_dict())
        return 0
    summary = run.summary()
    print(f"run {run.id}  suite {run.suite}  {summary['status']}  {run.passed_count}/{run.total} passed")
    print(f"started {_time(run.started_at)}  git {run.git_commit or '-'}  prompts {json.dumps(run.prompts)}")
    print_table(reports.SUMMARY_HEADERS, reports.summary_rows(run))
    print()
    rows = [r for r in run.results if args.all or not r.passed or r.status == "flaky"]
    print_table(
        ["CASE", "PROMPT", "MODEL", "PASSED", "STATUS", "SCORE", "REASON"],
        [
            [r.case_id, r.prompt_id, r.model_id, "yes" if r.passed else "NO", r.status, f"{r.score:.3f}", r.reason[:100]]
            for r in rows
        ],
    )
    if not args.all:
        flaky = " or flaky" if any(r.status == "flaky" for r in rows) else ""
        print(f"({len(rows)} failing{flaky} shown; --all for every case)")
    return 0


def cmd_compare(args) -> int:
    from llmops.evaluation.reports import compare
    from llmops.evaluation.storage import load_run

    baseline, current = load_run(args.a, args.database_url), load_run(args.b, args.database_url)
    comparison = compare(baseline, current)
    if args.json:
        print_json(comparison.to_dict())
    else:
        print(f"baseline {baseline.id} {json.dumps(baseline.prompts)}")
        print(f"current  {current.id} {json.dumps(current.prompts)}")
        _print_comparison(comparison)
    return 1 if comparison.regressed else 0


def _read_rows(path: str) -> list[dict[str, Any]]:
    handle = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    rows = []
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise InvalidInput(f"{path}, line {number}: not JSON ({exc})") from None
            if not isinstance(row, dict) or "output" not in row or "context" not in row:
                raise InvalidInput(f"{path}, line {number}: each row needs `context` and `output`")
            rows.append(row)
    return rows


def _faithfulness_scores(args, rows: list[dict[str, Any]]) -> list[FaithfulnessResult]:
    """Each row's result with the scorer the arguments name (`--metric`, `--scorer`, `--model`)."""
    from llmops.evaluation.faithfulness_scorers import JUDGE, METRICS, offline_scorer

    if args.metric not in METRICS:
        raise InvalidInput(f"unknown metric {args.metric!r}; available: {', '.join(METRICS)}")
    scorer_name = args.scorer or METRICS[args.metric]
    if scorer_name == JUDGE:
        if not args.judge_model:
            raise InvalidInput("--scorer judge needs --judge-model MODEL (a model the gateway serves)")
        return asyncio.run(_judge_scores(args, rows))
    scorer = offline_scorer(scorer_name, args.model, args.threshold)
    return [scorer.score(str(row["output"]), row["context"]) for row in rows]


def cmd_score(args) -> int:
    rows = _read_rows(args.input)
    results = _faithfulness_scores(args, rows)
    for number, (row, result) in enumerate(zip(rows, results, strict=True), 1):
        line = {
            "id": row.get("id", number),
            "score": round(result.score, 4),
            "passed": result.passed,
            "unsupported": result.unsupported,
        }
        sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
    return 0


def cmd_calibrate(args) -> int:
    from llmops.evaluation.calibration import calibrate, parse_label

    rows = _read_rows(args.input)
    labels = []
    for number, row in enumerate(rows, 1):
        if "label" not in row:
            raise InvalidInput(f"{args.input}, row {number}: each row needs a human `label` (1 = should pass)")
        try:
            labels.append(parse_label(row["label"]))
        except InvalidInput as exc:
            raise InvalidInput(f"{args.input}, row {number}: {exc.message}") from None
    results = _faithfulness_scores(args, rows)
    threshold = results[0].threshold if results else 0.5
    found = calibrate([r.score for r in results], labels, threshold)
    if args.json:
        print_json(found.to_dict())
        return 0
    print(f"{found.rows} rows, {found.positives} labelled pass, {found.rows - found.positives} labelled fail")
    for title, a in (("at the current threshold", found.at_threshold), ("at the best threshold", found.best)):
        print(f"\n{title} {a.threshold:.3f}: balanced accuracy {a.balanced_accuracy:.3f}, Cohen's kappa {a.kappa:.3f}")
        print_table(
            ["label \\ verdict", "passed", "failed"],
            [["should pass", a.true_pass, a.false_fail], ["should fail", a.false_pass, a.true_fail]],
        )
    from llmops.evaluation.faithfulness_scorers import METRICS, OFFLINE

    scorer = args.scorer or METRICS.get(args.metric, OFFLINE)
    spec = "type: faithfulness" + (f", scorer: {scorer}" if scorer != OFFLINE else "")
    spec += f", model: {json.dumps(args.model)}" if args.model else ""
    print(f"\nTo pin it in a suite: assert: [{{{spec}, threshold: {found.best.threshold:.3f}}}]")
    return 0


async def _judge_scores(args, rows: list[dict[str, Any]]) -> list[FaithfulnessResult]:
    from llmops.evaluation.judge import Judge
    from llmops.gateway.clients import open_client

    async with open_client(args.gateway_url, None, args.gateway_config) as client:
        judge = Judge(client, args.judge_model)
        semaphore = asyncio.Semaphore(args.concurrency)

        async def one(row):
            async with semaphore:
                result = await judge.faithfulness(str(row["output"]), row["context"])
                return replace(result, threshold=args.threshold if args.threshold is not None else result.threshold)

        return await asyncio.gather(*(one(row) for row in rows))


def register(subparsers) -> None:
    url_help = "database URL (default: LLMOPS_DATABASE_URL or sqlite:///./llmops.db)"
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database-url", default=argparse.SUPPRESS, help=url_help)
    gateway = argparse.ArgumentParser(add_help=False)
    gateway.add_argument(
        "--gateway-url",
        default=None,
        help="an llmops gateway (or any OpenAI-compatible server); default LLMOPS_GATEWAY_URL, "
        "else a gateway started in this process. Its key comes from LLMOPS_API_KEY",
    )
    gateway.add_argument("--gateway-config", default=None, help="config of the in-process gateway (default: embedded)")

    group = subparsers.add_parser("eval", help="run eval suites, compare runs, score outputs")
    group.add_argument("--database-url", default=None, help=url_help)
    sub = group.add_subparsers(dest="eval_command", metavar="SUBCOMMAND")
    sub.required = True

    p = sub.add_parser("run", parents=[common, gateway], help="run a suite: every case × prompt × model")
    p.add_argument("suite", help="a suite file, e.g. evals/summarize.yaml")
    add_json_flag(p)
    p.add_argument("--junit", metavar="FILE", help="also write JUnit XML for CI")
    p.add_argument("--baseline", metavar="RUN", help="a run id, or `last`: exit 1 on a regression against it")
    p.add_argument(
        "--concurrency", type=int, default=None,
        help="model calls in flight (default: 32 for the gateway in this process or one on this machine, "
        "8 for a remote one); fewer while the server answers 429",
    )  # fmt: skip
    p.add_argument("--no-cache", action="store_true", help="call the models even for cached requests")
    p.add_argument(
        "--repeat", type=int, metavar="N", default=None,
        help="attempts of every case (over the suite's and the cases' `repeat`); each has its own cache entry",
    )  # fmt: skip
    p.add_argument(
        "--mlflow", nargs="?", const="", default=None, metavar="URI",
        help="log the run to an MLflow tracking server (default URI: the suite's `mlflow:`, else MLFLOW_TRACKING_URI)",
    )  # fmt: skip
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("list", parents=[common], help="stored runs, newest first")
    p.add_argument("--suite", help="only runs of this suite")
    p.add_argument("--limit", type=int, default=20)
    add_json_flag(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("datasets", parents=[common], help="each suite's case versions (content hashes) and the runs on them")
    p.add_argument("--suite", help="only this suite")
    add_json_flag(p)
    p.set_defaults(func=cmd_datasets)

    cases = sub.add_parser("cases", help="make eval cases: from production calls")
    cases_sub = cases.add_subparsers(dest="cases_command", metavar="SOURCE")
    cases_sub.required = True
    p = cases_sub.add_parser(
        "from-ledger", parents=[common],
        help="captured calls of a prompt as cases (real inputs, the served reply as reference)",
        description="Needs the gateway's payload capture (monitoring.capture in its config).",
    )  # fmt: skip
    p.add_argument("--prompt", required=True, help="NAME (every version), NAME@label (its version now) or NAME:VERSION")
    p.add_argument("--since", default="7d", help="calls of the last SPAN: 30m, 24h, 7d (default 7d)")
    p.add_argument("--sample", type=int, default=200, help="at most this many cases, drawn at random (default 200)")
    p.add_argument("--seed", type=int, default=None, help="seed of the random draw, for a repeatable sample")
    p.add_argument(
        "--with-feedback", choices=["down", "up", "any"], default=None,
        help="only calls with feedback: down (a score under 0.5, thumbs down), up, or any",
    )  # fmt: skip
    p.add_argument("-o", "--output", required=True, help="the JSONL file to write (- for stdout)")
    p.add_argument(
        "--gateway-config", default=None,
        help="the gateway config whose capture settings to explain when nothing was captured "
        "(default: LLMOPS_GATEWAY_CONFIG)",
    )  # fmt: skip
    p.set_defaults(func=cmd_cases_from_ledger)

    p = sub.add_parser("show", parents=[common], help="one run: the summary and its failing cases")
    p.add_argument("run", help="a run id (or a unique prefix), or `last`")
    p.add_argument("--all", action="store_true", help="list every case, not only failures")
    add_json_flag(p)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("compare", parents=[common], help="compare two runs; exit 1 when B regresses on A")
    p.add_argument("a", help="the baseline run")
    p.add_argument("b", help="the run to judge")
    add_json_flag(p)
    p.set_defaults(func=cmd_compare)

    scoring = argparse.ArgumentParser(add_help=False, parents=[gateway])
    from llmops.evaluation.faithfulness_scorers import METRICS, SCORERS

    scoring.add_argument("--metric", default="faithfulness", help=f"one of {', '.join(METRICS)}")
    scoring.add_argument(
        "--scorer", choices=list(SCORERS), default=None,
        help="offline (default; also called lexical): no model; entailment: the shipped entailment model; "
        "judge: a model of the gateway (--judge-model)",
    )  # fmt: skip
    scoring.add_argument("--model", metavar="DIR", help="a local Hugging Face detector (HHEM-, MiniCheck-style) to score with")
    scoring.add_argument("--judge-model", help="with --scorer judge: the judge model")
    scoring.add_argument("--threshold", type=float, default=None, help="score at which a row passes (default: the scorer's)")
    scoring.add_argument("--concurrency", type=int, default=8, help="judge calls in flight (default 8)")

    p = sub.add_parser("score", parents=[scoring], help="score JSONL rows ({id, context, output}), one JSON line out each")
    p.add_argument("--input", required=True, help="a JSONL file, or - for stdin")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser(
        "calibrate", parents=[scoring],
        help="agreement of a scorer with human labels ({context, output, label} rows) and the best threshold",
    )  # fmt: skip
    p.add_argument("input", help="a JSONL file of labelled rows, or - for stdin")
    add_json_flag(p)
    p.set_defaults(func=cmd_calibrate)
