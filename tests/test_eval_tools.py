"""Tool-call and structured-output assertions, and multi-turn cases that feed tool results back.

End to end: `llmops eval run` on a suite whose registry prompt offers two tools, against a
fake agent upstream (tests/test_eval_agent_upstream.py) behind the gateway the harness
starts. The right agent passes every step; the wrong one books with bad arguments at its
second step, and that case fails on the assertions that should catch it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llmops.errors import InvalidInput
from llmops.evaluation.assertions import AssertionSpec, EvalContext, grade_sync
from llmops.evaluation.suites import parse_suite
from llmops.evaluation.tool_assertions import find, parse_path
from tests.test_eval_agent_upstream import AgentUpstream, gateway_config

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city",
                                      "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                     "required": ["city"]}}},
    {"type": "function", "function": {"name": "book_table", "description": "Book a restaurant table",
                                      "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                                                      "people": {"type": "integer"}},
                                                     "required": ["city", "people"]}}},
]  # fmt: skip


def call(name: str, arguments: dict | str, id: str = "call_1") -> dict:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": id, "type": "function", "function": {"name": name, "arguments": args}}


def check(kind: str, value=None, *, calls=(), output: str = "", tools=TOOLS):
    spec = AssertionSpec(type=kind, value=value)
    return grade_sync(spec, EvalContext(output=output, tool_calls=list(calls), tools=tools))


def test_tool_called_by_name_values_and_schema():
    calls = [call("get_weather", {"city": "Paris", "unit": "c"})]
    assert check("tool-called", "get_weather", calls=calls).passed
    assert check("tool-called", {"name": "get_weather", "arguments": {"city": "Paris"}}, calls=calls).passed
    wrong = check("tool-called", {"name": "get_weather", "arguments": {"city": "Lyon"}}, calls=calls)
    assert not wrong.passed and 'do not match {"city": "Lyon"}' in wrong.reason
    schema = {"properties": {"unit": {"enum": ["f"]}}}
    bad = check("tool-called", {"name": "get_weather", "schema": schema}, calls=calls)
    assert not bad.passed and "do not match the schema at unit" in bad.reason
    missing = check("tool-called", "book_table", calls=calls)
    assert not missing.passed and "book_table was not called; called get_weather" in missing.reason
    assert not check("tool-called", "get_weather", calls=[call("get_weather", "{not json")]).passed
    negated = grade_sync(AssertionSpec(type="not-tool-called", value="book_table"), EvalContext(output="", tool_calls=calls))
    assert negated.passed


def test_tool_not_called_sequence_and_validity():
    calls = [call("get_weather", {"city": "Paris"}, "a"), call("book_table", {"city": "Paris", "people": 2}, "b")]
    assert check("tool-not-called", output="hello").passed
    assert not check("tool-not-called", calls=calls).passed
    assert not check("tool-not-called", "book_table", calls=calls).passed
    assert check("tool-sequence", ["get_weather", "book_table"], calls=calls).passed
    assert not check("tool-sequence", ["book_table", "get_weather"], calls=calls).passed
    assert not check("tool-sequence", ["book_table"], calls=calls).passed
    assert check("tool-sequence", {"sequence": ["book_table"], "allow_extra": True}, calls=calls).passed
    assert not check("tool-sequence", {"sequence": ["book_table", "get_weather"], "allow_extra": True}, calls=calls).passed
    assert check("is-valid-tool-call", calls=calls).passed
    unknown = check("is-valid-tool-call", calls=[call("delete_account", {})])
    assert not unknown.passed and "'delete_account' is not one of the request's tools" in unknown.reason
    typed = check("is-valid-tool-call", calls=[call("book_table", {"city": "Paris", "people": "two"})])
    assert not typed.passed and "at people: 'two' is not of type 'integer'" in typed.reason
    assert not check("is-valid-tool-call").passed  # no call at all
    with pytest.raises(InvalidInput, match="the request has no `tools`"):
        check("is-valid-tool-call", calls=calls, tools=None)


def test_json_path_on_output_and_on_tool_arguments():
    output = '```json\n{"order": {"items": [{"sku": "A-1", "tags": ["gift"]}, {"sku": "B-2"}]}, "note": "ship fast"}\n```'
    assert parse_path("$.order.items[0]['sku']") == ["order", "items", 0, "sku"]
    assert find(json.loads(output.split("\n", 1)[1].rsplit("\n", 1)[0]), parse_path("$.order.items[*].sku")) == ["A-1", "B-2"]
    assert check("json-path", {"path": "$.order.items[0].sku", "equals": "A-1"}, output=output).passed
    assert check("json-path", {"path": "$.order.items[*].sku", "equals": "B-2"}, output=output).passed
    assert check("json-path", {"path": "$.order.items[0].tags", "contains": "gift"}, output=output).passed
    assert check("json-path", {"path": "$.note", "contains": "fast"}, output=output).passed
    miss = check("json-path", {"path": "$.order.total", "equals": 3}, output=output)
    assert not miss.passed and "$.order.total not found in the output" in miss.reason
    assert not check("json-path", {"path": "$.a", "equals": 1}, output="not json").passed
    calls = [call("book_table", {"city": "Paris", "people": 2})]
    assert check("json-path", {"path": "$.people", "equals": 2, "tool": "book_table"}, calls=calls).passed
    wrong = check("json-path", {"path": "$.city", "equals": "Lyon", "tool": "book_table"}, calls=calls)
    assert not wrong.passed and '$.city is "Paris", not equals "Lyon"' in wrong.reason
    with pytest.raises(InvalidInput, match="a path starts with"):
        check("json-path", {"path": "order", "equals": 1}, output="{}")


def test_case_messages_are_checked_when_the_suite_loads():
    base = {"name": "s", "prompts": [{"id": "p", "template": "x"}], "models": ["demo"]}
    case = {"id": "c", "messages": [{"role": "assistant", "tool_calls": [
        {"id": "call_0", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": {"temp": 18}}]}  # fmt: skip
    messages = parse_suite({**base, "cases": [case]}).expanded_cases()[0].messages
    assert messages[0]["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'  # YAML mapping -> JSON string
    assert messages[1]["content"] == '{"temp": 18}'
    bad = {**case, "messages": [{"role": "tool", "content": "18C"}]}
    with pytest.raises(InvalidInput, match="message 1: a tool turn needs the tool_call_id it answers"):
        parse_suite({**base, "cases": [bad]})
    with pytest.raises(InvalidInput, match="needs a role"):
        parse_suite({**base, "cases": [{"id": "c", "messages": [{"content": "hi"}]}]})


SUITE = {
    "name": "trip-agent",
    "prompts": ["trip-planner@production"],
    "models": ["agent", "agent-wrong"],
    "cases": [
        {"id": "check-weather", "vars": {"request": "Check the weather in Paris, then book a table for 2."},
         "assert": [{"type": "tool-called", "value": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                    "is-valid-tool-call", {"type": "tool-sequence", "value": ["get_weather"]},
                    {"type": "tool-not-called", "value": "book_table"}]},
        {"id": "then-book", "vars": {"request": "Check the weather in Paris, then book a table for 2."},
         "messages": [
             {"role": "assistant", "tool_calls": [{"id": "call_0", "type": "function",
                                                   "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
             {"role": "tool", "tool_call_id": "call_0", "content": "18C and sunny"}],
         "assert": [{"type": "tool-called", "value": {"name": "book_table", "schema": {
                        "properties": {"city": {"const": "Paris"}, "people": {"type": "integer", "minimum": 1}},
                        "required": ["city", "people"]}}},
                    "is-valid-tool-call",
                    {"type": "json-path", "value": {"path": "$.people", "equals": 2, "tool": "book_table"}},
                    {"type": "tool-not-called", "value": "get_weather"}]},
        {"id": "answer", "vars": {"request": "Check the weather in Paris, then book a table for 2."},
         "messages": [
             {"role": "assistant", "tool_calls": [{"id": "call_0", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
             {"role": "tool", "tool_call_id": "call_0", "content": "18C and sunny"},
             {"role": "assistant", "tool_calls": [{"id": "call_1", "function": {"name": "book_table",
                                                                                "arguments": {"city": "Paris", "people": 2}}}]},
             {"role": "tool", "tool_call_id": "call_1", "content": "booked for 20:00"}],
         "assert": ["tool-not-called", {"type": "contains", "value": "18C and sunny"}]},
    ],
}  # fmt: skip

PROMPT = {
    "name": "trip-planner",
    "labels": {"production": 1},
    "versions": [{
        "version": 1, "message": "plans with tools", "author": "test",
        "model_config": {"model": "agent", "tools": TOOLS},
        "variables": {"request": None},
        "messages": [{"role": "system", "content": "You plan trips. Use the tools."},
                     {"role": "user", "content": "{{ request }}"}],
    }],
}  # fmt: skip


def llmops(*args: str, database_url: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LLMOPS_DATABASE_URL": database_url}
    for name in ("LLMOPS_GATEWAY_URL", "LLMOPS_MASTER_KEY"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "llmops.cli", *args], capture_output=True, text=True, timeout=180, cwd=cwd, env=env
    )


def test_a_multi_turn_tool_calling_case_passes_and_a_wrong_tool_call_fails_it(tmp_path, database_url):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "trip-planner.yaml").write_text(yaml.safe_dump(PROMPT, sort_keys=False))
    suite = tmp_path / "agent.yaml"
    suite.write_text(yaml.safe_dump(SUITE, sort_keys=False))
    synced = llmops("prompts", "sync", "prompts", "--database-url", database_url, database_url=database_url, cwd=tmp_path)
    assert synced.returncode == 0, synced.stderr
    with AgentUpstream() as upstream:
        config = tmp_path / "gateway.yaml"
        config.write_text(yaml.safe_dump(gateway_config(upstream.base_url, {"agent": "agent", "agent-wrong": "agent-wrong"})))
        done = llmops("eval", "run", str(suite), "--gateway-config", str(config), "--database-url", database_url,
                      "--json", database_url=database_url, cwd=tmp_path)  # fmt: skip
        sent = list(upstream.received)
    run = json.loads(done.stdout)
    assert done.returncode == 1, done.stderr
    verdicts = {(r["case_id"], r["model_id"]): r for r in run["results"]}
    assert {k: r["passed"] for k, r in verdicts.items()} == {
        ("check-weather", "agent"): True, ("check-weather", "agent-wrong"): True,
        ("then-book", "agent"): True, ("then-book", "agent-wrong"): False,
        ("answer", "agent"): True, ("answer", "agent-wrong"): True,
    }  # fmt: skip
    wrong = {a["type"]: a for a in verdicts[("then-book", "agent-wrong")]["assertions"]}
    assert not wrong["tool-called"]["passed"] and "do not match the schema" in wrong["tool-called"]["reason"]
    assert "at people: 'two' is not of type 'integer'" in wrong["is-valid-tool-call"]["reason"]
    assert not wrong["json-path"]["passed"] and wrong["tool-not-called"]["passed"]
    assert verdicts[("then-book", "agent")]["tool_calls"][0]["function"] == {
        "name": "book_table", "arguments": '{"city": "Paris", "people": 2}'}  # fmt: skip
    assert verdicts[("answer", "agent")]["output"].startswith("Booked a table for 2 in Paris. The weather: 18C and sunny")

    # What the upstream received: the rendered prompt, then the case's turns, and the version's tools.
    then_book = [b for b in sent if b["model"] == "agent" and len(b["messages"]) == 4][0]
    assert [m["role"] for m in then_book["messages"]] == ["system", "user", "assistant", "tool"]
    assert then_book["messages"][2]["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'
    assert then_book["messages"][3] == {"role": "tool", "tool_call_id": "call_0", "content": "18C and sunny"}
    assert [t["function"]["name"] for t in then_book["tools"]] == ["get_weather", "book_table"]

    # Stored and cached with the tool calls: a re-run asks nothing and reaches the same verdicts.
    again = llmops("eval", "run", str(suite), "--gateway-config", str(config), "--database-url", database_url,
                   "--json", database_url=database_url, cwd=tmp_path)  # fmt: skip
    rerun = json.loads(again.stdout)
    assert rerun["parameters"]["cache_hits"] == 6
    assert [r["passed"] for r in rerun["results"]] == [r["passed"] for r in run["results"]]
    shown = llmops("eval", "show", run["id"], "--json", "--database-url", database_url, database_url=database_url, cwd=tmp_path)
    stored = {(r["case_id"], r["model_id"]): r for r in json.loads(shown.stdout)["results"]}
    assert stored[("then-book", "agent-wrong")]["tool_calls"][0]["function"]["arguments"] == '{"city": "Lyon", "people": "two"}'
