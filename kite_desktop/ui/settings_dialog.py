"""Settings: how many transfers at once, bandwidth limits, name conflicts, starting in the tray or at login.

Applied on OK: the running queue takes the new numbers at once and the settings file is written. The same
values live in settings.json for people who prefer a text editor.
"""

from __future__ import annotations

import asyncio

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from kite_desktop import desktop_entry
from kite_desktop.core.errors import KiteError
from kite_desktop.core.service import KiteService

POLICIES = (
    ("rename", "Keep both (the new one gets “ (1)”)"),
    ("replace", "Replace the stored document"),
    ("skip", "Skip the new file"),
)
MAX_LIMIT_KIB = 1024 * 1024  # 1 GiB/s: beyond any link a limit is meant for


def limit_box(parent: QWidget, value: int) -> QSpinBox:
    box = QSpinBox(parent)
    box.setRange(0, MAX_LIMIT_KIB)
    box.setSingleStep(256)
    box.setSuffix(" KiB/s")
    box.setSpecialValueText("No limit")
    box.setValue(value)
    box.setAccelerated(True)
    return box


class SettingsDialog(QDialog):
    def __init__(self, service: KiteService, tray_available: bool, parent: QWidget | None = None):
        super().__init__(parent)
        self.service = service
        self.setWindowTitle("Kite settings")
        self.setObjectName("settingsDialog")
        settings = service.settings

        self.concurrency = QSpinBox(self)
        self.concurrency.setRange(1, 8)
        self.concurrency.setValue(settings.concurrent_transfers)
        self.concurrency.setToolTip("More at once rarely helps on a home connection; see docs/performance.md.")
        self.upload_limit = limit_box(self, settings.upload_limit_kib)
        self.download_limit = limit_box(self, settings.download_limit_kib)
        self.conflict = QComboBox(self)
        for value, label in POLICIES:
            self.conflict.addItem(label, value)
        self.conflict.setCurrentIndex([v for v, _ in POLICIES].index(settings.conflict_policy))
        self.start_minimised = QCheckBox("Start in the tray, without the window", self)
        self.start_minimised.setChecked(settings.start_minimised)
        self.start_minimised.setEnabled(tray_available)
        if not tray_available:
            self.start_minimised.setToolTip("This desktop shows no tray icons, so the window always opens.")
        self.start_at_login = QCheckBox("Start Kite when I log in", self)
        self.start_at_login.setChecked(desktop_entry.autostart_enabled())
        self.start_at_login.setEnabled(desktop_entry.supported())
        self.error = QLabel(self)
        self.error.setObjectName("settingsError")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b00020;")
        self.error.hide()

        form = QFormLayout()
        form.addRow("&Transfers at once:", self.concurrency)
        form.addRow("&Upload limit:", self.upload_limit)
        form.addRow("&Download limit:", self.download_limit)
        form.addRow("When a &name exists:", self.conflict)
        form.addRow("", self.start_minimised)
        form.addRow("", self.start_at_login)
        for label, box in (("upload", self.upload_limit), ("download", self.download_limit)):
            box.setAccessibleName(f"{label.capitalize()} limit")
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, parent=self
        )
        self.buttons.accepted.connect(self._on_ok)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self._task: asyncio.Task[None] | None = None

    def _on_ok(self) -> None:
        self.buttons.setEnabled(False)
        self._task = asyncio.get_running_loop().create_task(self.apply())

    async def apply(self) -> None:
        """Save and apply; on a problem (autostart folder not writable) say so and stay open."""
        settings = self.service.settings
        settings.concurrent_transfers = self.concurrency.value()
        settings.upload_limit_kib = self.upload_limit.value()
        settings.download_limit_kib = self.download_limit.value()
        settings.conflict_policy = str(self.conflict.currentData())
        settings.start_minimised = self.start_minimised.isChecked()
        settings.start_at_login = self.start_at_login.isChecked()
        try:
            await self.service.save_settings()
            if self.start_at_login.isEnabled() and self.start_at_login.isChecked() != desktop_entry.autostart_enabled():
                await asyncio.to_thread(desktop_entry.set_autostart, self.start_at_login.isChecked())
        except (KiteError, OSError) as exc:
            text = exc.describe() if isinstance(exc, KiteError) else str(exc)
            self.error.setText(f"Not everything could be saved: {text}")
            self.error.show()
            self.buttons.setEnabled(True)
            return
        self.accept()
