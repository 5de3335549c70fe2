"""Uploads that go on after Kite was stopped, against both emulators, through the real client libraries.

Each "run" is a fresh backend given only what the queue kept on disk (the ResumeState data), as after a
restart: it goes on from the server's offset, recognises an upload that had completed, and starts afresh
when the session expired or the file changed. Never a second remote copy.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kite_desktop.core.models import ResumeState
from kite_desktop.storage.base import StorageBackend
from tests.cloud.google_support import CHUNK, drive_backend
from tests.cloud.ms_support import FRAGMENT, onedrive_backend
from tests.emulators.google import GoogleEmulator
from tests.emulators.microsoft import MicrosoftEmulators

GUARD = 20
SIZE = 24 * CHUNK  # 6 MiB: over Drive's multipart limit, so a resumable session; 19+ OneDrive fragments


class Remote:
    """One emulator seen the same way from both providers' tests."""

    def __init__(self, kind: str, emulator: Any):
        self.kind = kind
        self.emulator = emulator

    def backend(self) -> StorageBackend:
        return drive_backend(self.emulator) if self.kind == "google" else onedrive_backend(self.emulator)

    def copies(self, name: str) -> list[bytes]:
        if self.kind == "google":
            return [self.emulator.file_bytes(f.id) for f in self.emulator.files_named(name)]
        return [self.emulator.graph.item_bytes(i.id) for i in self.emulator.graph.items_named(name)]

    @property
    def requests(self) -> list[Any]:
        return list(self.emulator.requests if self.kind == "google" else self.emulator.graph.requests)

    def data_puts(self, since: int = 0) -> list[Any]:
        """Requests that carried file bytes."""
        return [r for r in self.requests[since:] if r.method == "PUT" and r.body_length > 0]

    def new_sessions(self, since: int = 0) -> list[Any]:
        marker = "uploadType=resumable" if self.kind == "google" else "createUploadSession"
        return [r for r in self.requests[since:] if r.method == "POST" and marker in r.path]

    def expire_sessions(self) -> None:
        """The next question to a saved session finds it gone (Drive keeps sessions a week, OneDrive days)."""
        if self.kind == "google":
            body = {"error": {"code": 404, "message": "Not Found", "errors": [{"reason": "notFound"}]}}
            self.emulator.faults.add("PUT", r"upload_id=", status=404, json=body)
        else:
            self.emulator.graph.faults.add("GET", r"^/up/", status=404, json={"error": {"code": "itemNotFound"}})


@pytest.fixture(params=["google", "onedrive"])
def remote(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    if request.param == "google":
        with GoogleEmulator() as emulator:
            yield Remote("google", emulator)
    else:
        with MicrosoftEmulators() as emulators:
            monkeypatch.setenv("KITE_CA_BUNDLE", emulators.cert_path)
            monkeypatch.setenv("KITE_MS_AUTHORITY", emulators.authority)
            monkeypatch.setenv("KITE_MS_CLIENT_ID", emulators.client_id)
            yield Remote("onedrive", emulators)


class Disk:
    """What the queue keeps on disk: the last saved resume data."""

    def __init__(self) -> None:
        self.data: dict[str, Any] | None = None
        self.saves = 0

    async def save(self, data: dict[str, Any] | None) -> None:
        self.data = None if data is None else dict(data)
        self.saves += 1

    def state(self) -> ResumeState:
        return ResumeState(self.data, self.save)


def source_file(tmp_path: Path, size: int = SIZE, name: str = "scan.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


async def upload(remote: Remote, source: Path, disk: Disk, progress: Callable[[int], None] | None = None) -> Any:
    backend = remote.backend()
    try:
        return await backend.upload_file(source, source.name, "application/octet-stream", progress, resume=disk.state())
    finally:
        await backend.aclose()


async def stopped_part_way(remote: Remote, source: Path, disk: Disk, at_least: int) -> None:
    """Start an upload and stop it (as a quit or a kill would) once ``at_least`` bytes are on the server."""
    reached = asyncio.Event()
    task = asyncio.create_task(upload(remote, source, disk, lambda done: done >= at_least and reached.set()))
    await asyncio.wait_for(reached.wait(), GUARD)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_an_interrupted_upload_goes_on_from_the_servers_offset_after_a_restart(remote: Remote, tmp_path: Path):
    source = source_file(tmp_path)
    disk = Disk()
    asyncio.run(stopped_part_way(remote, source, disk, SIZE // 2))
    assert disk.data is not None and disk.data.get("provider") in ("google_drive", "onedrive")
    assert remote.copies(source.name) == []  # nothing committed yet
    before = len(remote.requests)

    info = asyncio.run(upload(remote, source, disk))

    assert remote.copies(source.name) == [source.read_bytes()]
    assert info.size == SIZE
    assert remote.new_sessions(before) == [], "the saved session was used, not a new one"
    resent = sum(r.body_length for r in remote.data_puts(before))
    assert resent <= SIZE // 2 + 2 * FRAGMENT, "only what the server did not have was sent again"


def test_an_upload_that_completed_before_the_restart_is_not_made_twice(remote: Remote, tmp_path: Path):
    """The server committed, then Kite was killed before it wrote "done": the next run must recognise it."""
    source = source_file(tmp_path)
    disk = Disk()
    first = asyncio.run(upload(remote, source, disk))
    before = len(remote.requests)

    again = asyncio.run(upload(remote, source, disk))

    assert again.key == first.key
    assert remote.copies(source.name) == [source.read_bytes()]
    assert remote.data_puts(before) == [] and remote.new_sessions(before) == []


def test_an_expired_saved_session_starts_a_new_one_and_finishes_once(remote: Remote, tmp_path: Path):
    source = source_file(tmp_path)
    disk = Disk()
    asyncio.run(stopped_part_way(remote, source, disk, SIZE // 3))
    before = len(remote.requests)
    remote.expire_sessions()

    asyncio.run(upload(remote, source, disk))

    assert remote.copies(source.name) == [source.read_bytes()]
    assert len(remote.new_sessions(before)) == 1


def test_a_file_changed_while_kite_was_stopped_is_uploaded_as_it_is_now(remote: Remote, tmp_path: Path):
    source = source_file(tmp_path)
    disk = Disk()
    asyncio.run(stopped_part_way(remote, source, disk, SIZE // 2))
    source.write_bytes(os.urandom(SIZE + 1000))  # edited before Kite started again

    asyncio.run(upload(remote, source, disk))

    assert remote.copies(source.name) == [source.read_bytes()], "no mixed content, one copy"


def test_a_saved_plan_whose_drive_folder_was_deleted_starts_afresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The Kite folder was deleted in Drive while Kite was stopped: the upload goes to a new folder, once."""
    with GoogleEmulator() as emulator:
        remote = Remote("google", emulator)
        source = source_file(tmp_path)
        disk = Disk()
        asyncio.run(stopped_part_way(remote, source, disk, SIZE // 2))
        assert disk.data is not None
        folder = disk.data["parent"]

        async def delete_folder() -> None:
            backend = remote.backend()
            try:
                await backend.delete_object(folder)
            finally:
                await backend.aclose()

        asyncio.run(delete_folder())
        asyncio.run(upload(remote, source, disk))
        assert remote.copies(source.name) == [source.read_bytes()]


# -- downloads -------------------------------------------------------------------------------------------------
def stored(remote: Remote, tmp_path: Path) -> tuple[str, bytes]:
    """A document of SIZE bytes in the store; its key and content."""
    source = source_file(tmp_path, name="dataset.bin")

    async def put() -> Any:
        backend = remote.backend()
        try:
            return await backend.upload_file(source, source.name, "application/octet-stream")
        finally:
            await backend.aclose()

    return asyncio.run(put()).key, source.read_bytes()


async def download(remote: Remote, key: str, target: Path, disk: Disk, progress: Any = None) -> Any:
    backend = remote.backend()
    try:
        return await backend.download_file(key, target, progress, resume=disk.state())
    finally:
        await backend.aclose()


def content_requests(remote: Remote) -> int:
    if remote.kind == "google":
        return len(remote.requests)
    return len(remote.emulator.graph.download_requests)


def range_starts(remote: Remote, since: int) -> list[int]:
    """Where each GET of the document's bytes started (0 without a Range)."""
    if remote.kind == "google":
        ranges = [r.headers.get("range", "") for r in remote.requests[since:] if "alt=media" in r.path]
    else:
        ranges = [r.range or "" for r in remote.emulator.graph.download_requests[since:] if r.method == "GET"]
    return [int(value[len("bytes=") :].split("-")[0]) if value.startswith("bytes=") else 0 for value in ranges]


def test_an_interrupted_download_goes_on_from_its_temp_file_after_a_restart(remote: Remote, tmp_path: Path):
    key, content = stored(remote, tmp_path)
    target = tmp_path / "out" / "dataset.bin"
    target.parent.mkdir()
    disk = Disk()

    async def stopped_part_way() -> None:
        reached = asyncio.Event()
        task = asyncio.create_task(download(remote, key, target, disk, lambda d: d >= SIZE // 2 and reached.set()))
        await asyncio.wait_for(reached.wait(), GUARD)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(stopped_part_way())
    assert not target.exists() and disk.data is not None
    partial = Path(disk.data["temp"])
    assert partial.exists() and 0 < partial.stat().st_size < SIZE
    before = content_requests(remote)

    asyncio.run(download(remote, key, target, disk))

    assert target.read_bytes() == content
    starts = range_starts(remote, before)
    assert starts and min(starts) >= SIZE // 2, f"only the rest was fetched (ranges from {starts})"
    assert [p.name for p in target.parent.iterdir()] == ["dataset.bin"], "no temp file left"


def test_a_document_changed_since_the_interrupted_download_is_fetched_whole(remote: Remote, tmp_path: Path):
    key, content = stored(remote, tmp_path)
    target = tmp_path / "dataset.bin.copy"
    disk = Disk()
    temp = target.with_name(".kite-tmp-0000000000000000")
    temp.write_bytes(b"x" * 1000)
    disk.data = {"provider": "google_drive" if remote.kind == "google" else "onedrive", "key": key, "temp": str(temp)}
    disk.data.update({"hash": "an older version", "size": SIZE})

    asyncio.run(download(remote, key, target, disk))

    assert target.read_bytes() == content
