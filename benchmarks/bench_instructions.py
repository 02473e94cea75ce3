"""Instructions per request of the gateway, counted by callgrind: a figure that a busy
or throttled machine does not move.

    python benchmarks/bench_instructions.py [--requests 300] [--variants full,no-ledger,...]

On a shared machine CPU time per request drifts by half within the hour (seen here:
365 to 637 us for the same build), so a change of a few percent cannot be told from
noise by timing it. Valgrind's callgrind counts the instructions the process executes
instead: the same build gives the same count within 1-2% (timers and garbage
collection still follow the clock).

Each variant of bench_request_cpu.py (`full`, `no-ledger`, `noguard-no-ledger`,
`bare-no-ledger`, `floor`) runs in its own process under callgrind with counting off;
once warmed up (and its ledger flushed) the count is switched on for `--requests` chat
calls and the ledger's flush of their rows, then dumped. Instructions are not time:
cache misses and system calls are not in them. Use this to compare builds, and
bench_gateway.py for what a client sees.

Needs valgrind (apt) and gatewaybench's nginx upstream (started here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_request_cpu  # noqa: E402
from bench_request_cpu import bench_gateway, gatewaybench  # noqa: E402

VARIANTS = ("full", "no-ledger", "noguard-no-ledger", "bare-no-ledger", "floor")


async def child(variant: str, requests: int, work: Path, signals: Path) -> None:
    """Warm up, then make `requests` calls between the parent's 'go' and our 'done'."""
    run = await bench_request_cpu.prepare(variant, work)
    (signals / "ready").touch()
    while not (signals / "go").exists():
        await asyncio.sleep(0.05)
    for _ in range(requests):
        await run.one()
    if run.ledger is not None:
        run.ledger.flush()  # the window's rows are written inside the window
    (signals / "done").touch()
    while not (signals / "end").exists():
        await asyncio.sleep(0.05)
    await run.close()


def _wait_for(path: Path, proc: subprocess.Popen, log: Path, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the child under callgrind stopped before {path.name}; see {log}")
        time.sleep(0.2)


def _callgrind_control(proc: subprocess.Popen, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(proc.pid)], check=True, capture_output=True)


def count(variant: str, requests: int) -> int:
    """Instructions per request of one variant, in a fresh process under callgrind."""
    work = Path(tempfile.mkdtemp(prefix="llmops-instr-"))
    signals = work / "signals"
    signals.mkdir()
    env = bench_request_cpu.child_env(variant, work)
    env["PYTHONHASHSEED"] = "0"  # the same string hashes, hence the same dict probes, every run
    out = work / "callgrind.out"
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
           sys.executable, __file__, "--child", variant, "--requests", str(requests),
           "--work", str(work), "--signals", str(signals)]
    log = work / "child.log"
    with open(log, "w") as handle:
        proc = subprocess.Popen(cmd, env=env, stdout=handle, stderr=subprocess.STDOUT)
    try:
        _wait_for(signals / "ready", proc, log)
        _callgrind_control(proc, "-i", "on")
        (signals / "go").touch()
        _wait_for(signals / "done", proc, log)
        _callgrind_control(proc, "-d")  # the window, into callgrind.out.1
        (signals / "end").touch()
        proc.wait(300)
    finally:
        if proc.poll() is None:
            proc.kill()
    # The dump taken at 'done' holds the window only (counting was off before 'go').
    dump = Path(f"{out}.1")
    totals = re.search(r"^totals:\s+(\d+)", dump.read_text(), re.M)
    if totals is None:
        raise SystemExit(f"no totals in {dump}")
    shutil.rmtree(work, ignore_errors=True)
    return int(totals.group(1)) // requests


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--child")
    ap.add_argument("--work", type=Path)
    ap.add_argument("--signals", type=Path)
    args = ap.parse_args()
    if args.child:
        asyncio.run(child(args.child, args.requests, args.work, args.signals))
        return
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        subprocess.run(["apt-get", "install", "-y", "-qq", "valgrind"], check=True)
    bench_gateway.ensure_tools(with_litellm=False)
    upstream = Path(tempfile.mkdtemp(prefix="llmops-instr-upstream-"))
    gatewaybench.start_upstream(str(upstream))
    try:
        for variant in args.variants.split(","):
            print(json.dumps({"variant": variant, "instructions_per_request": count(variant, args.requests)}), flush=True)
    finally:
        gatewaybench.stop_upstream(str(upstream))


if __name__ == "__main__":
    main()
