"""Reading and writing local files safely: no symlink following, temp + fsync + rename, clear errors."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kite_desktop.core.atomic import TEMP_PREFIX, fsync_dir, temp_path_for
from kite_desktop.core.errors import KiteError, SourceFileError, StorageFullError
from kite_desktop.storage.threads import StopFlag

CHUNK = 1024 * 1024


def open_source(path: Path) -> tuple[int, os.stat_result]:
    """Open a regular file for reading without following a symlink or blocking on a FIFO."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise SourceFileError(f"{path.name} no longer exists.", hint="It was moved or deleted.") from None
    except PermissionError:
        raise SourceFileError(
            f"{path.name} cannot be read: permission denied.", hint="Check the file's permissions."
        ) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SourceFileError(f"{path.name} is a symbolic link; not followed.") from None
        raise SourceFileError(f"{path.name} cannot be read: {exc.strerror}.") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise SourceFileError(f"{path.name} is not a regular file.")
    if hasattr(os, "O_NONBLOCK"):
        os.set_blocking(fd, True)
    return fd, info


def fingerprint(info: os.stat_result) -> list[int]:
    """What says a source file is still the one an interrupted upload was sending (kept with its session)."""
    return [info.st_size, info.st_mtime_ns, info.st_ino]


def read_chunks(fd: int, flag: StopFlag | None = None, chunk: int = CHUNK) -> Iterator[bytes]:
    while True:
        if flag is not None:
            flag.check()
        data = os.read(fd, chunk)
        if not data:
            return
        yield data


def check_unchanged(path: Path, before: os.stat_result, fd: int, copied: int) -> None:
    """Refuse a copy whose source changed while it was read."""
    after = os.fstat(fd)
    try:
        on_disk = os.lstat(path)
    except FileNotFoundError:
        raise SourceFileError(f"{path.name} was deleted while it was being read.") from None
    changed = (
        after.st_size != before.st_size
        or after.st_mtime_ns != before.st_mtime_ns
        or copied != before.st_size
        or (on_disk.st_ino, on_disk.st_dev) != (before.st_ino, before.st_dev)
    )
    if changed:
        raise SourceFileError(
            f"{path.name} changed while it was being read.",
            title="File changed during transfer",
            hint="Nothing was kept; try again once the file is no longer being written.",
        )


def is_disk_error(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO)


def disk_error(exc: OSError, where: Path) -> KiteError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFullError(f"Not enough disk space in {where}.")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return KiteError(
            f"Cannot write to {where}: {exc.strerror}.",
            title="Cannot write",
            hint="Choose a folder you can write to.",
        )
    return KiteError(f"Cannot write to {where}: {exc.strerror or exc}.", title="Cannot write")


def write_temp_beside(
    target: Path,
    fill: Callable[[int], None],
    mode: int = 0o666,
) -> Path:
    """Create a temp file beside ``target``, let ``fill(fd)`` write it, fsync it; return its path.

    On any failure the temp file is removed and the error is turned into a :class:`KiteError`.
    """
    tmp = temp_path_for(target)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    except OSError as exc:
        raise disk_error(exc, target.parent) from None
    try:
        try:
            fill(fd)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, KiteError):
            raise disk_error(exc, target.parent) from None
        raise
    return tmp


STALE_TEMP_AGE = 15 * 60
"""A temp file not written to for this long belongs to no running copy (a live one is written every moment)."""


def remove_if_stale(path: Path, now: float | None = None) -> bool:
    """Delete one of Kite's own temp files (``.kite-tmp-…``) that a killed run left behind; True if deleted."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    if not path.name.startswith(TEMP_PREFIX) or not stat.S_ISREG(info.st_mode):
        return False
    if (now if now is not None else time.time()) - info.st_mtime < STALE_TEMP_AGE:
        return False
    with contextlib.suppress(OSError):
        path.unlink()
        return True
    return False


def remove_stale_temps(folder: Path, keep: Path | None = None) -> int:
    """Delete the stale temp files directly in ``folder`` (where a download was going when Kite stopped), except
    ``keep`` (the one an interrupted download goes on with)."""
    try:
        names = [entry.name for entry in os.scandir(folder) if entry.name.startswith(TEMP_PREFIX)]
    except OSError:
        return 0
    return sum(remove_if_stale(folder / name) for name in names if keep is None or folder / name != keep)


def temp_to_go_on_with(saved: dict[str, Any] | None, plan: dict[str, Any], target: Path) -> Path | None:
    """The temp file of an interrupted download to go on with: ``saved`` (the queue's data) describes the same
    document as ``plan`` (store, key, size and hash, the hash known) and names a usable temp file."""
    if not saved or not plan.get("hash") or any(saved.get(k) != v for k, v in plan.items()):
        return None  # another document, or it changed since: start afresh
    return reusable_temp(saved.get("temp"), target, int(plan["size"]))


def reusable_temp(saved: object, target: Path, size: int) -> Path | None:
    """The temp file an interrupted download of ``target`` left, if it can be gone on with: one of Kite's temp
    names beside the target (never another file, whatever the queue's data says), a regular file, not longer
    than the document."""
    if not isinstance(saved, str):
        return None
    path = Path(saved)
    if path.parent != target.parent or not path.name.startswith(TEMP_PREFIX):
        return None
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return path if stat.S_ISREG(info.st_mode) and info.st_size <= size else None


def hash_file(path: Path) -> str:
    """The md5 (hex) of a regular file, read without following a symlink."""
    fd, _ = open_source(path)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        for data in read_chunks(fd):
            digest.update(data)
        return digest.hexdigest()
    finally:
        os.close(fd)


def copy_fd(
    source_fd: int,
    dest_fd: int,
    flag: StopFlag | None,
    progress: Callable[[int], None] | None,
) -> tuple[int, str]:
    """Copy everything from ``source_fd`` to ``dest_fd``; return (bytes copied, md5 hex)."""
    digest = hashlib.md5(usedforsecurity=False)
    done = 0
    for data in read_chunks(source_fd, flag):
        view = memoryview(data)
        while view:
            written = os.write(dest_fd, view)
            view = view[written:]
        digest.update(data)
        done += len(data)
        if progress:
            progress(done)
    return done, digest.hexdigest()


def place(tmp: Path, final: Path, *, replace: bool) -> None:
    """Give ``tmp`` its final name; without ``replace`` an existing name raises FileExistsError."""
    if replace:
        os.replace(tmp, final)
    else:
        try:
            os.link(tmp, final)
        except FileExistsError:
            raise
        except OSError:
            # File systems without hard links (FAT, exFAT): check, then rename.
            if final.exists() or final.is_symlink():
                raise FileExistsError(final) from None
            os.rename(tmp, final)
            fsync_dir(final.parent)
            return
        os.unlink(tmp)
    fsync_dir(final.parent)
