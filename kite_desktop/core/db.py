"""What the SQLite files (catalog, transfer queue) share: opening, checking, setting a damaged one aside,
migrating through ``PRAGMA user_version``, write transactions and timestamps."""

from __future__ import annotations

import contextlib
import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path


class NewerSchemaError(sqlite3.DatabaseError):
    """The file was written by a newer Kite: left alone, never "repaired"."""

    def __init__(self, found: int, known: int):
        super().__init__(f"schema {found}, this Kite knows {known}")
        self.found = found
        self.known = known


def now() -> str:
    """The timestamp format of both files (UTC, ISO 8601; compares in time order as text)."""
    return datetime.now(UTC).isoformat()


def connect(path: Path, *, synchronous: str, secure_delete: bool = False) -> sqlite3.Connection:
    """Open (or create) ``path``: private to the user, WAL, rows as ``sqlite3.Row``, explicit transactions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
    db.row_factory = sqlite3.Row
    with contextlib.suppress(OSError):
        path.chmod(0o600)
    db.execute("PRAGMA busy_timeout = 10000")
    if secure_delete:  # what was cleared (a session URL) is overwritten, not left in a free page
        db.execute("PRAGMA secure_delete = ON")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(f"PRAGMA synchronous = {synchronous}")
    return db


def quick_check(db: sqlite3.Connection) -> None:
    row = db.execute("PRAGMA quick_check").fetchone()
    if row is None or row[0] != "ok":
        first = str(row[0]).splitlines()[0] if row else "no answer"
        raise sqlite3.DatabaseError(f"quick_check: {first}")


def move_aside(path: Path, label: str) -> Path:
    """Move a damaged file (and its -wal and -shm) to ``<name>.<label>-<time>-<random>``; return the new name."""
    aside = path.with_name(f"{path.name}.{label}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}")
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").replace(Path(f"{aside}{suffix}"))
    return aside


def migrate(db: sqlite3.Connection, migrations: list[str]) -> None:
    """Bring the schema to ``len(migrations)``, one transaction per step; a newer file is refused."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > len(migrations):
        raise NewerSchemaError(version, len(migrations))
    for number in range(version, len(migrations)):
        with immediate(db):
            for statement in migrations[number].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {number + 1}")


@contextlib.contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction, taken at once (``BEGIN IMMEDIATE``: another process waits, no upgrade deadlock)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
