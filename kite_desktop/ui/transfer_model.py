"""The transfers table: one row per file moving, with a progress bar, speed and state."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import (
    QApplication,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
)

from kite_desktop.core.formatting import human_duration, human_size, human_speed
from kite_desktop.core.transfers import Transfer, TransferKind, TransferState

TransferRole = Qt.ItemDataRole.UserRole + 20
Index = QModelIndex | QPersistentModelIndex
COLUMNS = ("File", "Progress", "Speed", "Status")
PROGRESS_COLUMN = 1


def status_text(transfer: Transfer) -> str:
    verb = "Uploading" if transfer.kind is TransferKind.UPLOAD else "Downloading"
    if transfer.state is TransferState.RUNNING:
        return f"{verb}: {transfer.note}" if transfer.note else verb
    if transfer.state in (TransferState.FAILED, TransferState.SKIPPED, TransferState.CANCELLED) and transfer.message:
        return f"{transfer.state.label}: {transfer.message}"
    if transfer.state is TransferState.DONE and transfer.message:
        return f"Done. {transfer.message}"
    if transfer.state in (TransferState.PAUSED, TransferState.QUEUED) and transfer.message:
        # Why it waits: a reconnect, space, the next automatic try, or where an earlier run stopped.
        message = transfer.message.removeprefix("Waiting: ")
        return f"{transfer.state.label}: {message}" if transfer.message != "Paused." else transfer.state.label
    return transfer.state.label


class TransferTableModel(QAbstractTableModel):
    def __init__(self, parent: Any = None):
        super().__init__(parent)
        self._rows: list[Transfer] = []
        self._row_of: dict[int, int] = {}
        """Transfer id → row: a progress tick finds its row at once, not by a pass over thousands."""

    def add(self, transfers: list[Transfer]) -> None:
        if not transfers:
            return
        start = len(self._rows)
        self.beginInsertRows(QModelIndex(), start, start + len(transfers) - 1)
        self._rows.extend(transfers)
        self._row_of.update((t.id, start + i) for i, t in enumerate(transfers))
        self.endInsertRows()

    def update(self, transfer: Transfer) -> None:
        row = self.row_of(transfer.id)
        if row >= 0:
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    def remove(self, transfers: list[Transfer]) -> None:
        gone = {t.id for t in transfers}
        for row in reversed(range(len(self._rows))):
            if self._rows[row].id in gone:
                self.beginRemoveRows(QModelIndex(), row, row)
                del self._rows[row]
                self.endRemoveRows()
        self._row_of = {t.id: row for row, t in enumerate(self._rows)}

    def row_of(self, transfer_id: int) -> int:
        return self._row_of.get(transfer_id, -1)

    def transfer_at(self, row: int) -> Transfer | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section] if 0 <= section < len(COLUMNS) else None
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        transfer = self.transfer_at(index.row()) if index.isValid() else None
        if transfer is None:
            return None
        column = index.column()
        if role == TransferRole:
            return transfer
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 0:
                arrow = "↑" if transfer.kind is TransferKind.UPLOAD else "↓"
                return f"{arrow} {transfer.name}"
            if column == 1:
                if transfer.state in (TransferState.SKIPPED, TransferState.FAILED, TransferState.CANCELLED):
                    return "—"
                return f"{transfer.fraction:.0%}  ({human_size(transfer.done)} of {human_size(transfer.size)})"
            if column == 2:
                speed = transfer.speed
                left = transfer.size - transfer.done
                if speed > 0 and left > 0:
                    return f"{human_speed(speed)} · {human_duration(left / speed)} left"
                return human_speed(speed)
            if column == 3:
                return status_text(transfer)
        if role == Qt.ItemDataRole.ToolTipRole:
            where = transfer.source or transfer.destination
            return f"{transfer.name}\n{where}\n{status_text(transfer)}" if where else status_text(transfer)
        if role == Qt.ItemDataRole.UserRole and column == PROGRESS_COLUMN:
            return transfer.fraction
        return None


class ProgressDelegate(QStyledItemDelegate):
    """Draws the progress column as a progress bar with the percentage and sizes on it."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        transfer: Transfer | None = index.data(TransferRole)
        if transfer is None or transfer.state in (TransferState.SKIPPED, TransferState.FAILED, TransferState.CANCELLED):
            super().paint(painter, option, index)
            return
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(4, 5, -4, -5)
        bar.minimum = 0
        bar.maximum = 1000
        bar.progress = int(transfer.fraction * 1000)
        bar.text = index.data(Qt.ItemDataRole.DisplayRole) or ""
        bar.textVisible = True
        bar.state = option.state | QStyle.StateFlag.State_Horizontal
        bar.palette = option.palette
        style = option.widget.style() if option.widget else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, option.widget)
