"""The app against a running gateway (LLMOPS_GATEWAY_URL) instead of one in its own process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from llmops.ui.gateway_client import RemoteGateway, close_all
from llmops.ui.settings import UISettings
from tests.e2e import seed
from tests.e2e.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
ARTICLE = (
    "The museum opened a new wing on Friday. It cost £12m. Entry is free for children. It opens at nine."
)


@pytest.fixture
def gateway_url(tmp_path, monkeypatch):
    """`llmops serve` on the embedded config and the app's database; the app pointed at it."""
    database_url = f"sqlite:///{tmp_path / 'llmops.db'}"
    seed.sync_prompts(database_url)
    port = free_port()
    env = {**os.environ, "LLMOPS_DATABASE_URL": database_url, "LLMOPS_SPILL_DIR": str(tmp_path / "spill")}
    env.pop("LLMOPS_MASTER_KEY", None)
    log_path = tmp_path / "gateway.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmops.cli", "serve", "--port", str(port), "--log-level", "warning"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"gateway not live in 60 s:\n{log_path.read_text()}"
            time.sleep(0.1)
        monkeypatch.setenv("LLMOPS_DATABASE_URL", database_url)
        monkeypatch.setenv("LLMOPS_GATEWAY_URL", url)
        monkeypatch.delenv("LLMOPS_GATEWAY_CONFIG", raising=False)
        yield url
    finally:
        close_all()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_remote_client_reads_health_and_calls_models(gateway_url):
    client = RemoteGateway(UISettings(database_url="unused", gateway_url=gateway_url + "/v1"))
    try:
        health = client.health()
        assert health.ready and health.database == "ok"
        demo = next(m for m in health.models if m.name == "demo")
        assert [(d.name, d.available, d.provider) for d in demo.deployments] == [
            ("demo/mock/0", True, "mock")
        ]
        reply = client.chat("demo", [{"role": "user", "content": ARTICLE}])
        assert (
            reply.text == "The museum opened a new wing on Friday. It cost £12m. Entry is free for children."
        )
        assert reply.request_id.startswith("req-") and reply.deployment == "demo/mock/0"
        assert reply.output_tokens > 0 and reply.cost == 0.0
    finally:
        client.close()


def test_compare_runs_through_the_running_gateway(gateway_url):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    at.switch_page("llmops/ui/pages/compare.py").run()
    assert f"Models through the gateway at {gateway_url}" in "\n".join(c.value for c in at.sidebar.caption)
    at.text_area(key="compare_var_text").input(ARTICLE)
    at.button(key="compare_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    page = "\n".join(h.value for h in at.html)
    outputs = [part.split("</div>")[0] for part in page.split('<div class="text llmops-output">')[1:]]
    assert len(outputs) == 2 and all("The museum opened a new wing on Friday." in o for o in outputs)
    # Each output knows its request on the running gateway, so it can be rated.
    assert page.count(" · request ") == 2

    # The running gateway wrote the calls to the shared ledger: Spend shows them.
    deadline = time.monotonic() + 10
    while True:
        at.switch_page("llmops/ui/pages/spend.py").run()
        requests = {m.label: m.value for m in at.metric}.get("Requests")
        if requests == "2" or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert requests == "2"
    users = next(
        d.value for d in at.dataframe if "User" in d.value.columns and "llmops-ui" in set(d.value["User"])
    )
    assert users.set_index("User").loc["llmops-ui", "Requests"] == "2"
