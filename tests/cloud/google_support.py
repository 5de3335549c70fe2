"""Fixtures and helpers for the Google Drive backend tests: a fresh emulator, a backend talking to it."""

from __future__ import annotations

from typing import Any

from kite_desktop.storage.google_drive_backend import GoogleDriveBackend
from kite_desktop.storage.retry import RetryPolicy
from tests.emulators.google import GoogleEmulator

# Real backoff shape, tiny delays: the tests check what is retried, not how long it waits.
FAST_RETRY = RetryPolicy(attempts=5, base=0.005, cap=0.02, max_retry_after=5)
CHUNK = 256 * 1024


def drive_backend(
    emulator: GoogleEmulator,
    saved: list[dict[str, Any]] | None = None,
    *,
    email: str | None = None,
    chunk_size: int = CHUNK,
    retry: RetryPolicy = FAST_RETRY,
) -> GoogleDriveBackend:
    credentials = emulator.issue_tokens(email)
    return GoogleDriveBackend(
        credentials,
        on_credentials_changed=saved.append if saved is not None else None,
        api_root=emulator.root_url,
        retry=retry,
        chunk_size=chunk_size,
        timeout=10,
    )
