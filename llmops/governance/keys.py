"""Virtual keys: create, list, update, revoke, and authenticate a bearer token.

A key (`sk-llmops-` + 43 url-safe characters, 256 random bits) is shown once, at
creation; the database keeps its sha256 and a display prefix. `check` hashes the
token, looks the hash up in an in-process cache, and on a miss reads the database in a
worker thread (never on the event loop), then compares hashes with
`hmac.compare_digest`.

Cache bound: answers, positive and negative, are cached for `cache_ttl` seconds (5 by
default). A revoke, an update or a new expiry date made through this `KeyStore` is seen
at once in this process; other processes (gateway replicas, the CLI) see it within
`cache_ttl` seconds. Expiry itself is checked on every call, not cached.

A token in use is read again in the background during the last fifth of its entry's
life, so steady traffic never waits on the database; only a token not seen for a whole
`cache_ttl` does (a read took 1.7 ms on SQLite here).
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import col, select

from llmops.db import session_scope
from llmops.errors import AuthenticationError, InvalidInput, LLMOpsError, NotFound, PermissionDenied
from llmops.governance.limits.periods import PERIODS
from llmops.governance.limits.spend import Budget, SpendBook
from llmops.governance.read_ahead import ReadAheadCache
from llmops.governance.tables import ApiKey, utcnow
from llmops.settings import get_settings

KEY_PREFIX = "sk-llmops-"
DISPLAY_CHARS = 8  # random characters kept for display, after KEY_PREFIX
MASTER_ID = "master"
UPDATABLE = ("name", "models", "rpm", "tpm", "parallel", "budget", "period", "expires", "user", "team", "guardrails")


class KeyStoreUnavailable(LLMOpsError):
    status = 503
    type = "service_unavailable"
    code = "key_store_unavailable"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What a request may do with a key. Limits that are None are unlimited.

    `models` is a tuple of model names or fnmatch patterns ("openai/*"), or None for all.
    """

    id: str
    name: str
    prefix: str
    models: tuple[str, ...] | None = None
    rpm: int | None = None
    tpm: int | None = None
    parallel: int | None = None
    budget: float | None = None
    period: str = "total"
    expires_at: datetime | None = None
    user: str | None = None
    team: str | None = None
    created_at: datetime | None = None
    revoked_at: datetime | None = None
    # A guardrails override for this key's calls, applied after the per-model ones.
    guardrails: dict[str, Any] | None = field(default=None, compare=False)
    _exact: frozenset[str] = field(init=False, repr=False, compare=False)
    _patterns: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _expires_ts: float | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        models = self.models or ()
        object.__setattr__(self, "_exact", frozenset(m for m in models if not _is_pattern(m)))
        object.__setattr__(self, "_patterns", tuple(m for m in models if _is_pattern(m)))
        object.__setattr__(self, "_expires_ts", self.expires_at.timestamp() if self.expires_at else None)

    def allows(self, model: str) -> bool:
        if self.models is None or model in self._exact:
            return True
        return any(fnmatchcase(model, pattern) for pattern in self._patterns)

    def require_model(self, model: str) -> None:
        """Raise PermissionDenied (403) unless this key may call `model`."""
        if not self.allows(model):
            allowed = ", ".join(self.models or ())
            raise PermissionDenied(
                f"{self.label} may not call model {model!r}; it may call: {allowed}. "
                "Ask an admin to add it with `llmops keys update KEY_ID --models ...`.",
                param="model",
            )

    def expired(self, now: float | None = None) -> bool:
        return self._expires_ts is not None and (time.time() if now is None else now) >= self._expires_ts

    @property
    def label(self) -> str:
        """How messages name the key: never the secret, only its prefix."""
        if self.id == MASTER_ID:
            return "the master key"
        return f"key '{self.name}' ({self.prefix}...)"

    def to_public(self) -> dict[str, Any]:
        """JSON-ready fields; never the secret (which is not even here)."""
        return self.to_dict()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "models": list(self.models) if self.models is not None else None,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "parallel": self.parallel,
            "budget": self.budget,
            "period": self.period,
            "expires_at": _iso(self.expires_at),
            "user": self.user,
            "team": self.team,
            "created_at": _iso(self.created_at),
            "revoked_at": _iso(self.revoked_at),
            "guardrails": self.guardrails,
        }


@dataclass(frozen=True, slots=True)
class AuthResult:
    """`info` is set only when the token may be used; `key` names the matched key even
    when it is revoked or expired (for messages and logs, by prefix)."""

    info: KeyInfo | None
    reason: str  # "ok" | "missing" | "unknown" | "revoked" | "expired"
    key: KeyInfo | None = None

    def error(self) -> AuthenticationError:
        key = self.key
        if self.reason == "missing":
            message = "Missing API key: send it as the header `Authorization: Bearer sk-llmops-...`."
        elif self.reason == "revoked" and key is not None:
            message = f"API {key.label} was revoked. Ask an admin for a new key."
        elif self.reason == "expired" and key is not None:
            when = key.expires_at.strftime("%Y-%m-%d %H:%M UTC") if key.expires_at else "?"
            message = (
                f"API {key.label} expired on {when}. "
                "Ask an admin to extend it (`llmops keys update KEY_ID --expires DATE`)."
            )
        else:
            message = "Invalid API key. Check the key, or create one with `llmops keys create`."
        codes = {"revoked": "revoked_api_key", "expired": "expired_api_key"}
        return AuthenticationError(message, code=codes.get(self.reason))


MASTER = KeyInfo(id=MASTER_ID, name=MASTER_ID, prefix=MASTER_ID)
_MISSING = AuthResult(None, "missing")
_UNKNOWN = AuthResult(None, "unknown")


def _is_pattern(model: str) -> bool:
    return any(c in model for c in "*?[")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_expires(value: Any, now: datetime | None = None) -> datetime | None:
    """When a key stops working. Accepts None/"never", a datetime, a date, an ISO string,
    or a duration from now ("90d", "12h", "30m", "2w").

    A bare date means the key works through that day (UTC): it expires at the next midnight.
    """
    now = now or utcnow()
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "never", "none")):
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day, tzinfo=UTC) + timedelta(days=1)
    elif isinstance(value, str):
        text = value.strip()
        duration = _DURATION.match(text.lower())
        if duration:
            moment = now + timedelta(seconds=int(duration.group(1)) * _UNITS[duration.group(2)])
        elif re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return parse_expires(date.fromisoformat(text), now)
        else:
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError as exc:
                raise InvalidInput(
                    f"expires: {value!r} is not a date (2026-01-31), a time (2026-01-31T12:00Z) "
                    "or a duration (90d, 12h, 30m)"
                ) from exc
            moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    else:
        raise InvalidInput(f"expires: {value!r} is not a date")
    moment = moment.astimezone(UTC)
    if moment <= now:
        raise InvalidInput(f"expires: {_iso(moment)} is in the past; to stop a key now, revoke it")
    return moment


def _limit(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidInput(f"{name} must be a whole number, not {value!r}")
    try:
        number = int(value)
    except ValueError as exc:
        raise InvalidInput(f"{name} must be a whole number, not {value!r}") from exc
    if number < 0:
        raise InvalidInput(f"{name} must be 0 or more (0 blocks every request), not {number}")
    return number


def _models(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [part for part in value.split(",")]
    if not isinstance(value, list | tuple) or not all(isinstance(m, str) for m in value):
        raise InvalidInput(f"models must be a list of model names, not {value!r}")
    names = [m.strip() for m in value if m.strip()]
    if not names:
        raise InvalidInput("models is empty: leave it out (or give '*') to allow every model")
    if "*" in names:
        return None
    return list(dict.fromkeys(names))


def _text(name: str, value: Any, *, required: bool = False) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(f"{name} must not be empty")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text, not {value!r}")
    if len(value.strip()) > 200:
        raise InvalidInput(f"{name} is longer than 200 characters")
    return value.strip()


def _budget(value: Any) -> float | None:
    if value is None:
        return None
    try:
        amount = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"budget must be a number of USD, not {value!r}") from exc
    if not amount >= 0:
        raise InvalidInput(f"budget must be zero or more USD, not {value!r}")
    return amount


def _period(value: Any) -> str:
    if value not in PERIODS:
        raise InvalidInput(f"period must be one of {', '.join(PERIODS)}, not {value!r}")
    return value


_CLEANERS: dict[str, Callable[[Any], Any]] = {
    "name": lambda v: _text("name", v, required=True),
    "models": _models,
    "rpm": lambda v: _limit("rpm", v),
    "tpm": lambda v: _limit("tpm", v),
    "parallel": lambda v: _limit("parallel", v),
    "budget": _budget,
    "period": _period,
    "expires": parse_expires,
    "user": lambda v: _text("user", v),
    "team": lambda v: _text("team", v),
    "guardrails": lambda v: _guardrails(v),
}


def _guardrails(value: Any) -> dict[str, Any] | None:
    """A per-key guardrails override, checked for shape now (names are checked against the
    gateway's pipeline on use)."""
    if value is None or value == {}:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise InvalidInput(f"guardrails must be a JSON object: {exc}") from None
    from llmops.guardrails.config import GuardrailsOverride

    try:
        return GuardrailsOverride.model_validate(value).model_dump(exclude_unset=True, exclude_defaults=True)
    except ValidationError as exc:
        raise InvalidInput(f"guardrails: {_validation_message(exc)}") from None


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(fields) - set(UPDATABLE))
    if unknown:
        raise InvalidInput(f"unknown key field(s): {', '.join(unknown)}; known: {', '.join(UPDATABLE)}")
    return {name: _CLEANERS[name](value) for name, value in fields.items()}


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        models=tuple(row.models) if row.models is not None else None,
        rpm=row.rpm,
        tpm=row.tpm,
        parallel=row.parallel,
        budget=row.budget,
        period=row.period,
        expires_at=row.expires_at,
        user=row.user,
        team=row.team,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        guardrails=row.guardrails,
    )


class KeyStore:
    """Virtual keys in the database, with an in-process authentication cache."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        master_key: str | None = None,
        cache_ttl: float = 5.0,
        max_negative_entries: int = 10_000,
        outage_grace: float = 0.0,
        read_timeout: float | None = None,
    ):
        self.database_url = database_url
        self.cache_ttl = cache_ttl
        self.spend_book = SpendBook(database_url)
        master = master_key if master_key is not None else get_settings().master_key
        self._master_digest = hashlib.sha256(master.encode()).digest() if master else None
        self._master_result = AuthResult(MASTER, "ok", MASTER)
        # `self._read` is looked up per read, so a test can stand in for the database.
        self._cache: ReadAheadCache[bytes, AuthResult] = ReadAheadCache(
            lambda digest: self._read(digest),
            cache_ttl,
            negative=lambda result: result.info is None,
            max_negative=max_negative_entries,
            # A key seen before the database went away keeps working for outage_grace s.
            down=KeyStoreUnavailable,
            grace=outage_grace,
            read_timeout=read_timeout,
        )
        self.admin = KeysAdmin(self)

    # --- authentication (async, for the gateway) ----------------------------------------

    async def check(self, token: str | None) -> AuthResult:
        """Who the token is, and why not when it may not be used."""
        if not token:
            return _MISSING
        digest = hashlib.sha256(token.encode()).digest()
        master = self._master_digest
        if master is not None and hmac.compare_digest(digest, master):
            return self._master_result
        entry = self._cache.fresh(digest)
        result = entry.value if entry is not None else await self._cache.load(digest)
        info = result.info
        if info is not None and info._expires_ts is not None and time.time() >= info._expires_ts:
            return AuthResult(None, "expired", info)
        return result

    async def aclose(self) -> None:
        """Wait for reads still under way (reads ahead included); call on shutdown."""
        await self._cache.aclose()

    def _read(self, digest: bytes) -> AuthResult:
        wanted = digest.hex()
        try:
            with session_scope(self.database_url) as session:
                row = session.exec(select(ApiKey).where(ApiKey.key_hash == wanted)).first()
        except (OperationalError, InterfaceError, PoolTimeout) as exc:
            raise KeyStoreUnavailable("The key store (database) is unreachable; retry shortly.") from exc
        if row is None or not hmac.compare_digest(row.key_hash, wanted):
            return _UNKNOWN
        info = _info(row)
        if row.revoked_at is not None:
            return AuthResult(None, "revoked", info)
        return AuthResult(info, "ok", info)

    def _forget(self, key_hash: str) -> None:
        self._cache.forget(bytes.fromhex(key_hash))

    # --- management (blocking; the admin API runs these in a thread) --------------------

    def create(
        self,
        name: str | None = None,
        models: list[str] | str | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        parallel: int | None = None,
        budget: float | None = None,
        period: str = "total",
        expires: datetime | date | str | None = None,
        user: str | None = None,
        team: str | None = None,
        guardrails: dict[str, Any] | str | None = None,
        **unknown: Any,
    ) -> tuple[str, KeyInfo]:
        """A new key: (plaintext, info). The plaintext is not stored; show it once.

        Raises InvalidInput for a bad or unknown field, so `create(**json_body)` is safe.
        """
        fields = _clean(
            dict(name=name, models=models, rpm=rpm, tpm=tpm, parallel=parallel, budget=budget,
                 period=period, expires=expires, user=user, team=team, guardrails=guardrails, **unknown)
        )
        plaintext = generate_key()
        row = ApiKey(
            id="key_" + secrets.token_hex(6),
            key_hash=hash_key(plaintext),
            prefix=plaintext[: len(KEY_PREFIX) + DISPLAY_CHARS],
            expires_at=fields.pop("expires"),
            **fields,
        )
        with session_scope(self.database_url) as session:
            session.add(row)
            session.flush()
            info = _info(row)
        return plaintext, info

    def list(self, include_revoked: bool = True) -> list[KeyInfo]:
        with session_scope(self.database_url) as session:
            query = select(ApiKey).order_by(col(ApiKey.created_at), col(ApiKey.id))
            if not include_revoked:
                query = query.where(col(ApiKey.revoked_at).is_(None))
            return [_info(row) for row in session.exec(query).all()]

    def get(self, ref: str) -> KeyInfo:
        with session_scope(self.database_url) as session:
            return _info(self._find(session, ref))

    def update(self, ref: str, **fields: Any) -> KeyInfo:
        """Change some fields; a field given as None is cleared (unlimited, never, everyone)."""
        cleaned = _clean(fields)
        if "expires" in cleaned:
            cleaned["expires_at"] = cleaned.pop("expires")
        with session_scope(self.database_url) as session:
            row = self._find(session, ref)
            for name, value in cleaned.items():
                setattr(row, name, value)
            row.updated_at = utcnow()
            session.add(row)
            session.flush()
            info = _info(row)
            key_hash = row.key_hash
        self._forget(key_hash)
        return info

    def revoke(self, ref: str) -> KeyInfo:
        """Stop a key for good. Revoking twice is harmless."""
        with session_scope(self.database_url) as session:
            row = self._find(session, ref)
            if row.revoked_at is None:
                row.revoked_at = row.updated_at = utcnow()
                session.add(row)
                session.flush()
            info = _info(row)
            key_hash = row.key_hash
        self._forget(key_hash)
        return info

    def _find(self, session, ref: str) -> ApiKey:
        """A key by id, or by name when exactly one live key has it."""
        row = session.get(ApiKey, ref)
        if row is not None:
            return row
        rows = session.exec(select(ApiKey).where(ApiKey.name == ref)).all()
        live = [r for r in rows if r.revoked_at is None] or rows
        if len(live) == 1:
            return live[0]
        if not live:
            raise NotFound(f"no key with id or name {ref!r}; see `llmops keys list`")
        ids = ", ".join(r.id for r in live)
        raise InvalidInput(f"several keys are named {ref!r} ({ids}): give the key id")

    # --- budgets of users and teams, and spend ------------------------------------------

    def set_budget(self, scope: str, subject: str, budget: float, period: str = "month") -> Budget:
        return self.spend_book.set_budget(scope, subject, budget, period)

    def remove_budget(self, scope: str, subject: str) -> bool:
        return self.spend_book.remove_budget(scope, subject)

    def budgets(self) -> builtins.list[Budget]:
        return sorted(self.spend_book.budgets().values(), key=lambda b: (b.scope, b.subject))

    def spent(self, scope: str, subject: str, period: str) -> float:
        """USD the database holds for the current period (lags the gateway by its flush interval)."""
        return self.spend_book.spent(scope, subject, period, time.time())


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "body"
    return f"{where}: {first.get('msg', 'invalid value')}"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeyCreateBody(_Body):
    name: str
    models: list[str] | str | None = None
    rpm: int | None = None
    tpm: int | None = None
    parallel: int | None = None
    budget: float | None = None
    period: str = "total"
    expires: str | None = None
    user: str | None = None
    team: str | None = None
    guardrails: dict[str, Any] | None = None


class KeyUpdateBody(_Body):
    name: str | None = None
    models: list[str] | str | None = None
    rpm: int | None = None
    tpm: int | None = None
    parallel: int | None = None
    budget: float | None = None
    period: str | None = None
    expires: str | None = None
    user: str | None = None
    team: str | None = None
    guardrails: dict[str, Any] | None = None


class BudgetBody(_Body):
    user: str | None = None
    team: str | None = None
    budget: float | None = None
    period: str = "month"


_B = TypeVar("_B", bound=_Body)


def _parse(model: type[_B], body: Any) -> _B:
    try:
        return model.model_validate(body if body is not None else {})
    except ValidationError as exc:
        raise InvalidInput(_validation_message(exc)) from exc


class KeysAdmin:
    """The admin HTTP API as async functions from a JSON body to a JSON-ready dict.

    Each gateway route is one line, e.g. `return await store.admin.create(await request.json())`.
    Errors are LLMOpsError (400 bad input, 404 unknown key).
    """

    def __init__(self, store: KeyStore):
        self.store = store

    async def create(self, body: Any) -> dict:
        fields = _parse(KeyCreateBody, body).model_dump()
        plaintext, info = await asyncio.to_thread(self.store.create, **fields)
        return {"key": plaintext, **info.to_dict()}

    async def list(self) -> dict:
        return {"object": "list", "data": await asyncio.to_thread(self._list_with_spend)}

    async def get(self, ref: str) -> dict:
        return self._with_spend(await asyncio.to_thread(self.store.get, ref))

    async def update(self, ref: str, body: Any) -> dict:
        fields = _parse(KeyUpdateBody, body).model_dump(exclude_unset=True)
        if fields.get("period", "total") is None:
            raise InvalidInput("period: give day, month or total")
        return (await asyncio.to_thread(self.store.update, ref, **fields)).to_dict()

    async def revoke(self, ref: str) -> dict:
        return (await asyncio.to_thread(self.store.revoke, ref)).to_dict()

    async def set_budget(self, body: Any) -> dict:
        parsed = _parse(BudgetBody, body)
        scope, subject = _budget_target(parsed.user, parsed.team)
        if parsed.budget is None:
            raise InvalidInput("budget: give an amount in USD (or DELETE the budget)")
        rule = await asyncio.to_thread(self.store.set_budget, scope, subject, parsed.budget, parsed.period)
        return rule.to_dict()

    async def remove_budget(self, body: Any) -> dict:
        parsed = _parse(BudgetBody, body)
        scope, subject = _budget_target(parsed.user, parsed.team)
        removed = await asyncio.to_thread(self.store.remove_budget, scope, subject)
        if not removed:
            raise NotFound(f"no budget for {scope} {subject!r}")
        return {"scope": scope, "subject": subject, "removed": True}

    async def budgets(self) -> dict:
        return {"object": "list", "data": await asyncio.to_thread(self._budgets_with_spend)}

    def _list_with_spend(self) -> builtins.list[dict]:
        return [self._with_spend(info) for info in self.store.list()]

    def _with_spend(self, info: KeyInfo) -> dict:
        data = info.to_dict()
        data["spent"] = self.store.spent("key", info.id, info.period) if info.budget is not None else None
        return data

    def _budgets_with_spend(self) -> builtins.list[dict]:
        return [
            {**rule.to_dict(), "spent": self.store.spent(rule.scope, rule.subject, rule.period)}
            for rule in self.store.budgets()
        ]


def _budget_target(user: str | None, team: str | None) -> tuple[str, str]:
    if user and not team:
        return ("user", user)
    if team and not user:
        return ("team", team)
    raise InvalidInput("give exactly one of user or team")
