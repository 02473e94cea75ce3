"""What the kernel saw during the gateway's slow one-connection turns (needs root).

    sudo python benchmarks/sched_trace.py [--seconds 6] [--slow-ms 1.5]

Runs the gateway as bench_gateway.py does (default governance, one core, gatewaybench's
nginx upstream, wrk at one connection) and records, with ftrace, every context switch,
wake-up and system call on both cores. A turn is one request as wrk sees it: from one
of its sends to the next. For the turns of `--slow-ms` or more it prints where the
gateway's event loop thread spent the turn:

- running on the core, in user space or in a system call (a send to loopback runs the
  receiving side's network stack too);
- runnable, but another task had the core (and which task: a thread of the gateway,
  another process, a kernel thread; the gateway's threads are all called python, and
  the ledger writer shows as priority 125; SCHED_IDLE threads, like side work, as 120);
- waiting for the GIL (a futex wait), and which task had the core meanwhile;
- waiting for the client or the upstream (in epoll): then the delay was on the other
  core, and the tasks that ran there during slow turns are listed, against their share
  of the whole run.

This is how the GIL convoys of the ledger writer and of the worker threads' database
calls were found (see side_work.py); what is left is mostly the other core's doing.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_gateway  # noqa: E402

sys.path.insert(0, str(bench_gateway.BENCH.parent))
import gatewaybench  # noqa: E402

PORT = 4100
URL = f"http://127.0.0.1:{PORT}/v1/chat/completions"
TRACING = Path("/sys/kernel/tracing")
EVENTS = ("sched/sched_switch", "sched/sched_wakeup", "raw_syscalls/sys_enter", "raw_syscalls/sys_exit")
LINE = re.compile(r"^\s*(.+?)-(\d+)\s+\[(\d+)\]\s+\S+\s+([\d.]+): (\w+): (.*)$")
SWITCH = re.compile(
    r"prev_comm=(.*?) prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+) next_prio=(\d+)"
)
SYS_WRITE, SYS_SENDTO, SYS_FUTEX, SYS_EPOLL_WAIT, SYS_EPOLL_PWAIT = 1, 44, 202, 232, 281
FUTEX_WAIT_BITSET_PRIVATE = 0x89  # how CPython's GIL waits (a timed condition wait)


def tracing_available() -> str | None:
    if os.geteuid() != 0:
        return "needs root (ftrace)"
    if not (TRACING / "trace").exists():
        subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACING)], capture_output=True)
    return None if (TRACING / "trace").exists() else f"no tracefs at {TRACING}"


def _set(name: str, value: object) -> None:
    (TRACING / name).write_text(str(value))


def record(seconds: int, work: Path) -> tuple[int, Path]:
    """Run the gateway under wrk with tracing on; returns its pid and the trace file."""
    (work / "bench.yaml").write_text(bench_gateway.CONFIG)
    env = bench_gateway.gateway_env(work)
    key = bench_gateway.make_key(env)
    gatewaybench.start_upstream(str(work))
    code = "import sys; from llmops.cli import main; sys.exit(main(sys.argv[1:]))"
    cmd = ["taskset", "-c", "0", sys.executable, "-c", code, "serve", "--config", str(work / "bench.yaml"),
           "--port", str(PORT), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, stdout=open(work / "gateway.log", "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    trace = work / "trace.txt"
    try:
        if gatewaybench.wait_ready(URL, headers={"Authorization": "Bearer " + key}) is None:
            raise SystemExit(f"the gateway did not start; see {work / 'gateway.log'}")
        gatewaybench.wrk(URL, 1, 2, False, key, str(work))  # warm-up
        _set("tracing_on", 0)
        _set("trace", "")
        _set("buffer_size_kb", 200_000)
        _set("trace_clock", "mono")
        for event in EVENTS:
            _set(f"events/{event}/enable", 1)
        _set("tracing_on", 1)
        client = gatewaybench.wrk(URL, 1, seconds, False, key, str(work))
        _set("tracing_on", 0)
        with open(trace, "wb") as out:
            out.write((TRACING / "trace").read_bytes())
        print(f"client (wrk): p50 {client['p50_ms']:.3f} ms, p99 {client['p99_ms']:.3f} ms, {client['rps']:.0f} req/s")
    finally:
        for event in EVENTS:
            _set(f"events/{event}/enable", 0)
        _set("trace", "")
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        gatewaybench.stop_upstream(str(work))
    return proc.pid, trace


class Turns:
    """Folds the trace into per-turn time of the event loop thread, by state."""

    def __init__(self, loop_tid: int):
        self.loop = loop_tid
        self.state, self.since = "running", None
        self.syscall = None  # the event loop's system call in progress
        self.on_core0 = "?"
        self.parts: Counter = Counter()  # state (and task that had the core) -> seconds
        self.started: float | None = None
        self.turns: list[tuple[float, float, Counter]] = []  # start, duration, parts
        self.core1: list[tuple[float, float, str]] = []  # what ran on the other core
        self._core1_since: float | None = None

    def _enter(self, ts: float, state: str) -> None:
        if self.since is not None:
            blamed = self.on_core0 if self.state in ("runnable", "gil wait") else ""
            if self.state == "running" and self.syscall not in (None, "futex"):
                blamed = "in a system call"
            self.parts[(self.state, blamed)] += ts - self.since
        self.state, self.since = state, ts

    def event(self, ts: float, cpu: int, tid: int, comm: str, name: str, rest: str) -> None:
        if name == "sched_switch":
            prev_comm, prev, prev_state, next_comm, nxt, next_prio = SWITCH.search(rest).groups()
            if cpu != 0:
                if self._core1_since is not None:
                    self.core1.append((self._core1_since, ts, re.sub(r"/\d+$", "", prev_comm)))
                self._core1_since = ts
                return
            if int(prev) == self.loop:
                waiting = "gil wait" if self.syscall == "futex" else "client/upstream"
                self._enter(ts, "runnable" if prev_state.startswith("R") else waiting)
            elif self.state in ("runnable", "gil wait"):
                self._enter(ts, self.state)  # close the outgoing task's share
            self.on_core0 = f"{next_comm}/{nxt} prio {next_prio}" if int(nxt) != self.loop else "?"
            if int(nxt) == self.loop:
                self._enter(ts, "running")
        elif name == "sched_wakeup" and f" pid={self.loop} " in rest and self.state == "client/upstream":
            self._enter(ts, "runnable")
        elif name == "sys_enter" and tid == self.loop:
            self._enter(ts, self.state)  # running in user space until now
            number = int(rest.split()[1])
            if number == SYS_FUTEX and int(rest.split(", ")[1], 16) == FUTEX_WAIT_BITSET_PRIVATE:
                self.syscall = "futex"
            else:
                self.syscall = "epoll" if number in (SYS_EPOLL_WAIT, SYS_EPOLL_PWAIT) else "other"
        elif name == "sys_exit" and tid == self.loop:
            self._enter(ts, self.state)
            self.syscall = None
        elif name == "sys_enter" and comm == "wrk" and int(rest.split()[1]) in (SYS_WRITE, SYS_SENDTO):
            self._enter(ts, self.state)
            if self.started is not None:
                self.turns.append((self.started, ts - self.started, self.parts))
            self.parts, self.started = Counter(), ts


def analyse(loop_tid: int, trace: Path, slow_ms: float) -> None:
    turns = Turns(loop_tid)
    with open(trace, errors="replace") as lines:
        for line in lines:
            match = LINE.match(line)
            if match:
                comm, tid, cpu, ts, name, rest = match.groups()
                turns.event(float(ts), int(cpu), int(tid), comm, name, rest)
    durations = sorted(t for _, t, _ in turns.turns)
    slow = [(start, t, parts) for start, t, parts in turns.turns if t * 1000 >= slow_ms]
    p = lambda q: durations[min(len(durations) - 1, int(len(durations) * q))] * 1000  # noqa: E731
    print(f"turns (wrk send to send): {len(durations)}, p50 {p(0.5):.3f} ms, p99 {p(0.99):.3f} ms; "
          f"{len(slow)} of {slow_ms} ms or more")
    largest: Counter = Counter()
    total: Counter = Counter()
    for _, _, parts in slow:
        (state, blamed), _ = parts.most_common(1)[0]
        largest[f"{state} ({blamed})" if blamed else state] += 1
        for (state, blamed), seconds in parts.items():
            total[f"{state} ({blamed})" if blamed else state] += seconds * 1000
    print("slow turns by their largest part:")
    for what, count in largest.most_common():
        print(f"  {count:4d}  {what}")
    print("time in slow turns (ms):")
    for what, ms in total.most_common(12):
        print(f"  {ms:8.1f}  {what}")
    _other_core(turns.core1, [(start, start + t) for start, t, _ in slow])


def _other_core(core1: list[tuple[float, float, str]], slow_windows: list[tuple[float, float]]) -> None:
    everywhere, in_slow = Counter(), Counter()
    for start, end, task in core1:
        everywhere[task] += end - start
    for a, b in slow_windows:
        for start, end, task in core1:
            if start < b and end > a:
                in_slow[task] += min(b, end) - max(a, start)
    all_time, slow_time = sum(everywhere.values()) or 1, sum(in_slow.values()) or 1
    print("the other core (wrk, nginx): share of time, during slow turns / whole run:")
    for task, seconds in in_slow.most_common(8):
        print(f"  {seconds / slow_time:6.1%} / {everywhere[task] / all_time:6.1%}  {task}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--slow-ms", type=float, default=1.5)
    args = ap.parse_args()
    problem = tracing_available()
    if problem:
        raise SystemExit(f"sched_trace: {problem}")
    bench_gateway.ensure_tools(with_litellm=False)
    work = Path(tempfile.mkdtemp(prefix="llmops-sched-"))
    pid, trace = record(args.seconds, work)
    print(f"event loop thread: {pid}; trace: {trace}")
    analyse(pid, trace, args.slow_ms)


if __name__ == "__main__":
    main()
