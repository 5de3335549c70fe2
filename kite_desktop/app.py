"""Composition root: the one module that sees every layer.

``build_service`` wires settings, catalog, backends and the transfer queue (Qt-free, shared with the CLI);
``main`` starts the window. Qt is imported only inside ``main`` so the CLI never loads it.
"""

from __future__ import annotations

import os
from pathlib import Path

from kite_desktop.core.errors import KiteError
from kite_desktop.core.models import ConnectionConfig, Provider
from kite_desktop.core.profile import Profile
from kite_desktop.core.service import KiteService
from kite_desktop.storage.base import StorageBackend
from kite_desktop.storage.local_backend import LocalFolderBackend


def make_backend(config: ConnectionConfig) -> StorageBackend:
    """The backend for one connection."""
    if config.provider is Provider.LOCAL:
        return LocalFolderBackend(Path(config.options["folder"]))
    raise KiteError(
        f"{config.provider.label} connections are not available in this version of Kite.",
        title="Not available yet",
    )


def build_service(profile_dir: str | os.PathLike[str] | None = None) -> KiteService:
    """Everything the app and the CLI need, for one profile. Blocking (file and SQLite I/O)."""
    return KiteService.open(Profile.resolve(profile_dir), make_backend)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``kite-desktop``."""
    from kite_desktop.ui.launcher import run_gui

    return run_gui(argv)
