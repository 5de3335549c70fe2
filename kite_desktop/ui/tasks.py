"""Run coroutines from Qt slots: keep a reference to each task, report failures, cancel on quit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from kite_desktop.core.errors import KiteError

log = logging.getLogger(__name__)
ErrorHandler = Callable[[KiteError], None]


class TaskRunner:
    """Starts coroutines on the running qasync loop and shows their errors through ``on_error``."""

    def __init__(self, on_error: ErrorHandler):
        self._tasks: set[asyncio.Task[Any]] = set()
        self.on_error = on_error
        self.closed = False

    def run(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any] | None:
        """Start ``coro``; after :meth:`cancel_all` (the window is closing) nothing new starts."""
        if self.closed:
            coro.close()
            return None
        task = asyncio.get_event_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, KiteError):
            self.on_error(exc)
        elif exc is not None:
            log.error("background task %s failed", task.get_name(), exc_info=exc)
            self.on_error(KiteError(f"Unexpected error: {type(exc).__name__}: {exc}"))

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def wait_idle(self) -> None:
        """Return once every task started so far (and any they started) has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel_all(self) -> None:
        self.closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
