"""The app end to end: `streamlit run app.py` driven in headless Chromium.

A person opens Compare, fills in an article, runs summarize v2 against v3 on the `demo`
model and sees both outputs; saves the comparison, reads it on Eval runs and downloads
its CSV; a screenshot of every page lands in test-artifacts/ui/ (git-ignored).

Needs Debian's chromium (scripts/install-browser.sh) and the `playwright` package,
whose bundled driver is used; no browser is downloaded.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e import seed
from tests.e2e.ports import free_port

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTICLE = (
    "The harbour bridge reopened on Monday after a two-year repair costing £85m. "
    "About 40,000 vehicles are expected to cross it each day. "
    "The mayor said tolls would stay at £2. Cyclists get a new protected lane."
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing: run scripts/install-browser.sh"
    ),
]


@dataclass(frozen=True)
class App:
    url: str
    baseline_run: str
    regressed_run: str


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator[App]:
    """The app on a fresh SQLite database holding the prompts, some traffic and eval runs."""
    work = tmp_path_factory.mktemp("app")
    database_url = f"sqlite:///{work / 'llmops.db'}"
    seed.sync_prompts(database_url)
    seed.seed_traffic(database_url)
    baseline, regressed = seed.seed_eval_runs(database_url, work)
    port = free_port()
    env = {
        **os.environ,
        "LLMOPS_DATABASE_URL": database_url,
        "LLMOPS_EVALS_DIR": str(ROOT / "evals"),
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("LLMOPS_GATEWAY_URL", "LLMOPS_GATEWAY_CONFIG", "LLMOPS_MASTER_KEY"):
        env.pop(name, None)
    log_path = work / "streamlit.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(ROOT / "app.py"),
                "--server.headless",
                "true",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--browser.gatherUsageStats",
                "false",
                "--server.fileWatcherType",
                "none",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{base}/_stcore/health", timeout=1).text == "ok":
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not become healthy in 60 s:\n{log_path.read_text()}")
            time.sleep(0.25)
        yield App(base, baseline.id, regressed.id)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_text = log_path.read_text(errors="replace")
        assert "Traceback" not in log_text, log_text


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, tmp_path):
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        yield page
    finally:
        context.close()


def settle(page) -> None:
    """Wait until the script run has finished and the page stopped changing."""
    page.wait_for_load_state("networkidle")
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || getComputedStyle(document.querySelector('[data-testid=\"stStatusWidget\"]')).visibility === 'hidden'",
        timeout=60_000,
    )
    page.wait_for_timeout(700)


def open_page(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    page.get_by_role("heading", name=title, level=1).wait_for()
    settle(page)


def shoot(page, name: str) -> Path:
    """The whole page: Streamlit scrolls inside its main pane, so grow the viewport to fit it."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    size = page.viewport_size
    height = page.evaluate(
        '() => Math.max(...[...document.querySelectorAll(\'[data-testid="stMain"], [data-testid="stMainBlockContainer"]\')]'
        ".map(e => e.scrollHeight), document.body.scrollHeight)"
    )
    page.set_viewport_size({"width": size["width"], "height": min(max(height + 40, size["height"]), 8000)})
    page.wait_for_timeout(500)
    page.screenshot(path=str(path))
    page.set_viewport_size(size)
    return path


def assert_no_error(page) -> None:
    errors = page.get_by_test_id("stAlertContentError")
    assert errors.count() == 0, errors.all_inner_texts()
    assert page.get_by_test_id("stException").count() == 0


def choose(page, label: str, option_text: str) -> None:
    """Pick an option of a selectbox as a person does: open it, click the option."""
    label_element = page.get_by_test_id("stWidgetLabel").get_by_text(label, exact=True)
    page.get_by_test_id("stSelectbox").filter(has=label_element).locator("input").click()
    page.get_by_role("option").filter(has_text=option_text).first.click()
    settle(page)


def test_compare_two_versions_of_summarize_on_demo_then_every_page(app, page):
    page.goto(app.url)
    page.get_by_role("heading", name="Prompts", level=1).wait_for()
    settle(page)
    assert_no_error(page)
    shoot(page, "1-prompts")
    page.get_by_role("tab", name="Diff").click()
    page.locator('tr[data-kind="changed"]').first.wait_for()
    shoot(page, "1-prompts-diff")

    open_page(page, "Compare")
    versions = page.get_by_test_id("stMultiSelect").filter(has_text="Versions")
    assert "summarize:2" in versions.inner_text() and "summarize:3" in versions.inner_text()
    models = page.get_by_test_id("stMultiSelect").filter(has_text="Models")
    assert "demo" in models.inner_text()
    text = page.get_by_label("text", exact=True)
    text.fill(ARTICLE)
    text.press("Control+Enter")  # commit the text area, as a person tabbing away would
    settle(page)
    page.get_by_role("button", name="Run comparison").click()
    outputs = page.locator(".llmops-output")
    outputs.nth(1).wait_for()
    settle(page)
    assert outputs.count() == 2
    for i in range(2):
        assert "The harbour bridge reopened on Monday" in outputs.nth(i).inner_text()
    assert page.get_by_text("summarize@production (summarize:2) · demo").count() >= 1
    assert page.get_by_text("summarize@staging (summarize:3) · demo").count() >= 1
    assert_no_error(page)
    shoot(page, "2-compare")

    page.get_by_role("button", name="Save as eval run").click()
    page.get_by_test_id("stAlertContentSuccess").filter(has_text="Saved as eval run").wait_for()
    settle(page)

    open_page(page, "Eval runs")
    # The run just saved is the one shown.
    page.get_by_text(
        "Prompts: summarize@production → summarize:2, summarize@staging → summarize:3 · models: demo"
    ).wait_for()
    assert_no_error(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
    assert {r["prompt_ref"] for r in rows} == {"summarize:2", "summarize:3"}
    assert all("The harbour bridge reopened" in r["output"] for r in rows)
    shoot(page, "3-eval-runs")

    # A run that regressed against its baseline: the comparison is shown as it opens.
    choose(page, "Run", app.regressed_run)
    page.get_by_text(f"Regressed against {app.baseline_run}").wait_for()
    shoot(page, "3-eval-runs-baseline")

    for title, name in (("Experiments", "4-experiments"), ("Spend", "5-spend"), ("Gateway", "6-gateway")):
        open_page(page, title)
        if title in ("Experiments", "Spend"):
            page.locator(".vega-embed").first.wait_for()
            page.wait_for_timeout(500)
        assert_no_error(page)
        shoot(page, name)

    assert sorted(p.name for p in ARTIFACTS.glob("*.png")) == [
        "1-prompts-diff.png",
        "1-prompts.png",
        "2-compare.png",
        "3-eval-runs-baseline.png",
        "3-eval-runs.png",
        "4-experiments.png",
        "5-spend.png",
        "6-gateway.png",
    ]


def test_install_script_is_idempotent():
    """With chromium present, the script reports it and changes nothing."""
    if shutil.which("apt-get") is None:
        pytest.skip("not a Debian system")
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-browser.sh")], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "already installed" in out.stdout
