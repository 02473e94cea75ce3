"""Variant definitions and the assignment of a unit (user, session, request) to a variant.

Assignment is a pure function on the hot path. A unit id is hashed with the
experiment's name (blake2b, never Python's salted `hash`) to a number in [0, 1),
which falls into one of the variants' cumulative weight intervals. So the same user
gets the same variant on every replica and after every restart, different experiments
split users independently, and the split follows the weights.

Variant syntax (CLI and config): `NAME=REF[:WEIGHT]`

- REF `v3` or `3` pins prompt version 3; any other REF follows that label
  (`production`, `staging`); write `@v3` for a label named like a version.
- WEIGHT is a positive number, relative to the other variants (50/50 = 1/1);
  omitted, it is 1.
"""

from __future__ import annotations

import math
import random
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import SupportsFloat

from llmops.errors import InvalidInput

UNITS = ("user", "session", "request")
ALLOCATIONS = ("fixed", "thompson")
SESSION_HEADER = "x-llmops-session"

_VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_VERSION_REF = re.compile(r"^[vV]?(\d+)$")
# The registry's label rule: labels start with a letter, so `3` is always a version;
# only `v3` could be either, and it means the version (write `@v3` for the label).
_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_HASH_SCALE = float(2**64)


@dataclass(frozen=True)
class VariantSpec:
    name: str
    label: str | None
    version: int | None
    weight: float

    def ref_for(self, prompt_name: str) -> str:
        """The registry reference this variant resolves: `name@label` or `name:3`."""
        if self.version is not None:
            return f"{prompt_name}:{self.version}"
        return f"{prompt_name}@{self.label}"

    @property
    def target(self) -> str:
        """How the variant was written, without its weight: `production` or `v3`."""
        if self.version is not None:
            return f"v{self.version}"
        return f"@{self.label}" if _VERSION_REF.match(self.label or "") else str(self.label)

    def spec(self) -> str:
        return f"{self.name}={self.target}:{_format_weight(self.weight)}"


def _format_weight(weight: float) -> str:
    return str(int(weight)) if float(weight).is_integer() else repr(weight)


def parse_target(ref: str | int, *, where: str = "variant") -> tuple[str | None, int | None]:
    """`production` -> (label, None); `v3`, `3` or 3 -> (None, 3); `@v3` -> label "v3"."""
    if isinstance(ref, bool):
        raise InvalidInput(f"{where}: the reference must be a label or a version, got {ref!r}")
    if isinstance(ref, int):
        if ref < 1:
            raise InvalidInput(f"{where}: versions start at 1, got {ref}")
        return None, ref
    ref = str(ref).strip()
    match = _VERSION_REF.match(ref)
    if match:
        version = int(match.group(1))
        if version < 1:
            raise InvalidInput(f"{where}: versions start at 1, got {ref!r}")
        return None, version
    label = ref[1:] if ref.startswith("@") else ref
    _check_label(label, ref, where)
    return label, None


def _check_label(label: str, written: str, where: str) -> None:
    if not _LABEL.match(label):
        raise InvalidInput(
            f"{where}: {written!r} is neither a label (like production) nor a version (like v3)"
        )
    if label == "archived":
        raise InvalidInput(f"{where}: 'archived' marks several versions; pin one instead, like v3")


def check_weight(weight: object, *, where: str = "variant") -> float:
    if isinstance(weight, bool) or not isinstance(weight, SupportsFloat | str):
        raise InvalidInput(f"{where}: weight must be a positive number, got {weight!r}")
    try:
        value = float(weight)
    except (TypeError, ValueError):
        raise InvalidInput(f"{where}: weight must be a positive number, got {weight!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise InvalidInput(f"{where}: weight must be a positive number, got {weight!r}")
    return value


def check_variant_name(name: object, *, where: str = "variant") -> str:
    if not isinstance(name, str) or not _VARIANT_NAME.match(name):
        raise InvalidInput(
            f"{where}: variant name {name!r} must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return name


def parse_variant(spec: str) -> VariantSpec:
    """Parse `control=production:50`, `candidate=v3:50`, `candidate=3` (weight 1)."""
    where = f"variant {spec!r}"
    if "=" not in spec:
        raise InvalidInput(f"{where}: write NAME=REF[:WEIGHT], e.g. control=production:50 or candidate=v3:50")
    name, rest = (part.strip() for part in spec.split("=", 1))
    check_variant_name(name, where=where)
    weight: float = 1.0
    if ":" in rest:
        rest, raw_weight = rest.rsplit(":", 1)
        weight = check_weight(raw_weight.strip(), where=where)
    if not rest.strip():
        raise InvalidInput(f"{where}: missing the label or version after '='")
    label, version = parse_target(rest, where=where)
    return VariantSpec(name=name, label=label, version=version, weight=weight)


def variant_from_mapping(raw: dict, *, where: str = "variant") -> VariantSpec:
    """A variant written in config as {name, ref | label | version, weight}."""
    known = {"name", "ref", "label", "version", "weight"}
    unknown = set(raw) - known
    if unknown:
        raise InvalidInput(
            f"{where}: unknown keys {sorted(unknown)}; use name, ref (or label / version), weight"
        )
    name = check_variant_name(raw.get("name"), where=where)
    given = [k for k in ("ref", "label", "version") if raw.get(k) is not None]
    if len(given) != 1:
        raise InvalidInput(f"{where}: give exactly one of ref, label or version")
    label: str | None
    version: int | None
    if given[0] == "label":
        label, version = str(raw["label"]), None
        _check_label(label, label, where)
    elif given[0] == "version":
        label, version = parse_target(
            raw["version"] if isinstance(raw["version"], int) else str(raw["version"]), where=where
        )
        if version is None:
            raise InvalidInput(f"{where}: version must be a number like 3 or v3, got {raw['version']!r}")
    else:
        label, version = parse_target(raw["ref"], where=where)
    weight = check_weight(raw.get("weight", 1.0), where=where)
    return VariantSpec(name=name, label=label, version=version, weight=weight)


def unit_bucket(experiment: str, unit_id: str) -> float:
    """A stable number in [0, 1) for this unit in this experiment."""
    digest = blake2b(f"{experiment}\x1f{unit_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _HASH_SCALE


def cumulative(weights: tuple[float, ...] | list[float]) -> tuple[float, ...]:
    total = math.fsum(weights)
    running, bounds = 0.0, []
    for w in weights:
        running += w
        bounds.append(running / total)
    bounds[-1] = 1.0  # so a bucket just under 1 never falls off the end through rounding
    return tuple(bounds)


@dataclass(frozen=True)
class Assignment:
    experiment: str
    variant: str
    ref: str  # a registry reference: `summarize@staging` or `summarize:3`


@dataclass(frozen=True)
class ActiveExperiment:
    """A running experiment as the gateway sees it: what to assign, and how."""

    name: str
    prompt_name: str
    unit: str
    allocation: str
    variants: tuple[VariantSpec, ...]
    # The weights in force: the configured ones, or Thompson sampling's current split.
    weights: tuple[float, ...]
    _bounds: tuple[float, ...] = field(init=False, repr=False, compare=False)
    # One immutable Assignment per variant, built once: assign() only picks an index.
    _assignments: tuple[Assignment, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.weights) != len(self.variants) or not self.variants:
            raise ValueError("one weight per variant, at least one variant")
        object.__setattr__(self, "_bounds", cumulative(self.weights))
        object.__setattr__(
            self,
            "_assignments",
            tuple(Assignment(self.name, v.name, v.ref_for(self.prompt_name)) for v in self.variants),
        )

    def unit_id(self, user: str | None = None, session: str | None = None) -> str | None:
        """The id this experiment assigns by: the request's `user`, its session header
        value, or None (random per request) for unit `request` or a missing id."""
        if self.unit == "user":
            return user or None
        if self.unit == "session":
            return session or None
        return None

    def assign(self, unit_id: str | None) -> Assignment:
        """Sticky for a unit id, random per call without one."""
        u = random.random() if not unit_id else unit_bucket(self.name, unit_id)
        return self._assignments[bisect_right(self._bounds, u)]
