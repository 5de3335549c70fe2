"""The storage contract every backend implements.

The first seven methods are the seed plan's ``StorageBackend`` (05-03-PLAN.md), names and signatures
unchanged. A desktop client needs more than whole-file bytes in memory, so the contract adds paged listing
and streaming transfers between a local path and the store, with progress.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

from kite_desktop.core.errors import CloudConnectionError
from kite_desktop.core.models import ObjectInfo, ObjectPage, ProgressCallback, ResumeState
from kite_desktop.storage.throttle import Limits

__all__ = ["CloudConnectionError", "ConflictPolicy", "StorageBackend"]

ConflictPolicy = Literal["rename", "replace", "fail"]


class StorageBackend(ABC):
    """One place documents are kept. All methods are coroutines and never block the event loop."""

    limits: Limits = Limits()
    """Bandwidth budgets; the service gives every backend its shared instance (the default has no limit)."""

    # -- the seed's seven methods ---------------------------------------------------------------
    @abstractmethod
    async def put_object(
        self, user_id: str, document_id: str, file_bytes: bytes, extension: str, content_type: str
    ) -> str:
        """Store ``file_bytes`` as ``{document_id}{extension}``; return the new object's key."""

    @abstractmethod
    async def get_object(self, object_key: str) -> bytes:
        """The whole object's bytes. Prefer :meth:`download_file` for anything large."""

    @abstractmethod
    async def delete_object(self, object_key: str) -> None:
        """Delete the object; deleting one that does not exist is not an error."""

    @abstractmethod
    async def presigned_get_url(self, object_key: str, expires_minutes: int = 60) -> str:
        """A URL that reads the object, or NotImplementedError where the store has none."""

    @abstractmethod
    async def health_check(self) -> bool:
        """True when the store answers; never raises."""

    @abstractmethod
    async def generate_presigned_put_url(self, object_key: str, expires_minutes: int = 15) -> str:
        """A URL that writes the object, or NotImplementedError where the store has none."""

    @abstractmethod
    async def stat_object(self, object_key: str) -> int:
        """The object's size in bytes."""

    # -- what a desktop client adds ---------------------------------------------------------------
    @abstractmethod
    async def list_objects(self, page_token: str | None = None, page_size: int = 200) -> ObjectPage:
        """One page of the stored documents; pass ``next_page_token`` back for the next page."""

    @abstractmethod
    async def upload_file(
        self,
        path: Path,
        name: str,
        content_type: str,
        progress: ProgressCallback | None = None,
        conflict: ConflictPolicy = "rename",
        resume: ResumeState | None = None,
    ) -> ObjectInfo:
        """Stream the file at ``path`` into the store as ``name`` (a relative POSIX path).

        Memory does not grow with the file's size. The result is returned only after the store has
        confirmed the object (key, size and, where the store has one, hash). ``conflict`` says what to do
        when ``name`` exists: keep both ("rename" gives "name (1).ext"), "replace", or "fail"
        (:class:`~kite_desktop.core.errors.NameConflictError`).

        ``resume`` makes the upload survive a restart: the backend saves what it needs to go on (a session,
        a reserved id, the name it chose) before it sends bytes that could complete the upload, and given
        that data again it goes on from the server's offset, or recognises an upload that had completed,
        instead of making a second copy.
        """

    @abstractmethod
    async def download_file(
        self,
        object_key: str,
        destination: Path,
        progress: ProgressCallback | None = None,
        resume: ResumeState | None = None,
    ) -> ObjectInfo:
        """Stream the object to ``destination`` through a temp file, checked before the atomic rename.

        With ``resume`` a download that was paused or interrupted (a restart) goes on from its temp file where
        the store supports ranges, when the document has not changed since; otherwise it starts again."""

    async def iter_objects(self, page_size: int = 200) -> AsyncIterator[ObjectInfo]:
        """Every stored document, page after page."""
        token: str | None = None
        while True:
            page = await self.list_objects(token, page_size)
            for item in page.items:
                yield item
            token = page.next_page_token
            if not token:
                return

    async def abandon_upload(self, resume: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Let go of an interrupted upload that was cancelled (delete its session where the store keeps one)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release network clients and threads."""
