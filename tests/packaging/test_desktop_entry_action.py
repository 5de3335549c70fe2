"""Help → Install desktop entry, in the real window on a throwaway profile and XDG folders."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtGui import QAction

from kite_desktop import desktop_entry
from kite_desktop.app import build_service
from kite_desktop.core.tokens import MemoryTokenStore
from kite_desktop.ui.bridge import ServiceBridge
from kite_desktop.ui.main_window import MainWindow

TIMEOUT = 30


@pytest.fixture
def window(qapp: Any, qtbot: Any, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    loop = qasync.QEventLoop(qapp, already_running=False)
    asyncio.set_event_loop(loop)
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    service = build_service(tmp_path / "profile", MemoryTokenStore())
    main = MainWindow(service, ServiceBridge(service))
    qtbot.addWidget(main)
    main.show()
    loop.run_until_complete(main.start())
    main.run = lambda coro: loop.run_until_complete(asyncio.wait_for(coro, TIMEOUT))
    yield main

    async def stop() -> None:
        await main.tasks.wait_idle()
        await main.shutdown()
        await service.close()

    try:
        loop.run_until_complete(stop())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()
        asyncio.set_event_loop(None)
        gc.collect()
    assert not errors, errors


def install_action(window: Any) -> QAction:
    action = window.findChild(QAction, "installDesktopEntryAction")
    assert action is not None
    help_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
    assert action in help_menu.actions()
    return action


def test_the_help_menu_installs_the_desktop_entry(window: Any, tmp_path: Path):
    install_action(window).trigger()
    window.run(window.tasks.wait_idle())
    entry = tmp_path / "xdg-data" / "applications" / "kite-desktop.desktop"
    assert entry.is_file()
    assert set(desktop_entry.installed_files()) <= {p for p in (tmp_path / "xdg-data").rglob("*") if p.is_file()}
    assert window.statusBar().currentMessage() == f"Kite is now in your applications menu ({entry})."


def test_a_failure_shows_in_the_window(window: Any, tmp_path: Path):
    (tmp_path / "xdg-data").mkdir()
    (tmp_path / "xdg-data" / "applications").write_text("a file where a folder should be")
    install_action(window).trigger()
    window.run(window.tasks.wait_idle())
    assert window.statusBar().currentMessage() == "Desktop integration"
    assert window.banner.isVisibleTo(window)
    assert "Could not write" in window.banner.text.text()
