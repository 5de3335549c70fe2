"""Turns the core's plain events into Qt signals, so widgets and tests can connect to them."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from kite_desktop.core.service import KiteService
from kite_desktop.core.transfers import Totals, Transfer


class ServiceBridge(QObject):
    connections_changed = Signal()
    documents_changed = Signal(str)
    transfers_added = Signal(list)
    transfer_changed = Signal(object)
    transfers_removed = Signal(list)
    totals_changed = Signal(object)
    batch_finished = Signal(object)

    def __init__(self, service: KiteService, parent: QObject | None = None):
        super().__init__(parent)
        self.service = service
        service.connections_changed.connect(self.connections_changed.emit)
        service.documents_changed.connect(self.documents_changed.emit)
        service.transfers.added.connect(self.transfers_added.emit)
        service.transfers.changed.connect(self._on_transfer_changed)
        service.transfers.removed.connect(self.transfers_removed.emit)
        service.transfers.totals_changed.connect(self._on_totals_changed)
        service.transfers.batch_finished.connect(self.batch_finished.emit)

    def _on_transfer_changed(self, transfer: Transfer) -> None:
        self.transfer_changed.emit(transfer)

    def _on_totals_changed(self, totals: Totals) -> None:
        self.totals_changed.emit(totals)
