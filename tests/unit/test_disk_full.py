"""A full disk under uploads: the item fails with a plain message, no partial file is left, the batch goes on.

Downloads onto a full disk are covered in test_local_backend.py.

A 1 MiB tmpfs stands in for the full disk; mounting it needs root (as in CI), so elsewhere these skip.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from kite_desktop.app import backend_factory
from kite_desktop.core.errors import StorageFullError
from kite_desktop.core.models import ConnectionConfig, Provider
from kite_desktop.core.profile import Profile
from kite_desktop.core.service import KiteService
from kite_desktop.core.tokens import MemoryTokenStore
from kite_desktop.core.transfers import TransferState
from kite_desktop.storage.local_backend import LocalFolderBackend


@pytest.fixture
def small_disk(tmp_path: Path):
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*"))


def test_upload_to_a_full_disk_fails_clearly_and_leaves_nothing(small_disk: Path, tmp_path: Path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    small = tmp_path / "small.txt"
    small.write_text("still fits")
    backend = LocalFolderBackend(small_disk)

    async def scenario() -> None:
        with pytest.raises(StorageFullError, match="Not enough disk space"):
            await backend.upload_file(big, "big.bin", "application/octet-stream")
        assert leftovers(small_disk) == []
        info = await backend.upload_file(small, "small.txt", "text/plain")
        assert info.size == len("still fits")

    asyncio.run(scenario())
    assert leftovers(small_disk) == ["small.txt"]


def test_a_full_disk_holds_the_connection_and_nothing_is_lost(small_disk: Path, tmp_path: Path, monkeypatch):
    """Storage full pauses the connection's queue with the reason; once the person makes room (here: cancels
    the file that cannot fit) and resumes, the rest goes on."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a-big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (drop / "b-small.txt").write_text("small")
    profile = Profile(tmp_path / "profile")

    async def scenario() -> None:
        service = KiteService.open(profile, backend_factory(MemoryTokenStore()))
        config = ConnectionConfig("disk", "Small disk", Provider.LOCAL, {"folder": str(small_disk)})
        service.settings.connections.append(config)
        service.transfers.max_concurrent = 1
        batch = await service.upload(config.id, [str(drop / "a-big.bin"), str(drop / "b-small.txt")])
        await service.transfers.wait_idle()
        big, small = batch.transfers
        assert big.state is TransferState.PAUSED and "Not enough disk space" in big.message
        assert small.state is TransferState.PAUSED and "Not enough disk space" in small.message
        service.transfers.cancel(big.id)
        service.transfers.resume()
        await service.transfers.wait_idle()
        assert small.state is TransferState.DONE, (small.message, os.listdir(small_disk))
        assert [d.name for d in await service.cached_documents(config.id)] == ["b-small.txt"]
        await service.close()

    asyncio.run(scenario())
    assert leftovers(small_disk) == ["b-small.txt"]
