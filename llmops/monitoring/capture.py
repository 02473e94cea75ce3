"""Payload capture: a sampled share of calls keeps its request and reply text.

On the request path the gateway asks `sampled(call)` (a dict lookup and a random draw)
and, for the few sampled calls, `keep(...)` (a deque append). A writer thread takes the
queue every `flush_interval`: it turns bodies into text, redacts it (redact.py), cuts
each text at `max_chars`, and inserts the rows; every `prune_interval` it deletes rows
past their retention and, past the size cap, the oldest. A crash loses at most the
queue: captures are a sample, not a record (the ledger is the record).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from llmops.governance.side_work import set_nice
from llmops.monitoring.background import BackgroundQueue
from llmops.monitoring.config import CaptureConfig
from llmops.monitoring.models import PAYLOADS
from llmops.monitoring.redact import Redactor
from llmops.monitoring.texts import as_text, request_text

log = logging.getLogger("llmops.monitoring")

WRITER_NICE = 10
_MAX_SHARE_KEYS = 10_000  # (model, prompt) pairs remembered; clients choose model names


class PayloadCapture(BackgroundQueue[tuple[Any, ...]]):
    thread_name = "llmops-capture"

    def __init__(self, config: CaptureConfig, database_url: str | None = None):
        super().__init__(config.max_queue)
        self.config = config
        self.database_url = database_url
        self._shares: dict[tuple[str, str], float] = {}
        self._redact = Redactor(config.redact)
        self._next_prune = 0.0
        self.written = 0
        self.pruned = 0

    # -- the request path ----------------------------------------------------------------

    def sampled(self, call: Any) -> bool:
        """Whether this call's text is kept: its model's and prompt's share, drawn once."""
        key = (call.model or "", call.prompt_name or "")
        share = self._shares.get(key)
        if share is None:
            if len(self._shares) >= _MAX_SHARE_KEYS:
                self._shares.clear()
            share = self._shares[key] = self.config.share(*key)
        return share > 0 and random.random() < share

    def keep(self, call: Any, body: dict[str, Any], replies: Sequence[str]) -> None:
        """Queue a sampled call (a gateway `Call`, its upstream body, its reply texts)."""
        self._put(
            (
                call.id,
                call.created_at,
                call.endpoint,
                call.model,
                call.prompt_name,
                call.prompt_version,
                call.variant,
                body,
                list(replies),
                call.prompt_variables,
            )
        )

    def stats(self) -> dict[str, int]:
        return {
            "queued": len(self._queue),
            "written": self.written,
            "dropped": self.dropped,
            "pruned": self.pruned,
        }

    # -- the writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        set_nice(threading.get_native_id(), WRITER_NICE)
        while True:
            self._wake.wait(self.config.flush_interval)
            self._wake.clear()
            try:
                self.flush()
                if time.monotonic() >= self._next_prune:
                    self._next_prune = time.monotonic() + self.config.prune_interval
                    self.prune()
            except Exception:
                log.exception("monitoring capture: writing or pruning failed; will retry")
            if self._stop:
                try:
                    self.flush()
                except Exception:
                    log.exception("monitoring capture: the last flush failed")
                return

    def _engine(self) -> Engine:
        from llmops.db import get_engine

        return get_engine(self.database_url)

    def row(self, item: tuple[Any, ...]) -> dict[str, Any]:
        """A queued call as a table row: text extracted, redacted and cut to size."""
        rid, created, endpoint, model, prompt, version, variant, body, replies, variables = item
        limit = self.config.max_chars
        texts: list[str | None] = []
        truncated = False
        context = as_text((variables or {}).get(self.config.context_variable))
        for raw in (request_text(body), "\n\n".join(replies), context):
            if raw is None:
                texts.append(None)
                continue
            if len(raw) > limit:
                # Cut before redacting a little past the cap, so a secret that straddles
                # the cut is still recognised and never half-stored.
                raw, truncated = raw[: limit + 200], True
            texts.append(self._redact(raw)[:limit])
        request, response, context = texts
        created = created if isinstance(created, datetime) else datetime.now(UTC)
        return {
            "id": rid,
            "created_at": created,
            "expires_at": created + timedelta(days=self.config.retention_days),
            "endpoint": endpoint,
            "model": model,
            "prompt_name": prompt,
            "prompt_version": version,
            "variant": variant,
            "request_text": request or "",
            "response_text": response or "",
            "context": context,
            "truncated": truncated,
            "chars": len(request or "") + len(response or "") + len(context or ""),
            "scored_at": None,
        }

    def flush(self) -> int:
        items = []
        while self._queue:
            try:
                items.append(self._queue.popleft())
            except IndexError:
                break
        if not items:
            return 0
        rows = [self.row(item) for item in items]
        engine = self._engine()
        try:
            with engine.begin() as conn:
                conn.execute(PAYLOADS.insert(), rows)
        except IntegrityError:  # a request id seen before (a retried flush): insert the others
            for row in rows:
                try:
                    with engine.begin() as conn:
                        conn.execute(PAYLOADS.insert(), [row])
                except IntegrityError:
                    self.dropped += 1
                    rows = [r for r in rows if r is not row]
        self.written += len(rows)
        return len(rows)

    def prune(self, now: datetime | None = None) -> int:
        """Delete rows past retention, then the oldest beyond the size cap."""
        n = prune_payloads(
            self._engine(), max_chars_total=int(self.config.max_megabytes * 1_000_000), now=now
        )
        self.pruned += n
        return n


def prune_payloads(engine: Engine, *, max_chars_total: int | None, now: datetime | None = None) -> int:
    now = now or datetime.now(UTC)
    t = PAYLOADS.c
    with engine.begin() as conn:
        removed = conn.execute(delete(PAYLOADS).where(t.expires_at <= now)).rowcount or 0
        if max_chars_total is None:
            return removed
        total = conn.execute(select(func.coalesce(func.sum(t.chars), 0))).scalar_one()
        if total <= max_chars_total:
            return removed
        # Newest first: keep rows while they fit, delete the rest (the oldest).
        kept = 0
        cutoff: datetime | None = None
        for created, chars in conn.execute(select(t.created_at, t.chars).order_by(t.created_at.desc())):
            kept += chars
            if kept > max_chars_total:
                cutoff = created
                break
        if cutoff is not None:
            removed += conn.execute(delete(PAYLOADS).where(t.created_at <= cutoff)).rowcount or 0
    return removed
