"""Connecting an account: the loopback flow for Google and Microsoft against the emulators, no real browser.

A small stand-in for the browser follows the consent page's answer back to Kite's listener, as a person's
browser would (the end-to-end test with a real Chromium lives with the connect dialog).
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from kite_desktop.auth.google_signin import GoogleSignIn
from kite_desktop.auth.loopback import LoopbackListener, SignInCancelled, SignInTimedOut
from kite_desktop.auth.microsoft_signin import MicrosoftSignIn
from kite_desktop.auth.signin import MissingClientId
from kite_desktop.core.models import Provider
from kite_desktop.storage.google_drive_backend import GoogleDriveBackend
from kite_desktop.storage.onedrive_backend import OneDriveBackend
from tests.emulators.google import GoogleEmulator
from tests.emulators.microsoft import MicrosoftEmulators


@pytest.fixture
def google(monkeypatch: pytest.MonkeyPatch):
    with GoogleEmulator() as emulator:
        monkeypatch.setenv("KITE_GOOGLE_API_ROOT", emulator.root_url)
        monkeypatch.setenv("KITE_GOOGLE_AUTH_URI", emulator.auth_uri)
        monkeypatch.setenv("KITE_GOOGLE_TOKEN_URI", emulator.token_uri)
        monkeypatch.setenv("KITE_GOOGLE_CLIENT_ID", "kite-test-client")
        monkeypatch.setenv("KITE_GOOGLE_CLIENT_SECRET", "kite-test-secret")
        # oauthlib refuses plain-http token endpoints; only the emulator is plain http.
        monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
        yield emulator


@pytest.fixture
def microsoft(monkeypatch: pytest.MonkeyPatch):
    with MicrosoftEmulators() as emulators:
        for name, value in emulators.env().items():
            monkeypatch.setenv(name, value)
        yield emulators


def follow(url: str) -> requests.Response:
    """What the browser does after consent: the provider redirects it back to Kite's listener."""
    with requests.Session() as browser:
        browser.trust_env = False
        consent = browser.get(url, allow_redirects=False, timeout=10)
        assert consent.status_code == 302, consent.text
        return browser.get(consent.headers["location"], timeout=10)


async def sign_in_with_google(flow: GoogleSignIn):
    url = await flow.start()
    page, result = await asyncio.gather(asyncio.to_thread(follow, url), flow.finish())
    return url, page, result


def test_google_sign_in_gives_working_credentials_and_the_account(google: GoogleEmulator, tmp_path: Path):
    flow = GoogleSignIn()

    async def scenario():
        url, page, signed_in = await sign_in_with_google(flow)
        backend = GoogleDriveBackend(signed_in.credentials)
        (tmp_path / "a.txt").write_text("hello")
        info = await backend.upload_file(tmp_path / "a.txt", "a.txt", "text/plain")
        await backend.aclose()
        return url, page, signed_in, info

    url, page, signed_in, info = asyncio.run(scenario())
    assert (signed_in.provider, signed_in.account) == (Provider.GOOGLE_DRIVE, "alice@example.com")
    assert signed_in.credentials["refresh_token"] and signed_in.credentials["token_uri"] == google.token_uri
    assert info.size == 5
    assert "You can close this tab and return to Kite" in page.text
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"] and query["state"] == [flow.state]
    assert query["access_type"] == ["offline"] and query["prompt"] == ["consent"]
    assert query["scope"] == ["https://www.googleapis.com/auth/drive.file"]
    assert "code_verifier" not in url
    assert urlsplit(query["redirect_uri"][0]).hostname == "127.0.0.1"


def test_cancelling_in_google_consent_says_so(google: GoogleEmulator):
    google.deny_next_consent()
    flow = GoogleSignIn()
    with pytest.raises(SignInCancelled, match="Cancelled in the browser"):
        asyncio.run(sign_in_with_google(flow))
    assert google.token_requests == []


def test_the_listener_is_closed_after_the_sign_in(google: GoogleEmulator):
    flow = GoogleSignIn()

    async def scenario() -> int:
        await sign_in_with_google(flow)
        return flow.listener.port

    port = asyncio.run(scenario())
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_microsoft_sign_in_gives_working_credentials_and_the_account(microsoft: MicrosoftEmulators):
    flow = MicrosoftSignIn()

    async def scenario():
        url = await flow.start()
        _, signed_in = await asyncio.gather(
            asyncio.to_thread(microsoft.identity.visit, url, deliver=True), flow.finish()
        )
        backend = OneDriveBackend(signed_in.credentials)
        healthy = await backend.health_check()
        await backend.aclose()
        return url, signed_in, healthy

    url, signed_in, healthy = asyncio.run(scenario())
    assert (signed_in.provider, signed_in.account) == (Provider.ONEDRIVE, "bob@example.com")
    assert signed_in.credentials["refresh_token"] and healthy
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"] and query["response_mode"] == ["form_post"]
    assert urlsplit(query["redirect_uri"][0]).hostname == "127.0.0.1"


def test_missing_client_ids_say_what_to_register(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("KITE_GOOGLE_CLIENT_ID", raising=False)
    monkeypatch.delenv("KITE_MS_CLIENT_ID", raising=False)
    with pytest.raises(MissingClientId, match="KITE_GOOGLE_CLIENT_ID"):
        asyncio.run(GoogleSignIn().start())
    with pytest.raises(MissingClientId, match="KITE_MS_CLIENT_ID"):
        asyncio.run(MicrosoftSignIn().start())


# -- the listener on its own --------------------------------------------------------------------------------
def get(url: str) -> requests.Response:
    return requests.get(url, timeout=5)


def test_a_response_with_a_wrong_or_missing_state_is_refused_and_the_wait_goes_on():
    async def scenario():
        listener = await LoopbackListener("the-right-state").start()
        base = listener.redirect_uri
        wrong = await asyncio.to_thread(get, f"{base}?code=attacker&state=guess")
        missing = await asyncio.to_thread(get, f"{base}?code=attacker")
        assert listener.listening, "a refused answer does not end the wait"
        good, answer = await asyncio.gather(
            asyncio.to_thread(get, f"{base}?code=mine&state=the-right-state"), listener.wait()
        )
        return wrong, missing, good, answer, listener

    wrong, missing, good, answer, listener = asyncio.run(scenario())
    assert (wrong.status_code, missing.status_code, good.status_code) == (400, 400, 200)
    assert answer.code == "mine" and listener.refused == 2 and not listener.listening


def test_the_listener_binds_the_loopback_address_only():
    async def scenario() -> tuple[str, int]:
        listener = await LoopbackListener("s").start()
        address = listener._server.sockets[0].getsockname()  # type: ignore[union-attr]
        await listener.close()
        return address[0], address[1]

    host, port = asyncio.run(scenario())
    assert host == "127.0.0.1" and port > 0


def test_no_answer_times_out_and_cancel_ends_the_wait():
    async def scenario() -> None:
        listener = await LoopbackListener("s", timeout=0.05).start()
        with pytest.raises(SignInTimedOut):
            await listener.wait()
        listener = await LoopbackListener("s").start()
        waiting = asyncio.create_task(listener.wait())
        listener.cancel()
        with pytest.raises(SignInCancelled):
            await waiting
        assert not listener.listening

    asyncio.run(scenario())
