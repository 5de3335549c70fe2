"""The main window: connections on the left, their documents on the right, transfers below."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import shiboken6
from PySide6.QtCore import QModelIndex, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListView,
    QMainWindow,
    QMenu,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from kite_desktop import APP_NAME
from kite_desktop.core.errors import CloudConnectionError, KiteError
from kite_desktop.core.models import Connection, ConnectionStatus, Document, Provider
from kite_desktop.core.service import KiteService
from kite_desktop.core.transfers import Totals, Transfer, TransferKind, TransferState
from kite_desktop.ui import icons
from kite_desktop.ui.account_actions import AccountActions
from kite_desktop.ui.bridge import ServiceBridge
from kite_desktop.ui.connection_model import ConnectionDelegate, ConnectionListModel
from kite_desktop.ui.dialogs import Dialogs
from kite_desktop.ui.document_model import Changes, DocumentFilterProxy, DocumentRole, DocumentTableModel
from kite_desktop.ui.notifications import Notifier
from kite_desktop.ui.tasks import TaskRunner
from kite_desktop.ui.transfers_panel import TransfersPanel
from kite_desktop.ui.tray import TrayController
from kite_desktop.ui.widgets import Banner, DropOverlay, EmptyState
from kite_desktop.ui.window_actions import build_actions, build_menus_and_toolbar, open_log_folder, show_about

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    about_action: QAction
    add_files_action: QAction
    add_folder_action: QAction
    change_folder_action: QAction
    delete_action: QAction
    filter_action: QAction
    log_folder_action: QAction
    open_action: QAction
    pause_action: QAction
    quit_action: QAction
    settings_action: QAction
    refresh_action: QAction
    save_as_action: QAction
    show_transfers_action: QAction
    filter_edit: QLineEdit  # the actions, menus and toolbar are built in window_actions.py

    quit_requested = Signal()
    """The window was closed for good (Quit, or closed without a tray): the app should end."""
    documents_shown = Signal(str)
    """Emitted after the table shows a connection's documents (its id)."""

    def __init__(self, service: KiteService, bridge: ServiceBridge, parent: QWidget | None = None):
        super().__init__(parent)
        self.service = service
        self.bridge = bridge
        self.tasks = TaskRunner(self.show_error)
        self.keep_running_in_tray = False
        self.tray: TrayController | None = None
        self.settings_dialog: QWidget | None = None
        self._quitting = False
        self._told_about_tray = False
        self.current_connection_id: str | None = None
        self._show_task: asyncio.Task[None] | None = None
        self._was_busy = False
        self._pending_selection: str | None = None
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(icons.icon("kite-desktop"))
        self.setAcceptDrops(True)
        self.resize(1100, 720)

        self._build_views()
        self.accounts = AccountActions(self)
        self.add_connection_button.clicked.connect(self.accounts.add_action.trigger)
        self._build_actions()
        self._build_menus_and_toolbar()
        self._reload_timer = QTimer(self)
        self._reload_timer.setSingleShot(True)
        self._reload_timer.setInterval(150)
        self._reload_timer.timeout.connect(self._reload_documents)

        bridge.connections_changed.connect(self._on_bridge_connections_changed)
        bridge.documents_changed.connect(self._on_bridge_documents_changed)
        bridge.transfer_changed.connect(self._on_bridge_transfer_changed)
        bridge.totals_changed.connect(self._on_bridge_totals_changed)

    # -- construction ---------------------------------------------------------------------------
    def _build_views(self) -> None:
        self.connection_model = ConnectionListModel(self)
        self.connection_view = QListView(self)
        self.connection_view.setObjectName("connectionList")
        self.connection_view.setModel(self.connection_model)
        self.connection_view.setItemDelegate(ConnectionDelegate(self.connection_view))
        self.connection_view.setAccessibleName("Connections")
        self.connection_view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.connection_view.customContextMenuRequested.connect(self._on_connection_view_context_menu)
        self.connection_view.selectionModel().currentChanged.connect(self._on_connection_view_current_changed)
        connections_label = QLabel("<b>Connections</b>", self)
        left = QWidget(self)
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(8, 8, 0, 8)
        left_layout.addWidget(connections_label)
        left_layout.addWidget(self.connection_view)
        self.add_connection_button = QPushButton("Add connection…", left)
        left_layout.addWidget(self.add_connection_button)
        left.setMinimumWidth(190)

        self.document_model = DocumentTableModel(self)
        self.proxy = DocumentFilterProxy(self)
        self.proxy.setSourceModel(self.document_model)
        self.table = QTableView(self)
        self.table.setObjectName("documentTable")
        self.table.setAccessibleName("Documents")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(26)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in (1, 2, 3, 4):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setHighlightSections(False)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._on_table_context_menu)
        self.table.activated.connect(self._on_table_activated)
        self.table.selectionModel().selectionChanged.connect(self._update_actions)

        self.empty_state = EmptyState(self)
        self.empty_state.add_files_clicked.connect(self.choose_files)
        self.no_match = QLabel("No documents match the filter.", self)
        self.no_match.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.table)
        self.stack.addWidget(self.empty_state)
        self.stack.addWidget(self.no_match)

        self.heading = QLabel(self)
        self.heading.setObjectName("connectionHeading")
        self.heading.setTextFormat(Qt.TextFormat.RichText)
        self.banner = Banner(self)
        self.banner.action_clicked.connect(self._on_banner_action_clicked)
        self._banner_action: str | None = None
        documents_area = QWidget(self)
        documents_layout = QVBoxLayout(documents_area)
        documents_layout.setContentsMargins(8, 8, 8, 0)
        documents_layout.addWidget(self.heading)
        documents_layout.addWidget(self.banner)
        documents_layout.addWidget(self.stack, 1)
        self.documents_area = documents_area
        self.drop_overlay = DropOverlay(documents_area)

        self.transfers_panel = TransfersPanel(self.bridge, self.service.transfers, self)
        self.transfers_panel.visibility_wanted.connect(self._show_transfers)
        self.transfers_panel.hide()

        right = QSplitter(Qt.Orientation.Vertical, self)
        self.right_splitter = right
        right.addWidget(documents_area)
        right.addWidget(self.transfers_panel)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 1)
        right.setChildrenCollapsible(False)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([230, 870])
        self.setCentralWidget(splitter)
        self.statusBar().showMessage("Starting…")

    def _build_actions(self) -> None:
        build_actions(self)

    def _build_menus_and_toolbar(self) -> None:
        build_menus_and_toolbar(self)

    # -- start and stop ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Show the connections and the cached documents at once, then refresh from the storage."""
        connections = await asyncio.to_thread(self.service.connections)
        self.connection_model.set_connections(connections)
        for notice in self.service.notices:
            self.banner.show_message(notice)
        selected = self.service.settings.selected_connection
        row = self.connection_model.row_of(selected) if selected else -1
        self.connection_view.setCurrentIndex(self.connection_model.index(max(row, 0)))
        restored = await self.service.restore_transfers()
        if restored:
            waiting = sum(1 for t in restored if not t.state.finished)
            if waiting:
                self.statusBar().showMessage(f"Going on with {waiting} transfer(s) from last time.", 8000)
        if self._show_task is not None:
            await asyncio.wait([self._show_task])

    async def shutdown(self) -> None:
        if self.tasks.closed:
            return
        if shiboken6.isValid(self._reload_timer):  # the widgets may already be gone when the app quits
            self._reload_timer.stop()
        dialog = self.accounts.dialog if shiboken6.isValid(self.accounts) else None
        if dialog is not None and shiboken6.isValid(dialog):
            dialog.reject()
        await self.tasks.cancel_all()

    def quit(self) -> None:
        """Quit Kite: the launcher then stops the transfers, closes the catalog and ends the event loop."""
        self._quitting = True
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.keep_running_in_tray and not self._quitting:
            event.ignore()
            self.hide()
            if not self._told_about_tray:
                self._told_about_tray = True
                self.statusBar().showMessage("Kite keeps running in the tray.")
            return
        event.accept()
        self.quit_requested.emit()

    # -- connections ------------------------------------------------------------------------------
    def connection_model_connections(self) -> list[Connection]:
        model = self.connection_model
        return [c for r in range(model.rowCount()) if (c := model.connection_at(r)) is not None]

    @property
    def current_connection(self) -> Connection | None:
        if self.current_connection_id is None:
            return None
        row = self.connection_model.row_of(self.current_connection_id)
        return self.connection_model.connection_at(row)

    def _on_connection_view_current_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        connection = self.connection_model.connection_at(current.row())
        if connection is None or connection.id == self.current_connection_id:
            return
        self.current_connection_id = connection.id
        self.document_model.set_documents(connection.id, [])
        self._show_heading()
        self._update_actions()
        self._show_task = self.tasks.run(self._show_connection(connection.id), name="show-connection")

    async def _show_connection(self, connection_id: str) -> None:
        await self.service.select_connection(connection_id)
        await self._load_cached(connection_id)
        await self._refresh(connection_id)

    async def _load_cached(self, connection_id: str) -> None:
        documents = await self.service.cached_documents(connection_id)
        if connection_id == self.current_connection_id:
            await self._show_documents(connection_id, documents)

    async def _show_documents(self, connection_id: str, documents: list[Document]) -> None:
        """Put ``documents`` in the table; the rows are compared in a worker thread, not on the Qt thread."""
        plan = None
        if connection_id == self.document_model.connection_id:
            plan = await asyncio.to_thread(self.document_model.changes_to, documents, self.document_model.snapshot())
        if connection_id == self.current_connection_id:
            self._set_documents(connection_id, documents, plan)

    async def _refresh(self, connection_id: str) -> None:
        self.statusBar().showMessage("Refreshing…")
        try:
            documents = await self.service.refresh(connection_id)
        except KiteError as exc:
            if connection_id == self.current_connection_id:
                self.show_error(exc)
            return
        if connection_id == self.current_connection_id:
            await self._show_documents(connection_id, documents)
            count = len(documents)
            self.statusBar().showMessage(f"{count} document{'s' if count != 1 else ''}", 5000)

    def _set_documents(self, connection_id: str, documents: list[Document], plan: Changes | None = None) -> None:
        selected = {d.id for d in self.selected_documents()}
        reset = self.document_model.set_documents(connection_id, documents, plan)
        if reset and selected:  # otherwise Qt kept the selection on the rows that stayed
            selection = self.table.selectionModel()
            for row in range(self.proxy.rowCount()):
                index = self.proxy.index(row, 0)
                if index.data(DocumentRole).id in selected:
                    selection.select(index, selection.SelectionFlag.Select | selection.SelectionFlag.Rows)
        self._update_stack()
        self._update_actions()
        self.documents_shown.emit(connection_id)

    def _on_bridge_connections_changed(self) -> None:
        self.tasks.run(self._reload_connections(), name="reload-connections")

    async def _reload_connections(self) -> None:
        connections = await asyncio.to_thread(self.service.connections)
        self.connection_model.set_connections(connections)
        if self.current_connection_id is not None:
            row = self.connection_model.row_of(self.current_connection_id)
            if row < 0 and connections:  # the current one was removed
                self.current_connection_id = None
                row = 0
            if row >= 0 and self.connection_view.currentIndex().row() != row:
                self.connection_view.setCurrentIndex(self.connection_model.index(row))
        if self._pending_selection is not None:
            self.select_connection(self._pending_selection)
        self._show_heading()
        self.accounts.update(connections)

    def select_connection(self, connection_id: str) -> None:
        """Select a connection now, or as soon as it is listed (a new one appears after the next reload)."""
        row = self.connection_model.row_of(connection_id)
        if row >= 0:
            self._pending_selection = None
            self.connection_view.setCurrentIndex(self.connection_model.index(row))
        else:
            self._pending_selection = connection_id

    def prompt_reconnect(self, connection: Connection, who: str) -> None:
        """The non-modal reconnect prompt on the selected connection."""
        self._banner_action = "Reconnect"
        self.banner.show_message(
            f"<b>{_escape(connection.name)} needs you to sign in again.</b> "
            f"{_escape(connection.provider.label)} no longer accepts Kite's access to {_escape(who)}. "
            "Transfers for it wait until then.",
            action=f"Reconnect {who}",
            dismiss="Later",
        )

    def _show_heading(self) -> None:
        connection = self.current_connection
        if connection is None:
            self.heading.setText("")
            return
        where = connection.config.options.get("folder") or connection.account
        if where == connection.name:
            where = ""
        where_html = f"<span style='color: palette(mid)'>&nbsp;&nbsp;{_escape(str(where))}</span>" if where else ""
        self.heading.setText(
            f"<span style='font-size: 14pt; font-weight: 600'>{_escape(connection.name)}</span>{where_html}"
        )
        if connection.status in (ConnectionStatus.OFFLINE, ConnectionStatus.ERROR, ConnectionStatus.REQUIRES_REAUTH):
            self.empty_state.show_unavailable(connection.name, connection.status.label)
        else:
            self.empty_state.show_ready(connection.name)
        self.change_folder_action.setEnabled(connection.provider is Provider.LOCAL)

    def _on_connection_view_context_menu(self, position: QPoint) -> None:
        menu = QMenu(self)
        menu.addAction(self.refresh_action)
        menu.addAction(self.accounts.reconnect_action)
        menu.addAction(self.change_folder_action)
        connection = self.current_connection
        if connection is not None:
            menu.addSeparator()
            queue = self.service.transfers
            menu.addAction("Pause its transfers", lambda: queue.pause_connection(connection.id))
            menu.addAction("Resume its transfers", lambda: queue.resume_connection(connection.id))
        menu.addSeparator()
        menu.addAction(self.accounts.add_action)
        menu.addAction(self.accounts.remove_action)
        menu.exec(self.connection_view.viewport().mapToGlobal(position))

    def change_folder(self) -> None:
        connection = self.current_connection
        if connection is None or connection.provider is not Provider.LOCAL:
            return
        folder = Dialogs.choose_folder(
            self, f"Choose the folder for {connection.name}", str(connection.config.options.get("folder", ""))
        )
        if folder:
            self.tasks.run(self.service.set_local_folder(connection.id, Path(folder)), name="change-folder")

    # -- documents --------------------------------------------------------------------------------
    def _on_bridge_documents_changed(self, connection_id: str) -> None:
        if connection_id == self.current_connection_id:
            self._reload_timer.start()

    def _reload_documents(self) -> None:
        if self.current_connection_id is not None:
            self.tasks.run(self._load_cached(self.current_connection_id), name="reload-documents")

    def _update_stack(self) -> None:
        if self.document_model.rowCount() == 0:
            self.stack.setCurrentWidget(self.empty_state)
        elif self.proxy.rowCount() == 0:
            self.stack.setCurrentWidget(self.no_match)
        else:
            self.stack.setCurrentWidget(self.table)

    def _on_filter_edit_text_changed(self, text: str) -> None:
        self.proxy.setFilterFixedString(text)
        self._update_stack()

    def focus_filter(self) -> None:
        self.filter_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.filter_edit.selectAll()

    def selected_documents(self) -> list[Document]:
        rows = self.table.selectionModel().selectedRows()
        if not rows and self.table.currentIndex().isValid() and self.table.hasFocus():
            rows = [self.table.currentIndex()]
        return [index.data(DocumentRole) for index in rows if index.data(DocumentRole) is not None]

    def _update_actions(self) -> None:
        documents = self.selected_documents()
        has_connection = self.current_connection_id is not None
        self.open_action.setEnabled(bool(documents) and all(d.downloadable for d in documents))
        self.save_as_action.setEnabled(len(documents) == 1 and documents[0].downloadable)
        self.delete_action.setEnabled(bool(documents))
        self.refresh_action.setEnabled(has_connection)
        self.add_files_action.setEnabled(has_connection)
        self.add_folder_action.setEnabled(has_connection)

    def _on_table_activated(self, index: QModelIndex) -> None:
        self.open_selected()

    def _on_table_context_menu(self, position: QPoint) -> None:
        menu = QMenu(self)
        menu.addActions([self.open_action, self.save_as_action])
        menu.addSeparator()
        menu.addAction(self.delete_action)
        menu.exec(self.table.viewport().mapToGlobal(position))

    def refresh_current(self) -> None:
        if self.current_connection_id is not None:
            self.tasks.run(self._refresh(self.current_connection_id), name="refresh")

    def open_selected(self) -> None:
        for document in self.selected_documents()[:10]:
            self.tasks.run(self._open(document), name="open")

    async def _open(self, document: Document) -> None:
        path = self.service.open_cache_path(document)
        transfer = await self.service.transfers.wait_finished(await self.service.download(document, path))
        if transfer.state is not TransferState.DONE:
            return
        if not Dialogs.open_with_system(path):
            self.show_error(
                KiteError(
                    f"No application is set up to open {path.name}.",
                    title="Cannot open",
                    hint="Use Save as… and open the copy yourself.",
                )
            )

    def save_selected(self) -> None:
        documents = self.selected_documents()
        if len(documents) != 1:
            return
        document = documents[0]
        target = Dialogs.save_path(self, Path.home() / document.name.rsplit("/", 1)[-1])
        if target is not None:
            self.tasks.run(self.service.download(document, target), name="save")
            self.statusBar().showMessage(f"Saving {document.name} to {target}…", 5000)

    def delete_selected(self) -> None:
        documents = self.selected_documents()
        connection = self.current_connection
        if not documents or connection is None:
            return
        if Dialogs.confirm_delete(self, documents, connection.name):
            self.tasks.run(self._delete(documents), name="delete")

    async def _delete(self, documents: list[Document]) -> None:
        for document in documents:
            await self.service.delete(document)
        names = documents[0].name if len(documents) == 1 else f"{len(documents)} documents"
        self.statusBar().showMessage(f"Deleted {names}", 5000)

    # -- adding files -------------------------------------------------------------------------------
    def choose_files(self) -> None:
        paths = Dialogs.choose_files(self)
        if paths:
            self.add_files(paths)

    def choose_folder(self) -> None:
        folder = Dialogs.choose_folder(self)
        if folder:
            self.add_files([folder])

    def add_files(self, sources: list[str]) -> None:
        """Upload paths or file URLs to the selected connection: the one seam behind drop and Add files."""
        connection = self.current_connection
        if connection is None:
            self.show_error(KiteError("Choose a connection first.", title="No connection selected"))
            return
        self.tasks.run(self._upload(connection, sources), name="upload")

    async def _upload(self, connection: Connection, sources: list[str]) -> None:
        batch = await self.service.upload(connection.id, sources)
        count = len(batch.transfers)
        message = f"Adding {count} file{'s' if count != 1 else ''} to {connection.name}"
        if batch.skipped:
            message += f"; {len(batch.skipped)} skipped (see Transfers)"
        self.statusBar().showMessage(message, 8000)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        mime = event.mimeData()
        if self.current_connection is not None and (mime.hasUrls() or mime.hasImage() or mime.hasText()):
            event.acceptProposedAction()
            self.drop_overlay.show_for(self.current_connection.name)
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        event.acceptProposedAction()

    def dragLeaveEvent(self, event: object) -> None:
        self.drop_overlay.hide()

    def dropEvent(self, event: QDropEvent) -> None:
        self.drop_overlay.hide()
        mime = event.mimeData()
        if mime.hasUrls():
            sources = [url.toLocalFile() if url.isLocalFile() else url.toString() for url in mime.urls()]
        elif mime.hasText() and mime.text().strip():
            sources = [line.strip() for line in mime.text().splitlines() if line.strip()]
        else:
            sources = ["data:dropped-content"]
        event.acceptProposedAction()
        self.add_files(sources)

    # -- transfers ----------------------------------------------------------------------------------
    def toggle_pause(self) -> None:
        self.transfers_panel.toggle_pause()

    def _toggle_transfers(self) -> None:
        self._show_transfers(not self.transfers_panel.isVisible())

    def _show_transfers(self, visible: bool) -> None:
        if visible and not self.transfers_panel.isVisible():
            total = sum(self.right_splitter.sizes()) or self.height()
            self.transfers_panel.show()
            self.right_splitter.setSizes([total * 3 // 5, total * 2 // 5])
        elif not visible:
            self.transfers_panel.hide()
        self.show_transfers_action.setChecked(visible)

    def _on_bridge_transfer_changed(self, transfer: Transfer) -> None:
        if transfer.state is TransferState.FAILED and transfer.kind is TransferKind.DOWNLOAD:
            self.statusBar().showMessage(f"Could not download {transfer.name}: {transfer.message}", 10000)

    def _on_bridge_totals_changed(self, totals: Totals) -> None:
        self.pause_action.setText("Resume transfers" if totals.paused else "Pause transfers")
        if self._was_busy and not totals.busy:
            done = totals.finished - totals.failed
            text = f"Transfers finished: {done} done"
            if totals.failed:
                text += f", {totals.failed} failed (see Transfers)"
            self.statusBar().showMessage(text, 10000)
        self._was_busy = totals.busy

    # -- tray ---------------------------------------------------------------------------------------
    def attach_tray(self, tray: TrayController) -> None:
        """Let the tray follow the transfers and connections, and act on this window."""
        self.tray = tray
        self.keep_running_in_tray = tray.available

        self.notifier = Notifier(self.bridge, tray)

        def update(*_: object) -> None:
            connections = self.connection_model_connections()
            tray.update(self.service.transfers.totals(), connections)
            self.notifier.connections_shown(connections)

        self.bridge.totals_changed.connect(update)
        self.connection_model.dataChanged.connect(update)
        self.connection_model.modelReset.connect(update)
        tray.show_requested.connect(lambda: self.handle_instance_message([]))
        tray.pause_toggled.connect(self.toggle_pause)
        tray.quit_requested.connect(self.quit)
        tray.add_connection_requested.connect(self.accounts.add_action.trigger)
        update()

    # -- messages -------------------------------------------------------------------------------------
    def show_error(self, error: KiteError) -> None:
        log.info("shown to the user: %s: %s", error.title, error.message)
        action = "Change folder…" if error.title == "Folder not found" else None
        if isinstance(error, CloudConnectionError):
            connection = self.current_connection
            if connection is not None and connection.provider is not Provider.LOCAL:
                self.prompt_reconnect(connection, connection.account or connection.name)
                self.statusBar().showMessage(error.title, 8000)
                return
        self._banner_action = action
        self.banner.show_message(f"<b>{_escape(error.title)}</b>: {_escape(error.describe())}", action=action)
        self.statusBar().showMessage(error.title, 8000)

    def _on_banner_action_clicked(self) -> None:
        if self._banner_action == "Change folder…":
            self.banner.hide()
            self.change_folder()
        elif self._banner_action == "Reconnect":
            self.accounts.reconnect_current()

    def show_about(self) -> None:
        show_about(self)

    def open_log_folder(self) -> None:
        open_log_folder(self)

    def handle_instance_message(self, paths: list[str]) -> None:
        """Another launch of Kite handed over its arguments: come to the front and add its files."""
        self.showNormal()
        self.raise_()
        self.activateWindow()
        if paths:
            self.add_files(paths)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
