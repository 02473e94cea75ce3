"""Gateways on the machine's Postgres and Redis, and nginx in front of them, for the
scale-out tests (tests/test_scaleout*.py) and benchmarks/bench_scaleout.py.

Each `Cluster` has its own Postgres database and Redis key prefix, so it can run beside
other tests. Gateways are real `llmops serve` processes; nginx is Debian's, run as any
user with `nginx -p <dir> -c <conf>` (pid, logs and temp files in that directory).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from tests.support.gateway_proc import GatewayProcess, free_port

POSTGRES_ADMIN_URL = os.environ.get("LLMOPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("LLMOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MASTER_KEY = "sk-master-scaleout"


def services_missing() -> str | None:
    """Why the machine's Postgres or Redis cannot be used, or None."""
    import psycopg
    import redis

    try:
        psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL unreachable at {POSTGRES_ADMIN_URL}: {str(exc).strip().splitlines()[0]}"
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        return f"Redis unreachable at {REDIS_URL}: {exc}"
    return None


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


@dataclass
class Cluster:
    tmp: Path
    config: dict
    name: str = field(default_factory=lambda: f"llmops_scaleout_{os.getpid()}_{uuid.uuid4().hex[:8]}")
    gateways: list[GatewayProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        import psycopg

        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.name}"')
        base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
        self.database_url = f"{base}/{self.name}"
        self.prefix = f"llmops-test:{uuid.uuid4().hex[:10]}:"
        self.config = {**self.config, "limits": {**self.config.get("limits", {}), "redis_prefix": self.prefix}}
        self.config_path = self.tmp / "gateway.yaml"
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.spill_dir = self.tmp / "spill"  # shared: a replica's journal is replayed by the next writer

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "LLMOPS_DATABASE_URL": self.database_url, "LLMOPS_REDIS_URL": REDIS_URL,
                "LLMOPS_MASTER_KEY": MASTER_KEY, "LLMOPS_SPILL_DIR": str(self.spill_dir)}

    def llmops(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "llmops.cli", *args], env=self.env, cwd=self.tmp,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def create_key(self, **limits) -> dict:
        args = ["keys", "create", "--name", f"k-{uuid.uuid4().hex[:6]}", "--json"]
        for name, value in limits.items():
            args += [f"--{name}", str(value)]
        return json.loads(self.llmops(*args))

    def start(self, *, port: int | None = None, workers: int = 1, extra: tuple[str, ...] = (),
              wait: bool = True) -> GatewayProcess:
        port = port or free_port()
        log_path = self.tmp / f"gateway-{port}-{len(self.gateways)}.log"
        cmd = [sys.executable, "-m", "llmops.cli", "serve", "--config", str(self.config_path), "--port", str(port),
               "--workers", str(workers), "--log-level", "warning", *extra]
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.tmp,
                                    start_new_session=True)
        gw = GatewayProcess(proc, port, log_path)
        self.gateways.append(gw)
        if wait:
            wait_ready(gw)
        return gw

    def ledger_count(self, key_id: str | None = None) -> int:
        import psycopg

        with psycopg.connect(self.database_url) as db:
            if key_id is None:
                return db.execute("SELECT count(*) FROM ledger").fetchone()[0]
            return db.execute("SELECT count(*) FROM ledger WHERE key_id = %s", (key_id,)).fetchone()[0]

    def ledger_ids(self) -> list[str]:
        import psycopg

        with psycopg.connect(self.database_url) as db:
            return [row[0] for row in db.execute("SELECT id FROM ledger")]

    def close(self) -> None:
        import psycopg
        import redis

        for gw in self.gateways:
            gw.stop(10)
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{self.prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        from llmops.db import dispose_all

        dispose_all()
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def wait_ready(gw: GatewayProcess, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while True:
        if gw.proc.poll() is not None:
            raise RuntimeError(f"gateway exited at start:\n{gw.log()}")
        try:
            if httpx.get(gw.url + "/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.time() > deadline:
            raise RuntimeError(f"gateway not ready after {timeout} s:\n{gw.log()}")
        time.sleep(0.1)


def limiter_figures(gw: GatewayProcess) -> dict[str, float]:
    """llmops_limiter{counter=...} from a gateway's /metrics (one worker's)."""
    text = httpx.get(gw.url + "/metrics", headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=5).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("llmops_limiter{"):
            labels, value = line.rsplit(" ", 1)
            counter = labels.split('counter="', 1)[1].split('"', 1)[0]
            limit = labels.split('limit="', 1)[1].split('"', 1)[0]
            out[f"{counter}:{limit}" if limit else counter] = float(value)
    return out


NGINX_CONF = """\
{user}worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream gateways {{
        # Round robin; a replica that fails {max_fails} times is left out for {fail_timeout}.
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 8m;
        location / {{
            proxy_pass http://gateways;
            # Connect errors (a replica down or restarting) go to the next replica; a
            # call already sent is never sent twice (it may have run: non_idempotent off).
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 3;
            proxy_connect_timeout 2s;
            proxy_read_timeout 120s;
            proxy_buffering off;
        }}
    }}
}}
"""


class Nginx:
    """Debian's nginx as a round-robin load balancer in front of `ports`."""

    def __init__(self, directory: Path, ports: list[int], *, max_fails: int = 1, fail_timeout: str = "2s"):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.ports = list(ports)
        self.max_fails, self.fail_timeout = max_fails, fail_timeout
        self.conf = self.dir / "nginx.conf"
        self._write()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def _write(self) -> None:
        servers = "\n".join(
            f"        server 127.0.0.1:{p} max_fails={self.max_fails} fail_timeout={self.fail_timeout};"
            for p in self.ports)
        # As root, nginx's workers would switch to `nobody`, who cannot use a private temp directory.
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.conf.write_text(NGINX_CONF.format(user=user, dir=self.dir, servers=servers, port=self.port,
                                               max_fails=self.max_fails, fail_timeout=self.fail_timeout))

    def start(self) -> Nginx:
        binary = nginx_binary()
        assert binary, "nginx is not installed (scripts/install-nginx.sh)"
        self.proc = subprocess.Popen([binary, "-p", str(self.dir), "-e", str(self.dir / "error.log"),
                                      "-c", str(self.conf), "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=open(self.dir / "stderr.log", "w"))
        deadline = time.time() + 10
        while True:
            try:
                httpx.get(self.url + "/health/live", timeout=1)
                return self
            except httpx.HTTPError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError((self.dir / "stderr.log").read_text()) from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
