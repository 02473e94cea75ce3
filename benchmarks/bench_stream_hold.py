"""How much the output guardrails hold a stream back, and what they cost per chunk (issue 20).

Realistic replies are cut into the deltas an OpenAI-style upstream sends: tokens of the
o200k_base encoding (words with their leading space, 1-6 characters mostly), decoded one
by one. Each reply is streamed through `Pipeline(...).output_stream()`, the way the
gateway streams, with the default guardrails (secrets redacted) and with secrets and
personal data redacted; "fixed 48" is the rule before issue 20 (`hold=48`: a 48-character
tail held back and a cut only at whitespace), measured in the same run.

Figures:

- same feed: share of text deltas whose characters all go out in the feed() that
  received them.
- word-late: share released no later than the feed that completed their word (the feed
  whose text shows the word ended: whitespace after it, or the end of the reply). "same
  feed" deltas count as word-late too: this is "out at once, or delayed only by a
  partial word".
- held: characters held back after a feed, mean and max.
- first word: in how many replies the first complete word went out in the feed that
  completed it (target: all), and the mean feed delay of the first text.
- cost: CPU time per feed() (process time, best of --rounds), and the time added per
  500-token stream over the same stream with output checks off (target: at most 1 ms).

    .venv/bin/python benchmarks/bench_stream_hold.py [--rounds 5] [--repeat 40]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llmops import tokens  # noqa: E402, F401  (points tiktoken at the offline encodings)
from llmops.guardrails import Pipeline  # noqa: E402

REPLIES = {
    "prose": (
        "Hello! Lisbon in early October is a lovely choice: the summer crowds are gone, the light is soft and "
        "the evenings are still warm enough to eat outside. Here is a plan that keeps walking reasonable and "
        "mixes the famous sights with quieter neighbourhoods.\n\n"
        "Day one. Arrive at Santa Apolonia around noon, drop your bags in Alfama and have a slow lunch. In the "
        "afternoon, walk up to the castle for the view, then wander down through the lanes to the cathedral. "
        "For dinner, try a small tasca where the menu is written on a board; expect grilled fish, a jug of "
        "house wine and a bill that is kinder than you fear. If you hear fado spilling out of a doorway, go in.\n\n"
        "Day two. Take the tram to Belem early, before the queues, and see the monastery first. The custard "
        "tarts are worth the wait, but the line moves quickly after ten. Spend the afternoon in the modern "
        "art museum or along the river, and come back for sunset at one of the viewpoints above Bairro Alto. "
        "It's busy, so arrive a little early and bring a jumper: the wind picks up after dark.\n\n"
        "Day three. Keep the morning free for a market and a last coffee, and leave time to get to the station. "
        "Tipping is modest; rounding up is fine. Would you like restaurant suggestions for each evening?"
    ),
    "technical": (
        "The function is slow because `item not in out` scans the whole list for every item, so the loop is "
        "quadratic: with 100,000 records that is about five billion comparisons. Use a set to remember what "
        "you have seen and keep the list for the order:\n\n"
        "```python\ndef dedupe(items):\n    seen = set()\n    out = []\n    for item in items:\n"
        "        if item not in seen:\n            seen.add(item)\n            out.append(item)\n    return out\n```\n\n"
        "This runs in linear time. Note: the items must be hashable; for dicts, dedupe on a key such as "
        "`record[\"id\"]` instead. If the upstream sends the same batch twice after a timeout, make the write "
        "idempotent too (an upsert keyed on the id), so a retry cannot create duplicates in the first place. "
        "On Python 3.12 the version above takes about 40 ms for 100k items on a laptop."
    ),
    "with secrets": (
        "Here is the configuration you asked for. Keep the real values out of the repository:\n\n"
        "OPENAI_API_KEY=sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789\n"
        'DB_PASSWORD="Hunter2Xyz9!"\n'
        "GITLAB_TOKEN=glpat-AbCdEfGhIj-KlMnOpQrSt\n\n"
        "Then restart the service. If the database still refuses the connection, check that the user in "
        "postgres://admin:S3cr3tPass@db.example.com/app has the right grants, and contact the on-call engineer "
        "at oncall@example.com or +44 20 7946 0958. Rotate the key afterwards, since it was shared in chat."
    ),
}
CONFIGS = {
    "default (secrets)": None,
    "secrets + pii": {"output": [{"check": "secrets", "action": "redact"}, {"check": "pii", "action": "redact"}]},
}


def deltas_of(text: str) -> list[str]:
    import tiktoken

    encoding = tiktoken.get_encoding("o200k_base")
    return [encoding.decode([t]) for t in encoding.encode(text)]


def flow(pipe: Pipeline, deltas: list[str], hold: int | None) -> dict:
    """Per-delta release figures for one stream (raw characters: the replies' prose is
    never redacted, and a redacted secret counts as released when its placeholder is)."""
    guard = pipe.output_stream(hold=hold)
    fed = 0
    released_at: list[int] = []  # per fed character, the feed index that released it
    held_after: list[int] = []
    for k, delta in enumerate(deltas):
        guard.feed(delta)
        fed += len(delta)
        released = fed - guard.held
        released_at.extend([k] * (released - len(released_at)))
        held_after.append(guard.held)
    guard.finish()
    released_at.extend([len(deltas)] * (fed - len(released_at)))
    text = "".join(deltas)
    # The feed that completed the word each character is in: the one carrying the first
    # whitespace after it (or the finish, for the last word).
    completed_at = [len(deltas)] * len(text)
    owner = []
    for k, delta in enumerate(deltas):
        owner.extend([k] * len(delta))
    nxt = len(deltas)
    for i in range(len(text) - 1, -1, -1):
        if text[i].isspace():
            nxt = owner[i]
        completed_at[i] = nxt if not text[i].isspace() else owner[i]
    same = word_late = counted = 0
    pos = 0
    for k, delta in enumerate(deltas):
        chars = range(pos, pos + len(delta))
        pos += len(delta)
        if not delta:
            continue
        counted += 1
        if all(released_at[i] == k for i in chars):
            same += 1
        if all(released_at[i] <= max(k, completed_at[i]) for i in chars):
            word_late += 1
    first = next(i for i, c in enumerate(text) if not c.isspace())
    first_end = next((i for i in range(first, len(text)) if text[i].isspace()), len(text))
    first_word_on_time = all(released_at[i] <= completed_at[first] for i in range(first, first_end))
    return {
        "deltas": counted,
        "same": same,
        "word_late": word_late,
        "held": held_after,
        "first_word_on_time": first_word_on_time,
        "first_delay": released_at[first] - owner[first],
    }


def cpu_per_stream(pipe: Pipeline, deltas: list[str], hold: int | None, repeat: int, rounds: int) -> float:
    """Best-of-rounds process time of one whole stream (create, feed every delta, finish), in us."""
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        gc.disable()
        try:
            start = time.process_time()
            for _ in range(repeat):
                guard = pipe.output_stream(hold=hold)
                for delta in deltas:
                    guard.feed(delta)
                guard.finish()
            best = min(best, (time.process_time() - start) / repeat)
        finally:
            gc.enable()
    return best * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()
    print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}  (cpus: {os.cpu_count()})")
    streams = {name: deltas_of(text) for name, text in REPLIES.items()}
    for name, deltas in streams.items():
        print(f"reply {name!r}: {len(deltas)} deltas, {sum(map(len, deltas))} characters, "
              f"{sum(1 <= len(d) <= 6 for d in deltas) / len(deltas):.0%} of 1-6 characters")
    off = Pipeline({"output": []})
    modes = [("adaptive", None), ("fixed 48", 48)]
    print()
    print(f"{'checks':<19} {'hold':<9} {'same feed':>9} {'word-late':>9} {'held avg':>8} {'max':>4} "
          f"{'1st word':>8} {'us/feed':>8} {'+us/500 tok':>11}")
    failures = []
    for config_name, config in CONFIGS.items():
        pipe = Pipeline(config)
        for mode, hold in modes:
            deltas_total = same = word_late = on_time = first_delay = 0
            held: list[int] = []
            cpu = cpu_off = 0.0
            feeds = 0
            for deltas in streams.values():
                f = flow(pipe, deltas, hold)
                deltas_total += f["deltas"]
                same += f["same"]
                word_late += f["word_late"]
                held += f["held"]
                on_time += f["first_word_on_time"]
                first_delay += f["first_delay"]
                cpu += cpu_per_stream(pipe, deltas, hold, args.repeat, args.rounds)
                cpu_off += cpu_per_stream(off, deltas, hold, args.repeat, args.rounds)
                feeds += len(deltas)
            per_feed = cpu / feeds
            added_500 = (cpu - cpu_off) / feeds * 500
            print(f"{config_name:<19} {mode:<9} {same / deltas_total:>9.1%} {word_late / deltas_total:>9.1%} "
                  f"{sum(held) / len(held):>8.1f} {max(held):>4} {on_time:>4}/{len(streams):<3} "
                  f"{per_feed:>8.2f} {added_500:>11.0f}")
            if mode == "adaptive":
                if on_time != len(streams):
                    failures.append(f"{config_name}: the first word was late in {len(streams) - on_time} replies")
                if config is None and added_500 > 1000:
                    failures.append(f"{config_name}: {added_500:.0f} us added per 500-token stream (target 1000)")
    print()
    print("targets: first complete word out in the feed that completed it; default checks add <= 1 ms "
          "per 500-token stream")
    for failure in failures:
        print("MISSED:", failure)
    if not failures:
        print("all targets met")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
