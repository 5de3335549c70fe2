"""Composition root: the one module that sees every layer.

``build_service`` wires settings, catalog, backends and the transfer queue (Qt-free, shared with the CLI);
``main`` starts the window. Qt is imported only inside ``main`` so the CLI never loads it.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from kite_desktop.auth.keyring_store import KeyringTokenStore
from kite_desktop.core.errors import CloudConnectionError, KiteError
from kite_desktop.core.models import ConnectionConfig, Provider
from kite_desktop.core.profile import Profile
from kite_desktop.core.service import BackendFactory, CredentialsSaver, KiteService
from kite_desktop.core.tokens import TokenStore
from kite_desktop.storage.base import StorageBackend
from kite_desktop.storage.local_backend import LocalFolderBackend


def backend_factory(tokens: TokenStore) -> BackendFactory:
    """Builds each connection's backend; cloud backends get the credentials kept in ``tokens``."""

    async def make(config: ConnectionConfig, save: CredentialsSaver) -> StorageBackend:
        if config.provider is Provider.LOCAL:
            return LocalFolderBackend(Path(config.options["folder"]))
        credentials = await tokens.load(config.id)
        if not credentials:
            raise CloudConnectionError(
                f"Kite has no sign-in for {config.name} on this computer.", hint="Reconnect the account."
            )
        if config.provider in (Provider.GOOGLE_DRIVE, Provider.ONEDRIVE):
            # In a worker thread: the first use imports the provider's libraries and sets up TLS, which takes
            # a noticeable fraction of a second that the window would otherwise freeze for.
            return await asyncio.to_thread(_cloud_backend, config.provider, credentials, save)
        raise KiteError(
            f"{config.provider.label} connections are not available in this version of Kite.",
            title="Not available yet",
        )

    return make


def _cloud_backend(provider: Provider, credentials: dict[str, Any], save: CredentialsSaver) -> StorageBackend:
    if provider is Provider.GOOGLE_DRIVE:
        from kite_desktop.storage.google_drive_backend import GoogleDriveBackend

        drive = GoogleDriveBackend(credentials, on_credentials_changed=save)
        drive.service  # noqa: B018 - builds the API client from the shipped discovery document, here
        return drive
    from kite_desktop.storage.onedrive_backend import OneDriveBackend

    onedrive = OneDriveBackend(credentials, on_credentials_changed=save)
    onedrive.client  # noqa: B018 - the HTTP client and its TLS context, here
    return onedrive


def build_service(profile_dir: str | os.PathLike[str] | None = None, tokens: TokenStore | None = None) -> KiteService:
    """Everything the app and the CLI need, for one profile. Blocking (file and SQLite I/O)."""
    store = tokens or KeyringTokenStore()
    service = KiteService.open(Profile.resolve(profile_dir), backend_factory(store), store)
    for name, value in {**service.settings.endpoints, **service.settings.app_registrations}.items():
        os.environ.setdefault(name, value)  # the backends and sign-in flows read them from the environment
    return service


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``kite-desktop``."""
    from kite_desktop.ui.launcher import run_gui

    return run_gui(argv)
