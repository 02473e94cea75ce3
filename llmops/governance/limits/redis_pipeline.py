"""Automatic pipelining of the limiter's script calls to Redis.

Every request makes two script calls (admit, settle). Sent one by one, each holds a
pooled connection from the moment it is written until the event loop gets round to
its reply; with hundreds of requests in flight on a busy loop, that is most of the
time, so calls queue for connections, and a queue long enough failed calls (503 when
budgets fail closed) although Redis itself answered in microseconds.

Here the calls made while a pipeline is on the wire are queued and sent together as
the next pipeline: one write and one read for the lot. At most `in_flight` pipelines
are on the wire at once, each on its own connection, so a call never waits for a
connection, only for the pipeline ahead of it; at low load a call goes out at once
(one loop turn later), and under load the round trips per request fall below one.

EVALSHA only: the scripts are loaded once, and again when Redis answers NOSCRIPT (it
was restarted or flushed); a call that got NOSCRIPT did not run, so it is sent again.
No call is ever retried after an error of the connection: a script that may have run
must not run twice.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from typing import Any

MAX_BATCH = 1000  # calls per pipeline; a Lua call is tens of microseconds in Redis


class Script:
    """A Lua script known by its SHA-1, with its source to load it on NOSCRIPT."""

    def __init__(self, source: str):
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


class AutoPipeline:
    def __init__(self, redis: Any, *, in_flight: int = 4, max_batch: int = MAX_BATCH):
        self._redis = redis
        self._max_batch = max_batch
        self._queue: list[tuple[Script, list[str], list[Any], asyncio.Future]] = []
        self._free = max(1, in_flight)  # pipelines that may go on the wire now
        self._scheduled = False
        self._tasks: set[asyncio.Task] = set()
        # Figures for /metrics: pipelines sent (round trips) and script calls in them.
        self.round_trips = 0
        self.calls = 0

    def call(self, script: Script, keys: list[str], args: list[Any]) -> asyncio.Future:
        """Queue one EVALSHA; the future gets its reply, or the error of its pipeline."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((script, keys, args, future))
        if self._free and not self._scheduled:
            # Sent after the current loop turn, with whatever else this turn queued.
            self._scheduled = True
            loop.call_soon(self._send_next)
        return future

    def _send_next(self) -> None:
        self._scheduled = False
        loop = asyncio.get_running_loop()
        while self._queue and self._free:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            self._free -= 1
            task = loop.create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[Script, list[str], list[Any], asyncio.Future]]) -> None:
        from redis.exceptions import NoScriptError

        try:
            pipe = self._redis.pipeline(transaction=False)
            for script, keys, args, _ in batch:
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            self.round_trips += 1
            self.calls += len(batch)
            replies = await pipe.execute(raise_on_error=False)
        except BaseException as exc:
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else ConnectionError("cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            self._free += 1
            if self._queue and not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._send_next)
        unloaded: list[tuple[Script, list[str], list[Any], asyncio.Future]] = []
        for item, reply in zip(batch, replies, strict=True):
            future = item[3]
            if isinstance(reply, NoScriptError):
                unloaded.append(item)
            elif future.done():
                continue
            elif isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)
        if unloaded:
            await self._load_and_resend(unloaded)

    async def _load_and_resend(self, items: list[tuple[Script, list[str], list[Any], asyncio.Future]]) -> None:
        try:
            for source in {item[0].source for item in items}:
                await self._redis.script_load(source)
        except Exception as exc:
            for *_, future in items:
                if not future.done():
                    future.set_exception(exc)
            return
        for script, keys, args, future in items:
            if future.done():
                continue
            self.call(script, keys, args).add_done_callback(functools.partial(_copy, target=future))

    async def aclose(self) -> None:
        """Wait for the pipelines on the wire (their calls are settles worth keeping)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _copy(source: asyncio.Future, target: asyncio.Future) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif source.exception() is not None:
        target.set_exception(source.exception())  # type: ignore[arg-type]
    else:
        target.set_result(source.result())
