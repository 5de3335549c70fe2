"""One window per profile: a second launch hands its arguments to the first and exits.

A QLockFile in the profile (stale locks of crashed processes are taken over) decides who is first; the
first listens on a QLocalServer named after the profile; later launches send it their paths as JSON.
"""

from __future__ import annotations

import hashlib
import json
import logging

from PySide6.QtCore import QLockFile, QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from kite_desktop.core.profile import Profile

log = logging.getLogger(__name__)
TIMEOUT_MS = 2000


def server_name(profile: Profile) -> str:
    digest = hashlib.sha256(str(profile.root).encode()).hexdigest()[:16]
    return f"kite-desktop-{digest}"


class SingleInstance(QObject):
    message_received = Signal(list)

    def __init__(self, profile: Profile, parent: QObject | None = None):
        super().__init__(parent)
        self.profile = profile
        self.name = server_name(profile)
        self._lock = QLockFile(str(profile.lock_path))
        self._lock.setStaleLockTime(0)
        self._server: QLocalServer | None = None
        self._clients: list[QLocalSocket] = []

    def acquire(self) -> bool:
        """True when this process is the first; then it starts listening for later launches."""
        if not self._lock.tryLock(100):
            return False
        QLocalServer.removeServer(self.name)
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.name):
            log.warning("cannot listen for other launches: %s", server.errorString())
        server.newConnection.connect(self._on_server_new_connection)
        self._server = server
        return True

    def send(self, paths: list[str]) -> bool:
        """Hand ``paths`` to the running instance; False when it does not answer."""
        socket = QLocalSocket()
        socket.connectToServer(self.name)
        if not socket.waitForConnected(TIMEOUT_MS):
            return False
        socket.write(json.dumps({"paths": paths}).encode() + b"\n")
        ok = socket.waitForBytesWritten(TIMEOUT_MS)
        socket.disconnectFromServer()
        return ok

    def release(self) -> None:
        for socket in self._clients:
            socket.abort()
        self._clients.clear()
        if self._server is not None:
            self._server.close()
            self._server = None
        self._lock.unlock()

    def _on_server_new_connection(self) -> None:
        assert self._server is not None
        while (socket := self._server.nextPendingConnection()) is not None:
            self._clients.append(socket)
            socket.readyRead.connect(self._on_client_ready_read)
            socket.disconnected.connect(self._on_client_disconnected)

    def _on_client_ready_read(self) -> None:
        for socket in list(self._clients):
            while socket.canReadLine():
                self._handle(bytes(socket.readLine().data()))

    def _on_client_disconnected(self) -> None:
        for socket in [s for s in self._clients if s.state() == QLocalSocket.LocalSocketState.UnconnectedState]:
            self._on_client_ready_read()
            self._clients.remove(socket)
            socket.deleteLater()

    def _handle(self, raw: bytes) -> None:
        try:
            paths = [str(p) for p in json.loads(raw).get("paths", [])]
        except (ValueError, AttributeError):
            log.warning("ignored a malformed message from another launch")
            return
        self.message_received.emit(paths)
