"""Virtual keys: creation, hashing, authentication and its cache, admin API, CLI.

Runs on SQLite and Postgres (the `database_url` fixture in conftest.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text

from llmops.cli import main as cli
from llmops.db import get_engine
from llmops.errors import AuthenticationError, InvalidInput, NotFound, PermissionDenied
from llmops.governance import Access, KeyInfo, KeyStore
from llmops.governance.keys import parse_expires
from tests.support.starved_side_work import HeldWhenIdle, expire_behind_a_held_read_ahead
from tests.support.steady_use import use_steadily


async def info_of(store: KeyStore, token: str | None) -> KeyInfo | None:
    return (await store.check(token)).info

def run(coro):
    return asyncio.run(coro)


def test_a_new_key_is_shown_once_and_stored_only_as_a_hash(database_url):
    store = KeyStore(database_url)
    plaintext, info = store.create("billing-service", rpm=60, team="payments")

    assert plaintext.startswith("sk-llmops-") and len(plaintext) >= len("sk-llmops-") + 32
    assert info.prefix == plaintext[:18] and info.prefix != plaintext
    with get_engine(database_url).connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(text("SELECT * FROM gateway_keys"))]
    assert len(rows) == 1
    stored = " ".join(str(v) for v in rows[0].values())
    assert plaintext not in stored
    assert plaintext[18:] not in stored  # not even the secret part
    assert rows[0]["key_hash"] == hashlib.sha256(plaintext.encode()).hexdigest()
    # Two keys never collide.
    assert store.create("second")[0] != plaintext


def test_authenticate_returns_the_keys_limits(database_url):
    store = KeyStore(database_url)
    plaintext, created = store.create(
        "app", models=["gpt-4o-mini", "openai/*"], rpm=10, tpm=5000, parallel=3, budget=2.5, period="day",
        expires="30d", user="alice", team="ml",
    )
    info = run(info_of(store, plaintext))
    assert isinstance(info, KeyInfo) and info == created
    assert (info.rpm, info.tpm, info.parallel, info.budget, info.period) == (10, 5000, 3, 2.5, "day")
    assert (info.user, info.team) == ("alice", "ml")
    assert info.models == ("gpt-4o-mini", "openai/*")
    assert info.expires_at is not None and info.expires_at - datetime.now(UTC) > timedelta(days=29)
    assert info.allows("gpt-4o-mini") and info.allows("openai/gpt-4.1") and not info.allows("claude-3")
    with pytest.raises(PermissionDenied) as denied:
        info.require_model("claude-3")
    assert denied.value.status == 403 and "claude-3" in denied.value.message


def test_unknown_missing_and_tampered_tokens_are_refused(database_url):
    store = KeyStore(database_url)
    plaintext, _ = store.create("app")
    assert run(store.check(None)).reason == "missing"
    assert run(store.check("")).reason == "missing"
    assert run(store.check("sk-llmops-" + "x" * 43)).reason == "unknown"
    tampered = plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")
    assert run(info_of(store, tampered)) is None
    # A negative answer is cached too, and stays negative.
    assert run(info_of(store, tampered)) is None
    assert run(info_of(store, plaintext)) is not None


def test_errors_name_the_key_by_prefix_never_by_secret(database_url):
    store = KeyStore(database_url)
    access = Access(store, master_key_set=False, keys_required=True)
    plaintext, info = store.create("app")

    with pytest.raises(AuthenticationError) as missing:
        run(access.authenticate(None))
    assert missing.value.status == 401 and "Authorization: Bearer" in missing.value.message

    wrong = "sk-llmops-thisisnotarealkeybutlongenough00000000"
    with pytest.raises(AuthenticationError) as unknown:
        run(access.authenticate(wrong))
    assert wrong not in unknown.value.message and unknown.value.to_openai()["error"]["code"] == "invalid_api_key"

    store.revoke(info.id)
    with pytest.raises(AuthenticationError) as revoked:
        run(access.authenticate(plaintext))
    assert "revoked" in revoked.value.message and info.prefix in revoked.value.message
    assert plaintext not in revoked.value.message and revoked.value.code == "revoked_api_key"


def test_revoked_and_expired_keys_are_refused_even_on_an_open_gateway(database_url):
    store = KeyStore(database_url)
    access = Access(store, master_key_set=False, keys_required=False)
    revoked, revoked_info = store.create("gone")
    store.revoke(revoked_info.id)
    expiring, expiring_info = store.create("soon", expires="1s")
    assert run(access.authenticate(None)) is None
    assert run(access.authenticate("any string at all")) is None
    with pytest.raises(AuthenticationError) as refused:
        run(access.authenticate(revoked))
    assert refused.value.code == "revoked_api_key"
    time.sleep(1.1)
    with pytest.raises(AuthenticationError) as late:
        run(access.authenticate(expiring))
    assert late.value.code == "expired_api_key" and expiring_info.prefix in late.value.message


def test_revoke_is_seen_at_once_here_and_within_the_cache_ttl_elsewhere(database_url):
    admin = KeyStore(database_url)
    gateway = KeyStore(database_url, cache_ttl=0.5)  # stands for another process
    plaintext, info = admin.create("app")

    async def scenario():
        assert await info_of(admin, plaintext) is not None
        assert await info_of(gateway, plaintext) is not None
        admin.revoke(info.id)
        here = await admin.check(plaintext)
        cached_elsewhere = await info_of(gateway, plaintext)
        await asyncio.sleep(0.6)
        later_elsewhere = await gateway.check(plaintext)
        return here, cached_elsewhere, later_elsewhere

    here, cached_elsewhere, later_elsewhere = run(scenario())
    assert here.info is None and here.reason == "revoked"
    assert cached_elsewhere is not None  # the documented bound: up to cache_ttl seconds
    assert later_elsewhere.info is None and later_elsewhere.reason == "revoked"
    assert later_elsewhere.key is not None and later_elsewhere.key.id == info.id
    # Revoking twice is harmless.
    assert admin.revoke(info.id).revoked_at == here.key.revoked_at


def test_an_expired_key_is_refused_even_from_the_cache(database_url):
    store = KeyStore(database_url, cache_ttl=60)
    plaintext, info = store.create("temp", expires=datetime.now(UTC) + timedelta(seconds=1))

    async def scenario():
        before = await store.check(plaintext)  # now cached for a minute
        await asyncio.sleep(1.1)
        return before, await store.check(plaintext)

    before, after = run(scenario())
    assert before.reason == "ok"
    assert after.info is None and after.reason == "expired"
    error = after.error()
    assert error.status == 401 and "expired" in error.message and error.code == "expired_api_key"


def test_update_changes_and_clears_fields(database_url):
    store = KeyStore(database_url)
    plaintext, info = store.create("app", rpm=10, budget=5)

    async def scenario():
        await info_of(store, plaintext)  # cached before the update
        updated = store.update(info.id, rpm=None, tpm=1000, models="gpt-4o", team="ml")
        return updated, await info_of(store, plaintext)

    updated, seen = run(scenario())
    assert (updated.rpm, updated.tpm, updated.models, updated.team, updated.budget) == (None, 1000, ("gpt-4o",), "ml", 5)
    assert seen == updated  # this process sees its own update at once
    assert store.update("app", models="*").models is None  # by unique name; '*' allows all
    with pytest.raises(InvalidInput, match="period"):
        store.update(info.id, period="year")
    with pytest.raises(InvalidInput, match="unknown key field"):
        store.update(info.id, colour="red")
    with pytest.raises(InvalidInput, match="rpm"):
        store.update(info.id, rpm=-1)
    with pytest.raises(NotFound):
        store.update("key_doesnotexist", rpm=1)
    store.create("app")
    with pytest.raises(InvalidInput, match="several keys"):
        store.update("app", rpm=1)


def test_list_shows_every_key_with_status(database_url):
    store = KeyStore(database_url)
    _, first = store.create("one")
    _, second = store.create("two", budget=1, period="month")
    store.revoke(first.id)
    listed = {i.id: i for i in store.list()}
    assert set(listed) == {first.id, second.id}
    assert listed[first.id].revoked_at is not None and listed[second.id].revoked_at is None
    assert [i.id for i in store.list(include_revoked=False)] == [second.id]


def test_the_master_key_is_recognised_without_the_database(database_url):
    store = KeyStore(database_url, master_key="sk-master-test-0123456789")
    access = Access(store, master_key_set=True, keys_required=True)
    info = run(access.authenticate("sk-master-test-0123456789"))
    assert info is not None and info.id == "master" and info.allows("anything") and info.rpm is None
    assert info.guardrails is None  # the master key is a key record like any other
    access.authorize_admin(info)
    _, virtual = store.create("app")
    with pytest.raises(PermissionDenied) as denied:
        access.authorize_admin(virtual)
    assert denied.value.code == "master_key_required"
    with pytest.raises(AuthenticationError):
        run(access.authenticate("sk-llmops-notmaster"))
    with pytest.raises(PermissionDenied, match="LLMOPS_MASTER_KEY"):
        Access(KeyStore(database_url, master_key=""), master_key_set=False, keys_required=False).authorize_admin(None)


def test_expiry_dates_parse_as_documented():
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    assert parse_expires("2026-03-31", now) == datetime(2026, 4, 1, tzinfo=UTC)  # through that day
    assert parse_expires(date(2026, 12, 31), now) == datetime(2027, 1, 1, tzinfo=UTC)
    assert parse_expires("90d", now) == now + timedelta(days=90)
    assert parse_expires("12h", now) == now + timedelta(hours=12)
    assert parse_expires("2026-04-01T08:30:00Z", now) == datetime(2026, 4, 1, 8, 30, tzinfo=UTC)
    assert parse_expires("never", now) is None
    with pytest.raises(InvalidInput, match="past"):
        parse_expires("2026-03-01", now)
    with pytest.raises(InvalidInput, match="not a date"):
        parse_expires("next tuesday", now)


def test_admin_api_from_json_bodies(database_url):
    store = KeyStore(database_url, master_key="mk")

    async def scenario():
        created = await store.admin.create({"name": "svc", "rpm": 5, "budget": 3, "period": "month", "team": "ml"})
        with pytest.raises(InvalidInput) as bad:
            await store.admin.create({"name": "svc", "rpms": 5})
        listed = await store.admin.list()
        updated = await store.admin.update(created["id"], {"rpm": None, "tpm": 100})
        budget = await store.admin.set_budget({"team": "ml", "budget": 50, "period": "month"})
        budgets = await store.admin.budgets()
        revoked = await store.admin.revoke(created["id"])
        return created, bad.value, listed, updated, budget, budgets, revoked

    created, bad, listed, updated, budget, budgets, revoked = run(scenario())
    assert created["key"].startswith("sk-llmops-") and created["rpm"] == 5
    assert bad.status == 400 and "rpms" in bad.message
    assert listed["data"][0]["id"] == created["id"] and listed["data"][0]["spent"] == 0.0
    assert "key" not in listed["data"][0]  # the secret is never listed
    assert updated["rpm"] is None and updated["tpm"] == 100
    assert budget == {"scope": "team", "subject": "ml", "budget": 50.0, "period": "month"}
    assert budgets["data"] == [{**budget, "spent": 0.0}]
    assert revoked["revoked_at"] is not None
    json.dumps([created, listed, updated, budgets, revoked])  # all JSON-ready


def test_cli_manages_keys_and_budgets(database_url, capsys):
    db = ["--database-url", database_url]

    assert cli(["keys", "create", *db, "--name", "ci", "--models", "gpt-4o,openai/*", "--rpm", "15",
                "--budget", "2", "--period", "month", "--team", "ml", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["key"].startswith("sk-llmops-") and created["models"] == ["gpt-4o", "openai/*"]

    assert cli(["keys", "update", created["id"], *db, "--rpm", "none", "--tpm", "2000"]) == 0
    assert "tpm 2000" in capsys.readouterr().out
    assert cli(["keys", "budget", *db, "--team", "ml", "--budget", "100", "--period", "month"]) == 0
    capsys.readouterr()
    assert cli(["keys", "list", *db, "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert (listed["rpm"], listed["tpm"], listed["status"], listed["spent"]) == (None, 2000, "active", 0.0)
    assert created["key"] not in json.dumps(listed)
    assert cli(["keys", "budgets", *db]) == 0
    assert "ml" in capsys.readouterr().out

    assert cli(["keys", "revoke", created["id"], *db]) == 0
    assert "Revoked" in capsys.readouterr().out
    assert cli(["keys", "list", *db]) == 0
    table = capsys.readouterr().out
    assert "revoked" in table and created["key"] not in table

    assert cli(["keys", "update", "nope", *db, "--rpm", "1"]) == 1
    assert "no key" in capsys.readouterr().err
    assert cli(["keys", "create", *db, "--name", "x", "--expires", "2001-01-01"]) == 1
    assert "past" in capsys.readouterr().err


def test_cli_entry_point_prints_the_key_once(database_url, tmp_path):
    env = {**os.environ, "LLMOPS_DATABASE_URL": database_url}
    made = subprocess.run(
        [sys.executable, "-m", "llmops.cli", "keys", "create", "--name", "sdk", "--rpm", "5"],
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert made.returncode == 0, made.stderr
    key = next(word for word in made.stdout.split() if word.startswith("sk-llmops-"))
    listed = subprocess.run(
        [sys.executable, "-m", "llmops.cli", "keys", "list"], env=env, capture_output=True, text=True,
        timeout=120, cwd=tmp_path,
    )
    assert listed.returncode == 0 and "sdk" in listed.stdout and key not in listed.stdout
    assert key[:18] in listed.stdout
    assert run(info_of(KeyStore(database_url), key)).rpm == 5


def test_create_from_an_untrusted_body_refuses_unknown_fields(database_url):
    store = KeyStore(database_url)
    with pytest.raises(InvalidInput, match="budget_duration"):
        store.create(**{"name": "x", "budget_duration": "30d"})
    with pytest.raises(InvalidInput, match="name"):
        store.create(**{"rpm": 3})
    assert store.list() == []


def test_a_key_in_use_never_waits_on_the_database_and_a_revoke_is_still_seen(database_url):
    class SlowKeyStore(KeyStore):
        """The gateway's store on a database that takes 0.1 s to answer."""

        def _read(self, digest):
            time.sleep(0.1)
            return super()._read(digest)

    admin = KeyStore(database_url)
    gateway = SlowKeyStore(database_url, cache_ttl=1.0)  # stands for another process
    plaintext, info = admin.create("app")

    async def refused() -> bool:
        return (await gateway.check(plaintext)).reason == "revoked"

    async def scenario():
        assert (await gateway.check(plaintext)).reason == "ok"  # first sight: reads
        found = await use_steadily(refused, lambda: admin.revoke(info.id))
        await gateway.aclose()
        return found

    waits, seen_after = run(scenario())
    # Every entry was read again ahead of its expiry: no call waited for the 0.1 s read.
    assert max(waits) < 0.05, sorted(waits)[-5:]
    assert seen_after <= 1.0 + 0.1 + 0.3  # still within cache_ttl and one read


def test_a_read_ahead_held_up_neither_holds_up_a_request_nor_undoes_a_newer_read(database_url):
    admin = KeyStore(database_url)
    gateway = KeyStore(database_url, cache_ttl=1.0)  # stands for another process
    gateway._read = held = HeldWhenIdle(gateway._read)
    plaintext, info = admin.create("app")

    async def refused() -> bool:
        reason = (await gateway.check(plaintext)).reason
        assert reason in ("ok", "revoked")
        return reason == "revoked"

    async def scenario():
        assert (await gateway.check(plaintext)).reason == "ok"  # first sight: reads
        waited = await expire_behind_a_held_read_ahead(refused, lambda: admin.revoke(info.id), held)
        await gateway.aclose()
        return waited

    assert run(scenario()) < 0.5
