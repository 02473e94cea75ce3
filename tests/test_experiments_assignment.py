"""Assigning users to variants: the split follows the weights, and every user sticks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from llmops import Registry
from llmops.errors import Conflict, InvalidInput, NotFound
from llmops.experiments.assignment import ActiveExperiment, VariantSpec, parse_variant
from llmops.experiments.service import ExperimentService

USERS = [f"user-{i}" for i in range(10_000)]


def _prompt_with_versions(database_url: str, name: str = "summarize", count: int = 3) -> Registry:
    reg = Registry(database_url)
    for i in range(1, count + 1):
        reg.create_version(name, template=f"Summarize, take {i}: {{{{ text }}}}")
    reg.set_label(name, 1, "production")
    reg.set_label(name, 2, "staging")
    return reg


def test_variant_syntax_labels_versions_and_weights():
    assert parse_variant("control=production:50") == VariantSpec("control", "production", None, 50.0)
    assert parse_variant("candidate=v3:50") == VariantSpec("candidate", None, 3, 50.0)
    assert parse_variant("candidate=3:25.5") == VariantSpec("candidate", None, 3, 25.5)
    assert parse_variant("b=staging") == VariantSpec("b", "staging", None, 1.0)
    # A label that looks like a version is written with '@'.
    assert parse_variant("odd=@v3:1") == VariantSpec("odd", "v3", None, 1.0)
    assert parse_variant("odd=@v3:1").spec() == "odd=@v3:1"
    assert parse_variant("candidate=v3:50").ref_for("summarize") == "summarize:3"
    assert parse_variant("control=production:50").ref_for("summarize") == "summarize@production"
    for bad in [
        "control",
        "=production:5",
        "c=production:0",
        "c=production:-1",
        "c=production:x",
        "c=:5",
        "c=v0:5",
        "c=prod uction:5",
        "c d=production",
        "c=production:inf",
        "c=archived",
    ]:
        with pytest.raises(InvalidInput):
            parse_variant(bad)


@pytest.mark.parametrize(
    "weights",
    [(50, 50), (70, 30), (50, 30, 20), (1, 1, 1, 1)],
    ids=["50-50", "70-30", "50-30-20", "4-equal"],
)
def test_ten_thousand_users_split_within_two_points_of_the_weights(weights):
    variants = tuple(VariantSpec(f"v{i}", None, i + 1, float(w)) for i, w in enumerate(weights))
    exp = ActiveExperiment(
        "split-test", "summarize", "user", "fixed", variants, tuple(float(w) for w in weights)
    )
    counts = Counter(exp.assign(u).variant for u in USERS)
    total = sum(weights)
    for i, w in enumerate(weights):
        share = counts[f"v{i}"] / len(USERS)
        assert abs(share - w / total) <= 0.02, (f"v{i}", share, w / total)


def test_requests_without_a_unit_are_split_randomly_by_the_weights():
    variants = (VariantSpec("control", "production", None, 80.0), VariantSpec("candidate", None, 2, 20.0))
    exp = ActiveExperiment("per-request", "summarize", "request", "fixed", variants, (80.0, 20.0))
    assert exp.unit_id(user="alice", session="s1") is None  # unit request ignores both
    counts = Counter(exp.assign(None).variant for _ in range(10_000))
    assert abs(counts["candidate"] / 10_000 - 0.2) <= 0.02
    # Not sticky: one "unit" (none) sees both variants.
    assert set(counts) == {"control", "candidate"}


def test_unit_ids_come_from_user_or_session():
    variants = (VariantSpec("a", "production", None, 1.0), VariantSpec("b", None, 2, 1.0))
    by_user = ActiveExperiment("e", "p", "user", "fixed", variants, (1.0, 1.0))
    by_session = ActiveExperiment("e", "p", "session", "fixed", variants, (1.0, 1.0))
    assert by_user.unit_id(user="alice", session="s1") == "alice"
    assert by_user.unit_id(user=None, session="s1") is None
    assert by_session.unit_id(user="alice", session="s1") == "s1"
    assert by_session.unit_id(user="alice", session=None) is None


def test_experiments_split_users_independently():
    variants = (VariantSpec("a", "production", None, 1.0), VariantSpec("b", None, 2, 1.0))
    first = ActiveExperiment("first", "p", "user", "fixed", variants, (1.0, 1.0))
    second = ActiveExperiment("second", "q", "user", "fixed", variants, (1.0, 1.0))
    together = Counter((first.assign(u).variant, second.assign(u).variant) for u in USERS)
    # Independent halves: each of the four combinations holds about a quarter.
    for combo in [("a", "a"), ("a", "b"), ("b", "a"), ("b", "b")]:
        assert abs(together[combo] / len(USERS) - 0.25) <= 0.02


def test_every_user_sticks_across_replicas_pauses_and_restarts(database_url):
    _prompt_with_versions(database_url)
    ExperimentService(database_url).create(
        "sum-test", "summarize", ["control=production:50", "candidate=v3:50"], unit="user"
    )
    replica_a, replica_b = ExperimentService(database_url), ExperimentService(database_url)
    exp_a, exp_b = replica_a.active_for("summarize"), replica_b.active_for("summarize")
    assert exp_a is not None and exp_b is not None and exp_a is not exp_b
    first = {u: exp_a.assign(u) for u in USERS}
    assert all(exp_b.assign(u) == first[u] for u in USERS)
    assert all(exp_a.assign(u) == first[u] for u in USERS)  # and on every later request
    assert {a.ref for a in first.values()} == {"summarize@production", "summarize:3"}
    assert abs(sum(a.variant == "candidate" for a in first.values()) / len(USERS) - 0.5) <= 0.02

    # After a pause and a resume, the same users get the same variants.
    replica_a.pause("sum-test")
    assert replica_a.active_for("summarize") is None
    replica_a.resume("sum-test")
    resumed = replica_a.active_for("summarize")
    assert all(resumed.assign(u) == first[u] for u in USERS[:2000])

    # A new process (another replica, or this one restarted, with its own hash seed).
    sample = USERS[:300]
    code = (
        "import json, sys\n"
        "from llmops.experiments.service import ExperimentService\n"
        f"exp = ExperimentService({database_url!r}).active_for('summarize')\n"
        "users = json.loads(sys.stdin.read())\n"
        "print(json.dumps({u: exp.assign(u).variant for u in users}))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(sample),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    assert json.loads(out.stdout) == {u: first[u].variant for u in sample}


def test_one_open_experiment_per_prompt_and_lifecycle(database_url):
    _prompt_with_versions(database_url)
    _prompt_with_versions(database_url, "translate", 2)
    svc = ExperimentService(database_url)
    first = svc.create("first", "summarize", ["control=production:50", "candidate=staging:50"], actor="ann")
    assert (first.status, first.control, first.created_by) == ("running", "control", "ann")
    with pytest.raises(Conflict, match="already has experiment 'first'"):
        svc.create("second", "summarize", ["control=production", "candidate=v3"])
    # Pinning a bare-name request elsewhere is untouched: another prompt is free.
    svc.create("other", "translate", ["a=production", "b=v2"])
    assert svc.active_for("translate").name == "other"

    svc.pause("first")
    with pytest.raises(Conflict, match="paused"):  # a paused experiment still owns its prompt
        svc.create("second", "summarize", ["control=production", "candidate=v3"])
    assert svc.pause("first").status == "paused"  # idempotent
    svc.stop("first")
    with pytest.raises(Conflict, match="stopped"):
        svc.resume("first")
    with pytest.raises(Conflict, match="never reused"):
        svc.create("first", "summarize", ["control=production", "candidate=v3"])
    second = svc.create("second", "summarize", ["control=production", "candidate=v3"])
    assert svc.active_for("summarize").name == second.name
    assert [v.name for v in svc.list()] == ["first", "other", "second"]
    assert [v.name for v in svc.list(status="stopped")] == ["first"]
    assert [v.name for v in svc.list(prompt="translate")] == ["other"]

    with pytest.raises(NotFound, match="does not resolve"):
        svc.create("third", "translate", ["control=production", "candidate=v9"])
    with pytest.raises(NotFound, match="does not resolve"):
        svc.create("third", "missing-prompt", ["control=production", "candidate=v1"])
    with pytest.raises(InvalidInput, match="at least two variants"):
        svc.create("third", "translate", ["control=production"])
    with pytest.raises(InvalidInput, match="unique"):
        svc.create("third", "translate", ["a=production", "a=v2"])
    with pytest.raises(InvalidInput, match="unit"):
        svc.create("third", "translate", ["a=production", "b=v2"], unit="tenant")
    with pytest.raises(InvalidInput, match="experiment name"):
        svc.create("bad name", "translate", ["a=production", "b=v2"])
    with pytest.raises(NotFound):
        svc.get("nope")


def test_active_for_is_served_from_memory_until_the_ttl(database_url):
    _prompt_with_versions(database_url)
    writer = ExperimentService(database_url)
    reader = ExperimentService(database_url, cache_ttl=3600)
    assert reader.active_for("summarize") is None  # "nothing runs" is cached too
    writer.create("cached", "summarize", ["control=production", "candidate=v3"])
    assert reader.active_for("summarize") is None
    reader.invalidate()
    assert reader.active_for("summarize").name == "cached"
    writer.stop("cached")
    assert reader.active_for("summarize").name == "cached"  # within the TTL
    fresh = ExperimentService(database_url, cache_ttl=0)
    assert fresh.active_for("summarize") is None


def test_sync_from_config_creates_once_and_refuses_a_changed_definition(database_url):
    _prompt_with_versions(database_url)
    config = [
        {
            "name": "from-config",
            "prompt": "summarize",
            "variants": ["control=production:50", {"name": "candidate", "version": 3, "weight": 50}],
            "unit": "session",
        }
    ]
    replica_a, replica_b = ExperimentService(database_url), ExperimentService(database_url)
    assert replica_a.sync_from_config(config) == [{"name": "from-config", "action": "created"}]
    assert replica_b.sync_from_config(config) == [{"name": "from-config", "action": "unchanged"}]
    view = replica_b.get("from-config")
    assert (view.unit, view.allocation, view.created_by) == ("session", "fixed", "config")
    assert [v.spec() for v in view.variants] == ["control=production:50", "candidate=v3:50"]
    # The mapping form means the same thing.
    same = [{**config[0], "variants": {"control": "production:50", "candidate": {"ref": "v3", "weight": 50}}}]
    assert replica_a.sync_from_config(same)[0]["action"] == "unchanged"

    replica_a.pause("from-config")
    assert replica_b.sync_from_config(config)[0]["action"] == "unchanged"
    assert replica_b.get("from-config").status == "paused"  # the operator's pause wins

    changed = [{**config[0], "variants": ["control=production:50", "candidate=v3:20"]}]
    with pytest.raises(Conflict, match="different definition"):
        replica_a.sync_from_config(changed)
    with pytest.raises(InvalidInput, match="unknown keys"):
        replica_a.sync_from_config([{**config[0], "traffic": 5}])
    with pytest.raises(InvalidInput, match="missing variants"):
        replica_a.sync_from_config([{"name": "x", "prompt": "summarize"}])


def test_concurrent_creates_on_one_prompt_start_exactly_one_experiment(database_url):
    import threading

    _prompt_with_versions(database_url)
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def create(i: int) -> None:
        svc = ExperimentService(database_url)
        barrier.wait()
        try:
            svc.create(f"race-{i}", "summarize", ["control=production", "candidate=v3"], check_refs=False)
            outcomes.append("created")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=create, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 5 + ["created"]
    assert len(ExperimentService(database_url).list(prompt="summarize")) == 1
