"""Bandwidth limits: one budget per direction, shared by every transfer of every connection.

A transfer asks for its bytes before it sends (or after it receives) them; the budget hands out time slots
in order, so four uploads under a 1 MiB/s limit share that 1 MiB/s. A rate of 0 means no limit. Backends
ask per chunk or fragment (a few MiB), so the limit holds on average over a few seconds, not per packet.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

BURST = 1.0
"""Seconds of transfer that may go at full speed before the limit applies."""


class Throttle:
    def __init__(self, rate: float = 0):
        self.rate = rate
        self._next = 0.0

    def set_rate(self, rate: float) -> None:
        """Bytes per second; 0 for no limit. Takes effect for the next bytes asked for."""
        self.rate = max(0.0, rate)
        self._next = 0.0

    async def consume(self, count: int) -> None:
        if self.rate <= 0 or count <= 0:
            return
        now = time.monotonic()
        start = max(now - BURST, self._next)  # time left unused builds up credit, at most BURST seconds' worth
        self._next = start + count / self.rate
        delay = self._next - now
        if delay > 0:
            try:
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                self._next -= count / self.rate  # not sent (paused, cancelled): give its time back to the others
                raise


@dataclass
class Limits:
    """The upload and download budgets; the service gives every backend the same instance."""

    up: Throttle = field(default_factory=Throttle)
    down: Throttle = field(default_factory=Throttle)

    def set(self, up_kib: int, down_kib: int) -> None:
        self.up.set_rate(up_kib * 1024)
        self.down.set_rate(down_kib * 1024)
