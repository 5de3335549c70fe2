"""The tray, closing the window, keyboard shortcuts, and the one-window-per-profile rule."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from guihelp import RunningApp, act, run, wait_for
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from kite_desktop.core.models import Connection, ConnectionConfig, ConnectionStatus, Provider
from kite_desktop.core.profile import Profile
from kite_desktop.core.transfers import Totals, TransferState
from kite_desktop.ui.dialogs import Dialogs
from kite_desktop.ui.single_instance import SingleInstance
from kite_desktop.ui.tray import TrayController, TrayState, tray_state

IDLE = Totals(active=0, finished=0, failed=0, done_bytes=0, total_bytes=0, speed=0.0, paused=False)
LOCAL = ConnectionConfig("local-1", "Local", Provider.LOCAL, {"folder": "/x"})


def test_tray_state_follows_transfers_and_connections():
    ok = [Connection(LOCAL, ConnectionStatus.CONNECTED)]
    assert tray_state(IDLE, ok) == (TrayState.IDLE, "Kite: up to date")

    busy = Totals(active=2, finished=1, failed=0, done_bytes=40, total_bytes=100, speed=5.0, paused=False)
    state, tooltip = tray_state(busy, ok)
    assert state is TrayState.BUSY and tooltip == "Kite: transferring 2 files, 40%"

    held = Totals(active=2, finished=0, failed=0, done_bytes=0, total_bytes=100, speed=0, paused=False, waiting=2)
    assert tray_state(held, [])[0] is TrayState.ATTENTION  # e.g. a full Drive: nothing moves until the person acts
    assert "2 transfers wait for you" in tray_state(held, [])[1]
    failed = Totals(active=0, finished=3, failed=1, done_bytes=100, total_bytes=100, speed=0, paused=False)
    assert tray_state(failed, ok) == (TrayState.ATTENTION, "Kite: 1 transfer failed")

    reauth = [Connection(LOCAL, ConnectionStatus.REQUIRES_REAUTH)]
    assert tray_state(busy, reauth) == (TrayState.ATTENTION, "Kite: Local needs reconnect")


def test_tray_menu_pauses_and_resumes_transfers(running: RunningApp, loop, tmp_path: Path):
    tray = TrayController(running.window)
    running.window.attach_tray(tray)
    assert not tray.current_icon().isNull()
    source = tmp_path / "a.txt"
    source.write_text("a")

    async def scenario() -> None:
        tray.pause_action.trigger()
        assert running.service.transfers.paused
        assert tray.pause_action.text() == "Resume transfers"
        running.window.add_files([str(source)])
        await wait_for(lambda: len(running.service.transfers.items) == 1)
        assert tray.state is TrayState.ATTENTION and "paused" in tray.tooltip
        tray.pause_action.trigger()
        await wait_for(lambda: running.service.transfers.items[0].state is TransferState.DONE)

    run(loop, scenario())
    assert tray.state is TrayState.IDLE
    assert (running.local_folder / "a.txt").read_text() == "a"


def test_close_keeps_running_in_the_tray_when_there_is_one(running: RunningApp):
    window = running.window
    window.keep_running_in_tray = True
    window.close()
    assert not window.isVisible()
    window.handle_instance_message([])  # "Show Kite" from the tray
    assert window.isVisible()
    window.keep_running_in_tray = False
    assert window.close()


def test_keyboard_shortcuts(running: RunningApp, loop, qtbot, monkeypatch):
    window = running.window
    (running.local_folder / "one.txt").write_text("1")
    window.activateWindow()
    qtbot.waitActive(window)

    act(loop, lambda: QTest.keyClick(window, Qt.Key.Key_F5), lambda: window.proxy.rowCount() == 1, "F5 refresh")
    QTest.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert window.filter_edit.hasFocus()

    window.table.setFocus()
    window.table.selectRow(0)
    monkeypatch.setattr(Dialogs, "confirm_delete", lambda parent, documents, name: True)
    act(
        loop,
        lambda: QTest.keyClick(window.table, Qt.Key.Key_Delete),
        lambda: window.proxy.rowCount() == 0,
        "Delete key removed the document",
    )
    assert not (running.local_folder / "one.txt").exists()


def test_second_instance_in_process_hands_over_paths(qtbot, tmp_path: Path):
    profile = Profile(tmp_path / "profile").ensure()
    first = SingleInstance(profile)
    second = SingleInstance(profile)
    try:
        assert first.acquire()
        assert not second.acquire()
        with qtbot.waitSignal(first.message_received, timeout=5000) as signal:
            assert second.send(["/tmp/a.pdf", "/tmp/b.pdf"])
        assert signal.args == [["/tmp/a.pdf", "/tmp/b.pdf"]]
    finally:
        first.release()


def test_second_launch_of_the_app_hands_its_files_to_the_first(qtbot, tmp_path: Path, home: Path):
    profile = Profile(tmp_path / "profile").ensure()
    first = SingleInstance(profile)
    assert first.acquire()
    document = tmp_path / "scan.pdf"
    document.write_bytes(b"%PDF")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(home)}
    try:
        with qtbot.waitSignal(first.message_received, timeout=30000) as signal:
            launch = subprocess.Popen(
                [sys.executable, "-m", "kite_desktop", "--profile", str(profile.root), str(document)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        _, err = launch.communicate(timeout=30)
    finally:
        first.release()
    assert signal.args == [[str(document)]]
    assert launch.returncode == 0
    assert "already running" in err
