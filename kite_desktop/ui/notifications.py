"""Desktop notifications: one when a batch of transfers ends or when an account needs the person.

Never one per file. Shown through the tray icon (the desktop's notification service); when there is no
tray, the window's status bar already says the same.
"""

from __future__ import annotations

from PySide6.QtCore import QObject

from kite_desktop.core.models import Connection, ConnectionStatus
from kite_desktop.core.transfers import Totals
from kite_desktop.ui.bridge import ServiceBridge
from kite_desktop.ui.tray import TrayController


def batch_message(totals: Totals) -> tuple[str, str]:
    """Title and text for a finished batch."""
    done = totals.finished - totals.failed
    files = "file" if done == 1 else "files"
    if totals.failed:
        failed = "transfer" if totals.failed == 1 else "transfers"
        return "Transfers need attention", f"{done} {files} done, {totals.failed} {failed} failed. Open Kite to retry."
    return "Transfers finished", f"{done} {files} done."


class Notifier(QObject):
    """Fed by the bridge (transfers) and by the window with the connections it shows (no reads of its own)."""

    def __init__(self, bridge: ServiceBridge, tray: TrayController):
        super().__init__(tray)
        self.tray = tray
        self.sent: list[tuple[str, str]] = []
        self._told: set[str] = set()
        self._stuck = False
        bridge.batch_finished.connect(self._on_batch_finished)
        bridge.totals_changed.connect(self._on_totals_changed)

    def notify(self, title: str, text: str) -> None:
        self.sent.append((title, text))
        self.tray.notify(title, text)

    def _on_batch_finished(self, totals: Totals) -> None:
        if totals.finished:
            self.notify(*batch_message(totals))

    def _on_totals_changed(self, totals: Totals) -> None:
        stuck = totals.stuck and not totals.paused  # paused by the person: they know
        if stuck and not self._stuck:
            files = "transfer waits" if totals.waiting == 1 else "transfers wait"
            self.notify("Kite needs you", f"{totals.waiting} {files} for you; open Kite to see why.")
        self._stuck = stuck

    def connections_shown(self, connections: list[Connection]) -> None:
        """Tell once when an account needs a new sign-in (again after it recovered and lost it anew)."""
        for connection in connections:
            if connection.status is ConnectionStatus.REQUIRES_REAUTH:
                if connection.id not in self._told:
                    self._told.add(connection.id)
                    who = connection.account or connection.name
                    self.notify(
                        "Kite needs you",
                        f"{who} must be signed in again; its transfers wait until you reconnect.",
                    )
            else:
                self._told.discard(connection.id)
