"""Atomic writes for every file the app owns: temp file in the same directory, fsync, replace."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

TEMP_PREFIX = ".kite-tmp-"


def temp_path_for(target: Path) -> Path:
    """A hidden temp name beside ``target``, so the final rename never crosses file systems."""
    return target.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex}")


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(target: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``target`` so that a reader sees either the old file or the whole new one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(target.parent)
