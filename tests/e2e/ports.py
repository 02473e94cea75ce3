"""Ports for the app's tests: this suite's own range, so parallel suites never collide."""

from __future__ import annotations

import socket

UI_PORTS = range(18700, 18800)


def free_port(ports: range = UI_PORTS) -> int:
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")
