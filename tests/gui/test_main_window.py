"""The main window as a person uses it: drop files, see them, filter, sort, open, save, delete."""

from __future__ import annotations

from pathlib import Path

import pytest
from guihelp import RunningApp, act, run, wait_for
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from kite_desktop.core.transfers import TransferState
from kite_desktop.ui.dialogs import Dialogs


def table_names(app: RunningApp) -> list[str]:
    proxy = app.window.proxy
    return [proxy.index(row, 0).data() for row in range(proxy.rowCount())]


def _drag_enter(position: QPoint, mime: QMimeData) -> QDragEnterEvent:
    args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    try:  # Qt >= 6.12 takes a QPointF (the QPoint form is deprecated); older Qt only a QPoint
        return QDragEnterEvent(QPointF(position), *args)
    except TypeError:
        return QDragEnterEvent(position, *args)


def drop_urls(widget, urls: list[QUrl]) -> QDropEvent:
    """What the file manager does: a drag enters the window, then the URLs are dropped."""
    mime = QMimeData()
    mime.setUrls(urls)
    centre = widget.rect().center()
    enter = _drag_enter(centre, mime)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted(), "the window refused the drag"
    drop = QDropEvent(
        QPointF(centre), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(widget, drop)
    return drop


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    source = tmp_path / "from-file-manager"
    (source / "Holiday" / "day 2").mkdir(parents=True)
    (source / "report.pdf").write_bytes(b"%PDF-1.4 report" * 100)
    (source / "notes.txt").write_text("notes")
    (source / "budget.xlsx").write_bytes(b"x" * 5000)
    (source / "Holiday" / "beach.jpg").write_bytes(b"\xff\xd8" + b"j" * 3000)
    (source / "Holiday" / "day 2" / "hike.jpg").write_bytes(b"\xff\xd8" + b"h" * 10)
    return source


def test_first_start_shows_local_connection_and_empty_state(running: RunningApp):
    window = running.window
    assert window.connection_model.rowCount() == 1
    assert window.current_connection is not None and window.current_connection.name == "Local"
    assert window.stack.currentWidget() is window.empty_state
    assert window.empty_state.title.text() == "Drop files here"
    assert running.local_folder.is_dir()


def test_dropping_files_and_a_folder_lists_them_with_structure(running: RunningApp, loop, sample: Path):
    window = running.window
    urls = [QUrl.fromLocalFile(str(sample / n)) for n in ("report.pdf", "notes.txt", "budget.xlsx", "Holiday")]
    drop = drop_urls(window, urls)
    assert drop.isAccepted()

    run(loop, wait_for(lambda: len(table_names(running)) == 5, what="five documents in the table"))
    assert sorted(table_names(running)) == [
        "Holiday/beach.jpg",
        "Holiday/day 2/hike.jpg",
        "budget.xlsx",
        "notes.txt",
        "report.pdf",
    ]
    assert window.stack.currentWidget() is window.table
    assert (running.local_folder / "Holiday" / "day 2" / "hike.jpg").read_bytes() == b"\xff\xd8hhhhhhhhhh"
    assert window.transfers_panel.isVisible()
    assert "5 of 5 files" in window.transfers_panel.summary.text()


def test_dropping_a_web_link_is_skipped_with_a_reason(running: RunningApp, loop, sample: Path):
    drop_urls(
        running.window, [QUrl("https://example.invalid/picture.png"), QUrl.fromLocalFile(str(sample / "notes.txt"))]
    )
    queue = running.service.transfers
    run(loop, wait_for(lambda: table_names(running) == ["notes.txt"], what="notes.txt listed"))
    skipped = [t for t in queue.items if t.state is TransferState.SKIPPED]
    assert len(skipped) == 1 and "Not a local file" in skipped[0].message
    model = running.window.transfers_panel.model
    texts = [model.index(r, 3).data() for r in range(model.rowCount())]
    assert any(t.startswith("Skipped: Not a local file") for t in texts)


def test_filter_as_you_type_and_sort_by_size(running: RunningApp, loop, sample: Path):
    running.window.add_files([str(sample)])
    run(loop, wait_for(lambda: len(table_names(running)) == 5))
    window = running.window
    window.filter_edit.setText("holiday")
    assert sorted(table_names(running)) == [
        "from-file-manager/Holiday/beach.jpg",
        "from-file-manager/Holiday/day 2/hike.jpg",
    ]
    window.filter_edit.setText("no such thing")
    assert window.stack.currentWidget() is window.no_match
    window.filter_edit.clear()
    window.table.sortByColumn(2, Qt.SortOrder.DescendingOrder)
    assert table_names(running)[0] == "from-file-manager/budget.xlsx"  # 5000 bytes sorts above 1500 and 3002
    window.table.sortByColumn(2, Qt.SortOrder.AscendingOrder)
    assert table_names(running)[0] == "from-file-manager/notes.txt"


def select(app: RunningApp, name: str) -> None:
    proxy = app.window.proxy
    for row in range(proxy.rowCount()):
        if proxy.index(row, 0).data() == name:
            app.window.table.selectRow(row)
            return
    raise AssertionError(f"{name} not listed")


def test_delete_asks_first_and_removes_the_document(running: RunningApp, loop, sample: Path, monkeypatch):
    running.window.add_files([str(sample / "notes.txt"), str(sample / "report.pdf")])
    run(loop, wait_for(lambda: len(table_names(running)) == 2))
    asked: list[list[str]] = []

    def answer(parent, documents, connection_name, reply):
        asked.append([d.name for d in documents])
        return reply

    select(running, "notes.txt")
    monkeypatch.setattr(Dialogs, "confirm_delete", lambda p, d, c: answer(p, d, c, False))
    running.window.delete_action.trigger()
    assert asked == [["notes.txt"]]
    assert (running.local_folder / "notes.txt").exists()

    monkeypatch.setattr(Dialogs, "confirm_delete", lambda p, d, c: answer(p, d, c, True))
    act(
        loop,
        running.window.delete_action.trigger,
        lambda: table_names(running) == ["report.pdf"],
        "notes.txt gone from the table",
    )
    assert not (running.local_folder / "notes.txt").exists()


def test_open_downloads_a_copy_and_hands_it_to_the_system(running: RunningApp, loop, sample: Path, monkeypatch):
    running.window.add_files([str(sample / "report.pdf")])
    run(loop, wait_for(lambda: table_names(running) == ["report.pdf"]))
    opened: list[Path] = []
    monkeypatch.setattr(Dialogs, "open_with_system", lambda path: opened.append(path) or True)
    select(running, "report.pdf")
    act(loop, running.window.open_action.trigger, lambda: bool(opened), "the system asked to open the file")
    assert opened[0].read_bytes() == (sample / "report.pdf").read_bytes()
    assert opened[0].is_relative_to(running.service.profile.cache_dir)


def test_save_as_writes_a_copy_where_the_user_chose(running: RunningApp, loop, sample: Path, tmp_path, monkeypatch):
    running.window.add_files([str(sample / "budget.xlsx")])
    run(loop, wait_for(lambda: table_names(running) == ["budget.xlsx"]))
    target = tmp_path / "saved" / "my budget.xlsx"
    target.parent.mkdir()
    monkeypatch.setattr(Dialogs, "save_path", lambda parent, suggested: target)
    select(running, "budget.xlsx")
    act(loop, running.window.save_as_action.trigger, target.exists, "the saved copy")
    assert target.read_bytes() == b"x" * 5000


def test_refresh_picks_up_files_added_behind_the_apps_back(running: RunningApp, loop):
    (running.local_folder / "scanned.pdf").write_bytes(b"scan")
    act(loop, running.window.refresh_action.trigger, lambda: table_names(running) == ["scanned.pdf"])


def test_missing_folder_shows_a_clear_message_and_offline_status(running: RunningApp, loop, tmp_path):
    gone = tmp_path / "usb-stick" / "Kite"
    gone.mkdir(parents=True)
    run(loop, running.service.set_local_folder(running.service.settings.connections[0].id, gone))
    gone.rmdir()
    act(loop, running.window.refresh_action.trigger, running.window.banner.isVisible, "the banner")
    assert "Folder not found" in running.window.banner.text.text()
    run(loop, wait_for(lambda: running.window.current_connection.status.label == "Offline", what="offline status"))


def test_a_damaged_catalog_is_moved_aside_and_rebuilt_with_a_message(app_factory, loop, tmp_path: Path, home):
    profile = tmp_path / "profile"
    first = app_factory(profile)
    (first.local_folder / "kept.pdf").write_bytes(b"%PDF kept")
    run(loop, first.service.refresh(first.service.settings.connections[0].id))
    run(loop, first.window.shutdown())
    run(loop, first.service.close())
    catalog = profile / "catalog.sqlite3"
    catalog.write_bytes(b"this is not a database" * 100)

    second = app_factory(profile)
    assert second.window.banner.isVisible()
    assert "catalog was damaged" in second.window.banner.text.text()
    assert list(profile.glob("catalog.sqlite3.corrupt-*"))
    run(loop, wait_for(lambda: table_names(second) == ["kept.pdf"], what="the document listed again"))
