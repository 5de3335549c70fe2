"""The transfers panel's per-item controls, transfers taken up again after a restart, the settings dialog,
and the one notification per batch."""

from __future__ import annotations

import json
from pathlib import Path

from guihelp import RunningApp, act, run, wait_for
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox

from kite_desktop.app import build_service
from kite_desktop.core.tokens import MemoryTokenStore
from kite_desktop.core.transfers import TransferState
from kite_desktop.ui.tray import TrayController

S = TransferState


def select_row(running: RunningApp, row: int) -> None:
    panel = running.window.transfers_panel
    index = panel.model.index(row, 0)
    panel.table.selectionModel().select(
        index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
    )


def status(running: RunningApp, row: int) -> str:
    panel = running.window.transfers_panel
    return str(panel.model.index(row, 3).data())


def test_one_transfer_is_paused_and_resumed_from_the_panel(running: RunningApp, loop, tmp_path: Path):
    queue = running.service.transfers
    panel = running.window.transfers_panel
    queue.pause()  # hold everything so the test can look at queued rows
    files = []
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text(name)
        files.append(str(tmp_path / name))
    running.window.add_files(files)
    run(loop, wait_for(lambda: panel.model.rowCount() == 2, what="two rows"))

    select_row(running, 0)
    assert panel.pause_button.text() == "Pause"
    act(loop, panel.pause_button.click, lambda: queue.items[0].state is S.PAUSED, "the first paused")
    assert status(running, 0) == "Paused" and queue.items[1].state is S.QUEUED
    assert panel.pause_button.text() == "Resume"
    act(loop, panel.pause_button.click, lambda: queue.items[0].state is S.QUEUED, "the first queued again")

    panel.table.clearSelection()
    assert panel.pause_button.text() == "Resume all"
    act(loop, panel.pause_button.click, lambda: all(t.state is S.DONE for t in queue.items), "both uploaded")
    assert sorted(p.name for p in running.local_folder.iterdir()) == ["a.txt", "b.txt"]


def test_transfers_left_queued_at_quit_are_there_after_a_restart(app_factory, loop, tmp_path: Path, home: Path):
    profile = tmp_path / "profile"
    source = tmp_path / "scan.pdf"
    source.write_bytes(b"%PDF" * 1000)

    async def leave_one_queued() -> None:
        service = build_service(profile, MemoryTokenStore())
        service.transfers.pause()
        await service.upload(service.settings.connections[0].id, [str(source)])
        await service.close()

    run(loop, leave_one_queued())
    running = app_factory(profile)
    panel = running.window.transfers_panel
    run(loop, wait_for(lambda: panel.model.rowCount() == 1, what="the transfer from last time"))
    assert panel.model.transfer_at(0).name == "scan.pdf"
    assert panel.pause_button.text() == "Resume all"  # paused as it was left
    act(loop, panel.pause_button.click, lambda: panel.model.transfer_at(0).state is S.DONE, "the upload done")
    assert (running.local_folder / "scan.pdf").read_bytes() == source.read_bytes()


def test_settings_are_applied_at_once_and_saved(running: RunningApp, loop, home: Path):
    window, service = running.window, running.service
    window.settings_action.trigger()
    dialog = window.settings_dialog
    assert dialog is not None and dialog.isVisible()
    dialog.concurrency.setValue(2)
    dialog.upload_limit.setValue(512)
    dialog.conflict.setCurrentIndex(dialog.conflict.findData("replace"))
    dialog.start_at_login.setChecked(True)
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    act(loop, ok.click, lambda: dialog.result() == QDialog.DialogCode.Accepted, "the dialog accepted")

    assert service.transfers.max_concurrent == 2
    assert service.limits.up.rate == 512 * 1024 and service.limits.down.rate == 0
    saved = json.loads(service.profile.settings_path.read_text())
    assert (saved["concurrent_transfers"], saved["upload_limit_kib"], saved["conflict_policy"]) == (2, 512, "replace")
    autostart = home / ".config" / "autostart" / "kite-desktop.desktop"
    assert "--minimised" in autostart.read_text()
    assert dialog.upload_limit.specialValueText() == "No limit"


def test_one_notification_when_a_batch_finishes(running: RunningApp, loop, tmp_path: Path):
    tray = TrayController(running.window)
    running.window.attach_tray(tray)
    files = []
    for number in range(5):
        path = tmp_path / f"page-{number}.txt"
        path.write_text(str(number))
        files.append(str(path))
    running.window.add_files(files)
    notifier = running.window.notifier
    run(loop, wait_for(lambda: len(notifier.sent) == 1, what="the notification"))
    assert notifier.sent == [("Transfers finished", "5 files done.")]
    tray.hide()


def test_the_reason_a_transfer_waits_is_shown(running: RunningApp, loop, tmp_path: Path):
    queue = running.service.transfers
    queue.pause()
    (tmp_path / "a.txt").write_text("a")
    running.window.add_files([str(tmp_path / "a.txt")])
    run(loop, wait_for(lambda: running.window.transfers_panel.model.rowCount() == 1))
    connection = running.service.settings.connections[0].id
    queue.hold(connection, "Waiting: Your Google Drive is full.", "full")
    assert status(running, 0) == "Paused: Your Google Drive is full."
    tip = running.window.transfers_panel.model.index(0, 3).data(Qt.ItemDataRole.ToolTipRole)
    assert tip is None or "full" in str(tip)


def test_transfers_that_cannot_move_make_the_tray_ask_for_attention(running: RunningApp, loop, tmp_path: Path):
    tray = TrayController(running.window)
    running.window.attach_tray(tray)
    connection = running.service.settings.connections[0].id
    running.service.transfers.hold(connection, "Waiting for space: your disk is full.", "full")
    (tmp_path / "a.txt").write_text("a")
    running.window.add_files([str(tmp_path / "a.txt")])
    notifier = running.window.notifier
    run(loop, wait_for(lambda: notifier.sent, what="a notification"))
    assert notifier.sent == [("Kite needs you", "1 transfer waits for you; open Kite to see why.")]
    assert tray.state.value == "attention"
    assert "1 waiting" in running.window.transfers_panel.summary.text()
    tray.hide()
