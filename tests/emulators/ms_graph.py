"""Emulated Microsoft Graph v1.0 OneDrive (personal drive, app folder) plus its pre-authenticated download host.

Plain http on 127.0.0.1 (the app's Graph base URL is configurable). Access tokens are the ones the identity
emulator minted: both share a :class:`~tests.emulators.ms_identity.Directory`.

Graph server (``graph.url`` = ``http://127.0.0.1:P/v1.0``), Bearer required on everything under ``/v1.0``:

* ``GET /me``, ``GET /me/drive`` (quota)
* item addressing, each also under ``/drives/{drive-id}`` instead of ``/me/drive``:
  ``/root``, ``/special/approot`` (created on first use, ``/Apps/Kite``), ``/items/{id}``, each optionally
  followed by ``:/{path}:`` (percent-encoded, the trailing colon optional when nothing follows), then optionally
  ``/children``, ``/content`` or ``/createUploadSession``
* ``GET`` item (``$select``), ``GET .../children`` (``$top``, ``$select``, ``$orderby``, ``@odata.nextLink`` with
  ``$skiptoken``; default page 200), ``POST .../children`` (create folder), ``DELETE`` item (204)
* ``GET .../content`` → 302 to the download host; ``PUT .../content`` simple upload (< 4 MiB,
  ``?@microsoft.graph.conflictBehavior=fail|replace|rename``, default replace)
* ``POST .../createUploadSession`` → ``uploadUrl`` at ``/up/{id}`` on this server (no Authorization allowed):
  ``PUT`` fragments with ``Content-Range`` (multiples of 320 KiB, sequential, < 60 MiB), ``GET`` status,
  ``DELETE`` cancel, ``POST`` commit (``deferCommit``)

Download host (another port): ``GET``/``HEAD /download/{token}`` with ``Range`` → 200/206/416; no
Authorization needed, and every request is logged in :attr:`GraphEmulator.download_requests` with whether it
carried one, so tests can assert the app does not leak its bearer token to the download host.

Faults: ``graph.faults`` / ``graph.download_faults`` are the shared :class:`~tests.emulators.faults.FaultScript`;
:meth:`GraphEmulator.throttle` adds a 429/503 with ``Retry-After`` and a Graph-style body.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import mimetypes
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tests.emulators.ms_identity import AccessToken, Account, Directory
from tests.emulators.server import EmulatorHandler, EmulatorServer

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
FRAGMENT_UNIT = 320 * KiB
MAX_FRAGMENT = 60 * MiB
SIMPLE_UPLOAD_LIMIT = 4 * MiB
DEFAULT_QUOTA = 5 * GiB
DEFAULT_PAGE = 200
MAX_PAGE = 1000


# ---------------------------------------------------------------------------------------------------------------
# QuickXorHash (PROTOCOLS.md §4). Private to the emulator: the app has its own implementation to be tested
# against this one and the published vectors.
# ---------------------------------------------------------------------------------------------------------------
_WIDTH = 160
_MASK = (1 << _WIDTH) - 1


class QuickXorHash:
    """Streaming QuickXorHash. Bytes at offsets i and i+160 get the same rotation (11*160 ≡ 0 mod 160), so
    the input is XOR-folded into a 160-byte accumulator indexed by offset mod 160 and rotated once at the end."""

    def __init__(self, data: bytes = b"") -> None:
        self._fold = 0  # little-endian: byte k holds the XOR of all input bytes at offsets ≡ k (mod 160)
        self._length = 0
        self.update(data)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        n = len(view)
        if not n:
            return
        pos = self._length % 160
        i = 0
        if pos:
            head = min(160 - pos, n)
            self._fold ^= int.from_bytes(view[:head], "little") << (8 * pos)
            i = head
        fold = self._fold
        while i + 160 <= n:
            fold ^= int.from_bytes(view[i : i + 160], "little")
            i += 160
        if i < n:
            fold ^= int.from_bytes(view[i:], "little")
        self._fold = fold
        self._length += n

    def digest(self) -> bytes:
        acc = 0
        for k, b in enumerate(self._fold.to_bytes(160, "little")):
            if b:
                shift = (11 * k) % _WIDTH
                acc ^= ((b << shift) | (b >> (_WIDTH - shift))) & _MASK
        out = bytearray(acc.to_bytes(20, "little"))
        for j, b in enumerate(self._length.to_bytes(8, "little")):
            out[12 + j] ^= b
        return bytes(out)

    def b64digest(self) -> str:
        return base64.b64encode(self.digest()).decode("ascii")


def quick_xor_hash(data: bytes) -> str:
    """Base64 QuickXorHash of ``data``, as in ``file.hashes.quickXorHash``."""
    return QuickXorHash(data).b64digest()


# ---------------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------------
class GraphError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        inner: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.inner, self.headers = status, code, message, inner, headers or {}


def _now() -> float:
    return time.time()


def iso(ts: float) -> str:
    moment = dt.datetime.fromtimestamp(ts, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


_INVALID_NAME_CHARS = re.compile(r'["*:<>?/\\|\x00-\x1f]')
_RESERVED_NAMES = {".lock", "con", "prn", "aux", "nul", "desktop.ini"} | {
    f"{p}{i}" for p in ("com", "lpt") for i in range(10)
}


def check_name(name: str) -> None:
    if (
        not name
        or len(name) > 255
        or _INVALID_NAME_CHARS.search(name)
        or name != name.strip(" ")
        or name.endswith(".")
        or name.casefold() in _RESERVED_NAMES
        or name.startswith("~$")
        or "_vti_" in name
    ):
        raise GraphError(400, "invalidRequest", f"The provided name is not valid: {name!r}")


@dataclass
class DriveItem:
    id: str
    name: str
    parent_id: str | None
    is_folder: bool
    data: bytes = b""
    created: float = field(default_factory=_now)
    modified: float = field(default_factory=_now)
    fs_created: float | None = None  # fileSystemInfo (client-supplied times), default = server times
    fs_modified: float | None = None
    special: str | None = None
    version: int = 1
    quick_xor: str = ""
    sha1: str = ""

    def set_data(self, data: bytes) -> None:
        self.data = bytes(data)
        self.quick_xor = quick_xor_hash(self.data)
        self.sha1 = hashlib.sha1(self.data).hexdigest().upper()

    @property
    def mime_type(self) -> str:
        return mimetypes.guess_type(self.name)[0] or "application/octet-stream"


class Drive:
    """One personal OneDrive: a tree of :class:`DriveItem` keyed by id. Names are case-insensitive."""

    def __init__(self, account: Account, quota: int, app_name: str) -> None:
        self.account = account
        self.id = account.cid
        self.quota_total = quota
        self.app_name = app_name
        self.items: dict[str, DriveItem] = {}
        self._counter = 100
        root = DriveItem(self.new_id(), "root", None, True)
        self.items[root.id] = root
        self.root_id = root.id
        self.approot_id: str | None = None

    def new_id(self) -> str:
        self._counter += 1
        return f"{self.id.upper()}!{self._counter}"

    # -- lookups ----------------------------------------------------------------------------------------------
    def get(self, item_id: str) -> DriveItem:
        if item_id == "root":
            item_id = self.root_id
        item = self.items.get(item_id)
        if item is None:
            raise GraphError(404, "itemNotFound", "The resource could not be found.")
        return item

    def children(self, folder_id: str) -> list[DriveItem]:
        found = [i for i in self.items.values() if i.parent_id == folder_id]
        return sorted(found, key=lambda i: (i.name.casefold(), i.name))

    def child(self, folder_id: str, name: str) -> DriveItem | None:
        key = name.casefold()
        for item in self.items.values():
            if item.parent_id == folder_id and item.name.casefold() == key:
                return item
        return None

    def ancestors(self, item: DriveItem) -> list[DriveItem]:
        chain = []
        current = item
        while current.parent_id is not None:
            current = self.items[current.parent_id]
            chain.append(current)
        return chain

    def path_of(self, item: DriveItem) -> str:
        """The ``parentReference.path`` form of the item's own location: ``/drive/root:/Apps/Kite``."""
        names = [a.name for a in reversed(self.ancestors(item)) if a.parent_id is not None]
        if item.parent_id is not None:
            names.append(item.name)
        return "/drive/root:" + "".join("/" + n for n in names)

    def in_approot(self, item: DriveItem) -> bool:
        return self.approot_id is not None and (
            item.id == self.approot_id or any(a.id == self.approot_id for a in self.ancestors(item))
        )

    def size_of(self, item: DriveItem) -> int:
        if not item.is_folder:
            return len(item.data)
        return sum(self.size_of(c) for c in self.children(item.id))

    def used(self) -> int:
        return sum(len(i.data) for i in self.items.values() if not i.is_folder)

    # -- changes ----------------------------------------------------------------------------------------------
    def ensure_approot(self) -> DriveItem:
        if self.approot_id is None or self.approot_id not in self.items:
            apps = self.child(self.root_id, "Apps") or self._add_folder(self.root_id, "Apps")
            app = self.child(apps.id, self.app_name) or self._add_folder(apps.id, self.app_name)
            app.special = "approot"
            self.approot_id = app.id
        return self.items[self.approot_id]

    def _add_folder(self, parent_id: str, name: str) -> DriveItem:
        folder = DriveItem(self.new_id(), name, parent_id, True)
        self.items[folder.id] = folder
        self._touch_parents(folder)
        return folder

    def _touch_parents(self, item: DriveItem) -> None:
        now = _now()
        for ancestor in self.ancestors(item):
            ancestor.modified = now
            ancestor.version += 1

    def resolve(self, base: DriveItem, parts: list[str]) -> DriveItem:
        current = base
        for part in parts:
            nxt = self.child(current.id, part) if current.is_folder else None
            if nxt is None:
                raise GraphError(404, "itemNotFound", "The resource could not be found.")
            current = nxt
        return current

    def ensure_folders(self, base: DriveItem, parts: list[str]) -> DriveItem:
        current = base
        for part in parts:
            check_name(part)
            nxt = self.child(current.id, part)
            if nxt is None:
                nxt = self._add_folder(current.id, part)
            elif not nxt.is_folder:
                raise GraphError(409, "nameAlreadyExists", f"A file named {part!r} is in the way of the path.")
            current = nxt
        return current

    def unique_name(self, parent_id: str, name: str) -> str:
        stem, dot, ext = name.rpartition(".")
        if not stem:  # no extension, or a dotfile
            stem, dot, ext = name, "", ""
        n = 1
        while True:
            candidate = f"{stem} {n}{dot}{ext}"
            if self.child(parent_id, candidate) is None:
                return candidate
            n += 1

    def check_quota(self, new_bytes: int, replaced_bytes: int = 0) -> None:
        if self.used() - replaced_bytes + new_bytes > self.quota_total:
            raise GraphError(507, "quotaLimitReached", "Insufficient Space Available")

    def write_file(
        self,
        parent: DriveItem,
        name: str,
        data: bytes,
        conflict: str,
        *,
        fs_created: float | None = None,
        fs_modified: float | None = None,
        target: DriveItem | None = None,
    ) -> tuple[int, DriveItem]:
        """Create or replace a file; (201 created | 200 replaced, item). ``target`` replaces that item by id."""
        if target is None:
            check_name(name)
            if conflict not in ("fail", "replace", "rename"):
                raise GraphError(400, "invalidRequest", f"Invalid conflictBehavior {conflict!r}")
            existing = self.child(parent.id, name)
            if existing is not None:
                if conflict == "fail":
                    raise GraphError(409, "nameAlreadyExists", "The specified item name already exists.")
                if conflict == "rename":
                    name, existing = self.unique_name(parent.id, name), None
                elif existing.is_folder:
                    raise GraphError(409, "nameAlreadyExists", "A folder with this name already exists.")
            target = existing
        elif target.is_folder:
            raise GraphError(400, "invalidRequest", "Cannot write content to a folder.")
        self.check_quota(len(data), len(target.data) if target is not None else 0)
        now = _now()
        if target is not None:
            target.set_data(data)
            target.modified = now
            target.version += 1
            if fs_modified is not None:
                target.fs_modified = fs_modified
            if fs_created is not None:
                target.fs_created = fs_created
            self._touch_parents(target)
            return 200, target
        item = DriveItem(self.new_id(), name, parent.id, False, fs_created=fs_created, fs_modified=fs_modified)
        item.set_data(data)
        self.items[item.id] = item
        self._touch_parents(item)
        return 201, item

    def delete(self, item: DriveItem) -> None:
        if item.id == self.root_id:
            raise GraphError(403, "accessDenied", "The root folder cannot be deleted.")
        for child in self.children(item.id):
            self.delete(child)
        self.items.pop(item.id, None)
        if item.id == self.approot_id:
            self.approot_id = None
        if item.parent_id in self.items:
            self._touch_parents(item)


@dataclass
class UploadSession:
    id: str
    upload_url: str
    drive: Drive
    parent_id: str
    name: str
    conflict: str
    defer_commit: bool
    expires_at: float
    declared_size: int | None = None
    target_id: str | None = None  # createUploadSession on /items/{id}: replace that item
    fs_created: float | None = None
    fs_modified: float | None = None
    total: int | None = None
    data: bytearray = field(default_factory=bytearray)
    state: str = "active"  # active | awaiting-commit | completed | cancelled | expired | failed
    result_item_id: str | None = None
    fragments: list[tuple[int, int, int]] = field(default_factory=list)  # (first byte, last byte, status)
    authorization_seen: bool = False

    @property
    def received(self) -> int:
        return len(self.data)

    @property
    def next_expected_ranges(self) -> list[str]:
        if self.total is not None and self.received >= self.total:
            return []
        return [f"{self.received}-"]


@dataclass
class DownloadRequest:
    method: str
    path: str
    range: str | None
    authorization: bool
    status: int = 0
    item_id: str | None = None


# ---------------------------------------------------------------------------------------------------------------
# The emulator
# ---------------------------------------------------------------------------------------------------------------
class GraphEmulator:
    """Graph OneDrive + download host. See the module docstring."""

    def __init__(
        self,
        directory: Directory | None = None,
        *,
        app_name: str = "Kite",
        quota: int = DEFAULT_QUOTA,
        authorization_uri: str = "https://login.microsoftonline.com/common/oauth2/authorize",
    ) -> None:
        self.directory = directory or Directory()
        self.lock = self.directory.lock
        self.app_name = app_name
        self.default_quota = quota
        self.authorization_uri = authorization_uri  # advertised in WWW-Authenticate on 401
        self.enforce_scopes = True
        self.simple_upload_limit: int | None = SIMPLE_UPLOAD_LIMIT
        self.download_url_lifetime = 600.0
        self.session_lifetime = 3600.0
        self.drives: dict[str, Drive] = {}
        self.sessions: list[UploadSession] = []
        self.download_requests: list[DownloadRequest] = []
        self._sessions_by_id: dict[str, UploadSession] = {}
        self._download_tokens: dict[str, tuple[Drive, str, float]] = {}
        self._download_cuts: list[int] = []
        self.server = EmulatorServer(_GraphHandler)
        self.server.emulator = self  # type: ignore[attr-defined]
        self.download_server = EmulatorServer(_DownloadHandler)
        self.download_server.emulator = self  # type: ignore[attr-defined]

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> GraphEmulator:
        self.server.start()
        self.download_server.start()
        return self

    def stop(self) -> None:
        stop_all([self.server, self.download_server])

    def __enter__(self) -> GraphEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses / logs -----------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def url(self) -> str:
        """The Graph base URL the app uses, like ``https://graph.microsoft.com/v1.0``."""
        return self.server.base_url + "/v1.0"

    @property
    def download_base_url(self) -> str:
        return self.download_server.base_url

    @property
    def faults(self):
        return self.server.faults

    @property
    def download_faults(self):
        return self.download_server.faults

    @property
    def requests(self):
        return self.server.requests

    def throttle(
        self,
        method: str = "*",
        pattern: str = r"^/v1\.0/",
        *,
        status: int = 429,
        retry_after: int | None = 2,
        times: int = 1,
        after: int = 0,
    ):
        """The next ``times`` matching requests get a Graph throttling answer (429 / 503 + Retry-After)."""
        code = "activityLimitReached" if status == 429 else "serviceNotAvailable"
        message = "The request has been throttled" if status == 429 else "Service unavailable"
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return self.server.faults.add(
            method, pattern, status=status, json=_error_body(code, message), headers=headers, times=times, after=after
        )

    # -- test helpers ---------------------------------------------------------------------------------------
    def drive(self, username: str | None = None) -> Drive:
        with self.lock:
            account = self.directory.account(username) if username else self.directory.current_account
            drive = self.drives.get(account.cid)
            if drive is None:
                drive = self.drives[account.cid] = Drive(account, self.default_quota, self.app_name)
            return drive

    def approot(self, username: str | None = None) -> DriveItem:
        with self.lock:
            return self.drive(username).ensure_approot()

    def all_items(self, username: str | None = None) -> list[DriveItem]:
        """Every file and folder except the drive root."""
        with self.lock:
            drive = self.drive(username)
            return [i for i in drive.items.values() if i.id != drive.root_id]

    def items_named(self, name: str, username: str | None = None) -> list[DriveItem]:
        with self.lock:
            return [i for i in self.all_items(username) if i.name == name]

    def item(self, item_id: str, username: str | None = None) -> DriveItem:
        with self.lock:
            return self.drive(username).get(item_id)

    def item_bytes(self, item_id: str, username: str | None = None) -> bytes:
        return self.item(item_id, username).data

    def path_of(self, item: DriveItem, username: str | None = None) -> str:
        """``/Apps/Kite/sub/file.txt``-style path of an item."""
        with self.lock:
            return self.drive(username).path_of(item).removeprefix("/drive/root:") or "/"

    def add_item(
        self,
        path: str,
        data: bytes = b"",
        *,
        folder: bool = False,
        under: str = "approot",
        modified: float | dt.datetime | None = None,
        username: str | None = None,
    ) -> DriveItem:
        """Put a file (or folder) at ``path``, relative to the app folder (``under="root"``: the drive root);
        missing parent folders are created. Replaces an existing file of the same name."""
        with self.lock:
            drive = self.drive(username)
            base = drive.ensure_approot() if under == "approot" else drive.items[drive.root_id]
            parts = [p for p in path.split("/") if p]
            if not parts:
                raise ValueError("empty path")
            if folder:
                item = drive.ensure_folders(base, parts)
            else:
                parent = drive.ensure_folders(base, parts[:-1])
                _, item = drive.write_file(parent, parts[-1], data, "replace")
            if modified is not None:
                ts = modified.timestamp() if isinstance(modified, dt.datetime) else float(modified)
                item.modified = item.fs_modified = ts
            return item

    def set_quota(self, total: int, username: str | None = None) -> None:
        with self.lock:
            self.drive(username).quota_total = total

    def session(self, key: str | UploadSession) -> UploadSession:
        with self.lock:
            if isinstance(key, UploadSession):
                return key
            for s in self.sessions:
                if key in (s.id, s.upload_url):
                    return s
            raise KeyError(key)

    def expire_session(self, session: str | UploadSession | None = None) -> None:
        """Expire one upload session (by object, id or uploadUrl), or every open one."""
        with self.lock:
            targets = [self.session(session)] if session is not None else list(self.sessions)
            for s in targets:
                if s.state in ("active", "awaiting-commit"):
                    s.state = "expired"

    def cut_next_download(self, after_bytes: int, times: int = 1) -> None:
        """The next ``times`` downloads send their real headers and first ``after_bytes`` bytes of the body
        (of the requested range), then drop the connection: for testing resumption with ``Range``."""
        with self.lock:
            self._download_cuts.extend([after_bytes] * times)

    def expire_download_urls(self) -> None:
        with self.lock:
            for token, (drive, item_id, _) in list(self._download_tokens.items()):
                self._download_tokens[token] = (drive, item_id, 0.0)

    # -- JSON -----------------------------------------------------------------------------------------------
    def download_url(self, drive: Drive, item: DriveItem) -> str:
        token = secrets.token_urlsafe(32)
        self._download_tokens[token] = (drive, item.id, _now() + self.download_url_lifetime)
        return f"{self.download_base_url}/download/{token}"

    def item_json(self, drive: Drive, item: DriveItem, select: set[str] | None = None) -> dict[str, Any]:
        owner = {"user": {"displayName": drive.account.name, "id": drive.account.cid}}
        data: dict[str, Any] = {}
        if not item.is_folder and (select is None or "@microsoft.graph.downloadurl" in select):
            data["@microsoft.graph.downloadUrl"] = self.download_url(drive, item)
        data.update(
            {
                "createdBy": owner,
                "createdDateTime": iso(item.created),
                "cTag": f"adDo{item.id}.{item.version}",
                "eTag": f"a{item.id}.{item.version}",
                "id": item.id,
                "lastModifiedBy": owner,
                "lastModifiedDateTime": iso(item.modified),
                "name": item.name,
                "size": drive.size_of(item),
                "webUrl": f"https://onedrive.live.com/?cid={drive.id}&id={quote(item.id)}",
                "fileSystemInfo": {
                    "createdDateTime": iso(item.fs_created if item.fs_created is not None else item.created),
                    "lastModifiedDateTime": iso(item.fs_modified if item.fs_modified is not None else item.modified),
                },
            }
        )
        reference: dict[str, Any] = {"driveId": drive.id, "driveType": "personal"}
        if item.parent_id is not None:
            parent = drive.items[item.parent_id]
            reference.update({"id": parent.id, "name": parent.name, "path": drive.path_of(parent)})
        data["parentReference"] = reference
        if item.is_folder:
            data["folder"] = {"childCount": len(drive.children(item.id)), "view": {"viewType": "thumbnails"}}
            if item.special:
                data["specialFolder"] = {"name": item.special}
            if item.parent_id is None:
                data["root"] = {}
        else:
            data["file"] = {
                "mimeType": item.mime_type,
                "hashes": {"quickXorHash": item.quick_xor, "sha1Hash": item.sha1},
            }
        if select:
            data = {k: v for k, v in data.items() if k.lower() in select}
        return data

    def user_json(self, account: Account) -> dict[str, Any]:
        first, _, last = account.name.partition(" ")
        return {
            "@odata.context": f"{self.url}/$metadata#users/$entity",
            "displayName": account.name,
            "surname": last or None,
            "givenName": first,
            "id": account.cid,
            "userPrincipalName": account.username,
            "businessPhones": [],
            "jobTitle": None,
            "mail": account.username,
            "mobilePhone": None,
            "officeLocation": None,
            "preferredLanguage": None,
        }

    def drive_json(self, drive: Drive) -> dict[str, Any]:
        used = drive.used()
        remaining = max(0, drive.quota_total - used)
        if used >= drive.quota_total:
            state = "exceeded"
        elif remaining < drive.quota_total * 0.01:
            state = "critical"
        elif remaining < drive.quota_total * 0.10:
            state = "nearing"
        else:
            state = "normal"
        return {
            "@odata.context": f"{self.url}/$metadata#drives/$entity",
            "id": drive.id,
            "driveType": "personal",
            "name": "OneDrive",
            "owner": {"user": {"displayName": drive.account.name, "id": drive.account.cid}},
            "quota": {
                "deleted": 0,
                "remaining": remaining,
                "state": state,
                "total": drive.quota_total,
                "used": used,
                "storagePlanInformation": {"upgradeAvailable": True},
            },
        }


def stop_all(servers: list[EmulatorServer]) -> None:
    """Stop servers in parallel: each ``shutdown()`` waits up to one poll interval."""
    threads = [threading.Thread(target=server.stop, daemon=True) for server in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)


def _error_body(code: str, message: str, inner: str | None = None, *, upload: bool = False) -> dict[str, Any]:
    meta = {"date": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), "request-id": str(uuid.uuid4())}
    error: dict[str, Any] = {"code": code, "message": message}
    if upload:  # the upload URL is OneDrive's own API: lowercase "innererror" carrying the specific code
        error["innererror"] = {"code": inner, **meta} if inner else meta
    else:
        error["innerError"] = {**({"code": inner} if inner else {}), **meta, "client-request-id": meta["request-id"]}
    return {"error": error}


# ---------------------------------------------------------------------------------------------------------------
# HTTP handlers
# ---------------------------------------------------------------------------------------------------------------
_ADDRESS = re.compile(
    r"^/(?:me/drive|drives/(?P<drive>[^/]+))"
    r"(?:/(?P<base>root|special/approot|special/[^/:]+|items/(?P<id>[^/:]+))"
    r"(?::(?P<path>/[^:]*):?)?"
    r"(?P<action>/children|/content|/createUploadSession)?)?/?$"
)
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_READ_SCOPES = {"files.read", "files.read.all", "files.readwrite", "files.readwrite.all"}
_WRITE_SCOPES = {"files.readwrite", "files.readwrite.all"}
_APP_SCOPES = {"files.readwrite.appfolder"}
_USER_SCOPES = {"user.read", "user.readwrite", "user.readbasic.all", "user.read.all", "user.readwrite.all"}


def _scopes(at: AccessToken) -> set[str]:
    return {s.lower().removeprefix("https://graph.microsoft.com/") for s in at.scopes}


class _GraphHandler(EmulatorHandler):
    disable_nagle_algorithm = True  # else Nagle + delayed ACK cost ~40 ms per request on loopback

    @property
    def emulator(self) -> GraphEmulator:
        return self.server.emulator  # type: ignore[attr-defined,no-any-return]

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        request_id = str(uuid.uuid4())
        extra = {"request-id": request_id, "client-request-id": self.headers.get("client-request-id") or request_id}
        super().send_json(status, payload, {**extra, **(headers or {})})

    def send_error_json(self, error: GraphError, *, upload: bool = False) -> None:
        self.send_json(error.status, _error_body(error.code, error.message, error.inner, upload=upload), error.headers)

    def route(self) -> None:
        parts = urlsplit(self.path)
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        if chunked:  # the base server reads Content-Length bodies only; the rest would poison the connection
            self.close_connection = True
            return self.send_error_json(GraphError(411, "invalidRequest", "Content-Length is required."))
        if parts.path.startswith("/up/"):
            return self._upload_url(parts.path[len("/up/") :])
        if not parts.path.startswith("/v1.0/"):
            return self.send_error_json(GraphError(404, "itemNotFound", f"No such endpoint: {parts.path}"))
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        emulator = self.emulator
        try:
            at = self._authenticate()
            with emulator.lock:
                status, payload, headers = self._api(at, parts.path[len("/v1.0") :], query)
        except GraphError as error:
            return self.send_error_json(error)
        if payload is None:
            return self.send_bytes(status, b"", headers)
        return self.send_json(status, payload, headers)

    def _authenticate(self) -> AccessToken:
        header = self.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        at, message = self.emulator.directory.check_access_token(token.strip() if scheme.lower() == "bearer" else None)
        if at is None:
            challenge = (
                f'Bearer realm="", authorization_uri="{self.emulator.authorization_uri}", '
                'client_id="00000003-0000-0000-c000-000000000000"'
            )
            raise GraphError(401, "InvalidAuthenticationToken", message, headers={"WWW-Authenticate": challenge})
        return at

    # -- /v1.0 ----------------------------------------------------------------------------------------------
    def _api(self, at: AccessToken, path: str, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        emulator = self.emulator
        scopes = _scopes(at)
        if path == "/me" and self.command == "GET":
            if emulator.enforce_scopes and not scopes & _USER_SCOPES:
                raise GraphError(403, "accessDenied", "Insufficient privileges to complete the operation.")
            return 200, emulator.user_json(at.account), {}
        match = _ADDRESS.match(path)
        if match is None:
            raise GraphError(400, "invalidRequest", f"Unsupported by the Graph emulator: {self.command} {path}")
        drive = emulator.drive(at.account.username)
        if match["drive"] is not None and unquote(match["drive"]).lower() != drive.id:
            raise GraphError(404, "itemNotFound", "The drive could not be found.")
        can_read_all = not emulator.enforce_scopes or bool(scopes & _READ_SCOPES)
        can_write_all = not emulator.enforce_scopes or bool(scopes & _WRITE_SCOPES)
        app_folder = bool(scopes & _APP_SCOPES)
        if not (can_read_all or app_folder):
            raise GraphError(403, "accessDenied", "Access denied")
        if match["base"] is None:
            if self.command != "GET":
                raise GraphError(405, "invalidRequest", "Method not allowed.")
            return 200, emulator.drive_json(drive), {}

        base_name = match["base"]
        if base_name == "root":
            base = drive.items[drive.root_id]
        elif base_name == "special/approot":
            base = drive.ensure_approot()
        elif base_name.startswith("special/"):
            raise GraphError(400, "invalidRequest", f"The Graph emulator only knows special/approot: {base_name}")
        else:
            base = drive.get(unquote(match["id"]))
        parts = [unquote(p) for p in (match["path"] or "").split("/") if p]
        action = (match["action"] or "").lstrip("/")
        writing = self.command in ("PUT", "POST", "DELETE", "PATCH")

        def allowed(item: DriveItem) -> None:
            if writing and can_write_all:
                return
            if not writing and can_read_all:
                return
            if app_folder and drive.in_approot(item):
                return
            raise GraphError(403, "accessDenied", "Access denied")

        if self.command == "GET":
            item = drive.resolve(base, parts)
            allowed(item)
            select = _select(query)
            if action == "":
                return 200, emulator.item_json(drive, item, select), {}
            if action == "children":
                return self._children(drive, item, query, select)
            if action == "content":
                if item.is_folder:
                    raise GraphError(400, "invalidRequest", "Cannot download a folder.")
                return 302, None, {"Location": emulator.download_url(drive, item)}
        elif self.command == "DELETE" and action == "":
            item = drive.resolve(base, parts)
            allowed(item)
            drive.delete(item)
            return 204, None, {}
        elif self.command == "PUT" and action == "content":
            return self._simple_upload(drive, base, parts, query, allowed)
        elif self.command == "POST" and action == "createUploadSession":
            return self._create_session(drive, base, parts, query, allowed)
        elif self.command == "POST" and action == "children":
            return self._create_folder(drive, drive.resolve(base, parts), allowed)
        raise GraphError(400, "invalidRequest", f"Unsupported by the Graph emulator: {self.command} {path}")

    def _children(
        self, drive: Drive, folder: DriveItem, query: dict[str, str], select: set[str] | None
    ) -> tuple[int, Any, dict[str, str]]:
        if not folder.is_folder:
            return 200, {"value": []}, {}
        try:
            top = int(query.get("$top", DEFAULT_PAGE))
        except ValueError:
            raise GraphError(400, "invalidRequest", "Invalid $top value.") from None
        if top <= 0:
            raise GraphError(400, "invalidRequest", "Invalid $top value.")
        top = min(top, MAX_PAGE)
        items = drive.children(folder.id)
        order = (query.get("$orderby") or "").strip()
        if order:
            prop, _, direction = order.partition(" ")
            keys = {
                "name": lambda i: i.name.casefold(),
                "lastmodifieddatetime": lambda i: i.modified,
                "size": lambda i: drive.size_of(i),
            }
            key = keys.get(prop.lower())
            if key is None:
                raise GraphError(400, "invalidRequest", f"Unsupported $orderby: {order}")
            items.sort(key=key, reverse=direction.strip().lower() == "desc")
        token = query.get("$skiptoken") or query.get("$skipToken")
        offset = 0
        if token:
            try:
                state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
                offset = int(state["o"])
                if state["f"] != folder.id:
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                raise GraphError(400, "invalidRequest", "Invalid $skiptoken.") from None
        page = items[offset : offset + top]
        payload: dict[str, Any] = {
            "@odata.context": f"{self.emulator.url}/$metadata#users('{quote(drive.account.username)}')/drive/items",
            "value": [self.emulator.item_json(drive, i, select) for i in page],
        }
        if offset + top < len(items):
            skip = base64.urlsafe_b64encode(json.dumps({"o": offset + top, "f": folder.id}).encode()).decode()
            params = [(k, v) for k, v in query.items() if k.lower() != "$skiptoken"]
            params.append(("$skiptoken", skip.rstrip("=")))
            link_query = "&".join(f"{k}={quote(v, safe=',$()')}" for k, v in params)
            payload["@odata.nextLink"] = f"{self.emulator.base_url}{urlsplit(self.path).path}?{link_query}"
        return 200, payload, {}

    def _simple_upload(self, drive, base, parts, query, allowed) -> tuple[int, Any, dict[str, str]]:
        emulator = self.emulator
        limit = emulator.simple_upload_limit
        if limit is not None and len(self.body) > limit:
            raise GraphError(
                413, "invalidRequest", f"Simple upload is limited to {limit} bytes here; use createUploadSession."
            )
        conflict = query.get("@microsoft.graph.conflictBehavior", "replace")
        if not parts:  # PUT /items/{id}/content: replace that file
            allowed(base)
            parent = drive.items[base.parent_id or base.id]
            status, item = drive.write_file(parent, base.name, self.body, "replace", target=base)
        else:
            allowed(base)  # before creating any folder on the way
            parent = drive.ensure_folders(base, parts[:-1])
            status, item = drive.write_file(parent, parts[-1], self.body, conflict)
        return status, emulator.item_json(drive, item), {}

    def _create_folder(self, drive: Drive, parent: DriveItem, allowed) -> tuple[int, Any, dict[str, str]]:
        allowed(parent)
        try:
            body = json.loads(self.body or b"{}")
        except ValueError:
            raise GraphError(400, "invalidRequest", "Invalid JSON body.") from None
        name = body.get("name")
        if not isinstance(name, str) or "folder" not in body:
            raise GraphError(400, "invalidRequest", "Creating children needs a name and a folder facet.")
        check_name(name)
        conflict = body.get("@microsoft.graph.conflictBehavior", "fail")
        existing = drive.child(parent.id, name)
        if existing is not None:
            if conflict == "fail":
                raise GraphError(409, "nameAlreadyExists", "The specified item name already exists.")
            if conflict == "rename":
                name = drive.unique_name(parent.id, name)
            elif existing.is_folder:
                return 201, self.emulator.item_json(drive, existing), {}
            else:
                drive.delete(existing)
        folder = drive.ensure_folders(parent, [name])
        return 201, self.emulator.item_json(drive, folder), {}

    def _create_session(self, drive, base, parts, query, allowed) -> tuple[int, Any, dict[str, str]]:
        emulator = self.emulator
        try:
            body = json.loads(self.body) if self.body.strip() else {}
        except ValueError:
            raise GraphError(400, "invalidRequest", "Invalid JSON body.") from None
        item_props = body.get("item") or {}
        key = "@microsoft.graph.conflictBehavior"
        conflict = item_props.get(key) or query.get(key) or "fail"
        if conflict not in ("fail", "replace", "rename"):
            raise GraphError(400, "invalidRequest", f"Invalid conflictBehavior {conflict!r}")
        size = item_props.get("fileSize", body.get("fileSize"))
        if size is not None and (not isinstance(size, int) or size < 0):
            raise GraphError(400, "invalidRequest", "Invalid fileSize.")
        fs_info = item_props.get("fileSystemInfo") or {}
        try:
            fs_created = parse_iso(fs_info["createdDateTime"]) if fs_info.get("createdDateTime") else None
            fs_modified = parse_iso(fs_info["lastModifiedDateTime"]) if fs_info.get("lastModifiedDateTime") else None
        except ValueError:
            raise GraphError(400, "invalidRequest", "Invalid fileSystemInfo date.") from None
        target_id = None
        if parts:
            name = parts[-1]
            check_name(name)
            if item_props.get("name") not in (None, name):
                raise GraphError(400, "invalidRequest", "The name in the request body must match the path.")
            allowed(base)  # before creating any folder on the way
            parent = drive.ensure_folders(base, parts[:-1])
            existing = drive.child(parent.id, name)
            if existing is not None and (conflict == "fail" or (conflict == "replace" and existing.is_folder)):
                raise GraphError(409, "nameAlreadyExists", "The specified item name already exists.")
            replaced = len(existing.data) if existing is not None and conflict == "replace" else 0
        else:
            if base.is_folder:
                raise GraphError(400, "invalidRequest", "createUploadSession needs a file path or a file item.")
            allowed(base)
            name, parent, target_id, replaced = base.name, drive.items[base.parent_id], base.id, len(base.data)
        if size is not None:
            drive.check_quota(size, replaced)
        session_id = secrets.token_urlsafe(24)
        session = UploadSession(
            id=session_id,
            upload_url=f"{emulator.base_url}/up/{session_id}",
            drive=drive,
            parent_id=parent.id,
            name=name,
            conflict=conflict,
            defer_commit=bool(body.get("deferCommit")),
            expires_at=_now() + emulator.session_lifetime,
            declared_size=size,
            target_id=target_id,
            fs_created=fs_created,
            fs_modified=fs_modified,
        )
        emulator.sessions.append(session)
        emulator._sessions_by_id[session_id] = session
        return (
            200,
            {
                "@odata.context": f"{emulator.url}/$metadata#microsoft.graph.uploadSession",
                "uploadUrl": session.upload_url,
                "expirationDateTime": iso(session.expires_at),
                "nextExpectedRanges": ["0-"],
            },
            {},
        )

    # -- the upload URL -------------------------------------------------------------------------------------
    def _upload_url(self, session_id: str) -> None:
        emulator = self.emulator
        with emulator.lock:
            session = emulator._sessions_by_id.get(session_id)
            if session is not None and session.state in ("active", "awaiting-commit") and _now() > session.expires_at:
                session.state = "expired"
            try:
                if session is None or session.state not in ("active", "awaiting-commit"):
                    raise GraphError(404, "itemNotFound", "The upload session was not found.", "uploadSessionNotFound")
                if self.headers.get("Authorization"):
                    session.authorization_seen = True
                    raise GraphError(401, "unauthenticated", "The upload URL is pre-authenticated: do not send an "
                                     "Authorization header.")  # fmt: skip
                if self.command == "GET":
                    status, payload = 200, self._session_status(session)
                elif self.command == "DELETE":
                    session.state = "cancelled"
                    status, payload = 204, None
                elif self.command == "PUT":
                    status, payload = self._fragment(session)
                elif self.command == "POST":
                    if session.state != "awaiting-commit":
                        raise GraphError(400, "invalidRequest", "The upload session is not complete.",
                                         "uploadSessionIncomplete")  # fmt: skip
                    status, payload = self._commit(session)
                else:
                    raise GraphError(405, "invalidRequest", "Method not allowed.")
            except GraphError as error:
                status, payload = error.status, _error_body(error.code, error.message, error.inner, upload=True)
                headers = error.headers
            else:
                headers = {}
            if session is not None and self.command == "PUT":
                first, last = _fragment_bounds(self.headers.get("Content-Range"))
                session.fragments.append((first, last, status))
        if payload is None:
            self.send_bytes(status, b"", headers)
        else:
            self.send_json(status, payload, headers)

    def _session_status(self, session: UploadSession) -> dict[str, Any]:
        return {"expirationDateTime": iso(session.expires_at), "nextExpectedRanges": session.next_expected_ranges}

    def _fragment(self, session: UploadSession) -> tuple[int, Any]:
        header = self.headers.get("Content-Range")
        match = _CONTENT_RANGE.match((header or "").strip())
        if match is None or match.group(3) == "*":
            raise GraphError(400, "invalidRequest", f"Invalid Content-Range header: {header!r}", "invalidRange")
        first, last, total = int(match.group(1)), int(match.group(2)), int(match.group(3))
        if last < first or last >= total:
            raise GraphError(400, "invalidRequest", f"Invalid Content-Range header: {header!r}", "invalidRange")
        length = last - first + 1
        if len(self.body) != length:
            raise GraphError(400, "invalidRequest", f"Declared fragment length ({length}) does not match the "
                             f"provided number of bytes ({len(self.body)}).", "fragmentLengthMismatch")  # fmt: skip
        if length >= MAX_FRAGMENT:
            raise GraphError(413, "invalidRequest", "Fragments must be smaller than 60 MiB.", "fragmentTooLarge")
        expected_total = session.total if session.total is not None else session.declared_size
        if expected_total is not None and total != expected_total:
            raise GraphError(400, "invalidRequest", f"The total length {total} differs from the session's "
                             f"{expected_total}.", "fileSizeMismatch")  # fmt: skip
        if session.state == "awaiting-commit" or first < session.received:
            raise GraphError(416, "invalidRange", "Uploaded fragment overlaps with existing data.", "fragmentOverlap")
        if first > session.received:
            raise GraphError(416, "invalidRange", f"Fragment starts at {first}, expected {session.received}.",
                             "fragmentOutOfOrder")  # fmt: skip
        if last + 1 < total and length % FRAGMENT_UNIT:
            raise GraphError(400, "invalidRequest", "Fragments other than the last must be a multiple of 320 KiB "
                             "(327680 bytes).", "invalidFragmentSize")  # fmt: skip
        if session.total is None:
            replaced = 0
            if session.conflict == "replace" or session.target_id:
                old = session.drive.items.get(session.target_id or "") or session.drive.child(
                    session.parent_id, session.name
                )
                replaced = len(old.data) if old is not None else 0
            session.drive.check_quota(total, replaced)
            session.total = total
        session.data += self.body
        session.expires_at = _now() + self.emulator.session_lifetime
        if session.received < total:
            return 202, self._session_status(session)
        if session.defer_commit:
            session.state = "awaiting-commit"
            return 202, self._session_status(session)
        return self._commit(session)

    def _commit(self, session: UploadSession) -> tuple[int, Any]:
        drive = session.drive
        try:
            if session.target_id is not None:
                target = drive.get(session.target_id)
                status, item = drive.write_file(
                    drive.get(target.parent_id or target.id), target.name, bytes(session.data), "replace",
                    fs_created=session.fs_created, fs_modified=session.fs_modified, target=target,
                )  # fmt: skip
            else:
                parent = drive.get(session.parent_id)
                status, item = drive.write_file(
                    parent, session.name, bytes(session.data), session.conflict,
                    fs_created=session.fs_created, fs_modified=session.fs_modified,
                )  # fmt: skip
        except GraphError:
            session.state = "failed"
            raise
        session.state = "completed"
        session.result_item_id = item.id
        return status, self.emulator.item_json(drive, item)


def _fragment_bounds(header: str | None) -> tuple[int, int]:
    match = _CONTENT_RANGE.match((header or "").strip())
    return (int(match.group(1)), int(match.group(2))) if match else (-1, -1)


def _select(query: dict[str, str]) -> set[str] | None:
    raw = query.get("$select")
    if not raw:
        return None
    return {s.strip().lower() for s in raw.split(",") if s.strip()}


class _DownloadHandler(EmulatorHandler):
    disable_nagle_algorithm = True  # else Nagle + delayed ACK cost ~40 ms per request on loopback
    do_HEAD = EmulatorHandler._dispatch

    @property
    def emulator(self) -> GraphEmulator:
        return self.server.emulator  # type: ignore[attr-defined,no-any-return]

    def route(self) -> None:
        emulator = self.emulator
        path = urlsplit(self.path).path
        record = DownloadRequest(
            self.command, self.path, self.headers.get("Range"), self.headers.get("Authorization") is not None
        )
        with emulator.lock:
            emulator.download_requests.append(record)
            token = path.removeprefix("/download/") if path.startswith("/download/") else ""
            entry = emulator._download_tokens.get(token)
            item = None
            if entry is not None:
                drive, item_id, expires_at = entry
                record.item_id = item_id
                if _now() > expires_at:
                    record.status = 401
                    return self.send_bytes(401, b"The download URL has expired.", content_type="text/plain")
                item = drive.items.get(item_id)
            data = item.data if item is not None else None
            mime = item.mime_type if item is not None else ""
            cut = emulator._download_cuts.pop(0) if data is not None and emulator._download_cuts else None
        if self.command not in ("GET", "HEAD"):
            record.status = 405
            return self.send_bytes(405, b"", {"Allow": "GET, HEAD"})
        if data is None:
            record.status = 404
            return self.send_bytes(404, b"Not found", content_type="text/plain")
        size = len(data)
        headers = {"Accept-Ranges": "bytes", "ETag": f'"{hashlib.md5(data).hexdigest()}"'}
        spec = self.headers.get("Range")
        byte_range = _parse_range(spec, size) if spec else None
        if byte_range == "unsatisfiable":
            record.status = 416
            return self.send_bytes(416, b"", {**headers, "Content-Range": f"bytes */{size}"})
        if isinstance(byte_range, tuple):
            first, last = byte_range
            record.status = 206
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
            return self._send_body(206, data[first : last + 1], headers, mime, cut)
        record.status = 200
        return self._send_body(200, data, headers, mime, cut)

    def _send_body(self, status: int, payload: bytes, headers: dict[str, str], mime: str, cut: int | None) -> None:
        if cut is None or self.command == "HEAD" or cut >= len(payload):
            return self.send_bytes(status, payload, headers, mime)
        # Full headers (the real Content-Length), the first `cut` bytes, then the connection drops.
        self._entry.status = status
        self.send_response(status)
        for name, value in {**headers, "Content-Type": mime, "Content-Length": str(len(payload))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload[:cut])
        self.wfile.flush()
        self._abort()


def _parse_range(spec: str, size: int) -> tuple[int, int] | str | None:
    """(first, last), "unsatisfiable", or None (ignore the header: malformed or several ranges)."""
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", spec)
    if match is None or (not match.group(1) and not match.group(2)):
        return None
    if not match.group(1):  # suffix range: the last n bytes
        n = int(match.group(2))
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) else size - 1
    if match.group(2) and last < first:
        return None
    if first >= size:
        return "unsatisfiable"
    return first, min(last, size - 1)
