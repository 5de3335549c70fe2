"""What a sign-in produces, and the steps every provider's flow shares: open the browser, wait, cancel.

A flow is used in two steps so the window can show "Waiting for you to finish in the browser…" with
Cancel and Copy link in between: ``start()`` opens the loopback listener and returns the consent page's
address; ``finish()`` waits for the browser to come back and exchanges the code for tokens.
"""

from __future__ import annotations

import asyncio
import secrets
import webbrowser
from abc import ABC, abstractmethod

from kite_desktop.auth.loopback import AuthorizationResponse, LoopbackListener, SignInCancelled
from kite_desktop.core.errors import KiteError
from kite_desktop.core.models import Provider, SignIn

__all__ = ["MissingClientId", "SignIn", "SignInFlow", "open_browser"]


class MissingClientId(KiteError):
    title = "App registration needed"


class SignInFlow(ABC):
    provider: Provider

    def __init__(self, timeout: float = 300.0):
        self.state = secrets.token_urlsafe(32)
        self.listener = LoopbackListener(self.state, timeout)
        self.url = ""

    @abstractmethod
    async def start(self) -> str:
        """Open the listener and return the provider's consent page address (also kept in ``url``)."""

    @abstractmethod
    async def finish(self) -> SignIn:
        """Wait for the browser's answer and turn it into credentials and the account's name."""

    def cancel(self) -> None:
        self.listener.cancel()

    async def response(self) -> AuthorizationResponse:
        answer = await self.listener.wait()
        if answer.error == "access_denied":
            raise SignInCancelled("Cancelled in the browser.")
        if answer.error or not answer.code:
            description = answer.params.get("error_description") or answer.error or "no code"
            raise KiteError(f"The sign-in did not complete: {description}.", title="Sign-in failed")
        return answer


async def open_browser(url: str) -> bool:
    """Open ``url`` in the system browser (``BROWSER`` is honoured); False when none could be opened."""
    try:
        return bool(await asyncio.to_thread(webbrowser.open, url, 2))
    except webbrowser.Error:
        return False
