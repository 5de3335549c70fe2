"""One account, several transfers, a server that says "slow down": they all slow down, nobody hammers it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from kite_desktop.storage.base import StorageBackend
from tests.cloud.google_support import drive_backend
from tests.cloud.ms_support import onedrive_backend
from tests.emulators.google import GoogleEmulator
from tests.emulators.microsoft import MicrosoftEmulators

UPLOADS = 4
SIZE = 24 * 320 * 1024  # many chunks (Drive 256 KiB, OneDrive 320 KiB): each upload makes ~24 requests
RETRY_AFTER = 1.0


@pytest.fixture(params=["google", "onedrive"])
def account(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    if request.param == "google":
        with GoogleEmulator() as emulator:
            yield "google", emulator, emulator.faults, lambda: emulator.requests
    else:
        with MicrosoftEmulators() as ms:
            monkeypatch.setenv("KITE_CA_BUNDLE", ms.cert_path)
            monkeypatch.setenv("KITE_MS_AUTHORITY", ms.authority)
            monkeypatch.setenv("KITE_MS_CLIENT_ID", ms.client_id)
            yield "onedrive", ms, ms.graph.faults, lambda: ms.graph.requests


def backend_for(kind: str, emulator: Any) -> StorageBackend:
    return drive_backend(emulator) if kind == "google" else onedrive_backend(emulator)


async def upload_all(backend: StorageBackend, files: list[Path]) -> None:
    try:
        await asyncio.gather(*(backend.upload_file(f, f.name, "application/octet-stream") for f in files))
    finally:
        await backend.aclose()


def data_puts(requests: list[Any]) -> list[Any]:
    return [r for r in requests if r.method == "PUT" and r.body_length > 0]


def test_a_429_with_retry_after_holds_every_transfer_of_the_account(account, tmp_path: Path):
    kind, emulator, faults, requests = account
    files = []
    for number in range(UPLOADS):
        path = tmp_path / f"scan-{number}.bin"
        path.write_bytes(os.urandom(SIZE))
        files.append(path)
    pattern = r"upload_id=" if kind == "google" else r"^/up/"
    error = {"error": {"code": 429, "errors": [{"reason": "rateLimitExceeded"}]}}
    if kind == "onedrive":
        error = {"error": {"code": "activityLimitReached", "message": "Slow down"}}
    faults.add("PUT", pattern, status=429, headers={"Retry-After": str(RETRY_AFTER)}, json=error, after=20)

    asyncio.run(upload_all(backend_for(kind, emulator), files))

    log = requests()
    (limited,) = [r for r in log if r.status == 429]
    during = [r for r in log if limited.at < r.at < limited.at + RETRY_AFTER * 0.9]
    # The server logs the 429 when the request arrives. Until its answer has reached Kite, each other upload may
    # finish the request it had on its way and start one more; after that, nothing new starts until Retry-After.
    # (Without the shared pacer the other three go on at full speed: dozens of requests in that second.)
    assert len(during) <= 2 * (UPLOADS - 1), [(r.method, r.path[:40], round(r.at - limited.at, 3)) for r in during]
    assert len(data_puts(log)) >= UPLOADS * (SIZE // (320 * 1024))  # and everything was still sent


def test_a_429_storm_without_retry_after_backs_off_and_still_finishes(account, tmp_path: Path):
    kind, emulator, faults, requests = account
    path = tmp_path / "scan.bin"
    path.write_bytes(os.urandom(SIZE))
    pattern = r"upload_id=" if kind == "google" else r"^/up/"
    error = {"error": {"code": 429, "errors": [{"reason": "rateLimitExceeded"}]}}
    if kind == "onedrive":
        error = {"error": {"code": "activityLimitReached", "message": "Slow down"}}
    faults.add("PUT", pattern, status=429, json=error, after=3, times=3)

    asyncio.run(upload_all(backend_for(kind, emulator), [path]))

    log = requests()
    assert len([r for r in log if r.status == 429]) == 3
    # Each 429 costs one retry (and a question to the session), not a burst of them.
    chunks = -(-SIZE // (256 * 1024 if kind == "google" else 320 * 1024))
    assert len([r for r in log if r.method == "PUT"]) <= chunks + 2 * 3
