"""A folder on this computer as a document store.

Keys are relative POSIX paths inside the folder; a document named "Trip/photo.jpg" is the file
``<folder>/Trip/photo.jpg``. Every write goes through a temp file in the same directory, fsync and rename,
so a partly written file never has a document's name. Keys are checked so nothing outside the folder is
ever read or written, and symbolic links inside the folder are never followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import mimetypes
import os
import stat
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from kite_desktop.core.atomic import TEMP_PREFIX, write_atomic
from kite_desktop.core.errors import (
    ConnectionUnavailableError,
    KiteError,
    NameConflictError,
    NotFoundError,
)
from kite_desktop.core.models import ObjectInfo, ObjectPage, ProgressCallback, ResumeState
from kite_desktop.core.names import document_name, numbered
from kite_desktop.storage import files
from kite_desktop.storage.base import ConflictPolicy, StorageBackend
from kite_desktop.storage.threads import StopFlag, ThreadProgress, run_cancellable

MAX_CACHED_WALKS = 4


def _fingerprint(path: Path) -> list[int] | None:
    try:
        return files.fingerprint(os.lstat(path))
    except OSError:
        return None


def guess_type(name: str) -> str:
    return mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"


class LocalFolderBackend(StorageBackend):
    """Documents kept as plain files under ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._walks: dict[str, list[ObjectInfo]] = {}

    # -- paths -----------------------------------------------------------------------------
    def _checked_root(self) -> Path:
        if not self.root.is_dir():
            raise ConnectionUnavailableError(
                f"The folder {self.root} is not there.",
                title="Folder not found",
                hint="Reconnect the drive it is on, or choose another folder for this connection.",
            )
        return self.root

    def _path_for(self, key: str, *, create_parents: bool = False) -> Path:
        """The file for ``key``, refusing keys that escape the folder or pass through a symlink."""
        # Existing files may have any name the file system allows (NFD from a Mac, a leading space...); a key
        # only has to stay inside the folder. New names are cleaned before they get here.
        parts_check = key.split("/")
        if not key or key.startswith("/") or "\x00" in key or any(p in ("", ".", "..") for p in parts_check):
            raise NotFoundError(f"No document {key!r} in {self.root}.")
        current = self._checked_root()
        parts = key.split("/")
        for part in parts[:-1]:
            current = current / part
            try:
                info = current.lstat()
            except FileNotFoundError:
                if not create_parents:
                    raise NotFoundError(f"No document {key!r} in {self.root}.") from None
                try:
                    current.mkdir()
                except FileExistsError:
                    pass
                except OSError as exc:
                    raise files.disk_error(exc, current.parent) from None
                continue
            if not stat.S_ISDIR(info.st_mode):
                raise NameConflictError(f"{key} cannot be stored: {current.relative_to(self.root)} is not a folder.")
        return current / parts[-1]

    def _key_for(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _info(self, path: Path, info: os.stat_result, digest: str | None = None) -> ObjectInfo:
        key = self._key_for(path)
        return ObjectInfo(
            key=key,
            name=key,
            size=info.st_size,
            content_type=guess_type(key),
            modified=datetime.fromtimestamp(info.st_mtime, UTC),
            hash=digest,
            hash_kind="md5" if digest else None,
        )

    # -- the seed's seven ---------------------------------------------------------------------
    async def put_object(
        self, user_id: str, document_id: str, file_bytes: bytes, extension: str, content_type: str
    ) -> str:
        def write() -> None:
            target = self._path_for(f"{document_id}{extension}")
            try:
                write_atomic(target, file_bytes, mode=0o644)
            except OSError as exc:
                raise files.disk_error(exc, target.parent) from None

        await asyncio.to_thread(write)
        return f"{document_id}{extension}"

    async def get_object(self, object_key: str) -> bytes:
        def read() -> bytes:
            path = self._path_for(object_key)
            try:
                fd, _ = files.open_source(path)
            except KiteError:
                raise NotFoundError(f"No document {object_key!r} in {self.root}.") from None
            with os.fdopen(fd, "rb") as handle:
                return handle.read()

        return await asyncio.to_thread(read)

    async def delete_object(self, object_key: str) -> None:
        def delete() -> None:
            try:
                path = self._path_for(object_key)
            except NotFoundError:
                return  # a key that cannot name a file in this folder: nothing there to delete
            try:
                os.unlink(path)
            except FileNotFoundError:
                return
            except IsADirectoryError:
                raise NotFoundError(f"{object_key} is a folder, not a document.") from None
            except OSError as exc:
                raise files.disk_error(exc, path.parent) from None
            parent = path.parent
            while parent != self.root and parent.is_relative_to(self.root):
                try:
                    parent.rmdir()  # only succeeds when the folder is empty
                except OSError:
                    break
                parent = parent.parent

        await asyncio.to_thread(delete)

    async def presigned_get_url(self, object_key: str, expires_minutes: int = 60) -> str:
        path = await asyncio.to_thread(self._path_for, object_key)
        try:
            info = await asyncio.to_thread(path.lstat)  # lstat: a symlink's URL would read outside the folder
        except FileNotFoundError:
            info = None
        if info is None or not stat.S_ISREG(info.st_mode):
            raise NotFoundError(f"No document {object_key!r} in {self.root}.")
        return path.as_uri()

    async def health_check(self) -> bool:
        return await asyncio.to_thread(lambda: self.root.is_dir() and os.access(self.root, os.W_OK))

    async def generate_presigned_put_url(self, object_key: str, expires_minutes: int = 15) -> str:
        raise NotImplementedError("A local folder has no upload URLs; use upload_file().")

    async def stat_object(self, object_key: str) -> int:
        try:
            info = await asyncio.to_thread(lambda: self._path_for(object_key).lstat())
        except FileNotFoundError:
            raise NotFoundError(f"No document {object_key!r} in {self.root}.") from None
        if not stat.S_ISREG(info.st_mode):
            raise NotFoundError(f"No document {object_key!r} in {self.root}.")
        return info.st_size

    # -- listing -------------------------------------------------------------------------------
    def _walk(self) -> list[ObjectInfo]:
        root = self._checked_root()
        found: list[ObjectInfo] = []
        stack = [root]
        while stack:
            directory = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            for entry in entries:
                if entry.name.startswith(TEMP_PREFIX):
                    files.remove_if_stale(Path(entry.path))  # left by a copy that was killed mid-way
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    stack.append(Path(entry.path))
                elif stat.S_ISREG(info.st_mode):
                    found.append(self._info(Path(entry.path), info))
        found.sort(key=lambda o: o.key)
        return found

    async def list_objects(self, page_token: str | None = None, page_size: int = 200) -> ObjectPage:
        if page_token:
            walk_id, _, offset_text = page_token.partition(":")
            listing = self._walks.get(walk_id)
            if listing is None or not offset_text.isdigit():
                raise KiteError("The listing expired; refresh again.", title="Listing expired")
            offset = int(offset_text)
        else:
            listing = await asyncio.to_thread(self._walk)
            walk_id, offset = uuid.uuid4().hex[:12], 0
        page_size = max(1, page_size)
        page = listing[offset : offset + page_size]
        end = offset + page_size
        if end < len(listing):
            self._walks[walk_id] = listing
            while len(self._walks) > MAX_CACHED_WALKS:
                self._walks.pop(next(iter(self._walks)))
            return ObjectPage(page, f"{walk_id}:{end}")
        self._walks.pop(walk_id, None)
        return ObjectPage(page, None)

    # -- streaming transfers ---------------------------------------------------------------------
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
        report = ThreadProgress(progress)
        saved = resume.data if resume is not None and resume.data else None
        if (
            saved is not None
            and saved.get("provider") == "local"
            and conflict == "rename"
            and saved.get("fingerprint") == await asyncio.to_thread(_fingerprint, path)
        ):
            # An earlier run got as far as placing the copy: if a name that was free then holds it now, it is done.
            found = await asyncio.to_thread(self._placed_earlier, clean, saved)
            if found is not None:
                report(found.size, final=True)
                return found

        def copy(flag: StopFlag) -> tuple[Path, Path, str, int, list[int]]:
            target = self._path_for(clean, create_parents=True)
            source_fd, before = files.open_source(path)
            result: dict[str, object] = {}
            try:

                def fill(dest_fd: int) -> None:
                    copied, digest = files.copy_fd(source_fd, dest_fd, flag, report)
                    files.check_unchanged(path, before, source_fd, copied)
                    result["digest"] = digest

                tmp = files.write_temp_beside(target, fill, mode=0o644)
            finally:
                os.close(source_fd)
            return target, tmp, str(result["digest"]), before.st_size, files.fingerprint(before)

        target, tmp, digest, size, fingerprint = await run_cancellable(copy)
        try:
            if resume is not None:
                taken = await asyncio.to_thread(self._taken_names, target)
                await resume.save(
                    {"provider": "local", "digest": digest, "size": size, "taken": taken, "fingerprint": fingerprint}
                )
            report(size, final=True)
            final = await asyncio.to_thread(self._place, tmp, target, conflict)
        finally:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(tmp.unlink)
        return await asyncio.to_thread(lambda: self._info(final, final.lstat(), digest))

    def _candidates(self, target: Path) -> Iterator[Path]:
        """The names "keep both" tries, in order: ``target``, then "name (1).ext", "name (2).ext"…"""
        key = self._key_for(target)
        yield target
        for number in itertools.count(1):
            yield self.root / numbered(key, number)

    def _taken_names(self, target: Path) -> list[str]:
        """The names "rename" would pass over now (taken before this copy was placed)."""
        taken: list[str] = []
        for candidate in self._candidates(target):
            if not os.path.lexists(candidate):
                return taken
            taken.append(self._key_for(candidate))
        raise AssertionError("unreachable")

    def _placed_earlier(self, clean: str, saved: dict[str, object]) -> ObjectInfo | None:
        target = self._path_for(clean, create_parents=True)
        taken = set(saved.get("taken") or [])  # type: ignore[call-overload]
        for candidate in self._candidates(target):
            try:
                info = candidate.lstat()
            except FileNotFoundError:
                return None
            if self._key_for(candidate) in taken or not stat.S_ISREG(info.st_mode) or info.st_size != saved["size"]:
                continue
            digest = files.hash_file(candidate)
            if digest == saved["digest"]:
                return self._info(candidate, info, digest)
        raise AssertionError("unreachable")

    def _place(self, tmp: Path, target: Path, conflict: ConflictPolicy) -> Path:
        try:
            if conflict == "replace":
                if target.is_dir() and not target.is_symlink():
                    raise NameConflictError(f"{self._key_for(target)} is a folder.")
                files.place(tmp, target, replace=True)
                return target
            key = self._key_for(target)
            for candidate in self._candidates(target):
                try:
                    files.place(tmp, candidate, replace=False)
                    return candidate
                except FileExistsError:
                    if conflict == "fail":
                        raise NameConflictError(
                            f"A document named {key} already exists.",
                            hint="Rename the file, or choose 'replace' for name conflicts.",
                        ) from None
        except OSError as exc:
            raise files.disk_error(exc, target.parent) from None
        raise AssertionError("unreachable")

    async def download_file(
        self,
        object_key: str,
        destination: Path,
        progress: ProgressCallback | None = None,
        resume: ResumeState | None = None,  # a local copy is quick: it always starts again
    ) -> ObjectInfo:
        destination = Path(destination)
        report = ThreadProgress(progress)

        def work(flag: StopFlag) -> ObjectInfo:
            source = self._path_for(object_key)
            try:
                source_fd, before = files.open_source(source)
            except KiteError:
                raise NotFoundError(f"No document {object_key!r} in {self.root}.") from None
            result: dict[str, str] = {}
            try:

                def fill(dest_fd: int) -> None:
                    copied, digest = files.copy_fd(source_fd, dest_fd, flag, report)
                    files.check_unchanged(source, before, source_fd, copied)
                    result["digest"] = digest

                if not destination.parent.is_dir():
                    raise KiteError(f"The folder {destination.parent} does not exist.", title="Cannot save")
                tmp = files.write_temp_beside(destination, fill)
            finally:
                os.close(source_fd)
            try:
                os.replace(tmp, destination)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                if exc.errno == errno.EISDIR:
                    raise KiteError(f"{destination} is a folder.", title="Cannot save") from None
                raise files.disk_error(exc, destination.parent) from None
            report(before.st_size, final=True)
            return self._info(source, before, result["digest"])

        return await run_cancellable(work)
