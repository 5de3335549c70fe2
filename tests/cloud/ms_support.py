"""Fixtures and helpers for the OneDrive backend tests: the Microsoft emulators and a backend wired to them."""

from __future__ import annotations

import datetime
from typing import Any

from kite_desktop.storage.onedrive_backend import OneDriveBackend
from kite_desktop.storage.retry import RetryPolicy
from tests.emulators.microsoft import MicrosoftEmulators

FAST_RETRY = RetryPolicy(attempts=5, base=0.005, cap=0.02, max_retry_after=5)
FRAGMENT = 320 * 1024


def credentials(ms: MicrosoftEmulators, username: str | None = None) -> dict[str, Any]:
    """The seed's credential keys, plus where they came from."""
    tokens = ms.identity.issue_tokens(username)
    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=int(tokens["expires_in"]))
    return {
        "access_token": tokens["access_token"],
        "refresh_token": tokens["refresh_token"],
        "expires_at": expires.isoformat(),
        "client_id": ms.client_id,
        "authority": ms.authority,
    }


def onedrive_backend(
    ms: MicrosoftEmulators,
    saved: list[dict[str, Any]] | None = None,
    *,
    chunk_size: int = FRAGMENT,
    retry: RetryPolicy = FAST_RETRY,
    creds: dict[str, Any] | None = None,
) -> OneDriveBackend:
    return OneDriveBackend(
        creds or credentials(ms),
        on_credentials_changed=saved.append if saved is not None else None,
        graph=ms.graph_url,
        retry=retry,
        chunk_size=chunk_size,
        timeout=10,
    )
