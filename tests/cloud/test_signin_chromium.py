"""End to end through a real browser: app → Chromium → emulated consent page → loopback listener → tokens.

Chromium comes from Debian's ``chromium`` package (``.ci/run`` installs it). Without it these skip, unless
``KITE_REQUIRE_BROWSER=1`` (set by CI) makes that a failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import webbrowser
from pathlib import Path

import pytest

from kite_desktop.auth.google_signin import GoogleSignIn
from kite_desktop.auth.microsoft_signin import MicrosoftSignIn
from kite_desktop.auth.signin import open_browser
from tests.cloud.test_signin import google, microsoft  # noqa: F401 - fixtures

WRAPPER = Path(__file__).resolve().parents[1] / "chromium_browser.sh"


@pytest.fixture
def chromium(monkeypatch: pytest.MonkeyPatch):
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        if os.environ.get("KITE_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is not installed")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    monkeypatch.setenv("BROWSER", f"{WRAPPER} %s")
    monkeypatch.setattr(webbrowser, "_tryorder", None)
    monkeypatch.setattr(webbrowser, "_browsers", {})


async def through_the_browser(flow):
    url = await flow.start()
    opened, signed_in = await asyncio.gather(open_browser(url), flow.finish())
    assert opened
    return signed_in


def test_google_sign_in_through_chromium(chromium, google):  # noqa: F811
    signed_in = asyncio.run(through_the_browser(GoogleSignIn(timeout=60)))
    assert signed_in.account == "alice@example.com" and signed_in.credentials["refresh_token"]
    assert [r for r in google.token_requests if r.grant_type == "authorization_code"]


def test_microsoft_sign_in_through_chromium(chromium, microsoft):  # noqa: F811
    signed_in = asyncio.run(through_the_browser(MicrosoftSignIn(timeout=60)))
    assert signed_in.account == "bob@example.com" and signed_in.credentials["refresh_token"]
