"""Helpers shared by the unit tests. Fixtures live in ``conftest.py``; these are plain functions."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, ParamSpec

from kite_desktop.app import build_service
from kite_desktop.core.service import KiteService
from kite_desktop.core.tokens import MemoryTokenStore

P = ParamSpec("P")
MiB = 1024 * 1024
NOBODY = 65534


def async_test(fn: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run an ``async def`` test in a fresh event loop; pytest still sees the fixtures it asks for."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper


# -- files -------------------------------------------------------------------------------------------------------------
def write_file(path: Path, data: bytes | str = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def pattern_file(path: Path, size: int, seed: int = 0) -> Path:
    """A file of ``size`` bytes whose content differs per seed and per MiB (so misplaced chunks show)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = hashlib.sha256(str(seed).encode()).digest() * (MiB // 32)
    with path.open("wb") as handle:
        written = 0
        index = 0
        while written < size:
            piece = (index.to_bytes(8, "big") + block)[: min(MiB, size - written)]
            handle.write(piece)
            written += len(piece)
            index += 1
    return path


def sparse_file(path: Path, size: int) -> Path:
    """A big file that costs no disk space: a hole, read back as zeros."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.write(b"start")
        handle.truncate(size)
    return path


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(MiB), b""):
            digest.update(block)
    return digest.hexdigest()


def all_files(root: Path) -> list[str]:
    """Every non-directory entry under ``root`` (hidden files included), as sorted relative POSIX paths."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir() or p.is_symlink())


# -- the service -------------------------------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def open_service(profile_dir: Path) -> AsyncIterator[KiteService]:
    """The real service on a real profile, closed (queue stopped, catalog closed) afterwards."""
    service = await asyncio.to_thread(build_service, profile_dir, MemoryTokenStore())
    try:
        yield service
    finally:
        await service.close()


# -- running Python as a user file permissions apply to ----------------------------------------------------------------
SETPRIV = shutil.which("setpriv")
SETPRIV_ARGS = [f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
_PRELOAD = "import concurrent.futures.thread, json, kite_desktop.app, kite_desktop.cli"
_DROP = (
    "import os; os.setgroups([]); "
    f"os.setresgid({NOBODY}, {NOBODY}, {NOBODY}); os.setresuid({NOBODY}, {NOBODY}, {NOBODY})"
)


@functools.cache
def _setpriv_can_run_this_python() -> bool:
    """Whether 'nobody' can start this interpreter and import the project (not so when it lives under /root)."""
    if SETPRIV is None:
        return False
    probe = subprocess.run(
        [SETPRIV, *SETPRIV_ARGS, sys.executable, "-c", "import kite_desktop.app, kite_desktop.cli"],
        cwd="/",
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    return probe.returncode == 0


def runs_as_root() -> bool:
    return os.geteuid() == 0


def unprivileged_python(code: str) -> list[str]:
    """argv for ``python -c code`` run by a user that file permissions apply to.

    Not root: this user. Root: 'nobody', through ``setpriv --reuid --regid --clear-groups``. When 'nobody'
    cannot read this interpreter's own files (pyenv under /root, mode 0700), the child imports the
    project as root and then drops to 'nobody' with the same three calls setpriv makes, before ``code``
    touches any file.
    """
    if not runs_as_root():
        return [sys.executable, "-c", code]
    if _setpriv_can_run_this_python():
        assert SETPRIV is not None
        return [SETPRIV, *SETPRIV_ARGS, sys.executable, "-c", code]
    return [sys.executable, "-c", f"{_PRELOAD}\n{_DROP}\n{code}"]


def hand_to_runner(*paths: Path) -> None:
    """Make ``paths`` writable by whoever :func:`unprivileged_python` runs as."""
    if runs_as_root():
        for path in paths:
            os.chown(path, NOBODY, NOBODY)
