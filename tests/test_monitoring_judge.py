"""Online evals with a judge: `llmops monitor score` grades a suite's judged assertion
(llm-rubric) on captured calls through a gateway started in process from --config, whose
judge model answers with a verdict; without a judge the assertion is listed as skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import yaml
from sqlalchemy import select

from llmops.monitoring.models import SCORES
from tests.support.gateway_proc import REPO
from tests.support.synthetic_traffic import degraded_week

VERDICT = '{"score": 0.8, "pass": true, "reason": "it answers"}'


def _score(env: dict, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "llmops.cli", "monitor", "score", "--json", *args], env=env,
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_suites_judged_assertion_runs_with_a_judge_and_is_skipped_without(tmp_path):
    from llmops.db import get_engine

    url = f"sqlite:///{tmp_path / 'llmops.db'}"
    env = {**os.environ, "LLMOPS_DATABASE_URL": url}
    env.pop("LLMOPS_GATEWAY_URL", None)
    degraded_week(url, datetime.now(UTC))
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "chairs", "prompts": ["p"], "judge": "judge", "cases": [{"vars": {}}],
        "defaults": {"assert": [{"type": "llm-rubric", "value": "answers the question about the chair"},
                                {"type": "icontains", "value": "chair"}]},
    }))
    config = tmp_path / "gateway.yaml"
    gateway = {
        "models": [{"name": "judge", "deployments": [{"provider": "mock", "model": "judge",
                                                      "options": {"reply": VERDICT}}]}],
        "guardrails": {"enabled": False, "input": [], "output": []},
        "monitoring": {"online_eval": {"suite": str(suite), "faithfulness_scorer": "lexical"}},
    }
    config.write_text(yaml.safe_dump(gateway))

    # Without a judge (none configured anywhere): the offline assertion runs, the judged one is skipped.
    no_judge = tmp_path / "no-judge.yaml"
    suite_without = yaml.safe_load(suite.read_text())
    del suite_without["judge"]
    (tmp_path / "suite-nojudge.yaml").write_text(yaml.safe_dump(suite_without))
    gateway["monitoring"]["online_eval"]["suite"] = str(tmp_path / "suite-nojudge.yaml")
    no_judge.write_text(yaml.safe_dump(gateway))
    first = _score(env, "--config", str(no_judge), "--limit", "10")
    assert first["by_metric"]["icontains"] == 10 and "llm-rubric" not in first["by_metric"]
    assert "judge" in first["skipped"]["llm-rubric"]

    rest = _score(env, "--config", str(config))
    assert rest["calls"] == 110 and rest["by_metric"]["llm-rubric"] == 110
    with get_engine(url).connect() as conn:
        judged = conn.execute(select(SCORES.c.score, SCORES.c.reason).where(SCORES.c.metric == "llm-rubric")).all()
    assert {s for s, _ in judged} == {0.8} and all("it answers" in r for _, r in judged)
