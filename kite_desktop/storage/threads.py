"""Blocking work in a worker thread that a coroutine can cancel, with progress sent back to the loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from kite_desktop.core.models import ProgressCallback

T = TypeVar("T")


class Stopped(Exception):
    """Raised inside a worker when its coroutine was cancelled; the worker cleans up and exits."""


class StopFlag:
    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def check(self) -> None:
        if self._event.is_set():
            raise Stopped


async def run_cancellable(work: Callable[[StopFlag], T]) -> T:
    """Run ``work`` in a thread; cancelling the caller asks the worker to stop and waits for its cleanup."""
    loop = asyncio.get_running_loop()
    flag = StopFlag()
    future = loop.run_in_executor(None, work, flag)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        flag.set()
        try:
            result = await future
        except BaseException:
            raise asyncio.CancelledError from None
        # The worker finished before it saw the request to stop: the work is done, so say so.
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return result


class ThreadProgress:
    """Forwards byte counts from a worker thread to a loop-thread callback, at most every ``interval``."""

    def __init__(self, callback: ProgressCallback | None, interval: float = 0.05):
        self._callback = callback
        self._loop = asyncio.get_running_loop() if callback else None
        self._interval = interval
        self._last = 0.0

    def __call__(self, done: int, final: bool = False) -> None:
        if self._callback is None or self._loop is None:
            return
        now = time.monotonic()
        if not final and now - self._last < self._interval:
            return
        self._last = now
        with contextlib.suppress(RuntimeError):  # the loop closed while we worked
            self._loop.call_soon_threadsafe(self._callback, done)


async def finishing_thread(work: Callable[[], T], done: Callable[[T], bool] = lambda _result: True) -> T:
    """Run ``work`` in a thread that cannot be interrupted. If the caller is cancelled meanwhile, wait for the
    thread: when its result counts as ``done`` (the remote change happened), return it and drop the
    cancellation, so the caller records what really happened; otherwise re-raise the cancellation."""
    future = asyncio.get_running_loop().run_in_executor(None, work)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            # Cancelled again meanwhile (Pause, then Cancel or Quit): still wait, the thread's result matters.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(future)
        if future.cancelled() or future.exception() is not None or not done(future.result()):
            raise asyncio.CancelledError from None
        task = asyncio.current_task()
        if task is not None:
            while task.cancelling():
                task.uncancel()
        return future.result()
