"""Connecting accounts from the window: the dialog, the system browser (BROWSER), reconnect after revocation."""

from __future__ import annotations

import sys
import webbrowser
from pathlib import Path

import pytest
from guihelp import RunningApp, run, wait_for

from kite_desktop.auth.signin import SignInFlow
from kite_desktop.core.models import ConnectionStatus, Provider
from kite_desktop.core.transfers import TransferState
from tests.emulators.google import GoogleEmulator

FAKE_BROWSER = Path(__file__).resolve().parents[1] / "fake_browser.py"


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch):
    """Point webbrowser (through BROWSER, as a person could) at the stand-in browser."""
    monkeypatch.setenv("BROWSER", f"{sys.executable} {FAKE_BROWSER} %s")
    monkeypatch.setattr(webbrowser, "_tryorder", None)  # re-read BROWSER
    monkeypatch.setattr(webbrowser, "_browsers", {})


@pytest.fixture
def google(monkeypatch: pytest.MonkeyPatch):
    with GoogleEmulator() as emulator:
        for name, value in {
            "KITE_GOOGLE_API_ROOT": emulator.root_url,
            "KITE_GOOGLE_AUTH_URI": emulator.auth_uri,
            "KITE_GOOGLE_TOKEN_URI": emulator.token_uri,
            "KITE_GOOGLE_CLIENT_ID": "kite-test-client",
            "KITE_GOOGLE_CLIENT_SECRET": "kite-test-secret",
            "OAUTHLIB_INSECURE_TRANSPORT": "1",
        }.items():
            monkeypatch.setenv(name, value)
        yield emulator


def test_adding_a_google_account_through_the_browser(running: RunningApp, loop, google, browser):
    window = running.window
    dialog = window.accounts.open_dialog(None)
    dialog.google_button.click()
    run(loop, wait_for(lambda: dialog.pages.currentIndex() == 2, what="the dialog's result page"))
    assert "Connected" in dialog.done_label.text() and "alice@example.com" in dialog.done_label.text()
    run(loop, wait_for(lambda: window.connection_model.rowCount() == 2, what="the new connection listed"))
    assert window.current_connection.provider is Provider.GOOGLE_DRIVE
    assert window.current_connection.account == "alice@example.com"
    assert not dialog.flow.listener.listening, "the loopback listener is closed after the sign-in"

    again = window.accounts.open_dialog(None)  # the same account twice updates, not duplicates
    again.google_button.click()
    run(loop, wait_for(lambda: again.pages.currentIndex() == 2))
    assert window.connection_model.rowCount() == 2


def test_cancel_while_waiting_for_the_browser(running: RunningApp, loop, google, monkeypatch):
    monkeypatch.setenv("BROWSER", f"{sys.executable} -c pass %s")  # a browser that never comes back
    monkeypatch.setattr(webbrowser, "_tryorder", None)
    monkeypatch.setattr(webbrowser, "_browsers", {})
    dialog = running.window.accounts.open_dialog(None)
    dialog.google_button.click()
    run(loop, wait_for(lambda: dialog.copy_button.isEnabled(), what="the link to copy"))
    dialog.copy_link()
    from PySide6.QtGui import QGuiApplication

    assert QGuiApplication.clipboard().text().startswith(google.auth_uri)
    dialog.cancel_button.click()
    run(loop, wait_for(lambda: dialog.task.done(), what="the flow to stop"))
    assert not dialog.isVisible() and not dialog.flow.listener.listening
    assert running.window.connection_model.rowCount() == 1


def test_missing_app_registration_is_explained(running: RunningApp, loop, monkeypatch):
    monkeypatch.delenv("KITE_MS_CLIENT_ID", raising=False)
    dialog = running.window.accounts.open_dialog(None)
    dialog.onedrive_button.click()
    run(loop, wait_for(lambda: dialog.pages.currentIndex() == 2))
    assert "KITE_MS_CLIENT_ID" in dialog.done_label.text() and dialog.retry_button.isVisible()


def test_reconnect_from_the_prompt_resumes_the_paused_upload(
    running: RunningApp, loop, google, browser, tmp_path: Path
):
    window, service = running.window, running.service
    config = run(
        loop,
        service.add_cloud_connection(
            Provider.GOOGLE_DRIVE, "alice@example.com", google.issue_tokens(), "alice@example.com"
        ),
    )
    run(loop, wait_for(lambda: window.connection_model.rowCount() == 2))
    window.select_connection(config.id)
    run(loop, wait_for(lambda: window.current_connection.status is ConnectionStatus.CONNECTED))
    google.revoke_all()
    google.expire_access_tokens()
    source = tmp_path / "scan.pdf"
    source.write_bytes(b"%PDF scan")
    window.add_files([str(source)])
    run(
        loop,
        wait_for(
            lambda: any(t.state is TransferState.PAUSED for t in service.transfers.items),
            what="the upload paused, not failed",
        ),
    )
    run(loop, wait_for(lambda: window.banner.action.isVisible(), what="the reconnect prompt"))
    assert window.banner.action.text() == "Reconnect alice@example.com"

    window.banner.action.click()
    dialog = window.accounts.dialog
    run(loop, wait_for(lambda: dialog is not None and dialog.pages.currentIndex() == 2, what="reconnected"))
    run(loop, wait_for(lambda: service.transfers.items[-1].state is TransferState.DONE, what="the upload done"))
    assert len(google.files_named("scan.pdf")) == 1
    assert service.connection(config.id).status is ConnectionStatus.CONNECTED


def test_reconnecting_with_another_account_is_refused(running: RunningApp, loop, google, browser):
    service = running.service
    config = run(
        loop,
        service.add_cloud_connection(
            Provider.GOOGLE_DRIVE, "alice@example.com", google.issue_tokens(), "alice@example.com"
        ),
    )
    run(loop, wait_for(lambda: running.window.connection_model.rowCount() == 2))
    running.window.select_connection(config.id)
    google.sign_in_as("mallory@example.com")
    dialog = running.window.accounts.open_dialog(running.window.current_connection)
    run(loop, wait_for(lambda: dialog.pages.currentIndex() == 2))
    assert "Different account" in dialog.done_label.text() and "mallory@example.com" in dialog.done_label.text()


def test_dialog_flow_objects_are_sign_in_flows():
    from kite_desktop.ui.connect_dialog import default_flow

    assert isinstance(default_flow(Provider.GOOGLE_DRIVE), SignInFlow)


def test_without_a_keyring_the_sign_in_works_for_this_run_and_says_so(app_factory, loop, google, browser, monkeypatch):
    import keyring
    import keyring.errors

    from kite_desktop.auth.keyring_store import KeyringTokenStore
    from tests.tokenstore.test_keyring_store import FailingKeyring

    previous = keyring.get_keyring()
    keyring.set_keyring(FailingKeyring(keyring.errors.NoKeyringError("No recommended backend was available.")))
    try:
        running = app_factory(tokens=KeyringTokenStore())
        dialog = running.window.accounts.open_dialog(None)
        dialog.google_button.click()
        run(loop, wait_for(lambda: dialog.pages.currentIndex() == 2))
        assert "Connected" in dialog.done_label.text() and "kept in memory" in dialog.done_label.text()
        run(loop, wait_for(lambda: "Keyring unavailable" in running.window.banner.text.text(), what="the banner"))
        run(loop, wait_for(lambda: running.window.current_connection.provider is Provider.GOOGLE_DRIVE))
    finally:
        keyring.set_keyring(previous)
