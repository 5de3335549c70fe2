"""Helpers for GUI tests: await conditions and signals on the qasync loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import qasync
from PySide6.QtCore import SignalInstance

from kite_desktop.core.service import KiteService
from kite_desktop.ui.main_window import MainWindow

WAIT_TIMEOUT = 30.0  # only bounds how long a failing test waits; loaded CI machines are slow


async def wait_for(condition: Callable[[], bool], timeout: float = WAIT_TIMEOUT, what: str = "condition") -> None:
    """Await until ``condition()`` holds, re-checking whenever the loop has run other work."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def wait_signal(signal: SignalInstance, timeout: float = WAIT_TIMEOUT) -> tuple[Any, ...]:
    """Await the next emission of a Qt signal and return its arguments."""
    future: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()

    def receive(*args: Any) -> None:
        if not future.done():
            future.set_result(args)

    signal.connect(receive)
    try:
        return await asyncio.wait_for(future, timeout)
    finally:
        signal.disconnect(receive)


class RunningApp:
    """The service and the main window on a throwaway profile, as ``kite-desktop`` wires them."""

    def __init__(self, service: KiteService, window: MainWindow):
        self.service = service
        self.window = window

    @property
    def local_folder(self) -> Path:
        return Path(self.service.settings.connections[0].options["folder"])


def run(loop: qasync.QEventLoop, scenario: Awaitable[Any]) -> Any:
    return loop.run_until_complete(scenario)


def act(
    loop: qasync.QEventLoop, action: Callable[[], object], until: Callable[[], bool], what: str = "condition"
) -> None:
    """Do ``action`` inside the running loop, as a Qt slot would, then await ``until``."""

    async def scenario() -> None:
        action()
        await wait_for(until, what=what)

    loop.run_until_complete(scenario())
