"""Icons shipped in ``resources/icons``, found through importlib.resources (also in a frozen build)."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from PySide6.QtGui import QIcon, QPixmap


def icon_path(name: str) -> Path | None:
    """The file of ``<name>.svg`` in the shipped resources, or None when it is missing."""
    try:
        candidate = resources.files("kite_desktop.resources.icons").joinpath(f"{name}.svg")
    except ModuleNotFoundError:
        return None
    path = Path(str(candidate))
    return path if path.is_file() else None


@functools.cache
def icon(name: str) -> QIcon:
    path = icon_path(name)
    return QIcon(str(path)) if path else QIcon()


def pixmap(name: str, size: int) -> QPixmap:
    return icon(name).pixmap(size, size)
