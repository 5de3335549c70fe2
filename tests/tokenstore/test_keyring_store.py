"""Tokens in the OS keyring: a real Secret Service (gnome-keyring), and every way a keyring can fail.

The real-keyring tests run inside ``tests/with_keyring.sh`` (``make test`` and CI do); elsewhere they skip,
unless ``KITE_REQUIRE_KEYRING=1`` (set by CI) turns a missing Secret Service into a failure.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from pathlib import Path

import keyring
import keyring.backend
import keyring.errors
import pytest

from kite_desktop.auth.keyring_store import KEYRING_SERVICE, KeyringTokenStore

SECRET = {"access_token": "at-" + "x" * 40, "refresh_token": "rt-" + "y" * 1500, "expires_at": "2030-01-01T00:00:00"}


@pytest.fixture
def secret_service():
    """The real Secret Service backend, pinned (keyring picks its backend once, at import)."""
    from keyring.backends import SecretService

    backend = SecretService.Keyring()
    try:
        viable = backend.priority > 0 and os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    except Exception:
        viable = False
    if not viable:
        if os.environ.get("KITE_REQUIRE_KEYRING") == "1":
            pytest.fail("no Secret Service: run the tests through tests/with_keyring.sh")
        pytest.skip("no Secret Service here (make test runs these inside tests/with_keyring.sh)")
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_credentials_round_trip_through_the_real_keyring(secret_service, tmp_path: Path):
    connection = f"test-{uuid.uuid4().hex}"
    store = KeyringTokenStore()

    async def scenario() -> None:
        await store.save(connection, SECRET)
        assert await KeyringTokenStore().load(connection) == SECRET, "a new store (a new app run) reads it back"
        rotated = {**SECRET, "refresh_token": "rt-rotated"}
        await store.save(connection, rotated)
        assert await KeyringTokenStore().load(connection) == rotated
        await store.delete(connection)
        assert await KeyringTokenStore().load(connection) is None

    asyncio.run(scenario())
    assert store.problem is None
    assert secret_service.get_password(KEYRING_SERVICE, connection) is None


# -- keyrings that fail --------------------------------------------------------------------------------------
class FailingKeyring(keyring.backend.KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self, failure: BaseException | None = None, hang: threading.Event | None = None):
        super().__init__()
        self.failure = failure
        self.hang = hang
        self.calls = 0

    def _act(self) -> None:
        self.calls += 1
        if self.hang is not None:
            self.hang.wait(10)
        if self.failure is not None:
            raise self.failure

    def get_password(self, service: str, username: str) -> str | None:
        self._act()
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        self._act()

    def delete_password(self, service: str, username: str) -> None:
        self._act()


@pytest.fixture
def use_keyring():
    previous = keyring.get_keyring()
    yield keyring.set_keyring
    keyring.set_keyring(previous)


@pytest.mark.parametrize(
    ("failure", "said"),
    [
        (keyring.errors.KeyringLocked("Failed to unlock the collection!"), "cannot be used"),
        (keyring.errors.NoKeyringError("No recommended backend was available."), "cannot be used"),
        (keyring.errors.PasswordSetError("write failed"), "cannot be used"),
    ],
    ids=["locked", "missing", "write-failure"],
)
def test_a_failing_keyring_keeps_tokens_in_memory_and_says_so(
    use_keyring, failure, said, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    use_keyring(FailingKeyring(failure))
    store = KeyringTokenStore()

    async def scenario() -> None:
        await store.save("c1", SECRET)
        assert await store.load("c1") == SECRET, "this run of the app keeps working"

    asyncio.run(scenario())
    assert store.problem is not None and said in store.problem
    assert not any(SECRET["refresh_token"] in p.read_text(errors="ignore") for p in tmp_path.rglob("*") if p.is_file())


def test_a_hung_keyring_times_out_instead_of_freezing(use_keyring):
    release = threading.Event()
    backend = FailingKeyring(hang=release)
    use_keyring(backend)
    store = KeyringTokenStore(timeout=0.2)

    async def scenario() -> dict | None:
        try:
            await store.save("c1", SECRET)
            return await store.load("c1")
        finally:
            release.set()  # let the stuck worker thread end, as a dismissed unlock prompt would

    assert asyncio.run(scenario()) == SECRET
    assert store.problem is not None and "did not answer" in store.problem
    assert backend.calls == 1, "after one timeout the keyring is not asked again this run"
