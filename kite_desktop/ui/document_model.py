"""The documents table: a model over the catalog's documents, sorted and filtered by a proxy."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
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


RESET_ABOVE = 200
"""More changes than this at once (a first listing) reset the model; fewer are applied row by row."""


@dataclass(frozen=True)
class Changes:
    """From one list of rows to the next: rows removed, documents added, rows whose document changed."""

    version: int
    removed: list[int]
    added: list[Document]
    changed: list[tuple[int, Document]]

    @property
    def small(self) -> bool:
        return len(self.removed) + len(self.added) <= RESET_ABOVE


class DocumentTableModel(QAbstractTableModel):
    """The documents, kept in the order the view asked for.

    The model sorts itself in Python (one key per row, computed once) instead of letting the proxy compare
    rows through ``data()``: with 10,000 documents that is the difference between a few milliseconds and half
    a second with the window frozen (docs/performance.md). A new listing of the same connection is applied
    as row inserts, removals and changes, so the view keeps its selection and scroll position.
    """

    def __init__(self, parent: Any = None):
        super().__init__(parent)
        self._documents: list[Document] = []
        self._keys: list[Any] = []
        """Each row's sort key, kept beside it: computed once per document, not on every change."""
        self.connection_id: str | None = None
        self._version = 0
        self._sort_column = 0
        self._sort_order = Qt.SortOrder.AscendingOrder

    def set_documents(self, connection_id: str, documents: list[Document], plan: Changes | None = None) -> bool:
        """Show ``documents``; True when the model was reset (selection and scroll position are gone).

        ``plan``, from :meth:`changes_to` (which may run in a worker thread), saves the Qt thread the
        comparison of every row; it is used only if the rows have not changed since it was made."""
        if connection_id == self.connection_id:
            if plan is None or plan.version != self._version:
                plan = self.changes_to(documents)
            if plan.small:
                self._apply(plan)
                return False
        self.beginResetModel()
        self.connection_id = connection_id
        self._documents, self._keys = self._sorted(documents)
        self._version += 1
        self.endResetModel()
        return True

    def snapshot(self) -> tuple[int, list[Document]]:
        return self._version, list(self._documents)

    def changes_to(self, documents: list[Document], snapshot: tuple[int, list[Document]] | None = None) -> Changes:
        """What turns the rows (of ``snapshot``, or the current ones) into ``documents``. Reads only the
        snapshot, so it can run in a worker thread."""
        version, rows = snapshot if snapshot is not None else self.snapshot()
        wanted = {d.id: d for d in documents}
        current = {d.id for d in rows}
        removed = [row for row, d in enumerate(rows) if d.id not in wanted]
        added = [d for d in documents if d.id not in current]
        changed = [(row, wanted[d.id]) for row, d in enumerate(rows) if d.id in wanted and wanted[d.id] != d]
        return Changes(version, removed, added, changed)

    def _apply(self, plan: Changes) -> None:
        self._version += 1
        for row in reversed(plan.removed):
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._documents[row]
            del self._keys[row]
            self.endRemoveRows()
        shift = 0
        removed = iter(plan.removed)
        next_removed = next(removed, None)
        last = len(COLUMNS) - 1
        moved = False
        for old_row, new in plan.changed:  # rows counted before the removals: shift them
            while next_removed is not None and next_removed < old_row:
                shift += 1
                next_removed = next(removed, None)
            row = old_row - shift
            key = self._key(new)
            moved = moved or key != self._keys[row]
            self._documents[row], self._keys[row] = new, key
            self.dataChanged.emit(self.index(row, 0), self.index(row, last))
        if moved:
            self.sort(self._sort_column, self._sort_order)
        find = bisect.bisect_left if self._ascending else _bisect_left_descending
        for document in plan.added:
            key = self._key(document)
            row = find(self._keys, key)
            self.beginInsertRows(QModelIndex(), row, row)
            self._documents.insert(row, document)
            self._keys.insert(row, key)
            self.endInsertRows()

    # -- sorting ------------------------------------------------------------------------------------------
    @property
    def _ascending(self) -> bool:
        return self._sort_order == Qt.SortOrder.AscendingOrder

    def _key(self, document: Document) -> Any:
        return (self._sort_key(document, self._sort_column), document.name.casefold(), document.id)

    def _sorted(self, documents: list[Document]) -> tuple[list[Document], list[Any]]:
        pairs = sorted(((self._key(d), d) for d in documents), key=lambda pair: pair[0], reverse=not self._ascending)
        return [d for _, d in pairs], [k for k, _ in pairs]

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(COLUMNS):
            return
        self.layoutAboutToBeChanged.emit()
        before = self.persistentIndexList()
        ids = [self._documents[i.row()].id if 0 <= i.row() < len(self._documents) else None for i in before]
        self._sort_column, self._sort_order = column, order
        self._documents, self._keys = self._sorted(self._documents)
        self._version += 1
        rows = {d.id: row for row, d in enumerate(self._documents)}
        after = [
            self.index(rows[i], old.column()) if i in rows else QModelIndex()
            for i, old in zip(ids, before, strict=True)
        ]
        self.changePersistentIndexList(before, after)
        self.layoutChanged.emit()

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
    """Filters on the name as the user types; sorting is handed to the documents model (sizes as numbers)."""

    def __init__(self, parent: Any = None):
        super().__init__(parent)
        self.setSortRole(SortRole)
        self.setFilterKeyColumn(0)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        source = self.sourceModel()
        if isinstance(source, DocumentTableModel):
            source.sort(column, order)  # the proxy keeps the source's order (it never sorts by itself)
        else:
            super().sort(column, order)


def _bisect_left_descending(keys: list[Any], key: Any) -> int:
    """Where ``key`` goes in ``keys`` sorted from largest to smallest."""
    low, high = 0, len(keys)
    while low < high:
        middle = (low + high) // 2
        if keys[middle] > key:
            low = middle + 1
        else:
            high = middle
    return low
