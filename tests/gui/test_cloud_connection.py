"""A Google Drive connection in the window: listed with its status, documents dropped on it reach Drive."""

from __future__ import annotations

from pathlib import Path

import pytest
from guihelp import RunningApp, run, wait_for
from PySide6.QtCore import Qt

from kite_desktop.core.models import ConnectionStatus, Provider
from tests.emulators.google import GoogleEmulator


@pytest.fixture
def drive(monkeypatch: pytest.MonkeyPatch):
    with GoogleEmulator() as emulator:
        monkeypatch.setenv("KITE_GOOGLE_API_ROOT", emulator.root_url)
        yield emulator


def test_documents_dropped_on_a_google_connection_reach_drive(running: RunningApp, loop, drive, tmp_path: Path):
    window = running.window
    config = run(
        loop,
        running.service.add_cloud_connection(
            Provider.GOOGLE_DRIVE, "Alice's Drive", drive.issue_tokens(), "alice@example.com"
        ),
    )
    run(loop, wait_for(lambda: window.connection_model.rowCount() == 2, what="the new connection listed"))
    row = window.connection_model.row_of(config.id)
    window.connection_view.setCurrentIndex(window.connection_model.index(row))
    run(loop, wait_for(lambda: window.current_connection.status is ConnectionStatus.CONNECTED, what="connected"))
    assert "alice@example.com" in window.heading.text()

    source = tmp_path / "contract.pdf"
    source.write_bytes(b"%PDF contract")
    window.add_files([str(source)])
    run(loop, wait_for(lambda: window.proxy.rowCount() == 1, what="the upload listed"))
    assert window.proxy.index(0, 0).data() == "contract.pdf"
    (stored,) = drive.files_named("contract.pdf")
    assert drive.file_bytes(stored.id) == b"%PDF contract"


def test_a_revoked_google_connection_shows_needs_reconnect(running: RunningApp, loop, drive):
    window = running.window
    config = run(
        loop, running.service.add_cloud_connection(Provider.GOOGLE_DRIVE, "Alice's Drive", drive.issue_tokens())
    )
    drive.revoke_all()
    drive.expire_access_tokens()
    run(loop, wait_for(lambda: window.connection_model.rowCount() == 2))
    window.connection_view.setCurrentIndex(window.connection_model.index(window.connection_model.row_of(config.id)))
    run(
        loop,
        wait_for(lambda: window.current_connection.status is ConnectionStatus.REQUIRES_REAUTH, what="needs reconnect"),
    )
    index = window.connection_model.index(window.connection_model.row_of(config.id))
    assert "Needs reconnect" in index.data(Qt.ItemDataRole.ToolTipRole)
    assert window.banner.isVisible() and "needs you to sign in again" in window.banner.text.text()
    assert window.banner.action.isVisible() and window.banner.action.text().startswith("Reconnect")
