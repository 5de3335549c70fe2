"""No token, code or upload capability URL ever lands in the profile: settings, catalog, logs, caches.

The whole life of two cloud connections runs with DEBUG logging of every library into the profile's log
file: sign-in, uploads small and resumable, listing, download, revocation and reconnect. Then every token
and session URL the emulators handed out is searched for in every file of the profile.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from kite_desktop.app import build_service
from kite_desktop.core.logs import configure_logging, redact
from kite_desktop.core.models import Provider
from kite_desktop.core.tokens import MemoryTokenStore
from tests.cloud.ms_support import credentials as ms_credentials
from tests.emulators.google import GoogleEmulator
from tests.emulators.microsoft import MicrosoftEmulators


@pytest.fixture
def clouds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with GoogleEmulator() as google, MicrosoftEmulators() as ms:
        monkeypatch.setenv("KITE_GOOGLE_API_ROOT", google.root_url)
        for name, value in ms.env().items():
            monkeypatch.setenv(name, value)
        yield google, ms
    logging.getLogger().handlers = [h for h in logging.getLogger().handlers if not getattr(h, "kite", False)]
    logging.getLogger().setLevel(logging.WARNING)
    for noisy in ("httpx", "httpcore", "googleapiclient.discovery", "urllib3", "msal"):
        logging.getLogger(noisy).setLevel(logging.NOTSET)


def secrets_handed_out(google: GoogleEmulator, ms: MicrosoftEmulators) -> set[str]:
    found: set[str] = set()
    for store in (
        google.oauth.refresh_tokens,
        google.oauth.access_tokens,
        ms.directory.refresh_tokens,
        ms.directory.access_tokens,
    ):
        found.update(str(token) for token in store)
    for request in google.requests + ms.graph.requests:
        if "upload_id=" in request.path:
            found.add(request.path.split("upload_id=")[1].split("&")[0])
        if request.path.startswith("/up/"):
            found.add(request.path.split("/up/")[1].split("?")[0])
    return {s for s in found if len(s) >= 12}


def test_no_secret_reaches_the_profile_or_the_logs(clouds, tmp_path: Path):
    google, ms = clouds
    profile = tmp_path / "profile"
    log_file = configure_logging(profile / "logs", logging.DEBUG)
    # The app keeps these at WARNING; here they log everything, to prove the redaction holds even then.
    for noisy in ("httpx", "httpcore", "googleapiclient.discovery", "urllib3", "msal"):
        logging.getLogger(noisy).setLevel(logging.DEBUG)
    big = tmp_path / "big.bin"
    big.write_bytes(b"k" * (6 * 1024 * 1024))
    small = tmp_path / "small.txt"
    small.write_text("small")

    async def scenario() -> None:
        service = build_service(profile, MemoryTokenStore())
        drive = await service.add_cloud_connection(Provider.GOOGLE_DRIVE, "Drive", google.issue_tokens(), "a@x")
        onedrive = await service.add_cloud_connection(Provider.ONEDRIVE, "OneDrive", ms_credentials(ms), "b@x")
        for connection in (drive, onedrive):
            await service.upload(connection.id, [str(big), str(small)])
        await service.transfers.wait_idle()
        for connection in (drive, onedrive):
            documents = await service.refresh(connection.id)
            transfer = await service.download(documents[0], tmp_path / f"copy-{connection.id}")
            await service.transfers.wait_finished(transfer)
        google.expire_access_tokens()
        ms.identity.expire_access_tokens()
        for connection in (drive, onedrive):
            await service.refresh(connection.id)  # refreshes tokens (Microsoft rotates them)
        google.revoke_all()
        google.expire_access_tokens()
        with pytest.raises(Exception, match="no longer accepts"):
            await service.refresh(drive.id)
        await service.update_credentials(drive.id, google.issue_tokens())
        await service.refresh(drive.id)
        await service.close()

    asyncio.run(scenario())
    logging.shutdown()
    secrets = secrets_handed_out(google, ms)
    assert len(secrets) > 6
    assert "[redacted]" in log_file.read_text(), "the libraries did log secrets, and they were taken out"
    leaks = []
    for path in profile.rglob("*"):
        if path.is_file():
            content = path.read_bytes().decode("utf-8", "replace")
            leaks += [(path.name, secret[:8]) for secret in secrets if secret in content]
    assert leaks == []


def test_redaction_takes_out_tokens_codes_and_session_urls():
    line = (
        "POST https://oauth2.googleapis.com/token code=4/abc&code_verifier=xyz refresh_token=1//rt "
        "Authorization: Bearer ya29.secret {'access_token': 'at-1', \"refresh_token\": \"rt-2\"} "
        "PUT https://up.example/up/AbCdEf123?x=1 https://www.googleapis.com/upload/drive/v3/files?upload_id=SESSION "
        "https://contoso.sharepoint.com/_api/v2.0/uploadSession?guid=1&tempauth=eyJTEMPAUTH"
    )
    cleaned = redact(line)
    for secret in ("4/abc", "xyz", "1//rt", "ya29.secret", "at-1", "rt-2", "AbCdEf123", "SESSION", "eyJTEMPAUTH"):
        assert secret not in cleaned, secret
