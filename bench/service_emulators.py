"""Shared by the service-level benchmarks: a cloud emulator in a child process, seeded and emptied on request;
the real ``KiteService`` built against it under a qasync loop; and the machine's description.

``bench.event_loop_stalls`` and ``bench.transfer_concurrency`` use it. The emulator runs in a process of its own
(it holds every uploaded byte in memory, and its CPU must not be counted as the client's); the parent talks to it
over a pipe:

* ``credentials()``: fresh tokens for the signed-in test account, in the form the backend takes;
* ``seed(count, size)``: ``count`` documents of ``size`` bytes put straight into the emulator's store, in the
  folder the app lists (Drive: ``Kite`` in My Drive, created by the app's OAuth client; OneDrive: the app folder);
* ``clear()``: every document in that folder deleted and the finished upload sessions' bytes freed.

``env`` holds the environment a process needs for the backends to reach the emulator (the same variables the
tests set: ``KITE_GOOGLE_API_ROOT``, or ``KITE_GRAPH_URL``/``KITE_MS_AUTHORITY``/``KITE_CA_BUNDLE``/
``KITE_MS_CLIENT_ID``).
"""

from __future__ import annotations

import importlib.metadata
import multiprocessing
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from bench.google_drive_transfer import end_process, source_version
from bench.google_drive_transfer import machine as base_machine

PROVIDERS = ("google", "onedrive")
DRIVE_FOLDER = "application/vnd.google-apps.folder"
_spawn = multiprocessing.get_context("spawn")


# -- inside the emulator's process ------------------------------------------------------------------------
class _Google:
    def __init__(self, latency: float) -> None:
        from tests.emulators.google import GoogleEmulator

        self.emulator = GoogleEmulator().start()
        if latency > 0:  # every request waits this long before it is read: a stand-in for a WAN round trip
            self.emulator.faults.add("*", r".", delay=latency, times=0)

    def env(self) -> dict[str, str]:
        return {"KITE_GOOGLE_API_ROOT": self.emulator.root_url}

    def credentials(self) -> dict[str, Any]:
        return dict(self.emulator.issue_tokens())

    def _folder(self) -> str:
        """The id of the ``Kite`` folder in the test account's My Drive, created (by the app's client) if missing."""
        emulator = self.emulator
        with emulator.lock:
            drive = emulator.service.drive()
            for record in drive.files.values():
                if record.name == "Kite" and record.mime_type == DRIVE_FOLDER and drive.root_id in record.parents:
                    return str(record.id)
            return str(emulator.add_file("Kite", None, ["root"]).id)

    def seed(self, count: int, size: int) -> int:
        from tests.emulators.google_drive import DriveFile, new_id

        folder = self._folder()
        emulator = self.emulator
        with emulator.lock:
            drive = emulator.service.drive()
            now = emulator.now()
            owner = drive.account.email
            for index in range(count):
                data = f"seeded document {index:06d}\n".encode().ljust(size, b".")[:size]
                record = DriveFile(new_id(), f"seeded-{index:06d}.txt", "text/plain", [folder], data, owner, now, now)
                # As add_file() does, without its per-call parent checks and copy: the app's OAuth client made it.
                record.created_by = _google_client_id()
                drive.files[record.id] = record
        return count

    def clear(self) -> None:
        emulator = self.emulator
        with emulator.lock:
            drive = emulator.service.drive()
            doomed = [key for key, record in drive.files.items() if record.mime_type != DRIVE_FOLDER]
            for key in doomed:
                del drive.files[key]
            emulator.service.sessions.clear()  # finished sessions keep every received byte
            emulator.server.requests.clear()

    def stop(self) -> None:
        self.emulator.stop()


def _google_client_id() -> str:
    from tests.emulators.google_oauth import DEFAULT_CLIENT_ID

    return str(DEFAULT_CLIENT_ID)


class _Microsoft:
    def __init__(self, latency: float) -> None:
        from tests.emulators.microsoft import MicrosoftEmulators

        self.ms = MicrosoftEmulators().start()
        self.ms.graph.approot()
        if latency > 0:
            self.ms.graph.server.faults.add("*", r".", delay=latency, times=0)
            self.ms.graph.download_server.faults.add("*", r".", delay=latency, times=0)

    def env(self) -> dict[str, str]:
        return dict(self.ms.env())

    def credentials(self) -> dict[str, Any]:
        from bench.onedrive_transfer import _credentials

        return _credentials(self.ms)

    def seed(self, count: int, size: int) -> int:
        from tests.emulators.ms_graph import DriveItem

        graph = self.ms.graph
        with graph.lock:
            drive = graph.drive()
            folder = drive.ensure_approot()
            for index in range(count):
                data = f"seeded document {index:06d}\n".encode().ljust(size, b".")[:size]
                # As Drive.write_file() does, without its name-conflict scan over every item (quadratic here).
                item = DriveItem(drive.new_id(), f"seeded-{index:06d}.txt", folder.id, False)
                item.set_data(data)
                drive.items[item.id] = item
        return count

    def clear(self) -> None:
        from bench.onedrive_transfer import _forget

        _forget(self.ms, delete_files=True)

    def stop(self) -> None:
        self.ms.stop()


def _serve(conn: Any, provider: str, latency: float) -> None:
    """Child process: run the emulator and answer the parent until it says stop or goes away."""
    emulator: _Google | _Microsoft = _Google(latency) if provider == "google" else _Microsoft(latency)
    try:
        conn.send({"env": emulator.env()})
        while True:
            try:
                message, *args = conn.recv()
            except (EOFError, OSError):  # the parent is gone
                break
            if message == "credentials":
                conn.send(emulator.credentials())
            elif message == "seed":
                conn.send(emulator.seed(*args))
            elif message == "clear":
                emulator.clear()
                conn.send("ok")
            else:
                break
    finally:
        emulator.stop()


# -- in the benchmark's process ---------------------------------------------------------------------------
class ServiceEmulator:
    """The Google (``provider="google"``) or Microsoft (``"onedrive"``) emulator in a child process.

    ``latency`` (seconds) makes the emulator hold every request that long before reading it. The child is
    stopped on exit however the ``with`` block ends, and killed if it does not stop; it also exits by itself when
    the pipe breaks (the parent died).
    """

    def __init__(self, provider: str, latency: float = 0.0):
        if provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {PROVIDERS}")
        self.provider = provider
        self.latency = latency
        self.env: dict[str, str] = {}
        self._conn: Any = None
        self._process: Any = None

    def __enter__(self) -> ServiceEmulator:
        self._conn, child = _spawn.Pipe()
        self._process = _spawn.Process(
            target=_serve, args=(child, self.provider, self.latency), name=f"{self.provider}-emulator", daemon=True
        )
        self._process.start()
        child.close()
        try:
            self.env = self._started()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _started(self) -> dict[str, str]:
        if not self._conn.poll(120):
            raise RuntimeError(f"the {self.provider} emulator did not start within 120 s")
        return dict(self._conn.recv()["env"])

    def _ask(self, *message: Any, timeout: float = 600) -> Any:
        self._conn.send(message)
        if not self._conn.poll(timeout):
            raise RuntimeError(f"the {self.provider} emulator did not answer {message[0]!r}")
        return self._conn.recv()

    @property
    def pid(self) -> int:
        return int(self._process.pid)

    def credentials(self) -> dict[str, Any]:
        return dict(self._ask("credentials"))

    def seed(self, count: int, size: int = 64) -> int:
        return int(self._ask("seed", count, size)) if count > 0 else 0

    def clear(self) -> None:
        self._ask("clear")

    def __exit__(self, *exc: object) -> None:
        end_process(self._conn, self._process, ("stop",))


# -- shared by the benches that drive the service ---------------------------------------------------------
def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def upload_files(workdir: Path, count: int, size_mib: int) -> list[Path]:
    """``count`` files of random bytes to upload, written once for every run of a bench."""
    from bench.google_drive_transfer import make_file

    say(f"writing {count} test files of {size_mib} MiB …")
    paths = [workdir / f"upload-{i}-{uuid.uuid4().hex[:6]}.bin" for i in range(count)]
    for path in paths:
        make_file(path, size_mib * 1024 * 1024)
    return paths


# -- the app's service under qasync, in a measuring process -----------------------------------------------
def qt_application() -> Any:
    """The process's ``QApplication`` (``QT_QPA_PLATFORM`` defaults to offscreen here) and a qasync loop on it."""
    import asyncio

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("QT_API", "pyside6")
    import qasync
    from PySide6.QtCore import qInstallMessageHandler
    from PySide6.QtWidgets import QApplication

    def quiet(kind: Any, context: Any, message: str) -> None:
        if "does not support propagateSizeHints" not in message and "does not support raise" not in message:
            print(message, file=sys.stderr)

    qInstallMessageHandler(quiet)  # the offscreen platform says, for every window, what it cannot do
    app = QApplication.instance() or QApplication(["kite-bench"])
    loop = qasync.QEventLoop(app, already_running=False)
    asyncio.set_event_loop(loop)
    return app, loop


def provider_of(name: str) -> Any:
    from kite_desktop.core.models import Provider

    return Provider.GOOGLE_DRIVE if name == "google" else Provider.ONEDRIVE


async def open_service(profile: Path, provider: str, credentials: dict[str, Any]) -> tuple[Any, str]:
    """``app.build_service`` on a throwaway profile with an in-memory token store, plus one cloud connection."""
    import asyncio

    from kite_desktop.app import build_service
    from kite_desktop.core.tokens import MemoryTokenStore

    service = await asyncio.to_thread(build_service, profile, MemoryTokenStore())
    config = await service.add_cloud_connection(provider_of(provider), f"bench {provider}", credentials, "")
    return service, config.id


def isolate_environment(workdir: Path, env: dict[str, str]) -> None:
    """In a measuring process: the emulator's variables, and HOME (and XDG dirs) inside the work directory, so
    the service's default Local folder is not created in the real home."""
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(env)
    os.environ["HOME"] = str(home)
    for name in ("XDG_DOCUMENTS_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        os.environ.pop(name, None)


# -- the machine --------------------------------------------------------------------------------------------
def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    """The Drive bench's machine description, plus Qt, qasync, the display platform and the commit measured."""
    host = base_machine()

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    for name in ("PySide6-Essentials", "qasync", "msal"):
        host["packages"][name] = version(name)
    try:
        from PySide6 import QtCore

        host["qt"] = QtCore.qVersion()
    except ImportError:
        host["qt"] = "not installed"
    host["qt_qpa_platform"] = os.environ.get("QT_QPA_PLATFORM", "offscreen")
    host.update(source_version())
    return host
