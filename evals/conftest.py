"""pytest wiring for the eval suites in this directory: `pytest evals/` runs them in CI.

Each case × prompt × model of every suite here is a test item (see
llmops/pytest_plugin.py). Runs go to a fresh SQLite database per session,
into which `prompts/` is synced first, so the suites test the prompts as committed;
pass --eval-database-url (or LLMOPS_EVAL_DATABASE_URL) to keep runs and the response
cache in a database of your own. Without --eval-gateway-url (or LLMOPS_GATEWAY_URL)
the models are served by a gateway started inside the test process: `demo` needs
no network and no key.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from llmops import pytest_plugin

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"


def pytest_addoption(parser, pluginmanager):
    # Loaded as a plugin (the pytest11 entry point, or -p), it registers these itself.
    if not pluginmanager.is_registered(pytest_plugin):
        pytest_plugin.pytest_addoption(parser)


def pytest_collect_file(parent, file_path):
    if parent.config.pluginmanager.is_registered(pytest_plugin):
        return None  # the plugin collects the suites itself
    return pytest_plugin.collect_suite_file(parent, file_path)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not config.pluginmanager.is_registered(pytest_plugin):
        pytest_plugin.pytest_terminal_summary(terminalreporter, exitstatus, config)


def pytest_configure(config):
    if not config.pluginmanager.is_registered(pytest_plugin):
        pytest_plugin.pytest_configure(config)
    url = config.option.eval_database_url or os.environ.get("LLMOPS_EVAL_DATABASE_URL")
    if not url:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='llmops-evals-')}/llmops.db"
    config.option.eval_database_url = url
    # The in-process gateway reads its database from the settings: the same one.
    os.environ["LLMOPS_DATABASE_URL"] = url
    from llmops.settings import get_settings

    get_settings.cache_clear()
    if PROMPTS_DIR.is_dir():
        from llmops import Registry

        Registry(database_url=url).sync(PROMPTS_DIR)
