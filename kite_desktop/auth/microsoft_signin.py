"""Signing in to OneDrive: msal's ``PublicClientApplication`` auth-code flow with our own loopback listener.

Why not ``acquire_token_interactive``: it blocks a thread until the browser answers (no way to cancel
from the window), hard-codes ``localhost`` as the redirect host, and opens its own listener. With
``initiate_auth_code_flow`` / ``acquire_token_by_auth_code_flow`` the window keeps Cancel and Copy link,
the listener is ours (127.0.0.1, one-shot, state checked before msal checks it again), and msal still does
PKCE, the nonce and the token exchange (in a thread).
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

from kite_desktop.auth.signin import MissingClientId, SignIn, SignInFlow
from kite_desktop.core.errors import KiteError
from kite_desktop.core.models import Provider
from kite_desktop.storage import onedrive_auth

NEEDS_CLIENT = (
    "Kite needs a Microsoft app registration to connect OneDrive. Register a 'public client / native' app in "
    "the Microsoft Entra admin center (App registrations), add the redirect URIs http://localhost and "
    "http://127.0.0.1 and the delegated permissions Files.ReadWrite.AppFolder and User.Read, then set "
    "KITE_MS_CLIENT_ID (see the README section 'Use your own Google / Microsoft app registration')."
)


class MicrosoftSignIn(SignInFlow):
    provider = Provider.ONEDRIVE

    def __init__(self, client_id: str | None = None, authority: str | None = None, timeout: float = 300.0):
        super().__init__(timeout)
        self.client_id = client_id or onedrive_auth.client_id()
        self.authority = authority or onedrive_auth.authority()
        self._flow: dict[str, Any] | None = None
        self._app: Any = None

    async def start(self) -> str:
        if not self.client_id:
            raise MissingClientId(NEEDS_CLIENT)
        self._app = await asyncio.to_thread(
            onedrive_auth.msal_app, self.client_id, self.authority, onedrive_auth.ca_bundle()
        )
        await self.listener.start()
        self._flow = self._app.initiate_auth_code_flow(
            onedrive_auth.SCOPES,
            redirect_uri=self.listener.redirect_uri,
            state=self.state,
            response_mode="form_post",
        )
        self.url = str(self._flow["auth_uri"])
        return self.url

    async def finish(self) -> SignIn:
        answer = await self.response()
        result = await asyncio.to_thread(
            self._app.acquire_token_by_auth_code_flow, self._flow, answer.params, scopes=onedrive_auth.SCOPES
        )
        if "access_token" not in result:
            raise KiteError(
                f"Microsoft did not complete the sign-in: {result.get('error_description') or result.get('error')}.",
                title="Sign-in failed",
            )
        claims = result.get("id_token_claims") or {}
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=int(result.get("expires_in", 3600)))
        credentials = {
            "access_token": result["access_token"],
            "refresh_token": result.get("refresh_token"),
            "expires_at": expires.isoformat(),
            "client_id": self.client_id,
            "authority": self.authority,
        }
        account = str(claims.get("preferred_username") or claims.get("email") or "")
        return SignIn(self.provider, credentials, account, str(claims.get("name") or ""))
