"""The project's own data types. Nothing here knows about Qt, SQLite or any provider SDK."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Provider(enum.StrEnum):
    LOCAL = "local"
    GOOGLE_DRIVE = "google_drive"
    ONEDRIVE = "onedrive"

    @property
    def label(self) -> str:
        return {"local": "Local folder", "google_drive": "Google Drive", "onedrive": "OneDrive"}[self.value]


class ConnectionStatus(enum.StrEnum):
    CONNECTED = "connected"
    REQUIRES_REAUTH = "REQUIRES_REAUTH"
    OFFLINE = "offline"
    ERROR = "error"
    UNKNOWN = "unknown"

    @property
    def label(self) -> str:
        return {
            "connected": "Connected",
            "REQUIRES_REAUTH": "Needs reconnect",
            "offline": "Offline",
            "error": "Error",
            "unknown": "Not checked yet",
        }[self.value]


@dataclass(frozen=True)
class ConnectionConfig:
    """What the user chose: kept in the settings file, so it survives a lost catalog."""

    id: str
    name: str
    provider: Provider
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "provider": self.provider.value, "options": self.options}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConnectionConfig:
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            provider=Provider(data["provider"]),
            options=dict(data.get("options") or {}),
        )


@dataclass(frozen=True)
class Connection:
    """A connection as the window and the CLI show it: the user's config plus the app's state."""

    config: ConnectionConfig
    status: ConnectionStatus = ConnectionStatus.UNKNOWN
    detail: str = ""
    account: str = ""
    refreshed_at: datetime | None = None

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def provider(self) -> Provider:
        return self.config.provider


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object as a backend reports it.

    ``key`` is the backend's own handle (a relative path for a local folder, a file id for Drive);
    ``name`` is the document's name, a relative POSIX path when it came from a dropped folder.
    """

    key: str
    name: str
    size: int
    content_type: str = "application/octet-stream"
    modified: datetime | None = None
    hash: str | None = None
    hash_kind: str | None = None
    downloadable: bool = True


@dataclass(frozen=True)
class ObjectPage:
    items: list[ObjectInfo]
    next_page_token: str | None = None


@dataclass(frozen=True)
class Document:
    """A document in the catalog."""

    id: str
    connection_id: str
    remote_key: str
    name: str
    size: int
    content_type: str
    modified: datetime | None
    hash: str | None = None
    state: str = "stored"
    downloadable: bool = True

    @property
    def kind(self) -> str:
        """A short type for the table: the extension in capitals, or the content type's family."""
        base = self.name.rsplit("/", 1)[-1]
        if "." in base.strip(".") and not base.startswith("."):
            return base.rsplit(".", 1)[-1].upper()[:8]
        return self.content_type.split("/", 1)[0].capitalize() if self.content_type else "File"


@dataclass(frozen=True)
class SignIn:
    """What signing in to a cloud account produced: credentials for the token store, and whose they are."""

    provider: Provider
    credentials: dict[str, Any] = field(repr=False)
    account: str
    display_name: str = ""


ProgressCallback = Callable[[int], None]
"""Called with the number of bytes transferred so far, always on the event loop's thread."""


class ResumeState:
    """Where an interrupted upload can go on: the backend's resumable session, kept by the transfer queue.

    A backend reads ``data`` when it starts (None: nothing to resume) and awaits :meth:`save` as soon as a
    session exists, before it sends bytes that could complete it. The data holds capabilities (session URLs):
    it is never logged, and the queue drops it when the transfer is done.
    """

    def __init__(
        self,
        data: dict[str, Any] | None = None,
        saver: Callable[[dict[str, Any] | None], Awaitable[None]] | None = None,
    ):
        self.data = data
        self._saver = saver

    async def save(self, data: dict[str, Any] | None) -> None:
        self.data = data
        if self._saver is not None:
            await self._saver(data)

    def __repr__(self) -> str:  # never show the session URL
        return f"ResumeState({'set' if self.data else 'empty'})"
