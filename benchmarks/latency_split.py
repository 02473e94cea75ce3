"""Where the one-connection latency goes: inside the gateway's handler or around it,
and whether its slow requests line up with garbage collection or the ledger writer.

    python benchmarks/latency_split.py [--seconds 10]

Runs the gateway as bench_gateway.py does (default governance on, one core, gatewaybench's
nginx upstream, wrk at one connection), with probes added in its process: the start and
end of every inference request (`inference.handle`: from the parsed head to the last
byte handed to the socket, the upstream's answer included), every garbage collection,
and every cycle of the ledger writer thread. It prints:

- the client's p50 / p99 (wrk) beside the handler's, and the time between one handler's
  end and the next one's start (the HTTP protocol, the kernel and the client);
- what the slow requests (at or over the handler's p99) spent their time on: waiting
  for the upstream (`Router.call`), the event loop thread's CPU, or neither;
- whole turns (one handler's end to the next one's), and their p99 after wrk's
  correction for coordinated omission (a turn k times the mean adds about k samples),
  with the number of stalls of 1.5 ms or more: a few of those decide the client's p99;
- collections by generation and their total time;
- the share of wall time the ledger writer was busy, and the share of slow requests
  (at or over the handler's p99) that overlapped a writer cycle or a collection, beside
  the share of *all* requests that did: a cause shows as a much higher share among the
  slow ones than among all.

The probes wrap internals (`inference.handle`, `Router.call`, `LedgerWriter._cycle`): a diagnostic for
the tail, not a figure to compare with LiteLLM (bench_gateway.py is that).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_gateway  # noqa: E402

sys.path.insert(0, str(bench_gateway.BENCH.parent))
import gatewaybench  # noqa: E402

PORT = 4100
URL = f"http://127.0.0.1:{PORT}/v1/chat/completions"


def serve_with_probes(config: str, trace: str) -> int:
    """The gateway (`llmops serve`) with timing probes; SIGUSR1 writes them to `trace`."""
    from llmops.cli import main
    from llmops.gateway import inference, router
    from llmops.governance import ledger

    clock, cpu_clock = time.perf_counter, time.thread_time
    # Per request: start, end, the event loop thread's CPU time, the upstream phase.
    requests: list[tuple[float, float, float, float]] = []
    collections: list[tuple[float, float, int]] = []
    cycles: list[tuple[float, float]] = []
    handle, cycle, route = inference.handle, ledger.LedgerWriter._cycle, router.Router.call
    upstream = [0.0]  # of the request in hand: one connection, one request at a time

    async def timed_handle(*args, **kwargs):
        start, cpu = clock(), cpu_clock()
        upstream[0] = 0.0
        try:
            return await handle(*args, **kwargs)
        finally:
            requests.append((start, clock(), cpu_clock() - cpu, upstream[0]))

    async def timed_route(self, *args, **kwargs):
        start = clock()
        try:
            return await route(self, *args, **kwargs)
        finally:
            upstream[0] = clock() - start

    def timed_cycle(self):
        start = clock()
        try:
            return cycle(self)
        finally:
            cycles.append((start, clock()))

    gc_started = [0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_started[0] = clock()
        else:
            collections.append((gc_started[0], clock(), info["generation"]))

    def dump(*_) -> None:
        part = Path(trace + ".part")
        part.write_text(json.dumps({"requests": requests, "gc": collections, "writer": cycles}))
        part.replace(trace)  # whole or absent: the parent polls for it

    inference.handle = timed_handle
    router.Router.call = timed_route
    ledger.LedgerWriter._cycle = timed_cycle
    gc.callbacks.append(on_gc)
    signal.signal(signal.SIGUSR1, dump)
    return main(["serve", "--config", config, "--port", str(PORT), "--log-level", "warning"])


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def overlap_share(intervals: list[tuple[float, float]], events: list) -> float:
    """The share of `intervals` that overlap any of `events` (start, end, ...)."""
    if not intervals:
        return 0.0
    hits = sum(any(e[0] < end and e[1] > start for e in events) for start, end in intervals)
    return hits / len(intervals)


def report(client: dict, trace: dict, window_start: float) -> None:
    timed = [r for r in trace["requests"] if r[0] >= window_start]
    requests = [(start, end) for start, end, _, _ in timed]
    collections = [c for c in trace["gc"] if c[1] >= window_start]
    cycles = [c for c in trace["writer"] if c[1] >= window_start]
    ms = sorted((end - start) * 1000 for start, end in requests)
    gaps = sorted((requests[i + 1][0] - requests[i][1]) * 1000 for i in range(len(requests) - 1))
    wall = requests[-1][1] - requests[0][0]
    p99 = percentile(ms, 0.99) / 1000
    slow_timed = [r for r in timed if r[1] - r[0] >= p99]
    slow = [(start, end) for start, end, _, _ in slow_timed]
    print(f"client (wrk)        p50 {client['p50_ms']:.3f} ms   p99 {client['p99_ms']:.3f} ms   {client['rps']:.0f} req/s")
    print(f"handler             p50 {percentile(ms, 0.5):.3f} ms   p99 {percentile(ms, 0.99):.3f} ms   "
          f"p99.9 {percentile(ms, 0.999):.3f} ms   ({len(ms)} requests)")
    print(f"between handlers    p50 {percentile(gaps, 0.5):.3f} ms   p99 {percentile(gaps, 0.99):.3f} ms")
    for generation in (0, 1, 2):
        found = [c for c in collections if c[2] == generation]
        print(f"gc generation {generation}     {len(found)} collections, {sum(e - s for s, e, _ in found) * 1000:.1f} ms in all")
    # One request's whole turn, end to end, as a one-connection client sees it; and the
    # same with wrk's correction (`corrected`): what decides gatewaybench's p99.
    turns = sorted((requests[i + 1][1] - requests[i][1]) * 1000 for i in range(len(requests) - 1))
    mean = sum(turns) / len(turns)
    corrected = sorted(turns + [t - k * mean for t in turns for k in range(1, int(t / mean)) if t - k * mean > mean])
    stalls = sum(t >= 1.5 for t in turns)
    print(f"whole turns         p50 {percentile(turns, 0.5):.3f} ms   p99 {percentile(turns, 0.99):.3f} ms   "
          f"p99 as wrk corrects it {percentile(corrected, 0.99):.3f} ms   ({stalls} turns of 1.5 ms or more)")
    # What the slow requests did with their time: waited for the upstream (its answer,
    # and the event loop noticing it), ran on the CPU, or neither (off the core).
    kinds = {"upstream": 0, "cpu": 0, "neither": 0}
    for start, end, cpu, up in slow_timed:
        kinds["upstream" if up > (end - start) / 2 else "cpu" if cpu > (end - start) / 2 else "neither"] += 1
    print(f"slow requests       {sum(kinds.values())}: most of their time waiting on the upstream {kinds['upstream']}, "
          f"on the CPU {kinds['cpu']}, neither {kinds['neither']}; typical upstream phase "
          f"{percentile(sorted(r[3] for r in timed), 0.5) * 1000:.3f} ms, CPU {percentile(sorted(r[2] for r in timed), 0.5) * 1000:.3f} ms")
    busy = sum(e - s for s, e in cycles)
    print(f"ledger writer       busy {busy / wall:.0%} of the wall time, in {len(cycles)} cycles")
    for name, events in (("ledger writer", cycles), ("gc", collections)):
        print(f"overlap with {name:13s} slow requests {overlap_share(slow, events):.0%}, all requests "
              f"{overlap_share(requests, events):.0%}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--serve", nargs=2, metavar=("CONFIG", "TRACE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        sys.exit(serve_with_probes(*args.serve))
    bench_gateway.ensure_tools(with_litellm=False)
    work = Path(tempfile.mkdtemp(prefix="llmops-split-"))
    (work / "bench.yaml").write_text(bench_gateway.CONFIG)
    env = bench_gateway.gateway_env(work)
    key = bench_gateway.make_key(env)
    trace = work / "trace.json"
    gatewaybench.start_upstream(str(work))
    cmd = ["taskset", "-c", "0", sys.executable, __file__, "--serve", str(work / "bench.yaml"), str(trace)]
    log = open(work / "gateway.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if gatewaybench.wait_ready(URL, headers={"Authorization": "Bearer " + key}) is None:
            raise SystemExit(f"the gateway did not start; see {log.name}")
        gatewaybench.wrk(URL, 1, 2, False, key, str(work))  # warm-up
        # The probes' clock is the gateway process's own perf_counter, which this process
        # cannot read: the window starts at the first request after the warm-up's.
        marker = len(json.loads(_dump(proc, trace))["requests"])
        client = gatewaybench.wrk(URL, 1, args.seconds, False, key, str(work))
        data = json.loads(_dump(proc, trace))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
        gatewaybench.stop_upstream(str(work))
    report(client, data, data["requests"][marker][0])


def _dump(proc: subprocess.Popen, trace: Path) -> str:
    trace.unlink(missing_ok=True)
    os.kill(proc.pid, signal.SIGUSR1)
    for _ in range(100):
        if trace.exists():
            return trace.read_text()
        time.sleep(0.05)
    raise SystemExit("the gateway wrote no trace")


if __name__ == "__main__":
    main()
