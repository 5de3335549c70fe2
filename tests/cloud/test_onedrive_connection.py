"""A OneDrive connection in the app: used like Local; revoked access pauses work until a reconnect."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kite_desktop.app import build_service
from kite_desktop.core.models import ConnectionStatus, Provider
from kite_desktop.core.tokens import MemoryTokenStore
from kite_desktop.core.transfers import TransferState
from tests.cloud.ms_support import credentials
from tests.emulators.microsoft import MicrosoftEmulators


@pytest.fixture
def ms(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with MicrosoftEmulators() as emulators:
        for name, value in emulators.env().items():
            monkeypatch.setenv(name, value)
        yield emulators


def sources(tmp_path: Path, count: int) -> list[str]:
    folder = tmp_path / "drop"
    folder.mkdir(exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"invoice {index}.pdf"
        path.write_bytes(f"%PDF invoice {index}".encode() * 50)
        paths.append(str(path))
    return paths


def test_a_onedrive_connection_uploads_and_lists_like_local(ms: MicrosoftEmulators, tmp_path: Path):
    async def scenario() -> None:
        service = build_service(tmp_path / "profile", MemoryTokenStore())
        config = await service.add_cloud_connection(
            Provider.ONEDRIVE, "Bob's OneDrive", credentials(ms), "bob@example.com"
        )
        sources(tmp_path, 2)
        batch = await service.upload(config.id, [str(tmp_path / "drop")])
        await service.transfers.wait_idle()
        assert [t.state for t in batch.transfers] == [TransferState.DONE] * 2
        documents = await service.refresh(config.id)
        assert sorted(d.name for d in documents) == ["drop/invoice 0.pdf", "drop/invoice 1.pdf"]
        assert service.connection(config.id).status is ConnectionStatus.CONNECTED
        await service.close()

    asyncio.run(scenario())


def test_revoked_access_pauses_the_queue_and_a_reconnect_resumes_it(ms: MicrosoftEmulators, tmp_path: Path):
    """msal remembers the revoked refresh token's 400 answer for 60 s; new tokens have a new cache key."""

    async def scenario() -> None:
        service = build_service(tmp_path / "profile", MemoryTokenStore())
        config = await service.add_cloud_connection(Provider.ONEDRIVE, "Bob's OneDrive", credentials(ms))
        ms.identity.revoke_all(access_tokens=True)
        ms.identity.expire_access_tokens()
        batch = await service.upload(config.id, sources(tmp_path, 3))
        await service.transfers.wait_idle()
        assert [t.state for t in batch.transfers] == [TransferState.PAUSED] * 3
        assert service.connection(config.id).status is ConnectionStatus.REQUIRES_REAUTH
        token_calls = len(ms.identity.token_requests)

        with pytest.raises(Exception, match="no longer accepts"):
            await service.refresh(config.id)  # the same dead refresh token: answered from msal's cache
        assert len(ms.identity.token_requests) == token_calls

        await service.update_credentials(config.id, credentials(ms))
        await service.transfers.wait_idle()
        assert [t.state for t in batch.transfers] == [TransferState.DONE] * 3
        await service.close()

    asyncio.run(scenario())
    for index in range(3):
        assert len(ms.graph.items_named(f"invoice {index}.pdf")) == 1
