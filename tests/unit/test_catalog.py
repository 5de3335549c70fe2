"""The SQLite catalog: versioned, WAL, reconciled against listings, and rebuilt when damaged."""

from __future__ import annotations

import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kite_desktop.core.catalog import SCHEMA_VERSION, Catalog
from kite_desktop.core.errors import CatalogError
from kite_desktop.core.models import ConnectionStatus, ObjectInfo

from .support import async_test, open_service, write_file

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def info(key: str, size: int = 10, *, modified: datetime = T0, hash: str | None = None) -> ObjectInfo:
    return ObjectInfo(key=key, name=key, size=size, content_type="text/plain", modified=modified, hash=hash)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "profile" / "catalog.sqlite3"


@pytest.fixture
def catalog(path: Path) -> Iterator[Catalog]:
    catalog = Catalog(path)
    yield catalog
    catalog.close()


def user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


def fill_and_close(path: Path, count: int = 300) -> None:
    catalog = Catalog(path)
    catalog.reconcile("c1", [info(f"doc-{n:03}.txt", n) for n in range(count)])
    catalog.close()


def corrupt_whole_file(path: Path) -> None:
    path.write_bytes(b"\x00garbage, not a database\xff" * 2000)


def corrupt_pages_keep_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for index in range(2 * 4096, len(data), 7):
        data[index] = (data[index] * 31 + 7) % 256
    path.write_bytes(bytes(data))


# -- schema and journal ------------------------------------------------------------------------------------------------
def test_a_new_catalog_is_created_at_the_current_schema_version(catalog: Catalog, path: Path) -> None:
    assert path.exists()
    assert user_version(path) == SCHEMA_VERSION >= 1
    assert catalog.integrity_ok()


def test_the_catalog_uses_the_wal_journal(catalog: Catalog, path: Path) -> None:
    catalog.upsert("c1", info("a.txt"))
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


def test_the_catalog_file_is_private_to_the_user(catalog: Catalog, path: Path) -> None:
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_reopening_keeps_documents_and_runs_no_migration_twice(path: Path) -> None:
    first = Catalog(path)
    stored = first.upsert("c1", info("a.txt"))
    first.close()

    second = Catalog(path)
    try:
        assert second.recovered_from is None
        assert user_version(path) == SCHEMA_VERSION
        assert second.documents("c1") == [stored]
    finally:
        second.close()


def test_a_catalog_from_a_newer_kite_is_refused_and_left_alone(path: Path) -> None:
    fill_and_close(path, count=3)
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()

    with pytest.raises(CatalogError, match="newer Kite") as raised:
        Catalog(path)

    assert "--profile" in raised.value.hint
    assert sorted(p.name for p in path.parent.iterdir() if "corrupt" in p.name) == []
    assert user_version(path) == SCHEMA_VERSION + 1  # the newer Kite's catalog is intact


# -- damage ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", [corrupt_whole_file, corrupt_pages_keep_header])
def test_a_damaged_catalog_is_moved_aside_and_a_fresh_one_works(path: Path, damage: Callable[[Path], None]) -> None:
    fill_and_close(path)
    damage(path)
    damaged_bytes = path.read_bytes()

    catalog = Catalog(path)
    try:
        aside = list(path.parent.glob("catalog.sqlite3.corrupt-*"))
        assert catalog.recovered_from is not None
        assert [p.name for p in aside] == [catalog.recovered_from.name]
        assert aside[0].read_bytes() == damaged_bytes  # kept for whoever wants to look at it
        assert catalog.documents("c1") == []
        catalog.upsert("c1", info("new.txt"))
        assert [d.name for d in catalog.documents("c1")] == ["new.txt"]
        assert catalog.integrity_ok()
    finally:
        catalog.close()


@async_test
async def test_the_service_reports_a_damaged_catalog_and_rebuilds_it_from_the_folder(
    profile_dir: Path, local_folder: Path, tmp_path: Path
) -> None:
    async with open_service(profile_dir) as service:
        connection = service.connections()[0].id
        batch = await service.upload(
            connection, [str(write_file(tmp_path / "in" / n, n)) for n in ("a.txt", "b.pdf", "c.md")]
        )
        await service.transfers.wait_idle()
        assert {t.state.value for t in batch.transfers} == {"done"}
    corrupt_whole_file(profile_dir / "catalog.sqlite3")

    async with open_service(profile_dir) as service:
        assert any("catalog was damaged" in notice for notice in service.notices)
        assert await service.cached_documents(connection) == []
        documents = await service.refresh(connection)

        assert sorted(d.name for d in documents) == ["a.txt", "b.pdf", "c.md"]
        assert sorted(d.name for d in await service.cached_documents(connection)) == ["a.txt", "b.pdf", "c.md"]
    assert list(profile_dir.glob("catalog.sqlite3.corrupt-*"))


# -- reconcile ---------------------------------------------------------------------------------------------------------
def test_reconcile_adds_updates_and_removes(catalog: Catalog) -> None:
    catalog.reconcile("c1", [info("keep.txt", 1), info("change.txt", 2), info("gone.txt", 3)])
    ids = {d.name: d.id for d in catalog.documents("c1")}

    documents = catalog.reconcile(
        "c1", [info("keep.txt", 1), info("change.txt", 20, modified=T0 + timedelta(hours=1)), info("new.txt", 4)]
    )

    assert {d.name: d.size for d in documents} == {"change.txt": 20, "keep.txt": 1, "new.txt": 4}
    by_name = {d.name: d for d in documents}
    assert by_name["keep.txt"].id == ids["keep.txt"]  # ids survive a refresh
    assert by_name["change.txt"].id == ids["change.txt"]
    assert by_name["change.txt"].modified == T0 + timedelta(hours=1)
    assert catalog.document(ids["gone.txt"]) is None


def test_reconcile_with_an_empty_listing_empties_only_that_connection(catalog: Catalog) -> None:
    catalog.reconcile("c1", [info("a.txt")])
    catalog.reconcile("c2", [info("b.txt")])

    assert catalog.reconcile("c1", []) == []
    assert [d.name for d in catalog.documents("c2")] == ["b.txt"]


def test_a_known_hash_survives_a_listing_without_hashes_unless_the_file_changed(catalog: Catalog) -> None:
    catalog.upsert("c1", info("same.txt", 5, hash="aaaa"))
    catalog.upsert("c1", info("edited.txt", 5, hash="bbbb"))

    catalog.reconcile("c1", [info("same.txt", 5), info("edited.txt", 6, modified=T0 + timedelta(minutes=1))])

    hashes = {d.name: d.hash for d in catalog.documents("c1")}
    assert hashes == {"same.txt": "aaaa", "edited.txt": None}


def test_documents_are_listed_by_name_ignoring_case(catalog: Catalog) -> None:
    catalog.reconcile("c1", [info("b.txt"), info("C.txt"), info("a.txt")])
    assert [d.name for d in catalog.documents("c1")] == ["a.txt", "b.txt", "C.txt"]


def test_remove_and_forget_connection(catalog: Catalog) -> None:
    first = catalog.upsert("c1", info("a.txt"))
    catalog.upsert("c1", info("b.txt"))
    catalog.upsert("c2", info("c.txt"))
    catalog.set_connection_state("c1", ConnectionStatus.CONNECTED)

    catalog.remove(first.id)
    assert [d.name for d in catalog.documents("c1")] == ["b.txt"]

    catalog.forget_connection("c1")
    assert catalog.documents("c1") == []
    assert catalog.connection_state("c1")[0] is ConnectionStatus.UNKNOWN
    assert [d.name for d in catalog.documents("c2")] == ["c.txt"]


def test_connection_state_is_kept_and_refresh_time_only_moves_when_refreshed(catalog: Catalog, path: Path) -> None:
    assert catalog.connection_state("c1") == (ConnectionStatus.UNKNOWN, "", "", None)

    catalog.set_connection_state("c1", ConnectionStatus.CONNECTED, refreshed=True)
    refreshed = catalog.connection_state("c1")[3]
    catalog.set_connection_state("c1", ConnectionStatus.OFFLINE, "The folder is not there.")
    catalog.close()

    reopened = Catalog(path)
    try:
        status, detail, _, refreshed_again = reopened.connection_state("c1")
    finally:
        reopened.close()
    assert (status, detail) == (ConnectionStatus.OFFLINE, "The folder is not there.")
    assert refreshed is not None and refreshed_again == refreshed


def test_writes_from_many_threads_all_land(catalog: Catalog) -> None:
    def writer(n: int) -> None:
        for i in range(40):
            catalog.upsert("c1", info(f"t{n}/doc{i}.txt"))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(catalog.documents("c1")) == 240
    assert catalog.integrity_ok()


def test_a_document_written_while_a_listing_was_read_survives_the_reconcile(tmp_path):
    from datetime import UTC, datetime

    from kite_desktop.core.catalog import Catalog, now
    from kite_desktop.core.models import ObjectInfo

    catalog = Catalog(tmp_path / "catalog.sqlite3")
    old = ObjectInfo("old.pdf", "old.pdf", 1, modified=datetime(2026, 1, 1, tzinfo=UTC))
    gone = ObjectInfo("gone.pdf", "gone.pdf", 1, modified=datetime(2026, 1, 1, tzinfo=UTC))
    catalog.reconcile("c", [old, gone])
    started = now()  # the refresh starts listing; the listing will have "old.pdf" only
    fresh = ObjectInfo("fresh.pdf", "fresh.pdf", 1)
    catalog.upsert("c", fresh)  # an upload finishes meanwhile
    names = [d.name for d in catalog.reconcile("c", [old], started)]
    catalog.close()
    assert names == ["fresh.pdf", "old.pdf"], "the upload stays; what really went away is dropped"
