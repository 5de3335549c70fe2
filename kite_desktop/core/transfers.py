"""The transfer queue: runs uploads and downloads a few at a time, with progress, pause and cancel.

Qt-free. The UI listens to the queue's events; the work itself is done by a ``runner`` coroutine that
the service provides. This queue lives in memory; items that fail carry a reason in plain words.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from kite_desktop.core.errors import CloudConnectionError, KiteError, NameConflictError
from kite_desktop.core.events import Event
from kite_desktop.core.models import Document

log = logging.getLogger(__name__)
SPEED_WINDOW = 3.0


class TransferKind(enum.StrEnum):
    UPLOAD = "upload"
    DOWNLOAD = "download"


class TransferState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    @property
    def label(self) -> str:
        return {
            "queued": "Queued",
            "running": "Transferring",
            "paused": "Paused",
            "done": "Done",
            "failed": "Failed",
            "cancelled": "Cancelled",
            "skipped": "Skipped",
        }[self.value]

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = {TransferState.DONE, TransferState.FAILED, TransferState.CANCELLED, TransferState.SKIPPED}
_ids = itertools.count(1)


@dataclass(eq=False)
class Transfer:
    """One file moving between this computer and a connection."""

    kind: TransferKind
    connection_id: str
    name: str
    size: int
    source: Path | None = None
    destination: Path | None = None
    document: Document | None = None
    state: TransferState = TransferState.QUEUED
    done: int = 0
    message: str = ""
    result: Document | None = None
    batch: int = 0
    id: int = field(default_factory=lambda: next(_ids))
    _samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=64), repr=False)

    @property
    def fraction(self) -> float:
        if self.state is TransferState.DONE:
            return 1.0
        return min(1.0, self.done / self.size) if self.size else 0.0

    @property
    def speed(self) -> float:
        """Bytes per second over the last few seconds; 0 when not running."""
        if self.state is not TransferState.RUNNING or len(self._samples) < 2:
            return 0.0
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0

    def _record(self, done: int) -> None:
        now = time.monotonic()
        self.done = done
        self._samples.append((now, done))
        while self._samples and now - self._samples[0][0] > SPEED_WINDOW:
            self._samples.popleft()


@dataclass(frozen=True)
class Totals:
    active: int
    finished: int
    failed: int
    done_bytes: int
    total_bytes: int
    speed: float
    paused: bool

    @property
    def fraction(self) -> float:
        return self.done_bytes / self.total_bytes if self.total_bytes else 0.0

    @property
    def busy(self) -> bool:
        return self.active > 0


Runner = Callable[[Transfer, Callable[[int], None]], Awaitable[Document | None]]


class TransferQueue:
    """Runs at most ``max_concurrent`` transfers at once, in the order they were added."""

    def __init__(self, runner: Runner, max_concurrent: int = 3):
        self._runner = runner
        self.max_concurrent = max_concurrent
        self.paused = False
        self.held: dict[str, str] = {}
        """Connections whose transfers wait (for a reconnect, for space), with the reason shown on each item."""
        self._items: list[Transfer] = []
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._interrupt: dict[int, TransferState] = {}
        self._idle: asyncio.Event | None = None
        self._batch = 0
        self.added: Event[[list[Transfer]]] = Event()
        self.changed: Event[[Transfer]] = Event()
        self.removed: Event[[list[Transfer]]] = Event()
        self.totals_changed: Event[[Totals]] = Event()

    # -- reading -----------------------------------------------------------------------------------
    @property
    def items(self) -> list[Transfer]:
        return list(self._items)

    def get(self, transfer_id: int) -> Transfer | None:
        return next((t for t in self._items if t.id == transfer_id), None)

    def totals(self) -> Totals:
        """Totals over the current batch (what was added since the queue was last idle)."""
        counted = [
            t
            for t in self._items
            if t.batch == self._batch and t.state not in (TransferState.CANCELLED, TransferState.SKIPPED)
        ]
        active = [t for t in counted if not t.state.finished]
        return Totals(
            active=len(active),
            finished=sum(1 for t in counted if t.state.finished),
            failed=sum(1 for t in counted if t.state is TransferState.FAILED),
            done_bytes=sum(t.size if t.state is TransferState.DONE else t.done for t in counted),
            total_bytes=sum(t.size for t in counted),
            speed=sum(t.speed for t in active),
            paused=self.paused,
        )

    # -- changing ---------------------------------------------------------------------------------
    def add(self, transfers: list[Transfer]) -> None:
        if not transfers:
            return
        if not any(not t.state.finished for t in self._items):
            self._batch += 1  # nothing was active: totals start over with this batch
        for transfer in transfers:
            transfer.batch = self._batch
            if transfer.state is TransferState.QUEUED and transfer.connection_id in self.held:
                transfer.state = TransferState.PAUSED
                transfer.message = self.held[transfer.connection_id]
        self._items.extend(transfers)
        self.added.emit(list(transfers))
        self._schedule()
        self._announce_totals()

    def pause(self) -> None:
        self.paused = True
        for transfer_id in list(self._tasks):
            self._stop(transfer_id, TransferState.PAUSED)
        self._announce_totals()

    def resume(self) -> None:
        self.paused = False
        for transfer in self._items:
            if transfer.state is TransferState.PAUSED and transfer.connection_id not in self.held:
                self._set(transfer, TransferState.QUEUED)
        self._schedule()
        self._announce_totals()

    def hold(self, connection_id: str, reason: str) -> None:
        """Stop one connection's transfers until :meth:`release`; nothing is dropped, each item says why."""
        self.held[connection_id] = reason
        for transfer in self._items:
            if transfer.connection_id != connection_id:
                continue
            if transfer.id in self._tasks:
                self._stop(transfer.id, TransferState.PAUSED)
            elif transfer.state is TransferState.QUEUED:
                self._set(transfer, TransferState.PAUSED, reason)
        self._announce_totals()

    def release(self, connection_id: str) -> None:
        """Let a held connection's transfers go on."""
        if self.held.pop(connection_id, None) is None:
            return
        if not self.paused:
            for transfer in self._items:
                if transfer.connection_id == connection_id and transfer.state is TransferState.PAUSED:
                    self._set(transfer, TransferState.QUEUED, "")
        self._schedule()
        self._announce_totals()

    def cancel(self, transfer_id: int) -> None:
        transfer = self.get(transfer_id)
        if transfer is None or transfer.state.finished:
            return
        if transfer_id in self._tasks:
            self._stop(transfer_id, TransferState.CANCELLED)
        else:
            self._set(transfer, TransferState.CANCELLED, "Cancelled.")
            self._announce_totals()

    def cancel_all(self) -> None:
        for transfer in self._items:
            self.cancel(transfer.id)

    def retry(self, transfer_id: int) -> None:
        transfer = self.get(transfer_id)
        if transfer is None or transfer.state not in (TransferState.FAILED, TransferState.CANCELLED):
            return
        transfer.done = 0
        if not any(not t.state.finished for t in self._items):
            self._batch += 1  # the queue was idle: totals start over, as in add()
        transfer.batch = self._batch
        self._set(transfer, TransferState.QUEUED, "")
        self._schedule()
        self._announce_totals()

    def clear_finished(self) -> None:
        self._clear(lambda t: t.state.finished)
        self._announce_totals()

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
        """Stop everything that runs and wait for the workers to clean up."""
        self.paused = True
        tasks = list(self._tasks.values())
        for transfer_id in list(self._tasks):
            self._stop(transfer_id, TransferState.PAUSED)
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- inside ------------------------------------------------------------------------------------
    def _pending(self) -> bool:
        return any(
            t.state is TransferState.RUNNING
            or (t.state is TransferState.QUEUED and not self.paused and t.connection_id not in self.held)
            for t in self._items
        )

    def _clear(self, which: Callable[[Transfer], bool]) -> None:
        gone = [t for t in self._items if which(t)]
        if gone:
            self._items = [t for t in self._items if not which(t)]
            self.removed.emit(gone)

    def _set(self, transfer: Transfer, state: TransferState, message: str | None = None) -> None:
        transfer.state = state
        if message is not None:
            transfer.message = message
        self.changed.emit(transfer)

    def _announce_totals(self) -> None:
        self.totals_changed.emit(self.totals())
        if self._idle is not None and not self._pending():
            self._idle.set()

    def _stop(self, transfer_id: int, reason: TransferState) -> None:
        task = self._tasks.get(transfer_id)
        if task is not None:
            self._interrupt[transfer_id] = reason
            task.cancel()

    def _schedule(self) -> None:
        if self.paused:
            return
        for transfer in self._items:
            if len(self._tasks) >= self.max_concurrent:
                return
            if (
                transfer.state is TransferState.QUEUED
                and transfer.id not in self._tasks
                and transfer.connection_id not in self.held
            ):
                task = asyncio.get_running_loop().create_task(self._run(transfer), name=f"transfer-{transfer.id}")
                self._tasks[transfer.id] = task
                task.add_done_callback(functools.partial(self._on_task_done, transfer))

    async def _run(self, transfer: Transfer) -> None:
        def progress(done: int) -> None:
            if transfer.state is TransferState.RUNNING:
                transfer._record(done)
                self.changed.emit(transfer)
                self._announce_totals()

        transfer.done = 0
        transfer._samples.clear()
        self._set(transfer, TransferState.RUNNING)  # keep the message: it may hold intake's notes on the name
        try:
            transfer.result = await self._runner(transfer, progress)
        except asyncio.CancelledError:
            reason = self._interrupt.pop(transfer.id, TransferState.CANCELLED)
            transfer.done = 0
            message = "Cancelled." if reason is TransferState.CANCELLED else self.held.get(transfer.connection_id, "")
            self._set(transfer, reason, message)
        except NameConflictError as exc:
            self._set(transfer, TransferState.SKIPPED, exc.describe())
        except CloudConnectionError as exc:
            # The account must be reconnected: this item and the rest of its connection wait, none fails.
            self._interrupt.pop(transfer.id, None)
            transfer.done = 0
            self._set(transfer, TransferState.PAUSED, f"Waiting: {exc.message}")
            self.hold(transfer.connection_id, f"Waiting: {exc.message}")
        except KiteError as exc:
            self._set(transfer, TransferState.FAILED, exc.describe())
        except Exception as exc:
            log.exception("transfer %s failed unexpectedly", transfer.id)
            self._set(transfer, TransferState.FAILED, f"Unexpected error: {type(exc).__name__}: {exc}")
        else:
            transfer.done = transfer.size
            self._set(transfer, TransferState.DONE, transfer.message)

    def _on_task_done(self, transfer: Transfer, _task: asyncio.Task[None] | None = None) -> None:
        # Also runs for a task cancelled before its first step, whose coroutine never started.
        self._tasks.pop(transfer.id, None)
        reason = self._interrupt.pop(transfer.id, TransferState.CANCELLED)
        if transfer.state in (TransferState.QUEUED, TransferState.RUNNING):
            transfer.done = 0
            self._set(transfer, reason, "Cancelled." if reason is TransferState.CANCELLED else "")
        if transfer.state is TransferState.PAUSED and not self.paused and transfer.connection_id not in self.held:
            self._set(transfer, TransferState.QUEUED, "")  # resumed before this worker had stopped: run it again
        self._schedule()
        self._announce_totals()
