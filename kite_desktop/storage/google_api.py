"""The Drive v3 client, built offline, with one httplib2 connection per thread and our own bearer token.

google-api-python-client is synchronous and httplib2 is not thread-safe: every call runs in a worker
thread, and each worker thread gets its own ``build_http()`` connection (never a bare ``httplib2.Http``,
which mistakes Drive's 308 for a redirect). The token is added to each request here rather than by
``AuthorizedHttp``, so the backend decides when to refresh (once, single-flight) and persists the result.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Callable
from typing import Any

import httplib2
from googleapiclient import discovery_cache
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError
from googleapiclient.http import build_http

from kite_desktop.core.errors import KiteError


class DuplicateIdError(KiteError):
    """A create with a reserved id that already exists: an earlier, unanswered attempt did succeed."""


GOOGLE_API_ROOT = "https://www.googleapis.com/"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
GOOGLE_AUTH_URI = "https://accounts.google.com/o/oauth2/auth"
DEFAULT_TIMEOUT = 60.0


def api_root() -> str:
    root = os.environ.get("KITE_GOOGLE_API_ROOT") or GOOGLE_API_ROOT
    return root if root.endswith("/") else root + "/"


def token_uri() -> str:
    return os.environ.get("KITE_GOOGLE_TOKEN_URI") or GOOGLE_TOKEN_URI


def auth_uri() -> str:
    return os.environ.get("KITE_GOOGLE_AUTH_URI") or GOOGLE_AUTH_URI


@functools.cache
def _drive_document() -> str:
    document = discovery_cache.get_static_doc("drive", "v3")
    if document is None:  # pragma: no cover - the document ships with the library
        raise RuntimeError("google-api-python-client has no Drive v3 discovery document")
    return document


class BearerHttp:
    """An httplib2-compatible object: a connection per thread, ``Authorization: Bearer`` from ``token()``."""

    def __init__(self, token: Callable[[], str], timeout: float = DEFAULT_TIMEOUT, ca_certs: str | None = None):
        self._token = token
        self._timeout = timeout
        self._ca_certs = ca_certs
        self._local = threading.local()
        self._all: list[httplib2.Http] = []
        self._all_lock = threading.Lock()
        self._closed = False
        self._in_flight = 0
        self._idle = threading.Condition(self._all_lock)

    def _connection(self) -> httplib2.Http:
        http = getattr(self._local, "http", None)
        if http is None:
            http = build_http()
            http.timeout = self._timeout
            if self._ca_certs:
                http.ca_certs = self._ca_certs
            self._local.http = http
            with self._all_lock:
                self._all.append(http)
        return http

    def request(
        self,
        uri: str,
        method: str = "GET",
        body: Any = None,
        headers: dict[str, str] | None = None,
        redirections: int = httplib2.DEFAULT_MAX_REDIRECTS,
        connection_type: Any = None,
    ) -> Any:
        headers = dict(headers or {})
        headers["authorization"] = f"Bearer {self._token()}"
        http = self._connection()
        failed = True
        with self._all_lock:
            self._in_flight += 1
        try:
            response = http.request(
                uri, method, body=body, headers=headers, redirections=redirections, connection_type=connection_type
            )
            failed = False
            return response
        finally:
            # After a broken response httplib2 keeps the dead connection and the next request with a body fails
            # at once: start over on fresh connections. A worker still running after close() (its coroutine
            # was cancelled) closes what it opened itself.
            if failed or self._closed:
                self._drop(http)
            with self._all_lock:
                self._in_flight -= 1
                self._idle.notify_all()

    def _drop(self, http: httplib2.Http) -> None:
        if getattr(self._local, "http", None) is http:
            self._local.http = None
        with self._all_lock:
            if http in self._all:
                self._all.remove(http)
        http.close()

    def close(self, wait: float = 10.0) -> None:
        """Close every thread's connections, after letting requests still running (for cancelled callers) end."""
        self._closed = True
        with self._all_lock:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=wait)
            connections, self._all = self._all, []
        for http in connections:
            http.close()


def build_drive(http: BearerHttp, root: str) -> Any:
    """The Drive v3 service from the shipped discovery document, pointed at ``root`` (no network I/O).

    ``rootUrl`` is rewritten rather than using ``client_options.api_endpoint``, which keeps media uploads on
    https even when the endpoint is plain http (a local emulator).
    """
    document = json.loads(_drive_document())
    document["rootUrl"] = root
    document["mtlsRootUrl"] = root
    return build_from_document(document, http=http)


def error_reason(error: HttpError) -> str:
    """Google's machine-readable reason ('rateLimitExceeded', 'storageQuotaExceeded', ...) or ''."""
    try:
        payload = json.loads(error.content.decode("utf-8", "replace"))
    except (ValueError, AttributeError):
        return ""
    details = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(details, dict):
        return ""
    errors = details.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("reason") or "")
    return str(details.get("status") or "")


def status_of(error: HttpError) -> int:
    return int(error.resp.status)
