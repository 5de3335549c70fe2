"""Google OAuth tokens for one connection: when to refresh, refreshing once at a time, saying when it failed.

The seed's credential dict (``access_token``, ``refresh_token``, ``expiry`` ISO string, ``token_uri``,
``client_id``, ``client_secret``) is turned into ``google.oauth2.credentials.Credentials`` with its own
``token_uri`` kept (``from_authorized_user_info`` would reset it to Google's). A refresh that Google answers
with ``invalid_grant`` means the grant is gone: :class:`CloudConnectionError`, never a retry loop.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
from google.oauth2.credentials import Credentials

from kite_desktop.core.errors import CloudConnectionError, ConnectionUnavailableError
from kite_desktop.storage import google_api, tls

SCOPES = ["https://www.googleapis.com/auth/drive.file"]
CredentialsSaver = Callable[[dict[str, Any]], None]


def credentials_from_dict(data: dict[str, Any]) -> Credentials:
    credentials = Credentials(
        token=data.get("access_token"),
        refresh_token=data.get("refresh_token"),
        token_uri=data.get("token_uri") or google_api.token_uri(),
        client_id=data.get("client_id"),
        client_secret=data.get("client_secret"),
        scopes=data.get("scopes") or SCOPES,
    )
    expiry = data.get("expiry")
    if expiry:
        moment = datetime.datetime.fromisoformat(str(expiry).replace("Z", "+00:00"))
        # google-auth compares expiry as naive UTC.
        if moment.tzinfo is not None:
            moment = moment.astimezone(datetime.UTC).replace(tzinfo=None)
        credentials.expiry = moment
    return credentials


def credentials_to_dict(credentials: Credentials) -> dict[str, Any]:
    return {
        "access_token": credentials.token,
        "refresh_token": credentials.refresh_token,
        "expiry": credentials.expiry.replace(tzinfo=datetime.UTC).isoformat() if credentials.expiry else None,
        "token_uri": credentials.token_uri,
        "client_id": credentials.client_id,
        "client_secret": credentials.client_secret,
    }


class GoogleTokens:
    """The access token in use, refreshed single-flight; every new token is handed to ``save``."""

    def __init__(self, credentials: dict[str, Any], save: CredentialsSaver | None = None):
        self.credentials = credentials_from_dict(credentials)
        self._save = save
        self._lock = asyncio.Lock()
        self._session: Any = None

    @property
    def access_token(self) -> str:
        return str(self.credentials.token or "")

    def needs_refresh(self) -> bool:
        return not self.credentials.token or self.credentials.expired

    async def refresh(self, stale_token: str | None = None) -> None:
        """Get a new access token, unless another caller already replaced ``stale_token``."""
        async with self._lock:
            if stale_token is not None and self.credentials.token != stale_token and not self.needs_refresh():
                return
            if not self.credentials.refresh_token:
                raise CloudConnectionError("Google Drive did not give Kite a way to stay signed in.")
            if self._session is None:
                import requests

                self._session = requests.Session()
                bundle = tls.ca_file()
                if bundle:
                    self._session.verify = bundle
            request = google.auth.transport.requests.Request(self._session)
            try:
                await asyncio.to_thread(self.credentials.refresh, request)
            except google.auth.exceptions.RefreshError as exc:
                details = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
                if details.get("error") == "invalid_grant":
                    raise CloudConnectionError(
                        "Google Drive no longer accepts Kite's access to this account "
                        "(it was revoked, expired, or the password changed)."
                    ) from None
                if getattr(exc, "retryable", False) or not details:
                    raise ConnectionUnavailableError("Google's sign-in service did not answer.") from None
                raise CloudConnectionError(f"Google refused to renew access: {details.get('error')}.") from None
            except google.auth.exceptions.TransportError:
                raise ConnectionUnavailableError("Google's sign-in service cannot be reached.") from None
            if self._save is not None:
                self._save(credentials_to_dict(self.credentials))

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
