"""Scripted faults for the emulators: a test says which request goes wrong, how, and how often.

    server.faults.add("PUT", r"/upload/", status=503, times=2)          # two 503s on chunk PUTs
    server.faults.add("POST", r"/token", status=400, json={"error": "invalid_grant"})
    server.faults.add("PUT", r"/upload/", drop="mid-request")            # close while the body arrives
    server.faults.add("GET", r"/files/", drop="mid-response", after=1)   # skip one match, then fail

A fault matches a request by method and a regular expression searched in the path (with query). ``after``
lets that many matching requests through first; ``times`` is how many it then affects (0 = forever).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

Drop = Literal["before-response", "mid-request", "mid-response"]


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int | None = None
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: Drop | None = None
    delay: float = 0.0
    after: int = 0
    times: int = 1
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method == "*" or self.method == method) and bool(self.pattern.search(path))


class FaultScript:
    """Thread-safe list of faults consulted by an emulator at the start of every request."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(
        self,
        method: str,
        pattern: str,
        *,
        status: int | None = None,
        json: Any = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        drop: Drop | None = None,
        delay: float = 0.0,
        after: int = 0,
        times: int = 1,
    ) -> Fault:
        fault = Fault(
            method.upper(), re.compile(pattern), status, json, body, dict(headers or {}), drop, delay, after, times
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """The fault to apply to this request, if any (consumes one use of it)."""
        with self._lock:
            for fault in self._faults:
                if not fault.matches(method, path):
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.hits += 1
                if fault.times and fault.hits >= fault.times:
                    self._faults.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)
