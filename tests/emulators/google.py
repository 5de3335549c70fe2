"""A local Google Drive v3 + Google OAuth emulator for Kite's tests, spoken to by the *real* client libraries.

Point google-api-python-client at it with ``build_from_document`` and ``rootUrl = emulator.root_url``
(PROTOCOLS.md §1.5; ``emulator.discovery_document()`` is that document), google-auth ``Credentials`` with
``token_uri = emulator.token_uri``, and google-auth-oauthlib's ``Flow`` with ``emulator.client_config()`` (set
``OAUTHLIB_INSECURE_TRANSPORT=1``: the emulator speaks plain http).

    with GoogleEmulator() as google:
        tokens = google.issue_tokens("alice@example.com")          # or drive the browser flow
        google.faults.add("PUT", r"upload_id=", status=503, json=BACKEND_ERROR)
        ...
        assert google.files_named("report.pdf")[0].data == payload

What each endpoint mirrors is described in ``google_drive.py`` (Drive v3), ``google_oauth.py`` (authorize, token,
revoke, userinfo) and ``google_query.py`` (``q`` and ``fields``). Besides those, ``GET
discovery/v1/apis/drive/v3/rest`` serves the shipped Drive discovery document with ``rootUrl`` pointing here.

State lives in memory behind one lock; the HTTP server is threaded. Time can be moved on with ``advance()``
(authorization codes last 60 s, access tokens 3599 s, upload sessions a week).

Run ``python -m tests.emulators.google`` to serve one by hand; it prints the ``KITE_GOOGLE_*`` variables.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.emulators.faults import Drop, FaultScript
from tests.emulators.google_drive import (
    BACKEND_ERROR,
    DUPLICATE_ID_REASON,
    FOLDER_MIME,
    GOOGLE_APPS_PREFIX,
    GOOGLE_DOC_MIME,
    OCTET_STREAM,
    RATE_LIMIT,
    USER_RATE_LIMIT,
    DriveFile,
    DriveService,
    UploadSession,
    error_json,
    new_id,
)
from tests.emulators.google_oauth import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_EMAIL,
    DEFAULT_SCOPE,
    Account,
    AuthorizeRequest,
    GoogleOAuth,
    Reply,
    TokenRequest,
)
from tests.emulators.server import EmulatorHandler, EmulatorServer, LoggedRequest

__all__ = [
    "BACKEND_ERROR",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_EMAIL",
    "DEFAULT_SCOPE",
    "DUPLICATE_ID_REASON",
    "FOLDER_MIME",
    "GOOGLE_DOC_MIME",
    "RATE_LIMIT",
    "USER_RATE_LIMIT",
    "DriveFile",
    "GoogleEmulator",
    "UploadSession",
    "error_json",
]


class GoogleServer(EmulatorServer):
    emulator: GoogleEmulator


class GoogleHandler(EmulatorHandler):
    server: GoogleServer

    def route(self) -> None:
        emulator = self.server.emulator
        reply = emulator.handle(self.command, self.path, self._entry.headers, self.body)
        late = emulator.response_faults.take(self.command, self.path)
        if late is not None:  # the request took effect; now its answer goes wrong
            self._entry.status = -reply.status  # logged negative: done, but not reported
            if late.drop is None and late.status is not None:
                reply = Reply(late.status, json=late.json, body=late.body or b"", headers=late.headers)
            else:
                if late.drop == "mid-response":
                    self.send_response(reply.status)
                    self.send_header("Content-Length", str(len(reply.body or b"{}") + 100))
                    self.end_headers()
                    self.wfile.write((reply.body or b"{}")[:1])
                    self.wfile.flush()
                self._abort()
                return
        if reply.json is not None:
            self.send_json(reply.status, reply.json, reply.headers)
        else:
            self.send_bytes(reply.status, reply.body, reply.headers, reply.content_type)


class GoogleEmulator:
    """Google Drive v3 + Google OAuth on 127.0.0.1, with the controls and look-ups tests need."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._time_offset = 0.0
        self.oauth = GoogleOAuth(self.now, self.lock)
        self.service = DriveService(self.oauth, self.now, self.lock)
        # Faults applied *after* a request took effect (``server.faults`` strike before): the answer is lost
        # (``drop=``) or replaced (``status=``). See ``lose_response()``.
        self.response_faults = FaultScript()
        self.server = GoogleServer(GoogleHandler)
        self.server.emulator = self
        self.service.base_url = self.base_url

    # -- lifecycle and addresses ------------------------------------------------------------------------
    def start(self) -> GoogleEmulator:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> GoogleEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def root_url(self) -> str:
        """The discovery document's ``rootUrl`` (ends with ``/``)."""
        return self.base_url + "/"

    @property
    def token_uri(self) -> str:
        return self.base_url + "/token"

    @property
    def auth_uri(self) -> str:
        return self.base_url + "/o/oauth2/auth"

    @property
    def revoke_uri(self) -> str:
        return self.base_url + "/revoke"

    def client_config(self, client_id: str = DEFAULT_CLIENT_ID) -> dict[str, Any]:
        """Google's "installed" client-secrets dict, for ``Flow.from_client_config``."""
        return {
            "installed": {
                "client_id": client_id,
                "client_secret": self.oauth.clients[client_id],
                "auth_uri": self.auth_uri,
                "token_uri": self.token_uri,
                "redirect_uris": ["http://127.0.0.1", "http://localhost"],
            }
        }

    def discovery_document(self) -> dict[str, Any]:
        """The shipped Drive v3 discovery document with ``rootUrl`` (and ``mtlsRootUrl``) pointing here."""
        from googleapiclient import discovery_cache

        document = json.loads(discovery_cache.get_static_doc("drive", "v3") or "{}")
        document["rootUrl"] = document["mtlsRootUrl"] = self.root_url
        document["baseUrl"] = self.root_url + document.get("servicePath", "drive/v3/")
        return document

    # -- time -------------------------------------------------------------------------------------------
    def now(self) -> float:
        return time.time() + self._time_offset

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock on: codes, access tokens and upload sessions expire by it."""
        with self.lock:
            self._time_offset += seconds

    # -- logs and faults --------------------------------------------------------------------------------
    @property
    def faults(self) -> FaultScript:
        """Scripted faults, matched on method + a regex searched in the path with its query."""
        return self.server.faults

    def lose_response(
        self, method: str, pattern: str, *, drop: Drop = "before-response", after: int = 0, times: int = 1
    ) -> None:
        """Let matching requests take effect, then close the connection instead of answering.

        ``drop="before-response"`` sends nothing; ``"mid-response"`` sends the status line, headers and one byte
        of the body. This is the case a retried create must survive (the file exists, the client never heard).
        For "done, but answered with an error", use ``response_faults.add(method, pattern, status=..., json=...)``.
        Requests whose answer was lost are logged with the negated status they would have had.
        """
        self.response_faults.add(method, pattern, drop=drop, after=after, times=times)

    @property
    def requests(self) -> list[LoggedRequest]:
        return self.server.requests

    @property
    def authorize_requests(self) -> list[AuthorizeRequest]:
        return self.oauth.authorize_requests

    @property
    def token_requests(self) -> list[TokenRequest]:
        return self.oauth.token_requests

    # -- OAuth controls ---------------------------------------------------------------------------------
    def register_client(self, client_id: str, client_secret: str) -> None:
        self.oauth.register_client(client_id, client_secret)

    def sign_in_as(self, email: str, name: str | None = None) -> Account:
        """The account the consent screen signs in with from now on (default alice@example.com)."""
        return self.oauth.sign_in_as(email, name)

    def deny_next_consent(self, times: int = 1) -> None:
        """The next authorization request(s) redirect back with ``error=access_denied``."""
        self.oauth.deny_next_consent(times)

    def issue_tokens(
        self, email: str | None = None, *, client_id: str = DEFAULT_CLIENT_ID, scope: str = DEFAULT_SCOPE
    ) -> dict[str, Any]:
        """A refresh + access token pair minted directly (no browser), plus ``token_uri`` and client creds."""
        tokens = self.oauth.issue_tokens(email, client_id=client_id, scope=scope)
        tokens["token_uri"] = self.token_uri
        return tokens

    def revoke(self, token: str) -> bool:
        """Revoke the grant of ``token`` (refresh or access): its refresh and access tokens all stop working."""
        return self.oauth.revoke(token)

    def revoke_all(self) -> None:
        self.oauth.revoke_all()

    def expire_access_tokens(self) -> None:
        """Every access token issued so far gets 401 from now on (refresh tokens keep working)."""
        self.oauth.expire_access_tokens()

    # -- Drive controls and look-ups --------------------------------------------------------------------
    @property
    def session_auth_required(self) -> bool:
        """Whether chunk PUTs to a session URI need a live bearer token too (default: no, the URI is enough)."""
        return self.service.session_auth_required

    @session_auth_required.setter
    def session_auth_required(self, value: bool) -> None:
        self.service.session_auth_required = value

    def drive_root(self, email: str | None = None) -> str:
        """The id of an account's My Drive root folder (what ``'root'`` stands for)."""
        with self.lock:
            return self.service.drive(email).root_id

    def set_quota(self, limit: int | None, email: str | None = None) -> None:
        """Storage limit in bytes (None = unlimited) for one account, or for every account if ``email`` is None."""
        with self.lock:
            if email is not None:
                self.service.drive(email).quota = limit
                return
            self.service.default_quota = limit
            for drive in self.service.drives.values():
                drive.quota = limit

    def add_file(
        self,
        name: str,
        data: bytes | None = b"",
        parents: list[str] | None = None,
        mime_type: str | None = None,
        *,
        email: str | None = None,
        created_by: str | None = DEFAULT_CLIENT_ID,
        app_properties: dict[str, str] | None = None,
    ) -> DriveFile:
        """Put a file straight into a drive (no quota check); returns a snapshot of it.

        ``data=None`` or a folder ``mime_type`` makes a folder; a Google-type ``mime_type`` (e.g.
        ``GOOGLE_DOC_MIME``) a contentless Docs file. ``parents`` may use ``"root"``/``"appDataFolder"``.
        ``created_by`` is the OAuth client that made it, which decides what the ``drive.file`` scope sees;
        None is a file the user made elsewhere (visible with the ``drive``/``drive.readonly`` scopes only).
        """
        with self.lock:
            drive = self.service.drive(email)
            mime = mime_type or (FOLDER_MIME if data is None else OCTET_STREAM)
            parent_ids = [drive.alias(p) for p in (parents or ["root"])]
            for parent in parent_ids:
                if parent not in drive.files and parent not in (drive.root_id, drive.appdata_id):
                    raise KeyError(f"no folder {parent!r} in {drive.account.email}'s drive")
            space = "appDataFolder" if drive.appdata_id in parent_ids else "drive"
            content = None if mime.startswith(GOOGLE_APPS_PREFIX) else bytes(data or b"")
            now = self.now()
            record = DriveFile(new_id(), name, mime, parent_ids, content, drive.account.email, now, now, space)
            record.created_by = created_by
            record.app_properties = dict(app_properties or {})
            drive.files[record.id] = record
            return replace(record)

    def get_file(self, file_id: str) -> DriveFile | None:
        """A snapshot of the file with ``file_id`` in any account, or None."""
        with self.lock:
            for drive in self.service.drives.values():
                if file_id in drive.files:
                    return replace(drive.files[file_id])
        return None

    def all_files(self, email: str | None = None) -> list[DriveFile]:
        """Snapshots of every file and folder (of every account unless ``email``), in creation order."""
        with self.lock:
            drives = [self.service.drive(email)] if email else list(self.service.drives.values())
            return [replace(f) for drive in drives for f in drive.files.values()]

    def files_named(self, name: str, email: str | None = None) -> list[DriveFile]:
        return [f for f in self.all_files(email) if f.name == name]

    def file_bytes(self, file_id: str) -> bytes:
        found = self.get_file(file_id)
        if found is None:
            raise KeyError(file_id)
        if found.data is None:
            raise ValueError(f"{file_id} ({found.mime_type}) has no binary content")
        return found.data

    @property
    def sessions(self) -> list[UploadSession]:
        """Resumable upload sessions still open (neither finished, cancelled nor expired)."""
        with self.lock:
            return [s for s in self.service.sessions.values() if not s.complete and not self.service.session_expired(s)]

    def expire_session(self, uri_or_id: str) -> None:
        """The session (by its URI or upload_id) answers 404 from now on."""
        with self.lock:
            upload_id = parse_qs(urlsplit(uri_or_id).query).get("upload_id", [uri_or_id])[0]
            self.service.sessions[upload_id].expired = True

    # -- dispatch ---------------------------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply:
        """Answer one request (``headers`` lower-cased); called from the server's handler threads."""
        url = urlsplit(raw_path)
        path, query = url.path, parse_qs(url.query, keep_blank_values=True)
        if path in ("/o/oauth2/auth", "/o/oauth2/v2/auth") and method == "GET":
            return self.oauth.authorize(raw_path, query)
        if path in ("/token", "/o/oauth2/token") and method == "POST":
            return self.oauth.token(headers, body)
        if path in ("/revoke", "/o/oauth2/revoke") and method in ("GET", "POST"):
            return self.oauth.revoke_endpoint(query, body)
        if path in ("/oauth2/v2/userinfo", "/oauth2/v3/userinfo") and method == "GET":
            return self.oauth.userinfo(headers.get("authorization"))
        if path == "/discovery/v1/apis/drive/v3/rest" and method == "GET":
            return Reply(200, json=self.discovery_document())
        if path.startswith(("/drive/v3/", "/upload/drive/v3/")):
            with self.lock:
                return self.service.handle(method, path, query, headers, body)
        return Reply(404, json=error_json(404, "notFound", "Not Found"))


def main() -> None:
    """Serve until Ctrl+C, after printing the environment that points Kite at this emulator."""
    with GoogleEmulator() as emulator:
        tokens = emulator.issue_tokens()
        print(f"export KITE_GOOGLE_API_ROOT={emulator.root_url}")
        print(f"export KITE_GOOGLE_TOKEN_URI={emulator.token_uri}")
        print(f"export KITE_GOOGLE_AUTH_URI={emulator.auth_uri}")
        print(f"export KITE_GOOGLE_CLIENT_ID={tokens['client_id']}")
        print(f"export KITE_GOOGLE_CLIENT_SECRET={tokens['client_secret']}")
        print("export OAUTHLIB_INSECURE_TRANSPORT=1  # the emulator speaks plain http")
        print(f"# signed in as {tokens['email']} (scope {tokens['scope']})")
        print(f"# refresh token: {tokens['refresh_token']}")
        print(f"# access token:  {tokens['access_token']}")
        print("# serving; Ctrl+C stops", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    sys.exit(main())
