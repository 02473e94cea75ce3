"""A queue filled on the request path and drained by one background thread.

Payload capture and trace export both keep what a call leaves behind without making the
call wait: the request path appends to a bounded deque (what overflows is counted in
`dropped`, not kept), and a daemon thread wakes every flush interval, or on `close`, to
write the queue out. The subclass says what a flush does and runs its own loop.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import ClassVar, Generic, Self, TypeVar

T = TypeVar("T")


class BackgroundQueue(Generic[T]):
    thread_name: ClassVar[str] = "llmops-background"

    def __init__(self, max_queue: int) -> None:
        self._max_queue = max_queue
        self._queue: deque[T] = deque()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def _put(self, item: T) -> None:
        if len(self._queue) >= self._max_queue:
            self.dropped += 1
            return
        self._queue.append(item)

    def start(self) -> Self:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread after its last flush (or flush here when it never started)."""
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        else:
            self.flush()

    def _run(self) -> None:
        raise NotImplementedError

    def flush(self) -> int:
        raise NotImplementedError
