"""The transfers panel under the documents: per-file progress, totals, pause, cancel, clear."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from kite_desktop.core.formatting import human_duration, human_size, human_speed
from kite_desktop.core.transfers import Totals, Transfer, TransferQueue, TransferState
from kite_desktop.ui.bridge import ServiceBridge
from kite_desktop.ui.transfer_model import PROGRESS_COLUMN, ProgressDelegate, TransferTableModel


def totals_text(totals: Totals) -> str:
    if totals.active == 0 and totals.finished == 0:
        return "No transfers"
    parts = [f"{totals.finished} of {totals.finished + totals.active} files"]
    parts.append(f"{human_size(totals.done_bytes)} of {human_size(totals.total_bytes)}")
    if totals.speed > 0:
        parts.append(human_speed(totals.speed))
        remaining = totals.total_bytes - totals.done_bytes
        if remaining > 0:
            parts.append(f"about {human_duration(remaining / totals.speed)} left")
    if totals.failed:
        parts.append(f"{totals.failed} failed")
    if totals.waiting and not totals.paused:
        parts.append(f"{totals.waiting} waiting")
    if totals.paused and totals.active:
        parts.append("paused")
    return " · ".join(parts)


class TransfersPanel(QWidget):
    """Shows the queue; the buttons act on the selected rows or on everything."""

    visibility_wanted = Signal(bool)

    def __init__(self, bridge: ServiceBridge, queue: TransferQueue, parent: QWidget | None = None):
        super().__init__(parent)
        self.queue = queue
        self.model = TransferTableModel(self)
        self.table = QTableView(self)
        self.table.setObjectName("transfersTable")
        self.table.setModel(self.model)
        self.table.setItemDelegateForColumn(PROGRESS_COLUMN, ProgressDelegate(self.table))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Fixed)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Interactive)  # not to contents: it would jump
        header.setStretchLastSection(True)
        self.table.setColumnWidth(0, 260)
        self.table.setColumnWidth(1, 220)
        self.table.setColumnWidth(2, 190)
        self.table.verticalHeader().setDefaultSectionSize(26)

        self.title = QLabel("<b>Transfers</b>", self)
        self.summary = QLabel("No transfers", self)
        self.summary.setObjectName("transfersSummary")
        self.pause_button = QPushButton("Pause all", self)
        self.pause_button.setToolTip("Pause the selected transfers, or all when none is selected (Ctrl+P: all)")
        self.retry_button = QPushButton("Retry", self)
        self.retry_button.setToolTip("Try the selected (or all failed) transfers again now")
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setToolTip("Cancel the selected transfers, or all when none is selected")
        self.clear_button = QPushButton("Clear finished", self)
        for button in (self.pause_button, self.retry_button, self.cancel_button, self.clear_button):
            button.setFocusPolicy(Qt.FocusPolicy.TabFocus)

        top = QHBoxLayout()
        top.addWidget(self.title)
        top.addSpacing(8)
        top.addWidget(self.summary, 1)
        top.addWidget(self.pause_button)
        top.addWidget(self.retry_button)
        top.addWidget(self.cancel_button)
        top.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 8)
        layout.addLayout(top)
        layout.addWidget(self.table)

        self.pause_button.clicked.connect(self.pause_clicked)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._on_table_context_menu)
        self.pause_items_action = QAction("Pause", self)
        self.resume_items_action = QAction("Resume", self)
        self.retry_items_action = QAction("Retry now", self)
        self.cancel_items_action = QAction("Cancel", self)
        self.pause_items_action.triggered.connect(lambda: self.queue.pause_items(self.selected_ids()))
        self.resume_items_action.triggered.connect(lambda: self.queue.resume_items(self.selected_ids()))
        self.retry_items_action.triggered.connect(self.retry_selected)
        self.cancel_items_action.triggered.connect(self.cancel_selected)
        self.retry_button.clicked.connect(self.retry_selected)
        self.cancel_button.clicked.connect(self.cancel_selected)
        self.clear_button.clicked.connect(self.queue.clear_finished)
        bridge.transfers_added.connect(self._on_bridge_transfers_added)
        bridge.transfer_changed.connect(self.model.update)
        bridge.transfers_removed.connect(self.model.remove)
        bridge.totals_changed.connect(self._on_bridge_totals_changed)
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)
        self._update_buttons()

    def _on_bridge_transfers_added(self, transfers: list) -> None:
        self.model.add(transfers)
        self.visibility_wanted.emit(True)
        self._update_buttons()

    def _on_bridge_totals_changed(self, totals: Totals) -> None:
        self.summary.setText(totals_text(totals))
        self._update_buttons()

    def selected_ids(self) -> list[int]:
        rows = {index.row() for index in self.table.selectionModel().selectedRows()}
        return [t.id for r in sorted(rows) if (t := self.model.transfer_at(r)) is not None]

    def selected_transfers(self) -> list[Transfer]:
        return [t for i in self.selected_ids() if (t := self.queue.get(i)) is not None]

    def pause_clicked(self) -> None:
        """Pause or resume the selected transfers; with none selected, everything."""
        selected = self.selected_transfers()
        if not selected:
            self.toggle_pause()
        elif all(t.state is TransferState.PAUSED for t in selected):
            self.queue.resume_items([t.id for t in selected])
        else:
            self.queue.pause_items([t.id for t in selected])
        self._update_buttons()

    def _on_table_context_menu(self, position: QPoint) -> None:
        selected = self.selected_transfers()
        if not selected:
            return
        pausable = [t for t in selected if not t.state.finished and t.state is not TransferState.PAUSED]
        self.pause_items_action.setEnabled(bool(pausable))
        self.resume_items_action.setEnabled(any(t.state is TransferState.PAUSED for t in selected))
        self.retry_items_action.setEnabled(any(t.retryable for t in selected))
        self.cancel_items_action.setEnabled(any(not t.state.finished for t in selected))
        menu = QMenu(self)
        menu.addActions([self.pause_items_action, self.resume_items_action, self.retry_items_action])
        menu.addSeparator()
        menu.addAction(self.cancel_items_action)
        menu.popup(self.table.viewport().mapToGlobal(position))

    def toggle_pause(self) -> None:
        if self.queue.paused:
            self.queue.resume()
        else:
            self.queue.pause()

    def cancel_selected(self) -> None:
        ids = self.selected_ids()
        if not ids:
            self.queue.cancel_all()
        for transfer_id in ids:
            self.queue.cancel(transfer_id)

    def retry_selected(self) -> None:
        ids = self.selected_ids() or [t.id for t in self.queue.items if t.retryable]
        for transfer_id in ids:
            self.queue.retry(transfer_id)

    def _update_buttons(self) -> None:
        items = self.queue.items
        selected = self.selected_transfers() if self.table.selectionModel().hasSelection() else []
        self.cancel_button.setEnabled(any(not t.state.finished for t in items))
        self.clear_button.setEnabled(any(t.state.finished for t in items))
        self.retry_button.setEnabled(any(t.retryable for t in selected or items))
        if not selected:
            self.pause_button.setText("Resume all" if self.queue.paused else "Pause all")
            self.pause_button.setEnabled(True)
        else:
            paused = all(t.state is TransferState.PAUSED for t in selected)
            self.pause_button.setText("Resume" if paused else "Pause")
            self.pause_button.setEnabled(any(not t.state.finished for t in selected))
