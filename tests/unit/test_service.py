"""KiteService end to end on a real profile, a real catalog and a real Local folder."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from kite_desktop.core.errors import ConnectionUnavailableError, NotFoundError
from kite_desktop.core.models import ConnectionStatus
from kite_desktop.core.service import KiteService
from kite_desktop.core.transfers import Transfer, TransferState

from .support import MiB, all_files, async_test, open_service, pattern_file, sparse_file, write_file

GUARD = 60  # seconds: a safety net so a hung queue fails the test instead of stalling the run
S = TransferState


async def idle(service: KiteService) -> None:
    await asyncio.wait_for(service.transfers.wait_idle(), GUARD)


def local_id(service: KiteService) -> str:
    return service.connections()[0].id


async def upload_and_wait(service: KiteService, *sources: Path | str) -> list[Transfer]:
    batch = await service.upload(local_id(service), [str(s) for s in sources])
    await idle(service)
    return batch.transfers


async def until(service: KiteService, condition: Callable[[], bool]) -> None:
    """Wait until ``condition`` holds after some change in the queue."""
    changed = asyncio.Event()
    service.transfers.changed.connect(lambda _t: changed.set())
    while not condition():
        changed.clear()
        await asyncio.wait_for(changed.wait(), 10)


async def catalog_names(service: KiteService) -> list[str]:
    return sorted(d.name for d in await service.cached_documents(local_id(service)))


# -- uploads -----------------------------------------------------------------------------------------------------------
@async_test
async def test_a_dropped_folder_with_good_and_bad_items_uploads_the_good_ones(
    profile_dir: Path, local_folder: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "Holiday"
    write_file(folder / "itinerary.pdf", "pdf")
    pattern_file(folder / "photos" / "beach.jpg", 3 * MiB)
    write_file(folder / "photos" / "empty.txt")
    write_file(folder / "שלום 🎉.txt", "hi")
    os.mkfifo(folder / "pipe")
    (folder / "passwords").symlink_to(write_file(tmp_path / "secret.txt", "x"))

    async with open_service(profile_dir) as service:
        batch = await service.upload(
            local_id(service), [str(folder), str(tmp_path / "missing.doc"), "https://example.com/a.pdf"]
        )
        await idle(service)

        expected = [
            "Holiday/itinerary.pdf",
            "Holiday/photos/beach.jpg",
            "Holiday/photos/empty.txt",
            "Holiday/שלום 🎉.txt",
        ]
        assert {t.name: t.state for t in batch.transfers} == dict.fromkeys(expected, S.DONE)
        assert sorted(Path(s.source).name if "://" not in s.source else s.source for s in batch.skipped) == [
            "https://example.com/a.pdf",
            "missing.doc",
            "passwords",
            "pipe",
        ]
        assert await catalog_names(service) == expected
        assert all(t.result is not None and t.result.name == t.name for t in batch.transfers)

    assert all_files(local_folder) == sorted(expected)
    assert (local_folder / "Holiday/photos/beach.jpg").read_bytes() == (folder / "photos/beach.jpg").read_bytes()
    assert (local_folder / "Holiday/photos/empty.txt").read_bytes() == b""


@async_test
async def test_a_file_deleted_after_it_was_queued_fails_clearly_and_the_others_finish(
    profile_dir: Path, local_folder: Path, tmp_path: Path
) -> None:
    files = [write_file(tmp_path / name, name) for name in ("a.txt", "b.txt", "c.txt")]

    async with open_service(profile_dir) as service:
        service.transfers.pause()  # hold the queue so the file can vanish before its turn
        batch = await service.upload(local_id(service), [str(f) for f in files])
        files[1].unlink()
        service.transfers.resume()
        await idle(service)

        assert {t.name: t.state for t in batch.transfers} == {"a.txt": S.DONE, "b.txt": S.FAILED, "c.txt": S.DONE}
        assert "b.txt no longer exists" in batch.transfers[1].message
        assert await catalog_names(service) == ["a.txt", "c.txt"]

    assert all_files(local_folder) == ["a.txt", "c.txt"]


@async_test
async def test_a_file_that_changes_during_upload_is_refused_and_nothing_is_kept(
    profile_dir: Path, local_folder: Path, tmp_path: Path
) -> None:
    growing = sparse_file(tmp_path / "recording.wav", 1024 * MiB)
    steady = write_file(tmp_path / "steady.txt", "steady")

    async with open_service(profile_dir) as service:

        def on_change(transfer: Transfer) -> None:
            # The first progress report: the recorder rewrites the file while Kite reads it.
            if transfer.name == "recording.wav" and transfer.done > 0 and growing.stat().st_size > MiB:
                os.truncate(growing, MiB)

        service.transfers.changed.connect(on_change)
        transfers = await upload_and_wait(service, growing, steady)

        assert {t.name: t.state for t in transfers} == {"recording.wav": S.FAILED, "steady.txt": S.DONE}
        assert "changed while it was being read" in transfers[0].message
        assert await catalog_names(service) == ["steady.txt"]

    assert all_files(local_folder) == ["steady.txt"]  # and no temp file either


@async_test
async def test_renamed_names_are_reported_on_the_transfer(profile_dir: Path, tmp_path: Path) -> None:
    async with open_service(profile_dir) as service:
        (transfer,) = await upload_and_wait(service, write_file(tmp_path / "bad\x07name.txt", "x"))

        assert transfer.state is S.DONE
        assert transfer.name == "bad_name.txt"
        assert "Name changed" in transfer.message


@pytest.mark.parametrize(
    ("policy", "names", "state", "content"),
    [
        ("rename", ["report (1).txt", "report.txt"], S.DONE, b"first"),
        ("replace", ["report.txt"], S.DONE, b"second"),
        ("skip", ["report.txt"], S.SKIPPED, b"first"),
    ],
)
@async_test
async def test_the_conflict_policy_in_settings_decides_what_a_second_upload_does(
    profile_dir: Path, local_folder: Path, tmp_path: Path, policy: str, names: list[str], state: S, content: bytes
) -> None:
    async with open_service(profile_dir) as service:
        service.settings.conflict_policy = policy
        await upload_and_wait(service, write_file(tmp_path / "1" / "report.txt", "first"))
        (second,) = await upload_and_wait(service, write_file(tmp_path / "2" / "report.txt", "second"))

        assert second.state is state
        assert await catalog_names(service) == names
        if policy == "rename":
            assert "Stored as report (1).txt" in second.message
        if policy == "skip":
            assert "already exists" in second.message

    assert (local_folder / "report.txt").read_bytes() == content


@async_test
async def test_uploading_to_an_unknown_connection_fails_before_anything_is_queued(
    profile_dir: Path, tmp_path: Path
) -> None:
    async with open_service(profile_dir) as service:
        with pytest.raises(NotFoundError):
            await service.upload("no-such-connection", [str(write_file(tmp_path / "a.txt", "a"))])
        assert service.transfers.items == []


# -- documents ---------------------------------------------------------------------------------------------------------
@async_test
async def test_find_document_by_name_id_or_key_and_after_a_refresh(
    profile_dir: Path, local_folder: Path, tmp_path: Path
) -> None:
    async with open_service(profile_dir) as service:
        connection = local_id(service)
        write_file(tmp_path / "Taxes" / "receipt.pdf", "r")
        (transfer,) = await upload_and_wait(service, tmp_path / "Taxes")
        document = transfer.result
        assert document is not None

        assert await service.find_document(connection, "Taxes/receipt.pdf") == document
        assert await service.find_document(connection, document.id) == document
        assert await service.find_document(connection, document.remote_key) == document

        write_file(local_folder / "dropped in by hand.txt", "hand")
        found = await service.find_document(connection, "dropped in by hand.txt")  # not in the catalog yet
        assert found.size == 4

        with pytest.raises(NotFoundError, match=r"No document 'nothing\.txt'") as raised:
            await service.find_document(connection, "nothing.txt")
        assert "kite ls" in raised.value.hint


@async_test
async def test_delete_removes_the_file_and_the_catalog_row(
    profile_dir: Path, local_folder: Path, tmp_path: Path
) -> None:
    async with open_service(profile_dir) as service:
        changed: list[str] = []
        service.documents_changed.connect(changed.append)
        await upload_and_wait(service, write_file(tmp_path / "keep.txt", "k"), write_file(tmp_path / "drop.txt", "d"))
        document = await service.find_document(local_id(service), "drop.txt")
        changed.clear()

        await service.delete(document)

        assert await catalog_names(service) == ["keep.txt"]
        assert service.catalog.document(document.id) is None
        assert changed == [local_id(service)]
    assert all_files(local_folder) == ["keep.txt"]


@async_test
async def test_download_through_the_queue_is_byte_identical(profile_dir: Path, tmp_path: Path) -> None:
    source = pattern_file(tmp_path / "scan.tiff", 5 * MiB + 1)
    async with open_service(profile_dir) as service:
        (upload,) = await upload_and_wait(service, source)
        assert upload.result is not None
        destination = tmp_path / "Downloads" / "new folder" / "scan.tiff"

        transfer = await service.download(upload.result, destination)
        await idle(service)

        assert transfer.state is S.DONE
        assert destination.read_bytes() == source.read_bytes()


# -- the Local folder goes away ----------------------------------------------------------------------------------------
@async_test
async def test_a_missing_local_folder_makes_refresh_fail_and_the_connection_offline(
    profile_dir: Path, local_folder: Path, tmp_path: Path
) -> None:
    async with open_service(profile_dir) as service:
        connection = local_id(service)
        await upload_and_wait(service, write_file(tmp_path / "a.txt", "a"))
        await service.refresh(connection)
        assert service.connection(connection).status is ConnectionStatus.CONNECTED
        shutil.rmtree(local_folder)

        with pytest.raises(ConnectionUnavailableError):
            await service.refresh(connection)

        state = service.connection(connection)
        assert state.status is ConnectionStatus.OFFLINE
        assert str(local_folder) in state.detail
        assert await catalog_names(service) == ["a.txt"]  # what was there last time stays visible

        batch = await service.upload(connection, [str(write_file(tmp_path / "b.txt", "b"))])
        (waiting,) = batch.transfers
        await until(service, lambda: "is not there" in waiting.message)
        assert waiting.state is S.QUEUED  # a passing problem: it is tried again later, not failed
        assert "Trying again in" in waiting.message and "attempt 2 of 5" in waiting.message

        local_folder.mkdir(parents=True)  # the drive is back
        assert await service.refresh(connection) == []
        assert service.connection(connection).status is ConnectionStatus.CONNECTED
        service.transfers.retry(waiting.id)  # "Retry now" instead of waiting for the next try
        await idle(service)
        assert waiting.state is S.DONE
        assert await catalog_names(service) == ["b.txt"]


@async_test
async def test_choosing_another_folder_lists_that_folder_and_is_remembered(
    profile_dir: Path, local_folder: Path, tmp_path: Path
) -> None:
    other = tmp_path / "Elsewhere"
    write_file(other / "already here.txt", "x")
    async with open_service(profile_dir) as service:
        connection = local_id(service)
        await upload_and_wait(service, write_file(tmp_path / "a.txt", "a"))

        await service.set_local_folder(connection, other)

        assert await catalog_names(service) == ["already here.txt"]
    async with open_service(profile_dir) as service:
        assert service.connections()[0].config.options["folder"] == str(other)
