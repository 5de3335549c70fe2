"""GoogleDriveBackend against the Drive emulator, through the real google-api-python-client.

The conformance suite runs first; then the seed's must-haves, token handling and every scripted fault.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
from pathlib import Path

import pytest

from kite_desktop.core.errors import (
    CloudConnectionError,
    IntegrityError,
    KiteError,
    StorageFullError,
)
from kite_desktop.storage import google_drive_backend
from kite_desktop.storage.google_drive_backend import GoogleDriveBackend
from tests.cloud.google_support import CHUNK, drive_backend
from tests.emulators.google import GoogleEmulator
from tests.unit.backend_contract import SEED_METHODS, BackendContract


@pytest.fixture
def drive():
    with GoogleEmulator() as emulator:
        yield emulator


class TestGoogleDriveBackend(BackendContract):
    STORE_IN_PROCESS = True  # the emulator holds the bytes; bench/ measures the backend's memory alone

    @pytest.fixture
    def backend(self, drive: GoogleEmulator) -> GoogleDriveBackend:
        return drive_backend(drive)


def run(coro):
    return asyncio.run(coro)


def big_file(tmp_path: Path, size: int, name: str = "scan.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


async def upload(backend: GoogleDriveBackend, path: Path, name: str | None = None):
    try:
        return await backend.upload_file(path, name or path.name, "application/octet-stream")
    finally:
        await backend.aclose()


# -- the seed's must-haves -------------------------------------------------------------------------------
def test_seed_shape_holds(drive: GoogleEmulator):
    assert google_drive_backend.CloudConnectionError is CloudConnectionError
    for method in SEED_METHODS:
        assert inspect.iscoroutinefunction(getattr(GoogleDriveBackend, method)), method
    backend = GoogleDriveBackend(
        {
            "access_token": "x",
            "refresh_token": "y",
            "token_uri": drive.token_uri,
            "client_id": "c",
            "client_secret": "s",
        },
        api_root=drive.root_url,
    )

    async def presigned() -> None:
        with pytest.raises(NotImplementedError):
            await backend.presigned_get_url("key")
        with pytest.raises(NotImplementedError):
            await backend.generate_presigned_put_url("key")

    run(presigned())
    assert drive.requests == [], "constructing the backend must not touch the network"


def test_seed_methods_store_and_read_bytes(drive: GoogleEmulator):
    backend = drive_backend(drive)

    async def scenario() -> None:
        key = await backend.put_object("user-1", "doc-1", b"%PDF-1.7 hello", ".pdf", "application/pdf")
        assert await backend.get_object(key) == b"%PDF-1.7 hello"
        assert await backend.stat_object(key) == len(b"%PDF-1.7 hello")
        assert await backend.health_check() is True
        await backend.delete_object(key)
        await backend.delete_object(key)  # 404 is a no-op
        await backend.aclose()

    run(scenario())
    assert drive.files_named("doc-1.pdf") == []


def test_documents_live_in_a_kite_folder_under_their_own_names(drive: GoogleEmulator, tmp_path: Path):
    source = big_file(tmp_path, 1000, "Receipt 2025.pdf")
    info = run(upload(drive_backend(drive), source, "Taxes/2025/Receipt 2025.pdf"))
    assert info.name == "Taxes/2025/Receipt 2025.pdf"
    (stored,) = drive.files_named("Receipt 2025.pdf")
    folder = drive.get_file(stored.parents[0])
    assert folder.name == "2025"
    taxes = drive.get_file(folder.parents[0])
    kite = drive.get_file(taxes.parents[0])
    assert (taxes.name, kite.name, kite.parents) == ("Taxes", "Kite", [drive.drive_root()])


def test_health_check_is_false_when_drive_cannot_be_reached(drive: GoogleEmulator):
    drive.faults.add("GET", r"/drive/v3/files", status=503, times=0)
    backend = drive_backend(drive)

    async def scenario() -> bool:
        try:
            return await backend.health_check()
        finally:
            await backend.aclose()

    assert run(scenario()) is False


# -- tokens ------------------------------------------------------------------------------------------------
def test_an_expired_access_token_is_refreshed_once_and_the_new_one_saved(drive: GoogleEmulator, tmp_path):
    saved: list[dict] = []
    backend = drive_backend(drive, saved)
    drive.expire_access_tokens()
    source = big_file(tmp_path, 3000)
    info = run(upload(backend, source))
    assert info.size == 3000
    assert len(saved) == 1 and saved[0]["access_token"] and saved[0]["token_uri"] == drive.token_uri
    assert saved[0]["refresh_token"], "the refresh token must be kept"
    assert len([r for r in drive.token_requests if r.grant_type == "refresh_token"]) == 1


def test_concurrent_calls_share_one_refresh(drive: GoogleEmulator):
    backend = drive_backend(drive)

    async def scenario() -> None:
        key = await backend.put_object("u", "d", b"abc", ".txt", "text/plain")
        drive.expire_access_tokens()
        sizes = await asyncio.gather(*(backend.stat_object(key) for _ in range(6)))
        assert sizes == [3] * 6
        await backend.aclose()

    run(scenario())
    assert len([r for r in drive.token_requests if r.grant_type == "refresh_token"]) == 1


def test_a_revoked_grant_raises_cloud_connection_error(drive: GoogleEmulator, tmp_path: Path):
    backend = drive_backend(drive)
    drive.revoke_all()
    with pytest.raises(CloudConnectionError, match="no longer accepts"):
        run(upload(backend, big_file(tmp_path, 10)))
    assert [r for r in drive.token_requests if r.grant_type == "refresh_token"], "it tried one refresh"


# -- uploads under faults ---------------------------------------------------------------------------------
def test_a_large_upload_is_resumable_and_checked(drive: GoogleEmulator, tmp_path: Path):
    source = big_file(tmp_path, 6 * 1024 * 1024 + 123)
    progress: list[int] = []
    backend = drive_backend(drive)

    async def scenario():
        try:
            return await backend.upload_file(source, "scan.bin", "application/octet-stream", progress.append)
        finally:
            await backend.aclose()

    info = run(scenario())
    data = source.read_bytes()
    assert (info.size, info.hash) == (len(data), md5(data))
    (stored,) = drive.files_named("scan.bin")
    assert drive.file_bytes(stored.id) == data
    assert progress == sorted(progress) and progress[-1] == len(data) and len(progress) > 3
    puts = [r for r in drive.requests if r.method == "PUT"]
    assert len(puts) == -(-len(data) // CHUNK), "one PUT per 256 KiB chunk"


def test_server_errors_on_chunks_are_retried_from_the_servers_offset(drive: GoogleEmulator, tmp_path: Path):
    source = big_file(tmp_path, 6 * 1024 * 1024)
    drive.faults.add(
        "PUT",
        r"upload_id=",
        status=503,
        json={"error": {"code": 503, "message": "Backend Error", "errors": [{"reason": "backendError"}]}},
        after=3,
        times=3,
    )
    run(upload(drive_backend(drive), source))
    (stored,) = drive.files_named(source.name)
    assert drive.file_bytes(stored.id) == source.read_bytes()
    status_queries = [
        r for r in drive.requests if r.method == "PUT" and r.headers.get("content-range", "").startswith("bytes */")
    ]
    assert status_queries, "after an error the upload asks the server how much it has"


def test_a_connection_dropped_mid_chunk_resumes_and_sends_only_the_rest(drive: GoogleEmulator, tmp_path: Path):
    size = 6 * 1024 * 1024
    source = big_file(tmp_path, size)
    drive.faults.add("PUT", r"upload_id=", drop="mid-request", after=10)
    run(upload(drive_backend(drive), source))
    (stored,) = drive.files_named(source.name)
    assert drive.file_bytes(stored.id) == source.read_bytes()
    sent = sum(r.body_length for r in drive.requests if r.method == "PUT")
    assert sent < size + 2 * CHUNK, "only the missing part was sent again"


def test_a_lost_final_answer_does_not_make_a_second_copy(drive: GoogleEmulator, tmp_path: Path):
    small = big_file(tmp_path, 40_000, "small.pdf")
    drive.faults.add("POST", r"uploadType=multipart", drop="before-response")
    info = run(upload(drive_backend(drive), small))
    assert len(drive.files_named("small.pdf")) == 1
    assert info.hash == md5(small.read_bytes())


def test_a_lost_answer_to_the_last_chunk_does_not_make_a_second_copy(drive: GoogleEmulator, tmp_path: Path):
    size = 6 * 1024 * 1024
    source = big_file(tmp_path, size)
    last = -(-size // CHUNK) - 1
    drive.faults.add("PUT", r"upload_id=", drop="before-response", after=last)
    run(upload(drive_backend(drive), source))
    (stored,) = drive.files_named(source.name)
    assert drive.file_bytes(stored.id) == source.read_bytes()


def test_an_expired_session_starts_again_and_finishes_once(drive: GoogleEmulator, tmp_path: Path):
    source = big_file(tmp_path, 6 * 1024 * 1024)
    drive.faults.add(
        "PUT",
        r"upload_id=",
        status=404,
        json={"error": {"code": 404, "message": "Not Found", "errors": [{"reason": "notFound"}]}},
        after=5,
    )
    run(upload(drive_backend(drive), source))
    (stored,) = drive.files_named(source.name)
    assert drive.file_bytes(stored.id) == source.read_bytes()
    initiations = [r for r in drive.requests if r.method == "POST" and "uploadType=resumable" in r.path]
    assert len(initiations) == 2


def test_rate_limits_are_retried_and_honour_retry_after(drive: GoogleEmulator, tmp_path: Path):
    drive.faults.add(
        "POST",
        r"uploadType=multipart",
        status=429,
        headers={"Retry-After": "0"},
        json={"error": {"code": 429, "errors": [{"reason": "rateLimitExceeded"}]}},
    )
    drive.faults.add(
        "POST",
        r"uploadType=multipart",
        status=403,
        json={"error": {"code": 403, "errors": [{"reason": "userRateLimitExceeded"}]}},
    )
    info = run(upload(drive_backend(drive), big_file(tmp_path, 500)))
    assert info.size == 500
    creates = [r for r in drive.requests if r.method == "POST" and "uploadType=multipart" in r.path]
    assert [r.status for r in creates][-1] in (200, 201) and len(creates) == 3


def test_a_full_drive_is_reported_and_not_retried(drive: GoogleEmulator, tmp_path: Path):
    drive.set_quota(100)
    with pytest.raises(StorageFullError, match="Google Drive is full"):
        run(upload(drive_backend(drive), big_file(tmp_path, 5000)))
    creates = [r for r in drive.requests if r.method == "POST" and "uploadType=multipart" in r.path]
    assert len(creates) == 1


def test_an_item_that_keeps_failing_ends_with_a_clear_error(drive: GoogleEmulator, tmp_path: Path):
    drive.faults.add("POST", r"uploadType=multipart", status=503, times=0)
    with pytest.raises(KiteError, match="server error"):
        run(upload(drive_backend(drive), big_file(tmp_path, 500)))


# -- downloads and listings ------------------------------------------------------------------------------
def test_google_docs_are_listed_but_not_downloaded_as_empty_files(drive: GoogleEmulator, tmp_path: Path):
    backend = drive_backend(drive)

    async def scenario() -> None:
        root = await backend.folders.root_id()
        drive.add_file("Budget sheet", None, parents=[root], mime_type="application/vnd.google-apps.spreadsheet")
        items = [item async for item in backend.iter_objects()]
        (sheet,) = items
        assert sheet.name == "Budget sheet" and sheet.downloadable is False
        with pytest.raises(KiteError, match="Google Docs"):
            await backend.download_file(sheet.key, tmp_path / "sheet")
        await backend.aclose()

    run(scenario())
    assert not (tmp_path / "sheet").exists()


def test_a_corrupted_download_is_refused_and_the_target_untouched(drive: GoogleEmulator, tmp_path: Path):
    backend = drive_backend(drive)
    target = tmp_path / "out.bin"
    target.write_bytes(b"previous copy")

    async def scenario() -> None:
        key = await backend.put_object("u", "d", b"the real content", ".bin", "application/octet-stream")
        drive.faults.add("GET", r"alt=media", status=200, body=b"the evil content")
        with pytest.raises(IntegrityError):
            await backend.download_file(key, target)
        await backend.aclose()

    run(scenario())
    assert target.read_bytes() == b"previous copy"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_listing_pages_through_many_documents_and_folders(drive: GoogleEmulator, tmp_path: Path):
    backend = drive_backend(drive)
    source = big_file(tmp_path, 10)

    async def scenario() -> list[str]:
        for index in range(7):
            await backend.upload_file(source, f"f{index}.txt", "text/plain")
        await backend.upload_file(source, "sub/deeper/inner.txt", "text/plain")
        names = [item.name async for item in backend.iter_objects(page_size=3)]
        await backend.aclose()
        return names

    names = run(scenario())
    assert sorted(names) == sorted([f"f{i}.txt" for i in range(7)] + ["sub/deeper/inner.txt"])


def test_a_download_cut_mid_response_or_slow_still_arrives_whole(drive: GoogleEmulator, tmp_path: Path):
    backend = drive_backend(drive)
    target = tmp_path / "copy.bin"
    data = os.urandom(3 * CHUNK + 5)

    async def scenario() -> None:
        key = await backend.put_object("u", "d", data, ".bin", "application/octet-stream")
        drive.faults.add("GET", r"alt=media", drop="mid-response")
        drive.faults.add("GET", r"alt=media", delay=0.2)
        await backend.download_file(key, target)
        await backend.aclose()

    run(scenario())
    assert target.read_bytes() == data


def test_a_small_file_ending_in_a_carriage_return_arrives_whole(drive: GoogleEmulator, tmp_path: Path):
    source = tmp_path / "notes.txt"
    source.write_bytes(b"line one\r\nline two\r")
    info = run(upload(drive_backend(drive), source))
    (stored,) = drive.files_named("notes.txt")
    assert drive.file_bytes(stored.id) == b"line one\r\nline two\r" and info.size == 19


def test_a_missing_folder_fails_the_upload_instead_of_looping(drive: GoogleEmulator, tmp_path: Path):
    from kite_desktop.core.errors import NotFoundError

    source = big_file(tmp_path, 6 * 1024 * 1024)
    drive.faults.add(
        "POST",
        r"uploadType=resumable",
        status=404,
        json={"error": {"code": 404, "message": "File not found: parent.", "errors": [{"reason": "notFound"}]}},
        times=0,
    )
    with pytest.raises(NotFoundError):
        run(upload(drive_backend(drive), source))
    assert len([r for r in drive.requests if "uploadType=resumable" in r.path]) < 10


def test_a_paused_small_upload_that_completed_anyway_is_reported_done_not_copied(drive: GoogleEmulator, tmp_path: Path):
    source = big_file(tmp_path, 100_000, "report.pdf")
    drive.faults.add("POST", r"uploadType=multipart", delay=0.3)
    backend = drive_backend(drive)

    async def scenario():
        task = asyncio.create_task(backend.upload_file(source, "report.pdf", "application/pdf"))
        while not [r for r in drive.requests if "uploadType=multipart" in r.path]:
            await asyncio.sleep(0.01)
        task.cancel()  # what Pause does; the request is already on its way
        try:
            return await task
        finally:
            await backend.aclose()

    info = run(scenario())
    assert info.name == "report.pdf"
    assert len(drive.files_named("report.pdf")) == 1


def test_a_file_that_changes_during_upload_leaves_nothing_in_drive(drive: GoogleEmulator, tmp_path: Path):
    from kite_desktop.core.errors import SourceFileError

    source = big_file(tmp_path, 6 * 1024 * 1024, "growing.log")
    backend = drive_backend(drive)

    def grow(done: int) -> None:
        with open(source, "ab") as handle:  # another program keeps writing while Kite uploads
            handle.write(b"more")

    async def scenario() -> None:
        try:
            await backend.upload_file(source, source.name, "text/plain", grow)
        finally:
            await backend.aclose()

    with pytest.raises(SourceFileError, match="changed while"):
        run(scenario())
    assert drive.files_named("growing.log") == []


def test_a_lost_answer_to_the_folder_creation_does_not_make_two_kite_folders(drive: GoogleEmulator, tmp_path: Path):
    drive.lose_response("POST", r"/drive/v3/files\?")  # the folder is made, the answer is lost
    info = run(upload(drive_backend(drive), big_file(tmp_path, 100, "a.txt")))
    assert info.name == "a.txt"
    kite_folders = [f for f in drive.all_files() if f.name == "Kite"]
    assert len(kite_folders) == 1


def test_two_uploads_of_one_name_at_once_keep_both_under_different_names(drive: GoogleEmulator, tmp_path: Path):
    """Drive shows a resumable upload's file only at its end and allows two files of one name: the second upload
    must not take the name the first is still creating."""
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    for folder in (first, second):
        (folder / "report.pdf").write_bytes(os.urandom(6 * 1024 * 1024))
    backend = drive_backend(drive)

    async def both():
        try:
            return await asyncio.gather(
                backend.upload_file(first / "report.pdf", "report.pdf", "application/pdf"),
                backend.upload_file(second / "report.pdf", "report.pdf", "application/pdf"),
            )
        finally:
            await backend.aclose()

    infos = run(both())
    assert sorted(info.name for info in infos) == ["report (1).pdf", "report.pdf"]
    assert len(drive.files_named("report.pdf")) == 1 and len(drive.files_named("report (1).pdf")) == 1
