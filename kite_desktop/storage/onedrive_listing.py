"""Paged, breadth-first listing of the Kite app folder and its subfolders, following ``@odata.nextLink``."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from kite_desktop.core.models import ObjectInfo, ObjectPage

if TYPE_CHECKING:
    from kite_desktop.storage.onedrive_backend import OneDriveBackend

ROOT_CHILDREN = "/me/drive/special/approot/children"


def _encode(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()


def _decode(token: str) -> dict[str, Any]:
    return dict(json.loads(base64.urlsafe_b64decode(token.encode())))


async def list_page(backend: OneDriveBackend, page_token: str | None, page_size: int) -> ObjectPage:
    """One Graph page; the token carries the folders still to read and the ``nextLink`` being followed."""
    from kite_desktop.storage.onedrive_backend import ITEM_FIELDS, info_from_item

    state: dict[str, Any]
    if page_token:
        state = _decode(page_token)
    else:
        state = {"queue": [[ROOT_CHILDREN, ""]], "next": None}
    path, prefix = state["queue"][0]
    if state["next"]:
        # nextLink is an absolute URL to be used as it is.
        response = await backend.graph("GET", state["next"], what="Listing")
    else:
        response = await backend.graph(
            "GET", path, params={"$top": str(page_size), "$select": ITEM_FIELDS}, what="Listing"
        )
    answer = response.json()
    items: list[ObjectInfo] = []
    for item in answer.get("value", []):
        if "folder" in item:
            state["queue"].append([f"/me/drive/items/{item['id']}/children", f"{prefix}{item['name']}/"])
        elif "file" in item or "size" in item:
            items.append(info_from_item(item, prefix))
    state["next"] = answer.get("@odata.nextLink")
    if not state["next"]:
        state["queue"].pop(0)
    return ObjectPage(items, _encode(state) if state["queue"] else None)
