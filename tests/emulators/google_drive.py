"""Google Drive v3, emulated: the files an account has, and the endpoints that read and change them.

Paths are relative to the discovery ``rootUrl``, as google-api-python-client builds them (PROTOCOLS.md §1.1):

- ``GET drive/v3/about?fields=…``: about.get (``user``, ``storageQuota``). ``fields`` is required, as with Google.
- ``GET drive/v3/files``: files.list (``q``, ``pageSize`` default 100 / max 1000, ``pageToken`` bound to the
  query, ``orderBy``, ``spaces``, ``fields``). Trashed files are listed unless ``q`` excludes them, as in v3.
- ``GET drive/v3/files/generateIds``: files.generateIds. Only ids issued here may be passed as ``id`` to a
  create: a second create with the same id is ``409`` (what makes a retried create idempotent), an id never
  issued (or issued for another space or account) is ``400``.
- ``GET drive/v3/files/{id}``: files.get (``size`` is a string, ``md5Checksum`` hex, RFC 3339 times); with
  ``alt=media`` the content (one ``Range`` → ``206`` + ``Content-Range``; unsatisfiable → ``416`` +
  ``Content-Range: bytes */N``; Google-type files → ``403 fileNotDownloadable``).
- ``POST drive/v3/files``: files.create without content (folders). ``PATCH drive/v3/files/{id}``: files.update of
  metadata (``addParents``/``removeParents``; ``parents`` in the body is ``403 fieldNotWritable``).
  ``DELETE drive/v3/files/{id}``: ``204``, empty (a folder takes its contents along).
- ``POST upload/drive/v3/files?uploadType=media|multipart|resumable`` and ``PATCH upload/drive/v3/files/{id}?…``:
  create / replace content. Resumable (PROTOCOLS §1.2): the initiation answers exactly ``200`` + ``Location``;
  ``PUT <session URI>`` takes ``Content-Range: bytes a-b/N`` chunks and ``bytes */N`` status queries and answers
  ``308`` (with ``Range: bytes=0-<last>`` once anything is kept, without it before) or ``200`` + the file
  (honouring the initiation's ``fields``). A non-final chunk keeps only whole multiples of 256 KiB; bytes before
  the current offset are skipped; a chunk after a gap keeps nothing; the 308's ``Range`` always tells the truth.
  Sessions expire after a week (or when a test says so) → ``404``. ``DELETE <session URI>`` cancels (``499``).
  The session URI is the credential for its chunks: a bearer header there is not checked, unless
  ``session_auth_required`` is set.

Every other Drive call needs a live bearer token (``401 authError`` otherwise) whose scopes allow it: ``drive``
sees all of My Drive, ``drive.readonly`` reads it, ``drive.file`` sees only files its OAuth client created,
``drive.appdata`` only the ``appDataFolder`` space; a write the scopes do not allow is ``403
insufficientPermissions``, a file they do not show is ``404``. Quotas: ``403 storageQuotaExceeded``. Each account
has its own drive. Error bodies are Google's (PROTOCOLS §1.4).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from tests.emulators.google_oauth import AccessToken, Account, GoogleOAuth, Reply
from tests.emulators.google_query import (
    FileView,
    QueryError,
    apply_fields,
    compile_query,
    parse_fields,
    parse_rfc3339,
    rfc3339,
    schemas,
    validate_fields,
)

FOLDER_MIME = "application/vnd.google-apps.folder"
GOOGLE_DOC_MIME = "application/vnd.google-apps.document"
GOOGLE_APPS_PREFIX = "application/vnd.google-apps."
OCTET_STREAM = "application/octet-stream"
CHUNK_GRANULARITY = 256 * 1024
SESSION_LIFETIME = 7 * 24 * 3600.0
MAX_PAGE_SIZE = 1000
SCOPE_PREFIX = "https://www.googleapis.com/auth/"
DEFAULT_FILE_FIELDS = "kind,id,name,mimeType"
DEFAULT_LIST_FIELDS = "kind,incompleteSearch,nextPageToken,files(kind,id,name,mimeType)"
# The reason Google gives for a create whose id is taken. PROTOCOLS.md does not say; clients in the wild print
# it as "fileIdInUse: A file already exists with the provided ID." Code should branch on the 409.
DUPLICATE_ID_REASON = "fileIdInUse"

# fmt: off
_WRITABLE_ON_CREATE = {
    "id", "name", "mimeType", "parents", "description", "appProperties", "properties", "modifiedTime",
    "createdTime", "starred", "originalFilename", "trashed", "kind", "folderColorRgb", "writersCanShare",
    "viewersCanCopyContent", "copyRequiresWriterPermission", "contentHints", "viewedByMeTime",
}
# fmt: on
_WRITABLE_ON_UPDATE = _WRITABLE_ON_CREATE - {"id", "parents", "createdTime"}
_NO_PERMISSION = "The user does not have sufficient permissions for this file."


# -- errors -------------------------------------------------------------------------------------------------
def error_json(code: int, reason: str, message: str, domain: str = "global", **extra: str) -> dict[str, Any]:
    """Google's error body (PROTOCOLS §1.4); ``extra`` adds e.g. ``location``/``locationType`` to the error item."""
    item = {"domain": domain, "reason": reason, "message": message, **extra}
    return {"error": {"code": code, "message": message, "errors": [item]}}


# Bodies for scripted faults, e.g. ``emulator.faults.add("GET", r"/files", status=403, json=USER_RATE_LIMIT)``.
USER_RATE_LIMIT = error_json(403, "userRateLimitExceeded", "User Rate Limit Exceeded", "usageLimits")
RATE_LIMIT = error_json(429, "rateLimitExceeded", "Rate Limit Exceeded", "usageLimits")
BACKEND_ERROR = error_json(503, "backendError", "Backend Error")


class DriveError(Exception):
    """A refusal, answered with Google's error JSON."""

    def __init__(self, code: int, reason: str, message: str, domain: str = "global", **extra: str) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.payload = error_json(code, reason, message, domain, **extra)
        self.headers: dict[str, str] = {}

    def reply(self) -> Reply:
        return Reply(self.code, json=self.payload, headers=self.headers)


def not_found(file_id: str) -> DriveError:
    message = f"File not found: {file_id}."
    return DriveError(404, "notFound", message, location="fileId", locationType="parameter")


def invalid_value(location: str) -> DriveError:
    return DriveError(400, "invalid", "Invalid Value", location=location, locationType="parameter")


def auth_error() -> DriveError:
    error = DriveError(401, "authError", "Invalid Credentials", locationType="header", location="Authorization")
    error.headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
    return error


def insufficient_scopes() -> DriveError:
    return DriveError(403, "insufficientPermissions", "Request had insufficient authentication scopes.")


def quota_exceeded() -> DriveError:
    return DriveError(403, "storageQuotaExceeded", "The user's Drive storage quota has been exceeded.", "usageLimits")


# -- state --------------------------------------------------------------------------------------------------
def new_id() -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return "1" + "".join(secrets.choice(alphabet) for _ in range(32))


@dataclass
class DriveFile:
    """One file or folder (``data`` is None for folders and Google Docs-type files, which have no bytes)."""

    id: str
    name: str
    mime_type: str
    parents: list[str]
    data: bytes | None
    owner: str
    created_time: float
    modified_time: float
    space: str = "drive"  # or "appDataFolder"
    created_by: str | None = None  # the OAuth client that created it (drive.file scope); None = the user
    trashed: bool = False
    starred: bool = False
    description: str | None = None
    app_properties: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    original_filename: str | None = None
    version: int = 1

    @property
    def is_folder(self) -> bool:
        return self.mime_type == FOLDER_MIME

    @property
    def is_google_type(self) -> bool:
        return self.mime_type.startswith(GOOGLE_APPS_PREFIX)

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else 0

    def resource(self, account: Account, trashed: bool) -> dict[str, Any]:
        """The File resource as ``fields=*`` would return it (the emulated subset of its properties)."""
        owner = {"kind": "drive#user", "displayName": account.name, "emailAddress": account.email, "me": True}
        out: dict[str, Any] = {"kind": "drive#file", "id": self.id, "name": self.name, "mimeType": self.mime_type}
        if self.parents:
            out["parents"] = list(self.parents)
        out.update(starred=self.starred, trashed=trashed, explicitlyTrashed=self.trashed, spaces=[self.space])
        out.update(version=str(self.version), createdTime=rfc3339(self.created_time))
        out.update(modifiedTime=rfc3339(self.modified_time), owners=[{**owner, "permissionId": account.id}])
        out.update(ownedByMe=True, quotaBytesUsed=str(self.size))
        if self.description is not None:
            out["description"] = self.description
        if self.app_properties:
            out["appProperties"] = dict(self.app_properties)
        if self.properties:
            out["properties"] = dict(self.properties)
        if self.data is not None:
            out["originalFilename"] = self.original_filename or self.name
            if "." in self.name.strip("."):
                out["fullFileExtension"] = self.name.split(".", 1)[1]
                out["fileExtension"] = self.name.rsplit(".", 1)[1]
            out["md5Checksum"] = hashlib.md5(self.data, usedforsecurity=False).hexdigest()
            out["sha1Checksum"] = hashlib.sha1(self.data, usedforsecurity=False).hexdigest()
            out["sha256Checksum"] = hashlib.sha256(self.data).hexdigest()
            out["size"] = str(len(self.data))
            out["headRevisionId"] = f"0B{self.id[1:9]}v{self.version}"
        return out


@dataclass
class Drive:
    """One account's My Drive: its root, its hidden appDataFolder, its files and its unused generated ids."""

    account: Account
    root_id: str
    appdata_id: str
    files: dict[str, DriveFile] = field(default_factory=dict)
    generated: dict[str, str] = field(default_factory=dict)  # id -> the space it may be used in
    quota: int | None = None

    def usage(self) -> int:
        return sum(f.size for f in self.files.values())

    def alias(self, file_id: str) -> str:
        return {"root": self.root_id, "appDataFolder": self.appdata_id}.get(file_id, file_id)


@dataclass
class UploadSession:
    """A resumable upload session; ``uri`` is the session URI handed out in ``Location``."""

    id: str
    uri: str
    drive: Drive
    token: AccessToken  # whose scopes and OAuth client the finished file is made with
    metadata: dict[str, Any]
    media_type: str
    total: int | None
    created_at: float
    target_id: str | None = None  # files.update of this file, else files.create
    query: dict[str, list[str]] = field(default_factory=dict)  # of the initiation (fields, addParents, ...)
    data: bytearray = field(default_factory=bytearray)
    expired: bool = False
    result_id: str | None = None

    @property
    def received(self) -> int:
        return len(self.data)

    @property
    def complete(self) -> bool:
        return self.result_id is not None


@dataclass
class Call:
    """One authenticated Drive request."""

    drive: Drive
    token: AccessToken
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def params(self, name: str) -> list[str]:
        return [item for item in (self.param(name) or "").split(",") if item]


def _scopes(token: AccessToken) -> set[str]:
    return {scope.removeprefix(SCOPE_PREFIX) for scope in token.scopes}


class DriveService:
    """Every account's drive and the open upload sessions; the caller holds ``lock`` around each call."""

    def __init__(self, oauth: GoogleOAuth, clock: Callable[[], float], lock: threading.RLock) -> None:
        self.oauth = oauth
        self.now = clock
        self.lock = lock
        self.base_url = ""
        self.drives: dict[str, Drive] = {}
        self.sessions: dict[str, UploadSession] = {}  # by upload_id, finished ones included
        self.default_quota: int | None = None
        self.session_auth_required = False

    def drive(self, email: str | None = None) -> Drive:
        """The drive of ``email`` (default: the signed-in account), created on first use."""
        account = self.oauth.account(email) if email else self.oauth.signed_in
        found = self.drives.get(account.email)
        if found is None:
            root_id = "0A" + secrets.token_hex(6) + "Uk9PVA"
            found = self.drives[account.email] = Drive(account, root_id, new_id(), quota=self.default_quota)
        return found

    def session_expired(self, session: UploadSession) -> bool:
        return session.expired or self.now() - session.created_at > SESSION_LIFETIME

    # -- dispatch ---------------------------------------------------------------------------------------
    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> Reply:
        try:
            return self._route(method, path, query, headers, body)
        except DriveError as exc:
            return exc.reply()

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> Reply:
        upload = path.startswith("/upload/")
        if upload and method in ("PUT", "DELETE") and query.get("upload_id"):
            if self.session_auth_required and self.oauth.authenticate(headers.get("authorization")) is None:
                raise auth_error()
            return self._session_put(method, query["upload_id"][0], headers, body)
        token = self.oauth.authenticate(headers.get("authorization"))
        if token is None:
            raise auth_error()
        if not any(scope.startswith("drive") for scope in _scopes(token)):
            raise insufficient_scopes()
        call = Call(self.drive(token.email), token, query, headers, body)
        parts = path.strip("/").split("/")[3 if upload else 2 :]
        if upload and parts[:1] == ["files"] and len(parts) <= 2 and method in ("POST", "PATCH"):
            target = parts[1] if len(parts) == 2 else None
            if (method == "PATCH") == (target is not None):
                return self._upload(call, target)
        elif not upload and parts == ["about"] and method == "GET":
            return self._about(call)
        elif not upload and parts == ["files"] and method in ("GET", "POST"):
            return self._list(call) if method == "GET" else self._create_metadata(call)
        elif not upload and parts == ["files", "generateIds"] and method == "GET":
            return self._generate_ids(call)
        elif not upload and len(parts) == 2 and parts[0] == "files" and method in ("GET", "PATCH", "DELETE"):
            if method == "GET":
                record = self._visible(call, parts[1])
                if call.param("alt") == "media":
                    return self._media(call, record)
                return self._file_reply(call.drive, record, self._fields(call, "File"))
            if method == "PATCH":
                return self._update(call, parts[1], self._json_body(call.body), None, None)
            self._delete(call, parts[1])
            return Reply(204)
        raise DriveError(404, "notFound", "Not Found")

    # -- helpers ----------------------------------------------------------------------------------------
    @staticmethod
    def _fields(call: Call, schema: str) -> str | None:
        """The ``fields`` parameter, checked against the response type; None when absent."""
        spec = call.param("fields")
        if spec is None:
            return None
        try:
            validate_fields(parse_fields(spec), schema)
        except QueryError as exc:
            message = f"Invalid field selection {exc}"
            raise DriveError(400, "invalidParameter", message, location="fields", locationType="parameter") from exc
        return spec

    @staticmethod
    def _json_body(body: bytes) -> dict[str, Any]:
        if not body.strip():
            return {}
        try:
            meta = json.loads(body)
        except ValueError as exc:
            raise DriveError(400, "parseError", f"Invalid JSON payload received. {exc}") from exc
        if not isinstance(meta, dict):
            raise DriveError(400, "parseError", "Invalid JSON payload received. Expected an object.")
        return meta

    def resource(self, drive: Drive, record: DriveFile) -> dict[str, Any]:
        if record.id == drive.root_id:
            return {"kind": "drive#file", "id": record.id, "name": "My Drive", "mimeType": FOLDER_MIME}
        return record.resource(drive.account, self.is_trashed(drive, record))

    def _file_reply(self, drive: Drive, record: DriveFile, fields: str | None) -> Reply:
        selection = parse_fields(fields or DEFAULT_FILE_FIELDS)
        return Reply(200, json=apply_fields(self.resource(drive, record), selection))

    @staticmethod
    def is_trashed(drive: Drive, record: DriveFile) -> bool:
        """Trashed itself, or inside a trashed folder."""
        seen: set[str] = set()
        current: DriveFile | None = record
        while current is not None and current.id not in seen:
            if current.trashed:
                return True
            seen.add(current.id)
            current = drive.files.get(current.parents[0]) if current.parents else None
        return False

    def _lookup(self, drive: Drive, file_id: str) -> DriveFile:
        real_id = drive.alias(file_id)
        if real_id in (drive.root_id, drive.appdata_id):
            space = "drive" if real_id == drive.root_id else "appDataFolder"
            name = "My Drive" if real_id == drive.root_id else "appDataFolder"
            now = self.now()
            return DriveFile(real_id, name, FOLDER_MIME, [], None, drive.account.email, now, now, space)
        record = drive.files.get(real_id)
        if record is None:
            raise not_found(file_id)
        return record

    @staticmethod
    def can_see(token: AccessToken, record: DriveFile) -> bool:
        scopes = _scopes(token)
        if record.space == "appDataFolder":
            return "drive.appdata" in scopes
        if scopes & {"drive", "drive.readonly", "drive.metadata", "drive.metadata.readonly"}:
            return True
        return "drive.file" in scopes and (record.created_by == token.client_id or not record.parents)

    @staticmethod
    def _check_write(token: AccessToken, record: DriveFile) -> None:
        scopes = _scopes(token)
        if record.space == "appDataFolder":
            allowed = "drive.appdata" in scopes
        else:
            own = record.created_by == token.client_id or not record.parents
            allowed = "drive" in scopes or ("drive.file" in scopes and own)
        if not allowed:
            raise insufficient_scopes()

    def _visible(self, call: Call, file_id: str) -> DriveFile:
        record = self._lookup(call.drive, file_id)
        if not self.can_see(call.token, record):
            raise not_found(file_id)
        return record

    @staticmethod
    def _check_quota(drive: Drive, adding: int, replacing: DriveFile | None = None) -> None:
        if drive.quota is None:
            return
        usage = drive.usage() - (replacing.size if replacing is not None else 0)
        if usage + adding > drive.quota:
            raise quota_exceeded()

    @staticmethod
    def _check_body_fields(meta: dict[str, Any], writable: set[str], update: bool) -> None:
        known = schemas().get("File", {}).get("properties", {})
        for name in meta:
            if known and name not in known:
                message = f"Invalid JSON payload received. Unknown name \"{name}\" at 'resource': Cannot find field."
                raise DriveError(400, "invalid", message)
            if name not in writable:
                message = "The resource body includes fields which are not directly writable."
                if update and name == "parents":
                    message = (
                        "The parents field is not directly writable in update requests. "
                        "Use the addParents and removeParents parameters instead."
                    )
                raise DriveError(403, "fieldNotWritable", message)

    @staticmethod
    def _times(meta: dict[str, Any], *keys: str) -> dict[str, float]:
        times = {}
        for key in keys:
            if key in meta:
                try:
                    times[key] = parse_rfc3339(str(meta[key]))
                except QueryError as exc:
                    raise DriveError(400, "invalid", f"Invalid value for {key}: {meta[key]}") from exc
        return times

    # -- files.create -----------------------------------------------------------------------------------
    def _create_metadata(self, call: Call) -> Reply:
        fields = self._fields(call, "File")
        record = self._create(call, self._json_body(call.body), None, None)
        return self._file_reply(call.drive, record, fields)

    def _prepare_create(
        self, call: Call, meta: dict[str, Any], media_type: str | None, has_content: bool
    ) -> dict[str, Any]:
        """Check a create request as Google would; returns the parent, space and MIME type to use."""
        self._check_body_fields(meta, _WRITABLE_ON_CREATE, update=False)
        parents = meta.get("parents") or ["root"]
        if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
            raise DriveError(400, "invalid", "Invalid value for parents.")
        if len(parents) > 1:
            raise DriveError(403, "cannotAddParent", "Increasing the number of parents is not allowed.")
        parent = self._visible(call, parents[0])
        if not parent.is_folder:
            raise DriveError(400, "invalid", "The specified parent is not a folder.")
        space = parent.space
        mime = meta.get("mimeType") or (media_type if has_content else None) or OCTET_STREAM
        drive, token = call.drive, call.token
        self._check_write(token, DriveFile("", "", mime, [parent.id], None, "", 0, 0, space, token.client_id))
        if has_content and mime == FOLDER_MIME:
            raise DriveError(400, "invalid", "A folder cannot have content.")
        file_id = meta.get("id")
        if file_id is not None:
            if file_id in drive.files:
                raise DriveError(409, DUPLICATE_ID_REASON, "A file already exists with the provided ID.")
            if drive.generated.get(file_id) != space:
                raise DriveError(400, "invalid", "The provided file ID is not usable.")
        times = self._times(meta, "createdTime", "modifiedTime")
        return {"parent": parent.id, "space": space, "mime": mime, "times": times}

    def _create(self, call: Call, meta: dict[str, Any], content: bytes | None, media_type: str | None) -> DriveFile:
        plan = self._prepare_create(call, meta, media_type, content is not None)
        if plan["mime"].startswith(GOOGLE_APPS_PREFIX):
            content = None  # a folder, or an upload converted to a Docs-type file
        elif content is None:
            content = b""
        self._check_quota(call.drive, len(content or b""))
        now = self.now()
        file_id = meta.get("id") or new_id()
        call.drive.generated.pop(file_id, None)
        created, modified = plan["times"].get("createdTime", now), plan["times"].get("modifiedTime", now)
        record = DriveFile(
            file_id,
            str(meta.get("name") or "Untitled"),
            plan["mime"],
            [plan["parent"]],
            content,
            call.drive.account.email,
            created,
            modified,
            plan["space"],
            call.token.client_id,
        )
        self._apply_metadata(record, meta)
        call.drive.files[file_id] = record
        return record

    @staticmethod
    def _apply_metadata(record: DriveFile, meta: dict[str, Any]) -> None:
        if meta.get("name"):
            record.name = str(meta["name"])
        if "description" in meta:
            record.description = meta["description"]
        if "starred" in meta:
            record.starred = bool(meta["starred"])
        if "trashed" in meta:
            record.trashed = bool(meta["trashed"])
        if "originalFilename" in meta:
            record.original_filename = meta["originalFilename"]
        for key, target in (("appProperties", record.app_properties), ("properties", record.properties)):
            for name, value in (meta.get(key) or {}).items():
                if value is None:
                    target.pop(name, None)
                else:
                    target[name] = str(value)

    # -- files.update / files.delete --------------------------------------------------------------------
    def _prepare_update(self, call: Call, file_id: str, meta: dict[str, Any], has_content: bool) -> DriveFile:
        record = self._visible(call, file_id)
        if record.id in (call.drive.root_id, call.drive.appdata_id):
            raise DriveError(403, "insufficientFilePermissions", _NO_PERMISSION)
        self._check_write(call.token, record)
        self._check_body_fields(meta, _WRITABLE_ON_UPDATE, update=True)
        if has_content and record.is_google_type:
            raise DriveError(400, "invalid", "Content cannot be uploaded to a Google Docs-type file or folder.")
        removed = {call.drive.alias(p) for p in call.params("removeParents")}
        if len(set(record.parents) - removed) + len(call.params("addParents")) > 1:
            raise DriveError(403, "cannotAddParent", "Increasing the number of parents is not allowed.")
        for parent in call.params("addParents"):
            if not self._visible(call, parent).is_folder:
                raise DriveError(400, "invalid", "The specified parent is not a folder.")
        self._times(meta, "modifiedTime")
        return record

    def _update(
        self, call: Call, file_id: str, meta: dict[str, Any], content: bytes | None, media_type: str | None
    ) -> Reply:
        fields = self._fields(call, "File")
        record = self._prepare_update(call, file_id, meta, content is not None)
        if content is not None:
            self._check_quota(call.drive, len(content), replacing=record)
            record.data = content
            if not meta.get("mimeType") and media_type:
                record.mime_type = media_type
        self._apply_metadata(record, meta)
        if meta.get("mimeType"):
            record.mime_type = str(meta["mimeType"])
        removed = {call.drive.alias(p) for p in call.params("removeParents")}
        record.parents = [p for p in record.parents if p not in removed]
        record.parents += [
            call.drive.alias(p) for p in call.params("addParents") if call.drive.alias(p) not in record.parents
        ]
        record.version += 1
        record.modified_time = self._times(meta, "modifiedTime").get("modifiedTime", self.now())
        return self._file_reply(call.drive, record, fields)

    def _delete(self, call: Call, file_id: str) -> None:
        record = self._visible(call, file_id)
        if record.id in (call.drive.root_id, call.drive.appdata_id):
            raise DriveError(403, "insufficientFilePermissions", _NO_PERMISSION)
        self._check_write(call.token, record)
        doomed = {record.id}
        while True:  # a folder takes everything below it along
            children = {f.id for f in call.drive.files.values() if f.id not in doomed and set(f.parents) & doomed}
            if not children:
                break
            doomed |= children
        for victim in doomed:
            call.drive.files.pop(victim, None)

    # -- uploads ----------------------------------------------------------------------------------------
    def _upload(self, call: Call, target: str | None) -> Reply:
        upload_type = call.param("uploadType")
        if upload_type == "resumable":
            return self._start_session(call, target)
        if upload_type == "media":
            meta: dict[str, Any] = {}
            media_type, content = call.headers.get("content-type") or OCTET_STREAM, call.body
        elif upload_type == "multipart":
            meta, media_type, content = parse_multipart(call.headers.get("content-type", ""), call.body)
        else:
            message = "Upload requests must include an uploadType URL parameter and a URL path beginning with /upload/"
            raise DriveError(400, "wrongUrlForUpload", message, location="uploadType", locationType="parameter")
        if target is not None:
            return self._update(call, target, meta, content, media_type)
        fields = self._fields(call, "File")
        return self._file_reply(call.drive, self._create(call, meta, content, media_type), fields)

    def _start_session(self, call: Call, target: str | None) -> Reply:
        meta = self._json_body(call.body)
        self._fields(call, "File")
        media_type = call.headers.get("x-upload-content-type") or OCTET_STREAM
        total = None
        if call.headers.get("x-upload-content-length") is not None:
            try:
                total = int(call.headers["x-upload-content-length"])
            except ValueError as exc:
                raise invalid_value("X-Upload-Content-Length") from exc
        replacing = None
        if target is None:
            self._prepare_create(call, meta, media_type, has_content=True)
        else:
            replacing = self._prepare_update(call, target, meta, has_content=True)
        if total is not None:
            self._check_quota(call.drive, total, replacing)
        upload_id = "ABPtcP" + secrets.token_urlsafe(48)
        kept = [(name, value) for name, values in call.query.items() if name != "upload_id" for value in values]
        path = "/upload/drive/v3/files" + (f"/{target}" if target else "")
        uri = f"{self.base_url}{path}?{urlencode([*kept, ('upload_id', upload_id)])}"
        self.sessions[upload_id] = UploadSession(
            upload_id, uri, call.drive, call.token, meta, media_type, total, self.now(), target, call.query
        )
        return Reply(200, headers={"Location": uri, "X-GUploader-UploadID": upload_id})

    def _session_put(self, method: str, upload_id: str, headers: dict[str, str], body: bytes) -> Reply:
        session = self.sessions.get(upload_id)
        if session is None or self.session_expired(session):
            raise DriveError(404, "notFound", "Not Found")
        if method == "DELETE":  # cancel: Google answers 499 Client Closed Request
            del self.sessions[upload_id]
            return Reply(499)
        content_range = (headers.get("content-range") or "").strip()
        if not content_range:  # no Content-Range: the body is the whole file
            content_range = f"bytes 0-{len(body) - 1}/{len(body)}" if body else "bytes */0"
        status_query = re.fullmatch(r"bytes \*/(\d+|\*)", content_range)
        chunk = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", content_range)
        if chunk is not None:
            declared = chunk.group(3)
        elif status_query is not None:
            declared = status_query.group(1)
        else:
            raise DriveError(400, "badRequest", f"Failed to parse Content-Range header: {content_range}")
        if declared != "*":
            if session.total is not None and int(declared) != session.total:
                raise DriveError(400, "badRequest", "Content-Range total does not match the declared upload size.")
            session.total = int(declared)
        if session.complete:
            return self._session_result(session)
        if chunk is not None:
            first, last = int(chunk.group(1)), int(chunk.group(2))
            if last < first or len(body) != last - first + 1:
                raise DriveError(400, "badRequest", "Content-Range does not match the request body length.")
            self._take_chunk(session, first, body)
        if session.total is not None and session.received == session.total:
            return self._finish_session(session)
        reply_headers = {"X-GUploader-UploadID": session.id}
        if session.received:
            reply_headers["Range"] = f"bytes=0-{session.received - 1}"
        return Reply(308, headers=reply_headers)

    def _take_chunk(self, session: UploadSession, first: int, body: bytes) -> None:
        offset, end = session.received, first + len(body)
        if first > offset or end <= offset:
            return  # after a gap nothing can be kept; all of it already received: nothing new
        if session.total is not None and end > session.total:
            raise DriveError(400, "badRequest", "Content-Range goes past the declared upload size.")
        if session.total is None or end < session.total:
            end = (end // CHUNK_GRANULARITY) * CHUNK_GRANULARITY  # not the last chunk: whole 256 KiB units only
        if end > offset:
            if session.total is None:
                self._check_quota(session.drive, end)
            session.data += body[offset - first : end - first]

    def _finish_session(self, session: UploadSession) -> Reply:
        call = Call(session.drive, session.token, session.query, {}, b"")
        content = bytes(session.data)
        if session.target_id is None:
            session.result_id = self._create(call, session.metadata, content, session.media_type).id
        else:
            self._update(call, session.target_id, session.metadata, content, session.media_type)
            session.result_id = session.target_id
        session.data = bytearray()
        return self._session_result(session)

    def _session_result(self, session: UploadSession) -> Reply:
        record = session.drive.files.get(session.result_id or "")
        if record is None:
            raise not_found(session.result_id or "")
        fields = session.query.get("fields", [None])[0]
        return self._file_reply(session.drive, record, fields)

    # -- files.get alt=media ----------------------------------------------------------------------------
    def _media(self, call: Call, record: DriveFile) -> Reply:
        if record.data is None:
            message = "Only files with binary content can be downloaded. Use Export with Docs Editors files."
            raise DriveError(403, "fileNotDownloadable", message, location="alt", locationType="parameter")
        if not _scopes(call.token) - {"drive.metadata", "drive.metadata.readonly"}:
            raise insufficient_scopes()
        data, size = record.data, len(record.data)
        wanted = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", call.headers.get("range", ""))
        if wanted is None or wanted.groups() == ("", "") or (wanted[2] and int(wanted[2]) < int(wanted[1] or 0)):
            return Reply(200, body=data, content_type=record.mime_type)  # no usable Range: the whole file
        if wanted[1] == "":  # bytes=-N: the last N bytes
            first, last, satisfiable = max(0, size - int(wanted[2])), size - 1, int(wanted[2]) > 0 and size > 0
        else:
            first = int(wanted[1])
            last, satisfiable = min(int(wanted[2] or size - 1), size - 1), first < size
        if not satisfiable:
            headers = {"Content-Range": f"bytes */{size}"}
            return Reply(416, body=b"Request range not satisfiable", headers=headers, content_type="text/plain")
        headers = {"Content-Range": f"bytes {first}-{last}/{size}"}
        return Reply(206, body=data[first : last + 1], headers=headers, content_type=record.mime_type)

    # -- files.list, generateIds, about -----------------------------------------------------------------
    def _list(self, call: Call) -> Reply:
        fields = self._fields(call, "FileList")
        try:
            page_size = int(call.param("pageSize") or 100)
        except ValueError as exc:
            raise invalid_value("pageSize") from exc
        if page_size < 1:
            raise invalid_value("pageSize")
        page_size = min(page_size, MAX_PAGE_SIZE)  # Google coerces larger values
        spaces = set(call.params("spaces") or ["drive"])
        if not spaces <= {"drive", "appDataFolder"}:
            raise invalid_value("spaces")
        scopes = _scopes(call.token)
        if ("appDataFolder" in spaces and "drive.appdata" not in scopes) or (
            "drive" in spaces and scopes <= {"drive.appdata"}
        ):
            message = "The granted scopes do not give access to all of the requested spaces."
            raise DriveError(403, "insufficientScopes", message, location="spaces", locationType="parameter")
        q = call.param("q") or ""
        try:
            predicate = compile_query(q, call.drive.alias) if q.strip() else None
        except QueryError as exc:
            raise invalid_value("q") from exc
        matches = [
            f
            for f in call.drive.files.values()
            if f.space in spaces
            and self.can_see(call.token, f)
            and (predicate is None or predicate(self._view(call.drive, f)))
        ]
        matches = self._order(matches, call.param("orderBy"))
        key = hashlib.sha1(json.dumps([q, sorted(spaces), call.param("orderBy")]).encode()).hexdigest()[:12]
        offset = 0
        if call.param("pageToken"):
            try:
                token_key, offset_text = base64.urlsafe_b64decode(call.param("pageToken") or "").decode().split(":")
                offset = int(offset_text)
            except ValueError as exc:
                raise invalid_value("pageToken") from exc
            if token_key != key:
                raise invalid_value("pageToken")
        result: dict[str, Any] = {"kind": "drive#fileList", "incompleteSearch": False}
        if offset + page_size < len(matches):
            result["nextPageToken"] = base64.urlsafe_b64encode(f"{key}:{offset + page_size}".encode()).decode()
        result["files"] = [self.resource(call.drive, f) for f in matches[offset : offset + page_size]]
        return Reply(200, json=apply_fields(result, parse_fields(fields or DEFAULT_LIST_FIELDS)))

    def _view(self, drive: Drive, record: DriveFile) -> FileView:
        text = ""
        if record.data and record.mime_type.startswith("text/"):
            text = record.data[:65536].decode("utf-8", "ignore")
        times = {"createdTime": record.created_time, "modifiedTime": record.modified_time}
        return FileView(
            record.name,
            record.mime_type,
            record.parents,
            self.is_trashed(drive, record),
            record.starred,
            times,
            record.properties,
            record.app_properties,
            text,
        )

    @staticmethod
    def _order(files: list[DriveFile], order_by: str | None) -> list[DriveFile]:
        keys: dict[str, Callable[[DriveFile], Any]] = {
            "name": lambda f: f.name.lower(),
            "name_natural": lambda f: [
                (0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", f.name.lower())
            ],
            "folder": lambda f: not f.is_folder,
            "modifiedTime": lambda f: f.modified_time,
            "recency": lambda f: f.modified_time,
            "createdTime": lambda f: f.created_time,
            "quotaBytesUsed": lambda f: f.size,
            "starred": lambda f: not f.starred,
        }
        result = list(files)
        for item in reversed([part.strip() for part in (order_by or "").split(",") if part.strip()]):
            name, _, direction = item.partition(" ")
            if name not in keys or direction.strip() not in ("", "desc"):
                raise invalid_value("orderBy")
            result.sort(key=keys[name], reverse=direction.strip() == "desc")
        return result

    def _generate_ids(self, call: Call) -> Reply:
        fields = self._fields(call, "GeneratedIds")
        try:
            count = int(call.param("count") or 10)
        except ValueError as exc:
            raise invalid_value("count") from exc
        if not 1 <= count <= 1000:
            raise invalid_value("count")
        space = call.param("space") or "drive"
        if space not in ("drive", "appDataFolder"):
            raise invalid_value("space")
        if (call.param("type") or "files") not in ("files", "shortcuts"):
            raise invalid_value("type")
        ids = [new_id() for _ in range(count)]
        call.drive.generated.update(dict.fromkeys(ids, space))
        result = {"kind": "drive#generatedIds", "space": space, "ids": ids}
        return Reply(200, json=apply_fields(result, parse_fields(fields) if fields else None))

    def _about(self, call: Call) -> Reply:
        if not call.param("fields"):
            message = "The 'fields' parameter is required for this method."
            raise DriveError(400, "required", message, location="fields", locationType="parameter")
        fields = self._fields(call, "About") or ""
        drive, account = call.drive, call.drive.account
        usage = drive.usage()
        in_trash = sum(f.size for f in drive.files.values() if self.is_trashed(drive, f))
        quota = {"usage": str(usage), "usageInDrive": str(usage), "usageInDriveTrash": str(in_trash)}
        if drive.quota is not None:
            quota["limit"] = str(drive.quota)
        user = {"kind": "drive#user", "displayName": account.name, "emailAddress": account.email, "me": True}
        about = {
            "kind": "drive#about",
            "user": {**user, "permissionId": account.id},
            "storageQuota": quota,
            "maxUploadSize": "5242880000000",
            "appInstalled": True,
        }
        return Reply(200, json=apply_fields(about, parse_fields(fields)))


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, Any], str, bytes]:
    """``multipart/related`` as googleapiclient sends it: the JSON metadata part, then the media part."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/related") or match is None:
        raise DriveError(400, "badContent", "Multipart uploads need Content-Type multipart/related with a boundary.")
    pieces = body.split(b"--" + match.group(1).encode())
    if not pieces[-1].startswith(b"--"):
        raise DriveError(400, "badContent", "Malformed multipart body: no closing boundary.")
    parts = []
    for piece in pieces[1:-1]:
        piece = piece.removeprefix(b"\r\n") if piece.startswith(b"\r\n") else piece.removeprefix(b"\n")
        crlf, lf = piece.find(b"\r\n\r\n"), piece.find(b"\n\n")
        cut, gap = (crlf, 4) if crlf != -1 and (lf == -1 or crlf < lf) else (lf, 2)
        if cut == -1:
            raise DriveError(400, "badContent", "Malformed multipart part.")
        head, content = piece[:cut], piece[cut + gap :]
        # The line break before the next boundary belongs to the boundary, in the style the part's own headers
        # use: googleapiclient writes bare LF, so a CR that ends the file's data is data, not line ending.
        newline = b"\r\n" if gap == 4 else b"\n"
        content = content.removesuffix(newline)
        part_headers = dict(line.partition(":")[::2] for line in head.decode("latin-1").splitlines())
        part_type = {k.strip().lower(): v.strip() for k, v in part_headers.items()}.get("content-type", OCTET_STREAM)
        parts.append((part_type, content))
    if len(parts) != 2:
        raise DriveError(400, "badContent", "A multipart/related upload must have exactly two parts.")
    (meta_type, meta_bytes), (media_type, media) = parts
    if not meta_type.startswith("application/json"):
        raise DriveError(400, "badContent", "The first part of a multipart upload must be the JSON metadata.")
    return DriveService._json_body(meta_bytes), media_type, media
