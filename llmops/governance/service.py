"""The gateway's one entry into governance: authenticate, authorize_admin, admit,
settle, record. Built once at start-up; every request goes through the same object."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from llmops.db import get_engine
from llmops.governance.access import Access
from llmops.governance.config import LedgerConfig, LimitsConfig
from llmops.governance.keys import MASTER_ID, KeyInfo, KeyStore
from llmops.governance.ledger import LedgerWriter
from llmops.governance.ledger_storage import Maintenance
from llmops.governance.limits import Limiter, Reservation, SpendBook, limiter_from_config
from llmops.settings import get_settings

log = logging.getLogger("llmops.governance")


class Governance:
    def __init__(
        self,
        *,
        database_url: str | None,
        redis_url: str | None,
        master_key: str | None,
        keys_required: bool,
        limits: LimitsConfig,
        ledger: LedgerConfig,
    ):
        self.keys = KeyStore(database_url=database_url, master_key=master_key or "",
                             outage_grace=limits.key_grace, read_timeout=limits.database_timeout)
        self.access = Access(self.keys, master_key_set=bool(master_key), keys_required=keys_required)
        # Who a token is, and whether it may use the admin API: the access rules' own
        # methods, bound here so a request pays for no extra call layer.
        self.authenticate = self.access.authenticate
        self.authorize_admin = self.access.authorize_admin
        self.limiter: Limiter = limiter_from_config(limits, redis_url=redis_url, database_url=database_url)
        ledger_options = ledger.model_dump(exclude={"spill_dir", "retention_days"})
        spill_dir = ledger.spill_dir or get_settings().spill_dir
        self.ledger = LedgerWriter(database_url=database_url, spill_dir=spill_dir, **ledger_options)
        self._database_timeout = limits.database_timeout
        self._stopping = threading.Event()
        if self.limiter.spend_book is not None:
            # Budget spend a shutdown could not write is spilled beside the ledger's rows.
            self.limiter.spend_book.spill_dir = spill_dir
        # Next months' partitions and retention, hourly (one replica at a time does it).
        self.ledger_maintenance = Maintenance(lambda: get_engine(database_url), ledger.retention_days)

    def start(self) -> None:
        self.ledger.start()
        self.ledger_maintenance.start()
        book = self.limiter.spend_book
        if book is not None:
            # Spend an earlier shutdown spilled, written before budgets are first read when
            # the database answers in time; otherwise retried in the background.
            replay = threading.Thread(target=self._replay_spend, args=(book,), name="llmops-spend-replay",
                                      daemon=True)
            replay.start()
            replay.join(self._database_timeout)

    def _replay_spend(self, book: SpendBook) -> None:
        wait = 1.0
        while not self._stopping.is_set():
            try:
                book.replay_spilled()
                return
            except Exception as exc:
                log.warning("budget spend spilled at an earlier shutdown not written yet (%s); retrying in %gs",
                            type(exc).__name__, wait)
            self._stopping.wait(wait)
            wait = min(wait * 2, 60.0)

    async def aclose(self) -> None:
        self._stopping.set()
        self.ledger_maintenance.stop()
        await self.keys.aclose()
        await self.limiter.aclose()  # flushes budget spend to the database
        # Drain every queued row before the process exits (SIGTERM included).
        await asyncio.to_thread(self.ledger.close, 30)

    @property
    def admin(self):
        """The admin API's functions (keys and budgets), JSON in, JSON out."""
        return self.keys.admin

    def tracks_spend(self, key: KeyInfo | None, user: str | None) -> bool:
        """Whether `admit` for this caller wants the call's estimated tokens and cost."""
        if not _limited(key):
            return False
        assert key is not None
        return bool(key.tpm) or self.limiter.tracks_spend(key, user)

    async def admit(
        self, key: KeyInfo | None, *, user: str | None, estimated_tokens: int, max_cost: float | None
    ) -> Reservation | None:
        """Reserve rate and budget for one call, or raise LimitExceeded (429) or
        LimiterUnavailable (503). Anonymous callers and the master key have no limits."""
        if not _limited(key):
            return None
        assert key is not None
        return await self.limiter.admit(key, user=user, estimated_tokens=estimated_tokens, max_cost=max_cost)

    async def settle(self, reservation: Reservation | None, *, tokens: int, cost: float | None, served: bool) -> None:
        if reservation is None:
            return
        try:
            if served or cost:
                await self.limiter.settle(reservation, tokens, cost)
            else:
                await self.limiter.release(reservation)
        except Exception:  # accounting must never turn a served reply into an error
            log.exception("settling a reservation failed")

    def record(self, row: dict[str, Any]) -> None:
        """Queue one ledger row; never blocks, never raises."""
        self.ledger.record(row)


def _limited(key: KeyInfo | None) -> bool:
    return key is not None and key.id != MASTER_ID
