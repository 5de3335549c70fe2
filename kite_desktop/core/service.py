"""KiteService: what a person can do, shared by the window and the ``kite`` command.

It owns the settings, the catalog and the transfer queue, asks a factory for each connection's backend,
and announces changes through plain events. It never imports Qt.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import mimetypes
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kite_desktop.core.catalog import Catalog
from kite_desktop.core.catalog import now as catalog_now
from kite_desktop.core.errors import (
    CloudConnectionError,
    ConnectionUnavailableError,
    KiteError,
    NotFoundError,
)
from kite_desktop.core.events import Event
from kite_desktop.core.formatting import human_duration
from kite_desktop.core.intake import Intake, Skipped, collect
from kite_desktop.core.models import (
    Connection,
    ConnectionConfig,
    ConnectionStatus,
    Document,
    Provider,
    ResumeState,
    SignIn,
)
from kite_desktop.core.owner_lock import OwnerLock
from kite_desktop.core.profile import Profile, default_local_folder
from kite_desktop.core.queue_store import QueueJournal, QueueStore
from kite_desktop.core.settings import Settings, SettingsStore
from kite_desktop.core.tokens import MemoryTokenStore, TokenStore
from kite_desktop.core.transfers import Transfer, TransferKind, TransferQueue, TransferState
from kite_desktop.storage import files
from kite_desktop.storage.base import ConflictPolicy, StorageBackend
from kite_desktop.storage.throttle import Limits

log = logging.getLogger(__name__)

CredentialsSaver = Callable[[dict[str, Any]], None]
BackendFactory = Callable[[ConnectionConfig, CredentialsSaver], Awaitable[StorageBackend]]
"""Builds a connection's backend; the saver persists credentials the backend renewed."""
_CONFLICT: dict[str, ConflictPolicy] = {"rename": "rename", "replace": "replace", "skip": "fail"}


@dataclass(frozen=True)
class UploadBatch:
    """What an "add these files" produced: the queued transfers and what was skipped, with reasons."""

    transfers: list[Transfer]
    skipped: list[Skipped]
    intake: Intake


class KiteService:
    """The application's operations on connections and documents."""

    def __init__(
        self,
        profile: Profile,
        settings_store: SettingsStore,
        settings: Settings,
        catalog: Catalog,
        backend_factory: BackendFactory,
        token_store: TokenStore | None = None,
        journal: QueueJournal | None = None,
    ):
        self.profile = profile
        self.settings_store = settings_store
        self.settings = settings
        self.catalog = catalog
        self._backend_factory = backend_factory
        self.token_store: TokenStore = token_store or MemoryTokenStore()
        self._backends: dict[str, StorageBackend] = {}
        self._backend_locks: dict[str, asyncio.Lock] = {}
        self._saves: set[asyncio.Task[None]] = set()
        self.journal = journal
        self.limits = Limits()
        self.limits.set(settings.upload_limit_kib, settings.download_limit_kib)
        self.transfers = TransferQueue(self._run_transfer, settings.concurrent_transfers, journal)
        self.transfers.changed.connect(self._on_transfer_changed)
        self.connections_changed: Event[[]] = Event()
        self.documents_changed: Event[[str]] = Event()
        self.notices: list[str] = list(settings.notices)
        if catalog.recovered_from is not None:
            self.notices.append(
                f"The catalog was damaged and has been moved aside ({catalog.recovered_from.name}). "
                "Kite is rebuilding it from your connections."
            )

    @classmethod
    def open(
        cls, profile: Profile, backend_factory: BackendFactory, token_store: TokenStore | None = None
    ) -> KiteService:
        """Load (or create) everything in ``profile``. Blocking: call it from a thread in the GUI."""
        profile.ensure()
        store = SettingsStore(profile.settings_path)
        settings = store.load()
        catalog = Catalog(profile.catalog_path)
        journal = QueueJournal(QueueStore(profile.queue_path, OwnerLock(profile.owners_dir)))
        service = cls(profile, store, settings, catalog, backend_factory, token_store, journal)
        service._create_default_folders()
        return service

    def _create_default_folders(self) -> None:
        default = default_local_folder()
        for config in self.settings.connections:
            if config.provider is Provider.LOCAL and Path(config.options.get("folder", "")) == default:
                default.mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        await self.transfers.shutdown()
        if self._saves:
            await asyncio.gather(*self._saves, return_exceptions=True)
        for backend in self._backends.values():
            await backend.aclose()
        await asyncio.to_thread(self.catalog.close)
        if self.journal is not None:
            await self.journal.close(forget_finished=True)
            self.journal.store.owner.release()

    # -- connections -----------------------------------------------------------------------------
    def connection(self, connection_id: str) -> Connection:
        config = self.settings.connection(connection_id)
        if config is None:
            raise NotFoundError(f"No connection with id {connection_id}.")
        status, detail, account, refreshed = self.catalog.connection_state(connection_id)
        return Connection(config, status, detail, account, refreshed)

    def connections(self) -> list[Connection]:
        return [self.connection(c.id) for c in self.settings.connections]

    def find_connection(self, reference: str) -> ConnectionConfig:
        """A connection by id, or by name ignoring case."""
        for config in self.settings.connections:
            if config.id == reference:
                return config
        matches = [c for c in self.settings.connections if c.name.casefold() == reference.casefold()]
        if len(matches) == 1:
            return matches[0]
        names = ", ".join(c.name for c in self.settings.connections) or "none"
        if matches:
            raise NotFoundError(f"More than one connection is named {reference!r}; use its id.")
        raise NotFoundError(f"No connection named {reference!r}.", hint=f"Connections: {names}.")

    async def backend(self, connection_id: str) -> StorageBackend:
        """The connection's backend, built once (loading its credentials on first use)."""
        backend = self._backends.get(connection_id)
        if backend is not None:
            return backend
        async with self._backend_locks.setdefault(connection_id, asyncio.Lock()):
            if connection_id not in self._backends:
                config = self.settings.connection(connection_id)
                if config is None:
                    raise NotFoundError(f"No connection with id {connection_id}.")

                def save(credentials: dict[str, Any], connection_id: str = connection_id) -> None:
                    self._persist_credentials(connection_id, credentials)

                backend = await self._backend_factory(config, save)
                backend.limits = self.limits
                pacer = getattr(backend, "pacer", None)
                if pacer is not None:
                    pacer.on_hold = functools.partial(self._paced, config)
                self._backends[connection_id] = backend
        return self._backends[connection_id]

    def _paced(self, config: ConnectionConfig, seconds: float) -> None:
        """The account was asked to slow down: its running transfers say so, and for how long."""
        note = f"{config.provider.label} asked Kite to slow down; going on in {human_duration(seconds)}."
        self.transfers.note(config.id, note, seconds)

    def _persist_credentials(self, connection_id: str, credentials: dict[str, Any]) -> None:
        """Save renewed credentials at once (providers may rotate refresh tokens on every use)."""
        task = asyncio.get_running_loop().create_task(self.token_store.save(connection_id, credentials))
        self._saves.add(task)
        task.add_done_callback(self._saves.discard)

    async def add_cloud_connection(
        self, provider: Provider, name: str, credentials: dict[str, Any], account: str = ""
    ) -> ConnectionConfig:
        """Remember a signed-in cloud account: its config in settings, its credentials in the token store."""
        config = ConnectionConfig(f"{provider.value}-{uuid.uuid4().hex[:8]}", name, provider, {"account": account})
        await self.token_store.save(config.id, credentials)
        self.settings.connections.append(config)
        await asyncio.to_thread(self.settings_store.save, self.settings)
        await asyncio.to_thread(self.catalog.set_account, config.id, account)
        self.connections_changed.emit()
        return config

    async def set_local_folder(self, connection_id: str, folder: Path) -> None:
        config = self.settings.connection(connection_id)
        if config is None or config.provider is not Provider.LOCAL:
            raise NotFoundError("Only a local-folder connection has a folder.")
        folder = Path(folder).expanduser().absolute()
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        self.settings.replace_connection(replace(config, options={**config.options, "folder": str(folder)}))
        await asyncio.to_thread(self.settings_store.save, self.settings)
        self._backends.pop(connection_id, None)
        self.connections_changed.emit()
        await self.refresh(connection_id)

    async def add_local_connection(self, name: str, folder: Path) -> ConnectionConfig:
        folder = Path(folder).expanduser().absolute()
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        config = ConnectionConfig(f"local-{uuid.uuid4().hex[:8]}", name, Provider.LOCAL, {"folder": str(folder)})
        self.settings.connections.append(config)
        await asyncio.to_thread(self.settings_store.save, self.settings)
        self.connections_changed.emit()
        return config

    async def connect_account(self, signed_in: SignIn) -> ConnectionConfig:
        """A new connection for a signed-in account; the same account again updates its connection."""
        for config in self.settings.connections:
            same = config.options.get("account", "").casefold() == signed_in.account.casefold()
            if config.provider is signed_in.provider and signed_in.account and same:
                await self.update_credentials(config.id, signed_in.credentials)
                return config
        name = signed_in.account or signed_in.provider.label
        return await self.add_cloud_connection(signed_in.provider, name, signed_in.credentials, signed_in.account)

    async def reconnect(self, connection_id: str, signed_in: SignIn) -> ConnectionConfig:
        """New sign-in for a connection that needs it; another account than the connection's is refused."""
        config = self.settings.connection(connection_id)
        if config is None:
            raise NotFoundError(f"No connection with id {connection_id}.")
        expected = str(config.options.get("account", ""))
        if expected and signed_in.account.casefold() != expected.casefold():
            raise KiteError(
                f"You signed in as {signed_in.account}, but this connection belongs to {expected}.",
                title="Different account",
                hint=f"Sign in as {expected}, or add {signed_in.account} as a new connection.",
            )
        await self.update_credentials(connection_id, signed_in.credentials)
        return config

    async def remove_connection(self, connection_id: str) -> None:
        """Forget a connection: its sign-in and its catalog rows. The documents in the storage stay."""
        for transfer in self.transfers.items:
            if transfer.connection_id == connection_id:
                self.transfers.cancel(transfer.id)
        backend = self._backends.pop(connection_id, None)
        if backend is not None:
            await backend.aclose()
        await self.token_store.delete(connection_id)
        self.settings.connections = [c for c in self.settings.connections if c.id != connection_id]
        if self.settings.selected_connection == connection_id:
            self.settings.selected_connection = self.settings.connections[0].id if self.settings.connections else None
        await asyncio.to_thread(self.settings_store.save, self.settings)
        await asyncio.to_thread(self.catalog.forget_connection, connection_id)
        self.connections_changed.emit()

    async def update_credentials(self, connection_id: str, credentials: dict[str, Any]) -> None:
        """New sign-in for an existing connection (after a reconnect): held transfers go on."""
        await self.token_store.save(connection_id, credentials)
        backend = self._backends.pop(connection_id, None)
        if backend is not None:
            await backend.aclose()
        await self._set_status(connection_id, ConnectionStatus.CONNECTED)
        self.transfers.release(connection_id)

    async def save_settings(self) -> None:
        """Write the settings and apply what changed to the running queue (concurrency, limits)."""
        self.transfers.max_concurrent = self.settings.concurrent_transfers
        self.limits.set(self.settings.upload_limit_kib, self.settings.download_limit_kib)
        await asyncio.to_thread(self.settings_store.save, self.settings)
        self.transfers.resume_scheduling()

    async def select_connection(self, connection_id: str) -> None:
        self.settings.selected_connection = connection_id
        await asyncio.to_thread(self.settings_store.save, self.settings)

    async def _set_status(
        self, connection_id: str, status: ConnectionStatus, detail: str = "", refreshed: bool = False
    ) -> None:
        await asyncio.to_thread(self.catalog.set_connection_state, connection_id, status, detail, refreshed=refreshed)
        self.connections_changed.emit()

    async def _guard(self, connection_id: str, exc: KiteError) -> None:
        """Record what an error means for the connection's status."""
        if isinstance(exc, CloudConnectionError):
            await self._set_status(connection_id, ConnectionStatus.REQUIRES_REAUTH, exc.message)
        elif isinstance(exc, ConnectionUnavailableError):
            await self._set_status(connection_id, ConnectionStatus.OFFLINE, exc.describe())

    # -- documents ---------------------------------------------------------------------------------
    async def cached_documents(self, connection_id: str) -> list[Document]:
        return await asyncio.to_thread(self.catalog.documents, connection_id)

    async def refresh(self, connection_id: str) -> list[Document]:
        """List everything the connection holds and make the catalog match it."""
        started = catalog_now()
        try:
            backend = await self.backend(connection_id)
            listing = [item async for item in backend.iter_objects()]
        except KiteError as exc:
            await self._guard(connection_id, exc)
            if not isinstance(exc, CloudConnectionError | ConnectionUnavailableError):
                await self._set_status(connection_id, ConnectionStatus.ERROR, exc.describe())
            raise
        documents = await asyncio.to_thread(self.catalog.reconcile, connection_id, listing, started)
        await self._set_status(connection_id, ConnectionStatus.CONNECTED, refreshed=True)
        self.transfers.release(connection_id)
        self.documents_changed.emit(connection_id)
        return documents

    async def find_document(self, connection_id: str, reference: str) -> Document:
        """A document by catalog id, remote key or name; refreshes once if it is not in the catalog."""
        for attempt in range(2):
            documents = await self.cached_documents(connection_id)
            for match in (
                [d for d in documents if d.id == reference],
                [d for d in documents if d.remote_key == reference],
                [d for d in documents if d.name == reference],
            ):
                if len(match) == 1:
                    return match[0]
                if len(match) > 1:
                    raise NotFoundError(f"More than one document is named {reference!r}; use its id.")
            if attempt == 0:
                await self.refresh(connection_id)
        raise NotFoundError(
            f"No document {reference!r} in this connection.",
            hint="List the documents with 'kite ls CONNECTION'.",
        )

    async def delete(self, document: Document) -> None:
        try:
            backend = await self.backend(document.connection_id)
            await backend.delete_object(document.remote_key)
        except KiteError as exc:
            await self._guard(document.connection_id, exc)
            raise
        await asyncio.to_thread(self.catalog.remove, document.id)
        self.documents_changed.emit(document.connection_id)

    # -- transfers ---------------------------------------------------------------------------------
    async def upload(self, connection_id: str, sources: Iterable[str], *, adopt: bool = False) -> UploadBatch:
        """Queue everything in ``sources`` (paths or file URLs) for upload to the connection.

        ``adopt``: take over unfinished uploads of the same files from an earlier run that is gone (the
        ``kite upload`` command, run again after an interruption, goes on where it stopped)."""
        await self.backend(connection_id)  # fail early for an unknown connection
        intake = await asyncio.to_thread(collect, list(sources))
        adopted: list[Transfer] = []
        busy: set[tuple[str, str]] = set()
        if adopt and self.journal is not None:
            # The same files, left unfinished by an earlier run that is gone: go on with those rows.
            wanted = {(str(item.path), item.name) for item in intake.items}

            def same_files(row: dict[str, Any]) -> bool:
                return (
                    row["kind"] == "upload"
                    and row["connection_id"] == connection_id
                    and (row["source"], row["name"]) in wanted
                )

            adopted = await self.transfers.adopt(same_files, with_done=True)
            # And the ones another running Kite (the window, another kite command) is uploading right now.
            others = await self.journal.run(self.journal.store.busy_elsewhere, same_files)
            busy = {(str(r["source"]), str(r["name"])) for r in others}
            for source, _name in sorted(busy):
                intake.skipped.append(
                    Skipped(source, "Another Kite (the window or another kite command) is uploading it right now.")
                )
        for transfer in adopted:  # asked for again: a failed or paused one gets another go
            if transfer.state in (TransferState.FAILED, TransferState.CANCELLED):
                self.transfers.retry(transfer.id)
            elif transfer.state is TransferState.PAUSED:
                self.transfers.resume_items([transfer.id])
        resumed = {(str(t.source), t.name) for t in adopted}
        transfers = adopted + [
            Transfer(
                TransferKind.UPLOAD,
                connection_id,
                item.name,
                item.size,
                source=item.path,
                message=" ".join(item.notes),
            )
            for item in intake.items
            if (str(item.path), item.name) not in resumed | busy
        ]
        # Skipped items are shown in the transfers panel too, each with its reason.
        skipped = [
            Transfer(
                TransferKind.UPLOAD,
                connection_id,
                Path(s.source).name if "://" not in s.source else s.source,
                0,
                source=None if "://" in s.source or s.source.startswith("data:") else Path(s.source),
                state=TransferState.SKIPPED,
                message=s.reason,
            )
            for s in intake.skipped
        ]
        await self.transfers.add([t for t in transfers + skipped if t not in adopted])
        return UploadBatch(transfers, intake.skipped, intake)

    async def download(self, document: Document, destination: Path) -> Transfer:
        transfer = Transfer(
            TransferKind.DOWNLOAD,
            document.connection_id,
            document.name,
            document.size,
            destination=Path(destination),
            document=document,
        )
        await self.transfers.add([transfer])
        return transfer

    async def restore_transfers(self) -> list[Transfer]:
        """Take up what an earlier run left in the queue (the window does this once it has started)."""
        return await self.transfers.restore()

    def _on_transfer_changed(self, transfer: Transfer) -> None:
        # A cancelled upload's session is let go of (a paused one is kept, to go on from where it was). Its plan
        # stays with the row: the cancel may have come after the store had the file, and a Retry must find it.
        if transfer.state is TransferState.CANCELLED and transfer.resume:
            data = transfer.resume
            saving = asyncio.get_running_loop().create_task(self._abandon(transfer, data))
            self._saves.add(saving)
            saving.add_done_callback(self._saves.discard)

    async def _abandon(self, transfer: Transfer, data: dict[str, Any]) -> None:
        if transfer.kind is TransferKind.DOWNLOAD and transfer.destination is not None:
            # A cancelled download's partial file goes (a paused one is kept to go on with).
            temp = files.reusable_temp(data.get("temp"), transfer.destination, transfer.size)
            if temp is not None:
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(temp.unlink)
            await self.transfers.save_resume(transfer, None)
            return
        backend = self._backends.get(transfer.connection_id)
        if backend is not None:
            with contextlib.suppress(Exception):
                await backend.abandon_upload(data)

    def open_cache_path(self, document: Document) -> Path:
        """Where "Open" puts a copy of the document before handing it to the system's application."""
        base = document.name.rsplit("/", 1)[-1]
        return self.profile.open_cache_dir / document.id / base

    async def _run_transfer(self, transfer: Transfer, progress: Callable[[int], None]) -> Document | None:
        try:
            backend = await self.backend(transfer.connection_id)
            resume = ResumeState(transfer.resume, functools.partial(self.transfers.save_resume, transfer))
            if transfer.kind is TransferKind.UPLOAD:
                assert transfer.source is not None
                content_type = mimetypes.guess_type(transfer.name, strict=False)[0] or "application/octet-stream"
                info = await backend.upload_file(
                    transfer.source,
                    transfer.name,
                    content_type,
                    progress,
                    conflict=_CONFLICT.get(self.settings.conflict_policy, "rename"),
                    resume=resume,
                )
                if info.name != transfer.name:
                    transfer.message = f"Stored as {info.name}. {transfer.message}".strip()
                document = await asyncio.to_thread(self.catalog.upsert, transfer.connection_id, info)
                self.documents_changed.emit(transfer.connection_id)
                return document
            assert transfer.document is not None and transfer.destination is not None
            await asyncio.to_thread(transfer.destination.parent.mkdir, parents=True, exist_ok=True)
            # A download that was killed mid-way left its hidden temp file there: tidy up before starting again
            # (except the one this download goes on with).
            keep = (transfer.resume or {}).get("temp")
            await asyncio.to_thread(
                files.remove_stale_temps, transfer.destination.parent, Path(keep) if isinstance(keep, str) else None
            )
            await backend.download_file(
                transfer.document.remote_key,
                transfer.destination,
                progress,
                resume=resume,
            )
            return transfer.document
        except KiteError as exc:
            await self._guard(transfer.connection_id, exc)
            raise
