"""Google Drive v3 as a document store: the seed's ``GoogleDriveBackend``, grown for a desktop client.

Documents live in a ``Kite`` folder in the user's My Drive under their own names (a dropped folder's
structure becomes subfolders), with the least scope that allows it (``drive.file``). Every synchronous
google-api-python-client call runs in ``asyncio.to_thread``; constructing the backend does no network I/O.
Uploads stream from disk: small files in one multipart request, larger ones as a resumable session in
chunks that are multiples of 256 KiB, resumed from the server's offset after an error. The file id is
reserved first (``files.generateIds``), so a retry after an ambiguous failure cannot create a second copy.
After an upload the server's size and MD5 are compared with the local file's; downloads go to a temp file
and are checked before the rename. Object keys are Drive file ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import io
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httplib2
from googleapiclient.errors import HttpError

from kite_desktop.core.errors import (
    CloudConnectionError,
    ConnectionUnavailableError,
    IntegrityError,
    KiteError,
    NotFoundError,
    StorageFullError,
)
from kite_desktop.core.models import ObjectInfo, ObjectPage, ProgressCallback, ResumeState
from kite_desktop.core.names import document_name
from kite_desktop.storage import files, google_api, tls
from kite_desktop.storage.base import ConflictPolicy, StorageBackend
from kite_desktop.storage.google_api import DuplicateIdError
from kite_desktop.storage.google_auth import SCOPES, CredentialsSaver, GoogleTokens
from kite_desktop.storage.google_drive_listing import DriveFolders, drive_page, info_from_file
from kite_desktop.storage.google_media import ChunkedFileMedia, HashingWriter
from kite_desktop.storage.retry import Failure, Pacer, RetryPolicy, parse_retry_after, with_retries
from kite_desktop.storage.threads import finishing_thread

__all__ = ["SCOPES", "CloudConnectionError", "GoogleDriveBackend"]

log = logging.getLogger(__name__)
T = TypeVar("T")

FILE_FIELDS = "id,name,mimeType,size,md5Checksum,modifiedTime,parents"
MULTIPART_LIMIT = 5 * 1024 * 1024
DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024  # 16 × 256 KiB: four uploads at once stay near 26 MiB (docs/performance.md)
SESSION_RESTARTS = 3
RATE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}
RETRYABLE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "backendError", "internalError"}
# httplib2 raises its own errors for broken connections; http.client's IncompleteRead is a cut-off body.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    http.client.HTTPException,
    httplib2.HttpLib2Error,
)


class GoogleDriveBackend(StorageBackend):
    """Documents in the ``Kite`` folder of one Google account's My Drive."""

    SCOPES = SCOPES

    def __init__(
        self,
        credentials: dict[str, Any],
        *,
        on_credentials_changed: CredentialsSaver | None = None,
        api_root: str | None = None,
        retry: RetryPolicy | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        timeout: float = google_api.DEFAULT_TIMEOUT,
        folder_name: str = "Kite",
    ):
        if chunk_size <= 0 or chunk_size % (256 * 1024):
            raise ValueError("chunk_size must be a positive multiple of 256 KiB")
        self._credentials = credentials
        self._tokens = GoogleTokens(credentials, on_credentials_changed)
        self._retry = retry or RetryPolicy()
        self._chunk_size = chunk_size
        self._http = google_api.BearerHttp(lambda: self._tokens.access_token, timeout, tls.ca_file())
        self._root = api_root or google_api.api_root()
        self._service: Any = None
        self.folders = DriveFolders(self, folder_name)
        self.pacer = Pacer()
        """This account's pace, shared by all its transfers (a 429 slows them all down)."""

    @property
    def service(self) -> Any:
        """The Drive client, built on first use from the shipped discovery document (no network I/O)."""
        if self._service is None:
            self._service = google_api.build_drive(self._http, self._root)
        return self._service

    # -- calling Drive ------------------------------------------------------------------------------
    async def call(self, make: Callable[[Any], Any], *, what: str = "Google Drive") -> Any:
        """Run ``make(service).execute()`` in a thread with refresh-once on 401, backoff and clear errors.

        A call whose caller is cancelled still finishes in its thread; when it succeeded, its result is
        returned (a create that happened must be reported, or a retry would make a second copy).
        """
        return await self.retrying(lambda: finishing_thread(lambda: make(self.service).execute()), what=what)

    async def retrying(self, attempt: Callable[[], Awaitable[T]], *, what: str = "Google Drive") -> T:
        def classify(exc: BaseException) -> Failure | None:
            if isinstance(exc, HttpError):
                status, reason = google_api.status_of(exc), google_api.error_reason(exc)
                retryable = status == 429 or status >= 500 or (status == 403 and reason in RETRYABLE_REASONS)
                return Failure(
                    self._translate(exc, what),
                    retry=retryable,
                    refresh=status == 401,
                    retry_after=parse_retry_after(exc.resp.get("retry-after")),
                    throttle=status == 429 or reason in RATE_LIMIT_REASONS,
                )
            if isinstance(exc, TRANSPORT_ERRORS):
                return Failure(
                    ConnectionUnavailableError(
                        f"Google Drive cannot be reached ({type(exc).__name__}).",
                        hint="Check the internet connection; then refresh (F5) or Retry.",
                    ),
                    retry=True,
                )
            return None

        return await with_retries(attempt, classify, self._retry, self._tokens, what, self.pacer)

    @staticmethod
    def _translate(error: HttpError, what: str) -> KiteError:
        status, reason = google_api.status_of(error), google_api.error_reason(error)
        if status == 404:
            return NotFoundError(f"{what}: not found in Google Drive.")
        if status == 409:
            return DuplicateIdError(f"{what}: the file already exists in Google Drive.")
        if status == 403 and reason in ("storageQuotaExceeded", "quotaExceeded"):
            return StorageFullError("Your Google Drive is full.", hint="Free some space in Google Drive, then retry.")
        if status == 403 and reason == "dailyLimitExceeded":
            return KiteError(
                "Google Drive's daily upload limit was reached.",
                title="Limit reached",
                hint="Kite can continue tomorrow.",
            )
        if status == 401:
            return CloudConnectionError("Google Drive does not accept Kite's sign-in any more.")
        if status in (429, 403) and reason in RETRYABLE_REASONS | {""}:
            return ConnectionUnavailableError(
                "Google Drive is limiting requests right now.", hint="Try again later (Retry in Transfers)."
            )
        if status >= 500:
            return ConnectionUnavailableError(f"Google Drive had a server error ({status}).")
        return KiteError(
            f"Google Drive refused the request ({status} {reason}).".replace(" )", ")"), title="Google Drive error"
        )

    # -- the seed's seven -------------------------------------------------------------------------------
    async def put_object(
        self, user_id: str, document_id: str, file_bytes: bytes, extension: str, content_type: str
    ) -> str:
        parent = await self.folders.root_id()
        file_id = await self.reserve_id()
        body = {"id": file_id, "name": f"{document_id}{extension}", "parents": [parent]}
        media = ChunkedFileMedia.from_bytes(file_bytes, content_type)
        result = await self._create_multipart(body, media)
        return str(result["id"])

    async def get_object(self, object_key: str) -> bytes:
        buffer = io.BytesIO()
        writer = HashingWriter(buffer)
        await self._download_into(object_key, writer, None)
        return buffer.getvalue()

    async def delete_object(self, object_key: str) -> None:
        try:
            await self.call(lambda s: s.files().delete(fileId=object_key), what="Delete")
        except NotFoundError:
            return

    async def presigned_get_url(self, object_key: str, expires_minutes: int = 60) -> str:
        raise NotImplementedError(
            "Google Drive backend does not support presigned URLs — use get_object() for streaming"
        )

    async def health_check(self) -> bool:
        try:
            await self.call(lambda s: s.files().list(pageSize=1, fields="files(id)"))
        except Exception:
            return False
        return True

    async def generate_presigned_put_url(self, object_key: str, expires_minutes: int = 15) -> str:
        raise NotImplementedError(
            "Google Drive backend does not support presigned put URLs — use put_object() for direct upload"
        )

    async def stat_object(self, object_key: str) -> int:
        metadata = await self.call(lambda s: s.files().get(fileId=object_key, fields="size"), what="Stat")
        return int(metadata.get("size", 0))

    async def account(self) -> tuple[str, str]:
        """The signed-in account's e-mail address and display name (Drive's ``about.get``)."""
        about = await self.call(lambda s: s.about().get(fields="user(emailAddress,displayName)"), what="Account")
        user = about.get("user") or {}
        return str(user.get("emailAddress") or ""), str(user.get("displayName") or "")

    # -- listing ---------------------------------------------------------------------------------------------
    async def list_objects(self, page_token: str | None = None, page_size: int = 200) -> ObjectPage:
        return await drive_page(self, page_token, max(1, min(page_size, 1000)))

    # -- uploads ---------------------------------------------------------------------------------------------
    async def reserve_id(self) -> str:
        answer = await self.call(lambda s: s.files().generateIds(count=1, space="drive", type="files"))
        return str(answer["ids"][0])

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
        folder_parts, _, base = clean.rpartition("/")
        media = await asyncio.to_thread(ChunkedFileMedia.open, path, content_type, self._chunk_size)
        plan: dict[str, Any] = {}
        try:
            plan = await self._plan(resume, media, folder_parts, base, conflict)
            try:
                result = await self._upload(plan, media, content_type, progress, resume)
            except NotFoundError:
                if not plan.get("saved"):
                    raise
                # The saved plan's folder (or the file it was replacing) was deleted in Drive meanwhile: plan
                # afresh. Its reserved id was checked unused, so this cannot make a second copy.
                log.info("the interrupted upload's folder is gone; starting it afresh")
                self.folders.forget()
                self._release_name(plan)
                plan = await self._plan(resume, media, folder_parts, base, conflict, fresh=True)
                result = await self._upload(plan, media, content_type, progress, resume)
            existing = plan.get("existing")
            try:
                await asyncio.to_thread(media.finish)
                self._check_upload(result, media, path)
            except KiteError:
                if existing is None:  # a file this upload created: do not leave mixed content behind
                    with contextlib.suppress(KiteError):
                        await self.delete_object(str(result["id"]))
                raise
        finally:
            self._release_name(plan)
            await asyncio.to_thread(media.close)
        if progress is not None:
            progress(media.size())
        prefix = f"{folder_parts}/" if folder_parts else ""
        return info_from_file(result, prefix)

    def _release_name(self, plan: dict[str, Any]) -> None:
        if plan.get("existing") is None and plan.get("parent"):
            self.folders.in_flight.discard((str(plan["parent"]), str(plan["base"])))

    async def _plan(
        self,
        resume: ResumeState | None,
        media: ChunkedFileMedia,
        folder_parts: str,
        base: str,
        conflict: str,
        *,
        fresh: bool = False,
    ) -> dict[str, Any]:
        """Where the upload goes: the saved plan of an interrupted run, or a new one (saved before any bytes)."""
        saved = dict(resume.data) if resume is not None and resume.data and not fresh else {}
        if saved.get("provider") == "google_drive":
            saved["saved"] = True
            if saved.get("fingerprint") != media.fingerprint:
                saved.pop("uri", None)  # the file changed since: its session holds other bytes
            if saved.get("existing") is None:
                try:
                    found = await self.call(
                        lambda s: s.files().get(fileId=saved["file_id"], fields=FILE_FIELDS), what="Upload check"
                    )
                except NotFoundError:
                    found = None
                if found is not None:
                    # An earlier run created the file. If it holds this file, it is done; else it is replaced.
                    await asyncio.to_thread(media.finish)
                    if int(found.get("size", -1)) == media.size() and found.get("md5Checksum") == media.md5():
                        log.info("an interrupted upload had completed; not uploading again")
                        saved["done"] = dict(found)
                        return saved
                    saved["existing"] = saved["file_id"]
                    saved.pop("uri", None)
            saved["fingerprint"] = media.fingerprint
            if saved.get("existing") is None:
                self.folders.in_flight.add((str(saved["parent"]), str(saved["base"])))
            return saved
        parent = await self.folders.folder_id(folder_parts.split("/") if folder_parts else [])
        base, existing = await self.folders.resolve_conflict(parent, base, conflict)
        plan: dict[str, Any] = {
            "provider": "google_drive",
            "parent": parent,
            "base": base,
            "existing": existing,
            "file_id": None if existing is not None else await self.reserve_id(),
            "fingerprint": media.fingerprint,
        }
        if resume is not None:
            await resume.save(plan)
        return plan

    async def _upload(
        self,
        plan: dict[str, Any],
        media: ChunkedFileMedia,
        content_type: str,
        progress: ProgressCallback | None,
        resume: ResumeState | None,
    ) -> dict[str, Any]:
        if "done" in plan:
            return dict(plan["done"])

        async def keep_uri(uri: str) -> None:
            if resume is not None and uri != plan.get("uri"):
                plan["uri"] = uri
                await resume.save({k: v for k, v in plan.items() if k not in ("done", "saved")})

        existing = plan.get("existing")
        if existing is not None:
            return await self._send(
                lambda s: s.files().update(fileId=existing, media_body=media, fields=FILE_FIELDS),
                media,
                progress,
                uri=plan.get("uri"),
                keep_uri=keep_uri,
            )
        body = {"id": plan["file_id"], "name": plan["base"], "parents": [plan["parent"]], "mimeType": content_type}
        if media.size() <= MULTIPART_LIMIT:
            await self.limits.up.consume(media.size())
            return await self._create_multipart(body, media)
        return await self._send(
            lambda s: s.files().create(body=body, media_body=media, fields=FILE_FIELDS),
            media,
            progress,
            file_id=plan["file_id"],
            uri=plan.get("uri"),
            keep_uri=keep_uri,
        )

    async def _create_multipart(self, body: dict[str, Any], media: ChunkedFileMedia) -> dict[str, Any]:
        media.resumable_mode(False)
        try:
            return dict(
                await self.call(
                    lambda s: s.files().create(body=body, media_body=media, fields=FILE_FIELDS),
                    what=f"Upload of {body['name']}",
                )
            )
        except DuplicateIdError:
            return await self._created(body["id"])
        except NotFoundError:
            self.folders.forget()  # the folder is gone: the next upload finds or makes it again
            raise

    async def _created(self, file_id: str) -> dict[str, Any]:
        """The file an earlier attempt created with this reserved id (its answer was lost)."""
        log.info("an earlier attempt already created the file; checking it instead of uploading again")
        return dict(await self.call(lambda s: s.files().get(fileId=file_id, fields=FILE_FIELDS)))

    async def _send(
        self,
        make: Callable[[Any], Any],
        media: ChunkedFileMedia,
        progress: ProgressCallback | None,
        file_id: str | None = None,
        uri: str | None = None,
        keep_uri: Callable[[str], Awaitable[None]] | None = None,
    ) -> dict[str, Any]:
        """A resumable upload, one chunk per thread call, resumed from the server's offset after errors.

        ``uri`` is a session an earlier run started: the first call asks it where to go on. Each new session
        URI is handed to ``keep_uri`` so a later run can do the same."""
        media.resumable_mode(True)
        state: dict[str, Any] = {"request": None, "uri": uri}

        def step() -> Any:
            if state["request"] is None:
                request = make(self.service)
                if state["uri"]:
                    request.resumable_uri = state["uri"]
                    request._in_error_state = True  # the library's way to ask the session for its offset first
                    state["uri"] = None
                state["request"] = request
            _, response = state["request"].next_chunk(num_retries=0)
            return response

        restarts = 0
        while True:
            request = state["request"]
            sent = int(request.resumable_progress) if request is not None else 0
            await self.limits.up.consume(min(self._chunk_size, media.size() - sent))
            try:
                response = await self.retrying(
                    lambda: finishing_thread(step, done=lambda r: r is not None), what=f"Upload of {media.name}"
                )
            except NotFoundError:
                request = state["request"]
                if request is None or request.resumable_uri is None or restarts >= SESSION_RESTARTS:
                    # Not an expired session: the folder or the file to replace is gone.
                    self.folders.forget()
                    raise
                # The session expired (404): start a new one. If the old one had completed, the create with
                # the same reserved id answers 409, handled below.
                log.info("upload session expired; starting a new one")
                restarts += 1
                state["request"] = None
                continue
            except DuplicateIdError:
                if file_id is None:
                    raise
                return await self._created(file_id)
            if response is not None:
                return dict(response)
            request = state["request"]
            if keep_uri is not None and request.resumable_uri:
                await keep_uri(str(request.resumable_uri))
            if progress is not None:
                progress(int(request.resumable_progress))

    def _check_upload(self, result: dict[str, Any], media: ChunkedFileMedia, path: Path) -> None:
        size = int(result.get("size", -1))
        md5 = result.get("md5Checksum")
        if size != media.size() or (md5 and md5 != media.md5()):
            raise IntegrityError(
                f"Google Drive stored {path.name} with a different size or checksum than the file has.",
                hint="Nothing was kept; use Retry.",
            )

    # -- downloads ----------------------------------------------------------------------------------------
    async def download_file(
        self,
        object_key: str,
        destination: Path,
        progress: ProgressCallback | None = None,
        resume: ResumeState | None = None,
    ) -> ObjectInfo:
        metadata = await self.call(lambda s: s.files().get(fileId=object_key, fields=FILE_FIELDS), what="Download")
        info = info_from_file(metadata, "")
        if not info.downloadable:
            raise KiteError(f"{info.name} is a Google Docs file; open it in Google Drive.", title="Online only")
        destination = Path(destination)
        plan = {"provider": "google_drive", "key": object_key, "hash": info.hash, "size": info.size}
        earlier = files.temp_to_go_on_with(resume.data if resume is not None else None, plan, destination)
        if earlier is not None:
            tmp = await asyncio.to_thread(HashingWriter.reopen, earlier)
            log.info("going on with an interrupted download from %d bytes", tmp.size)
        else:
            tmp = await asyncio.to_thread(HashingWriter.create_beside, destination)
            if resume is not None:
                await resume.save({**plan, "temp": str(tmp.path)})
        try:
            if tmp.size < info.size or info.size == 0:
                await self._download_into(object_key, tmp, progress, start=tmp.size)
            if tmp.size != info.size or (info.hash and tmp.md5() != info.hash):
                raise IntegrityError(f"The download of {info.name} does not match what Google Drive holds.")
            await asyncio.to_thread(tmp.commit, destination)
        except asyncio.CancelledError:
            if resume is None:  # nobody can go on with it
                await asyncio.to_thread(tmp.discard)
            else:
                await asyncio.to_thread(tmp.close_file)
            raise
        except BaseException:
            await asyncio.to_thread(tmp.discard)
            raise
        return info

    async def _download_into(
        self, object_key: str, writer: HashingWriter, progress: ProgressCallback | None, start: int = 0
    ) -> None:
        from googleapiclient.http import MediaIoBaseDownload

        state: dict[str, Any] = {"downloader": None}

        def step() -> bool:
            if state["downloader"] is None:
                request = self.service.files().get_media(fileId=object_key)
                downloader = MediaIoBaseDownload(writer, request, chunksize=self._chunk_size)
                downloader._progress = start  # the library's offset: its next Range starts there
                state["downloader"] = downloader
            try:
                _, done = state["downloader"].next_chunk(num_retries=0)
            except OSError as exc:
                if files.is_disk_error(exc):
                    raise files.disk_error(exc, writer.folder) from None
                raise
            return bool(done)

        counted = writer.size
        while True:
            finished = await self.retrying(lambda: asyncio.to_thread(step), what="Download")
            await self.limits.down.consume(writer.size - counted)
            counted = writer.size
            if progress is not None:
                progress(writer.size)
            if finished:
                return

    async def aclose(self) -> None:
        await asyncio.to_thread(self._http.close)
        self._tokens.close()
