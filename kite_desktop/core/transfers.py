"""The transfer queue: runs uploads and downloads a few at a time, with progress, pause, cancel and retry.

Qt-free. The UI listens to the queue's events; the work itself is done by a ``runner`` coroutine that the
service provides. With a :class:`~kite_desktop.core.queue_store.QueueJournal` every transfer is on disk
before the queue announces it and every change of state is written as it happens, so :meth:`restore`
picks the work up again after a restart (a crash, a kill). Items that fail carry a reason in plain words;
a passing failure (network, server, rate limit) is retried a bounded number of times, later each time.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from kite_desktop.core.errors import (
    CloudConnectionError,
    ConnectionUnavailableError,
    KiteError,
    NameConflictError,
    StorageFullError,
)
from kite_desktop.core.events import Event
from kite_desktop.core.formatting import human_duration
from kite_desktop.core.models import Document
from kite_desktop.core.queue_store import QueueJournal
from kite_desktop.core.transfer_items import (
    FINISHED,
    LEGAL,
    SPEED_WINDOW,
    Totals,
    Transfer,
    TransferKind,
    TransferState,
)

__all__ = ["FINISHED", "SPEED_WINDOW", "Totals", "Transfer", "TransferKind", "TransferQueue", "TransferState"]

log = logging.getLogger(__name__)
S = TransferState
MAX_ATTEMPTS = 5
"""Tries of one transfer (each already retrying its requests) before it is reported as failed."""
TOTALS_INTERVAL = 0.2
"""Progress ticks announce the totals (a pass over every item) at most this often."""


def retry_delay(attempt: int) -> float:
    """Seconds before automatic try number ``attempt + 1``: 30 s, 1 min, 2 min, 4 min, with jitter."""
    ceiling = min(600.0, 30.0 * 2 ** (attempt - 1))
    return ceiling * random.uniform(0.75, 1.0)


class IllegalMove(RuntimeError):
    """A transfer was asked to go back (for example from done to running): a bug, never user input."""


Runner = Callable[[Transfer, Callable[[int], None]], Awaitable[Document | None]]


class TransferQueue:
    """Runs at most ``max_concurrent`` transfers at once, in the order they were added."""

    def __init__(
        self,
        runner: Runner,
        max_concurrent: int = 3,
        journal: QueueJournal | None = None,
        *,
        max_attempts: int = MAX_ATTEMPTS,
        delay: Callable[[int], float] = retry_delay,
    ):
        self._runner = runner
        self.max_concurrent = max_concurrent
        self.journal = journal
        self.max_attempts = max_attempts
        self._delay = delay
        self.paused = False
        self.held: dict[str, str] = {}
        """Connections whose transfers wait (for a reconnect, for space), with the reason shown on each item."""
        self._hold_kinds: dict[str, str] = {}
        self._items: list[Transfer] = []
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._interrupt: dict[int, TransferState] = {}
        self._idle: asyncio.Event | None = None
        self._wake: asyncio.TimerHandle | None = None
        self._totals_timer: asyncio.TimerHandle | None = None
        self._by_id: dict[int, Transfer] = {}
        self._batch = 0
        self._announced = 0
        self.added: Event[[list[Transfer]]] = Event()
        self.changed: Event[[Transfer]] = Event()
        self.removed: Event[[list[Transfer]]] = Event()
        self.totals_changed: Event[[Totals]] = Event()
        self.batch_finished: Event[[Totals]] = Event()
        """Everything added since the queue was last idle has finished (for one notification, not one per file)."""

    # -- reading -----------------------------------------------------------------------------------
    @property
    def items(self) -> list[Transfer]:
        return list(self._items)

    def get(self, transfer_id: int) -> Transfer | None:
        return self._by_id.get(transfer_id)

    def totals(self) -> Totals:
        """Totals over the current batch (what was added since the queue was last idle)."""
        counted = [t for t in self._items if t.batch == self._batch and t.state not in (S.CANCELLED, S.SKIPPED)]
        active = [t for t in counted if not t.state.finished]
        return Totals(
            active=len(active),
            finished=sum(1 for t in counted if t.state.finished),
            failed=sum(1 for t in counted if t.state is S.FAILED),
            done_bytes=sum(t.size if t.state is S.DONE else t.done for t in counted),
            total_bytes=sum(t.size for t in counted),
            speed=sum(t.speed for t in active),
            paused=self.paused,
            waiting=sum(1 for t in active if t.state is S.PAUSED),
        )

    # -- adding ------------------------------------------------------------------------------------
    async def add(self, transfers: list[Transfer]) -> None:
        """Queue ``transfers``; with a journal they are on disk before anyone is told they are queued."""
        if not transfers:
            return
        if self.journal is not None:
            ids = await self.journal.run(self.journal.store.insert, [t.to_row() for t in transfers])
            for transfer, transfer_id in zip(transfers, ids, strict=True):
                transfer.id = transfer_id
        self._admit(transfers)

    async def restore(self) -> list[Transfer]:
        """Take up the transfers a previous run left unfinished (or failed), as they were."""
        if self.journal is None:
            return []
        self.paused = (await self.journal.run(self.journal.store.meta, "paused")) == "1"
        return await self.adopt(None)

    async def adopt(self, which: Callable[[dict[str, Any]], bool] | None, *, with_done: bool = False) -> list[Transfer]:
        """Take over the unfinished rows of runs that are gone (those ``which`` accepts) and queue them; with
        ``with_done`` also what a killed run had finished (shown as done, not uploaded again)."""
        if self.journal is None:
            return []
        rows = await self.journal.run(self.journal.store.claim, which, with_done=with_done)
        transfers = [Transfer.from_row(row) for row in rows]
        for transfer in transfers:
            if transfer.state is S.DONE:
                transfer.done = transfer.size
                transfer.message = "Uploaded by an earlier run that was interrupted."
            elif transfer.state.active or (transfer.state is S.PAUSED and not transfer.user_paused):
                # It was stopped mid-way or waited for a hold that this run will find out about afresh.
                transfer.state = S.QUEUED
                transfer.message = "Continues where it stopped." if transfer.resume else ""
                self._persist(transfer)
        self._admit(transfers)
        return transfers

    def _admit(self, transfers: list[Transfer]) -> None:
        if not transfers:
            return
        if not any(not t.state.finished for t in self._items):
            self._batch += 1  # nothing was active: totals start over with this batch
        for transfer in transfers:
            transfer.batch = self._batch
        self._items.extend(transfers)
        self._by_id.update((t.id, t) for t in transfers)
        self.added.emit(list(transfers))
        for transfer in transfers:
            if transfer.state is S.QUEUED and transfer.connection_id in self.held:
                self._set(transfer, S.PAUSED, self.held[transfer.connection_id])
        self._schedule()
        self._announce_totals()

    def note(self, connection_id: str, message: str, seconds: float) -> None:
        """Say ``message`` next to the connection's running transfers for ``seconds`` (a server asked Kite to
        slow down: they wait, and should not look stuck)."""
        noted = [t for t in self._items if t.connection_id == connection_id and t.state.active]
        for transfer in noted:
            transfer.note = message
            self.changed.emit(transfer)

        def clear() -> None:
            for transfer in noted:
                if transfer.note == message:
                    transfer.note = ""
                    self.changed.emit(transfer)

        asyncio.get_running_loop().call_later(seconds, clear)

    def resume_scheduling(self) -> None:
        """Start what may start now (after ``max_concurrent`` was raised)."""
        self._schedule()

    # -- pausing, holding --------------------------------------------------------------------------
    def pause(self) -> None:
        """Pause everything: running transfers stop (keeping their sessions) and nothing new starts."""
        self.paused = True
        self._save_meta("paused", "1")
        for transfer_id in list(self._tasks):
            self._stop(transfer_id, S.PAUSED)
        self._announce_totals()

    def resume(self) -> None:
        """Resume everything, including items paused one by one and connections waiting for space."""
        self.paused = False
        self._save_meta("paused", "0")
        for connection_id, kind in list(self._hold_kinds.items()):
            if kind == "full":
                self._unhold(connection_id)
        for transfer in self._items:
            if transfer.state is S.PAUSED and transfer.connection_id not in self.held:
                transfer.user_paused = False
                self._set(transfer, S.QUEUED, "")
        self._schedule()
        self._announce_totals()

    def pause_items(self, transfer_ids: list[int]) -> None:
        """Pause these transfers only; they stay paused (also over a restart) until resumed."""
        for transfer_id in transfer_ids:
            transfer = self.get(transfer_id)
            if transfer is None or transfer.state.finished:
                continue
            transfer.user_paused = True
            if self._working(transfer):
                self._stop(transfer.id, S.PAUSED)
            elif transfer.state is S.QUEUED:
                self._set(transfer, S.PAUSED, "Paused.")
            else:
                self._persist(transfer)
        self._announce_totals()

    def resume_items(self, transfer_ids: list[int]) -> None:
        for transfer_id in transfer_ids:
            transfer = self.get(transfer_id)
            if transfer is None or transfer.state is not S.PAUSED:
                continue
            transfer.user_paused = False
            if self._hold_kinds.get(transfer.connection_id) == "full":
                self._unhold(transfer.connection_id)
            if transfer.connection_id in self.held:
                self._set(transfer, S.PAUSED, self.held[transfer.connection_id])
            elif transfer.id not in self._tasks:
                self._set(transfer, S.QUEUED, "")
        self._schedule()
        self._announce_totals()

    def pause_connection(self, connection_id: str) -> None:
        self.pause_items([t.id for t in self._items if t.connection_id == connection_id])

    def resume_connection(self, connection_id: str) -> None:
        self.resume_items([t.id for t in self._items if t.connection_id == connection_id])

    def hold(self, connection_id: str, reason: str, kind: str = "reauth") -> None:
        """Stop one connection's transfers until :meth:`release`; nothing is dropped, each item says why.

        ``kind`` "reauth" waits for a new sign-in; "full" waits for space and is also lifted by Resume.
        """
        self.held[connection_id] = reason
        self._hold_kinds[connection_id] = kind
        for transfer in self._items:
            if transfer.connection_id != connection_id:
                continue
            if self._working(transfer):
                self._stop(transfer.id, S.PAUSED)
            elif transfer.state is S.QUEUED or (transfer.state is S.PAUSED and not transfer.user_paused):
                self._set(transfer, S.PAUSED, reason)
        self._announce_totals()

    def release(self, connection_id: str) -> None:
        """Let a held connection's transfers go on."""
        if connection_id not in self.held:
            return
        self._unhold(connection_id)
        self._schedule()
        self._announce_totals()

    def _unhold(self, connection_id: str) -> None:
        self.held.pop(connection_id, None)
        self._hold_kinds.pop(connection_id, None)
        if self.paused:
            return
        for transfer in self._items:
            if (
                transfer.connection_id == connection_id
                and transfer.state is S.PAUSED
                and not transfer.user_paused
                and transfer.id not in self._tasks
            ):
                self._set(transfer, S.QUEUED, "")

    # -- cancelling, retrying, clearing ------------------------------------------------------------------
    def cancel(self, transfer_id: int) -> None:
        transfer = self.get(transfer_id)
        if transfer is None or transfer.state.finished:
            return
        if self._working(transfer):
            self._stop(transfer_id, S.CANCELLED)
        else:
            self._set(transfer, S.CANCELLED, "Cancelled.")
            self._announce_totals()

    def cancel_all(self) -> None:
        for transfer in self._items:
            self.cancel(transfer.id)

    def retry(self, transfer_id: int) -> None:
        """Try a failed or cancelled transfer again; one waiting for its next automatic try goes now."""
        transfer = self.get(transfer_id)
        if transfer is None or not transfer.retryable:
            return
        if transfer.state is S.QUEUED:  # waiting for its next automatic try
            transfer.not_before = 0.0
            self._set(transfer, S.QUEUED, "")
            self._schedule()
            return
        transfer.done = 0
        transfer.attempts = 0
        transfer.not_before = 0.0
        transfer.user_paused = False
        if not any(not t.state.finished for t in self._items):
            self._batch += 1  # the queue was idle: totals start over, as in add()
        transfer.batch = self._batch
        if transfer.connection_id in self.held:
            self._set(transfer, S.QUEUED, "")
            self._set(transfer, S.PAUSED, self.held[transfer.connection_id])
        else:
            self._set(transfer, S.QUEUED, "")
        self._schedule()
        self._announce_totals()

    def clear_finished(self) -> None:
        gone = [t for t in self._items if t.state.finished]
        if gone:
            self._items = [t for t in self._items if not t.state.finished]
            for transfer in gone:
                self._by_id.pop(transfer.id, None)
            if self.journal is not None:
                self.journal.submit(self.journal.store.delete, [t.id for t in gone])
            self.removed.emit(gone)
        self._announce_totals()

    async def save_resume(self, transfer: Transfer, data: dict[str, Any] | None) -> None:
        """Keep a transfer's resumable session on disk (awaited: it is written before bytes are sent)."""
        transfer.resume = data
        if self.journal is not None:
            await self.journal.run(self.journal.store.update, transfer.id, resume=data)

    # -- waiting, stopping -------------------------------------------------------------------------------
    async def wait_idle(self) -> None:
        """Return once nothing is queued or running (paused items do not count)."""
        while self._pending():
            if self._idle is None or self._idle.is_set():
                self._idle = asyncio.Event()
            await self._idle.wait()

    async def wait_finished(self, transfer: Transfer) -> Transfer:
        """Return once ``transfer`` is done, failed, cancelled or skipped."""
        if transfer.state.finished:
            return transfer
        finished = asyncio.get_running_loop().create_future()

        def watch(changed: Transfer) -> None:
            if changed is transfer and changed.state.finished and not finished.done():
                finished.set_result(changed)

        self.changed.connect(watch)
        try:
            return await finished
        finally:
            self.changed.disconnect(watch)

    async def shutdown(self) -> None:
        """Stop everything that runs (sessions are kept for the next start) and wait for the workers."""
        self.paused = True  # not saved: the next start goes on as the person left it
        for timer in (self._wake, self._totals_timer):
            if timer is not None:
                timer.cancel()
        tasks = list(self._tasks.values())
        for transfer_id in list(self._tasks):
            self._stop(transfer_id, S.PAUSED)
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- inside ------------------------------------------------------------------------------------
    def _pending(self) -> bool:
        return any(
            t.state.active or (t.state is S.QUEUED and not self.paused and t.connection_id not in self.held)
            for t in self._items
        )

    def _set(self, transfer: Transfer, state: TransferState, message: str | None = None) -> None:
        if state is not transfer.state and state not in LEGAL[transfer.state]:
            raise IllegalMove(f"transfer {transfer.id}: {transfer.state} → {state}")
        transfer.state = state
        if message is not None:
            transfer.message = message
        if state is S.DONE:
            transfer.resume = None
        self._persist(transfer)
        self.changed.emit(transfer)

    def _persist(self, transfer: Transfer) -> None:
        if self.journal is None:
            return
        fields: dict[str, Any] = {
            "state": transfer.state.value,
            "message": transfer.message,
            "attempts": transfer.attempts,
            "user_paused": transfer.user_paused,
        }
        if transfer.state is S.DONE:
            fields["resume"] = None
            fields["result_key"] = transfer.result.remote_key if transfer.result is not None else None
        self.journal.submit(self.journal.store.update, transfer.id, **fields)

    def _save_meta(self, key: str, value: str) -> None:
        if self.journal is not None:
            self.journal.submit(self.journal.store.set_meta, key, value)

    def _announce_totals_soon(self) -> None:
        """For progress ticks: totals go over every item, so they are announced at most five times a second."""
        if self._totals_timer is None:
            self._totals_timer = asyncio.get_running_loop().call_later(TOTALS_INTERVAL, self._announce_totals)

    def _announce_totals(self) -> None:
        if self._totals_timer is not None:
            self._totals_timer.cancel()
            self._totals_timer = None
        totals = self.totals()
        self.totals_changed.emit(totals)
        if not self._pending():
            if self._idle is not None:
                self._idle.set()
            batch = [t for t in self._items if t.batch == self._batch]
            if batch and all(t.state.finished for t in batch) and self._announced != self._batch:
                self._announced = self._batch
                self.batch_finished.emit(totals)

    def _working(self, transfer: Transfer) -> bool:
        """A worker is on it (or about to start), and has not yet set where it ended."""
        return transfer.id in self._tasks and (transfer.state.active or transfer.state is S.QUEUED)

    def _stop(self, transfer_id: int, reason: TransferState) -> None:
        task = self._tasks.get(transfer_id)
        if task is not None:
            self._interrupt[transfer_id] = reason
            task.cancel()

    def _schedule(self) -> None:
        if self.paused:
            return
        now = time.monotonic()
        later: float | None = None
        for transfer in self._items:
            if len(self._tasks) >= self.max_concurrent:
                break
            if transfer.state is not S.QUEUED or transfer.id in self._tasks or transfer.connection_id in self.held:
                continue
            if transfer.not_before > now:
                later = transfer.not_before if later is None else min(later, transfer.not_before)
                continue
            task = asyncio.get_running_loop().create_task(self._run(transfer), name=f"transfer-{transfer.id}")
            self._tasks[transfer.id] = task
            task.add_done_callback(functools.partial(self._on_task_done, transfer))
        if later is not None:
            if self._wake is not None:
                self._wake.cancel()
            self._wake = asyncio.get_running_loop().call_later(later - now, self._schedule)

    async def _run(self, transfer: Transfer) -> None:
        def progress(done: int) -> None:
            if transfer.state.active:
                transfer._record(done)
                if transfer.state is S.RUNNING and transfer.size and done >= transfer.size:
                    self._set(transfer, S.VERIFYING)  # every byte sent: the server's answer is checked next
                else:
                    self.changed.emit(transfer)
                self._announce_totals_soon()

        transfer.done = 0
        transfer._samples.clear()
        self._set(transfer, S.RUNNING)  # keep the message: it may hold intake's notes on the name
        try:
            transfer.result = await self._runner(transfer, progress)
        except asyncio.CancelledError:
            reason = self._interrupt.pop(transfer.id, S.CANCELLED)
            transfer.done = 0
            self._set(transfer, reason, self._stopped_message(transfer, reason))
        except NameConflictError as exc:
            self._set(transfer, S.SKIPPED, exc.describe())
        except CloudConnectionError as exc:
            # The account must be reconnected: this item and the rest of its connection wait, none fails.
            self._wait_for(transfer, f"Waiting: {exc.message}", "reauth")
        except StorageFullError as exc:
            if transfer.kind is TransferKind.DOWNLOAD:  # this computer's disk: the connection's uploads go on
                self._set(transfer, S.FAILED, exc.describe())
            else:
                self._wait_for(transfer, f"Waiting for space: {exc.describe()}", "full")
        except ConnectionUnavailableError as exc:
            transfer.attempts += 1
            transfer.done = 0
            if transfer.attempts >= self.max_attempts:
                self._set(transfer, S.FAILED, f"{exc.describe()} (gave up after {transfer.attempts} attempts)")
            else:
                delay = self._delay(transfer.attempts)
                transfer.not_before = time.monotonic() + delay
                self._set(
                    transfer,
                    S.QUEUED,
                    f"{exc.message} Trying again in {human_duration(delay)} "
                    f"(attempt {transfer.attempts + 1} of {self.max_attempts}).",
                )
        except KiteError as exc:
            self._set(transfer, S.FAILED, exc.describe())
        except Exception as exc:
            log.exception("transfer %s failed unexpectedly", transfer.id)
            self._set(transfer, S.FAILED, f"Unexpected error: {type(exc).__name__}: {exc}")
        else:
            transfer.done = transfer.size
            self._set(transfer, S.DONE, transfer.message)

    def _stopped_message(self, transfer: Transfer, reason: TransferState) -> str:
        if reason is S.CANCELLED:
            return "Cancelled."
        return self.held.get(transfer.connection_id) or ("Paused." if transfer.user_paused else "")

    def _wait_for(self, transfer: Transfer, reason: str, kind: str) -> None:
        self._interrupt.pop(transfer.id, None)
        transfer.done = 0
        self._set(transfer, S.PAUSED, reason)
        self.hold(transfer.connection_id, reason, kind)

    def _on_task_done(self, transfer: Transfer, _task: asyncio.Task[None] | None = None) -> None:
        # Also runs for a task cancelled before its first step, whose coroutine never started.
        self._tasks.pop(transfer.id, None)
        reason = self._interrupt.pop(transfer.id, S.CANCELLED)
        if _task is not None and _task.cancelled() and not transfer.state.finished:
            transfer.done = 0
            self._set(transfer, reason, self._stopped_message(transfer, reason))
        if (
            transfer.state is S.PAUSED
            and not self.paused
            and not transfer.user_paused
            and transfer.connection_id not in self.held
        ):
            self._set(transfer, S.QUEUED, "")  # resumed before this worker had stopped: run it again
        self._schedule()
        self._announce_totals()
