"""Start `llmops serve` as a real process for a test, and stop it with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[2]


def ledger_row(database: Path, request_id: str, timeout: float = 10) -> dict:
    """A request's row in a SQLite ledger, once the gateway's writer has flushed it."""
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(database) as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM ledger WHERE id = ?", (request_id,)).fetchone()
        if row is not None:
            return dict(row)
        assert time.monotonic() < deadline, f"no ledger row for {request_id}"
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GatewayProcess:
    def __init__(self, proc: subprocess.Popen, port: int, log_path: Path):
        self.proc, self.port, self.log_path = proc, port, log_path
        self.url = f"http://127.0.0.1:{port}"
        self.base_url = self.url + "/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


@contextmanager
def run_gateway(
    config: dict, tmp_path: Path, *, env: dict[str, str] | None = None, workers: int = 1,
    args: tuple[str, ...] = (),
) -> Iterator[GatewayProcess]:
    port = free_port()
    config_path = tmp_path / f"gateway-{port}.yaml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = tmp_path / f"gateway-{port}.log"
    full_env = {**os.environ, "LLMOPS_DATABASE_URL": f"sqlite:///{tmp_path}/llmops.db", **(env or {})}
    full_env.setdefault("LLMOPS_SPILL_DIR", str(tmp_path / "spill"))
    cmd = [sys.executable, "-m", "llmops.cli", "serve", "--config", str(config_path), "--port", str(port),
           "--workers", str(workers), "--log-level", "warning", *args]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=tmp_path,
                                start_new_session=True)
    gw = GatewayProcess(proc, port, log_path)
    deadline = time.time() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited at start:\n{gw.log()}")
        try:
            if httpx.get(gw.url + "/health/live", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.time() > deadline:
            gw.stop()
            raise RuntimeError(f"gateway not live after 60 s:\n{gw.log()}")
        time.sleep(0.1)
    try:
        yield gw
    finally:
        gw.stop()
