"""Bytes between disk and Drive: an upload source that reads any chunk again, and a hashing download sink.

``ChunkedFileMedia`` is a ``MediaUpload`` that hands googleapiclient each chunk as bytes read with
``pread`` (``has_stream()`` is False). A stream slice, the library's default, is consumed by the first send,
so a retried chunk PUT would go out with an empty body and hang until the socket timeout (PROTOCOLS.md,
gotcha 2 and the Addendum). Only one chunk is in memory at a time. The MD5 is computed as chunks are read
in order, so the file is read once.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
from pathlib import Path
from typing import Any, BinaryIO

from googleapiclient.http import MediaUpload

from kite_desktop.core.atomic import fsync_dir, temp_path_for
from kite_desktop.storage import files


class ChunkedFileMedia(MediaUpload):
    def __init__(
        self, name: str, size: int, mimetype: str, chunk_size: int, read_at: Any, close: Any = None, check: Any = None
    ):
        self.name = name
        self._size = size
        self._mimetype = mimetype
        self._chunk_size = chunk_size
        self._read_at = read_at
        self._close = close
        self._check = check
        self._resumable = True
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._hashed = 0
        self.fingerprint: list[int] = []

    @classmethod
    def open(cls, path: Path, mimetype: str, chunk_size: int) -> ChunkedFileMedia:
        fd, before = files.open_source(path)

        def check() -> None:
            files.check_unchanged(path, before, fd, before.st_size)

        media = cls(
            path.name,
            before.st_size,
            mimetype,
            chunk_size,
            lambda n, at: os.pread(fd, n, at),
            lambda: os.close(fd),
            check,
        )
        media.fingerprint = files.fingerprint(before)
        return media

    @classmethod
    def from_bytes(cls, data: bytes, mimetype: str) -> ChunkedFileMedia:
        view = memoryview(data)
        return cls("data", len(data), mimetype, max(len(data), 1), lambda n, at: bytes(view[at : at + n]))

    def resumable_mode(self, resumable: bool) -> None:
        self._resumable = resumable

    # -- MediaUpload ------------------------------------------------------------------------------------
    def chunksize(self) -> int:
        return self._chunk_size

    def mimetype(self) -> str:
        return self._mimetype

    def size(self) -> int:
        return self._size

    def resumable(self) -> bool:
        return self._resumable

    def has_stream(self) -> bool:
        return False

    def getbytes(self, begin: int, length: int) -> bytes:
        if self._check is not None:
            self._check()  # a file changed or deleted since the last chunk: stop now, not after sending it all
        data = self._read(begin, length)
        if begin <= self._hashed < begin + len(data):
            self._md5.update(data[self._hashed - begin :])
            self._hashed = begin + len(data)
        return data

    def _read(self, begin: int, length: int) -> bytes:
        chunks = []
        while length > 0:
            try:
                data = self._read_at(length, begin)
            except OSError as exc:
                raise files.SourceFileError(
                    f"{self.name} could not be read: {exc.strerror or exc}.",
                    hint="Check that the disk or USB stick is still connected.",
                ) from None
            if not data:
                break
            chunks.append(data)
            begin += len(data)
            length -= len(data)
        return b"".join(chunks)

    # -- ours -------------------------------------------------------------------------------------------
    def finish(self) -> None:
        """Hash whatever was never sent in order, and refuse a source that changed while it was read."""
        while self._hashed < self._size:
            data = self._read(self._hashed, min(files.CHUNK, self._size - self._hashed))
            if not data:
                break
            self._md5.update(data)
            self._hashed += len(data)
        if self._check is not None:
            self._check()

    def md5(self) -> str:
        return self._md5.hexdigest()

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None


SLICE = 256 * 1024


class HashingWriter(io.RawIOBase):
    """A write-only sink that counts and hashes; for files, a temp beside the target until ``commit``."""

    def __init__(self, sink: BinaryIO, path: Path | None = None):
        super().__init__()
        self._sink = sink
        self.path = path
        self.size = 0
        self._md5 = hashlib.md5(usedforsecurity=False)

    @classmethod
    def create_beside(cls, target: Path) -> HashingWriter:
        if not target.parent.is_dir():
            raise files.KiteError(f"The folder {target.parent} does not exist.", title="Cannot save")
        tmp = temp_path_for(target)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except OSError as exc:
            raise files.disk_error(exc, target.parent) from None
        return cls(os.fdopen(fd, "wb", buffering=0), tmp)

    @classmethod
    def reopen(cls, tmp: Path) -> HashingWriter:
        """Go on writing an interrupted download's temp file: what it holds is hashed and counted first."""
        writer = cls(open(tmp, "ab", buffering=0), tmp)  # noqa: SIM115 - closed by commit or discard
        with open(tmp, "rb") as existing:
            while data := existing.read(files.CHUNK):
                writer._md5.update(data)
                writer.size += len(data)
        return writer

    @property
    def folder(self) -> Path:
        return self.path.parent if self.path else Path(".")

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        # Slices that stay in the CPU cache between the write and the hash (whole chunks are much slower).
        for start in range(0, len(view), SLICE):
            piece = view[start : start + SLICE]
            rest = piece
            while rest:  # an unbuffered file may take part of it (a disk nearly full): write the rest, or fail
                written = self._sink.write(rest)
                if not written:
                    raise OSError(errno.ENOSPC, "No space left on device")
                rest = rest[written:]
            self._md5.update(piece)
        self.size += len(view)
        return len(view)

    def md5(self) -> str:
        return self._md5.hexdigest()

    def commit(self, target: Path) -> None:
        assert self.path is not None
        try:
            self._sink.flush()
            os.fsync(self._sink.fileno())
            self._sink.close()
            os.replace(self.path, target)
        except OSError as exc:
            raise files.disk_error(exc, target.parent) from None
        fsync_dir(target.parent)

    def close_file(self) -> None:
        """Close the temp file and keep it (a paused download goes on with it)."""
        with contextlib.suppress(OSError):
            self._sink.close()

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self._sink.close()
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
