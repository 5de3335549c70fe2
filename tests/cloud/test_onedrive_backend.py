"""OneDriveBackend against the Graph and identity emulators, through real httpx and msal."""

from __future__ import annotations

import asyncio
import inspect
import os
from pathlib import Path

import pytest

from kite_desktop.core.errors import (
    CloudConnectionError,
    ConnectionUnavailableError,
    IntegrityError,
    NameConflictError,
    StorageFullError,
)
from kite_desktop.storage import google_drive_backend
from kite_desktop.storage import onedrive_backend as onedrive_module
from kite_desktop.storage.onedrive_backend import CHUNK_SIZE, OneDriveBackend
from kite_desktop.storage.quickxorhash import quickxorhash_b64
from tests.cloud.ms_support import FRAGMENT, credentials, onedrive_backend
from tests.emulators.microsoft import MicrosoftEmulators
from tests.unit.backend_contract import SEED_METHODS, BackendContract


@pytest.fixture
def ms(monkeypatch: pytest.MonkeyPatch):
    with MicrosoftEmulators() as emulators:
        monkeypatch.setenv("KITE_CA_BUNDLE", emulators.cert_path)
        monkeypatch.setenv("KITE_MS_AUTHORITY", emulators.authority)
        monkeypatch.setenv("KITE_MS_CLIENT_ID", emulators.client_id)
        yield emulators


class TestOneDriveBackend(BackendContract):
    STORE_IN_PROCESS = True

    @pytest.fixture
    def backend(self, ms: MicrosoftEmulators) -> OneDriveBackend:
        return onedrive_backend(ms)


def run(coro):
    return asyncio.run(coro)


def data_file(tmp_path: Path, size: int, name: str = "scan.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


async def upload(backend: OneDriveBackend, path: Path, name: str | None = None, conflict: str = "rename"):
    try:
        return await backend.upload_file(path, name or path.name, "application/octet-stream", conflict=conflict)
    finally:
        await backend.aclose()


def uploads_to(ms: MicrosoftEmulators) -> list:
    return [r for r in ms.graph.requests if r.method == "PUT" and r.path.startswith("/up/")]


# -- the seed's must-haves ----------------------------------------------------------------------------------
def test_seed_shape_holds(ms: MicrosoftEmulators):
    assert CHUNK_SIZE == 10 * 1024 * 1024 and CHUNK_SIZE % (320 * 1024) == 0
    assert onedrive_module.CloudConnectionError is google_drive_backend.CloudConnectionError is CloudConnectionError
    for method in SEED_METHODS:
        assert inspect.iscoroutinefunction(getattr(OneDriveBackend, method)), method
    backend = OneDriveBackend({"access_token": "x", "refresh_token": "y", "expires_at": "2099-01-01T00:00:00"})

    async def presigned() -> None:
        with pytest.raises(NotImplementedError):
            await backend.presigned_get_url("key")
        with pytest.raises(NotImplementedError):
            await backend.generate_presigned_put_url("key")
        await backend.aclose()

    run(presigned())
    assert ms.graph.requests == [] and ms.identity.token_requests == [], "construction does no network I/O"


def test_seed_methods_store_and_read_bytes(ms: MicrosoftEmulators):
    backend = onedrive_backend(ms)

    async def scenario() -> None:
        key = await backend.put_object("user-1", "doc-1", b"%PDF hello", ".pdf", "application/pdf")
        assert await backend.get_object(key) == b"%PDF hello"
        assert await backend.stat_object(key) == len(b"%PDF hello")
        assert await backend.health_check() is True
        await backend.delete_object(key)
        await backend.delete_object(key)
        await backend.aclose()

    run(scenario())
    assert ms.graph.items_named("doc-1.pdf") == []
    assert [r.path for r in ms.graph.requests if "createUploadSession" in r.path], "sessions for all files"


def test_fragments_go_without_the_bearer_token_and_the_hash_is_checked(ms: MicrosoftEmulators, tmp_path: Path):
    source = data_file(tmp_path, 3 * FRAGMENT + 1234)
    info = run(upload(onedrive_backend(ms), source, "Taxes/2025/scan.bin"))
    data = source.read_bytes()
    assert info.name == "Taxes/2025/scan.bin" and info.hash == quickxorhash_b64(data)
    (item,) = ms.graph.items_named("scan.bin")
    assert ms.graph.item_bytes(item.id) == data
    assert ms.graph.path_of(item).endswith("Kite/Taxes/2025/scan.bin")
    puts = uploads_to(ms)
    assert len(puts) == 4 and not any("authorization" in r.headers for r in puts)


# -- tokens --------------------------------------------------------------------------------------------------
def test_an_expired_token_is_refreshed_once_and_the_rotated_refresh_token_saved(ms: MicrosoftEmulators, tmp_path):
    saved: list[dict] = []
    first = credentials(ms)
    backend = onedrive_backend(ms, saved, creds=first)
    ms.identity.expire_access_tokens()
    run(upload(backend, data_file(tmp_path, 1000)))
    assert len(saved) == 1
    assert saved[0]["refresh_token"] != first["refresh_token"], "Microsoft rotates it; the new one is kept"
    assert saved[0]["access_token"] != first["access_token"]


def test_a_revoked_grant_raises_cloud_connection_error(ms: MicrosoftEmulators, tmp_path: Path):
    backend = onedrive_backend(ms)
    ms.identity.revoke_all(access_tokens=True)
    ms.identity.expire_access_tokens()
    with pytest.raises(CloudConnectionError, match="no longer accepts"):
        run(upload(backend, data_file(tmp_path, 100)))


def test_interaction_required_also_needs_a_reconnect(ms: MicrosoftEmulators, tmp_path: Path):
    backend = onedrive_backend(ms)
    ms.identity.require_interaction()
    ms.identity.expire_access_tokens()
    with pytest.raises(CloudConnectionError):
        run(upload(backend, data_file(tmp_path, 100)))


def test_a_token_endpoint_outage_is_not_a_reauth(ms: MicrosoftEmulators, tmp_path: Path):
    backend = onedrive_backend(ms)
    ms.identity.throttle_token_endpoint(status=503, retry_after=None)
    ms.identity.expire_access_tokens()
    with pytest.raises(ConnectionUnavailableError):
        run(upload(backend, data_file(tmp_path, 100)))


# -- uploads under faults -------------------------------------------------------------------------------------
def test_a_connection_dropped_mid_fragment_resumes_from_next_expected_ranges(ms: MicrosoftEmulators, tmp_path):
    size = 6 * FRAGMENT
    source = data_file(tmp_path, size)
    ms.graph.faults.add("PUT", r"^/up/", drop="mid-request", after=2)
    run(upload(onedrive_backend(ms), source))
    (item,) = ms.graph.items_named(source.name)
    assert ms.graph.item_bytes(item.id) == source.read_bytes()
    assert [r for r in ms.graph.requests if r.method == "GET" and r.path.startswith("/up/")], "asked for ranges"
    assert sum(r.body_length for r in uploads_to(ms)) < size + 2 * FRAGMENT


def test_server_errors_and_throttling_on_fragments_are_retried(ms: MicrosoftEmulators, tmp_path: Path):
    source = data_file(tmp_path, 5 * FRAGMENT)
    ms.graph.throttle("PUT", r"^/up/", status=503, retry_after=0, after=1)
    ms.graph.throttle("PUT", r"^/up/", status=429, retry_after=0, after=2)
    run(upload(onedrive_backend(ms), source))
    (item,) = ms.graph.items_named(source.name)
    assert ms.graph.item_bytes(item.id) == source.read_bytes()


def test_an_expired_session_starts_a_new_one(ms: MicrosoftEmulators, tmp_path: Path):
    source = data_file(tmp_path, 5 * FRAGMENT)
    ms.graph.faults.add(
        "PUT",
        r"^/up/",
        status=404,
        json={"error": {"code": "itemNotFound", "message": "The upload session was not found"}},
        after=2,
    )
    run(upload(onedrive_backend(ms), source))
    (item,) = ms.graph.items_named(source.name)
    assert ms.graph.item_bytes(item.id) == source.read_bytes()
    assert len([r for r in ms.graph.requests if "createUploadSession" in r.path]) == 2


def test_a_lost_answer_to_the_last_fragment_does_not_make_a_second_copy(ms: MicrosoftEmulators, tmp_path: Path):
    source = data_file(tmp_path, 3 * FRAGMENT)
    ms.graph.faults.add("PUT", r"^/up/", drop="mid-response", after=2)
    run(upload(onedrive_backend(ms), source, conflict="fail"))
    items = ms.graph.items_named(source.name)
    assert len(items) == 1 and ms.graph.item_bytes(items[0].id) == source.read_bytes()


def test_quota_and_name_conflicts_are_reported_not_retried(ms: MicrosoftEmulators, tmp_path: Path):
    source = data_file(tmp_path, 2 * FRAGMENT)
    run(upload(onedrive_backend(ms), source))
    with pytest.raises(NameConflictError):
        run(upload(onedrive_backend(ms), source, conflict="fail"))
    ms.graph.set_quota(FRAGMENT)
    with pytest.raises(StorageFullError, match="OneDrive is full"):
        run(upload(onedrive_backend(ms), data_file(tmp_path, 3 * FRAGMENT, "big.bin")))


def test_cancelling_an_upload_deletes_its_session(ms: MicrosoftEmulators, tmp_path: Path):
    source = data_file(tmp_path, 8 * FRAGMENT)
    backend = onedrive_backend(ms)

    async def scenario() -> None:
        first_fragment = asyncio.Event()
        task = asyncio.create_task(
            backend.upload_file(source, source.name, "application/octet-stream", lambda done: first_fragment.set())
        )
        await first_fragment.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await backend.aclose()

    run(scenario())
    assert [r for r in ms.graph.requests if r.method == "DELETE" and r.path.startswith("/up/")]
    assert ms.graph.items_named(source.name) == []


# -- downloads ------------------------------------------------------------------------------------------------
def test_a_download_follows_the_redirect_without_the_token_and_resumes(ms: MicrosoftEmulators, tmp_path: Path):
    source = data_file(tmp_path, 3 * 1024 * 1024 + 17)
    backend = onedrive_backend(ms)
    target = tmp_path / "copy.bin"

    async def scenario() -> None:
        info = await backend.upload_file(source, source.name, "application/octet-stream")
        ms.graph.cut_next_download(after_bytes=1024 * 1024)
        await backend.download_file(info.key, target)
        await backend.aclose()

    run(scenario())
    assert target.read_bytes() == source.read_bytes()
    assert ms.graph.download_requests and not any(r.authorization for r in ms.graph.download_requests)
    assert any("range" in r.headers for r in ms.graph.download_server.requests)


def test_a_corrupted_download_is_refused_and_the_target_untouched(ms: MicrosoftEmulators, tmp_path: Path):
    backend = onedrive_backend(ms)
    target = tmp_path / "out.bin"
    target.write_bytes(b"previous copy")

    async def scenario() -> None:
        key = await backend.put_object("u", "d", b"the real content", ".bin", "application/octet-stream")
        ms.graph.download_faults.add("GET", r"/download/", status=200, body=b"the evil content")
        with pytest.raises(IntegrityError):
            await backend.download_file(key, target)
        await backend.aclose()

    run(scenario())
    assert target.read_bytes() == b"previous copy"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_a_fragment_the_session_already_has_is_skipped_after_416(ms: MicrosoftEmulators, tmp_path: Path):
    source = data_file(tmp_path, 4 * FRAGMENT)
    ms.graph.faults.add(
        "PUT",
        r"^/up/",
        status=416,
        json={
            "error": {
                "code": "invalidRange",
                "message": "Uploaded fragment overlaps with existing data.",
                "innererror": {"code": "fragmentOverlap"},
            }
        },
        after=1,
    )
    run(upload(onedrive_backend(ms), source))
    (item,) = ms.graph.items_named(source.name)
    assert ms.graph.item_bytes(item.id) == source.read_bytes()
    status_reads = [r for r in ms.graph.requests if r.method == "GET" and r.path.startswith("/up/")]
    assert status_reads, "after 416 the backend asked the session which ranges it still expects"


def test_a_file_that_changes_during_upload_leaves_nothing_in_onedrive(ms: MicrosoftEmulators, tmp_path: Path):
    from kite_desktop.core.errors import SourceFileError

    source = data_file(tmp_path, 4 * FRAGMENT, "growing.log")
    backend = onedrive_backend(ms)

    def grow(done: int) -> None:
        with open(source, "ab") as handle:
            handle.write(b"more")

    async def scenario() -> None:
        try:
            await backend.upload_file(source, source.name, "text/plain", grow)
        finally:
            await backend.aclose()

    with pytest.raises(SourceFileError, match="changed while"):
        run(scenario())
    assert ms.graph.items_named("growing.log") == []
