"""``kite connect``: sign in from a terminal, tokens into the real keyring, then use the account from ``kite``.

Needs a real Secret Service to carry the tokens from one ``kite`` process to the next: it runs inside
``tests/with_keyring.sh`` (``make test``, CI) and skips elsewhere unless ``KITE_REQUIRE_KEYRING=1``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cloud.test_signin import follow
from tests.emulators.google import GoogleEmulator


@pytest.fixture
def real_keyring():
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        if os.environ.get("KITE_REQUIRE_KEYRING") == "1":
            pytest.fail("no Secret Service: run the tests through tests/with_keyring.sh")
        pytest.skip("no Secret Service here (make test runs this inside tests/with_keyring.sh)")


def kite(env: dict[str, str], *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "kite_desktop.cli", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def test_connect_from_the_terminal_then_upload_and_list(real_keyring, tmp_path: Path):
    document = tmp_path / "lease.pdf"
    document.write_bytes(b"%PDF lease")
    with GoogleEmulator() as google:
        env = {
            **os.environ,
            "HOME": str(tmp_path / "home"),
            "KITE_PROFILE_DIR": str(tmp_path / "profile"),
            "KITE_GOOGLE_API_ROOT": google.root_url,
            "KITE_GOOGLE_AUTH_URI": google.auth_uri,
            "KITE_GOOGLE_TOKEN_URI": google.token_uri,
            "KITE_GOOGLE_CLIENT_ID": "kite-test-client",
            "KITE_GOOGLE_CLIENT_SECRET": "kite-test-secret",
            "OAUTHLIB_INSECURE_TRANSPORT": "1",
        }
        connect = kite(env, "connect", "google", "--no-browser")
        assert connect.stderr is not None
        for line in connect.stderr:
            if line.startswith(google.auth_uri):
                follow(line.strip())
                break
        out, err = connect.communicate(timeout=60)
        assert connect.returncode == 0, err
        assert "connected alice@example.com (Google Drive)" in out

        listing = subprocess.run(
            [sys.executable, "-m", "kite_desktop.cli", "connections", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        (drive,) = [c for c in json.loads(listing.stdout) if c["provider"] == "google_drive"]
        upload = subprocess.run(
            [sys.executable, "-m", "kite_desktop.cli", "upload", str(document), "--to", drive["id"]],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert upload.returncode == 0, upload.stderr
        ls = subprocess.run(
            [sys.executable, "-m", "kite_desktop.cli", "ls", drive["name"], "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert [d["name"] for d in json.loads(ls.stdout)] == ["lease.pdf"]
        assert len(google.files_named("lease.pdf")) == 1
    profile_text = "".join(p.read_text(errors="ignore") for p in (tmp_path / "profile").rglob("*") if p.is_file())
    assert "refresh_token" not in profile_text
