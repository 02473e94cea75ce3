"""Experiments: define, pause, resume, stop, promote; and the gateway's cached view.

    svc = ExperimentService()
    svc.create("sum-v3", "summarize", ["control=production:50", "candidate=v3:50"])
    exp = svc.active_for("summarize")           # cached; None when nothing runs
    if exp:                                      # only for requests naming the bare prompt
        a = exp.assign(exp.unit_id(user=body.get("user"), session=headers.get(SESSION_HEADER)))
        view = registry.get_cached(a.ref)        # a.experiment, a.variant go to the ledger

At most one open (running or paused) experiment per prompt: a paused experiment
still owns its prompt, so resuming it can never collide with another one.
"""

from __future__ import annotations

import builtins
import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, InstanceOf, field_validator
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, col

from llmops.db import get_engine, session_scope
from llmops.errors import Conflict, InvalidInput, NotFound
from llmops.experiments.assignment import (
    ALLOCATIONS,
    UNITS,
    ActiveExperiment,
    VariantSpec,
    parse_variant,
    variant_from_mapping,
)
from llmops.experiments.models import (
    PAUSED,
    RUNNING,
    STATUSES,
    STOPPED,
    ExperimentRow,
    ExperimentVariantRow,
    utcnow,
)

if TYPE_CHECKING:
    from llmops.registry.service import Registry

log = logging.getLogger(__name__)

CONTROL = "control"
PRODUCTION_LABEL = "production"
DEFAULT_THOMPSON_PERIOD = 60.0
# Names go into URLs (GET /admin/experiments/NAME) and ledger rows: keep them plain.
_EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_EXPERIMENT_NAME_CHARS = "letters, digits, '.', '_' or '-' (at most 128), starting with a letter or digit"


def control_of(variants: Sequence[VariantSpec]) -> VariantSpec:
    """The baseline: the variant named `control`, else the first one listed."""
    for v in variants:
        if v.name == CONTROL:
            return v
    return variants[0]


@dataclass(frozen=True)
class ExperimentView:
    name: str
    prompt_name: str
    unit: str
    allocation: str
    status: str
    variants: tuple[VariantSpec, ...]
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    updated_by: str | None = None
    stopped_at: datetime | None = None
    winner: str | None = None
    promoted_version: int | None = None
    promoted_label: str | None = None

    @property
    def control(self) -> str:
        return control_of(self.variants).name

    def variant(self, name: str) -> VariantSpec:
        for v in self.variants:
            if v.name == name:
                return v
        raise NotFound(
            f"experiment {self.name!r} has no variant {name!r}; its variants: {', '.join(v.name for v in self.variants)}"
        )

    def definition(self) -> tuple:
        """What must match for a config entry to be this same experiment."""
        return (self.prompt_name, self.unit, self.allocation, tuple(self.variants))

    def to_dict(self) -> dict[str, Any]:
        total = sum(v.weight for v in self.variants)
        return {
            "name": self.name,
            "prompt": self.prompt_name,
            "unit": self.unit,
            "allocation": self.allocation,
            "status": self.status,
            "control": self.control,
            "variants": [
                {
                    "name": v.name,
                    "label": v.label,
                    "version": v.version,
                    "weight": v.weight,
                    "share": v.weight / total,
                    "ref": v.ref_for(self.prompt_name),
                    "spec": v.spec(),
                }
                for v in self.variants
            ],
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "updated_by": self.updated_by,
            "stopped_at": self.stopped_at.isoformat() if self.stopped_at else None,
            "winner": self.winner,
            "promoted_version": self.promoted_version,
            "promoted_label": self.promoted_label,
        }


def _row_id(row: ExperimentRow) -> int:
    """The id of an experiment row read from (or flushed to) the database, which always has one."""
    if row.id is None:
        raise ValueError(f"experiment {row.name!r} has no id: it was never flushed to the database")
    return row.id


def _view(row: ExperimentRow, variants: Iterable[ExperimentVariantRow]) -> ExperimentView:
    specs = tuple(
        VariantSpec(name=v.name, label=v.label, version=v.version, weight=v.weight)
        for v in sorted(variants, key=lambda v: v.position)
    )
    return ExperimentView(
        name=row.name,
        prompt_name=row.prompt_name,
        unit=row.unit,
        allocation=row.allocation,
        status=row.status,
        variants=specs,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
        stopped_at=row.stopped_at,
        winner=row.winner,
        promoted_version=row.promoted_version,
        promoted_label=row.promoted_label,
    )


def parse_variants(
    variants: Sequence[str | Mapping | VariantSpec] | Mapping[str, Any],
) -> tuple[VariantSpec, ...]:
    """Variants as CLI strings, config mappings, VariantSpecs, or {name: "ref:weight"}."""
    if isinstance(variants, Mapping):
        items: list[str | Mapping | VariantSpec] = []
        for name, value in variants.items():
            if isinstance(value, Mapping):
                items.append({"name": name, **value})
            else:
                items.append(f"{name}={value}")
        variants = items
    if isinstance(variants, str | bytes):
        raise InvalidInput("variants must be a list, e.g. ['control=production:50', 'candidate=v3:50']")
    specs: list[VariantSpec] = []
    for i, raw in enumerate(variants):
        if isinstance(raw, VariantSpec):
            specs.append(raw)
        elif isinstance(raw, str):
            specs.append(parse_variant(raw))
        elif isinstance(raw, Mapping):
            specs.append(variant_from_mapping(dict(raw), where=f"variant #{i + 1}"))
        else:
            raise InvalidInput(f"variant #{i + 1}: expected 'NAME=REF:WEIGHT' or a mapping, got {raw!r}")
    if len(specs) < 2:
        raise InvalidInput(
            "an experiment needs at least two variants, e.g. control=production:50 candidate=v3:50"
        )
    names = [s.name for s in specs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InvalidInput(f"variant names must be unique; repeated: {', '.join(repeated)}")
    return tuple(specs)


def _check_experiment_name(name: object) -> str:
    if not isinstance(name, str) or not _EXPERIMENT_NAME.fullmatch(name):
        raise InvalidInput(f"invalid experiment name {name!r}: use {_EXPERIMENT_NAME_CHARS}")
    return name


def _check_choice(value: str, choices: Sequence[str], what: str) -> str:
    if value not in choices:
        raise InvalidInput(f"invalid {what} {value!r}: choose one of {', '.join(choices)}")
    return value


def _value_error(check, value):
    # Pydantic reports only ValueError as a fault of the field; InvalidInput would escape.
    try:
        return check(value)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


class ExperimentEntry(BaseModel):
    """One experiment under the gateway config's `experiments:`, checked when the config
    loads, so that a typo stops start-up with the field named instead of failing the
    first sync. Variants are written as in `create`: `NAME=REF[:WEIGHT]` strings,
    mappings {name, ref | label | version, weight}, or one mapping {NAME: "REF:WEIGHT"}."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    prompt: str
    variants: tuple[InstanceOf[VariantSpec], ...]
    unit: str = "user"
    allocation: str = "fixed"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _value_error(_check_experiment_name, value)

    @field_validator("unit")
    @classmethod
    def _unit(cls, value: str) -> str:
        return _value_error(lambda v: _check_choice(v, UNITS, "unit"), value)

    @field_validator("allocation")
    @classmethod
    def _allocation(cls, value: str) -> str:
        return _value_error(lambda v: _check_choice(v, ALLOCATIONS, "allocation"), value)

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        from llmops.registry.refs import validate_name

        return _value_error(validate_name, value)

    @field_validator("variants", mode="before")
    @classmethod
    def _variants(cls, value: Any) -> tuple[VariantSpec, ...]:
        if not isinstance(value, list | tuple | Mapping):
            raise ValueError("expected a list like ['control=production:50', 'candidate=v3:50']")
        return _value_error(parse_variants, value)


@dataclass
class _Snapshot:
    by_prompt: dict[str, ActiveExperiment]
    expires: float


@dataclass
class _ThompsonCache:
    period_index: int
    weights: tuple[float, ...]
    variants: tuple[VariantSpec, ...] = field(default=())


class ExperimentService:
    """Experiments in one database; `active_for` is cached for the gateway's hot path."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        cache_ttl: float | None = None,
        thompson_period: float = DEFAULT_THOMPSON_PERIOD,
    ):
        from llmops.settings import get_settings

        settings = get_settings()
        self.database_url = database_url or settings.database_url
        # Like the registry's label cache: a pause or stop elsewhere is seen within this bound.
        self.cache_ttl = settings.prompt_cache_ttl if cache_ttl is None else cache_ttl
        self.thompson_period = thompson_period
        self._snapshot: _Snapshot | None = None
        self._refresh_lock = threading.Lock()
        self._thompson: dict[str, _ThompsonCache] = {}
        self._registry: Registry | None = None

    @property
    def engine(self) -> Engine:
        return get_engine(self.database_url)

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            from llmops import Registry

            self._registry = Registry(self.database_url)
        return self._registry

    # --- defining -------------------------------------------------------------------

    def create(
        self,
        name: str,
        prompt: str,
        variants: Sequence[str | Mapping | VariantSpec] | Mapping[str, Any],
        *,
        unit: str = "user",
        allocation: str = "fixed",
        actor: str | None = None,
        check_refs: bool = True,
    ) -> ExperimentView:
        """Start an experiment (status running). With `check_refs`, every variant must
        resolve in the registry now, so a typo fails here rather than on live traffic."""
        from llmops.registry.refs import validate_name

        _check_experiment_name(name)
        validate_name(prompt)
        _check_choice(unit, UNITS, "unit")
        _check_choice(allocation, ALLOCATIONS, "allocation")
        specs = parse_variants(variants)
        if check_refs:
            self._check_refs(prompt, specs)
        try:
            with session_scope(self.database_url) as session:
                self._check_free(session, name, prompt)
                now = utcnow()
                row = ExperimentRow(
                    name=name,
                    prompt_name=prompt,
                    unit=unit,
                    allocation=allocation,
                    status=RUNNING,
                    created_by=actor,
                    created_at=now,
                    updated_at=now,
                )
                session.add(row)
                session.flush()
                variant_rows = [
                    ExperimentVariantRow(
                        experiment_id=_row_id(row),
                        position=i,
                        name=s.name,
                        label=s.label,
                        version=s.version,
                        weight=s.weight,
                    )
                    for i, s in enumerate(specs)
                ]
                session.add_all(variant_rows)
                session.flush()
                view = _view(row, variant_rows)
        except IntegrityError:
            # Lost a race with another writer between our check and our insert.
            with session_scope(self.database_url) as session:
                self._check_free(session, name, prompt)
            raise Conflict(
                f"experiment {name!r} could not be created: a concurrent change; try again"
            ) from None
        self.invalidate()
        return view

    def _check_refs(self, prompt: str, specs: Sequence[VariantSpec]) -> None:
        for spec in specs:
            ref = spec.ref_for(prompt)
            try:
                self.registry.get(ref)
            except NotFound as exc:
                raise NotFound(f"variant {spec.name}: {ref} does not resolve ({exc.message})") from None

    @staticmethod
    def _check_free(session: Session, name: str, prompt: str) -> None:
        taken = session.scalars(select(ExperimentRow).where(col(ExperimentRow.name) == name)).first()
        if taken is not None:
            raise Conflict(
                f"experiment {name!r} already exists ({taken.status}); experiment names are never reused"
            )
        open_one = session.scalars(
            select(ExperimentRow).where(
                col(ExperimentRow.prompt_name) == prompt, col(ExperimentRow.status) != STOPPED
            )
        ).first()
        if open_one is not None:
            raise Conflict(
                f"prompt {prompt!r} already has experiment {open_one.name!r} ({open_one.status}); "
                f"stop it first: llmops experiments stop {open_one.name}"
            )

    # --- reading --------------------------------------------------------------------

    def get(self, name: str) -> ExperimentView:
        with session_scope(self.database_url) as session:
            row = session.scalars(select(ExperimentRow).where(col(ExperimentRow.name) == name)).first()
            if row is None:
                raise NotFound(f"experiment {name!r} not found; see `llmops experiments list`")
            return _view(row, self._variant_rows(session, [row])[_row_id(row)])

    def list(self, *, status: str | None = None, prompt: str | None = None) -> builtins.list[ExperimentView]:
        if status is not None:
            _check_choice(status, STATUSES, "status")
        with session_scope(self.database_url) as session:
            query = select(ExperimentRow).order_by(col(ExperimentRow.created_at), col(ExperimentRow.id))
            if status is not None:
                query = query.where(col(ExperimentRow.status) == status)
            if prompt is not None:
                query = query.where(col(ExperimentRow.prompt_name) == prompt)
            rows = list(session.scalars(query))
            variants = self._variant_rows(session, rows)
            return [_view(r, variants[_row_id(r)]) for r in rows]

    @staticmethod
    def _variant_rows(
        session: Session, rows: Sequence[ExperimentRow]
    ) -> dict[int, builtins.list[ExperimentVariantRow]]:
        """Each experiment's variant rows, by experiment id."""
        out: dict[int, builtins.list[ExperimentVariantRow]] = {_row_id(r): [] for r in rows}
        if not out:
            return out
        query = select(ExperimentVariantRow).where(col(ExperimentVariantRow.experiment_id).in_(list(out)))
        for v in session.scalars(query):
            out[v.experiment_id].append(v)
        return out

    # --- changing status --------------------------------------------------------------

    def _set_status(
        self, name: str, allowed_from: Sequence[str], to: str, *, actor: str | None = None, **extra
    ) -> ExperimentView:
        with session_scope(self.database_url) as session:
            row = session.scalars(
                select(ExperimentRow).where(col(ExperimentRow.name) == name).with_for_update()
            ).first()
            if row is None:
                raise NotFound(f"experiment {name!r} not found; see `llmops experiments list`")
            if row.status != to or extra:
                if row.status not in allowed_from:
                    raise Conflict(f"experiment {name!r} is {row.status}; it cannot become {to}")
                row.status = to
                row.updated_at = utcnow()
                row.updated_by = actor
                if to == STOPPED and row.stopped_at is None:
                    row.stopped_at = row.updated_at
                for key, value in extra.items():
                    setattr(row, key, value)
                session.add(row)
                session.flush()
            view = _view(row, self._variant_rows(session, [row])[_row_id(row)])
        self.invalidate()
        return view

    def pause(self, name: str, *, actor: str | None = None) -> ExperimentView:
        """Stop assigning: requests get the prompt's default again. Idempotent."""
        return self._set_status(name, (RUNNING,), PAUSED, actor=actor)

    def resume(self, name: str, *, actor: str | None = None) -> ExperimentView:
        """Assign again; users get the same variants as before the pause. Idempotent."""
        return self._set_status(name, (PAUSED,), RUNNING, actor=actor)

    def stop(self, name: str, *, actor: str | None = None) -> ExperimentView:
        """End the experiment for good (its report stays readable). Idempotent."""
        return self._set_status(name, (RUNNING, PAUSED), STOPPED, actor=actor)

    def promote(
        self, name: str, variant: str, *, label: str = PRODUCTION_LABEL, actor: str | None = None
    ) -> ExperimentView:
        """Move `label` (production) to the winner's version and end the experiment.

        A variant that follows a label is promoted at the version that label points to
        now. A stopped experiment can still be promoted once (stop, read the report,
        then decide); a promoted one cannot be promoted again.
        """
        view = self.get(name)
        if view.winner is not None:
            raise Conflict(
                f"experiment {name!r} was already promoted: {view.winner} (version {view.promoted_version}) to {view.promoted_label}"
            )
        spec = view.variant(variant)
        if spec.version is not None:
            version = spec.version
        else:
            ref = spec.ref_for(view.prompt_name)
            try:
                version = self.registry.get(ref).version
            except NotFound as exc:
                raise NotFound(f"cannot promote {variant}: {ref} does not resolve ({exc.message})") from None
        self.registry.set_label(view.prompt_name, version, label, actor=actor)
        return self._set_status(
            name,
            (RUNNING, PAUSED, STOPPED),
            STOPPED,
            actor=actor,
            winner=spec.name,
            promoted_version=version,
            promoted_label=label,
        )

    # --- config ---------------------------------------------------------------------

    def sync_from_config(
        self,
        entries: Sequence[Mapping[str, Any] | ExperimentEntry],
        *,
        actor: str | None = "config",
        check_refs: bool = True,
    ) -> builtins.list[dict[str, str]]:
        """Create the experiments a config lists; leave existing identical ones alone.

        Each entry: an ExperimentEntry (already checked), or a mapping {name, prompt,
        variants, unit?, allocation?}, variants as in
        `create` (CLI strings, mappings, or {variant: "ref:weight"}). An experiment of
        that name that already exists keeps its status (an operator's pause or stop
        wins over the config); if its definition differs, Conflict: changing the
        variants of a running experiment would make its report meaningless, so give
        the new definition a new name. Experiments absent from the config are not
        touched. Returns [{"name", "action": "created" | "unchanged"}].
        """
        parsed = []
        for i, entry in enumerate(entries):
            if isinstance(entry, ExperimentEntry):
                parsed.append((entry.name, entry.prompt, entry.variants, entry.unit, entry.allocation))
                continue
            if not isinstance(entry, Mapping):
                raise InvalidInput(f"experiments[{i}]: expected a mapping with name, prompt and variants")
            unknown = set(entry) - {"name", "prompt", "variants", "unit", "allocation"}
            if unknown:
                raise InvalidInput(f"experiments[{i}]: unknown keys {sorted(unknown)}")
            missing = [k for k in ("name", "prompt", "variants") if not entry.get(k)]
            if missing:
                raise InvalidInput(f"experiments[{i}]: missing {', '.join(missing)}")
            name = _check_experiment_name(entry["name"])
            unit = _check_choice(entry.get("unit", "user"), UNITS, "unit")
            allocation = _check_choice(entry.get("allocation", "fixed"), ALLOCATIONS, "allocation")
            parsed.append((name, str(entry["prompt"]), parse_variants(entry["variants"]), unit, allocation))
        names = [p[0] for p in parsed]
        if len(set(names)) != len(names):
            raise InvalidInput("experiments in the config must have distinct names")
        actions = []
        for name, prompt, specs, unit, allocation in parsed:
            wanted = (prompt, unit, allocation, specs)
            try:
                existing = self.get(name)
            except NotFound:
                try:
                    self.create(
                        name,
                        prompt,
                        specs,
                        unit=unit,
                        allocation=allocation,
                        actor=actor,
                        check_refs=check_refs,
                    )
                    actions.append({"name": name, "action": "created"})
                    continue
                except Conflict:
                    existing = self.get(name)  # another replica created it first; compare below
            if existing.definition() != wanted:
                raise Conflict(
                    f"experiment {name!r} exists with a different definition "
                    f"({existing.prompt_name}, {existing.unit}, {existing.allocation}, "
                    f"{' '.join(v.spec() for v in existing.variants)}); give the new definition a new name"
                )
            actions.append({"name": name, "action": "unchanged"})
        return actions

    # --- the gateway's view -----------------------------------------------------------

    def active_for(self, prompt_name: str) -> ActiveExperiment | None:
        """The running experiment on this prompt, if any; from memory, refreshed every
        `cache_ttl` seconds with one query for all prompts."""
        snapshot = self._snapshot
        if snapshot is None or time.monotonic() >= snapshot.expires:
            snapshot = self._refresh(snapshot)
        return snapshot.by_prompt.get(prompt_name)

    def invalidate(self) -> None:
        """Forget the cached view (this process only; other replicas wait out their TTL)."""
        self._snapshot = None

    def _refresh(self, stale: _Snapshot | None) -> _Snapshot:
        # One thread reloads; the others keep serving the stale view meanwhile.
        if stale is None:
            self._refresh_lock.acquire()
        elif not self._refresh_lock.acquire(blocking=False):
            return stale
        try:
            current = self._snapshot
            if current is not None and time.monotonic() < current.expires:
                return current
            try:
                by_prompt = self._load_running()
            except SQLAlchemyError as exc:
                # The database hiccuped: keep the last view rather than fail requests.
                log.warning(
                    "experiments: cannot refresh running experiments (%s); keeping the last view", exc
                )
                by_prompt = stale.by_prompt if stale is not None else {}
            snapshot = _Snapshot(by_prompt, time.monotonic() + self.cache_ttl)
            self._snapshot = snapshot
            return snapshot
        finally:
            self._refresh_lock.release()

    def _load_running(self) -> dict[str, ActiveExperiment]:
        with session_scope(self.database_url) as session:
            rows = list(session.scalars(select(ExperimentRow).where(col(ExperimentRow.status) == RUNNING)))
            variants = self._variant_rows(session, rows)
            views = [_view(r, variants[_row_id(r)]) for r in rows]
        out: dict[str, ActiveExperiment] = {}
        for view in views:
            weights = tuple(v.weight for v in view.variants)
            if view.allocation == "thompson":
                weights = self._thompson_weights(view)
            out[view.prompt_name] = ActiveExperiment(
                name=view.name,
                prompt_name=view.prompt_name,
                unit=view.unit,
                allocation=view.allocation,
                variants=view.variants,
                weights=weights,
            )
        return out

    def current_weights(self, name: str) -> tuple[float, ...]:
        """The shares an experiment assigns by now (Thompson's, or the configured ones)."""
        view = self.get(name)
        if view.allocation == "thompson":
            return self._thompson_weights(view)
        return tuple(v.weight for v in view.variants)

    def _thompson_weights(self, view: ExperimentView) -> tuple[float, ...]:
        from llmops.experiments.feedback import feedback_by_variant
        from llmops.experiments.ledger import LEDGER_TABLE
        from llmops.experiments.thompson import allocation_weights, period_seed

        period_index = int(time.time() // self.thompson_period)
        cached = self._thompson.get(view.name)
        if cached is not None and cached.period_index == period_index and cached.variants == view.variants:
            return cached.weights
        configured = [v.weight for v in view.variants]
        with self.engine.connect() as conn:
            feedback = feedback_by_variant(conn, LEDGER_TABLE, view.name)
        scores = [feedback[v.name].scores if v.name in feedback else [] for v in view.variants]
        weights = tuple(allocation_weights(configured, scores, seed=period_seed(view.name, period_index)))
        self._thompson[view.name] = _ThompsonCache(period_index, weights, view.variants)
        return weights
