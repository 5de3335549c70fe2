"""The connections list on the left: a thin Qt model over the service's connections."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPalette
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from kite_desktop.core.models import Connection, ConnectionStatus
from kite_desktop.ui import icons

ConnectionRole = Qt.ItemDataRole.UserRole + 1
StatusRole = Qt.ItemDataRole.UserRole + 2
Index = QModelIndex | QPersistentModelIndex

STATUS_ICON = {
    ConnectionStatus.CONNECTED: "status-connected",
    ConnectionStatus.REQUIRES_REAUTH: "status-reauth",
    ConnectionStatus.OFFLINE: "status-offline",
    ConnectionStatus.ERROR: "status-error",
    ConnectionStatus.UNKNOWN: "status-unknown",
}


class ConnectionListModel(QAbstractListModel):
    def __init__(self, parent: Any = None):
        super().__init__(parent)
        self._connections: list[Connection] = []

    def set_connections(self, connections: list[Connection]) -> None:
        if [c.id for c in connections] == [c.id for c in self._connections]:
            self._connections = list(connections)
            if connections:
                self.dataChanged.emit(self.index(0), self.index(len(connections) - 1))
            return
        self.beginResetModel()
        self._connections = list(connections)
        self.endResetModel()

    def connection_at(self, row: int) -> Connection | None:
        return self._connections[row] if 0 <= row < len(self._connections) else None

    def row_of(self, connection_id: str) -> int:
        return next((i for i, c in enumerate(self._connections) if c.id == connection_id), -1)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._connections)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        connection = self.connection_at(index.row()) if index.isValid() else None
        if connection is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return connection.name
        if role == Qt.ItemDataRole.DecorationRole:
            return icons.icon(f"provider-{connection.provider.value}")
        if role == Qt.ItemDataRole.ToolTipRole:
            where = connection.config.options.get("folder") or connection.account
            lines = [f"{connection.name} ({connection.provider.label})", connection.status.label]
            if where:
                lines.append(str(where))
            if connection.detail:
                lines.append(connection.detail)
            return "\n".join(lines)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{connection.name}, {connection.status.label}"
        if role == StatusRole:
            return connection.status
        if role == ConnectionRole:
            return connection
        return None


class ConnectionDelegate(QStyledItemDelegate):
    """Two lines per connection: the name, and its status with a coloured dot."""

    ROW_HEIGHT = 48

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return QSize(180, self.ROW_HEIGHT)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        connection: Connection | None = index.data(ConnectionRole)
        if connection is None:
            return
        painter.save()
        style = option.widget.style() if option.widget else None
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        opt.icon = icons.icon("")
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, option.widget)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        rect = option.rect.adjusted(10, 6, -8, -6)
        icons.icon(f"provider-{connection.provider.value}").paint(painter, QRect(rect.left(), rect.top() + 4, 28, 28))
        text_left = rect.left() + 38
        palette = option.palette
        text_color = palette.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text)
        font = QFont(option.font)
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(text_color)
        name_rect = QRect(text_left, rect.top(), rect.right() - text_left, rect.height() // 2)
        painter.drawText(
            name_rect,
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            painter.fontMetrics().elidedText(connection.name, Qt.TextElideMode.ElideRight, name_rect.width()),
        )
        small = QFont(option.font)
        small.setPointSizeF(max(7.0, option.font.pointSizeF() * 0.9))
        painter.setFont(small)
        dot = QRect(text_left, rect.top() + rect.height() // 2 + 4, 10, 10)
        icons.icon(STATUS_ICON[connection.status]).paint(painter, dot)
        status_color = QColor(text_color)
        if not selected:
            status_color.setAlpha(170)
        painter.setPen(status_color)
        status_rect = QRect(
            dot.right() + 6, rect.top() + rect.height() // 2, rect.right() - dot.right() - 6, rect.height() // 2
        )
        painter.drawText(
            status_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, connection.status.label
        )
        painter.restore()
