"""Take the README's screenshots of the real window on a virtual X screen.

    xvfb-run -a -s "-screen 0 1280x800x24" python docs/screenshots/make_screenshots.py

Runs the app on a throwaway HOME and profile with a few sample documents. To catch transfers mid-way, the
disk reads of this process are slowed down (a pause between 1 MiB chunks), as a slow network would be.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
os.environ["HOME"] = tempfile.mkdtemp(prefix="kite-shots-")
os.environ.setdefault("QT_QPA_PLATFORM", "xcb")

import qasync  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from kite_desktop.app import build_service  # noqa: E402
from kite_desktop.storage import files  # noqa: E402
from kite_desktop.ui.bridge import ServiceBridge  # noqa: E402
from kite_desktop.ui.main_window import MainWindow  # noqa: E402


def sample_files(root: Path) -> list[Path]:
    docs = root / "Documents to keep"
    (docs / "Taxes 2025").mkdir(parents=True)
    (docs / "Photos").mkdir()
    made = {
        docs / "Rental agreement.pdf": 412_000,
        docs / "Passport scan.jpg": 1_830_000,
        docs / "Taxes 2025" / "Receipts.xlsx": 58_000,
        docs / "Taxes 2025" / "Tax return.pdf": 925_000,
        docs / "Photos" / "Family 2024.jpg": 3_400_000,
        docs / "Notes.txt": 2_300,
        docs / "Car insurance.pdf": 260_000,
    }
    for path, size in made.items():
        path.write_bytes(os.urandom(size))
    big = root / "Scans"
    big.mkdir()
    for name in ("Archive 2019.zip", "Archive 2020.zip", "Archive 2021.zip", "Archive 2022.zip"):
        (big / name).write_bytes(os.urandom(24 * 1024 * 1024))
    return [docs, big]


def shoot(window: MainWindow, name: str) -> None:
    QApplication.processEvents()
    window.grab().save(str(HERE / name))
    print("wrote", HERE / name)


async def main() -> None:
    work = Path(os.environ["HOME"])
    service = build_service(work / "profile")
    window = MainWindow(service, ServiceBridge(service))
    window.resize(1180, 760)
    window.show()
    await window.start()
    await asyncio.sleep(0.3)
    shoot(window, "empty.png")

    docs, scans = sample_files(work)
    window.add_files([str(docs)])
    await service.transfers.wait_idle()
    await asyncio.sleep(0.5)
    window.transfers_panel.queue.clear_finished()
    window.transfers_panel.hide()
    window.table.selectRow(2)
    await asyncio.sleep(0.2)
    shoot(window, "documents.png")

    real_read = files.read_chunks

    def slow_read(fd, flag=None, chunk=files.CHUNK):
        for data in real_read(fd, flag, chunk):
            time.sleep(0.12)
            yield data

    files.read_chunks = slow_read  # type: ignore[assignment]
    window.add_files([str(scans), "https://example.invalid/shared-link.pdf"])
    await asyncio.sleep(1.0)
    queued = [t for t in service.transfers.items if t.state.value == "queued"]
    if queued:
        service.transfers.pause_items([queued[-1].id])  # one paused by hand, to show it
    await asyncio.sleep(0.3)
    shoot(window, "transfers.png")
    running = [t for t in service.transfers.items if t.state.active]
    service.transfers.pause_items([t.id for t in running[:2]])  # two paused by hand: the row says so
    await wait_until(lambda: sum(t.state.value == "paused" for t in service.transfers.items) == 2)
    window.transfers_panel.table.selectRow(0)
    await asyncio.sleep(0.3)
    shoot(window, "transfers-paused.png")
    files.read_chunks = real_read  # type: ignore[assignment]
    service.transfers.cancel_all()
    await service.transfers.wait_idle()
    window.transfers_panel.queue.clear_finished()
    window.settings_action.trigger()
    await asyncio.sleep(0.3)
    dialog = window.settings_dialog
    assert dialog is not None
    shoot(dialog, "settings.png")  # type: ignore[arg-type]
    dialog.reject()
    await accounts(window, service)
    await window.shutdown()
    await service.close()


async def wait_until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("screenshot scene did not settle")
        await asyncio.sleep(0.05)


async def accounts(window: MainWindow, service) -> None:
    """The connect dialog (waiting, error, success) and the reconnect prompt, against the local emulators."""
    import webbrowser

    from kite_desktop.core.models import Provider
    from tests.emulators.google import GoogleEmulator

    with GoogleEmulator() as google:
        os.environ.update(
            KITE_GOOGLE_API_ROOT=google.root_url,
            KITE_GOOGLE_AUTH_URI=google.auth_uri,
            KITE_GOOGLE_TOKEN_URI=google.token_uri,
            KITE_GOOGLE_CLIENT_ID="kite-test-client",
            KITE_GOOGLE_CLIENT_SECRET="kite-test-secret",
            OAUTHLIB_INSECURE_TRANSPORT="1",
        )
        os.environ.pop("KITE_MS_CLIENT_ID", None)
        os.environ["BROWSER"] = f"{sys.executable} -c pass %s"  # a browser that never comes back
        webbrowser._tryorder = None  # type: ignore[attr-defined]
        dialog = window.accounts.open_dialog(None)
        dialog.google_button.click()
        await wait_until(lambda: dialog.copy_button.isEnabled())
        await asyncio.sleep(0.3)
        dialog.grab().save(str(HERE / "connect-waiting.png"))
        dialog.cancel()

        dialog = window.accounts.open_dialog(None)
        dialog.onedrive_button.click()
        await wait_until(lambda: dialog.pages.currentIndex() == 2)
        dialog.grab().save(str(HERE / "connect-error.png"))
        dialog.reject()

        browser = Path(__file__).resolve().parents[2] / "tests" / "fake_browser.py"
        os.environ["BROWSER"] = f"{sys.executable} {browser} %s"
        webbrowser._tryorder = None  # type: ignore[attr-defined]
        dialog = window.accounts.open_dialog(None)
        dialog.google_button.click()
        await wait_until(lambda: dialog.pages.currentIndex() == 2)
        dialog.grab().save(str(HERE / "connect-success.png"))
        dialog.accept()
        await wait_until(lambda: window.connection_model.rowCount() == 2)
        await asyncio.sleep(0.5)

        config = service.settings.connections[-1]
        assert config.provider is Provider.GOOGLE_DRIVE
        google.revoke_all()
        google.expire_access_tokens()
        window.select_connection(config.id)
        window.refresh_current()
        await wait_until(lambda: window.banner.action.isVisible())
        await asyncio.sleep(0.3)
        shoot(window, "reconnect-prompt.png")


if __name__ == "__main__":
    app = QApplication(sys.argv)
    qasync.run(main())
