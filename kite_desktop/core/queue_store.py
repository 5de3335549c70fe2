"""The transfer queue on disk: one SQLite file, every change committed with ``synchronous=FULL``.

A dropped file is written here before the window says "queued"; each state change and each resumable
session is written as it happens, so a crash, a kill or a power cut loses no queued work. Rows carry the
owning process (see :mod:`owner_lock`): the window and the ``kite`` command each run only their own rows,
and take over rows whose owner is gone. The ``resume`` column holds session URLs, which are capabilities:
it is never logged and is cleared when the row is done.

Methods are synchronous and thread-safe; :class:`QueueJournal` runs them, in order, on one worker thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from kite_desktop.core import db as db_tools
from kite_desktop.core.db import immediate
from kite_desktop.core.owner_lock import OwnerLock

log = logging.getLogger(__name__)
T = TypeVar("T")

MIGRATIONS = [
    """
    CREATE TABLE transfers (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        connection_id TEXT NOT NULL,
        name TEXT NOT NULL,
        size INTEGER NOT NULL,
        source TEXT,
        destination TEXT,
        document TEXT,
        state TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        attempts INTEGER NOT NULL DEFAULT 0,
        user_paused INTEGER NOT NULL DEFAULT 0,
        resume TEXT,
        result_key TEXT,
        owner TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX transfers_by_state ON transfers (state);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
]
COLUMNS = (
    "kind",
    "connection_id",
    "name",
    "size",
    "source",
    "destination",
    "document",
    "state",
    "message",
    "attempts",
    "user_paused",
    "resume",
    "result_key",
)
FINISHED = ("done", "cancelled", "skipped")
HISTORY_DAYS = 7
"""How long what a killed run had finished is remembered (for ``kite upload`` run again)."""
"""Rows in these states are history: they are not restored after a restart."""


class QueueStore:
    """The queue's rows, in ``transfers.sqlite3``."""

    def __init__(self, path: Path, owner: OwnerLock):
        self.path = path
        self.owner = owner
        self.recovered_from: Path | None = None
        self._lock = threading.Lock()
        self._db = self._open_checked()

    def _open_checked(self) -> sqlite3.Connection:
        try:
            db = self._open()
            db_tools.quick_check(db)
            return db
        except sqlite3.DatabaseError as exc:
            aside = db_tools.move_aside(self.path, "damaged")
            log.warning("transfer queue unreadable (%s); moved to %s", exc, aside.name)
            self.recovered_from = aside
            return self._open()

    def _open(self) -> sqlite3.Connection:
        # Paths and, while a row runs, session URLs: private, and overwritten once cleared.
        db = db_tools.connect(self.path, synchronous="FULL", secure_delete=True)
        db_tools.migrate(db, MIGRATIONS)
        return db

    # -- writing -------------------------------------------------------------------------------------------
    def insert(self, rows: list[dict[str, Any]]) -> list[int]:
        """Add rows owned by this process, in one transaction; returns their ids in order."""
        stamp = db_tools.now()
        ids: list[int] = []
        with self._lock, self._transaction() as db:
            for row in rows:
                values = [_encode(column, row.get(column)) for column in COLUMNS]
                cursor = db.execute(
                    f"INSERT INTO transfers ({', '.join(COLUMNS)}, owner, created_at, updated_at)"
                    f" VALUES ({', '.join('?' * len(COLUMNS))}, ?, ?, ?)",
                    (*values, self.owner.token, stamp, stamp),
                )
                ids.append(int(cursor.lastrowid or 0))
        return ids

    def update(self, transfer_id: int, **fields: Any) -> bool:
        """Change one row; a row that is done never changes again. False when nothing was changed."""
        unknown = set(fields) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown columns {unknown}")
        assignments = ", ".join(f"{column} = ?" for column in fields)
        values = [_encode(column, value) for column, value in fields.items()]
        with self._lock, self._transaction() as db:
            cursor = db.execute(
                f"UPDATE transfers SET {assignments}, updated_at = ? WHERE id = ? AND state != 'done'",
                (*values, db_tools.now(), transfer_id),
            )
        return cursor.rowcount > 0

    def delete(self, ids: Iterable[int]) -> None:
        with self._lock, self._transaction() as db:
            db.executemany("DELETE FROM transfers WHERE id = ?", [(i,) for i in ids])

    def set_meta(self, key: str, value: str) -> None:
        with self._lock, self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def meta(self, key: str, default: str = "") -> str:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else default

    # -- reading -------------------------------------------------------------------------------------------
    def claim(
        self, which: Callable[[dict[str, Any]], bool] | None = None, *, with_done: bool = False
    ) -> list[dict[str, Any]]:
        """Take over the unfinished rows whose owner is gone (and that ``which`` accepts); return them.

        A process that ends normally deletes its finished rows (:meth:`forget_finished`), so finished rows of
        an owner that is gone are what a run that was killed had finished. They stay (unowned by anyone alive)
        for ``HISTORY_DAYS``, so that ``kite upload`` run again later, whatever ran in between, still knows what
        it need not upload again; ``with_done`` takes over the done rows that ``which`` accepts.
        """
        cutoff = (datetime.now(UTC) - timedelta(days=HISTORY_DAYS)).isoformat()
        with self._lock, self._transaction() as db:
            rows = [_decode(r) for r in db.execute("SELECT * FROM transfers ORDER BY id").fetchall()]
            owners = {r["owner"] for r in rows}
            gone = {o for o in owners if not self.owner.alive(o)}

            def wanted(row: dict[str, Any]) -> bool:
                if row["owner"] not in gone or (which is not None and not which(row)):
                    return False
                return row["state"] not in FINISHED or (with_done and row["state"] == "done")

            mine = [r for r in rows if wanted(r)]
            db.executemany(
                "DELETE FROM transfers WHERE id = ?",
                [
                    (r["id"],)
                    for r in rows
                    if r["owner"] in gone and r["state"] in FINISHED and r["updated_at"] < cutoff and not wanted(r)
                ],
            )
            db.executemany(
                "UPDATE transfers SET owner = ? WHERE id = ? AND owner IS ?",
                [(self.owner.token, r["id"], r["owner"]) for r in mine],
            )
        for row in mine:
            row["owner"] = self.owner.token
        return mine

    def busy_elsewhere(self, which: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Unfinished rows that another running Kite process owns (and that ``which`` accepts)."""
        with self._lock:
            rows = [_decode(r) for r in self._db.execute("SELECT * FROM transfers ORDER BY id").fetchall()]
        return [
            r
            for r in rows
            if r["state"] not in FINISHED
            and r["owner"] != self.owner.token
            and self.owner.alive(r["owner"])
            and which(r)
        ]

    def forget_finished(self) -> None:
        """Drop this process's done, cancelled and skipped rows (at a normal end: they are history)."""
        with self._lock, self._transaction() as db:
            db.execute(
                f"DELETE FROM transfers WHERE owner = ? AND state IN ({', '.join('?' * len(FINISHED))})",
                (self.owner.token, *FINISHED),
            )

    def rows(self) -> list[dict[str, Any]]:
        """Every row (for tests and diagnostics; the resume column included)."""
        with self._lock:
            return [_decode(r) for r in self._db.execute("SELECT * FROM transfers ORDER BY id").fetchall()]

    def integrity_check(self) -> str:
        with self._lock:
            return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return immediate(self._db)


def _encode(column: str, value: Any) -> Any:
    if column in ("document", "resume"):
        return None if value is None else json.dumps(value)
    if column == "user_paused":
        return int(bool(value))
    if column in ("source", "destination") and value is not None:
        return str(value)
    return value


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    for column in ("document", "resume"):
        if data[column] is not None:
            data[column] = json.loads(data[column])
    data["user_paused"] = bool(data["user_paused"])
    return data


class QueueJournal:
    """Runs a :class:`QueueStore`'s writes on one worker thread, in the order they were asked for."""

    def __init__(self, store: QueueStore):
        self.store = store
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kite-queue")
        self._pending: set[concurrent.futures.Future[Any]] = set()
        self._closed = False

    async def run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Do ``call`` after every earlier write, and wait until it is committed."""
        future = self.submit(call, *args, **kwargs)
        return await asyncio.wrap_future(future)

    def submit(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        """Do ``call`` after every earlier write, without waiting."""
        future = self._executor.submit(call, *args, **kwargs)
        self._pending.add(future)
        future.add_done_callback(self._finished)
        return future

    def _finished(self, future: concurrent.futures.Future[Any]) -> None:
        self._pending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.error("the transfer queue could not be written: %s", future.exception())

    async def close(self, *, forget_finished: bool = False) -> None:
        """Finish every write, then close the file (a second call does nothing). ``forget_finished`` drops this
        process's finished rows first: a normal end, after which they are history."""
        if self._closed:
            return
        self._closed = True
        if forget_finished:
            await asyncio.wrap_future(self._executor.submit(self.store.forget_finished))
        await asyncio.wrap_future(self._executor.submit(self.store.close))
        self._executor.shutdown(wait=True)
