"""Which running Kite process owns a queued transfer: one locked file per process.

The window and the ``kite`` command may run at the same time on one profile. Each holds an exclusive lock
on its own file in ``owners/`` for as long as it lives; the operating system drops the lock when the
process ends, however it ends (a crash, SIGKILL). A transfer whose owner's file can be locked by someone
else belongs to nobody any more and may be taken over.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


class OwnerLock:
    """This process's claim: held until :meth:`release` or the process ends."""

    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.path = directory / f"{self.token}.lock"
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        if not _try_lock(self._fd):
            raise RuntimeError("a new lock file could not be locked")

    def alive(self, token: str | None) -> bool:
        """Whether the process that wrote ``token`` is still running (this one always is)."""
        if not token:
            return False
        if token == self.token:
            return True
        path = self.directory / f"{token}.lock"
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            if not _try_lock(fd):
                return True
            with contextlib.suppress(OSError):
                path.unlink()  # its owner is gone: tidy up
            return False
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None
