"""The HTTP server the emulators share: threaded, loopback only, random port, optional TLS, request log."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.emulators.faults import Fault, FaultScript


@dataclass
class LoggedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body_length: int
    status: int = 0
    at: float = field(default_factory=time.monotonic)


class EmulatorServer(ThreadingHTTPServer):
    """Binds 127.0.0.1 on an ephemeral port; ``start()`` serves in a daemon thread until ``stop()``."""

    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None):
        super().__init__(("127.0.0.1", 0), handler)
        self.tls = tls
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.faults = FaultScript()
        self.requests: list[LoggedRequest] = []
        self.lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._open_connections: set[Any] = set()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> EmulatorServer:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self._open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.lock:
            self._open_connections.discard(request)
        super().shutdown_request(request)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        # Keep-alive connections a client never closed would otherwise be left to the garbage collector.
        with self.lock:
            leftover, self._open_connections = self._open_connections, set()
        for connection in leftover:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Dropped connections are part of the fault scripts; do not print tracebacks for them.
        pass


class EmulatorHandler(BaseHTTPRequestHandler):
    """Base handler: logging, fault application, JSON helpers. Subclasses implement ``route()``."""

    server: EmulatorServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # otherwise Nagle + delayed ACKs add ~40 ms to every loopback request
    body: bytes = b""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing -------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        entry = LoggedRequest(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, 0)
        with self.server.lock:
            self.server.requests.append(entry)
        self._entry = entry
        fault = self.server.faults.take(self.command, self.path)
        if fault is not None and self._apply_fault_before(fault):
            return
        self.body = self.read_body()
        entry.body_length = len(self.body)
        if fault is not None and self._apply_fault_after(fault):
            return
        self.route()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def read_body(self, limit: int | None = None) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if limit is not None:
            length = min(length, limit)
        chunks = []
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _abort(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _apply_fault_before(self, fault: Fault) -> bool:
        if fault.delay:
            time.sleep(fault.delay)
        if fault.drop == "before-response":
            self.read_body()
            self._abort()
            return True
        if fault.drop == "mid-request":
            length = int(self.headers.get("Content-Length") or 0)
            self.read_body(limit=length // 2)
            self._abort()
            return True
        return False

    def _apply_fault_after(self, fault: Fault) -> bool:
        if fault.drop == "mid-response":
            payload = fault.body or (json.dumps(fault.json).encode() if fault.json is not None else b"x" * 4096)
            self.send_response(fault.status or 200)
            self.send_header("Content-Length", str(len(payload) * 2))
            self.end_headers()
            self.wfile.write(payload[: max(1, len(payload) // 2)])
            self.wfile.flush()
            self._abort()
            return True
        if fault.status is not None:
            if fault.json is not None:
                self.send_json(fault.status, fault.json, fault.headers)
            else:
                self.send_bytes(fault.status, fault.body or b"", fault.headers)
            return True
        return False

    # -- responses --------------------------------------------------------------------------------
    def send_bytes(
        self, status: int, payload: bytes, headers: dict[str, str] | None = None, content_type: str | None = None
    ) -> None:
        self._entry.status = status
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(status, json.dumps(payload).encode(), headers, "application/json; charset=UTF-8")

    def route(self) -> None:  # pragma: no cover - subclasses implement it
        self.send_json(404, {"error": "not found"})
