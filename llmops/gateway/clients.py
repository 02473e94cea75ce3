"""The gateway as the eval harness's model client: at a URL, or started in this process.

Evaluation speaks to any OpenAI-compatible endpoint (`llmops.evaluation.client`); only
here, above it, is the gateway itself started in process, so suites run offline in CI
with no port.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from llmops.evaluation.client import HttpModelClient
from llmops.evaluation.reports import Comparison
from llmops.evaluation.runner import RunResult
from llmops.evaluation.service import run_suite_async
from llmops.evaluation.suites import load_suite
from llmops.gateway.app import running_app
from llmops.settings import get_settings


@asynccontextmanager
async def in_process_client(
    config: str | Path | None = None, api_key: str | None = None, *, registry_url: str | None = None
) -> AsyncIterator[HttpModelClient]:
    """A client wired to a gateway started in this process (no port, no network).

    Calls that render a registry version are sent as its reference when the caller's
    registry (`registry_url`, default the settings' database) is the gateway's own."""
    async with running_app(config) as app:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # an ASGI app, untyped
        settings = get_settings()
        # The gateway in this process trusts the operator who started it.
        key = api_key or settings.master_key
        same_registry = registry_url in (None, settings.database_url)
        async with HttpModelClient(
            "http://gateway.in-process", key, transport=transport, prompt_references=same_registry
        ) as client:
            yield client


@asynccontextmanager
async def open_client(
    gateway_url: str | None = None,
    api_key: str | None = None,
    gateway_config: str | Path | None = None,
    *,
    registry_url: str | None = None,
) -> AsyncIterator[HttpModelClient]:
    """The gateway at `gateway_url` (or LLMOPS_GATEWAY_URL), else one in this process."""
    gateway_url = gateway_url or os.environ.get("LLMOPS_GATEWAY_URL") or None
    api_key = api_key or os.environ.get("LLMOPS_API_KEY") or None
    if gateway_url:
        async with HttpModelClient(gateway_url, api_key) as client:
            yield client
    else:
        async with in_process_client(gateway_config, api_key, registry_url=registry_url) as client:
            yield client


def run_suite_file(
    path: str | Path,
    *,
    gateway_url: str | None = None,
    gateway_config: str | Path | None = None,
    api_key: str | None = None,
    **options: Any,
) -> tuple[RunResult, Comparison | None]:
    """`llmops eval run PATH` without the printing; options as for run_suite_async."""

    async def run() -> tuple[RunResult, Comparison | None]:
        async with open_client(gateway_url, api_key, gateway_config, registry_url=options.get("database_url")) as client:
            return await run_suite_async(load_suite(path), client=client, **options)

    return asyncio.run(run())
