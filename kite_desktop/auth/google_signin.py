"""Signing in to Google Drive: google-auth-oauthlib's ``Flow`` with PKCE, our loopback listener, least scope.

Offline access with the consent prompt, so Google returns a refresh token on every sign-in (also on a
reconnect). The code exchange runs in a thread. Client id and secret come from the settings or
``KITE_GOOGLE_CLIENT_ID`` / ``KITE_GOOGLE_CLIENT_SECRET``; a desktop app's "secret" is not confidential
(RFC 8252 §8.5) and security rests on PKCE and state.
"""

from __future__ import annotations

import asyncio
import os

from kite_desktop.auth.signin import MissingClientId, SignIn, SignInFlow
from kite_desktop.core.models import Provider
from kite_desktop.storage import google_api, tls
from kite_desktop.storage.google_auth import SCOPES, credentials_to_dict

NEEDS_CLIENT = (
    "Kite needs a Google OAuth client of type 'Desktop app' to connect Google Drive. Create one in the Google "
    "Cloud console (APIs & Services → Credentials), enable the Google Drive API, then set KITE_GOOGLE_CLIENT_ID "
    "and KITE_GOOGLE_CLIENT_SECRET (see the README section 'Use your own Google / Microsoft app registration')."
)


class GoogleSignIn(SignInFlow):
    provider = Provider.GOOGLE_DRIVE

    def __init__(self, client_id: str | None = None, client_secret: str | None = None, timeout: float = 300.0):
        super().__init__(timeout)
        self.client_id = client_id or os.environ.get("KITE_GOOGLE_CLIENT_ID", "")
        self.client_secret = client_secret or os.environ.get("KITE_GOOGLE_CLIENT_SECRET", "")
        self._flow: object | None = None

    async def start(self) -> str:
        if not self.client_id:
            raise MissingClientId(NEEDS_CLIENT)
        from google_auth_oauthlib.flow import Flow

        await self.listener.start()
        config = {
            "installed": {
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "auth_uri": google_api.auth_uri(),
                "token_uri": google_api.token_uri(),
                "redirect_uris": ["http://127.0.0.1"],
            }
        }
        flow = Flow.from_client_config(
            config, scopes=SCOPES, redirect_uri=self.listener.redirect_uri, autogenerate_code_verifier=True
        )
        bundle = tls.ca_file()
        if bundle:
            flow.oauth2session.verify = bundle
        self.url, _ = flow.authorization_url(access_type="offline", prompt="consent", state=self.state)
        self._flow = flow
        return self.url

    async def finish(self) -> SignIn:
        answer = await self.response()
        flow = self._flow
        assert flow is not None
        await asyncio.to_thread(flow.fetch_token, code=answer.code)  # type: ignore[attr-defined]
        credentials = credentials_to_dict(flow.credentials)  # type: ignore[attr-defined]
        from kite_desktop.storage.google_drive_backend import GoogleDriveBackend

        backend = GoogleDriveBackend(credentials)
        try:
            email, name = await backend.account()
        finally:
            await backend.aclose()
        return SignIn(self.provider, credentials, email, name)
