"""A Google Drive connection in the app: used like Local, and when access is revoked, nothing is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kite_desktop.app import build_service
from kite_desktop.core.catalog import Catalog
from kite_desktop.core.models import ConnectionStatus, Provider
from kite_desktop.core.tokens import MemoryTokenStore
from kite_desktop.core.transfers import TransferState
from tests.emulators.google import GoogleEmulator


@pytest.fixture
def drive(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with GoogleEmulator() as emulator:
        monkeypatch.setenv("KITE_GOOGLE_API_ROOT", emulator.root_url)
        yield emulator


def sources(tmp_path: Path, count: int) -> list[str]:
    folder = tmp_path / "drop"
    folder.mkdir(exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"page {index}.pdf"
        path.write_bytes(f"%PDF page {index}".encode() * 100)
        paths.append(str(path))
    return paths


def test_a_google_drive_connection_uploads_lists_and_deletes_like_local(drive: GoogleEmulator, tmp_path: Path):
    async def scenario() -> None:
        service = build_service(tmp_path / "profile", MemoryTokenStore())
        config = await service.add_cloud_connection(
            Provider.GOOGLE_DRIVE, "Alice's Drive", drive.issue_tokens(), "alice@example.com"
        )
        batch = await service.upload(config.id, sources(tmp_path, 3))
        await service.transfers.wait_idle()
        assert [t.state for t in batch.transfers] == [TransferState.DONE] * 3
        documents = await service.refresh(config.id)
        assert sorted(d.name for d in documents) == ["page 0.pdf", "page 1.pdf", "page 2.pdf"]
        connection = service.connection(config.id)
        assert (connection.status, connection.account) == (ConnectionStatus.CONNECTED, "alice@example.com")
        await service.delete(documents[0])
        assert len(await service.refresh(config.id)) == 2
        await service.close()

    asyncio.run(scenario())
    assert len(drive.files_named("page 0.pdf")) == 0


def test_a_revoked_grant_pauses_the_queue_and_a_reconnect_finishes_it_once(drive: GoogleEmulator, tmp_path: Path):
    profile = tmp_path / "profile"

    async def scenario() -> None:
        service = build_service(profile, MemoryTokenStore())
        config = await service.add_cloud_connection(Provider.GOOGLE_DRIVE, "Alice's Drive", drive.issue_tokens())
        drive.revoke_all()
        drive.expire_access_tokens()
        batch = await service.upload(config.id, sources(tmp_path, 3))
        await service.transfers.wait_idle()
        assert [t.state for t in batch.transfers] == [TransferState.PAUSED] * 3, "queued work waits, none fails"
        assert all("no longer accepts" in t.message for t in batch.transfers)
        assert service.connection(config.id).status is ConnectionStatus.REQUIRES_REAUTH

        await service.update_credentials(config.id, drive.issue_tokens())
        await service.transfers.wait_idle()
        assert [t.state for t in batch.transfers] == [TransferState.DONE] * 3
        await service.close()

    asyncio.run(scenario())
    for index in range(3):
        assert len(drive.files_named(f"page {index}.pdf")) == 1


def test_needs_reconnect_is_remembered_across_restarts(drive: GoogleEmulator, tmp_path: Path):
    profile = tmp_path / "profile"

    async def scenario() -> str:
        service = build_service(profile, MemoryTokenStore())
        config = await service.add_cloud_connection(Provider.GOOGLE_DRIVE, "Alice's Drive", drive.issue_tokens())
        drive.revoke_all()
        drive.expire_access_tokens()
        with pytest.raises(Exception, match="no longer accepts"):
            await service.refresh(config.id)
        await service.close()
        return config.id

    connection_id = asyncio.run(scenario())
    catalog = Catalog(profile / "catalog.sqlite3")
    assert catalog.connection_state(connection_id)[0] is ConnectionStatus.REQUIRES_REAUTH
    catalog.close()


def test_removing_a_connection_forgets_its_sign_in_and_list_but_not_the_documents(
    drive: GoogleEmulator, tmp_path: Path
):
    profile = tmp_path / "profile"

    async def scenario() -> None:
        tokens = MemoryTokenStore()
        service = build_service(profile, tokens)
        config = await service.add_cloud_connection(Provider.GOOGLE_DRIVE, "Alice's Drive", drive.issue_tokens())
        await service.upload(config.id, sources(tmp_path, 2))
        await service.transfers.wait_idle()
        assert len(await service.refresh(config.id)) == 2
        await service.remove_connection(config.id)
        assert await tokens.load(config.id) is None
        assert service.settings.connection(config.id) is None
        assert await service.cached_documents(config.id) == []
        await service.close()
        reopened = build_service(profile, MemoryTokenStore())
        assert [c.provider for c in reopened.settings.connections] == [Provider.LOCAL]
        await reopened.close()

    asyncio.run(scenario())
    assert len(drive.files_named("page 0.pdf")) == 1, "the documents in the cloud are untouched"


def test_a_slow_down_from_drive_is_said_next_to_the_waiting_transfers(drive: GoogleEmulator, tmp_path: Path):
    """While the account waits out a Retry-After, its transfers say why instead of looking stuck at 0 B/s."""
    drive.faults.add(
        "POST",
        r"uploadType=multipart",
        status=429,
        headers={"Retry-After": "2"},
        json={"error": {"code": 429, "errors": [{"reason": "rateLimitExceeded"}]}},
    )
    seen: list[str] = []

    async def scenario() -> None:
        service = build_service(tmp_path / "profile", MemoryTokenStore())
        config = await service.add_cloud_connection(
            Provider.GOOGLE_DRIVE, "Alice's Drive", drive.issue_tokens(), "alice@example.com"
        )
        service.transfers.changed.connect(lambda t: seen.append(t.note))
        batch = await service.upload(config.id, sources(tmp_path, 1))
        await service.transfers.wait_idle()
        assert [t.state for t in batch.transfers] == [TransferState.DONE]
        await service.close()

    asyncio.run(scenario())
    assert "Google Drive asked Kite to slow down; going on in 2 s." in seen
