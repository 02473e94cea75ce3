"""The shared limiter: limits and budget counters in Redis, so every gateway process
enforces one limit. One Lua script call per admit and one per settle; each script
checks and updates all counters of a request atomically, on Redis's own clock.

Layout (prefix P, default "llmops:"):
  P r:{key_id}    hash   n (requests in window), t (tokens in window), {res_id}: tokens
  P rq:{key_id}   list   "{expires_ms}:{res_id}", oldest first (the sliding window log)
  P p:{key_id}    zset   res_id -> lease deadline (requests in flight)
  P b:{scope}:{subject}:{period_id}   hash  spent, reserved (nano-USD), {res_id}: reserved
  P bl:{scope}:{subject}:{period_id}  zset  res_id -> lease deadline

Leases: a slot or a reservation whose process died without settling is reclaimed after
`lease_seconds` (longer than any request may run). Money is kept in integer nano-USD.
A budget counter missing from Redis is initialised from the database's spend first.
Needs a single Redis (not Redis Cluster): a script touches keys of several budgets.

Redis down: each setting fails open or closed, per `fail_open` (default: rate limits
open, budgets closed). `redis_errors_total` counts failed calls.

Round trips: the admit and settle calls of concurrent requests are sent together, as
one pipeline per round trip (redis_pipeline.py), at most `pipelines` on the wire at
once; so a call never queues for a connection, and under load a request costs well
under one round trip. `/metrics` counts both (llmops_limiter{counter=
"redis_round_trips_total"} and "redis_calls_total").

Connections: a blocking pool of `max_connections` (default 256) per process, used by
the pipelines (and `clear`); a call that finds every connection
busy waits for one (up to `pool_timeout`) rather than failing, as redis-py's default
pool of 100 does. Only Redis being unreachable (refused connections, socket timeouts)
opens the breaker; a call that waited for a pooled connection in vain is degraded
alone, since Redis itself is up.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
import time
from itertools import count
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from llmops.governance.limits.base import (
    WINDOW_SECONDS,
    BudgetTarget,
    Limiter,
    LimiterUnavailable,
    Reservation,
    budget_error,
    parallel_error,
    rpm_error,
    tpm_error,
)
from llmops.governance.limits.redis_pipeline import AutoPipeline, Script

if TYPE_CHECKING:
    from llmops.governance.keys import KeyInfo

log = logging.getLogger("llmops.governance.limits")
NANO = 1_000_000_000

# KEYS: rate hash, rate queue, parallel zset, then (budget hash, budget leases) per budget.
# ARGV: res_id, rpm, tpm, estimated tokens, parallel, lease ms, window ms, budget count,
#       then (limit nano, amount nano) per budget. -1 means "no limit" / "unknown cost".
ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local resid = ARGV[1]
local rpm, tpm, est = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local par, lease, window, nb = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local rate_h, rate_q, par_z = KEYS[1], KEYS[2], KEYS[3]
local rated = rpm >= 0 or tpm >= 0

local function split(item)
  local sep = string.find(item, ':', 1, true)
  return tonumber(string.sub(item, 1, sep - 1)), string.sub(item, sep + 1)
end

if rated then
  while true do
    local head = redis.call('LINDEX', rate_q, 0)
    if not head then break end
    local expires, id = split(head)
    if expires > now then break end
    redis.call('LPOP', rate_q)
    local amount = tonumber(redis.call('HGET', rate_h, id) or '0')
    redis.call('HDEL', rate_h, id)
    redis.call('HINCRBY', rate_h, 'n', -1)
    if amount ~= 0 then redis.call('HINCRBY', rate_h, 't', -amount) end
  end
  local v = redis.call('HMGET', rate_h, 'n', 't')
  local n, used = tonumber(v[1] or '0'), tonumber(v[2] or '0')
  if rpm >= 0 and n >= rpm then
    local head = redis.call('LINDEX', rate_q, 0)
    local retry = -1
    if head then retry = split(head) - now end
    return {'rpm', retry, n}
  end
  if tpm >= 0 and used + est > tpm then
    local retry = -1
    if est <= tpm then
      local need, freed = used + est - tpm, 0
      retry = window
      for _, item in ipairs(redis.call('LRANGE', rate_q, 0, 999)) do
        local expires, id = split(item)
        freed = freed + tonumber(redis.call('HGET', rate_h, id) or '0')
        if freed >= need then retry = expires - now; break end
      end
    end
    return {'tpm', retry, used}
  end
end

if par >= 0 then
  redis.call('ZREMRANGEBYSCORE', par_z, '-inf', now)
  local inflight = redis.call('ZCARD', par_z)
  if inflight >= par then return {'parallel', inflight, 0} end
end

for i = 1, nb do
  local h, z = KEYS[2 + 2 * i], KEYS[3 + 2 * i]
  local limit, amount = tonumber(ARGV[7 + 2 * i]), tonumber(ARGV[8 + 2 * i])
  local v = redis.call('HMGET', h, 'spent', 'reserved')
  if not v[1] then return {'init', i, 0} end
  local reserved = tonumber(v[2] or '0')
  local stale = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  if #stale > 0 then
    for _, id in ipairs(stale) do
      reserved = reserved - tonumber(redis.call('HGET', h, id) or '0')
      redis.call('HDEL', h, id)
    end
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
    redis.call('HSET', h, 'reserved', reserved)
  end
  local spent = tonumber(v[1])
  if (amount < 0 and spent + reserved >= limit) or (amount >= 0 and spent + reserved + amount > limit) then
    return {'budget', i, spent, reserved}
  end
end

if rated then
  redis.call('RPUSH', rate_q, (now + window) .. ':' .. resid)
  redis.call('HSET', rate_h, resid, est)
  redis.call('HINCRBY', rate_h, 'n', 1)
  if est ~= 0 then redis.call('HINCRBY', rate_h, 't', est) end
  redis.call('PEXPIRE', rate_h, window + 1000)
  redis.call('PEXPIRE', rate_q, window + 1000)
end
if par >= 0 then
  redis.call('ZADD', par_z, now + lease, resid)
  redis.call('PEXPIRE', par_z, lease + 1000)
end
for i = 1, nb do
  local amount = tonumber(ARGV[8 + 2 * i])
  if amount > 0 then
    local h, z = KEYS[2 + 2 * i], KEYS[3 + 2 * i]
    redis.call('HINCRBY', h, 'reserved', amount)
    redis.call('HSET', h, resid, amount)
    redis.call('ZADD', z, now + lease, resid)
    redis.call('PEXPIRE', z, lease + 1000)
  end
end
return {'ok', now, 0}
"""

# KEYS: as ADMIT. ARGV: res_id, actual tokens (-1: refund nothing), budget count,
# then the actual cost in nano-USD per budget.
SETTLE = """
local resid, actual, nb = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if actual >= 0 then
  local current = redis.call('HGET', KEYS[1], resid)
  if current then
    local delta = actual - tonumber(current)
    if delta ~= 0 then
      redis.call('HSET', KEYS[1], resid, actual)
      redis.call('HINCRBY', KEYS[1], 't', delta)
    end
  end
end
redis.call('ZREM', KEYS[3], resid)
for i = 1, nb do
  local h, z = KEYS[2 + 2 * i], KEYS[3 + 2 * i]
  local cost = tonumber(ARGV[3 + i])
  local amount = redis.call('HGET', h, resid)
  if amount then
    redis.call('HDEL', h, resid)
    redis.call('HINCRBY', h, 'reserved', -tonumber(amount))
    redis.call('ZREM', z, resid)
  end
  -- A counter gone from Redis is re-read from the database; never recreate it partially.
  if cost > 0 and redis.call('HEXISTS', h, 'spent') == 1 then
    redis.call('HINCRBY', h, 'spent', cost)
  end
end
return 1
"""

# KEYS: budget hash. ARGV: spent nano-USD from the database, expire-at UNIX time (0: never).
INIT_BUDGET = """
if redis.call('HSETNX', KEYS[1], 'spent', ARGV[1]) == 1 and tonumber(ARGV[2]) > 0 then
  redis.call('EXPIREAT', KEYS[1], ARGV[2])
end
return 1
"""


class _SpendUnreadable(LimiterUnavailable):
    """A budget's spend could not be read from the database to seed its Redis counter."""


class _BreakerOpen(Exception):
    """Redis failed repeatedly a moment ago; not asked again until the breaker closes."""


def _pool_exhausted(exc: BaseException) -> bool:
    """Whether `exc` says this process's connection pool was full, not that Redis is down."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import MaxConnectionsError

    if isinstance(exc, MaxConnectionsError):
        return True
    return isinstance(exc, RedisConnectionError) and str(exc) == "No connection available."


def _nano(usd: float) -> int:
    return int(round(usd * NANO))


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or '?'}:{parts.port or 6379}"


class RedisLimiter(Limiter):
    def __init__(
        self,
        redis_url: str,
        *,
        prefix: str = "llmops:",
        lease_seconds: float = 900.0,
        timeout: float = 0.5,
        breaker_seconds: float = 1.0,
        max_connections: int = 256,
        pool_timeout: float | None = None,
        pipelines: int = 4,
        **options,
    ) -> None:
        super().__init__(**options)
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import RedisError

        # No automatic retries: a retried script could charge twice, and a dead Redis
        # must cost a request milliseconds, not the client's default ten retries.
        pool = aioredis.BlockingConnectionPool.from_url(
            redis_url,
            max_connections=max_connections,
            # A busy pool is waited on, not failed: Redis is up, every connection is in use.
            timeout=max(timeout, 2.0) if pool_timeout is None else pool_timeout,
            socket_timeout=timeout,
            # A connection is opened once and reused: a burst of new ones on a busy
            # machine may take longer than a command should (a refused one fails at once).
            socket_connect_timeout=max(timeout, 2.0),
            retry=Retry(NoBackoff(), 0),
            health_check_interval=30,
        )
        self.redis = aioredis.Redis.from_pool(pool)  # closed with the client
        self._errors = (RedisError, OSError, asyncio.TimeoutError, _BreakerOpen)
        self._where = _redacted(redis_url)
        self.prefix = prefix
        self.lease_ms = int(lease_seconds * 1000)
        self.window_ms = int(WINDOW_SECONDS * 1000)
        self.breaker_seconds = breaker_seconds
        self._admit = Script(ADMIT)
        self._settle = Script(SETTLE)
        self._pipeline = AutoPipeline(self.redis, in_flight=min(pipelines, max_connections))
        self._init = Script(INIT_BUDGET)
        self._key_names: dict[str, list[str]] = {}
        self._budget_names: dict[tuple[str, str, str], tuple[str, str]] = {}
        # Reservation ids are unique across processes: a random process tag and a counter.
        self._tag = f"{os.getpid():x}{secrets.token_hex(3)}"
        self._ids = count()
        self._consecutive_errors = 0
        self._down_until = 0.0
        self._seeding: dict[str, asyncio.Future] = {}  # budget counters being seeded from the database
        self._orphan_releases: set[asyncio.Future] = set()  # releases of admits whose caller was cancelled

    def _keys(self, key_id: str, targets: tuple[BudgetTarget, ...]) -> list[str]:
        names = self._key_names.get(key_id)
        if names is None:
            p = self.prefix
            names = self._key_names[key_id] = [f"{p}r:{key_id}", f"{p}rq:{key_id}", f"{p}p:{key_id}"]
        if not targets:
            return names
        keys = list(names)
        for target in targets:
            pair = self._budget_names.get(target.spend_key)
            if pair is None:
                tail = f"{target.scope}:{target.subject}:{target.period_id}"
                pair = self._budget_names[target.spend_key] = (f"{self.prefix}b:{tail}", f"{self.prefix}bl:{tail}")
            keys.extend(pair)
        return keys

    async def admit(
        self, info: KeyInfo, *, user: str | None = None, estimated_tokens: int = 0, max_cost: float | None = None
    ) -> Reservation:
        now = self.clock()
        if self.rules_due():
            await self.refresh_rules()
        targets = self.targets_now(info, user, now)
        try:
            return await self._admit_targets(info, targets, estimated_tokens, max_cost, now)
        except _SpendUnreadable:
            # The database is down and Redis has never held one of these budgets:
            # fail_open.budgets decides. Open: rate limits still checked, the budgets
            # not, and the call's spend reaches the database once it is back.
            if not self.fail_open["budgets"]:
                raise
            res = await self._admit_targets(info, (), estimated_tokens, max_cost, now)
            res.unchecked = targets
            res.degraded = True
            self.degraded_total += 1
            return res

    async def _admit_targets(
        self, info: KeyInfo, targets: tuple[BudgetTarget, ...], estimated_tokens: int, max_cost: float | None,
        now: float,
    ) -> Reservation:
        rated = info.rpm is not None or info.tpm is not None or info.parallel is not None
        res = Reservation(f"{self._tag}.{next(self._ids)}", info.id, estimated_tokens, max_cost, targets)
        if not rated and not targets:
            self.admitted_total += 1
            res.state = False  # nothing held in Redis
            return res
        keys = self._keys(info.id, targets)
        args: list = [
            res.id,
            -1 if info.rpm is None else info.rpm,
            -1 if info.tpm is None else info.tpm,
            estimated_tokens,
            -1 if info.parallel is None else info.parallel,
            self.lease_ms,
            self.window_ms,
            len(targets),
        ]
        amount = -1 if max_cost is None else _nano(max_cost)
        for target in targets:
            args.append(_nano(target.budget))
            args.append(amount)
        try:
            if time.monotonic() < self._down_until:
                raise _BreakerOpen()
            for _ in range(len(targets) + 1):
                reply = await self._call_admit(res, keys, args)
                if reply[0] != b"init":
                    break
                await self._init_budget(targets[int(reply[1]) - 1], keys[1 + 2 * int(reply[1])])
            self._consecutive_errors = 0
        except self._errors as exc:
            return self._degraded(res, info, targets, exc)
        status = reply[0]
        if status == b"ok":
            self.admitted_total += 1
            res.state = True
            return res
        if status == b"rpm":
            self.rejected_total["rpm"] += 1
            raise rpm_error(info, int(reply[1]) / 1000 if int(reply[1]) >= 0 else None)
        if status == b"tpm":
            self.rejected_total["tpm"] += 1
            raise tpm_error(info, int(reply[2]), estimated_tokens, int(reply[1]) / 1000 if int(reply[1]) >= 0 else None)
        if status == b"parallel":
            self.rejected_total["parallel"] += 1
            raise parallel_error(info)
        if status == b"budget":
            self.rejected_total["budget"] += 1
            target = targets[int(reply[1]) - 1]
            raise budget_error(target, int(reply[2]) / NANO, int(reply[3]) / NANO, max_cost, now)
        raise LimiterUnavailable(f"Unexpected answer from the limit store: {status!r}")

    async def _call_admit(self, res: Reservation, keys: list[str], args: list) -> Any:
        """The admit script's reply. Once queued, the script runs in Redis even if the caller
        is cancelled (its client hung up): what it took then is given back as soon as the
        reply arrives, instead of being held until its lease ends."""
        reply = self._pipeline.call(self._admit, keys, args)
        try:
            return await asyncio.shield(reply)
        except asyncio.CancelledError:
            reply.add_done_callback(functools.partial(self._orphaned, res))
            raise

    def _orphaned(self, res: Reservation, reply: asyncio.Future) -> None:
        if reply.cancelled() or reply.exception() is not None or reply.result()[0] != b"ok":
            return
        res.state = True
        task = asyncio.ensure_future(self._finish(res, 0, 0.0))
        self._orphan_releases.add(task)
        task.add_done_callback(self._orphan_releases.discard)

    async def _init_budget(self, target: BudgetTarget, hash_key: str) -> None:
        # Calls that find the same counter missing at once (a new period, a Redis
        # restart, under many connections) share one database read and one seeding.
        task = self._seeding.get(hash_key)
        if task is None:
            task = self._seeding[hash_key] = asyncio.ensure_future(self._seed_budget(target, hash_key))
            task.add_done_callback(lambda _: self._seeding.pop(hash_key, None))
        await asyncio.shield(task)

    async def _seed_budget(self, target: BudgetTarget, hash_key: str) -> None:
        try:
            spent = await self.load_spend(target.spend_key)
        except Exception as exc:
            raise _SpendUnreadable(
                "Cannot read budget spend from the database; budgets fail closed. Retry shortly."
            ) from exc
        # Past-period counters linger a day (late settles), then Redis drops them.
        expire_at = 0 if target.reset is None else int(target.reset) + 86400
        await self._pipeline.call(self._init, [hash_key], [_nano(spent), expire_at])

    def _degraded(
        self, res: Reservation, info: KeyInfo, targets: tuple[BudgetTarget, ...], exc: BaseException
    ) -> Reservation:
        self._note_error(exc)
        if targets and not self.fail_open["budgets"]:
            raise LimiterUnavailable(
                f"The shared limit store (Redis at {self._where}) is unreachable and budgets fail closed "
                "(limits.fail_open.budgets: false). Retry shortly."
            ) from exc
        if not self.fail_open["rate_limits"] and (
            info.rpm is not None or info.tpm is not None or info.parallel is not None
        ):
            raise LimiterUnavailable(
                f"The shared limit store (Redis at {self._where}) is unreachable and rate limits fail closed "
                "(limits.fail_open.rate_limits: false). Retry shortly."
            ) from exc
        self.admitted_total += 1
        self.degraded_total += 1
        res.degraded = True
        res.state = False
        return res

    def _note_error(self, exc: BaseException) -> None:
        if isinstance(exc, _BreakerOpen):
            return  # skipped, not a new failure
        self.redis_errors_total += 1
        if _pool_exhausted(exc):
            # Redis answers; this process had no free connection in time. Not a reason
            # to stop asking Redis for everyone else's calls.
            log.warning("Redis limit store at %s: no pooled connection free in time", self._where)
            return
        self._consecutive_errors += 1
        if self._consecutive_errors >= 2:
            # Stop asking a dead Redis for a moment, so each request does not wait on it.
            self._down_until = time.monotonic() + self.breaker_seconds
        log.warning("Redis limit store at %s failed: %s", self._where, type(exc).__name__)

    async def settle(self, res: Reservation, actual_tokens: int, actual_cost: float | None) -> None:
        await self._finish(res, actual_tokens, actual_cost or 0.0)

    async def release(self, res: Reservation) -> None:
        await self._finish(res, 0, 0.0)

    async def _finish(self, res: Reservation, tokens: int, cost: float) -> None:
        if res.done:
            return
        res.done = True
        if res.budgets:
            self.record_spend(res.budgets, cost)  # the database learns of it either way
        if res.unchecked:
            self.record_spend(res.unchecked, cost)
        if not res.state:
            return
        nano = _nano(cost)
        args: list = [res.id, tokens, len(res.budgets)]
        args.extend(nano for _ in res.budgets)
        try:
            await self._pipeline.call(self._settle, self._keys(res.key_id, res.budgets), args)
            self._consecutive_errors = 0
        except self._errors as exc:
            # The reservation and slot are reclaimed when their lease ends.
            self._note_error(exc)

    def prune(self) -> None:
        # Key-name caches only; Redis expires its own keys.
        if len(self._key_names) > 10_000:
            self._key_names.clear()
        if len(self._budget_names) > 10_000:
            self._budget_names.clear()

    def metrics(self) -> dict:
        figures = super().metrics()
        figures["redis_round_trips_total"] = self._pipeline.round_trips
        figures["redis_calls_total"] = self._pipeline.calls
        return figures

    async def aclose(self) -> None:
        await super().aclose()
        await self._pipeline.aclose()
        if self._orphan_releases:  # their admits' replies came in with the last pipelines
            await asyncio.gather(*self._orphan_releases, return_exceptions=True)
        await self.redis.aclose()

    async def clear(self) -> int:
        """Delete every key under this limiter's prefix (tests, resets). Returns how many."""
        deleted = 0
        async for key in self.redis.scan_iter(match=f"{self.prefix}*", count=500):
            deleted += await self.redis.delete(key)
        return deleted
