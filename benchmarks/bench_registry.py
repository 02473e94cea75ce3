"""Prompt registry lookups: cached vs uncached cost, render cost, and how stale a cache gets.

    python benchmarks/bench_registry.py                     # a temporary SQLite file
    python benchmarks/bench_registry.py --database-url postgresql://postgres@127.0.0.1:5432/test

Staleness: this process polls `get_cached("bench@production")` every millisecond while
another process moves the label right after the entry was cached (the worst case);
the delay from that process's commit to the first cached read that sees it stays
under the TTL (plus one poll).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from llmops import Registry
from llmops.registry.service import render_view

MOVER = """
import sys, time
from llmops import Registry
reg = Registry(sys.argv[1])
reg.engine
print("ready", flush=True)
sys.stdin.readline()
reg.set_label(sys.argv[2], int(sys.argv[3]), "production")
print(time.time(), flush=True)
"""


def per_call(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def human(seconds: float) -> str:
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.2f} ms"


def staleness(url: str, name: str, ttl: float, target: int) -> float:
    """Seconds from another process's label move to this process's cached read seeing it."""
    reg = Registry(url, cache_ttl=ttl)
    before = reg.get_cached(f"{name}@production").version
    mover = subprocess.Popen(
        [sys.executable, "-c", MOVER, url, name, str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert mover.stdout.readline().strip() == "ready"
    # Refresh the entry, then move the label at once: the worst case, the move lands
    # just after this process cached the old target.
    reg.get_cached(f"{name}@production")
    mover.stdin.write("go\n")
    mover.stdin.flush()
    seen = None
    while seen is None:
        if reg.get_cached(f"{name}@production").version != before:
            seen = time.time()
        else:
            time.sleep(0.001)
    committed = float(mover.stdout.readline())
    mover.wait(timeout=30)
    return seen - committed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--lookups", type=int, default=1_000_000, help="cached lookups to time")
    parser.add_argument("--uncached", type=int, default=500, help="uncached lookups to time")
    parser.add_argument("--ttl", type=float, default=1.0, help="cache TTL for the staleness runs (s)")
    parser.add_argument("--moves", type=int, default=3, help="label moves for the staleness runs")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory()
    url = args.database_url or f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    name = f"bench-{uuid.uuid4().hex[:8]}"
    reg = Registry(url)
    for i in range(3):
        reg.create_version(
            name,
            messages=[
                {"role": "system", "content": f"You are a news editor (v{i + 1}). Three sentences."},
                {"role": "user", "content": "Article:\n{{ text }}"},
            ],
            model_config={"model": "demo", "temperature": 0.2, "max_tokens": 256},
        )
    reg.set_label(name, 1, "production")
    ref = f"{name}@production"
    backend = url.split(":", 1)[0]

    uncached = per_call(lambda: reg.get(ref), args.uncached)
    reg.get_cached(ref)
    cached = per_call(lambda: reg.get_cached(ref), args.lookups)
    view = reg.get_cached(ref)
    rendered = per_call(lambda: render_view(view, {"text": "Acme sold 3 million units in 2024."}), 20_000)

    print(f"backend: {backend}")
    print(f"uncached lookup  get({ref!r}):        {human(uncached)} per lookup ({args.uncached} lookups)")
    print(f"cached lookup    get_cached({ref!r}): {human(cached)} per lookup ({args.lookups} lookups)")
    print(f"render of a cached chat version:               {human(rendered)} per render")
    delays = [staleness(url, name, args.ttl, target=2 + i % 2) for i in range(args.moves)]
    print(
        f"staleness with ttl={args.ttl:g}s: label moved by another process seen after "
        + ", ".join(f"{d:.3f}s" for d in delays)
        + f" (max {max(delays):.3f}s; bound = ttl + 1 ms poll)"
    )
    tmp.cleanup()


if __name__ == "__main__":
    main()
