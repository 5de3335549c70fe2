"""Moving bytes to and from OneDrive: upload sessions resumed from ``nextExpectedRanges``, checked downloads.

Uploads: fragments of the backend's chunk size go to the session's ``uploadUrl`` *without* the bearer token
(the URL is the credential; Graph may answer 401 when one is sent). After an error the session is asked
what it still expects; 416 means it already has part of what was sent; 404 means the session is gone: if
the last fragment had been sent, the item is looked up by path and accepted when its size and QuickXorHash
match, otherwise a new session starts. Cancelling deletes the session. Disk reads, hashing and writes run
in worker threads, one fragment or a few MiB at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from kite_desktop.core.atomic import fsync_dir, temp_path_for
from kite_desktop.core.errors import (
    ConnectionUnavailableError,
    IntegrityError,
    KiteError,
    NameConflictError,
    NotFoundError,
    SourceFileError,
)
from kite_desktop.core.models import ObjectInfo, ProgressCallback, ResumeState
from kite_desktop.core.names import numbered
from kite_desktop.storage import files
from kite_desktop.storage.quickxorhash import QuickXorHash

if TYPE_CHECKING:
    from kite_desktop.storage.onedrive_backend import OneDriveBackend

log = logging.getLogger(__name__)
SESSION_RESTARTS = 3
WRITE_BUFFER = 4 * 1024 * 1024
_BEHAVIOUR = {"rename": "rename", "replace": "replace", "fail": "fail"}


class SessionGone(Exception):
    def __init__(self, final_sent: bool):
        super().__init__("upload session gone")
        self.final_sent = final_sent


class FragmentSource:
    """Reads a file (or bytes) by offset into one reusable buffer, and hashes it in order, once, whatever was
    re-sent. Reusing the buffer matters: a fresh 10 MiB ``bytes`` per fragment, made in one worker thread and
    freed in another, leaves the allocator holding hundreds of MiB (docs/performance.md)."""

    def __init__(
        self,
        size: int,
        readinto_at: Callable[[memoryview, int], int],
        close: Callable[[], None] | None = None,
        check: Callable[[], None] | None = None,
    ):
        self.size = size
        self._readinto_at = readinto_at
        self._close = close
        self._check = check
        self._hash = QuickXorHash()
        self._hashed = 0
        self._buffer: bytearray | None = None
        self.fingerprint: list[int] = []

    @classmethod
    def open(cls, source: Path | bytes) -> FragmentSource:
        if isinstance(source, bytes):
            data = memoryview(source)

            def copy(view: memoryview, at: int) -> int:
                piece = data[at : at + len(view)]
                view[: len(piece)] = piece
                return len(piece)

            return cls(len(source), copy)
        fd, before = files.open_source(source)
        reader = cls(
            before.st_size,
            lambda view, at: os.preadv(fd, [view], at),
            lambda: os.close(fd),
            lambda: files.check_unchanged(source, before, fd, before.st_size),
        )
        reader.fingerprint = files.fingerprint(before)
        return reader

    def read(self, offset: int, length: int) -> memoryview:
        """``length`` bytes at ``offset``, in the source's own buffer (valid until the next read)."""
        if self._check is not None:
            self._check()  # a file changed or deleted since the last fragment: stop now, not after sending it all
        if self._buffer is None or len(self._buffer) < length:
            self._buffer = bytearray(length)
        view = memoryview(self._buffer)[:length]
        done = 0
        while done < length:
            try:
                got = self._readinto_at(view[done:], offset + done)
            except OSError as exc:
                raise SourceFileError(
                    f"The file could not be read: {exc.strerror or exc}.",
                    hint="Check that the disk or USB stick is still connected.",
                ) from None
            if not got:
                raise SourceFileError(
                    "The file became shorter while it was being uploaded.", title="File changed during transfer"
                )
            done += got
        if offset <= self._hashed < offset + length:
            self._hash.update(view[self._hashed - offset :])
            self._hashed = offset + length
        return view

    def finish(self) -> str:
        """The file's QuickXorHash (reading what was never sent in order), after checking it did not change."""
        while self._hashed < self.size:
            self.read(self._hashed, min(files.CHUNK * 4, self.size - self._hashed))
        if self._check is not None:
            self._check()
        return self._hash.b64digest()

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None


async def upload_session(
    backend: OneDriveBackend,
    name: str,
    source: Path | bytes,
    conflict: str,
    progress: ProgressCallback | None,
    resume: ResumeState | None = None,
) -> dict[str, Any]:

    reader = await asyncio.to_thread(FragmentSource.open, source)
    saved = resume.data if resume is not None and resume.data else None
    if saved is not None and (saved.get("provider") != "onedrive" or saved.get("fingerprint") != reader.fingerprint):
        saved = None  # another store's, or the file changed since: start afresh

    async def save(chosen: str, url: str | None) -> None:
        assert resume is not None
        await resume.save({"provider": "onedrive", "name": chosen, "url": url, "fingerprint": reader.fingerprint})

    remember = save if resume is not None else None

    try:
        item = await _resume_saved(backend, saved, reader, progress) if saved is not None else None
        if item is None:
            item = await _new_upload(backend, name, reader, conflict, progress, remember)
        try:
            local_hash = await asyncio.to_thread(reader.finish)
            remote_hash = ((item.get("file") or {}).get("hashes") or {}).get("quickXorHash")
            if int(item.get("size", -1)) != reader.size or (remote_hash and remote_hash != local_hash):
                raise IntegrityError(
                    f"OneDrive stored {name} with a different size or hash than the file has.",
                    hint="Nothing was kept; use Retry.",
                )
        except KiteError:
            if conflict != "replace":  # a copy this upload created: do not leave mixed content behind
                with contextlib.suppress(KiteError):
                    await backend.delete_object(str(item["id"]))
            raise
    finally:
        await asyncio.to_thread(reader.close)
    if progress is not None:
        progress(reader.size)
    return item


async def _new_upload(
    backend: OneDriveBackend,
    name: str,
    reader: FragmentSource,
    conflict: str,
    progress: ProgressCallback | None,
    remember: Callable[[str, str | None], Awaitable[None]] | None,
) -> dict[str, Any]:
    from kite_desktop.storage.onedrive_backend import item_path

    if reader.size == 0:
        # An upload session cannot carry zero bytes; an empty file is one simple PUT.
        if remember is not None:
            await remember(name, None)
        response = await backend.graph(
            "PUT",
            item_path(name) + "/content",
            content=b"",
            what=f"Upload of {name}",
            params={"@microsoft.graph.conflictBehavior": _BEHAVIOUR[conflict]},
        )
        return dict(response.json())
    if conflict != "rename":
        return await _session_upload(backend, name, reader, _BEHAVIOUR[conflict], progress, remember)
    # Kite names the second copy "name (1).ext" on every store (OneDrive's own rename says "name 1.ext").
    for _ in range(SESSION_RESTARTS):
        try:
            return await _session_upload(backend, await _free_name(backend, name), reader, "fail", progress, remember)
        except NameConflictError:
            continue  # taken between the check and the commit
    raise NameConflictError(f"Kite could not find a free name for {name} in OneDrive.")


async def _resume_saved(
    backend: OneDriveBackend, saved: dict[str, Any], reader: FragmentSource, progress: ProgressCallback | None
) -> dict[str, Any] | None:
    """Go on with an earlier run's session; or, when it is gone, find the item it had completed."""
    url = saved.get("url")
    if url:
        try:
            return await _send_fragments(backend, str(url), reader, progress, offset=None)
        except SessionGone:
            log.info("the interrupted upload's session is gone; checking whether it had completed")
    return await _look_up(backend, str(saved["name"]), reader)


async def _exists(backend: OneDriveBackend, name: str) -> bool:
    from kite_desktop.storage.onedrive_backend import item_path

    try:
        await backend.graph("GET", item_path(name), params={"$select": "id"}, what="Name check")
    except NotFoundError:
        return False
    return True


async def _free_name(backend: OneDriveBackend, name: str) -> str:
    candidate, number = name, 0
    while await _exists(backend, candidate):
        number += 1
        candidate = numbered(name, number)
    return candidate


async def _session_upload(
    backend: OneDriveBackend,
    name: str,
    reader: FragmentSource,
    behaviour: str,
    progress: ProgressCallback | None,
    remember: Callable[[str, str | None], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    from kite_desktop.storage.onedrive_backend import item_path

    base = name.rsplit("/", 1)[-1]
    body = {"item": {"@microsoft.graph.conflictBehavior": behaviour, "name": base}, "deferCommit": False}
    for _ in range(SESSION_RESTARTS):
        response = await backend.graph(
            "POST", item_path(name) + "/createUploadSession", json=body, what=f"Upload of {base}"
        )
        url = str(response.json()["uploadUrl"])
        if remember is not None:
            await remember(name, url)  # on disk before a byte is sent: a restart goes on from here
        try:
            return await _send_fragments(backend, url, reader, progress)
        except SessionGone as gone:
            if gone.final_sent:
                found = await _look_up(backend, name, reader)
                if found is not None:
                    return found
            log.info("upload session expired; starting a new one")
        except asyncio.CancelledError:
            if remember is None:  # nobody can resume it: tidy up (a kept session lets a paused upload go on)
                await asyncio.shield(cancel_session(backend, url))
            raise
    raise ConnectionUnavailableError(f"OneDrive kept losing the upload of {base}.", hint="Try again later.")


async def _send_fragments(
    backend: OneDriveBackend,
    url: str,
    reader: FragmentSource,
    progress: ProgressCallback | None,
    offset: int | None = 0,
) -> dict[str, Any]:
    """Send what the session still misses; ``offset`` None asks the session first (a resumed upload)."""
    failures, final_sent = 0, False
    if offset is None:
        final_sent = True  # unknown: an earlier run may have sent the last fragment
        offset = await _expected(backend, url, final_sent)
        if progress is not None:
            progress(offset)
    while True:
        end = min(offset + backend.chunk_size, reader.size)
        data = await asyncio.to_thread(reader.read, offset, end - offset)
        await backend.limits.up.consume(len(data))
        await backend.pacer.wait()  # the account may be rate-limited by another transfer's 429
        headers = {"Content-Range": f"bytes {offset}-{end - 1}/{reader.size}", "Content-Length": str(len(data))}
        final_sent = final_sent or end == reader.size
        try:
            response = await backend.client.put(url, content=_pieces(data), headers=headers)
        except httpx.TransportError as dropped:
            failures = await _failed(backend, failures, f"connection problem ({type(dropped).__name__})")
            offset = await _expected(backend, url, final_sent)
            continue
        status = response.status_code
        if status in (200, 201):
            return dict(response.json())
        if status == 202:
            failures = 0
            offset = _first_expected(response.json(), end)
            if progress is not None:
                progress(offset)
            continue
        if status == 404:
            raise SessionGone(final_sent)
        if status == 416:
            failures = await _failed(backend, failures, "fragment already received")
            offset = await _expected(backend, url, final_sent)
            continue
        error = backend.error(response, "Upload")
        if status in (429, 500, 502, 503, 504):
            retry_after = getattr(error, "retry_after", None)
            failures = await _failed(backend, failures, f"{status}", retry_after, throttle=status == 429)
            offset = await _expected(backend, url, final_sent)
            continue
        raise backend.translate(error)


async def _pieces(view: memoryview, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    """The fragment for httpx in small pieces from the reused buffer (no 10 MiB copy per fragment)."""
    for start in range(0, len(view), size):
        yield bytes(view[start : start + size])


async def _failed(
    backend: OneDriveBackend, failures: int, why: str, retry_after: float | None = None, throttle: bool = False
) -> int:
    if throttle:  # the account is rate-limited: all its transfers wait, not only this one
        backend.pacer.hold(min(backend.retry.delay(failures, retry_after), backend.retry.max_retry_after))
    if failures + 1 >= backend.retry.attempts:
        raise ConnectionUnavailableError(
            f"OneDrive upload keeps failing ({why}).", hint="Try again later (Retry in Transfers)."
        )
    log.info("upload fragment failed (%s); asking the session what it has", why)
    if throttle:
        await backend.pacer.wait()
    else:
        await backend.retry.sleep(failures, retry_after)
    return failures + 1


def _first_expected(status: dict[str, Any], fallback: int) -> int:
    ranges = status.get("nextExpectedRanges") or []
    if not ranges:
        return fallback
    return int(str(ranges[0]).split("-", 1)[0])


async def _expected(backend: OneDriveBackend, url: str, final_sent: bool) -> int:
    """Where the session wants the next fragment to start (GET on the uploadUrl, no bearer token)."""

    async def ask() -> int:
        response = await backend.client.get(url)
        if response.status_code == 404:
            raise SessionGone(final_sent)
        if response.status_code != 200:
            raise backend.error(response, "Upload status")
        return _first_expected(response.json(), 0)

    return await backend.retrying(ask, what="Upload status")


async def _look_up(backend: OneDriveBackend, name: str, reader: FragmentSource) -> dict[str, Any] | None:
    """After a lost answer to the last fragment: the stored item, if it is this file."""
    from kite_desktop.storage.onedrive_backend import item_path

    try:
        response = await backend.graph("GET", item_path(name), what="Upload check")
    except NotFoundError:
        return None  # other errors propagate: "could not look" is not "not there", which would mean a copy
    item = dict(response.json())
    local_hash = await asyncio.to_thread(reader.finish)
    remote_hash = ((item.get("file") or {}).get("hashes") or {}).get("quickXorHash")
    if int(item.get("size", -1)) == reader.size and remote_hash == local_hash:
        log.info("the upload had completed; its answer was lost")
        return item
    return None


async def cancel_session(backend: OneDriveBackend, url: str) -> None:
    with contextlib.suppress(Exception):
        await backend.client.delete(url)


# -- downloads ------------------------------------------------------------------------------------------------
class TempSink:
    """A temp file beside the destination that counts and hashes what is written, until ``commit``."""

    def __init__(self, target: Path, earlier: Path | None = None):
        """A new temp file; or ``earlier``, an interrupted download's, whose content is hashed and counted first."""
        if not target.parent.is_dir():
            raise KiteError(f"The folder {target.parent} does not exist.", title="Cannot save")
        self.path = earlier or temp_path_for(target)
        self.size = 0
        self.hash = QuickXorHash()
        self._target = target
        flags = os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0)
        flags |= os.O_APPEND if earlier is not None else os.O_CREAT | os.O_EXCL
        try:
            self._fd = os.open(self.path, flags, 0o666)
            if earlier is not None:
                with open(earlier, "rb") as existing:
                    while data := existing.read(files.CHUNK * 4):
                        self.hash.update(data)
                        self.size += len(data)
        except OSError as exc:
            raise files.disk_error(exc, target.parent) from None

    def write(self, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            raise files.disk_error(exc, self._target.parent) from None
        self.hash.update(data)
        self.size += len(data)

    def commit(self) -> None:
        try:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            os.replace(self.path, self._target)
        except OSError as exc:
            raise files.disk_error(exc, self._target.parent) from None
        fsync_dir(self._target.parent)

    def close_file(self) -> None:
        """Close the temp file and keep it (a paused download goes on with it)."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1

    def discard(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(OSError):
            self.path.unlink()


async def download_to_path(
    backend: OneDriveBackend,
    key: str,
    destination: Path,
    progress: ProgressCallback | None,
    resume: ResumeState | None = None,
) -> ObjectInfo:
    from kite_desktop.storage.onedrive_backend import ITEM_FIELDS, info_from_item

    response = await backend.graph("GET", f"/me/drive/items/{key}", params={"$select": ITEM_FIELDS}, what="Download")
    info = info_from_item(response.json(), "")
    plan = {"provider": "onedrive", "key": key, "hash": info.hash, "size": info.size}
    earlier = files.temp_to_go_on_with(resume.data if resume is not None else None, plan, destination)
    sink = await asyncio.to_thread(TempSink, destination, earlier)
    if earlier is None and resume is not None:
        await resume.save({**plan, "temp": str(sink.path)})
    try:
        if sink.size < info.size:
            await download_item(backend, key, sink.write, progress, start=sink.size)
        if sink.size != info.size or (info.hash and sink.hash.b64digest() != info.hash):
            raise IntegrityError(f"The download of {info.name} does not match what OneDrive holds.")
        await asyncio.to_thread(sink.commit)
    except asyncio.CancelledError:
        await asyncio.to_thread(sink.discard if resume is None else sink.close_file)
        raise
    except BaseException:
        await asyncio.to_thread(sink.discard)
        raise
    return info


async def download_item(
    backend: OneDriveBackend,
    key: str,
    write: Callable[[bytes], None],
    progress: ProgressCallback | None,
    start: int = 0,
) -> None:
    """Follow the content's 302 to the download host (no bearer token there) and stream, resuming by Range
    (from ``start`` for a download an earlier run began)."""
    done, failures = start, 0
    location: str | None = None
    while True:
        if location is None:
            response = await backend.graph("GET", f"/me/drive/items/{key}/content", what="Download", ok=(302,))
            location = response.headers["location"]
        buffer = bytearray()
        try:
            headers = {"Range": f"bytes={done}-"} if done else {}
            await backend.pacer.wait()
            async with backend.client.stream("GET", location, headers=headers) as stream:
                if stream.status_code in (401, 403, 404, 410):  # the pre-authenticated URL expired
                    location = None
                    failures = await _failed(backend, failures, f"download URL answered {stream.status_code}")
                    continue
                if stream.status_code not in (200, 206) or (done and stream.status_code != 206):
                    await stream.aread()
                    raise backend.translate(backend.error(stream, "Download"))
                async for piece in stream.aiter_bytes(1 << 20):
                    await backend.limits.down.consume(len(piece))
                    buffer += piece
                    if len(buffer) >= WRITE_BUFFER:
                        await asyncio.to_thread(write, bytes(buffer))
                        done += len(buffer)
                        buffer.clear()
                        if progress is not None:
                            progress(done)
            if buffer:
                await asyncio.to_thread(write, bytes(buffer))
                done += len(buffer)
            if progress is not None:
                progress(done)
            return
        except httpx.TransportError as dropped:
            if buffer:
                await asyncio.to_thread(write, bytes(buffer))
                done += len(buffer)
            failures = await _failed(backend, failures, f"connection problem ({type(dropped).__name__})")
