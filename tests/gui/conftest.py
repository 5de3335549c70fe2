"""GUI test fixtures: a qasync loop on the pytest-qt QApplication, and a running main window.

pytest-qt does not drive asyncio (pytest-dev/pytest-qt#448), so, as qasync's own tests do, the ``loop``
fixture installs a qasync event loop, collects every exception raised inside it, and fails the test at
teardown if there was any. Tests run a scenario coroutine with ``loop.run_until_complete``.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from guihelp import WAIT_TIMEOUT, RunningApp

from kite_desktop.app import build_service
from kite_desktop.core.tokens import MemoryTokenStore, TokenStore
from kite_desktop.ui.bridge import ServiceBridge
from kite_desktop.ui.main_window import MainWindow


class TestEventLoop(qasync.QEventLoop):
    """qasync's loop for tests that call ``run_until_complete`` many times.

    qasync 0.28's ``run_until_complete`` processes Qt events once more *after* ``run_forever`` has unset the
    running loop, so a task stepped in that last round finds "no running event loop" (for example in
    ``asyncio.to_thread``) and fails at random. The app runs one ``run_until_complete`` for its whole life
    and is not affected; here the loop stays marked as running until that last round is over."""

    def run_forever(self) -> Any:
        try:
            return super().run_forever()
        finally:
            asyncio.events._set_running_loop(self)

    def run_until_complete(self, future: Any) -> Any:
        try:
            return super().run_until_complete(future)
        finally:
            asyncio.events._set_running_loop(None)


@pytest.fixture
def loop(qapp: Any) -> Iterator[qasync.QEventLoop]:
    event_loop = TestEventLoop(qapp, already_running=False)
    asyncio.set_event_loop(event_loop)
    errors: list[dict[str, Any]] = []
    event_loop.set_exception_handler(lambda _loop, context: errors.append(context))
    original_hook = sys.excepthook

    def hook(*exc_info: Any) -> None:
        errors.append({"message": "exception in a Qt slot", "exception": exc_info[1]})
        event_loop.stop()

    sys.excepthook = hook
    yield event_loop
    sys.excepthook = original_hook
    try:
        event_loop.run_until_complete(event_loop.shutdown_default_executor())
    finally:
        event_loop.close()
        asyncio.set_event_loop(None)
    if errors:
        first = errors[0]
        raise AssertionError(f"{len(errors)} error(s) inside the event loop: {first.get('message')}") from first.get(
            "exception"
        )


_RUNNING: list[tuple[Any, RunningApp]] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """Let the window's background work finish inside the loop, before pytest-qt's teardown spins Qt events
    outside it (a coroutine stepped there would find no running loop)."""
    try:
        return (yield)
    finally:
        for loop, running in list(_RUNNING):
            if not loop.is_closed() and not running.window.tasks.closed:
                loop.run_until_complete(asyncio.wait_for(running.window.tasks.wait_idle(), WAIT_TIMEOUT))
        _RUNNING.clear()


@pytest.fixture
def app_factory(loop: qasync.QEventLoop, qtbot: Any, home: Path, tmp_path: Path):
    started: list[RunningApp] = []

    def start(profile: Path | None = None, tokens: TokenStore | None = None) -> RunningApp:
        service = build_service(profile or tmp_path / "profile", tokens or MemoryTokenStore())
        window = MainWindow(service, ServiceBridge(service))
        qtbot.addWidget(window)
        window.show()
        running = RunningApp(service, window)
        started.append(running)
        _RUNNING.append((loop, running))
        loop.run_until_complete(window.start())
        return running

    yield start
    for running in started:

        async def stop(r: RunningApp = running) -> None:
            await r.window.shutdown()
            await r.service.close()

        loop.run_until_complete(stop())
    # Collect the windows' Python wrappers here, on the Qt thread, not later in some worker thread.
    gc.collect()


@pytest.fixture
def running(app_factory: Callable[[], RunningApp]) -> RunningApp:
    return app_factory()
