"""The window's actions, menus and toolbar, and the About box: kept apart from the window's behaviour."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLineEdit, QSizePolicy, QStyle, QToolBar, QWidget

from kite_desktop import __version__, desktop_entry
from kite_desktop.ui.dialogs import Dialogs

if TYPE_CHECKING:
    from kite_desktop.ui.main_window import MainWindow


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def make_action(
    window: MainWindow,
    text: str,
    slot: object,
    shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None,
    icon: QStyle.StandardPixmap | None = None,
    tip: str = "",
) -> QAction:
    action = QAction(text, window)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    if icon is not None:
        action.setIcon(window.style().standardIcon(icon))
    if tip:
        action.setToolTip(tip)
        action.setStatusTip(tip)
    action.triggered.connect(slot)
    window.addAction(action)
    return action


def build_actions(window: MainWindow) -> None:
    pixmap = QStyle.StandardPixmap
    window.add_files_action = make_action(
        window,
        "Add files…",
        window.choose_files,
        "Ctrl+U",
        pixmap.SP_FileIcon,
        "Upload files to the selected connection (Ctrl+U)",
    )
    window.add_folder_action = make_action(
        window,
        "Add folder…",
        window.choose_folder,
        "Ctrl+Shift+U",
        pixmap.SP_DirIcon,
        "Upload a folder with its subfolders (Ctrl+Shift+U)",
    )
    window.open_action = make_action(
        window,
        "Open",
        window.open_selected,
        QKeySequence.StandardKey.Open,
        pixmap.SP_DialogOpenButton,
        "Open with the default application (Ctrl+O)",
    )
    window.save_as_action = make_action(
        window,
        "Save as…",
        window.save_selected,
        "Ctrl+Shift+S",
        pixmap.SP_DialogSaveButton,
        "Save a copy on this computer (Ctrl+Shift+S)",
    )
    window.delete_action = make_action(
        window,
        "Delete",
        window.delete_selected,
        QKeySequence.StandardKey.Delete,
        pixmap.SP_TrashIcon,
        "Delete from the storage (Delete)",
    )
    window.refresh_action = make_action(
        window,
        "Refresh",
        window.refresh_current,
        "F5",
        pixmap.SP_BrowserReload,
        "Read the connection's documents again (F5)",
    )
    window.filter_action = make_action(window, "Filter", window.focus_filter, QKeySequence.StandardKey.Find)
    window.change_folder_action = make_action(window, "Change folder…", window.change_folder)
    window.pause_action = make_action(window, "Pause transfers", window.toggle_pause, "Ctrl+P")
    window.show_transfers_action = make_action(window, "Transfers", window._toggle_transfers, "Ctrl+T")
    window.show_transfers_action.setCheckable(True)
    window.quit_action = make_action(window, "Quit", window.quit, QKeySequence.StandardKey.Quit)
    window.settings_action = make_action(
        window, "Settings…", lambda: show_settings(window), "Ctrl+,", tip="Transfers, limits, start-up (Ctrl+,)"
    )
    window.about_action = make_action(window, "About Kite", window.show_about)
    window.log_folder_action = make_action(window, "Open log folder", window.open_log_folder)
    window._update_actions()


def build_menus_and_toolbar(window: MainWindow) -> None:
    menu = window.menuBar()
    file_menu = menu.addMenu("&File")
    file_menu.addActions([window.add_files_action, window.add_folder_action])
    file_menu.addSeparator()
    file_menu.addAction(window.accounts.add_action)
    file_menu.addSeparator()
    file_menu.addAction(window.settings_action)
    file_menu.addAction(window.quit_action)
    documents_menu = menu.addMenu("&Documents")
    documents_menu.addActions([window.open_action, window.save_as_action, window.delete_action])
    documents_menu.addSeparator()
    documents_menu.addActions([window.refresh_action, window.filter_action])
    connection_menu = menu.addMenu("&Connection")
    connection_menu.addAction(window.accounts.add_action)
    connection_menu.addAction(window.accounts.reconnect_action)
    connection_menu.addAction(window.change_folder_action)
    connection_menu.addSeparator()
    connection_menu.addAction(window.accounts.remove_action)
    transfers_menu = menu.addMenu("&Transfers")
    transfers_menu.addActions([window.pause_action, window.show_transfers_action])
    help_menu = menu.addMenu("&Help")
    help_menu.addAction(window.log_folder_action)
    if desktop_entry.supported():
        install = make_action(
            window,
            "Install desktop entry",
            lambda: install_desktop_entry(window),
            tip="Add Kite to your desktop's applications menu, with its icon",
        )
        install.setObjectName("installDesktopEntryAction")
        help_menu.addAction(install)
    help_menu.addAction(window.about_action)

    toolbar = QToolBar("Main", window)
    toolbar.setObjectName("mainToolbar")
    toolbar.setMovable(False)
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    toolbar.addActions([window.add_files_action, window.add_folder_action])
    toolbar.addSeparator()
    toolbar.addActions([window.open_action, window.save_as_action, window.delete_action])
    toolbar.addSeparator()
    toolbar.addAction(window.refresh_action)
    spacer = QWidget(toolbar)
    spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    toolbar.addWidget(spacer)
    window.filter_edit = QLineEdit(toolbar)
    window.filter_edit.setObjectName("filterEdit")
    window.filter_edit.setPlaceholderText("Filter documents (Ctrl+F)")
    window.filter_edit.setClearButtonEnabled(True)
    window.filter_edit.setMinimumWidth(240)
    window.filter_edit.textChanged.connect(window._on_filter_edit_text_changed)
    toolbar.addWidget(window.filter_edit)
    window.addToolBar(toolbar)


def show_about(window: MainWindow) -> None:
    from importlib.metadata import PackageNotFoundError, version

    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import qVersion
    from PySide6.QtWidgets import QMessageBox

    def of(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    libraries = ", ".join(
        f"{name} {of(name)}"
        for name in ("google-api-python-client", "google-auth-oauthlib", "msal", "httpx", "keyring", "qasync")
    )
    profile = window.service.profile
    QMessageBox.about(
        window,
        "About Kite",
        f"<h3>Kite Desktop {__version__}</h3><p>Your documents, in storage you own.</p>"
        f"<p>Qt {qVersion()} · PySide6 {pyside_version}<br>{_escape(libraries)}</p>"
        f"<p>Profile: {_escape(str(profile.root))}<br>Logs: {_escape(str(profile.log_dir))}</p>",
    )


def show_settings(window: MainWindow) -> None:
    from kite_desktop.ui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(window.service, window.keep_running_in_tray, window)
    window.settings_dialog = dialog
    dialog.open()


def open_log_folder(window: MainWindow) -> None:
    Dialogs.open_with_system(window.service.profile.log_dir)


def install_desktop_entry(window: MainWindow) -> None:
    """Help → Install desktop entry: the files are written in a worker thread; a failure shows as any other
    error of the window (its banner), success in the status bar."""

    async def install() -> None:
        import asyncio

        await asyncio.to_thread(desktop_entry.install_desktop_entry)
        window.statusBar().showMessage(
            f"Kite is now in your applications menu ({desktop_entry.desktop_file_path()}).", 10000
        )

    window.tasks.run(install(), name="install-desktop-entry")
