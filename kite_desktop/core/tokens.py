"""The token store contract: where a connection's credentials are kept, and the in-memory one.

The app's store is the OS keyring (``kite_desktop.auth.keyring_store``); credentials are never written to a
file, a log or the catalog.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from kite_desktop.core.errors import KiteError


class TokenStoreUnavailable(KiteError):
    title = "Keyring unavailable"
    hint = "Kite keeps your sign-in in memory until it quits; you will be asked to sign in again next time."


class TokenStore(ABC):
    @abstractmethod
    async def load(self, connection_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    async def save(self, connection_id: str, credentials: dict[str, Any]) -> None: ...

    @abstractmethod
    async def delete(self, connection_id: str) -> None: ...


class MemoryTokenStore(TokenStore):
    """Tokens for this run of the app only."""

    def __init__(self) -> None:
        self._tokens: dict[str, dict[str, Any]] = {}

    async def load(self, connection_id: str) -> dict[str, Any] | None:
        found = self._tokens.get(connection_id)
        return dict(found) if found is not None else None

    async def save(self, connection_id: str, credentials: dict[str, Any]) -> None:
        self._tokens[connection_id] = dict(credentials)

    async def delete(self, connection_id: str) -> None:
        self._tokens.pop(connection_id, None)
