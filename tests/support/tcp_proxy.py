"""A TCP proxy a test controls, to play a database that goes away or stops answering.

`ProxyServer(target_port).start()` forwards 127.0.0.1:<port> to the target. `freeze()`
keeps every connection open but stops forwarding bytes either way (new connections are
accepted, and then nothing: a server that hangs); `refuse()` drops every connection and
refuses new ones (a server that is down); `restore()` forwards again.
"""

from __future__ import annotations

import select
import socket
import threading


class ProxyServer:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self.mode = "forward"  # forward | freeze | refuse
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def start(self) -> ProxyServer:
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._pump, daemon=True).start()
        return self

    def freeze(self) -> None:
        self.mode = "freeze"

    def refuse(self) -> None:
        self.mode = "refuse"
        self._drop_all()

    def restore(self) -> None:
        self.mode = "forward"

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        self._drop_all()

    def _drop_all(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for s in (a, b):
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    s.close()  # linger 0: a reset, as from a host that went away
                except OSError:
                    pass

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.mode == "refuse":
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=3)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._pairs.append((client, upstream))

    def _pump(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                pairs = list(self._pairs)
            if not pairs or self.mode != "forward":
                self._stop.wait(0.01)
                continue
            peer = {}
            for a, b in pairs:
                peer[a], peer[b] = b, a
            try:
                readable, _, _ = select.select(list(peer), [], [], 0.01)
            except (OSError, ValueError):
                continue
            for s in readable:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self._close_pair(s, peer[s])
                    continue
                try:
                    peer[s].sendall(data)
                except OSError:
                    self._close_pair(s, peer[s])

    def _close_pair(self, a: socket.socket, b: socket.socket) -> None:
        with self._lock:
            self._pairs = [p for p in self._pairs if a not in p]
        for s in (a, b):
            try:
                s.close()
            except OSError:
                pass
