"""The SQLite catalog: a cache of each connection's state and documents.

The backend's listing is the truth; the catalog is reconciled on refresh so the window opens at once with
what was there last time. WAL journal, schema versioned through ``PRAGMA user_version`` with migrations
from version 1. Methods are synchronous and thread-safe; async callers run them with ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from kite_desktop.core import db as db_tools
from kite_desktop.core.db import immediate
from kite_desktop.core.errors import CatalogError
from kite_desktop.core.models import ConnectionStatus, Document, ObjectInfo

log = logging.getLogger(__name__)

MIGRATIONS: list[str] = [
    # version 1
    """
    CREATE TABLE connection_state (
        connection_id TEXT PRIMARY KEY,
        status TEXT NOT NULL DEFAULT 'unknown',
        detail TEXT NOT NULL DEFAULT '',
        account TEXT NOT NULL DEFAULT '',
        refreshed_at TEXT
    );
    CREATE TABLE documents (
        id TEXT PRIMARY KEY,
        connection_id TEXT NOT NULL,
        remote_key TEXT NOT NULL,
        name TEXT NOT NULL,
        size INTEGER NOT NULL,
        content_type TEXT NOT NULL,
        hash TEXT,
        modified_at TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'stored',
        downloadable INTEGER NOT NULL DEFAULT 1,
        UNIQUE (connection_id, remote_key)
    );
    CREATE INDEX documents_by_connection ON documents (connection_id, name);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


now = db_tools.now
"""The catalog's timestamp format (UTC, ISO 8601; compares in time order as text)."""


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class Catalog:
    """Connection state and documents, in one SQLite file."""

    def __init__(self, path: Path):
        self.path = path
        self.recovered_from: Path | None = None
        self._lock = threading.RLock()
        self._db = self._open_checked()

    # -- opening, checking, migrating -------------------------------------------------------
    def _open_checked(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = None
        try:
            db = self._open()
            db_tools.quick_check(db)
            self._migrate(db)
            return db
        except sqlite3.DatabaseError as exc:
            if db is not None:
                with contextlib.suppress(Exception):
                    db.close()
            return self._recover(exc)

    def _open(self) -> sqlite3.Connection:
        db = db_tools.connect(self.path, synchronous="NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        return db

    def _recover(self, exc: Exception) -> sqlite3.Connection:
        aside = db_tools.move_aside(self.path, "corrupt")
        log.warning("catalog unusable (%s); moved it to %s and rebuilding", exc, aside.name)
        self.recovered_from = aside
        try:
            db = self._open()
            self._migrate(db)
        except sqlite3.DatabaseError as again:
            raise CatalogError(
                f"The catalog at {self.path} cannot be created: {again}",
                hint="Check that the profile directory is writable and the disk is not full.",
            ) from again
        return db

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        try:
            db_tools.migrate(db, MIGRATIONS)
        except db_tools.NewerSchemaError as newer:
            db.close()
            raise CatalogError(
                f"The catalog was written by a newer Kite (schema {newer.found}, this one knows {newer.known}).",
                hint="Update Kite, or start it with another profile (--profile).",
            ) from None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, immediate(self._db) as db:
            yield db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def integrity_ok(self) -> bool:
        with self._lock:
            return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # -- connection state --------------------------------------------------------------------
    def connection_state(self, connection_id: str) -> tuple[ConnectionStatus, str, str, datetime | None]:
        with self._lock:
            row = self._db.execute(
                "SELECT status, detail, account, refreshed_at FROM connection_state WHERE connection_id=?",
                (connection_id,),
            ).fetchone()
        if row is None:
            return ConnectionStatus.UNKNOWN, "", "", None
        try:
            status = ConnectionStatus(row["status"])
        except ValueError:
            status = ConnectionStatus.UNKNOWN
        return status, row["detail"], row["account"], _parse_time(row["refreshed_at"])

    def set_connection_state(
        self,
        connection_id: str,
        status: ConnectionStatus,
        detail: str = "",
        *,
        refreshed: bool = False,
    ) -> None:
        with self._transaction() as db:
            db.execute(
                """INSERT INTO connection_state (connection_id, status, detail, refreshed_at)
                   VALUES (?, ?, ?, ?)
                   ON CONFLICT (connection_id) DO UPDATE SET status=excluded.status,
                     detail=excluded.detail,
                     refreshed_at=COALESCE(excluded.refreshed_at, connection_state.refreshed_at)""",
                (connection_id, status.value, detail, now() if refreshed else None),
            )

    def set_account(self, connection_id: str, account: str) -> None:
        with self._transaction() as db:
            db.execute(
                """INSERT INTO connection_state (connection_id, account) VALUES (?, ?)
                   ON CONFLICT (connection_id) DO UPDATE SET account=excluded.account""",
                (connection_id, account),
            )

    def forget_connection(self, connection_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM documents WHERE connection_id=?", (connection_id,))
            db.execute("DELETE FROM connection_state WHERE connection_id=?", (connection_id,))

    # -- documents -----------------------------------------------------------------------------
    @staticmethod
    def _document(row: sqlite3.Row) -> Document:
        return Document(
            id=row["id"],
            connection_id=row["connection_id"],
            remote_key=row["remote_key"],
            name=row["name"],
            size=row["size"],
            content_type=row["content_type"],
            modified=_parse_time(row["modified_at"]),
            hash=row["hash"],
            state=row["state"],
            downloadable=bool(row["downloadable"]),
        )

    def documents(self, connection_id: str) -> list[Document]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM documents WHERE connection_id=? ORDER BY name COLLATE NOCASE",
                (connection_id,),
            ).fetchall()
        return [self._document(r) for r in rows]

    def document(self, document_id: str) -> Document | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM documents WHERE id=?", (document_id,)).fetchone()
        return self._document(row) if row else None

    def upsert(self, connection_id: str, info: ObjectInfo) -> Document:
        with self._transaction() as db:
            self._upsert(db, connection_id, info)
            row = db.execute(
                "SELECT * FROM documents WHERE connection_id=? AND remote_key=?", (connection_id, info.key)
            ).fetchone()
        return self._document(row)

    @staticmethod
    def _upsert(db: sqlite3.Connection, connection_id: str, info: ObjectInfo) -> None:
        stamp = now()
        db.execute(
            """INSERT INTO documents (id, connection_id, remote_key, name, size, content_type, hash,
                                      modified_at, created_at, updated_at, state, downloadable)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'stored', ?)
               ON CONFLICT (connection_id, remote_key) DO UPDATE SET
                 name=excluded.name, size=excluded.size, content_type=excluded.content_type,
                 hash=COALESCE(excluded.hash, CASE WHEN documents.size = excluded.size
                               AND documents.modified_at IS excluded.modified_at THEN documents.hash END),
                 modified_at=excluded.modified_at, updated_at=excluded.updated_at,
                 state='stored', downloadable=excluded.downloadable""",
            (
                uuid.uuid4().hex,
                connection_id,
                info.key,
                info.name,
                info.size,
                info.content_type,
                info.hash,
                info.modified.isoformat() if info.modified else None,
                stamp,
                stamp,
                int(info.downloadable),
            ),
        )

    def reconcile(
        self, connection_id: str, listing: Iterable[ObjectInfo], started: str | None = None
    ) -> list[Document]:
        """Make the catalog match a complete listing: add, update, and drop what is gone.

        ``started`` is when the listing began: a row written after that (an upload that finished while the
        listing was being read) is newer than the listing and stays.
        """
        with self._transaction() as db:
            keys: list[str] = []
            for info in listing:
                self._upsert(db, connection_id, info)
                keys.append(info.key)
            db.execute("CREATE TEMP TABLE IF NOT EXISTS seen_keys (key TEXT PRIMARY KEY)")
            db.execute("DELETE FROM seen_keys")
            db.executemany("INSERT OR IGNORE INTO seen_keys VALUES (?)", ((k,) for k in keys))
            db.execute(
                "DELETE FROM documents WHERE connection_id=? AND remote_key NOT IN (SELECT key FROM seen_keys)"
                " AND (? IS NULL OR updated_at < ?)",
                (connection_id, started, started),
            )
            db.execute("DELETE FROM seen_keys")
        return self.documents(connection_id)

    def remove(self, document_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM documents WHERE id=?", (document_id,))
