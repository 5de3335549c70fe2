"""The transfer queue, driven by a fake runner (the queue's seam) that the test lets finish one by one."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable

import pytest

from kite_desktop.core.errors import KiteError, NameConflictError
from kite_desktop.core.transfers import Totals, Transfer, TransferKind, TransferQueue, TransferState

from .support import async_test

GUARD = 10  # seconds before a wait that should have finished fails the test instead of hanging it
S = TransferState


class FakeRunner:
    """Starts a transfer, reports half of it, then waits until the test releases it by name."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.running: set[str] = set()
        self.most_at_once = 0
        self.cancelled: list[str] = []
        self.failures: dict[str, BaseException] = {}
        self._gates: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._changed = asyncio.Condition()

    async def __call__(self, transfer: Transfer, progress: Callable[[int], None]) -> None:
        name = transfer.name
        async with self._changed:
            self.calls.append(name)
            self.running.add(name)
            self.most_at_once = max(self.most_at_once, len(self.running))
            self._changed.notify_all()
        try:
            progress(transfer.size // 2)
            await self._gates[name].wait()
            if name in self.failures:
                raise self.failures.pop(name)  # only once: a retry succeeds
            progress(transfer.size)
        except asyncio.CancelledError:
            self.cancelled.append(name)
            raise
        finally:
            self.running.discard(name)

    def release(self, *names: str) -> None:
        for name in names:
            self._gates[name].set()

    async def started(self, count: int) -> None:
        """Wait until the runner has been called ``count`` times in all."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.calls) >= count), GUARD)


def uploads(*names: str, size: int = 100) -> list[Transfer]:
    return [Transfer(TransferKind.UPLOAD, "c1", name, size) for name in names]


async def reached(queue: TransferQueue, transfer: Transfer, *states: TransferState) -> None:
    """Wait until ``transfer`` is in one of ``states``."""
    if transfer.state in states:
        return
    event = asyncio.Event()

    def listener(changed: Transfer) -> None:
        if changed is transfer and changed.state in states:
            event.set()

    queue.changed.connect(listener)
    try:
        await asyncio.wait_for(event.wait(), GUARD)
    finally:
        queue.changed.disconnect(listener)


async def idle(queue: TransferQueue) -> None:
    await asyncio.wait_for(queue.wait_idle(), GUARD)


def states(transfers: list[Transfer]) -> dict[str, TransferState]:
    return {t.name: t.state for t in transfers}


# -- running -----------------------------------------------------------------------------------------------------------
@async_test
async def test_at_most_max_concurrent_run_at_once_in_the_order_added() -> None:
    runner = FakeRunner()
    queue = TransferQueue(runner, max_concurrent=2)
    items = uploads("a", "b", "c", "d", "e")
    await queue.add(items)
    await runner.started(2)

    assert states(items) == {"a": S.RUNNING, "b": S.RUNNING, "c": S.QUEUED, "d": S.QUEUED, "e": S.QUEUED}
    runner.release("b")
    await runner.started(3)
    assert runner.calls == ["a", "b", "c"]
    runner.release("a", "c", "d", "e")
    await idle(queue)

    assert runner.calls == ["a", "b", "c", "d", "e"]
    assert runner.most_at_once == 2
    assert set(states(items).values()) == {S.DONE}
    assert all(t.fraction == 1.0 for t in items)


@async_test
async def test_progress_from_the_runner_shows_on_the_transfer_and_in_the_totals() -> None:
    runner = FakeRunner()
    queue = TransferQueue(runner, max_concurrent=3)
    seen: list[Totals] = []
    queue.totals_changed.connect(seen.append)
    items = uploads("a", "b", size=200)
    await queue.add(items)
    await runner.started(2)

    assert [t.done for t in items] == [100, 100]
    assert [t.fraction for t in items] == [0.5, 0.5]
    totals = queue.totals()
    assert (totals.active, totals.done_bytes, totals.total_bytes, totals.fraction) == (2, 200, 400, 0.5)
    assert totals.busy

    runner.release("a", "b")
    await idle(queue)
    totals = queue.totals()
    assert (totals.active, totals.finished, totals.fraction, totals.busy) == (0, 2, 1.0, False)
    assert seen[-1] == totals  # listeners heard the final state


@async_test
async def test_totals_start_over_with_a_new_batch_once_the_queue_was_idle() -> None:
    runner = FakeRunner()
    queue = TransferQueue(runner)
    runner.release("first", "second")
    await queue.add(uploads("first", size=1000))
    await idle(queue)

    await queue.add(uploads("second", size=10))
    await idle(queue)

    totals = queue.totals()
    assert (totals.finished, totals.total_bytes) == (1, 10)


@async_test
async def test_wait_idle_returns_only_when_everything_has_finished() -> None:
    runner = FakeRunner()
    queue = TransferQueue(runner, max_concurrent=1)
    items = uploads("a", "b")
    await queue.add(items)
    waiter = asyncio.create_task(queue.wait_idle())
    await runner.started(1)
    runner.release("a")
    await runner.started(2)  # "a" has finished and "b" runs

    assert not waiter.done()
    runner.release("b")
    await asyncio.wait_for(waiter, GUARD)
    assert states(items) == {"a": S.DONE, "b": S.DONE}


# -- pause and resume --------------------------------------------------------------------------------------------------
@async_test
async def test_pause_stops_running_items_and_resume_restarts_them() -> None:
    runner = FakeRunner()
    queue = TransferQueue(runner, max_concurrent=2)
    items = uploads("a", "b", "c")
    await queue.add(items)
    await runner.started(2)

    queue.pause()
    await reached(queue, items[0], S.PAUSED)
    await reached(queue, items[1], S.PAUSED)

    assert states(items) == {"a": S.PAUSED, "b": S.PAUSED, "c": S.QUEUED}
    assert sorted(runner.cancelled) == ["a", "b"]
    assert [t.done for t in items] == [0, 0, 0]
    assert queue.totals().paused
    await idle(queue)  # paused work does not keep the queue busy
    assert runner.calls == ["a", "b"]  # nothing new started while paused

    queue.resume()
    await runner.started(4)
    assert runner.calls == ["a", "b", "a", "b"]
    runner.release("a", "b", "c")
    await idle(queue)
    assert set(states(items).values()) == {S.DONE}
    assert not queue.totals().paused


@async_test
async def test_resume_right_after_pause_does_not_leave_transfers_stuck_paused() -> None:
    """A quick pause/resume (a double click) arrives before the workers have even stopped."""
    runner = FakeRunner()
    queue = TransferQueue(runner, max_concurrent=2)
    items = uploads("a", "b", "c")
    await queue.add(items)
    await runner.started(2)

    queue.pause()
    queue.resume()
    await runner.started(4)  # both were stopped and have started again
    runner.release("a", "b", "c")
    await idle(queue)

    assert states(items) == {"a": S.DONE, "b": S.DONE, "c": S.DONE}


@async_test
async def test_pausing_before_a_transfer_got_going_keeps_it_for_resume() -> None:
    """pause() in the same breath as add(): the worker task is stopped before its first step."""
    runner = FakeRunner()
    queue = TransferQueue(runner)
    items = uploads("a", "b")
    await queue.add(items)
    queue.pause()
    await idle(queue)

    assert states(items) == {"a": S.PAUSED, "b": S.PAUSED}
    assert runner.calls == []
    runner.release("a", "b")
    queue.resume()
    await idle(queue)
    assert states(items) == {"a": S.DONE, "b": S.DONE}


@async_test
async def test_pause_and_resume_before_a_transfer_got_going_still_runs_it() -> None:
    runner = FakeRunner()
    queue = TransferQueue(runner)
    items = uploads("a")
    runner.release("a")
    await queue.add(items)
    queue.pause()
    queue.resume()
    await idle(queue)

    assert items[0].state is S.DONE
    assert runner.calls == ["a"]


@async_test
async def test_cancelling_before_a_transfer_got_going_cancels_it() -> None:
    runner = FakeRunner()
    queue = TransferQueue(runner)
    items = uploads("a", "b")
    runner.release("b")
    await queue.add(items)
    queue.cancel(items[0].id)
    await idle(queue)

    assert states(items) == {"a": S.CANCELLED, "b": S.DONE}
    assert runner.calls == ["b"]


@async_test
async def test_adding_while_paused_queues_without_starting() -> None:
    runner = FakeRunner()
    queue = TransferQueue(runner)
    queue.pause()
    items = uploads("a")
    await queue.add(items)
    await idle(queue)

    assert runner.calls == []
    assert items[0].state is S.QUEUED
    runner.release("a")
    queue.resume()
    await idle(queue)
    assert items[0].state is S.DONE


# -- cancel ------------------------------------------------------------------------------------------------------------
@async_test
async def test_cancelling_a_queued_item_means_it_never_runs() -> None:
    runner = FakeRunner()
    queue = TransferQueue(runner, max_concurrent=1)
    items = uploads("a", "b", "c")
    await queue.add(items)
    await runner.started(1)

    queue.cancel(items[1].id)
    runner.release("a", "b", "c")
    await idle(queue)

    assert states(items) == {"a": S.DONE, "b": S.CANCELLED, "c": S.DONE}
    assert runner.calls == ["a", "c"]
    assert items[1].message == "Cancelled."


@async_test
async def test_cancelling_a_running_item_stops_it_and_the_next_one_starts() -> None:
    runner = FakeRunner()
    queue = TransferQueue(runner, max_concurrent=1)
    items = uploads("a", "b")
    await queue.add(items)
    await runner.started(1)

    queue.cancel(items[0].id)
    await runner.started(2)
    runner.release("b")
    await idle(queue)

    assert states(items) == {"a": S.CANCELLED, "b": S.DONE}
    assert runner.cancelled == ["a"]
    assert items[0].message == "Cancelled."
    assert items[0].done == 0
    assert queue.totals().total_bytes == 100  # a cancelled item no longer counts


@async_test
async def test_cancel_all_stops_running_and_queued_items() -> None:
    runner = FakeRunner()
    queue = TransferQueue(runner, max_concurrent=1)
    items = uploads("a", "b", "c")
    await queue.add(items)
    await runner.started(1)

    queue.cancel_all()
    await idle(queue)

    assert set(states(items).values()) == {S.CANCELLED}
    assert runner.calls == ["a"]


@async_test
async def test_cancelling_a_finished_item_changes_nothing() -> None:
    runner = FakeRunner()
    queue = TransferQueue(runner)
    items = uploads("a")
    runner.release("a")
    await queue.add(items)
    await idle(queue)

    queue.cancel(items[0].id)
    assert items[0].state is S.DONE


# -- failures and retry ------------------------------------------------------------------------------------------------
@async_test
async def test_a_failing_item_gets_the_kite_error_message_and_the_others_finish() -> None:
    runner = FakeRunner()
    runner.failures["b"] = KiteError("The disk was unplugged.", hint="Plug it back in.")
    queue = TransferQueue(runner, max_concurrent=2)
    items = uploads("a", "b", "c")
    await queue.add(items)
    runner.release("a", "b", "c")
    await idle(queue)

    assert states(items) == {"a": S.DONE, "b": S.FAILED, "c": S.DONE}
    assert items[1].message == "The disk was unplugged. Plug it back in."
    totals = queue.totals()
    assert (totals.failed, totals.finished, totals.active) == (1, 3, 0)


@async_test
async def test_a_name_conflict_is_reported_as_skipped() -> None:
    runner = FakeRunner()
    runner.failures["a"] = NameConflictError("A document named a already exists.")
    queue = TransferQueue(runner)
    items = uploads("a")
    runner.release("a")
    await queue.add(items)
    await idle(queue)

    assert items[0].state is S.SKIPPED
    assert "already exists" in items[0].message


@async_test
async def test_an_unexpected_error_still_fails_only_its_item_and_says_what_it_was() -> None:
    runner = FakeRunner()
    runner.failures["a"] = RuntimeError("socket went away")
    queue = TransferQueue(runner)
    items = uploads("a", "b")
    runner.release("a", "b")
    await queue.add(items)
    await idle(queue)

    assert states(items) == {"a": S.FAILED, "b": S.DONE}
    assert items[0].message == "Unexpected error: RuntimeError: socket went away"


@async_test
async def test_retry_runs_a_failed_item_again() -> None:
    runner = FakeRunner()
    runner.failures["a"] = KiteError("Network dropped.")
    queue = TransferQueue(runner)
    items = uploads("a")
    runner.release("a")
    await queue.add(items)
    await idle(queue)
    assert items[0].state is S.FAILED

    queue.retry(items[0].id)
    await idle(queue)

    assert items[0].state is S.DONE
    assert items[0].message == ""
    assert runner.calls == ["a", "a"]


@async_test
async def test_retrying_an_item_from_an_earlier_batch_counts_in_the_totals_while_it_runs() -> None:
    runner = FakeRunner()
    runner.failures["old"] = KiteError("Network dropped.")
    queue = TransferQueue(runner)
    old = uploads("old", size=300)
    runner.release("old", "new")
    await queue.add(old)
    await idle(queue)
    await queue.add(uploads("new", size=10))  # a later batch, done before the retry
    await idle(queue)

    runner._gates["old"].clear()  # hold the retry while it runs
    queue.retry(old[0].id)
    await runner.started(3)

    totals = queue.totals()
    assert (totals.active, totals.busy) == (1, True)
    assert totals.total_bytes >= 300
    runner.release("old")
    await idle(queue)
    assert old[0].state is S.DONE


@pytest.mark.parametrize("state", [S.DONE, S.QUEUED])
@async_test
async def test_retry_ignores_items_that_did_not_fail(state: TransferState) -> None:
    runner = FakeRunner()
    queue = TransferQueue(runner, max_concurrent=1)
    items = uploads("a", "b")
    runner.release("a")
    await queue.add(items)
    await reached(queue, items[0], S.DONE)
    target = items[0] if state is S.DONE else items[1]

    queue.retry(target.id)
    runner.release("b")
    await idle(queue)

    assert runner.calls == ["a", "b"]


# -- clearing and shutting down ----------------------------------------------------------------------------------------
@async_test
async def test_clear_finished_removes_finished_items_and_keeps_the_rest() -> None:
    runner = FakeRunner()
    runner.failures["failed"] = KiteError("nope")
    queue = TransferQueue(runner, max_concurrent=1)
    removed: list[list[Transfer]] = []
    queue.removed.connect(removed.append)
    items = uploads("done", "failed", "running", "queued", "cancelled")
    runner.release("done", "failed")
    await queue.add(items)
    queue.cancel(items[4].id)
    await runner.started(3)

    queue.clear_finished()

    assert [t.name for t in queue.items] == ["running", "queued"]
    assert sorted(t.name for t in removed[0]) == ["cancelled", "done", "failed"]
    runner.release("running", "queued")
    await idle(queue)


@async_test
async def test_shutdown_stops_running_work_and_waits_for_it() -> None:
    runner = FakeRunner()
    queue = TransferQueue(runner, max_concurrent=2)
    items = uploads("a", "b", "c")
    await queue.add(items)
    await runner.started(2)

    await asyncio.wait_for(queue.shutdown(), GUARD)

    assert sorted(runner.cancelled) == ["a", "b"]
    assert runner.running == set()
    assert states(items) == {"a": S.PAUSED, "b": S.PAUSED, "c": S.QUEUED}
