"""How many predictions compute at once. Past the bound a request is answered 503 with Retry-After at once,
instead of waiting: a flood of large drawings then costs the server a bounded amount of CPU and memory, and
the event loop (health, WebSockets) never waits behind it."""

from __future__ import annotations


class PredictionSlots:
    """A non-blocking semaphore, used only from the event loop (so a plain counter is enough)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.busy = 0

    def try_acquire(self) -> bool:
        if self.busy >= self.size:
            return False
        self.busy += 1
        return True

    def release(self) -> None:
        self.busy -= 1
