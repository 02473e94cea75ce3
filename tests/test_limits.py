"""Rate limits and budgets, in process and shared through the machine's Redis.

Each Redis test uses its own key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import asyncio
import functools
import json
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import UTC, datetime

import pytest

from llmops.governance.keys import KeyInfo, KeyStore
from llmops.governance.limits import (
    LimiterUnavailable,
    LimitExceeded,
    make_limiter,
    period_window,
)
from tests.support.starved_side_work import HeldWhenIdle, expire_behind_a_held_read_ahead
from tests.support.steady_use import use_steadily

REDIS_URL = "redis://127.0.0.1:6379/0"
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def _redis_reachable() -> str | None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as exc:  # any failure means: skip, and say why
        return f"Redis unreachable at {REDIS_URL}: {exc}"
    return None


@pytest.fixture
def redis_prefix():
    reason = _redis_reachable()
    if reason:
        pytest.skip(reason)
    import redis

    prefix = f"llmops-test:{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*", count=500))
    if keys:
        client.delete(*keys)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'limits.db'}"


@pytest.fixture(params=["local", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request):
    """A factory of limiters for one backend; call it inside the running event loop."""
    if request.param == "local":
        return lambda **kw: make_limiter(None, **kw)
    prefix = request.getfixturevalue("redis_prefix")
    return lambda **kw: make_limiter(REDIS_URL, redis_prefix=prefix, **kw)


def key(**limits) -> KeyInfo:
    fields = {"id": "key_" + uuid.uuid4().hex[:12], "name": "test", "prefix": "sk-llmops-abcdefgh"}
    fields.update(limits)
    return KeyInfo(**fields)


def run(coro):
    return asyncio.run(coro)


async def admit_all(limiter, info, n, **kw):
    """n admits at once; returns (reservations, errors)."""

    async def one():
        try:
            return await limiter.admit(info, **kw)
        except LimitExceeded as exc:
            return exc

    results = await asyncio.gather(*(one() for _ in range(n)))
    return [r for r in results if not isinstance(r, LimitExceeded)], [r for r in results if isinstance(r, LimitExceeded)]


async def refused_for_team_ml(limiter) -> bool:
    """Whether one call of a key in team "ml" (costing up to $0.01) is refused now."""
    try:
        await limiter.release(await limiter.admit(key(team="ml"), max_cost=0.01))
    except LimitExceeded:
        return True
    return False


def test_requests_per_minute(backend, sqlite_url):
    async def scenario():
        limiter = backend(database_url=sqlite_url)
        info = key(rpm=3)
        ok, refused = await admit_all(limiter, info, 5, estimated_tokens=10)
        for res in ok:
            await limiter.settle(res, 10, None)
        await limiter.aclose()
        return ok, refused, limiter

    ok, refused, limiter = run(scenario())
    assert len(ok) == 3 and len(refused) == 2
    error = refused[0]
    assert error.status == 429 and error.limit == "rpm" and "3 requests per minute" in error.message
    assert 0 < error.retry_after <= 60 and error.headers()["retry-after"] in {str(s) for s in range(1, 61)}
    assert error.to_openai()["error"]["code"] == "rate_limit_exceeded"
    assert limiter.metrics()["rejected_total"]["rpm"] == 2


def test_tokens_per_minute_are_corrected_to_actual_at_settle(backend, sqlite_url):
    async def scenario():
        limiter = backend(database_url=sqlite_url)
        info = key(tpm=1000)
        first = await limiter.admit(info, estimated_tokens=600)
        with pytest.raises(LimitExceeded) as over:
            await limiter.admit(info, estimated_tokens=600)
        await limiter.settle(first, 100, None)  # it used far fewer tokens than estimated
        second = await limiter.admit(info, estimated_tokens=600)
        with pytest.raises(LimitExceeded) as too_big:
            await limiter.admit(info, estimated_tokens=5000)
        await limiter.release(second)
        await limiter.aclose()
        return over.value, too_big.value

    over, too_big = run(scenario())
    assert over.limit == "tpm" and "1000 tokens per minute" in over.message and 0 < over.retry_after <= 60
    assert too_big.limit == "tpm" and too_big.retry_after is None and "more than" in too_big.message


def test_parallel_requests(backend, sqlite_url):
    async def scenario():
        limiter = backend(database_url=sqlite_url)
        info = key(parallel=2)
        a = await limiter.admit(info)
        b = await limiter.admit(info)
        with pytest.raises(LimitExceeded) as third:
            await limiter.admit(info)
        await limiter.release(a)
        await limiter.release(a)  # twice: must not free a second slot
        c = await limiter.admit(info)
        with pytest.raises(LimitExceeded):
            await limiter.admit(info)
        await limiter.settle(b, 5, None)
        await limiter.settle(c, 5, None)
        await limiter.aclose()
        return third.value

    error = run(scenario())
    assert error.limit == "parallel" and "at most 2 at a time" in error.message


def test_fifty_concurrent_calls_on_a_budget_for_ten(backend, sqlite_url):
    async def scenario():
        limiter = backend(database_url=sqlite_url)
        info = key(budget=1.0, period="month")
        ok, refused = await admit_all(limiter, info, 50, estimated_tokens=100, max_cost=0.1)
        for res in ok:
            await limiter.settle(res, 100, 0.1)
        with pytest.raises(LimitExceeded) as exhausted:
            await limiter.admit(info, max_cost=0.1)
        await limiter.aclose()
        return ok, refused, exhausted.value

    ok, refused, exhausted = run(scenario())
    assert len(ok) == 10 and len(refused) == 40
    assert all(e.limit == "budget" and e.status == 429 for e in refused)
    assert "Budget exceeded for key 'test'" in refused[0].message and "$1.00 per month" in refused[0].message
    _, reset = period_window("month", time.time())
    reset_text = datetime.fromtimestamp(reset, UTC).strftime("%Y-%m-%d 00:00 UTC")
    assert f"Resets at {reset_text}" in exhausted.message and "$1.00 spent" in exhausted.message
    assert exhausted.to_openai()["error"]["type"] == "insufficient_quota"
    assert exhausted.retry_after == pytest.approx(reset - time.time(), abs=5)


def test_budget_reserves_the_maximum_and_settles_to_the_actual_cost(backend, sqlite_url):
    async def scenario():
        limiter = backend(database_url=sqlite_url)
        info = key(budget=1.0)
        first = await limiter.admit(info, max_cost=0.6)
        with pytest.raises(LimitExceeded) as in_flight:
            await limiter.admit(info, max_cost=0.6)
        await limiter.settle(first, 10, 0.2)
        second = await limiter.admit(info, max_cost=0.6)  # 0.2 spent + 0.6 fits
        await limiter.release(second)  # failed before any cost: refunded
        third = await limiter.admit(info, max_cost=0.8)
        with pytest.raises(LimitExceeded) as total:
            await limiter.admit(info, max_cost=0.01)
        await limiter.settle(third, 10, 0.8)
        with pytest.raises(LimitExceeded) as spent:
            await limiter.admit(info, max_cost=0.01)
        await limiter.aclose()
        return in_flight.value, total.value, spent.value

    in_flight, total, spent = run(scenario())
    assert "in flight" in in_flight.message and in_flight.retry_after == 1.0
    assert "in flight" in total.message
    assert "never resets" in spent.message and spent.retry_after is None and "$1.00 spent" in spent.message


def test_unknown_price_is_admitted_while_budget_remains_and_counted(backend, sqlite_url):
    async def scenario():
        limiter = backend(database_url=sqlite_url)
        info = key(budget=1.0)
        a = await limiter.admit(info, max_cost=None)
        b = await limiter.admit(info, max_cost=None)  # nothing reserved: admitted too
        await limiter.settle(a, 10, 0.7)
        await limiter.settle(b, 10, 0.5)  # now 1.2 spent: over, as documented
        with pytest.raises(LimitExceeded) as after:
            await limiter.admit(info, max_cost=None)
        await limiter.aclose()
        return after.value

    error = run(scenario())
    assert error.limit == "budget" and "$1.20 spent" in error.message


def test_team_and_user_budgets_are_shared_across_keys(backend, sqlite_url):
    store = KeyStore(sqlite_url)
    store.set_budget("team", "ml", 0.25, "day")

    async def scenario():
        limiter = backend(database_url=sqlite_url, budgets=[{"user": "alice", "budget": 0.1, "period": "month"}])
        first, second = key(team="ml"), key(team="ml")
        a = await limiter.admit(first, max_cost=0.1)
        b = await limiter.admit(second, max_cost=0.1)
        with pytest.raises(LimitExceeded) as team:
            await limiter.admit(first, max_cost=0.1)
        other_team = await limiter.admit(key(team="web"), max_cost=0.1)
        alice = await limiter.admit(key(), user="alice", max_cost=0.1)
        with pytest.raises(LimitExceeded) as user:
            await limiter.admit(key(user="alice"), max_cost=0.1)  # the key's owner counts too
        with pytest.raises(LimitExceeded):  # alice's key cannot name another user to escape her budget
            await limiter.admit(key(user="alice"), user="bob", max_cost=0.1)
        for res in (a, b, other_team, alice):
            await limiter.settle(res, 1, 0.1)
        await limiter.aclose()
        return team.value, user.value

    team, user = run(scenario())
    assert team.scope == "team" and "team 'ml'" in team.message and "$0.25 per day" in team.message
    assert user.scope == "user" and "user 'alice'" in user.message
    assert store.spent("team", "ml", "day") == pytest.approx(0.2)
    assert store.spent("user", "alice", "month") == pytest.approx(0.1)


def test_a_daily_budget_resets_at_midnight_utc(sqlite_url):
    now = [datetime(2026, 1, 31, 23, 59, 30, tzinfo=UTC).timestamp()]

    async def scenario():
        limiter = make_limiter(None, database_url=sqlite_url, clock=lambda: now[0])
        info = key(budget=1.0, period="day")
        res = await limiter.admit(info, max_cost=1.0)
        await limiter.settle(res, 1, 1.0)
        with pytest.raises(LimitExceeded) as today:
            await limiter.admit(info, max_cost=0.1)
        now[0] += 31  # 00:00:01 on February 1st
        tomorrow = await limiter.admit(info, max_cost=0.1)
        await limiter.release(tomorrow)
        await limiter.aclose()
        return today.value

    error = run(scenario())
    assert "Resets at 2026-02-01 00:00 UTC (in 30s)" in error.message
    assert error.retry_after == pytest.approx(30)


def test_the_rate_window_slides(sqlite_url):
    now = [1_000_000.0]

    async def scenario():
        limiter = make_limiter(None, database_url=sqlite_url, clock=lambda: now[0])
        info = key(rpm=2)
        await limiter.admit(info)
        now[0] += 30
        await limiter.admit(info)
        waits = []
        with pytest.raises(LimitExceeded) as full:
            await limiter.admit(info)
        waits.append(full.value.retry_after)
        now[0] += 30.001  # the first request left the window; the second is still in it
        await limiter.admit(info)
        with pytest.raises(LimitExceeded) as again:
            await limiter.admit(info)
        waits.append(again.value.retry_after)
        await limiter.aclose()
        return waits

    # Exact to the window's tenth-of-a-second buckets.
    assert run(scenario()) == [pytest.approx(30, abs=0.1), pytest.approx(29.999, abs=0.1)]


@pytest.mark.parametrize("engine", ["local", pytest.param("redis", marks=pytest.mark.redis)])
def test_spend_survives_a_restart(engine, database_url, request):
    prefix = request.getfixturevalue("redis_prefix") if engine == "redis" else None
    info = key(budget=1.0, period="month")

    def limiter():
        if engine == "redis":
            return make_limiter(REDIS_URL, database_url=database_url, redis_prefix=prefix)
        return make_limiter(None, database_url=database_url)

    async def before_restart():
        first = limiter()
        for _ in range(7):
            res = await first.admit(info, max_cost=0.1)
            await first.settle(res, 1, 0.1)
        await first.aclose()  # flushes spend to the database
        if engine == "redis":  # Redis lost its data too: counters come back from the database
            wiper = limiter()
            assert await wiper.clear() > 0
            await wiper.aclose()

    async def after_restart():
        second = limiter()
        with pytest.raises(LimitExceeded) as refused:
            await second.admit(info, max_cost=0.5)
        res = await second.admit(info, max_cost=0.3)
        await second.release(res)
        await second.aclose()
        return refused.value

    run(before_restart())
    refused = run(after_restart())
    assert "$0.70 spent" in refused.message
    assert KeyStore(database_url).spent("key", info.id, "month") == pytest.approx(0.7)


WORKER = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from llmops.governance.keys import KeyInfo
    from llmops.governance.limits import LimitExceeded, make_limiter

    url, prefix, db, start = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])

    async def main():
        limiter = make_limiter(url, database_url=db, redis_prefix=prefix)
        rated = KeyInfo(id="key_shared_rpm", name="shared", prefix="sk-llmops-shared00", rpm=15)
        funded = KeyInfo(id="key_shared_budget", name="funded", prefix="sk-llmops-funded00", budget=1.0)
        await asyncio.sleep(max(0.0, start - time.time()))  # both processes start together
        admitted = {"rpm": 0, "budget": 0}
        for _ in range(20):
            try:
                await limiter.admit(rated, estimated_tokens=1)
                admitted["rpm"] += 1
            except LimitExceeded:
                pass
            try:
                res = await limiter.admit(funded, max_cost=0.1)
                admitted["budget"] += 1
                await limiter.settle(res, 1, 0.1)
            except LimitExceeded:
                pass
        await limiter.aclose()
        print(json.dumps(admitted))

    asyncio.run(main())
    """
)


@pytest.mark.redis
def test_two_processes_share_one_limit_through_redis(redis_prefix, tmp_path, sqlite_url):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    KeyStore(sqlite_url).list()  # create the schema before two processes race to
    start = time.time() + 3.0
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), REDIS_URL, redis_prefix, sqlite_url, str(start)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sum(r["rpm"] for r in results) == 15
    assert sum(r["budget"] for r in results) == 10
    assert KeyStore(sqlite_url).spent("key", "key_shared_budget", "total") == pytest.approx(1.0)


@pytest.mark.redis
def test_reservations_of_a_crashed_process_are_reclaimed(redis_prefix, sqlite_url):
    async def scenario():
        limiter = make_limiter(REDIS_URL, database_url=sqlite_url, redis_prefix=redis_prefix, lease_seconds=0.3)
        info = key(parallel=1, budget=1.0)
        await limiter.admit(info, max_cost=1.0)  # never settled, as if the process died
        with pytest.raises(LimitExceeded):
            await limiter.admit(info, max_cost=1.0)
        await asyncio.sleep(0.4)
        res = await limiter.admit(info, max_cost=1.0)
        await limiter.settle(res, 1, 0.25)
        await limiter.aclose()

    run(scenario())


@pytest.mark.redis
def test_an_admit_cancelled_on_the_wire_gives_its_reservation_back(redis_prefix, sqlite_url):
    # A client that hangs up while its admit is in Redis: the script runs there all the
    # same, so the slot and the budget it took come back at once, not when the lease ends.
    async def scenario():
        limiter = make_limiter(REDIS_URL, database_url=sqlite_url, redis_prefix=redis_prefix)
        info = key(parallel=1, budget=1.0)
        await limiter.settle(await limiter.admit(info, max_cost=1.0), 1, 0.0)  # rules read, counters seeded
        pending = asyncio.ensure_future(limiter.admit(info, max_cost=1.0))
        await asyncio.sleep(0)  # the admit is queued for the next pipeline
        assert not pending.done()
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        for _ in range(50):  # the pipeline's reply arrives, then the release goes out
            await asyncio.sleep(0.01)
            try:
                res = await limiter.admit(info, max_cost=1.0)
                break
            except LimitExceeded:
                continue
        else:
            pytest.fail("the cancelled admit still holds its slot and budget")
        await limiter.settle(res, 1, 0.25)
        await limiter.aclose()

    run(scenario())


def test_redis_down_fails_open_for_rate_limits_and_closed_for_budgets(sqlite_url):
    async def scenario(fail_open):
        limiter = make_limiter(DEAD_REDIS_URL, fail_open, database_url=sqlite_url)
        outcome = {}
        try:
            res = await limiter.admit(key(rpm=1), estimated_tokens=5)
            await limiter.settle(res, 5, None)
            outcome["rate"] = "admitted" if res.degraded else "checked"
        except LimiterUnavailable as exc:
            outcome["rate"] = exc
        try:
            res = await limiter.admit(key(budget=5.0), max_cost=0.1)
            await limiter.settle(res, 5, 0.1)
            outcome["budget"] = "admitted" if res.degraded else "checked"
        except LimiterUnavailable as exc:
            outcome["budget"] = exc
        unlimited = await limiter.admit(key())  # nothing to check: Redis not needed
        await limiter.release(unlimited)
        outcome["errors"] = limiter.metrics()["redis_errors_total"]
        await limiter.aclose()
        return outcome

    default = run(scenario(None))
    assert default["rate"] == "admitted"
    assert isinstance(default["budget"], LimiterUnavailable) and default["budget"].status == 503
    assert "fail_open.budgets" in default["budget"].message and "127.0.0.1:1" in default["budget"].message
    assert default["errors"] >= 1

    flipped = run(scenario({"rate_limits": False, "budgets": True}))
    assert isinstance(flipped["rate"], LimiterUnavailable) and flipped["budget"] == "admitted"


def test_unknown_fail_open_settings_are_refused():
    from llmops.errors import InvalidInput

    with pytest.raises(InvalidInput, match="fail_open"):
        make_limiter(None, {"budget": True})
    with pytest.raises(InvalidInput, match="user or team"):
        make_limiter(None, persist=False, budgets=[{"budget": 1}])


def test_period_windows():
    def at(*parts):
        return datetime(*parts, tzinfo=UTC).timestamp()

    assert period_window("day", at(2026, 2, 28, 13, 5)) == ("d2026-02-28", at(2026, 3, 1))
    assert period_window("month", at(2026, 12, 31, 23, 59)) == ("m2026-12", at(2027, 1, 1))
    assert period_window("total", at(2026, 5, 5)) == ("total", None)


def test_a_budget_set_mid_period_counts_what_the_ledger_already_holds(database_url):
    from llmops.db import session_scope
    from llmops.governance.ledger_models import LedgerRow

    now = datetime.now(UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    with session_scope(database_url) as session:
        for i, (cost, when) in enumerate([(0.5, now), (0.3, now), (9.0, month_start.replace(year=month_start.year - 1))]):
            session.add(LedgerRow(id=f"req-{i}", created_at=when, team="ml", cost=cost, outcome="success"))
    store = KeyStore(database_url)
    store.set_budget("team", "ml", 1.0, "month")
    assert store.spent("team", "ml", "month") == pytest.approx(0.8)  # last year's call is not this month's

    async def scenario():
        limiter = make_limiter(None, database_url=database_url)
        info = key(team="ml")
        assert limiter.tracks_spend(info)
        with pytest.raises(LimitExceeded) as refused:
            await limiter.admit(info, max_cost=0.3)
        res = await limiter.admit(info, max_cost=0.2)
        await limiter.settle(res, 1, 0.1)
        assert not limiter.tracks_spend(key(team="web"))
        await limiter.aclose()
        return refused.value

    refused = run(scenario())
    assert "$0.80 spent" in refused.message
    assert store.spent("team", "ml", "month") == pytest.approx(0.9)


def test_limiter_from_the_gateway_config(sqlite_url):
    from pydantic import ValidationError

    from llmops.governance.config import LimitsConfig
    from llmops.governance.limits import LocalLimiter, limiter_from_config

    config = LimitsConfig.model_validate(
        {"fail_open": {"budgets": True}, "budgets": [{"team": "ml", "budget": 5}], "flush_interval": 0.5}
    )
    limiter = limiter_from_config(config, redis_url=None, database_url=sqlite_url)
    assert isinstance(limiter, LocalLimiter) and limiter.fail_open == {"rate_limits": True, "budgets": True}
    assert limiter.tracks_spend(key(team="ml"))
    with pytest.raises(ValidationError, match="flush_every"):
        LimitsConfig.model_validate({"flush_every": 1})


def test_budgets_in_use_are_reread_without_making_a_request_wait(backend, sqlite_url):
    store = KeyStore(sqlite_url)
    store.set_budget("team", "ml", 10.0, "day")

    async def scenario():
        limiter = backend(database_url=sqlite_url, rules_ttl=1.0)
        first = await limiter.admit(key(team="ml"), max_cost=0.01)  # reads the budgets
        await limiter.release(first)
        read = limiter.spend_book.budgets

        def slow_read():  # the database now takes 0.1 s to answer
            time.sleep(0.1)
            return read()

        limiter.spend_book.budgets = slow_read

        refused = functools.partial(refused_for_team_ml, limiter)
        # Another process lowers the team's budget under the current spend.
        found = await use_steadily(refused, lambda: store.set_budget("team", "ml", 0.001, "day"))
        await limiter.aclose()
        return found

    waits, seen_after = run(scenario())
    # The budgets were read again ahead of time: no admit waited for the 0.1 s read.
    assert max(waits) < 0.05, sorted(waits)[-5:]
    assert seen_after <= 1.0 + 0.1 + 0.3  # still within rules_ttl and one read


def test_a_rules_read_ahead_held_up_neither_holds_up_a_request_nor_undoes_a_newer_read(sqlite_url):
    store = KeyStore(sqlite_url)
    store.set_budget("team", "ml", 10.0, "day")

    async def scenario():
        limiter = make_limiter(None, database_url=sqlite_url, rules_ttl=1.0)

        refused = functools.partial(refused_for_team_ml, limiter)
        assert not await refused()  # reads the budgets
        limiter.spend_book.budgets = held = HeldWhenIdle(limiter.spend_book.budgets)
        # Another process lowers the team's budget under what a call may cost.
        waited = await expire_behind_a_held_read_ahead(refused, lambda: store.set_budget("team", "ml", 0.001, "day"), held)
        await limiter.aclose()
        return waited

    assert run(scenario()) < 0.5
