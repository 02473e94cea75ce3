"""The gateway's configuration, from the outside: `llmops serve` refuses a config with a
typo in any section in one line naming the field, says which models it serves and
which are off and why, tells a caller of an off model why, and says at once when its
port is taken."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from llmops.errors import InvalidInput
from llmops.experiments.assignment import VariantSpec
from llmops.gateway.config import parse_config
from tests.support.gateway_proc import REPO, GatewayProcess, free_port

UNSET = "LLMOPS_TEST_KEY_NEVER_SET"
SECRET = "sk-live-secret-value-42"
DEMO = {"name": "demo", "deployments": [{"provider": "mock", "model": "demo", "pricing": {"cost": 0}}]}
HOSTED = {"name": "hosted", "deployments": [{"provider": "openai", "model": "gpt-4o-mini",
                                             "api_key": f"os.environ/{UNSET}"}]}
EXPERIMENT = {"name": "sum-ab", "prompt": "summarize", "variants": ["control=production:50", "candidate=staging:50"]}


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "LLMOPS_DATABASE_URL": f"sqlite:///{tmp_path}/llmops.db",
           "LLMOPS_SPILL_DIR": str(tmp_path / "spill")}
    env.pop(UNSET, None)
    return env


def _serve(tmp_path: Path, config: dict | None, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """`llmops serve` that is expected to stop on its own."""
    cmd = [sys.executable, "-m", "llmops.cli", "serve", *args]
    if config is not None:
        path = tmp_path / "gateway.yaml"
        path.write_text(yaml.safe_dump(config))
        cmd += ["--config", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(tmp_path), cwd=tmp_path, timeout=timeout)


def _start(tmp_path: Path, config: dict) -> GatewayProcess:
    """`llmops serve` at log level info (tests/support's helper runs it at warning)."""
    port = free_port()
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    log_path = tmp_path / "gateway.log"
    cmd = [sys.executable, "-m", "llmops.cli", "serve", "--config", str(path), "--port", str(port)]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_env(tmp_path), cwd=tmp_path,
                                start_new_session=True)
    gw = GatewayProcess(proc, port, log_path)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited at start:\n{gw.log()}")
        try:
            if httpx.get(gw.url + "/health/live", timeout=1).status_code == 200:
                return gw
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            gw.stop()
            raise RuntimeError(f"gateway not live after 60 s:\n{gw.log()}")
        time.sleep(0.1)


# -- outside in: `llmops serve` -------------------------------------------------------


def test_a_model_whose_key_is_unset_is_off_and_its_callers_are_told_why(tmp_path):
    config = {"models": [DEMO, HOSTED, {**DEMO, "name": "backed-up", "fallbacks": ["hosted"]}]}
    gw = _start(tmp_path, config)
    try:
        client = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
        with pytest.raises(openai.NotFoundError) as exc:
            client.chat.completions.create(model="hosted", messages=[{"role": "user", "content": "hi"}])
        assert exc.value.status_code == 404 and exc.value.code == "model_not_found"
        assert exc.value.body["message"] == f"model 'hosted' is off on this gateway: {UNSET} is not set"
        with pytest.raises(openai.NotFoundError) as exc:  # a model never configured: as before
            client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
        assert "is not served by this gateway" in exc.value.message
        # The listing shows what can be called; a fallback that is off is skipped.
        assert sorted(m.id for m in client.models.list()) == ["backed-up", "demo"]
        reply = client.chat.completions.create(model="backed-up", messages=[{"role": "user", "content": "Hi."}])
        assert reply.choices[0].message.content == "Hi."
    finally:
        gw.stop()
    log = gw.log()
    assert f"model hosted: off, {UNSET} is not set" in log
    assert "model demo: served by mock demo" in log
    assert "model backed-up: served by mock demo; its fallback hosted is off" in log
    # One line per model, before the server says it is up.
    assert log.index(f"model hosted: off, {UNSET} is not set") < log.index("Application startup complete")
    assert log.count("model hosted: off") == 1


@pytest.mark.parametrize(
    ("section", "value", "field"),
    [
        ("guardrails", {"input": [{"check": "pii", "action": "flag"}], "outptu": []}, "guardrails.outptu"),
        ("guardrails", {"input": [{"check": "pii", "action": "flag", "actoin": "block"}]}, "guardrails.input.0.actoin"),
        ("limits", {"fail_open": {"budget": False}}, "limits.fail_open.budget"),
        ("ledger", {"batch_size": 10, "flush_every": 1}, "ledger.flush_every"),
        ("experiments", [{**EXPERIMENT, "traffic": 10}], "experiments.0.traffic"),
    ],
)
def test_an_unknown_field_in_a_section_stops_serve_in_one_line_naming_it(tmp_path, section, value, field):
    done = _serve(tmp_path, {"models": [DEMO], section: value}, "--port", str(free_port()))
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: invalid gateway config ")
    assert f"{field}: Extra inputs are not permitted" in lines[0]


def test_a_bad_value_stops_serve_in_one_line_naming_the_field_and_not_the_value(tmp_path):
    hosted = {"name": "hosted", "deployments": [{"provider": "openai", "model": "m", "api_key": SECRET,
                                                 "weight": "heavy"}]}
    config = {"models": [DEMO, hosted], "guardrails": {"input": [{"check": "pii", "action": "shout"}]},
              "experiments": [{**EXPERIMENT, "unit": "team"}]}
    done = _serve(tmp_path, config, "--port", str(free_port()))
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    for field in ("models.1.deployments.0.weight", "guardrails.input.0.action", "experiments.0.unit"):
        assert f"{field}: " in done.stderr
    assert SECRET not in done.stderr


def test_serve_on_a_taken_port_says_so_at_once(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for workers in ("1", "2"):
            started = time.monotonic()
            done = _serve(tmp_path, None, "--port", str(port), "--workers", workers, timeout=30)
            took = time.monotonic() - started
            assert done.returncode == 1
            assert done.stderr == f"error: cannot listen on 127.0.0.1:{port}: address already in use\n"
            assert done.stdout == ""
            assert took < 5, f"took {took:.1f}s to say the port is taken"


def test_experiments_in_the_config_exist_once_the_gateway_is_up(tmp_path):
    env = _env(tmp_path)
    subprocess.run([sys.executable, "-m", "llmops.cli", "prompts", "sync", str(REPO / "prompts")], env=env,
                   check=True, capture_output=True, cwd=tmp_path)
    config = {"models": [DEMO], "experiments": [{**EXPERIMENT, "variants": {"control": "production:50",
                                                                             "candidate": {"ref": "staging"}}}]}
    gw = _start(tmp_path, config)
    try:
        r = httpx.post(gw.base_url + "/chat/completions", json={
            "model": "demo", "user": "u-1", "prompt": {"name": "summarize", "variables": {"text": "Hi. There."}}})
        assert r.status_code == 200, r.text
        assert r.headers["x-llmops-variant"] in ("control", "candidate")
    finally:
        gw.stop()
    listed = subprocess.run([sys.executable, "-m", "llmops.cli", "experiments", "list"], env=env, text=True,
                            capture_output=True, check=True, cwd=tmp_path).stdout
    assert "sum-ab" in listed


# -- parse_config ---------------------------------------------------------------------


def _fault(raw: dict) -> str:
    with pytest.raises(InvalidInput) as exc:
        parse_config(raw)
    assert "\n" not in exc.value.message
    return exc.value.message


def test_sections_are_typed():
    config = parse_config({"models": [DEMO], "guardrails": {"input": [{"check": "pii", "action": "redact"}]},
                           "experiments": [EXPERIMENT]})
    assert [(c.check, c.action) for c in config.guardrails.input] == [("pii", "redact")]
    [entry] = config.experiments
    assert entry.variants == (VariantSpec("control", "production", None, 50.0),
                              VariantSpec("candidate", "staging", None, 50.0))
    assert (entry.unit, entry.allocation) == ("user", "fixed")
    # Left out or left empty, guardrails are the defaults.
    assert parse_config({"guardrails": None}).guardrails == parse_config({}).guardrails
    assert [c.check for c in parse_config({}).guardrails.input][0] == "injection"


def test_experiment_entries_are_checked_at_load():
    assert _fault({"experiments": [{**EXPERIMENT, "variants": ["control=production"]}]}).endswith(
        "experiments.0.variants: an experiment needs at least two variants, "
        "e.g. control=production:50 candidate=v3:50")
    assert "experiments.0.variants: variant #2: unknown keys ['wieght']" in _fault(
        {"experiments": [{**EXPERIMENT, "variants": ["a=production", {"name": "b", "ref": "v3", "wieght": 2}]}]})
    assert "experiments.0.name: invalid experiment name" in _fault({"experiments": [{**EXPERIMENT, "name": "a b"}]})
    assert "experiments.0.allocation: invalid allocation 'bandit'" in _fault(
        {"experiments": [{**EXPERIMENT, "allocation": "bandit"}]})
    assert "experiments.0.prompt: Field required" in _fault({"experiments": [{"name": "x", "variants": []}]})
    assert "experiments: names repeated: ['sum-ab']" in _fault({"experiments": [EXPERIMENT, EXPERIMENT]})


def test_off_models_and_deployments_keep_their_reasons(monkeypatch):
    monkeypatch.delenv(UNSET, raising=False)
    monkeypatch.delenv(UNSET + "_2", raising=False)
    two_keys = {"name": "two", "deployments": [HOSTED["deployments"][0],
                                               {**HOSTED["deployments"][0], "api_key": f"os.environ/{UNSET}_2"}]}
    mixed = {"name": "mixed", "deployments": [DEMO["deployments"][0], HOSTED["deployments"][0]]}
    config = parse_config({"models": [DEMO, HOSTED, two_keys, mixed, {"name": "empty", "deployments": []}]})
    assert [m.name for m in config.models] == ["demo", "mixed"]
    assert [d.provider for d in config.model("mixed").deployments] == ["mock"]
    assert config.off_models == {
        "hosted": f"{UNSET} is not set",
        "two": f"{UNSET} and {UNSET}_2 are not set",
        "empty": "it has no deployments",
    }
    assert config.model_lines() == [
        "model demo: served by mock demo",
        f"model mixed: served by mock demo; 1 of 2 deployments off, {UNSET} is not set",
        f"model hosted: off, {UNSET} is not set",
        f"model two: off, {UNSET} and {UNSET}_2 are not set",
        "model empty: off, it has no deployments",
    ]
    monkeypatch.setenv(UNSET, SECRET)
    config = parse_config({"models": [DEMO, HOSTED]})
    assert config.off_models == {} and config.model("hosted").deployments[0].api_key == SECRET


def test_a_model_that_is_off_is_still_checked(monkeypatch):
    monkeypatch.delenv(UNSET, raising=False)
    typo = {"name": "hosted", "deployments": [{**HOSTED["deployments"][0], "api_bsae": "https://x"}]}
    assert "models.0.deployments.0.api_bsae: Extra inputs are not permitted" in _fault({"models": [typo]})
    assert "off_models: set by the gateway" in _fault({"off_models": {"demo": "because"}})
