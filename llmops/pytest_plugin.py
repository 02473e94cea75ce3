"""pytest collects eval suites: each case × prompt × model of `evals/*.yaml` is a test item.

Wire it with the `pytest11` entry point (`llmops = "llmops.pytest_plugin"`), or
from a conftest.py next to the suites:

    from llmops.pytest_plugin import collect_suite_file

    def pytest_collect_file(parent, file_path):
        return collect_suite_file(parent, file_path)

The first item of a suite runs every selected item of that suite at once (calls in
parallel, cached, stored as one run in the database); each item then reports its own
verdict. A failure shows each assertion with its score and reason, and the output.

A repeated case (`repeat: n`) is still one item: it passes or fails on its gate (see
llmops/evaluation/repeats.py), and the terminal summary lists the flaky ones. Each item
carries its score, status, cost, latency and tokens, and for a repeated case its rate,
95% interval, pass@k and pass^k, as user properties: `--junitxml` writes them as
<property> elements of its <testcase>.

Options: --eval-gateway-url URL (default LLMOPS_GATEWAY_URL, else a gateway in the test
process), --eval-concurrency N, --eval-no-cache, --eval-database-url URL, --eval-repeat N,
--eval-mlflow [URI].
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from llmops.errors import LLMOpsError
from llmops.evaluation.runner import CaseResult, RunResult

if TYPE_CHECKING:
    # pytest exports neither name; they are what Item.repr_failure is declared with.
    from _pytest._code.code import TerminalRepr, TracebackStyle

_SUITE_SUFFIXES = (".yaml", ".yml")
# Per suite file: its run, or the error that stopped it (reported by each of its items).
_RUNS_KEY = pytest.StashKey[dict[str, RunResult | LLMOpsError]]()
_FLAKY_KEY = pytest.StashKey[list[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmops-eval", "llmops eval suites")
    group.addoption("--eval-gateway-url", default=None, help="gateway for eval suites (default: in-process)")
    group.addoption("--eval-gateway-config", default=None, help="config of the in-process gateway")
    group.addoption(
        "--eval-concurrency", type=int, default=None,
        help="model calls in flight per suite (default: 32 for a gateway in this process or on this machine, 8 remote)",
    )
    group.addoption("--eval-no-cache", action="store_true", help="call models even for cached requests")
    group.addoption("--eval-database-url", default=None, help="where runs and the cache are stored")
    group.addoption("--eval-repeat", type=int, default=None, help="attempts of every case (over the suites' repeat)")
    group.addoption(
        "--eval-mlflow", nargs="?", const="", default=None, metavar="URI",
        help="log each suite's run to MLflow (default URI: the suite's mlflow:, else MLFLOW_TRACKING_URI)",
    )  # fmt: skip
    parser.addini("llmops_eval_dirs", "directories whose YAML files are eval suites", type="linelist", default=["evals"])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "llmops_eval: a case × prompt × model of an llmops eval suite")


def _looks_like_suite(path: Path) -> bool:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and "prompts" in data and "cases" in data


def collect_suite_file(parent: pytest.Collector, file_path: Path) -> SuiteFile | None:
    """A collector for an eval suite file, or None for any other file."""
    if file_path.suffix not in _SUITE_SUFFIXES or not _looks_like_suite(file_path):
        return None
    return SuiteFile.from_parent(parent, path=file_path)


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> SuiteFile | None:
    # As an installed plugin: only YAML in the configured eval directories.
    dirs = parent.config.getini("llmops_eval_dirs")
    if file_path.parent.name not in dirs:
        return None
    return collect_suite_file(parent, file_path)


class SuiteFile(pytest.File):
    def collect(self):
        from llmops.evaluation.runner import DEFAULT_MODEL_KEY
        from llmops.evaluation.suites import load_suite

        suite = load_suite(self.path)
        models = [m.key for m in suite.models] or [DEFAULT_MODEL_KEY]
        for case in suite.expanded_cases():
            for prompt in suite.prompts:
                for model in models:
                    key = (case.id or "", prompt.key, model)
                    yield EvalItem.from_parent(self, name=f"{case.id}[{prompt.key}|{model}]", key=key)


class EvalFailure(Exception):
    def __init__(self, result: CaseResult):
        super().__init__(result.reason)
        self.result = result


class EvalItem(pytest.Item):
    def __init__(self, *, key: tuple[str, str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.key = key
        self.add_marker("llmops_eval")

    def runtest(self) -> None:
        run = _run_for(self)
        result = next((r for r in run.results if r.key == self.key), None)
        if result is None:
            pytest.fail(f"the run {run.id} has no result for {self.name}", pytrace=False)
        from llmops.evaluation.reports import case_properties

        self.user_properties.extend(case_properties(result))
        if result.status == "flaky":
            self.config.stash.setdefault(_FLAKY_KEY, []).append(f"{self.nodeid}: {result.reason}")
        if not result.passed:
            raise EvalFailure(result)

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: TracebackStyle | None = None
    ) -> str | TerminalRepr:
        if isinstance(excinfo.value, EvalFailure):
            return format_failure(excinfo.value.result)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.name


def format_failure(result: CaseResult) -> str:
    lines = [f"{result.test_id} on {result.model} ({result.prompt_ref}): {result.reason}"]
    if result.error:
        lines.append(f"error: {result.error}")
    for a in result.assertions:
        mark = "ok  " if a.passed else "FAIL"
        threshold = "" if a.threshold is None else f" (threshold {a.threshold})"
        lines.append(f"  {mark} {a.name}: score {a.score:.3f}{threshold}, weight {a.weight:g}: {a.reason}")
    lines.append(f"case score {result.score:.3f}")
    if result.output is not None:
        lines.append("output:")
        lines.extend("  " + line for line in result.output.splitlines() or [""])
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Flaky cases, passed or not: a green run should not hide them."""
    flaky = config.stash.get(_FLAKY_KEY, [])
    if flaky:
        terminalreporter.section("flaky eval cases")
        for line in flaky:
            terminalreporter.write_line(line)


def _run_for(item: EvalItem) -> RunResult:
    """The suite's run, made on first use with every item of that suite still selected."""
    runs = item.session.stash.setdefault(_RUNS_KEY, {})
    path = str(item.path)
    if path not in runs:
        from llmops.gateway.clients import run_suite_file

        selected = {i.key for i in item.session.items if isinstance(i, EvalItem) and str(i.path) == path}
        options = item.config.option
        try:
            runs[path], _ = run_suite_file(
                item.path,
                gateway_url=options.eval_gateway_url,
                gateway_config=options.eval_gateway_config,
                concurrency=options.eval_concurrency,
                use_cache=not options.eval_no_cache,
                database_url=options.eval_database_url,
                select=selected.__contains__,
                repeat=options.eval_repeat,
                mlflow=True if options.eval_mlflow == "" else options.eval_mlflow,
            )
        except LLMOpsError as exc:  # e.g. a prompt the registry lacks: no traceback, the message
            runs[path] = exc
    found = runs[path]
    if isinstance(found, LLMOpsError):
        pytest.fail(f"the suite could not run: {found.message}", pytrace=False)
    return found
