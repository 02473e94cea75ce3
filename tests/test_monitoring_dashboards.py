"""The deployment files for dashboards and alerts (gateway/): Prometheus' own promtool
checks the alert rules and runs their unit tests; the Grafana dashboard loads, is laid
out on Grafana's 24-column grid, and every query in it parses (promtool, as recording
rules) and names only metrics a running gateway exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.gateway_proc import REPO, run_gateway

GATEWAY = REPO / "gateway"
RULES = GATEWAY / "prometheus-rules.yml"
DASHBOARD = GATEWAY / "grafana-dashboard.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing: run scripts/install-promtool.sh")


def _promtool(*args: str, cwd: Path = GATEWAY) -> str:
    assert PROMTOOL is not None
    out = subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def _concrete(expr: str) -> str:
    """A dashboard query as Prometheus would get it: Grafana's variables filled in."""
    return expr.replace("$__rate_interval", "5m").replace("$model", ".*").replace("$prompt", ".*")


@needs_promtool
def test_alert_rules_pass_promtool_and_their_unit_tests():
    assert "SUCCESS: 10 rules found" in _promtool("check", "rules", RULES.name)
    assert "SUCCESS" in _promtool("test", "rules", "prometheus-rules.test.yml")


@needs_promtool
def test_every_dashboard_query_parses(tmp_path):
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": _concrete(q)} for i, q in enumerate(_queries())]}]}
    (tmp_path / "queries.yml").write_text(yaml.safe_dump(rules))
    assert f"SUCCESS: {len(_queries())} rules found" in _promtool("check", "rules", "queries.yml", cwd=tmp_path)


def test_dashboard_layout_and_variables():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "llmops-gateway" and dashboard["schemaVersion"] >= 36
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "model", "prompt"}
    taken: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & taken, f"panel {p['title']!r} overlaps another"
        taken |= cells
        if p["type"] != "row":
            assert p["targets"] and p["datasource"]["uid"] == "${datasource}", p["title"]
            for t in p["targets"]:
                used = set(re.findall(r"\$(\w+)", t["expr"])) - {"__rate_interval"}
                assert used <= variables, (p["title"], used)
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("requests", "errors", "time", "tokens", "cost", "guardrail", "limiter", "drift", "online eval"):
        assert topic in titles


def _metric_names(expr: str) -> set[str]:
    return {m for m in re.findall(r"\b(llmops_[a-z_]+?)(?:_bucket)?\b", expr)}


def test_dashboards_and_rules_name_only_metrics_the_gateway_exposes(tmp_path):
    rules = yaml.safe_load(RULES.read_text())
    exprs = _queries() + [r["expr"] for g in rules["groups"] for r in g["rules"]]
    named = set().union(*(_metric_names(e) for e in exprs))
    config = {
        "models": [{"name": "demo", "deployments": [{"provider": "mock", "model": "demo", "pricing": {"cost": 0}}]}],
        "monitoring": {"capture": {"enabled": True}, "drift": {"enabled": True}, "online_eval": {"enabled": True}},
        "guardrails": {"enabled": False, "input": [], "output": []},  # not what this test is about
    }
    with run_gateway(config, tmp_path) as gw:
        httpx.post(gw.base_url + "/chat/completions", json={"model": "demo", "messages": [
            {"role": "user", "content": "hello"}]}).raise_for_status()
        exposed = set(re.findall(r"^# TYPE (llmops_\w+) ", httpx.get(gw.url + "/metrics").text, re.MULTILINE))
    assert named and named <= exposed, sorted(named - exposed)
