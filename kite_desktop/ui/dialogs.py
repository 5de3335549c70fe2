"""Modal questions and the system's file choosers, behind one seam so tests can answer them."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from kite_desktop.core.models import Document


class Dialogs:
    """Every blocking dialog the window uses. Tests replace these static methods."""

    @staticmethod
    def confirm_delete(parent: QWidget, documents: list[Document], connection_name: str) -> bool:
        if len(documents) == 1:
            text = f"Delete “{documents[0].name}” from {connection_name}?"
        else:
            text = f"Delete {len(documents)} documents from {connection_name}?"
        box = QMessageBox(QMessageBox.Icon.Warning, "Delete documents", text, parent=parent)
        box.setInformativeText("This removes them from the storage, not only from this list. It cannot be undone.")
        delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return box.clickedButton() is delete

    @staticmethod
    def choose_files(parent: QWidget) -> list[str]:
        paths, _ = QFileDialog.getOpenFileNames(parent, "Add files to Kite")
        return paths

    @staticmethod
    def choose_folder(parent: QWidget, title: str = "Add a folder to Kite", start: str = "") -> str:
        return QFileDialog.getExistingDirectory(parent, title, start)

    @staticmethod
    def save_path(parent: QWidget, suggested: Path) -> Path | None:
        path, _ = QFileDialog.getSaveFileName(parent, "Save a copy as", str(suggested))
        return Path(path) if path else None

    @staticmethod
    def open_with_system(path: Path) -> bool:
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))

    @staticmethod
    def show_error(parent: QWidget, title: str, text: str) -> None:
        QMessageBox.warning(parent, title, text)
