"""OneDrive (Microsoft Graph) as a document store: the seed's ``OneDriveBackend``, grown for a desktop client.

Documents live in the app's folder (``/me/drive/special/approot``, "Apps/Kite") under their own names; a
dropped folder's structure becomes subfolders. httpx calls are native async; msal calls run in threads.
Uploads always use an upload session (``createUploadSession``), in fragments of ``CHUNK_SIZE`` (a multiple
of 320 KiB) streamed from disk and sent to the ``uploadUrl`` without an Authorization header; after an error
the session's ``nextExpectedRanges`` says what is still missing. QuickXorHash is computed while reading and
compared with the server's. Object keys are drive item ids.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from kite_desktop.core.errors import (
    CloudConnectionError,
    ConnectionUnavailableError,
    KiteError,
    NameConflictError,
    NotFoundError,
    StorageFullError,
)
from kite_desktop.core.models import ObjectInfo, ObjectPage, ProgressCallback, ResumeState
from kite_desktop.core.names import document_name
from kite_desktop.storage import tls
from kite_desktop.storage.base import ConflictPolicy, StorageBackend
from kite_desktop.storage.onedrive_auth import SCOPES, CredentialsSaver, MicrosoftTokens, graph_url
from kite_desktop.storage.onedrive_transfer import download_item, upload_session
from kite_desktop.storage.retry import Failure, Pacer, RetryPolicy, parse_retry_after, with_retries

__all__ = ["CHUNK_SIZE", "SCOPES", "CloudConnectionError", "OneDriveBackend"]

log = logging.getLogger(__name__)
T = TypeVar("T")

CHUNK_SIZE = 10 * 1024 * 1024  # 10 MiB: 32 × 320 KiB, in Graph's recommended 5-10 MiB range
APPROOT = "/me/drive/special/approot"
ITEM_FIELDS = "id,name,size,file,folder,lastModifiedDateTime,parentReference"


class GraphError(KiteError):
    """A Graph error answer, with its HTTP status and Graph's error code."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message, title="OneDrive error")
        self.status = status
        self.code = code


def item_path(name: str) -> str:
    """``approot:/a/b.txt:`` with every component percent-encoded ('#', '?', '%' and friends included)."""
    return f"{APPROOT}:/" + "/".join(quote(part, safe="") for part in name.split("/")) + ":"


def info_from_item(item: dict[str, Any], prefix: str) -> ObjectInfo:
    file = item.get("file") or {}
    hashes = file.get("hashes") or {}
    modified = item.get("lastModifiedDateTime")
    return ObjectInfo(
        key=str(item["id"]),
        name=f"{prefix}{item.get('name', '')}",
        size=int(item.get("size") or 0),
        content_type=str(file.get("mimeType") or "application/octet-stream"),
        modified=datetime.fromisoformat(str(modified).replace("Z", "+00:00")) if modified else None,
        hash=hashes.get("quickXorHash"),
        hash_kind="quickxor" if hashes.get("quickXorHash") else None,
    )


class OneDriveBackend(StorageBackend):
    """Documents in the Kite app folder of one Microsoft account's OneDrive."""

    CHUNK_SIZE = CHUNK_SIZE

    def __init__(
        self,
        credentials: dict[str, Any],
        *,
        on_credentials_changed: CredentialsSaver | None = None,
        graph: str | None = None,
        retry: RetryPolicy | None = None,
        chunk_size: int = CHUNK_SIZE,
        timeout: float = 60.0,
    ):
        if chunk_size <= 0 or chunk_size % (320 * 1024):
            raise ValueError("chunk_size must be a positive multiple of 320 KiB")
        self._tokens = MicrosoftTokens(credentials, on_credentials_changed)
        self._graph = (graph or graph_url()).rstrip("/")
        self.retry = retry or RetryPolicy()
        self.chunk_size = chunk_size
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self.pacer = Pacer()
        """This account's pace, shared by all its transfers (a 429 slows them all down)."""

    @property
    def client(self) -> httpx.AsyncClient:
        """The HTTP client, made on first use (constructing the backend does no I/O)."""
        if self._client is None:
            verify: ssl.SSLContext | bool = True
            extra = tls.extra_bundle()
            if extra:  # the system's CAs plus the extra one
                verify = ssl.create_default_context()
                verify.load_verify_locations(cafile=extra)
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self._timeout, connect=15.0), verify=verify)
        return self._client

    # -- calling Graph ------------------------------------------------------------------------------------
    async def graph(
        self,
        method: str,
        path: str,
        *,
        what: str = "OneDrive",
        ok: tuple[int, ...] = (200, 201, 202, 204),
        **kwargs: Any,
    ) -> httpx.Response:
        """One Graph request with the bearer token: refresh once on 401, back off on 429/503/5xx and drops."""
        url = path if path.startswith("http") else f"{self._graph}{path}"
        extra_headers = dict(kwargs.pop("headers", {}))

        async def attempt() -> httpx.Response:
            headers = {**extra_headers, "Authorization": f"Bearer {self._tokens.access_token}"}
            response = await self.client.request(method, url, headers=headers, **kwargs)
            if response.status_code not in ok:
                raise self.error(response, what)
            return response

        return await self.retrying(attempt, what=what, authorized=True)

    async def retrying(self, attempt: Callable[[], Awaitable[T]], *, what: str, authorized: bool = False) -> T:
        def classify(exc: BaseException) -> Failure | None:
            if isinstance(exc, GraphError):
                return Failure(
                    self.translate(exc),
                    retry=exc.status in (429, 500, 502, 503, 504),
                    refresh=exc.status == 401 and authorized,
                    retry_after=getattr(exc, "retry_after", None),
                    throttle=exc.status == 429,
                )
            if isinstance(exc, httpx.TransportError):
                return Failure(
                    ConnectionUnavailableError(
                        f"OneDrive cannot be reached ({type(exc).__name__}).",
                        hint="Check the internet connection; then refresh (F5) or Retry.",
                    ),
                    retry=True,
                )
            return None

        tokens = self._tokens if authorized else None
        return await with_retries(attempt, classify, self.retry, tokens, what, self.pacer)

    @staticmethod
    def error(response: httpx.Response, what: str) -> GraphError:
        try:
            details = response.json().get("error") or {}
        except ValueError:
            details = {}
        code = str(details.get("code") or "") if isinstance(details, dict) else ""
        message = str(details.get("message") or "") if isinstance(details, dict) else ""
        error = GraphError(response.status_code, code, f"{what}: {message or response.reason_phrase}")
        error.retry_after = parse_retry_after(response.headers.get("retry-after"))  # type: ignore[attr-defined]
        return error

    @staticmethod
    def translate(error: GraphError) -> KiteError:
        if error.status == 404:
            return NotFoundError(f"{error.message.split(':')[0]}: not found in OneDrive.")
        if error.status == 507 or error.code == "quotaLimitReached":
            return StorageFullError("Your OneDrive is full.", hint="Free some space in OneDrive, then retry.")
        if error.status == 409 and error.code == "nameAlreadyExists":
            return NameConflictError(
                "A document with this name already exists in OneDrive.",
                hint="Rename the file, or choose 'replace' for name conflicts.",
            )
        if error.status == 401:
            return CloudConnectionError("OneDrive does not accept Kite's sign-in any more.")
        if error.status in (429, 503) or error.status >= 500:
            return ConnectionUnavailableError(
                f"OneDrive is busy or unavailable ({error.status}).", hint="Try again later (Retry in Transfers)."
            )
        return KiteError(f"OneDrive refused the request ({error.status} {error.code}).", title="OneDrive error")

    # -- the seed's seven ---------------------------------------------------------------------------------
    async def put_object(
        self, user_id: str, document_id: str, file_bytes: bytes, extension: str, content_type: str
    ) -> str:
        item = await upload_session(self, f"{document_id}{extension}", file_bytes, "replace", None)
        return str(item["id"])

    async def get_object(self, object_key: str) -> bytes:
        chunks: list[bytes] = []
        await download_item(self, object_key, chunks.append, None)
        return b"".join(chunks)

    async def delete_object(self, object_key: str) -> None:
        await self.graph("DELETE", f"/me/drive/items/{quote(object_key, safe='')}", what="Delete", ok=(204, 404))

    async def presigned_get_url(self, object_key: str, expires_minutes: int = 60) -> str:
        raise NotImplementedError("OneDrive backend does not support presigned URLs — use get_object() for streaming")

    async def health_check(self) -> bool:
        try:
            await self.graph("GET", "/me/drive", params={"$select": "id"})
        except Exception:
            return False
        return True

    async def generate_presigned_put_url(self, object_key: str, expires_minutes: int = 15) -> str:
        raise NotImplementedError(
            "OneDrive backend does not support presigned put URLs — use put_object() for direct upload"
        )

    async def stat_object(self, object_key: str) -> int:
        response = await self.graph(
            "GET", f"/me/drive/items/{quote(object_key, safe='')}", params={"$select": "size"}, what="Stat"
        )
        return int(response.json().get("size", 0))

    # -- listing ----------------------------------------------------------------------------------------------
    async def list_objects(self, page_token: str | None = None, page_size: int = 200) -> ObjectPage:
        from kite_desktop.storage.onedrive_listing import list_page

        return await list_page(self, page_token, max(1, min(page_size, 999)))

    # -- streaming transfers ---------------------------------------------------------------------------------
    async def upload_file(
        self,
        path: Path,
        name: str,
        content_type: str,
        progress: ProgressCallback | None = None,
        conflict: ConflictPolicy = "rename",
        resume: ResumeState | None = None,
    ) -> ObjectInfo:
        clean = document_name(name)
        item = await upload_session(self, clean, Path(path), conflict, progress, resume)
        folder = clean.rpartition("/")[0]
        return info_from_item(item, f"{folder}/" if folder else "")

    async def download_file(
        self,
        object_key: str,
        destination: Path,
        progress: ProgressCallback | None = None,
        resume: ResumeState | None = None,
    ) -> ObjectInfo:
        from kite_desktop.storage.onedrive_transfer import download_to_path

        return await download_to_path(self, object_key, Path(destination), progress, resume)

    async def abandon_upload(self, resume: dict[str, Any]) -> None:
        from kite_desktop.storage.onedrive_transfer import cancel_session

        if resume.get("provider") == "onedrive" and resume.get("url"):
            await cancel_session(self, str(resume["url"]))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
