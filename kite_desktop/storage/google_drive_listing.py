"""Folders and listings in Drive: the ``Kite`` folder, its subfolders, name conflicts, and paged walks.

A document named "Taxes/2025/receipt.pdf" is the file ``receipt.pdf`` in ``Kite/Taxes/2025``. Drive allows
two files with one name in a folder; Kite avoids making them (conflict policy) but lists them if they exist.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kite_desktop.core.errors import NameConflictError
from kite_desktop.core.models import ObjectInfo, ObjectPage
from kite_desktop.core.names import numbered
from kite_desktop.storage.google_api import DuplicateIdError

if TYPE_CHECKING:
    from kite_desktop.storage.google_drive_backend import GoogleDriveBackend

FOLDER_MIME = "application/vnd.google-apps.folder"
GOOGLE_APPS_PREFIX = "application/vnd.google-apps."
LIST_FIELDS = "nextPageToken,files(id,name,mimeType,size,md5Checksum,modifiedTime,parents)"


def quote(value: str) -> str:
    """A string literal for a Drive query."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def info_from_file(item: dict[str, Any], prefix: str) -> ObjectInfo:
    mime = str(item.get("mimeType") or "application/octet-stream")
    modified = item.get("modifiedTime")
    return ObjectInfo(
        key=str(item["id"]),
        name=f"{prefix}{item.get('name', '')}",
        size=int(item.get("size") or 0),
        content_type=mime,
        modified=datetime.fromisoformat(str(modified).replace("Z", "+00:00")) if modified else None,
        hash=item.get("md5Checksum"),
        hash_kind="md5" if item.get("md5Checksum") else None,
        downloadable=not mime.startswith(GOOGLE_APPS_PREFIX),
    )


class DriveFolders:
    """Finds or creates the folders documents go in, once each even when uploads run concurrently."""

    def __init__(self, backend: GoogleDriveBackend, root_name: str):
        self._backend = backend
        self._root_name = root_name
        self._ids: dict[tuple[str, ...], str] = {}
        self._locks: dict[tuple[str, ...], asyncio.Lock] = {}
        self.in_flight: set[tuple[str, str]] = set()
        """(folder id, name) of the files this account's uploads are creating now."""

    def forget(self) -> None:
        """Drop the remembered folder ids (a folder was deleted or moved in Drive)."""
        self._ids.clear()

    async def root_id(self) -> str:
        return await self.folder_id([])

    async def folder_id(self, parts: list[str]) -> str:
        key = tuple(parts)
        if key in self._ids:
            return self._ids[key]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._ids:
                parent = "root" if not parts else await self.folder_id(parts[:-1])
                name = parts[-1] if parts else self._root_name
                self._ids[key] = await self._find_or_create(parent, name)
        return self._ids[key]

    async def _find_or_create(self, parent: str, name: str) -> str:
        query = (
            f"name = {quote(name)} and mimeType = '{FOLDER_MIME}' and {quote(parent)} in parents and trashed = false"
        )
        found = await self._backend.call(
            lambda s: s.files().list(q=query, fields="files(id,createdTime)", orderBy="createdTime", pageSize=10),
            what="Folder lookup",
        )
        if found.get("files"):
            return str(found["files"][0]["id"])
        # A reserved id makes the create safe to retry: a lost answer cannot leave two folders of this name.
        folder_id = await self._backend.reserve_id()
        body = {"id": folder_id, "name": name, "mimeType": FOLDER_MIME, "parents": [parent]}
        with contextlib.suppress(DuplicateIdError):  # an earlier attempt whose answer was lost did create it
            await self._backend.call(lambda s: s.files().create(body=body, fields="id"), what="Folder creation")
        return folder_id

    async def existing(self, parent: str, name: str) -> list[str]:
        query = f"name = {quote(name)} and {quote(parent)} in parents and trashed = false"
        found = await self._backend.call(
            lambda s: s.files().list(q=query, fields="files(id,mimeType)", pageSize=10), what="Name check"
        )
        return [str(f["id"]) for f in found.get("files", []) if f.get("mimeType") != FOLDER_MIME]

    async def resolve_conflict(self, parent: str, name: str, policy: str) -> tuple[str, str | None]:
        """The name to create under (kept in :attr:`in_flight` until the upload ends), or the id of the file to
        replace. A name another upload of this account is creating right now counts as taken: Drive shows a
        file only once its last chunk is in, and allows two files of one name."""
        candidate, number = name, 0
        while True:
            taken = await self.existing(parent, candidate)
            busy = (parent, candidate) in self.in_flight
            if not taken and not busy:
                self.in_flight.add((parent, candidate))  # no await since the checks: no other upload can slip in
                return candidate, None
            if number == 0 and policy == "replace" and taken and not busy:
                return candidate, taken[0]
            if number == 0 and policy == "fail":
                raise NameConflictError(
                    f"A document named {name} already exists in Google Drive.",
                    hint="Rename the file, or choose 'replace' for name conflicts.",
                )
            number += 1
            candidate = numbered(name, number)


def _encode(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()


def _decode(token: str) -> dict[str, Any]:
    return dict(json.loads(base64.urlsafe_b64decode(token.encode())))


async def drive_page(backend: GoogleDriveBackend, page_token: str | None, page_size: int) -> ObjectPage:
    """One Drive page of a breadth-first walk of the Kite folder; the token carries the folders still to read."""
    state: dict[str, Any]
    if page_token:
        state = _decode(page_token)
    else:  # start at the Kite folder
        state = {"queue": [[await backend.folders.root_id(), ""]], "token": None}
    folder_id, prefix = state["queue"][0]
    query = f"{quote(folder_id)} in parents and trashed = false"
    answer = await backend.call(
        lambda s: s.files().list(
            q=query, fields=LIST_FIELDS, pageSize=page_size, pageToken=state["token"], spaces="drive", orderBy="name"
        ),
        what="Listing",
    )
    items: list[ObjectInfo] = []
    for item in answer.get("files", []):
        if item.get("mimeType") == FOLDER_MIME:
            state["queue"].append([item["id"], f"{prefix}{item['name']}/"])
        else:
            items.append(info_from_file(item, prefix))
    state["token"] = answer.get("nextPageToken")
    if not state["token"]:
        state["queue"].pop(0)
    return ObjectPage(items, _encode(state) if state["queue"] else None)
