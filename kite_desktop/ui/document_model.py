"""The documents table: a model over the catalog's documents, sorted and filtered by a proxy."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QDateTime,
    QLocale,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)

from kite_desktop.core.formatting import human_size
from kite_desktop.core.models import Document

SortRole = Qt.ItemDataRole.UserRole + 10
DocumentRole = Qt.ItemDataRole.UserRole + 11
Index = QModelIndex | QPersistentModelIndex

COLUMNS = ("Name", "Type", "Size", "Modified", "State")
STATE_LABELS = {"stored": "Stored", "online_only": "Online only"}


class DocumentTableModel(QAbstractTableModel):
    def __init__(self, parent: Any = None):
        super().__init__(parent)
        self._documents: list[Document] = []
        self.connection_id: str | None = None

    def set_documents(self, connection_id: str, documents: list[Document]) -> None:
        self.beginResetModel()
        self.connection_id = connection_id
        self._documents = list(documents)
        self.endResetModel()

    def document_at(self, row: int) -> Document | None:
        return self._documents[row] if 0 <= row < len(self._documents) else None

    @property
    def documents(self) -> list[Document]:
        return list(self._documents)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._documents)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section] if 0 <= section < len(COLUMNS) else None
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        document = self.document_at(index.row()) if index.isValid() else None
        if document is None:
            return None
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(document, column)
        if role == SortRole:
            return self._sort_key(document, column)
        if role == DocumentRole:
            return document
        if role == Qt.ItemDataRole.TextAlignmentRole and column == 2:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == 0:
                return document.name
            if column == 2:
                return f"{document.size:,} bytes"
        return None

    @staticmethod
    def _display(document: Document, column: int) -> str:
        if column == 0:
            return document.name
        if column == 1:
            return document.kind
        if column == 2:
            return human_size(document.size)
        if column == 3:
            if document.modified is None:
                return ""
            local = document.modified.astimezone()
            if QLocale().language() == QLocale.Language.C:  # no locale set: ISO dates read everywhere
                return local.strftime("%Y-%m-%d %H:%M")
            return QLocale().toString(
                QDateTime.fromSecsSinceEpoch(int(local.timestamp())), QLocale.FormatType.ShortFormat
            )
        if column == 4:
            return STATE_LABELS.get(document.state, document.state.capitalize())
        return ""

    @staticmethod
    def _sort_key(document: Document, column: int) -> Any:
        if column == 2:
            return document.size
        if column == 3:
            return document.modified.timestamp() if document.modified else 0.0
        return DocumentTableModel._display(document, column).casefold()


class DocumentFilterProxy(QSortFilterProxyModel):
    """Sorts by the raw values (sizes as numbers) and filters on the name as the user types."""

    def __init__(self, parent: Any = None):
        super().__init__(parent)
        self.setSortRole(SortRole)
        self.setFilterKeyColumn(0)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
