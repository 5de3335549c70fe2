"""Turn what a person dropped (paths, file:// URLs, anything else) into upload items and skipped items.

Walks folders without following symbolic links to folders, skips FIFOs, sockets and devices without
opening them, detects loops, and keeps a dropped folder's relative structure in the document names
("Dropped/sub/file.txt"). Nothing here reads file contents.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from kite_desktop.core.names import clean_relative_path


@dataclass(frozen=True)
class UploadItem:
    path: Path
    name: str
    size: int
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skipped:
    source: str
    reason: str


@dataclass
class Intake:
    items: list[UploadItem] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(item.size for item in self.items)


def _kind_of(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def source_to_path(source: str) -> Path | None:
    """A local path for a path or ``file://`` URL; None for anything else (http URLs, data, ...)."""
    if "://" in source or source.startswith("data:"):
        parts = urlsplit(source)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            return None
        return Path(unquote(parts.path))
    return Path(source)


class _Walker:
    def __init__(self) -> None:
        self.result = Intake()

    def skip(self, source: Path | str, reason: str) -> None:
        self.result.skipped.append(Skipped(str(source), reason))

    def add(self, path: Path, name: str, size: int) -> None:
        try:
            clean = clean_relative_path(name)
        except ValueError as exc:
            self.skip(path, f"Unusable name: {exc}.")
            return
        notes = tuple(f"Name changed ({c})." for c in clean.changes)
        self.result.items.append(UploadItem(path, clean.name, size, notes))

    def top_level(self, source: str) -> None:
        path = source_to_path(source)
        if path is None:
            self.skip(source, "Not a local file. Save it to disk first, then add the saved file.")
            return
        path = Path(os.path.abspath(path))
        try:
            info = path.lstat()
        except FileNotFoundError:
            self.skip(path, "Not found (moved or deleted?).")
            return
        except OSError as exc:
            self.skip(path, f"Cannot be read: {exc.strerror or exc}.")
            return
        if stat.S_ISLNK(info.st_mode):
            # The person chose this link explicitly: follow it once.
            try:
                target = path.resolve(strict=True)
                info = target.stat()
            except (OSError, RuntimeError):
                self.skip(path, "Broken symbolic link.")
                return
            if stat.S_ISDIR(info.st_mode):
                self.folder(target, path.name)
            elif stat.S_ISREG(info.st_mode):
                self.add(target, path.name, info.st_size)
            else:
                self.skip(path, f"Skipped: it is {_kind_of(info.st_mode)}, which cannot be uploaded.")
            return
        if stat.S_ISDIR(info.st_mode):
            self.folder(path, path.name or "folder")
        elif stat.S_ISREG(info.st_mode):
            self.add(path, path.name, info.st_size)
        else:
            self.skip(path, f"Skipped: it is {_kind_of(info.st_mode)}, which cannot be uploaded.")

    def folder(self, root: Path, prefix: str) -> None:
        root_real = Path(os.path.realpath(root))
        seen: set[tuple[int, int]] = set()
        stack: list[tuple[Path, str]] = [(root, prefix)]
        while stack:
            directory, name = stack.pop()
            try:
                info = directory.stat()
            except OSError as exc:
                self.skip(directory, f"Folder cannot be read: {exc.strerror or exc}.")
                continue
            if (info.st_dev, info.st_ino) in seen:
                self.skip(directory, "Folder loop: this folder was already added.")
                continue
            seen.add((info.st_dev, info.st_ino))
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except OSError as exc:
                self.skip(directory, f"Folder cannot be read: {exc.strerror or exc}.")
                continue
            for entry in entries:
                self.entry(entry, f"{name}/{entry.name}", root_real, stack)

    def entry(self, entry: os.DirEntry[str], name: str, root_real: Path, stack: list[tuple[Path, str]]) -> None:
        path = Path(entry.path)
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError as exc:
            self.skip(path, f"Cannot be read: {exc.strerror or exc}.")
            return
        if stat.S_ISLNK(info.st_mode):
            self.link(path, name, root_real)
        elif stat.S_ISDIR(info.st_mode):
            stack.append((path, name))
        elif stat.S_ISREG(info.st_mode):
            self.add(path, name, info.st_size)
        else:
            self.skip(path, f"Skipped: it is {_kind_of(info.st_mode)}, which cannot be uploaded.")

    def link(self, path: Path, name: str, root_real: Path) -> None:
        target = Path(os.path.realpath(path))
        try:
            info = target.stat()
        except OSError:
            self.skip(path, "Broken symbolic link.")
            return
        if not target.is_relative_to(root_real):
            self.skip(path, f"Symbolic link points outside the dropped folder (to {target}); not followed.")
        elif stat.S_ISDIR(info.st_mode):
            self.skip(path, "Symbolic link to a folder; not followed (it could loop).")
        elif stat.S_ISREG(info.st_mode):
            self.add(target, name, info.st_size)
        else:
            self.skip(path, f"Skipped: it links to {_kind_of(info.st_mode)}.")


def collect(sources: Iterable[str | os.PathLike[str]]) -> Intake:
    """Everything to upload from ``sources``, plus what was skipped and why."""
    walker = _Walker()
    for source in sources:
        walker.top_level(os.fspath(source))
    return walker.result
