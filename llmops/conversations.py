"""Conversations the gateway continues: what `previous_response_id` builds on.

The Responses API lets a client send only its new turn and name the response it
follows. A chat-completions upstream keeps nothing between calls, so the gateway
keeps, per response, the chat messages a follow-up continues from: in the database
beside the ledger (every gateway process and replica sees them), readable only with
the key that made them, expiring after `ttl_days` (30, as OpenAI keeps responses),
and bounded: a conversation over MAX_BYTES is not kept, and a follow-up to it says so.
A response an upstream made itself (the Responses API passed through natively) is
kept there; here only whose it is and which deployment holds it, so that no key can
continue another key's conversation through the gateway's one upstream account.

Writes are behind the reply: a saved conversation is kept in this process at once (a
follow-up here finds it) and written in batches every `flush_interval`, as side work no
request waits for; a follow-up on another replica that misses waits out one flush and
reads again. An awaited write per call cost the Responses API three quarters of its
throughput.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from sqlalchemy import JSON, Column, String, delete, insert
from sqlmodel import Field, SQLModel

from llmops.columns import UTCDateTime, table_of, utcnow
from llmops.db import get_engine, session_scope
from llmops.errors import NotFound
from llmops.governance.side_work import run_side_work
from llmops.migrations import Migration, create_tables

log = logging.getLogger("llmops.conversations")

MAX_BYTES = 4 * 1024 * 1024
RECENT = 10_000  # conversations kept in this process for follow-ups
PRUNE_EVERY = 100  # flushes between two deletions of expired rows


class StoredConversation(SQLModel, table=True):
    __tablename__ = "gateway_conversations"

    id: str = Field(sa_column=Column(String(80), primary_key=True))  # the response id
    key_id: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))
    messages: list = Field(sa_column=Column(JSON, nullable=False))
    # The deployment that keeps the response itself (native), or None (kept here).
    upstream: str | None = Field(default=None, sa_column=Column(String(300), nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False, index=True))


MIGRATIONS = [Migration("conversations.0001", create_tables("gateway_conversations"))]

Row = dict  # {"id", "key_id", "messages", "upstream", "created_at"}


@dataclass(frozen=True)
class Conversation:
    messages: list[dict]  # the chat messages to continue from (empty when native)
    upstream: str | None  # the deployment that keeps it, when it was made natively


class ConversationStore:
    def __init__(self, database_url: str | None = None, *, ttl_days: float = 30.0, flush_interval: float = 0.1):
        self.database_url = database_url
        self.ttl = timedelta(days=ttl_days)
        self.flush_interval = flush_interval
        self._recent: OrderedDict[str, Row] = OrderedDict()
        self._pending: list[Row] = []
        self._flush: asyncio.Task | None = None
        self._flushes = 0

    async def load(self, response_id: str, key_id: str | None) -> Conversation:
        """What to continue from; NotFound for an unknown, expired or other key's
        response (one answer for all three: ids are not for probing)."""
        row = self._recent.get(response_id)
        if row is None:
            row = await run_side_work(self._read, response_id, awaited=True)
            if row is None:
                # Made on another replica a moment ago: its write may be one flush away.
                await asyncio.sleep(2 * self.flush_interval)
                row = await run_side_work(self._read, response_id, awaited=True)
        if row is None or row["key_id"] != key_id or row["created_at"] < utcnow() - self.ttl:
            raise NotFound(
                f"no stored response {response_id!r} for this key: it is unknown, expired, was made with "
                "another key or with store=false, or its conversation grew past the size the gateway keeps",
                param="previous_response_id",
            )
        return Conversation(list(row["messages"]), row["upstream"])

    def save(self, response_id: str, key_id: str | None, messages: list[dict], upstream: str | None = None) -> None:
        """Keep a conversation; never blocks, and is written within `flush_interval`."""
        if len(orjson.dumps(messages)) > MAX_BYTES:
            log.warning("response %s: conversation over %d bytes, not kept", response_id, MAX_BYTES)
            return
        row = {"id": response_id, "key_id": key_id, "messages": messages, "upstream": upstream, "created_at": utcnow()}
        self._recent[response_id] = row
        if len(self._recent) > RECENT:
            self._recent.popitem(last=False)
        self._pending.append(row)
        if self._flush is None:
            self._flush = asyncio.get_running_loop().create_task(self._flush_later())

    async def aclose(self) -> None:
        """Write what is pending; call on shutdown."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        await self._write_pending()

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.flush_interval)
        self._flush = None
        await self._write_pending()

    async def _write_pending(self) -> None:
        rows, self._pending = self._pending, []
        if not rows:
            return
        self._flushes += 1
        prune = self._flushes % PRUNE_EVERY == 1
        try:
            await run_side_work(self._write, rows, prune)
        except Exception:  # the replies went out; a lost conversation only fails its follow-up
            log.exception("writing %d conversations failed", len(rows))

    def _read(self, response_id: str) -> Row | None:
        with session_scope(self.database_url) as session:
            found = session.get(StoredConversation, response_id)
            if found is None:
                return None
            return {"id": found.id, "key_id": found.key_id, "messages": found.messages, "upstream": found.upstream,
                    "created_at": found.created_at}

    def _write(self, rows: list[Row], prune: bool) -> None:
        table = table_of(StoredConversation)
        with get_engine(self.database_url).begin() as conn:
            conn.execute(insert(table), rows)
            if prune:
                conn.execute(delete(table).where(table.c.created_at < utcnow() - self.ttl))
