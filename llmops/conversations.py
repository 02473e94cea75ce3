"""Conversations the gateway continues: what `previous_response_id` builds on.

The Responses API lets a client send only its new turn and name the response it
follows. A chat-completions upstream keeps nothing between calls, so the gateway
keeps, per response, the chat messages a follow-up continues from: in the database
beside the ledger (every gateway process and replica sees them), readable only with
the key that made them, expiring after `ttl_days` (30, as OpenAI keeps responses),
and bounded: a conversation over MAX_BYTES is not kept, and a follow-up to it says so.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import orjson
from sqlalchemy import JSON, Column, String, delete
from sqlmodel import Field, SQLModel

from llmops.columns import UTCDateTime, table_of, utcnow
from llmops.db import session_scope
from llmops.errors import NotFound
from llmops.governance.side_work import run_side_work
from llmops.migrations import Migration, create_tables

log = logging.getLogger("llmops.conversations")

MAX_BYTES = 4 * 1024 * 1024
PRUNE_EVERY = 1000  # saves between two deletions of expired rows


class StoredConversation(SQLModel, table=True):
    __tablename__ = "gateway_conversations"

    id: str = Field(sa_column=Column(String(80), primary_key=True))  # the response id
    key_id: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))
    messages: list = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False, index=True))


MIGRATIONS = [Migration("conversations.0001", create_tables("gateway_conversations"))]


class ConversationStore:
    def __init__(self, database_url: str | None = None, *, ttl_days: float = 30.0):
        self.database_url = database_url
        self.ttl = timedelta(days=ttl_days)
        self._saves = 0

    async def load(self, response_id: str, key_id: str | None) -> list[dict]:
        """The chat messages to continue from; NotFound for an unknown, expired or
        other key's response (one answer for all three: ids are not for probing)."""
        messages = await run_side_work(self._read, response_id, key_id, awaited=True)
        if messages is None:
            raise NotFound(
                f"no stored response {response_id!r} for this key: it is unknown, expired, was made with "
                "another key or with store=false, or its conversation grew past the size the gateway keeps",
                param="previous_response_id",
            )
        return messages

    async def save(self, response_id: str, key_id: str | None, messages: list[dict]) -> None:
        if len(orjson.dumps(messages)) > MAX_BYTES:
            log.warning("response %s: conversation over %d bytes, not kept", response_id, MAX_BYTES)
            return
        self._saves += 1
        prune = self._saves % PRUNE_EVERY == 1
        await run_side_work(self._write, response_id, key_id, messages, prune, awaited=True)

    def _read(self, response_id: str, key_id: str | None) -> list[dict] | None:
        with session_scope(self.database_url) as session:
            row = session.get(StoredConversation, response_id)
            if row is None or row.key_id != key_id or row.created_at < utcnow() - self.ttl:
                return None
            return list(row.messages)

    def _write(self, response_id: str, key_id: str | None, messages: list[dict], prune: bool) -> None:
        with session_scope(self.database_url) as session:
            session.add(StoredConversation(id=response_id, key_id=key_id, messages=messages))
            if prune:
                table = table_of(StoredConversation)
                session.execute(delete(table).where(table.c.created_at < utcnow() - self.ttl))
