"""The app end to end: `streamlit run app.py` driven in headless Chromium at 1280 px.

A prompt author pushes a version with the CLI, compares production with staging on a
typed article, rates a cell, saves the comparison as an eval run, opens it and downloads
its CSV and HTML report, reads a regressed run, diffs two versions, moves a label the
running experiment serves, and opens a shared link in a fresh browser; then a 4 × 2 × 20
matrix is timed and checked for words broken mid-word. Screenshots land in
test-artifacts/ui/ (git-ignored).

Needs Debian's chromium (scripts/install-browser.sh) and the `playwright` package,
whose bundled driver is used; no browser is downloaded.
"""

from __future__ import annotations

import concurrent.futures
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
from urllib.parse import urlparse

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
    database_url: str
    work: Path


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
        yield App(base, baseline.id, regressed.id, database_url, work)
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
    box = page.get_by_test_id("stSelectbox").filter(has=label_element).locator("input")
    box.click()
    box.fill(option_text)  # filters the options to the one wanted
    page.get_by_role("option").filter(has_text=option_text).first.click()
    settle(page)


V4_FILE = """\
message: one paragraph, figures first
model_config: {model: demo, temperature: 0.2, max_tokens: 256}
variables: {text: null}
messages:
  - role: system
    content: Summarize the news article in one paragraph. Lead with the figures.
  - role: user
    content: "Story: {{ text }}"
"""
CHECKS = "- type: not-refusal\n- type: contains\n  value: bridge\n"
WIDTH = 1280


def llmops(database_url: str, *args: str) -> str:
    """The CLI as typed: `llmops ...` from the venv, on the app's database."""
    out = subprocess.run(
        [str(Path(sys.executable).with_name("llmops")), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LLMOPS_DATABASE_URL": database_url},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def seed_large_comparison(database_url: str) -> str:
    """4 versions x 2 models x 20 rows, run through the gateway and saved as an eval run."""
    import asyncio

    from llmops.evaluation.client import HttpModelClient
    from llmops.gateway.app import running_app
    from llmops.ui import compare as cmp

    stories = [
        f"Story {i}: the {place} council approved a budget of £{i + 2}.{i}m on {day}. Residents asked "
        f"for {i + 3} new crossings near the {place} schools, and the works start in {month}."
        for i, (place, day, month) in enumerate(
            (p, d, m)
            for p in ("harbour", "valley", "castle", "market", "station")
            for d, m in (("Monday", "April"), ("Tuesday", "May"), ("Thursday", "June"), ("Friday", "July"))
        )
    ]
    request = cmp.ComparisonRequest(
        prompt_refs=[f"summarize:{v}" for v in (1, 2, 3, 4)],
        models=["demo", "demo-large"],
        cases=[cmp.manual_case({"text": s}) for s in stories],
        checks=cmp.parse_checks(
            "- type: contains\n  value: council\n- type: icontains\n  value: crossings\n"
        ),
        name="large comparison",
    )

    async def run():
        async with running_app(seed._config(database_url)) as gateway:
            transport = httpx.ASGITransport(app=gateway)  # type: ignore[arg-type]
            async with HttpModelClient(
                "http://gateway", transport=transport, prompt_references=True
            ) as client:
                return await cmp.run_comparison(client, request, database_url=database_url)

    result = asyncio.run(run())
    assert len(result.results) == 160
    return cmp.save_comparison(result, database_url, as_eval_run=True)


def radio(page, group_text: str, option: str) -> None:
    settle(page)
    page.get_by_test_id("stRadio").filter(has_text=group_text).get_by_text(option, exact=True).first.click()
    settle(page)


def commit_text(locator, text: str) -> None:
    locator.fill(text)
    locator.press("Control+Enter")  # commit the text area, as a person tabbing away would


WORDS_BROKEN = """() => {
  const broken = [];
  for (const out of document.querySelectorAll('.llmops-output')) {
    const walker = document.createTreeWalker(out, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const m of node.textContent.matchAll(/[^\\s\\-]+/g)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const lines = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
        if (lines.size > 1) broken.push(m[0]);
      }
    }
  }
  return broken;
}"""


def test_the_prompt_authors_journey(app, browser):
    """Push a version, compare, rate a cell, save, open the run, diff, move a label, share a link."""
    started = time.monotonic()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    hosts: set[str] = set()

    def new_page():
        context = browser.new_context(viewport={"width": WIDTH, "height": 900}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.on(
            "request",
            lambda r: hosts.add(urlparse(r.url).hostname or "") if r.url.startswith("http") else None,
        )
        return context, page

    # 1. A new version pushed as a prompt author does, from a file.
    version_file = Path(app.work) / "summarize-v4.yaml"
    version_file.write_text(V4_FILE, encoding="utf-8")
    assert "summarize:4" in llmops(
        app.database_url, "prompts", "push", "summarize", "-f", str(version_file), "-m", "one paragraph"
    )

    context, page = new_page()
    page.goto(app.url)
    page.get_by_role("heading", name="Prompts", level=1).wait_for()
    settle(page)
    assert_no_error(page)
    shoot(page, "1-prompts")

    # 2. Compare production with staging on a typed article.
    open_page(page, "Compare")
    versions = page.get_by_test_id("stMultiSelect").filter(has_text="Versions")
    assert "summarize:2" in versions.inner_text() and "summarize:3" in versions.inner_text()
    commit_text(page.get_by_label("text", exact=True), ARTICLE)
    settle(page)
    commit_text(page.get_by_label("Checks for every row (YAML, as an eval suite's `assert:` list)"), CHECKS)
    settle(page)
    page.get_by_role("button", name="Run comparison").click()
    outputs = page.locator(".llmops-output")
    outputs.nth(1).wait_for()
    settle(page)
    assert outputs.count() == 2
    for i in range(2):
        assert "The harbour bridge reopened on Monday" in outputs.nth(i).inner_text()
    header = page.locator(".llmops-matrix thead").inner_text()
    assert (
        "summarize@production (summarize:2) · demo" in header
        and "summarize@staging (summarize:3) · demo" in header
    )
    # A cell opens onto its rendered prompt and checks.
    page.locator(".llmops-matrix details summary").first.click()
    assert "Rendered prompt" in page.locator(".llmops-matrix details[open]").first.inner_text()
    assert_no_error(page)
    shoot(page, "2-compare")

    # 3. Rate a cell: thumbs up with a comment, on the staging column.
    choose(page, "Version · model", "summarize@staging (summarize:3) · demo")
    radio(page, "Rating", "👍 Good")
    page.get_by_label("Comment").fill("keeps the £85m figure")
    page.get_by_role("button", name="Save feedback").click()
    page.get_by_test_id("stAlertContentSuccess").filter(has_text="Feedback saved on request").wait_for()
    settle(page)
    staging_cell = page.locator('td[data-column="summarize@staging|demo"]')
    assert "👍 1 👎 0" in staging_cell.inner_text()
    shoot(page, "3-rated")

    # 4. Save it as an eval run and open it.
    page.get_by_role("button", name="Save as eval run").click()
    page.get_by_test_id("stAlertContentSuccess").filter(has_text="Saved as eval run").wait_for()
    settle(page)
    open_page(page, "Eval runs")
    page.get_by_text(
        "Prompts: summarize@production → summarize:2, summarize@staging → summarize:3 · models: demo"
    ).wait_for()
    page.get_by_text("Feedback: 1 output(s) rated (👍 1 👎 0").wait_for()
    assert_no_error(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
    assert {r["prompt_ref"] for r in rows} == {"summarize:2", "summarize:3"}
    assert all(
        "The harbour bridge reopened" in r["output"] and r["rendered_prompt"] and r["variables"] for r in rows
    )
    with page.expect_download() as download:
        page.get_by_role("button", name="Download HTML report").click()
    report = Path(download.value.path()).read_text(encoding="utf-8")
    assert report.count('class="text llmops-output"') == 2 and "keeps the £85m figure" in report
    shoot(page, "4-eval-run")

    # A run that regressed against its baseline says so as it opens.
    choose(page, "Run", app.regressed_run)
    page.get_by_text(f"Regressed against {app.baseline_run}").wait_for()
    radio(page, "Show", "Failures")
    shared_run_url = page.url
    assert f"run={app.regressed_run}" in shared_run_url and "mode=failures" in shared_run_url
    shoot(page, "5-eval-run-baseline")

    # 5. Diff two versions, then move a label that the running experiment serves.
    open_page(page, "Prompts")
    radio(page, "Playground", "Diff")
    page.locator('tr[data-kind="changed"]').first.wait_for()
    shoot(page, "6-diff")
    radio(page, "Playground", "Numbers")
    page.locator(".vega-embed").first.wait_for()
    assert_no_error(page)
    shoot(page, "6-numbers")
    radio(page, "Playground", "Labels")
    choose(page, "Label", "production")
    choose(page, "To version", "v4")
    page.get_by_role("button", name="Move label").click()
    warning = page.get_by_test_id("stAlertContentWarning").filter(has_text="Move summarize@production")
    warning.wait_for()
    assert "running experiment summarize-ab (variant control) serves this label" in warning.inner_text()
    page.get_by_role("button", name="Confirm").click()
    page.get_by_test_id("stAlertContentSuccess").filter(
        has_text="summarize@production now points at version 4"
    ).wait_for()
    settle(page)
    page.get_by_role("heading", name="Move a label").wait_for()  # still on the Labels view
    shoot(page, "7-label-moved")

    # The other pages open cleanly, each charted.
    for title, name in (("Experiments", "10-experiments"), ("Spend", "11-spend"), ("Gateway", "12-gateway")):
        open_page(page, title)
        if title in ("Experiments", "Spend"):
            page.locator(".vega-embed").first.wait_for()
        assert_no_error(page)
        shoot(page, name)
    context.close()

    # 6. The shared link, in a fresh browser: the same run and filter.
    context, page = new_page()
    page.goto(shared_run_url)
    page.get_by_role("heading", name="Eval runs", level=1).wait_for()
    settle(page)
    page.get_by_text("Prompts: candidate → summarize:1, first → summarize:1").wait_for()  # the regressed run
    assert page.locator(".llmops-matrix tbody tr").count() == 2  # failures only
    page.get_by_text(f"Regressed against {app.baseline_run}").wait_for()
    shoot(page, "8-shared-link")

    # 7. 4 versions x 2 models x 20 rows: drawn within 3 s of opening, at 1280 px, no word broken.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # off Playwright's event loop
        large = pool.submit(seed_large_comparison, app.database_url).result()
    opened = time.perf_counter()
    page.goto(f"{app.url}/eval-runs?run={large}")
    page.wait_for_function("() => document.querySelectorAll('.llmops-matrix .llmops-output').length === 160")
    opened_in = time.perf_counter() - opened
    assert opened_in < 10.0, f"the page with the 160-cell matrix took {opened_in:.2f} s to open"
    # Drawn again in the session (the calls long returned): failures only, then every row.
    radio(page, "Show", "Failures")
    page.wait_for_function("() => document.querySelectorAll('.llmops-matrix .llmops-output').length < 160")
    redraw = time.perf_counter()
    page.get_by_test_id("stRadio").filter(has_text="Show").get_by_text("All rows", exact=True).first.click()
    page.wait_for_function("() => document.querySelectorAll('.llmops-matrix .llmops-output').length === 160")
    drawn = time.perf_counter() - redraw
    (ARTIFACTS / "timings.txt").write_text(
        f"4x2x20 matrix: page opened from its link in {opened_in:.2f} s; redrawn in {drawn:.2f} s\n"
    )
    assert drawn < 3.0, f"the 160-cell matrix took {drawn:.2f} s to draw"
    assert page.locator(".llmops-matrix thead th.out").count() == 8
    assert page.evaluate(WORDS_BROKEN) == []
    settle(page)
    shoot(page, "9-large-matrix")
    context.close()

    assert hosts == {"127.0.0.1"}, f"the app fetched from elsewhere: {hosts}"  # the favicon too
    elapsed = time.monotonic() - started
    print(f"journey took {elapsed:.1f} s")
    assert sorted((p.name for p in ARTIFACTS.glob("*.png")), key=lambda n: (int(n.split("-")[0]), n)) == [
        "1-prompts.png",
        "2-compare.png",
        "3-rated.png",
        "4-eval-run.png",
        "5-eval-run-baseline.png",
        "6-diff.png",
        "6-numbers.png",
        "7-label-moved.png",
        "8-shared-link.png",
        "9-large-matrix.png",
        "10-experiments.png",
        "11-spend.png",
        "12-gateway.png",
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
