"""The tray icon: idle, transferring (percentage in the tooltip) or needs attention, with a small menu."""

from __future__ import annotations

import enum

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QGuiApplication, QIcon, QPalette
from PySide6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

from kite_desktop import APP_NAME
from kite_desktop.core.models import Connection, ConnectionStatus
from kite_desktop.core.transfers import Totals
from kite_desktop.ui import icons


class TrayState(enum.StrEnum):
    IDLE = "idle"
    BUSY = "busy"
    ATTENTION = "attention"


def tray_state(totals: Totals, connections: list[Connection]) -> tuple[TrayState, str]:
    """What the tray shows for these totals and connections: the state and the tooltip text."""
    troubled = [
        c
        for c in connections
        if c.status in (ConnectionStatus.REQUIRES_REAUTH, ConnectionStatus.ERROR, ConnectionStatus.OFFLINE)
    ]
    if troubled:
        first = troubled[0]
        more = f" (and {len(troubled) - 1} more)" if len(troubled) > 1 else ""
        return TrayState.ATTENTION, f"{APP_NAME}: {first.name} {first.status.label.lower()}{more}"
    if totals.busy:
        if totals.paused:
            return TrayState.ATTENTION, f"{APP_NAME}: transfers paused, {totals.active} waiting"
        if totals.stuck:
            return TrayState.ATTENTION, f"{APP_NAME}: {totals.waiting} transfers wait for you (see Transfers)"
        files = "file" if totals.active == 1 else "files"
        return TrayState.BUSY, f"{APP_NAME}: transferring {totals.active} {files}, {totals.fraction:.0%}"
    if totals.failed:
        failed = "transfer" if totals.failed == 1 else "transfers"
        return TrayState.ATTENTION, f"{APP_NAME}: {totals.failed} {failed} failed"
    return TrayState.IDLE, f"{APP_NAME}: up to date"


def _variant() -> str:
    """'light' (dark glyph) on light panels, 'dark' (light glyph) on dark ones."""
    window = QGuiApplication.palette().color(QPalette.ColorRole.Window)
    return "dark" if window.lightness() < 128 else "light"


class TrayController(QObject):
    show_requested = Signal()
    quit_requested = Signal()
    pause_toggled = Signal()
    add_connection_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = TrayState.IDLE
        self.tooltip = f"{APP_NAME}: up to date"
        self.available = QSystemTrayIcon.isSystemTrayAvailable()
        self.menu = QMenu(parent)
        self.show_action = QAction("Show Kite", self.menu)
        self.pause_action = QAction("Pause transfers", self.menu)
        self.add_connection_action = QAction("Add connection…", self.menu)
        self.quit_action = QAction("Quit", self.menu)
        self.menu.addAction(self.show_action)
        self.menu.addAction(self.pause_action)
        self.menu.addAction(self.add_connection_action)
        self.menu.addSeparator()
        self.menu.addAction(self.quit_action)
        self.show_action.triggered.connect(self.show_requested)
        self.pause_action.triggered.connect(self.pause_toggled)
        self.add_connection_action.triggered.connect(self.add_connection_requested)
        self.quit_action.triggered.connect(self.quit_requested)
        self.icon = QSystemTrayIcon(self)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._on_icon_activated)
        self._apply()
        if self.available:
            self.icon.show()

    def update(self, totals: Totals, connections: list[Connection]) -> None:
        self.state, self.tooltip = tray_state(totals, connections)
        self.pause_action.setText("Resume transfers" if totals.paused else "Pause transfers")
        self._apply()

    def current_icon(self) -> QIcon:
        return icons.icon(f"tray-{self.state.value}-{_variant()}")

    def _apply(self) -> None:
        self.icon.setIcon(self.current_icon())
        self.icon.setToolTip(self.tooltip)

    def notify(self, title: str, message: str) -> None:
        if self.available and QSystemTrayIcon.supportsMessages():
            self.icon.showMessage(title, message, QSystemTrayIcon.MessageIcon.Information, 5000)

    def _on_icon_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.show_requested.emit()

    def hide(self) -> None:
        self.icon.hide()
