"""`llmops guard`: run the guardrail checks from the command line.

  llmops guard check "TEXT" [--json] [--config F] [--model M] [--output]
  llmops guard scan FILE.jsonl [--field F] [--no-fail] [--config F] [--model M] [--output]
  llmops guard eval FILE.jsonl [--config F] [--model M] [--json]

`check` exits 0 when the text may pass (perhaps redacted or flagged) and 1 when a check
blocks it. `scan` reads JSONL rows with a `text` field (or `--field`) and an optional
`id`, writes one JSON line per row ({"id", "flagged", "blocked", "checks", "redacted"},
or {"id", "error"} for a row it could not check) and, for CI, exits 1 when any row is
blocked or could not be checked (`--no-fail`: exit 0 all the same). `eval` measures the
input checks on labelled rows (see llmops/guardrails/evaluate.py).

Every check runs as in the gateway, those that ask a model (`judge`, `moderation`) or run
in a thread (`hf_classifier`) too: when --config is a gateway config, their models are
called through its `models:` (deployments, fallbacks, retries; no keys, limits or ledger).
Rows of `scan` and `eval` are checked `--concurrency` at a time (default 8).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import yaml

from llmops.commands.output import add_json_flag, print_json, print_table
from llmops.errors import InvalidInput

if TYPE_CHECKING:
    from llmops.guardrails import Pipeline
    from llmops.guardrails.evaluate import EvalReport
    from llmops.guardrails.pipeline import GuardrailResult

SCAN_DESCRIPTION = """\
Run the guardrail checks on every row of a JSONL file, as the gateway runs them on a
request (the input checks; with --output, the checks on a model's reply).

Input: one JSON object per line; blank lines are skipped.
  text   the text to check (a string; --field names another field)
  id     optional: any JSON value that names the row in the output (default: the line number)
Other fields are ignored."""

SCAN_EPILOG = """\
Output, on stdout, one JSON line per row, in input order:
  {"id": ..., "flagged": true|false, "blocked": true|false, "checks": [names of the checks
   that fired], "redacted": "the text after redaction (the text itself when nothing was redacted)"}
A row that is not a JSON object with a string text field gets {"id": ..., "error": "..."}.
On stderr, a last line: "scanned N rows: F flagged, B blocked, E not checked".

Exit status: 0 when no row was blocked and every row was checked; 1 when a row was
blocked or could not be checked (a line that is not JSON, or has no text), and for a
file or config that cannot be read; --no-fail makes the first two exit 0.

Example:
  llmops guard scan rows.jsonl > verdicts.jsonl
  llmops guard scan prompts.jsonl --field prompt --config guardrails.yaml --no-fail"""


EVAL_DESCRIPTION = """\
Measure the input guardrails on your own labelled rows: for each check and overall, the
share of should-be-stopped rows caught, the share of benign rows stopped, and balanced
accuracy, each with a 95% Wilson confidence interval.

Input: one JSON object per line; blank lines are skipped.
  text   the text (string, required)
  label  1 / true / attack / harmful / unsafe / injection / block = should be stopped;
         0 / false / benign / safe / clean / allow = should pass (required)
  role   optional: the message role the text arrives in (default user; tool or function
         for a document or tool result)
  check  optional: the check expected to stop the row (e.g. harmful, injection,
         indirect_injection); only rows naming a check count in its "caught" column"""

EVAL_EPILOG = """\
"Stopped" for one check means it fired on the row; overall it means the pipeline blocked
the row. Every benign row counts in every check's "benign stopped".

Exit status: 0 when the rows were measured; 1 for a file or config that cannot be read
or a row without text or a usable label.

Example:
  llmops guard eval labelled.jsonl
  llmops guard eval labelled.jsonl --config guardrails.yaml --json"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("guard", help="run guardrail checks on text (injection, PII, secrets...)")
    sub = parser.add_subparsers(dest="guard_command", metavar="SUBCOMMAND")
    sub.required = True

    check = sub.add_parser("check", help="check one text; exit status 1 if a check blocks it")
    check.add_argument("text", help='the text to check ("-" reads standard input)')
    _common(check)
    add_json_flag(check)
    check.set_defaults(func=run_check)

    scan = sub.add_parser(
        "scan",
        help="check every row of a JSONL file; one JSON line per row; exit status 1 if a row is blocked",
        description=SCAN_DESCRIPTION,
        epilog=SCAN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scan.add_argument(
        "file",
        help='JSONL: one JSON object per line, e.g. {"id": "r1", "text": "..."} ("-" reads standard input)',
    )
    scan.add_argument("--field", default="text", help="the field holding the text (default: text)")
    scan.add_argument(
        "--no-fail",
        action="store_true",
        help="exit 0 even when rows are blocked or could not be checked (report only)",
    )
    _common(scan)
    _concurrency(scan)
    scan.set_defaults(func=run_scan)

    ev = sub.add_parser(
        "eval",
        help="measure the input checks on labelled JSONL rows: caught, benign stopped, balanced accuracy (95%% CI)",
        description=EVAL_DESCRIPTION,
        epilog=EVAL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument("file", help='JSONL rows, e.g. {"text": "...", "label": "attack", "check": "injection"} ("-": stdin)')
    ev.add_argument("--config", help="YAML with the guardrails (a gateway config or a bare guardrails section)")
    ev.add_argument("--model", help="apply this model's overrides from the config")
    _concurrency(ev)
    add_json_flag(ev)
    ev.set_defaults(func=run_eval)


def _common(parser) -> None:
    parser.add_argument("--config", help="YAML with the guardrails (a gateway config or a bare guardrails section)")
    parser.add_argument("--model", help="apply this model's overrides from the config")
    parser.add_argument("--output", action="store_true", help="run the output checks (as on a model reply)")


def _concurrency(parser) -> None:
    parser.add_argument("--concurrency", type=int, default=8, help="rows checked at once (default 8)")


@contextlib.asynccontextmanager
async def _pipeline(args) -> AsyncIterator[Pipeline]:
    """The configured guardrails; checks that ask a model reach the config's models."""
    from llmops.guardrails import GuardrailsConfig, Pipeline

    if not args.config:
        yield Pipeline(GuardrailsConfig.default())
        return
    if not _is_gateway_config(args.config):
        # A bare guardrails section: a check that asks a model says it has none.
        yield Pipeline(GuardrailsConfig.from_file(args.config))
        return
    from llmops.gateway.check_models import RouterJudge
    from llmops.gateway.config import load_config

    gateway = load_config(args.config)  # its guardrails as the gateway reads them
    async with RouterJudge(gateway) as judge:
        yield Pipeline(gateway.guardrails, judge=judge)


def _is_gateway_config(path: str) -> bool:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False  # GuardrailsConfig.from_file has said what is wrong with it
    return isinstance(data, dict) and isinstance(data.get("models"), list)


async def _check(pipe: Pipeline, text: str, args) -> GuardrailResult:
    if args.output:
        return await pipe.check_output_async(text, model=args.model)
    return await pipe.check_input_async(text, model=args.model)


def run_check(args) -> int:
    text = sys.stdin.read() if args.text == "-" else args.text
    result = asyncio.run(_check_one(text, args))
    if args.json:
        print_json(
            {
                "blocked": result.blocked,
                "blocked_by": result.blocked_by,
                "message": result.message,
                "flagged": result.flagged,
                "verdicts": result.verdicts,
                "redacted": result.text,
            }
        )
    else:
        if result.blocked:
            print(f"blocked by {result.blocked_by}: {result.message}")
        elif result.flagged:
            print("allowed, with findings")
        else:
            print("allowed: no check fired")
        if result.verdicts:
            print_table(
                ["CHECK", "ACTION", "LABELS", "MATCHED", "SCORE"],
                [
                    [v["check"], v["action"], ", ".join(v["labels"]) or v.get("error", ""), v["matched"], v["score"]]
                    for v in result.verdicts
                ],
            )
        if result.redacted:
            print(f"redacted: {result.text}")
    return 1 if result.blocked else 0


async def _check_one(text: str, args) -> GuardrailResult:
    async with _pipeline(args) as pipe:
        return await _check(pipe, text, args)


def run_scan(args) -> int:
    if args.concurrency < 1:
        raise InvalidInput("--concurrency must be at least 1")
    source = sys.stdin if args.file == "-" else _open(args.file)
    try:
        rows, flagged, blocked, unchecked = asyncio.run(_scan(source, args))
    finally:
        if source is not sys.stdin:
            source.close()
    counts = f"{flagged} flagged, {blocked} blocked, {unchecked} not checked"
    print(f"scanned {rows} row{'' if rows == 1 else 's'}: {counts}", file=sys.stderr)
    if (blocked or unchecked) and not args.no_fail:
        return 1
    return 0


async def _scan(source: TextIO, args) -> tuple[int, int, int, int]:
    rows = flagged = blocked = unchecked = 0
    async with _pipeline(args) as pipe:
        # Rows are read and checked a window at a time and written in input order.
        lines = ((number, line) for number, line in enumerate(source, start=1) if line.strip())
        while window := list(itertools.islice(lines, args.concurrency)):
            for out in await asyncio.gather(*(_scan_row(pipe, line, number, args) for number, line in window)):
                rows += 1
                flagged += bool(out.get("flagged"))
                blocked += bool(out.get("blocked"))
                unchecked += "error" in out
                sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
    return rows, flagged, blocked, unchecked


def _open(path: str):
    try:
        return open(path, encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None


async def _scan_row(pipe: Pipeline, line: str, number: int, args) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except ValueError:
        return {"id": number, "error": f"line {number} is not JSON"}
    if not isinstance(row, dict) or not isinstance(row.get(args.field), str):
        row_id = row.get("id", number) if isinstance(row, dict) else number
        return {"id": row_id, "error": f"line {number} has no string field {args.field!r}"}
    result = await _check(pipe, row[args.field], args)
    return {
        "id": row.get("id", number),
        "flagged": result.flagged,
        "blocked": result.blocked,
        "checks": result.checks,
        "redacted": result.text,
    }


def run_eval(args) -> int:
    if args.concurrency < 1:
        raise InvalidInput("--concurrency must be at least 1")
    from llmops.guardrails.evaluate import read_rows

    source = sys.stdin if args.file == "-" else _open(args.file)
    try:
        rows = read_rows(source)
    finally:
        if source is not sys.stdin:
            source.close()
    if not rows:
        raise InvalidInput(f"{args.file} has no rows")
    report = asyncio.run(_evaluate(rows, args))
    if args.json:
        print_json(report.to_dict())
        return 0
    print(f"{report.rows} rows: {report.positives} should be stopped, {report.rows - report.positives} benign")
    table = [["overall (blocked)", *_cells(report.overall)]]
    table += [[name, *_cells(figures)] for name, figures in report.checks.items()]
    print_table(["CHECK", "CAUGHT", "95% CI", "BENIGN STOPPED", "95% CI", "BALANCED ACC", "95% CI"], table)
    return 0


async def _evaluate(rows, args) -> EvalReport:
    from llmops.guardrails.evaluate import evaluate_async

    async with _pipeline(args) as pipe:
        return await evaluate_async(rows, pipe, model=args.model, concurrency=args.concurrency)


def _cells(figures) -> list[str]:
    def rate(r) -> list[str]:
        if not r.total:
            return ["-", "-"]
        low, high = r.interval
        return [f"{r.value:.3f} ({r.hits}/{r.total})", f"{low:.3f}-{high:.3f}"]

    ba = figures.balanced_accuracy
    interval = figures.balanced_interval
    tail = [f"{ba:.3f}", f"{interval[0]:.3f}-{interval[1]:.3f}"] if ba is not None and interval else ["-", "-"]
    return [*rate(figures.caught), *rate(figures.benign_stopped), *tail]
