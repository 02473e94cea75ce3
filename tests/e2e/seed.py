"""Real data for the app's tests: prompts synced from prompts/, gateway traffic, eval runs.

Traffic goes through the real gateway (started in this process on the database under
test): an A/B experiment assigns variants, virtual keys and users are charged, the
ledger records each call, and feedback is sent as users would send it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import yaml

from llmops import Registry
from llmops.evaluation.client import HttpModelClient
from llmops.evaluation.runner import RunResult
from llmops.evaluation.service import run_suite_async
from llmops.evaluation.suites import load_suite
from llmops.gateway.app import running_app
from llmops.gateway.config import parse_config

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = "summarize-ab"
READERS = 24  # distinct users; the experiment splits by user, so the split is the same every run

ARTICLES = [
    "The city council approved a £2.4bn budget on Tuesday. It includes £310m for new schools. "
    "Opposition councillors voted against it. The budget takes effect in April.",
    "Train drivers will strike for 48 hours from 14 March. The union rejected a 3% pay offer. "
    "About 600 services a day will be cancelled. Passengers should check timetables.",
    "Astronomers detected water vapour on a planet 120 light years away. The planet is twice the "
    "size of Earth. The finding does not prove life exists there. The results appear in Nature Astronomy.",
]

# The embedded `demo` model, plus a priced test double so spend has dollars to chart.
TRAFFIC_CONFIG = {
    "models": [
        {"name": "demo", "deployments": [{"provider": "mock", "model": "demo", "pricing": {"cost": 0}}]},
        {
            "name": "demo-large",
            "deployments": [
                {
                    "provider": "mock",
                    "model": "demo-large",
                    "pricing": {"input_cost_per_token": 3e-6, "output_cost_per_token": 1.5e-5},
                }
            ],
        },
    ]
}


def sync_prompts(database_url: str) -> None:
    Registry(database_url).sync(ROOT / "prompts")


def _config(database_url: str):
    return parse_config({**TRAFFIC_CONFIG, "database_url": database_url}, source="test traffic")


async def _send_traffic(database_url: str, requests: int) -> list[tuple[str, str]]:
    from llmops.governance.keys import KeyStore

    keys = KeyStore(database_url=database_url)
    web, _ = keys.create(name="web-app", team="news")
    batch, _ = keys.create(name="batch-jobs", team="data")
    sent: list[tuple[str, str]] = []
    async with running_app(_config(database_url)) as app:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            for i in range(requests):
                body = {
                    "model": "demo-large" if i % 3 else "demo",
                    "prompt": {"name": "summarize", "variables": {"text": ARTICLES[i % len(ARTICLES)]}},
                    "user": f"reader-{i % READERS}",
                }
                key = web if i % 4 else batch
                response = await client.post(
                    "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
                )
                response.raise_for_status()
                sent.append(
                    (response.headers["x-llmops-request-id"], response.headers.get("x-llmops-variant", ""))
                )
    return sent


def seed_traffic(database_url: str, requests: int = 80) -> list[tuple[str, str]]:
    """An experiment on summarize (production vs staging) with `requests` calls and feedback.

    Returns (request id, variant) per call. Readers like the candidate's summaries more.
    """
    from llmops.experiments.feedback import record_feedback
    from llmops.experiments.service import ExperimentService

    ExperimentService(database_url).create(
        EXPERIMENT, "summarize", ["control=production", "candidate=staging"], unit="user", actor="test"
    )
    sent = asyncio.run(_send_traffic(database_url, requests))
    for i, (request_id, variant) in enumerate(sent):
        liked = i % 4 != 0 if variant == "candidate" else i % 2 == 0
        record_feedback(request_id, thumbs="up" if liked else "down", database_url=database_url)
    return sent


def write_suite(directory: Path, name: str, prompt_ref: str) -> Path:
    """A suite whose prompt id stays `candidate` whatever version it points at, so runs compare.

    Case `echo-prefix` passes on versions whose user message starts "Article:" (v2, v3) and
    fails on v1; case `impossible` fails everywhere; `figures` passes everywhere.
    """
    suite = {
        "name": name,
        "prompts": [{"id": "candidate", "ref": prompt_ref}, {"id": "first", "ref": "summarize:1"}],
        "models": ["demo"],
        "cases": [
            {
                "id": "figures",
                "vars": {"text": ARTICLES[0]},
                "assert": [{"type": "contains", "value": "£2.4bn"}],
            },
            {
                "id": "echo-prefix",
                "vars": {"text": ARTICLES[1]},
                "assert": [{"type": "starts-with", "value": "Article:"}],
            },
            {
                "id": "impossible",
                "vars": {"text": ARTICLES[2]},
                "assert": [{"type": "contains", "value": "unicorns"}],
            },
        ],
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    return path


async def _run_suite(database_url: str, path: Path, baseline: str | None) -> RunResult:
    async with running_app(_config(database_url)) as app:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with HttpModelClient("http://gateway", transport=transport) as client:
            run, _ = await run_suite_async(
                load_suite(path), client=client, database_url=database_url, baseline=baseline
            )
    return run


def run_suite_file(database_url: str, path: Path) -> RunResult:
    """A suite file run and stored as `llmops eval run PATH` would."""
    return asyncio.run(_run_suite(database_url, path, None))


def seed_eval_runs(database_url: str, directory: Path) -> tuple[RunResult, RunResult]:
    """A baseline run of `candidate` = summarize:2, then a run of summarize:1 against it (regresses)."""
    baseline = asyncio.run(
        _run_suite(database_url, write_suite(directory, "summary-checks", "summarize:2"), None)
    )
    # Same suite name, so the second run's `last` baseline is the first.
    path = write_suite(directory, "summary-checks", "summarize:1")
    current = asyncio.run(_run_suite(database_url, path, baseline.id))
    return baseline, current
