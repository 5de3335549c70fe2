"""Microsoft tokens for one OneDrive connection, renewed through msal's public-client application.

A desktop app cannot keep a secret, so this is msal's ``PublicClientApplication`` (no client secret), not
the seed's server-side ``ConfidentialClientApplication``. msal's constructor fetches the authority's
metadata, so the application is created lazily, once per process and authority, never when a backend is
constructed. Microsoft rotates the refresh token on every use: the new one is handed to ``save`` at once.

msal remembers identical HTTP 400 token answers for 60 s, and 429/5xx answers for their Retry-After (or
60 s), without asking the server again (PROTOCOLS.md gotcha 10). So: ``invalid_grant`` and
``interaction_required`` are final (:class:`CloudConnectionError`, reconnect with new tokens, which have a new
cache key); a transient failure becomes :class:`ConnectionUnavailableError` and is not retried in a loop.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from kite_desktop.core.errors import CloudConnectionError, ConnectionUnavailableError
from kite_desktop.storage import tls

log = logging.getLogger(__name__)

MS_AUTHORITY = "https://login.microsoftonline.com/common"
GRAPH_URL = "https://graph.microsoft.com/v1.0"
SCOPES = ["Files.ReadWrite.AppFolder", "User.Read"]
EXPIRY_MARGIN = datetime.timedelta(minutes=2)
CredentialsSaver = Callable[[dict[str, Any]], None]
_apps_lock = threading.Lock()


def graph_url() -> str:
    return (os.environ.get("KITE_GRAPH_URL") or GRAPH_URL).rstrip("/")


def authority() -> str:
    return (os.environ.get("KITE_MS_AUTHORITY") or MS_AUTHORITY).rstrip("/")


def client_id() -> str:
    return os.environ.get("KITE_MS_CLIENT_ID", "")


def ca_bundle() -> str | None:
    """A CA file trusting the usual CAs plus ``KITE_CA_BUNDLE`` (see ``tls.py``); None for requests' default."""
    return tls.ca_file()


@functools.cache
def _requests_session(bundle: str | None) -> Any:
    import requests

    session = requests.Session()
    # requests would let REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override our verify setting (gotcha 8).
    session.trust_env = False
    if bundle:
        session.verify = bundle
    return session


_apps: dict[tuple[str, str, str | None], Any] = {}


def msal_app(client: str, authority_url: str, bundle: str | None) -> Any:
    """The process-wide ``PublicClientApplication`` for this client and authority (blocking: network I/O)."""
    key = (client, authority_url, bundle)
    with _apps_lock:
        app = _apps.get(key)
        if app is None:
            import msal

            app = msal.PublicClientApplication(
                client,
                authority=authority_url,
                http_client=_requests_session(bundle),
                # Instance discovery asks login.microsoftonline.com about the authority: only for Microsoft's own.
                instance_discovery=authority_url.startswith("https://login.microsoftonline.com/"),
            )
            _apps[key] = app
        return app


def _expiry(credentials: dict[str, Any]) -> datetime.datetime | None:
    value = credentials.get("expires_at")
    if not value:
        return None
    moment = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


class MicrosoftTokens:
    """The access token in use; refreshed single-flight, with the rotated refresh token saved at once."""

    def __init__(self, credentials: dict[str, Any], save: CredentialsSaver | None = None):
        self.credentials = dict(credentials)
        self._save = save
        self._lock = asyncio.Lock()

    @property
    def access_token(self) -> str:
        return str(self.credentials.get("access_token") or "")

    def needs_refresh(self) -> bool:
        expiry = _expiry(self.credentials)
        if not self.access_token:
            return True
        return expiry is not None and datetime.datetime.now(datetime.UTC) >= expiry - EXPIRY_MARGIN

    async def refresh(self, stale_token: str | None = None) -> None:
        async with self._lock:
            if stale_token is not None and self.access_token != stale_token and not self.needs_refresh():
                return
            refresh_token = self.credentials.get("refresh_token")
            if not refresh_token:
                raise CloudConnectionError("OneDrive did not give Kite a way to stay signed in.")
            client = self.credentials.get("client_id") or client_id()
            authority_url = self.credentials.get("authority") or authority()
            try:
                app = await asyncio.to_thread(msal_app, client, authority_url, ca_bundle())
                result = await asyncio.to_thread(app.acquire_token_by_refresh_token, refresh_token, SCOPES)
            except ValueError as exc:  # msal's own checks, e.g. a non-https authority
                raise ConnectionUnavailableError(f"Microsoft's sign-in service is misconfigured: {exc}") from None
            except Exception as exc:
                log.info("token refresh failed: %s", type(exc).__name__)
                raise ConnectionUnavailableError(
                    "Microsoft's sign-in service cannot be reached.", hint="Retry in a minute."
                ) from None
            if "access_token" not in result:
                error = str(result.get("error") or "unknown_error")
                if error in ("invalid_grant", "interaction_required"):
                    raise CloudConnectionError(
                        "OneDrive no longer accepts Kite's access to this account "
                        "(it was revoked, expired after inactivity, or needs you to sign in again)."
                    )
                raise ConnectionUnavailableError(
                    f"Microsoft's sign-in service did not renew access ({error}).", hint="Retry in a minute."
                )
            expires_in = int(result.get("expires_in") or 3600)
            self.credentials.update(
                access_token=result["access_token"],
                refresh_token=result.get("refresh_token") or refresh_token,
                expires_at=(datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=expires_in)).isoformat(),
            )
            if self._save is not None:
                self._save(dict(self.credentials))
