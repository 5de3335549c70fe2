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
    await asyncio.sleep(1.2)
    shoot(window, "transfers.png")
    files.read_chunks = real_read  # type: ignore[assignment]
    service.transfers.cancel_all()
    await service.transfers.wait_idle()
    await window.shutdown()
    await service.close()


if __name__ == "__main__":
    app = QApplication(sys.argv)
    qasync.run(main())
