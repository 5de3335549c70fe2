"""The connect-account dialog: choose a provider, finish in the system browser, see which account connected.

The app never shows a web view. While the browser is open the dialog says so, with Cancel and Copy link
(for when no browser opens). The flow's coroutines run on the qasync loop; nothing here blocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from kite_desktop.auth.loopback import SignInCancelled
from kite_desktop.auth.signin import SignIn, SignInFlow, open_browser
from kite_desktop.core.errors import KiteError
from kite_desktop.core.models import ConnectionConfig, Provider
from kite_desktop.core.service import KiteService
from kite_desktop.ui import icons

FlowFactory = Callable[[Provider], SignInFlow]


def default_flow(provider: Provider) -> SignInFlow:
    if provider is Provider.GOOGLE_DRIVE:
        from kite_desktop.auth.google_signin import GoogleSignIn

        return GoogleSignIn()
    from kite_desktop.auth.microsoft_signin import MicrosoftSignIn

    return MicrosoftSignIn()


class ConnectDialog(QDialog):
    """Adds a cloud account, or reconnects an existing connection when ``reconnect`` is given."""

    connected = Signal(object)

    def __init__(
        self,
        service: KiteService,
        parent: QWidget | None = None,
        *,
        flow_factory: FlowFactory = default_flow,
        reconnect: ConnectionConfig | None = None,
    ):
        super().__init__(parent)
        self.service = service
        self.flow_factory = flow_factory
        self.reconnect = reconnect
        self.flow: SignInFlow | None = None
        self.task: asyncio.Task[None] | None = None
        self.result_config: ConnectionConfig | None = None
        self.setWindowTitle("Reconnect account" if reconnect else "Add connection")
        self.setMinimumWidth(460)
        self.pages = QStackedWidget(self)
        self.pages.addWidget(self._choose_page())
        self.pages.addWidget(self._waiting_page())
        self.pages.addWidget(self._done_page())
        layout = QVBoxLayout(self)
        layout.addWidget(self.pages)
        if reconnect is not None:
            self.choose(reconnect.provider)

    # -- pages -------------------------------------------------------------------------------------------------
    def _choose_page(self) -> QWidget:
        page = QWidget(self)
        title = QLabel(
            "<h3>Connect a cloud account</h3>Kite opens your browser to sign in; your password never "
            "passes through Kite.",
            page,
        )
        title.setWordWrap(True)
        self.google_button = QPushButton(icons.icon("provider-google_drive"), "  Google Drive", page)
        self.onedrive_button = QPushButton(icons.icon("provider-onedrive"), "  OneDrive", page)
        for button in (self.google_button, self.onedrive_button):
            button.setMinimumHeight(44)
        self.google_button.clicked.connect(lambda: self.choose(Provider.GOOGLE_DRIVE))
        self.onedrive_button.clicked.connect(lambda: self.choose(Provider.ONEDRIVE))
        cancel = QPushButton("Cancel", page)
        cancel.clicked.connect(self.reject)
        layout = QVBoxLayout(page)
        layout.addWidget(title)
        layout.addSpacing(8)
        layout.addWidget(self.google_button)
        layout.addWidget(self.onedrive_button)
        layout.addStretch(1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(cancel)
        layout.addLayout(row)
        return page

    def _waiting_page(self) -> QWidget:
        page = QWidget(self)
        self.waiting_label = QLabel("Waiting for you to finish in the browser…", page)
        self.waiting_label.setWordWrap(True)
        font = self.waiting_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.2)
        self.waiting_label.setFont(font)
        self.waiting_detail = QLabel("", page)
        self.waiting_detail.setWordWrap(True)
        self.copy_button = QPushButton("Copy link", page)
        self.copy_button.setToolTip("Copy the sign-in address, to open it in a browser yourself")
        self.copy_button.clicked.connect(self.copy_link)
        self.cancel_button = QPushButton("Cancel", page)
        self.cancel_button.clicked.connect(self.cancel)
        layout = QVBoxLayout(page)
        layout.addWidget(self.waiting_label)
        layout.addWidget(self.waiting_detail)
        layout.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(self.copy_button)
        row.addStretch(1)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        return page

    def _done_page(self) -> QWidget:
        page = QWidget(self)
        self.done_label = QLabel("", page)
        self.done_label.setWordWrap(True)
        self.done_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.retry_button = QPushButton("Try again", page)
        self.retry_button.clicked.connect(self._on_retry_button_clicked)
        self.close_button = QPushButton("Close", page)
        self.close_button.clicked.connect(self._on_close_button_clicked)
        layout = QVBoxLayout(page)
        layout.addWidget(self.done_label)
        layout.addStretch(1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.retry_button)
        row.addWidget(self.close_button)
        layout.addLayout(row)
        return page

    # -- the flow ----------------------------------------------------------------------------------------------
    def choose(self, provider: Provider) -> None:
        self.provider = provider
        self.pages.setCurrentIndex(1)
        self.waiting_label.setText(f"Waiting for you to finish in the browser… ({provider.label})")
        self.waiting_detail.setText("Kite is opening your browser.")
        self.copy_button.setEnabled(False)
        self.task = asyncio.get_event_loop().create_task(self._connect(provider))

    async def _connect(self, provider: Provider) -> None:
        self.flow = flow = self.flow_factory(provider)
        try:
            url = await flow.start()
            self.copy_button.setEnabled(True)
            if await open_browser(url):
                self.waiting_detail.setText("Sign in and allow Kite access in the browser window that opened.")
            else:
                self.waiting_detail.setText(
                    "Kite could not open a browser. Use Copy link and open the address in a browser yourself."
                )
            signed_in = await flow.finish()
            config = await self._save(signed_in)
        except SignInCancelled as exc:
            if not self.isVisible():
                return
            self._show_result(f"<b>{exc.message}</b>", ok=False)
            return
        except KiteError as exc:
            self._show_result(f"<b>{exc.title}</b><p>{exc.message}</p><p>{exc.hint}</p>", ok=False)
            return
        except Exception as exc:  # a library's own error (network, TLS, OAuth): never leave the dialog waiting
            flow.cancel()
            self._show_result(
                f"<b>Sign-in failed</b><p>{type(exc).__name__}: {exc}</p><p>Check the internet "
                "connection and try again.</p>",
                ok=False,
            )
            return
        self.result_config = config
        problem = getattr(self.service.token_store, "problem", None)
        name = f"{signed_in.display_name} ({signed_in.account})" if signed_in.display_name else signed_in.account
        note = f"<p><i>{problem} Your sign-in is kept in memory until Kite quits.</i></p>" if problem else ""
        self._show_result(f"<b>Connected</b><p>{provider.label}: {name}</p>{note}", ok=True)
        self.connected.emit(config)

    async def _save(self, signed_in: SignIn) -> ConnectionConfig:
        if self.reconnect is not None:
            return await self.service.reconnect(self.reconnect.id, signed_in)
        return await self.service.connect_account(signed_in)

    def _show_result(self, text: str, ok: bool) -> None:
        self.done_label.setText(text)
        self.retry_button.setVisible(not ok)
        self.close_button.setText("Done" if ok else "Close")
        self.pages.setCurrentIndex(2)

    # -- buttons ---------------------------------------------------------------------------------------------
    def copy_link(self) -> None:
        if self.flow is not None and self.flow.url:
            QGuiApplication.clipboard().setText(self.flow.url)
            self.waiting_detail.setText("The sign-in address is on the clipboard. Paste it into a browser.")

    def cancel(self) -> None:
        if self.flow is not None:
            self.flow.cancel()
        self.reject()

    def reject(self) -> None:
        if self.flow is not None:
            self.flow.cancel()
        super().reject()

    def _on_retry_button_clicked(self) -> None:
        if self.reconnect is not None:
            self.choose(self.reconnect.provider)
        else:
            self.pages.setCurrentIndex(0)

    def _on_close_button_clicked(self) -> None:
        if self.result_config is not None:
            self.accept()
        else:
            self.reject()
