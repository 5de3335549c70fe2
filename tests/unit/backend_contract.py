"""What every ``StorageBackend`` promises, written once and run against each backend.

A backend's test module subclasses :class:`BackendContract` and provides one fixture::

    class TestLocalFolderBackend(BackendContract):
        @pytest.fixture
        def backend(self, tmp_path):
            return LocalFolderBackend(tmp_path / "store")

The fixture must give a fresh, empty store for every test. Tests use only the public methods of
:class:`kite_desktop.storage.base.StorageBackend`; they never look inside the store, so a Google Drive or
OneDrive backend runs the same checks. Keys are opaque: documents are found by ``ObjectInfo.name``.
Each test runs in one event loop and closes the backend (``aclose``) in that loop.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import threading
import tracemalloc
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from kite_desktop.core.errors import NameConflictError, NotFoundError, SourceFileError
from kite_desktop.core.models import ObjectInfo
from kite_desktop.storage.base import StorageBackend

from .support import MiB, md5_of, pattern_file, write_file

SEED_METHODS = (
    "put_object",
    "get_object",
    "delete_object",
    "presigned_get_url",
    "health_check",
    "generate_presigned_put_url",
    "stat_object",
)
STREAMING_METHODS = ("list_objects", "upload_file", "download_file")

UNICODE_NAMES = [
    "Résumé – final.pdf",
    "📄 notes 🎉.txt",
    "שלום עולם.txt",
    "تقرير مالي.docx",
    "日本語のファイル.md",
    "mixed עברית and English.txt",
]


def backend_test(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async contract test in its own loop, then close the backend in that same loop."""

    @functools.wraps(fn)
    def wrapper(self: BackendContract, backend: StorageBackend, **kwargs: Any) -> None:
        async def main() -> None:
            try:
                await fn(self, backend, **kwargs)
            finally:
                await backend.aclose()

        asyncio.run(main())

    return wrapper


async def listing(backend: StorageBackend, page_size: int = 200) -> list[ObjectInfo]:
    return [item async for item in backend.iter_objects(page_size)]


async def by_name(backend: StorageBackend) -> dict[str, ObjectInfo]:
    return {item.name: item for item in await listing(backend)}


class Progress:
    """A progress callback that remembers what it was told, and on which thread."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.threads: set[int] = set()

    def __call__(self, done: int) -> None:
        self.calls.append(done)
        self.threads.add(threading.get_ident())


class BackendContract:
    """The conformance suite. Subclasses provide the ``backend`` fixture."""

    STORE_IN_PROCESS = False
    """True when the store (an emulator) keeps the bytes in this process: memory is then measured in bench/."""

    @pytest.fixture
    def src(self, tmp_path: Path) -> Path:
        """Local files to upload from."""
        path = tmp_path / "src"
        path.mkdir()
        return path

    # -- the seed's seven --------------------------------------------------------------------------------
    def test_every_method_is_a_coroutine_function(self, backend: StorageBackend) -> None:
        for name in (*SEED_METHODS, *STREAMING_METHODS, "aclose"):
            assert inspect.iscoroutinefunction(getattr(backend, name)), f"{name} must be 'async def'"
        assert inspect.isasyncgenfunction(backend.iter_objects)

    @backend_test
    async def test_put_then_get_and_stat_return_what_was_put(self, backend: StorageBackend) -> None:
        data = b"%PDF-1.7 pretend invoice\n" * 100
        key = await backend.put_object("user-1", "doc-1", data, ".pdf", "application/pdf")

        assert await backend.get_object(key) == data
        assert await backend.stat_object(key) == len(data)
        assert key in {item.key for item in await listing(backend)}

    @backend_test
    async def test_health_check_is_true_for_a_working_store(self, backend: StorageBackend) -> None:
        assert await backend.health_check() is True

    @backend_test
    async def test_delete_removes_the_object_and_deleting_again_is_fine(self, backend: StorageBackend) -> None:
        keep = await backend.put_object("user-1", "keep", b"stays", ".txt", "text/plain")
        gone = await backend.put_object("user-1", "gone", b"goes", ".txt", "text/plain")

        await backend.delete_object(gone)
        await backend.delete_object(gone)  # already deleted: not an error

        with pytest.raises(NotFoundError):
            await backend.stat_object(gone)
        assert [item.key for item in await listing(backend)] == [keep]
        assert await backend.get_object(keep) == b"stays"

    @backend_test
    async def test_deleting_a_key_that_never_existed_is_not_an_error(self, backend: StorageBackend) -> None:
        await backend.delete_object("never-there.txt")
        assert await listing(backend) == []

    @backend_test
    async def test_a_missing_key_raises_not_found(self, backend: StorageBackend, tmp_path: Path) -> None:
        destination = tmp_path / "out.bin"
        with pytest.raises(NotFoundError):
            await backend.stat_object("missing.txt")
        with pytest.raises(NotFoundError):
            await backend.get_object("missing.txt")
        with pytest.raises(NotFoundError):
            await backend.download_file("missing.txt", destination)
        assert not destination.exists()
        assert list(tmp_path.glob("*kite-tmp*")) == []

    # -- listing ---------------------------------------------------------------------------------------------
    @backend_test
    async def test_an_empty_store_lists_nothing(self, backend: StorageBackend) -> None:
        page = await backend.list_objects()
        assert page.items == []
        assert page.next_page_token is None

    @backend_test
    async def test_paging_returns_every_object_exactly_once(self, backend: StorageBackend, src: Path) -> None:
        names = [f"doc-{n}.txt" for n in range(7)]
        for name in names:
            await backend.upload_file(write_file(src / name, name), name, "text/plain")

        seen: list[str] = []
        pages = 0
        token: str | None = None
        while True:
            page = await backend.list_objects(token, page_size=2)
            pages += 1
            assert len(page.items) <= 2
            seen.extend(item.name for item in page.items)
            token = page.next_page_token
            if token is None:
                break
            assert pages < 20, "paging does not end"

        assert sorted(seen) == names
        assert pages >= 4
        assert sorted(item.name for item in await listing(backend, page_size=3)) == names

    # -- uploads -----------------------------------------------------------------------------------------------
    @backend_test
    async def test_upload_streams_a_large_file_and_reports_what_was_stored(
        self, backend: StorageBackend, src: Path
    ) -> None:
        size = 24 * MiB + 123
        path = pattern_file(src / "video.mp4", size)

        tracemalloc.start()
        try:
            info = await backend.upload_file(path, "video.mp4", "video/mp4")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        if not self.STORE_IN_PROCESS:
            assert peak < size // 3, f"upload held {peak} bytes in memory for a {size}-byte file"
        assert info.name == "video.mp4"
        assert info.size == size
        if info.hash_kind == "md5":
            assert info.hash == md5_of(path)
        assert await backend.stat_object(info.key) == size
        assert (await by_name(backend))["video.mp4"].size == size

    @backend_test
    async def test_upload_progress_rises_to_the_size_on_the_loop_thread(
        self, backend: StorageBackend, src: Path
    ) -> None:
        size = 5 * MiB + 7
        path = pattern_file(src / "photo.raw", size)
        progress = Progress()

        await backend.upload_file(path, "photo.raw", "application/octet-stream", progress)

        assert progress.calls, "progress was never reported"
        assert progress.calls == sorted(progress.calls)
        assert progress.calls[-1] == size
        assert all(0 <= done <= size for done in progress.calls)
        assert progress.threads == {threading.get_ident()}

    @backend_test
    async def test_a_source_that_does_not_exist_is_refused_and_nothing_is_stored(
        self, backend: StorageBackend, src: Path
    ) -> None:
        with pytest.raises(SourceFileError, match="no longer exists"):
            await backend.upload_file(src / "vanished.txt", "vanished.txt", "text/plain")
        assert await listing(backend) == []

    @backend_test
    async def test_a_zero_byte_file_round_trips(self, backend: StorageBackend, src: Path, tmp_path: Path) -> None:
        progress = Progress()
        info = await backend.upload_file(write_file(src / "empty.txt"), "empty.txt", "text/plain", progress)

        assert info.size == 0
        if info.hash_kind == "md5":
            assert info.hash == hashlib.md5(b"", usedforsecurity=False).hexdigest()
        assert await backend.stat_object(info.key) == 0
        assert (await by_name(backend))["empty.txt"].size == 0
        assert progress.calls[-1] == 0
        destination = tmp_path / "empty-copy.txt"
        await backend.download_file(info.key, destination)
        assert destination.read_bytes() == b""

    @backend_test
    async def test_nested_names_keep_their_folder_structure(
        self, backend: StorageBackend, src: Path, tmp_path: Path
    ) -> None:
        first = await backend.upload_file(write_file(src / "c.txt", "deep"), "a/b/c.txt", "text/plain")
        second = await backend.upload_file(write_file(src / "d.txt", "shallow"), "a/d.txt", "text/plain")

        assert (first.name, second.name) == ("a/b/c.txt", "a/d.txt")
        assert sorted(await by_name(backend)) == ["a/b/c.txt", "a/d.txt"]
        await backend.download_file(first.key, tmp_path / "c-copy.txt")
        assert (tmp_path / "c-copy.txt").read_text() == "deep"

    @pytest.mark.parametrize("name", UNICODE_NAMES)
    @backend_test
    async def test_unicode_emoji_and_right_to_left_names_round_trip(
        self, backend: StorageBackend, src: Path, tmp_path: Path, name: str
    ) -> None:
        data = f"content of {name}".encode()
        info = await backend.upload_file(write_file(src / "upload.bin", data), name, "application/octet-stream")

        assert info.name == name
        assert list(await by_name(backend)) == [name]
        await backend.download_file(info.key, tmp_path / "copy.bin")
        assert (tmp_path / "copy.bin").read_bytes() == data
        assert await backend.get_object(info.key) == data

    # -- name conflicts ----------------------------------------------------------------------------------------
    @backend_test
    async def test_rename_policy_keeps_both_with_a_number(self, backend: StorageBackend, src: Path) -> None:
        first = await backend.upload_file(write_file(src / "1", "first"), "x.txt", "text/plain")
        second = await backend.upload_file(write_file(src / "2", "second"), "x.txt", "text/plain", conflict="rename")
        third = await backend.upload_file(write_file(src / "3", "third"), "x.txt", "text/plain")  # the default
        nested = await backend.upload_file(write_file(src / "4", "n1"), "docs/x.txt", "text/plain")
        nested_again = await backend.upload_file(write_file(src / "5", "n2"), "docs/x.txt", "text/plain")

        assert [first.name, second.name, third.name] == ["x.txt", "x (1).txt", "x (2).txt"]
        assert [nested.name, nested_again.name] == ["docs/x.txt", "docs/x (1).txt"]
        assert await backend.get_object(first.key) == b"first"
        assert await backend.get_object(second.key) == b"second"
        assert await backend.get_object(third.key) == b"third"
        assert len(await listing(backend)) == 5

    @backend_test
    async def test_replace_policy_overwrites_the_existing_document(self, backend: StorageBackend, src: Path) -> None:
        await backend.upload_file(write_file(src / "old", "old content"), "report.txt", "text/plain")
        info = await backend.upload_file(
            write_file(src / "new", "new!"), "report.txt", "text/plain", conflict="replace"
        )

        assert info.name == "report.txt"
        assert info.size == 4
        objects = await listing(backend)
        assert [item.name for item in objects] == ["report.txt"]
        assert await backend.get_object(objects[0].key) == b"new!"

    @backend_test
    async def test_fail_policy_raises_and_keeps_the_original(self, backend: StorageBackend, src: Path) -> None:
        original = await backend.upload_file(write_file(src / "old", "original"), "report.txt", "text/plain")

        with pytest.raises(NameConflictError):
            await backend.upload_file(write_file(src / "new", "intruder"), "report.txt", "text/plain", conflict="fail")

        assert [item.name for item in await listing(backend)] == ["report.txt"]
        assert await backend.get_object(original.key) == b"original"

    # -- downloads ---------------------------------------------------------------------------------------------
    @backend_test
    async def test_download_is_byte_identical_and_streams(
        self, backend: StorageBackend, src: Path, tmp_path: Path
    ) -> None:
        size = 24 * MiB + 5
        path = pattern_file(src / "archive.zip", size, seed=3)
        info = await backend.upload_file(path, "archive.zip", "application/zip")
        destination = tmp_path / "downloads" / "archive.zip"
        destination.parent.mkdir()
        progress = Progress()

        tracemalloc.start()
        try:
            result = await backend.download_file(info.key, destination, progress)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        if not self.STORE_IN_PROCESS:
            assert peak < size // 3, f"download held {peak} bytes in memory for a {size}-byte file"
        assert destination.read_bytes() == path.read_bytes()
        assert result.size == size
        assert progress.calls[-1] == size
        assert progress.calls == sorted(progress.calls)
        assert [p.name for p in destination.parent.iterdir()] == ["archive.zip"]  # no temp file left

    @backend_test
    async def test_download_replaces_an_existing_file_at_the_destination(
        self, backend: StorageBackend, src: Path, tmp_path: Path
    ) -> None:
        info = await backend.upload_file(write_file(src / "a", "fresh"), "a.txt", "text/plain")
        destination = write_file(tmp_path / "a.txt", "stale and longer")

        await backend.download_file(info.key, destination)

        assert destination.read_bytes() == b"fresh"
