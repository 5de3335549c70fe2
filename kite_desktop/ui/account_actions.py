"""Adding, reconnecting and removing cloud connections from the window, and the reconnect prompt.

When a connection turns to "needs reconnect", the tray says which account (once), and while it is the
selected connection the window shows a non-modal prompt "Reconnect <account>" / "Later". A reconnect runs
the browser flow for the same account; on success the connection's paused transfers go on by themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMessageBox

from kite_desktop.core.models import Connection, ConnectionStatus, Provider
from kite_desktop.ui.connect_dialog import ConnectDialog, FlowFactory, default_flow

if TYPE_CHECKING:
    from kite_desktop.ui.main_window import MainWindow


class AccountActions(QObject):
    def __init__(self, window: MainWindow):
        super().__init__(window)
        self.window = window
        self.flow_factory: FlowFactory = default_flow
        self.dialog: ConnectDialog | None = None
        self._told: set[str] = set()
        self._keyring_told = False
        self.add_action = QAction("Add connection…", window)
        self.add_action.setToolTip("Connect a Google Drive or OneDrive account")
        self.add_action.triggered.connect(lambda: self.open_dialog(None))
        self.reconnect_action = QAction("Reconnect…", window)
        self.reconnect_action.triggered.connect(self.reconnect_current)
        self.remove_action = QAction("Remove connection…", window)
        self.remove_action.triggered.connect(self.remove_current)

    def open_dialog(self, reconnect: Connection | None) -> ConnectDialog:
        if self.dialog is not None:
            self.dialog.close()
        self.dialog = ConnectDialog(
            self.window.service,
            self.window,
            flow_factory=self.flow_factory,
            reconnect=reconnect.config if reconnect else None,
        )
        self.dialog.connected.connect(self._on_dialog_connected)
        self.dialog.open()
        return self.dialog

    def _on_dialog_connected(self, config: object) -> None:
        self.window.banner.hide()
        self.window.select_connection(getattr(config, "id", ""))

    def reconnect_current(self) -> None:
        connection = self.window.current_connection
        if connection is not None and connection.provider is not Provider.LOCAL:
            self.open_dialog(connection)

    def remove_current(self) -> None:
        connection = self.window.current_connection
        if connection is None:
            return
        answer = QMessageBox.question(
            self.window,
            "Remove connection",
            f"Remove “{connection.name}” from Kite?\n\nKite forgets its sign-in and its list of documents. The "
            "documents themselves stay where they are.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.window.tasks.run(self.window.service.remove_connection(connection.id), name="remove-connection")

    def update(self, connections: list[Connection]) -> None:
        """Called when connections changed: prompt for the ones that need a reconnect, say if the keyring failed."""
        problem = getattr(self.window.service.token_store, "problem", None)
        if problem and not self._keyring_told:
            self._keyring_told = True
            self.window.banner.show_message(
                f"<b>Keyring unavailable.</b> {problem} Kite keeps your sign-ins in memory until it quits; you will "
                "be asked to sign in again next time. Nothing was written to a file."
            )
        current = self.window.current_connection
        self.reconnect_action.setEnabled(current is not None and current.provider is not Provider.LOCAL)
        self.remove_action.setEnabled(current is not None and len(connections) > 1)
        for connection in connections:
            if connection.status is not ConnectionStatus.REQUIRES_REAUTH:
                self._told.discard(connection.id)
                continue
            who = connection.account or connection.name
            if connection.id not in self._told:
                self._told.add(connection.id)
                if self.window.tray is not None:
                    self.window.tray.notify("Kite needs you to reconnect", f"{who} ({connection.provider.label})")
            if current is not None and connection.id == current.id:
                self.window.prompt_reconnect(connection, who)
