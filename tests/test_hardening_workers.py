"""`llmops serve --workers N` without Redis refuses to start when limits exist, since each
worker would enforce them alone (issue 19: $2.00 spent on a $1.00 budget)."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
import yaml

from llmops.governance.keys import KeyStore
from tests.support.gateway_proc import REPO, free_port, run_gateway

MODELS = [{"name": "demo", "deployments": [{"provider": "mock", "model": "demo", "pricing": {"cost": 0}}]}]


def _serve(tmp_path, config: dict, workers: int, env: dict | None = None) -> subprocess.CompletedProcess:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    full_env = {**os.environ, "LLMOPS_DATABASE_URL": f"sqlite:///{tmp_path}/llmops.db", **(env or {})}
    full_env.pop("LLMOPS_REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "llmops.cli", "serve", "--config", str(path), "--port", str(free_port()),
         "--workers", str(workers)], env=full_env, cwd=REPO, capture_output=True, text=True, timeout=60)


def test_configured_budgets_with_workers_and_no_redis_refuse_to_start(tmp_path):
    config = {"models": MODELS, "limits": {"budgets": [{"team": "ml", "budget": 1.0}]}}
    out = _serve(tmp_path, config, workers=2)
    assert out.returncode == 1, out.stderr
    assert "--workers 2 without LLMOPS_REDIS_URL" in out.stderr and "team budget" not in out.stderr
    assert "the configured budget of ml" in out.stderr and "Traceback" not in out.stderr


def test_a_key_with_limits_with_workers_and_no_redis_refuses_to_start(tmp_path):
    KeyStore(f"sqlite:///{tmp_path}/llmops.db").create(name="capped", rpm=40)
    out = _serve(tmp_path, {"models": MODELS}, workers=3)
    assert out.returncode == 1, out.stderr
    assert "key 'capped'" in out.stderr and "3 times" in out.stderr


def test_workers_without_limits_start(tmp_path):
    KeyStore(f"sqlite:///{tmp_path}/llmops.db").create(name="free")
    env = {k: v for k, v in os.environ.items() if k != "LLMOPS_REDIS_URL"}
    with run_gateway({"models": MODELS, "guardrails": {"input": [], "output": []}}, tmp_path, workers=2,
                     env=env) as gw:
        assert httpx.get(gw.url + "/health/live", timeout=5).status_code == 200


@pytest.mark.redis
def test_workers_with_redis_and_limits_start(tmp_path):
    from tests.test_limits import REDIS_URL, _redis_reachable

    if _redis_reachable():
        pytest.skip("Redis unreachable")
    config = {"models": MODELS, "limits": {"budgets": [{"team": "ml", "budget": 1.0}]},
              "guardrails": {"input": [], "output": []}}
    with run_gateway(config, tmp_path, workers=2, env={"LLMOPS_REDIS_URL": REDIS_URL}) as gw:
        assert httpx.get(gw.url + "/health/live", timeout=5).status_code == 200
