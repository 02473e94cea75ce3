"""The response cache: the same model, messages and parameters are answered from the database.

So a re-run of a suite whose prompts did not change costs nothing and takes no time.
A cached response keeps the latency and cost it had when it was made (so latency and
cost assertions judge the same thing on every run) and is marked `cached`.

Each answer's commit starts as it arrives, not at the end of the run: answers arriving
together share one statement (while one commit runs, the next batch fills), on a thread
of its own, and the run waits for them all at its end or when it is cancelled (`drain`,
Ctrl-C). So an interrupted run, started again, calls only for the rest. Lookups arriving
together share one query too.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from llmops.columns import table_of, utcnow
from llmops.db import get_engine, session_scope
from llmops.evaluation.client import ModelClient, ModelResponse, PromptRef
from llmops.evaluation.models import EvalCacheEntry


def cache_key(model: str, messages: list[dict], params: dict[str, Any], attempt: int = 0) -> str:
    """The first attempt keeps the key it always had; each repeat has its own, so a
    repeated case makes `repeat` real calls once and replays all of them afterwards."""
    asked: dict[str, Any] = {"model": model, "messages": messages, "params": params}
    if attempt:
        asked["attempt"] = attempt
    payload = json.dumps(asked, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


class ResponseCache:
    def __init__(self, database_url: str | None = None) -> None:
        self.database_url = database_url

    def get_many(self, keys: list[str]) -> dict[str, ModelResponse]:
        """The cached answers among `keys`, by key (one query per 500 keys)."""
        from sqlmodel import col, select

        found: dict[str, ModelResponse] = {}
        unique = list(dict.fromkeys(keys))
        with session_scope(self.database_url) as session:
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                for row in session.exec(select(EvalCacheEntry).where(col(EvalCacheEntry.key).in_(chunk))):
                    found[row.key] = ModelResponse(
                        text=row.text,
                        usage=dict(row.usage),
                        cost=row.cost,
                        latency_ms=row.latency_ms,
                        cached=True,
                        tool_calls=list(row.tool_calls or []),
                    )
        return found

    def put_many(self, rows: list[tuple[str, str, ModelResponse]]) -> None:
        """Store answers ((key, model, response) each) in one statement; a key stored
        before (by another run, or before --no-cache asked again) takes the new answer."""
        now = utcnow()
        values = {
            key: {
                "key": key, "model": model, "text": response.text, "usage": response.usage, "cost": response.cost,
                "latency_ms": response.latency_ms, "created_at": now, "tool_calls": response.tool_calls or None,
            }
            for key, model, response in rows
        }  # fmt: skip
        engine = get_engine(self.database_url)
        with engine.begin() as connection:
            connection.execute(_upsert(engine.dialect.name), list(values.values()))

    def clear(self) -> int:
        from sqlmodel import delete

        with session_scope(self.database_url) as session:
            result = session.exec(delete(EvalCacheEntry))
            return result.rowcount or 0


@functools.cache
def _upsert(dialect: str) -> Any:
    """The insert-or-replace of answers, built once per dialect (an ORM merge per row took
    a SELECT each, and the GIL at every step, from a run's busy event loop)."""
    table = table_of(EvalCacheEntry)
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
    changed = ("model", "text", "usage", "cost", "latency_ms", "created_at", "tool_calls")
    return statement.on_conflict_do_update(index_elements=["key"], set_={c: statement.excluded[c] for c in changed})


@dataclass
class _Batch:
    rows: list[tuple[str, str, ModelResponse]] = field(default_factory=list)


@dataclass
class _Lookup:
    keys: list[str] = field(default_factory=list)
    done: asyncio.Future[dict[str, ModelResponse]] | None = None


class CachedClient:
    """A ModelClient that answers repeated chat calls from a ResponseCache."""

    def __init__(self, client: ModelClient, cache: ResponseCache, *, read: bool = True) -> None:
        self.client = client
        self.cache = cache
        # --no-cache: always call the model, but store the fresh answer for the next run.
        self.read = read
        self.hits = 0
        self.misses = 0
        self.stored = 0  # answers committed to the cache by this client
        self._batch: _Batch | None = None  # the answers waiting for the next commit
        self._lookup: _Lookup | None = None  # the keys waiting for the next read
        self._read_lock = asyncio.Lock()
        self._reads: set[asyncio.Task[None]] = set()
        self._write_lock = asyncio.Lock()
        self._writes: set[asyncio.Task[None]] = set()
        self._failure: Exception | None = None  # a commit that failed
        # Commits get a thread of their own: in the shared pool they would queue behind the
        # lookups of every case not yet started (a large run starts them all at once).
        self._writer: ThreadPoolExecutor | None = None

    async def chat(
        self,
        model: str,
        messages: list[dict],
        params: dict[str, Any],
        prompt: PromptRef | None = None,
        *,
        attempt: int = 0,
    ) -> ModelResponse:
        key = cache_key(model, messages, params, attempt)  # what was asked, however it is sent
        if self.read:
            hit = await self._get(key)
            if hit is not None:
                self.hits += 1
                return hit
        self.misses += 1
        response = await self.client.chat(model, messages, params, prompt)
        self._store(key, model, response)
        return response

    async def _get(self, key: str) -> ModelResponse | None:
        """Lookups arriving together share one query (a run starts all its cases at once:
        one query, not a thread and a session for each)."""
        lookup = self._lookup
        if lookup is None:
            lookup = self._lookup = _Lookup(done=asyncio.get_running_loop().create_future())
            task = asyncio.ensure_future(self._read(lookup))
            self._reads.add(task)
            task.add_done_callback(self._reads.discard)
        lookup.keys.append(key)
        assert lookup.done is not None
        found = (await asyncio.shield(lookup.done)).get(key)
        # Each caller its own copy: two cases asking the same get separate answers.
        return None if found is None else replace(found, usage=dict(found.usage), tool_calls=list(found.tool_calls))

    async def _read(self, lookup: _Lookup) -> None:
        assert lookup.done is not None
        async with self._read_lock:  # one read at a time; the next lookup fills meanwhile
            if self._lookup is lookup:
                self._lookup = None
            try:
                found = await asyncio.to_thread(self.cache.get_many, lookup.keys)
            except Exception as exc:
                lookup.done.set_exception(exc)
                return
            lookup.done.set_result(found)

    def _store(self, key: str, model: str, response: ModelResponse) -> None:
        batch = self._batch
        if batch is None:
            batch = self._batch = _Batch()
            task = asyncio.ensure_future(self._commit(batch))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)
        batch.rows.append((key, model, response))
        # The commit starts now; the case goes on to its grading without waiting for it (a
        # run's busy loop can keep the writer thread from the GIL for a while). `drain`
        # waits for every commit at the run's end, and when Ctrl-C cancels it.

    async def _commit(self, batch: _Batch) -> None:
        async with self._write_lock:  # one commit at a time; the next batch fills meanwhile
            if self._batch is batch:
                self._batch = None
            if self._writer is None:
                self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eval-cache-writer")
            try:
                await asyncio.get_running_loop().run_in_executor(self._writer, self.cache.put_many, batch.rows)
            except Exception as exc:
                self._failure = exc  # drain raises it
                return
            self.stored += len(batch.rows)

    async def drain(self) -> None:
        """Wait until every answer received is committed (the run's end, or its
        cancellation); a commit that failed raises here."""
        while self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        if self._writer is not None:
            self._writer.shutdown(wait=False)  # idle now: every commit is done
            self._writer = None
        failed, self._failure = self._failure, None
        if failed is not None:
            raise failed

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        return await self.client.embed(model, texts)
