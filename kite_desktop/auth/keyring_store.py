"""Credentials in the OS keyring (Secret Service, Keychain, Credential Manager) through ``keyring``.

Keyring calls can block (a locked collection waiting for a prompt) so each runs in a thread with a
timeout. Without a usable keyring Kite keeps tokens in memory for this run only and says so; it never
falls back to a plaintext file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from kite_desktop.core.tokens import MemoryTokenStore, TokenStore, TokenStoreUnavailable

log = logging.getLogger(__name__)
KEYRING_SERVICE = "kite-desktop"
KEYRING_TIMEOUT = 5.0


class KeyringTokenStore(TokenStore):
    """The OS keyring (Secret Service, Keychain, Credential Manager) through the ``keyring`` package.

    When the keyring fails, the store switches to memory for the rest of the run and remembers why, so
    the window can say so once.
    """

    def __init__(self, timeout: float = KEYRING_TIMEOUT):
        self._timeout = timeout
        self._memory = MemoryTokenStore()
        self.problem: str | None = None

    async def _keyring(self, operation: str, *args: str) -> Any:
        import keyring
        import keyring.errors

        call = getattr(keyring, operation)
        try:
            return await asyncio.wait_for(asyncio.to_thread(call, KEYRING_SERVICE, *args), self._timeout)
        except TimeoutError:
            reason = "The keyring did not answer (it may be locked and waiting for a password)."
        except keyring.errors.PasswordDeleteError:
            return None
        except (keyring.errors.KeyringError, RuntimeError) as exc:
            reason = f"The keyring cannot be used: {type(exc).__name__}."
        self.problem = reason
        log.warning("%s Tokens stay in memory for this run.", reason)
        raise TokenStoreUnavailable(reason)

    async def load(self, connection_id: str) -> dict[str, Any] | None:
        """The stored credentials; None only when the keyring answered that it has none. A keyring that
        cannot be read raises :class:`TokenStoreUnavailable` (the account is fine, the keyring is not)."""
        remembered = await self._memory.load(connection_id)
        if remembered is not None:
            return remembered
        if self.problem is not None:
            raise TokenStoreUnavailable(self.problem)
        raw = await self._keyring("get_password", connection_id)
        return json.loads(raw) if raw else None

    async def save(self, connection_id: str, credentials: dict[str, Any]) -> None:
        await self._memory.save(connection_id, credentials)
        if self.problem is None:
            with contextlib.suppress(TokenStoreUnavailable):
                await self._keyring("set_password", connection_id, json.dumps(credentials))

    async def delete(self, connection_id: str) -> None:
        await self._memory.delete(connection_id)
        if self.problem is None:
            with contextlib.suppress(TokenStoreUnavailable):
                await self._keyring("delete_password", connection_id)
