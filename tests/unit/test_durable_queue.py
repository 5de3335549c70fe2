"""The queue on disk: what a restart finds, who owns which rows, and what never changes once done."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from kite_desktop.core.errors import ConnectionUnavailableError, StorageFullError
from kite_desktop.core.owner_lock import OwnerLock
from kite_desktop.core.queue_store import QueueJournal, QueueStore
from kite_desktop.core.transfers import Transfer, TransferKind, TransferQueue, TransferState

from .support import async_test

S = TransferState
GUARD = 10


class Runner:
    """Runs each transfer until the test releases it; can fail it once with a given error."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.failures: dict[str, list[BaseException]] = {}
        self.gates: dict[str, asyncio.Event] = {}
        self.started = asyncio.Condition()

    async def __call__(self, transfer: Transfer, progress: Callable[[int], None]) -> None:
        async with self.started:
            self.calls.append(transfer.name)
            self.started.notify_all()
        progress(transfer.size // 2)
        await self.gates.setdefault(transfer.name, asyncio.Event()).wait()
        if self.failures.get(transfer.name):
            raise self.failures[transfer.name].pop(0)
        progress(transfer.size)

    def release(self, *names: str) -> None:
        for name in names:
            self.gates.setdefault(name, asyncio.Event()).set()

    async def wait_started(self, count: int) -> None:
        async with self.started:
            await asyncio.wait_for(self.started.wait_for(lambda: len(self.calls) >= count), GUARD)


def open_queue(path: Path, runner: Runner, **kwargs: object) -> tuple[TransferQueue, QueueJournal, OwnerLock]:
    owner = OwnerLock(path.parent / "owners")
    journal = QueueJournal(QueueStore(path, owner))
    return TransferQueue(runner, journal=journal, **kwargs), journal, owner  # type: ignore[arg-type]


async def close(queue: TransferQueue, journal: QueueJournal, owner: OwnerLock) -> None:
    await queue.shutdown()
    await journal.close()
    owner.release()


def uploads(*names: str) -> list[Transfer]:
    return [Transfer(TransferKind.UPLOAD, "c1", n, 100, source=Path(f"/data/{n}")) for n in names]


async def until(queue: TransferQueue, condition: Callable[[], bool]) -> None:
    changed = asyncio.Event()
    queue.changed.connect(lambda _t: changed.set())
    while not condition():
        changed.clear()
        await asyncio.wait_for(changed.wait(), GUARD)


@async_test
async def test_queued_items_are_on_disk_before_the_queue_announces_them(tmp_path: Path) -> None:
    path = tmp_path / "transfers.sqlite3"
    queue, journal, owner = open_queue(path, Runner())
    seen_on_disk: list[int] = []

    def on_added(items: list[Transfer]) -> None:
        # Another connection to the file, as a second process would see it.
        with sqlite3.connect(path) as other:
            seen_on_disk.append(other.execute("SELECT COUNT(*) FROM transfers").fetchone()[0])

    queue.added.connect(on_added)
    queue.pause()
    await queue.add(uploads("a", "b", "c"))
    assert seen_on_disk == [3]
    with sqlite3.connect(path) as other:
        assert other.execute("PRAGMA synchronous").fetchone()[0] in (0, 1, 2, 3)
    assert journal.store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    await close(queue, journal, owner)


@async_test
async def test_after_a_restart_unfinished_work_comes_back_as_it_was_left(tmp_path: Path) -> None:
    path = tmp_path / "transfers.sqlite3"
    runner = Runner()
    queue, journal, owner = open_queue(path, runner, max_concurrent=2)
    await queue.add(uploads("done", "failed", "running", "paused-by-me", "queued"))
    runner.failures["failed"] = [ValueError("boom")]
    await runner.wait_started(2)
    runner.release("done", "failed")
    await until(queue, lambda: queue.items[0].state is S.DONE and queue.items[1].state is S.FAILED)
    await runner.wait_started(4)
    queue.pause_items([queue.items[3].id])
    await runner.wait_started(5)
    await close(queue, journal, owner)  # quits while "running" and "queued" are on their way

    runner2 = Runner()
    queue2, journal2, owner2 = open_queue(path, runner2)
    queue2.pause()  # look before anything starts again
    restored = await queue2.restore()
    assert {t.name: t.state for t in restored} == {
        "running": S.QUEUED,
        "paused-by-me": S.PAUSED,
        "queued": S.QUEUED,
        "failed": S.FAILED,
    }  # "done" is history
    failed = next(t for t in restored if t.name == "failed")
    assert "boom" in failed.message
    queue2.resume()  # resumes everything, the item paused by hand too
    await runner2.wait_started(3)
    runner2.release("running", "paused-by-me", "queued")
    await asyncio.wait_for(queue2.wait_idle(), GUARD)
    assert sorted(runner2.calls) == ["paused-by-me", "queued", "running"]
    await close(queue2, journal2, owner2)


@async_test
async def test_a_pause_of_everything_lasts_over_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "transfers.sqlite3"
    queue, journal, owner = open_queue(path, Runner())
    queue.pause()
    await queue.add(uploads("a"))
    await close(queue, journal, owner)

    runner = Runner()
    queue2, journal2, owner2 = open_queue(path, runner)
    await queue2.restore()
    assert queue2.paused and runner.calls == []
    await close(queue2, journal2, owner2)


@async_test
async def test_rows_of_a_running_process_are_not_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "transfers.sqlite3"
    queue, journal, owner = open_queue(path, Runner())
    queue.pause()
    await queue.add(uploads("mine"))

    other_queue, other_journal, other_owner = open_queue(path, Runner())
    assert await other_queue.restore() == []  # its owner is alive
    await close(queue, journal, owner)  # now it is gone
    assert [t.name for t in await other_queue.restore()] == ["mine"]
    await close(other_queue, other_journal, other_owner)


def test_a_killed_process_lets_go_of_its_rows(tmp_path: Path) -> None:
    """SIGKILL leaves no chance to tidy up; the lock still goes with the process."""
    owners = tmp_path / "owners"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib; from kite_desktop.core.owner_lock import OwnerLock; "
            "lock = OwnerLock(pathlib.Path(sys.argv[1])); print(lock.token, flush=True); sys.stdin.read()",
            str(owners),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert child.stdout is not None
    token = child.stdout.readline().strip()
    me = OwnerLock(owners)
    assert me.alive(token)
    child.kill()
    child.wait()
    child.stdin.close()  # type: ignore[union-attr]
    child.stdout.close()
    assert not me.alive(token)
    assert not (owners / f"{token}.lock").exists()  # tidied up by whoever noticed
    me.release()


@async_test
async def test_a_done_row_never_changes_again(tmp_path: Path) -> None:
    owner = OwnerLock(tmp_path / "owners")
    store = QueueStore(tmp_path / "q.sqlite3", owner)
    (row_id,) = store.insert([uploads("a")[0].to_row()])
    assert store.update(row_id, state="done")
    assert not store.update(row_id, state="running")
    assert store.rows()[0]["state"] == "done"
    assert store.integrity_check() == "ok"
    store.close()
    owner.release()


@async_test
async def test_the_session_is_on_disk_while_it_runs_and_gone_once_done(tmp_path: Path) -> None:
    path = tmp_path / "transfers.sqlite3"
    runner = Runner()
    queue, journal, owner = open_queue(path, runner)
    await queue.add(uploads("a"))
    await runner.wait_started(1)
    transfer = queue.items[0]
    await queue.save_resume(transfer, {"provider": "x", "url": "https://upload.example/session-secret"})
    assert journal.store.rows()[0]["resume"] == {"provider": "x", "url": "https://upload.example/session-secret"}
    runner.release("a")
    await asyncio.wait_for(queue.wait_idle(), GUARD)
    await journal.run(lambda: None)  # every write before this one is done
    assert journal.store.rows()[0]["resume"] is None
    assert journal.store.rows()[0]["state"] == "done"
    await close(queue, journal, owner)
    assert b"session-secret" not in b"".join(p.read_bytes() for p in tmp_path.glob("transfers.sqlite3*"))
    assert path.stat().st_mode & 0o077 == 0


@async_test
async def test_a_damaged_queue_file_is_moved_aside_and_a_new_one_started(tmp_path: Path) -> None:
    path = tmp_path / "transfers.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    owner = OwnerLock(tmp_path / "owners")
    store = QueueStore(path, owner)
    assert store.recovered_from is not None and store.recovered_from.exists()
    assert store.rows() == []
    store.close()
    owner.release()


# -- passing failures, holds -----------------------------------------------------------------------------------------
@async_test
async def test_a_passing_failure_is_retried_and_an_item_that_keeps_failing_ends_failed(tmp_path: Path) -> None:
    runner = Runner()
    queue, journal, owner = open_queue(tmp_path / "q.sqlite3", runner, max_attempts=3, delay=lambda _n: 0.0)
    runner.failures["flaky"] = [ConnectionUnavailableError("Server error (503).")]
    runner.failures["broken"] = [ConnectionUnavailableError("Server error (503).") for _ in range(5)]
    runner.release("flaky", "broken", "fine")
    await queue.add(uploads("flaky", "broken", "fine"))
    await asyncio.wait_for(queue.wait_idle(), GUARD)
    flaky, broken, fine = queue.items
    assert flaky.state is S.DONE and fine.state is S.DONE
    assert broken.state is S.FAILED and "gave up after 3 attempts" in broken.message
    assert runner.calls.count("broken") == 3 and runner.calls.count("flaky") == 2
    await close(queue, journal, owner)


@async_test
async def test_a_full_store_holds_its_connection_until_resume(tmp_path: Path) -> None:
    runner = Runner()
    queue, journal, owner = open_queue(tmp_path / "q.sqlite3", runner, max_concurrent=1)
    runner.failures["a"] = [StorageFullError("Your Google Drive is full.")]
    runner.release("a", "b")
    other = Transfer(TransferKind.UPLOAD, "c2", "elsewhere", 100)
    runner.release("elsewhere")
    await queue.add([*uploads("a", "b"), other])
    await asyncio.wait_for(queue.wait_idle(), GUARD)
    a, b, _ = queue.items
    assert a.state is S.PAUSED and b.state is S.PAUSED and "full" in b.message
    assert other.state is S.DONE  # another connection goes on
    queue.resume()
    await asyncio.wait_for(queue.wait_idle(), GUARD)
    assert a.state is S.DONE and b.state is S.DONE
    await close(queue, journal, owner)


@async_test
async def test_pausing_one_item_lets_the_others_go_on(tmp_path: Path) -> None:
    runner = Runner()
    queue, journal, owner = open_queue(tmp_path / "q.sqlite3", runner, max_concurrent=1)
    await queue.add(uploads("a", "b"))
    await runner.wait_started(1)
    a, b = queue.items
    queue.pause_items([a.id])
    runner.release("b")
    await until(queue, lambda: b.state is S.DONE)
    assert a.state is S.PAUSED and a.message == "Paused."
    queue.resume_items([a.id])
    runner.release("a")
    await asyncio.wait_for(queue.wait_idle(), GUARD)
    assert a.state is S.DONE
    await close(queue, journal, owner)


@async_test
async def test_one_notice_when_a_batch_finishes(tmp_path: Path) -> None:
    runner = Runner()
    queue, journal, owner = open_queue(tmp_path / "q.sqlite3", runner)
    finished = []
    queue.batch_finished.connect(finished.append)
    runner.release("a", "b", "c")
    await queue.add(uploads("a", "b", "c"))
    await asyncio.wait_for(queue.wait_idle(), GUARD)
    await asyncio.sleep(0)
    assert len(finished) == 1 and finished[0].finished == 3
    await close(queue, journal, owner)


@pytest.mark.skipif(os.name != "posix", reason="lock files are POSIX flock here")
def test_owner_files_are_private(tmp_path: Path) -> None:
    owner = OwnerLock(tmp_path / "owners")
    assert owner.path.stat().st_mode & 0o077 == 0
    owner.release()


@async_test
async def test_what_a_killed_run_finished_is_remembered_whatever_runs_in_between(tmp_path: Path) -> None:
    """kite upload A/ is killed with A/x done; kite upload B/ runs; kite upload A/ again must still know A/x."""
    path = tmp_path / "transfers.sqlite3"
    runner = Runner()
    runner.release("x")
    first, journal, owner = open_queue(path, runner)
    await first.add(uploads("x", "y"))  # y never finishes: the run is killed
    await until(first, lambda: first.items[0].state is S.DONE)
    await journal.run(lambda: None)
    journal.store.close()
    owner.release()  # the process is gone (no normal close: its finished rows stay)

    between, journal2, owner2 = open_queue(path, Runner())
    between.pause()
    assert await between.adopt(lambda row: row["name"] == "b") == []
    await close(between, journal2, owner2)

    again, journal3, owner3 = open_queue(path, Runner())
    again.pause()
    adopted = await again.adopt(lambda row: row["name"] in ("x", "y"), with_done=True)
    assert {t.name: t.state for t in adopted} == {"x": S.DONE, "y": S.QUEUED}
    await close(again, journal3, owner3)


@async_test
async def test_rows_another_running_process_is_uploading_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "transfers.sqlite3"
    window, journal, owner = open_queue(path, Runner())
    window.pause()
    await window.add(uploads("scan.pdf"))
    cli, journal2, owner2 = open_queue(path, Runner())
    busy = await journal2.run(journal2.store.busy_elsewhere, lambda row: row["name"] == "scan.pdf")
    assert [row["name"] for row in busy] == ["scan.pdf"]
    assert await journal.run(journal.store.busy_elsewhere, lambda row: True) == []  # its own rows are not others'
    await close(cli, journal2, owner2)
    await close(window, journal, owner)


@async_test
async def test_a_full_disk_during_a_download_fails_it_without_holding_the_connections_uploads(tmp_path: Path) -> None:
    runner = Runner()
    queue, journal, owner = open_queue(tmp_path / "q.sqlite3", runner, max_concurrent=1)
    download = Transfer(TransferKind.DOWNLOAD, "c1", "big.iso", 100, destination=tmp_path / "big.iso")
    runner.failures["big.iso"] = [StorageFullError("Not enough disk space in ~/Downloads.")]
    runner.release("big.iso", "a")
    await queue.add([download, *uploads("a")])
    await asyncio.wait_for(queue.wait_idle(), GUARD)
    assert download.state is S.FAILED and "disk space" in download.message
    assert queue.items[1].state is S.DONE and queue.held == {}
    await close(queue, journal, owner)
