"""The durable transfer queue under random operations, faults and crashes (a Hypothesis state machine).

A real :class:`TransferQueue` with a real :class:`QueueJournal` and :class:`QueueStore` in a temporary
directory runs uploads through a fake runner that behaves like the real backends towards a fake remote store:
it reserves an object id and saves it through :class:`ResumeState` before it sends anything, and a rerun with
saved data first looks for an object an earlier attempt created under that id (so it never makes a second
one). The test decides every step of every running upload: a chunk, the end, a passing failure, a lost
sign-in, a full account, a name conflict, a failed check, or a create the server committed but whose answer
was lost.

A crash stops the process at once: from that moment nothing more reaches the file (the store drops every
write, the one SQLite is committing excepted), its owner lock is let go, and a new store and queue on the
same file restore what was written.

Invariants: at most one remote object per enqueued document; no enqueued document is lost (it is in the
queue, or on disk for the next process to take over, or it had finished before a restart, or the person
cleared it); every state change the queue announces is allowed by ``LEGAL``, and a row on disk only ever
holds a state the queue had; a done row never changes; nothing active lacks a worker and no worker idles
while work waits; what the file holds matches the queue; ``PRAGMA integrity_check`` is ok.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import shutil
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from kite_desktop.core.errors import (
    CloudConnectionError,
    ConnectionUnavailableError,
    IntegrityError,
    NameConflictError,
    StorageFullError,
)
from kite_desktop.core.models import Document, ResumeState
from kite_desktop.core.owner_lock import OwnerLock
from kite_desktop.core.queue_store import QueueJournal, QueueStore
from kite_desktop.core.transfer_items import LEGAL, Transfer, TransferKind, TransferState
from kite_desktop.core.transfers import TransferQueue

S = TransferState
CONNECTIONS = ("c1", "c2")
ACTIONS = ("chunk", "complete", "passing", "reauth", "lost", "full", "conflict", "broken")
SETTLE_ROUNDS = 200


class CrashableStore(QueueStore):
    """A store whose process can die: once ``dead``, no write reaches the file any more.

    ``budget`` (when not None) is how many more writes reach the file before the process dies: counting
    writes rather than turns of the loop makes the moment of death independent of thread timing.
    """

    dead = False
    budget: int | None = None

    def _alive(self) -> bool:
        if self.budget is not None:
            if self.budget <= 0:
                self.dead = True
            self.budget -= 1
        return not self.dead

    def insert(self, rows: list[dict[str, Any]]) -> list[int]:
        if not self._alive():
            raise ConnectionAbortedError("the process is gone")
        return super().insert(rows)

    def update(self, transfer_id: int, **fields: Any) -> bool:
        return super().update(transfer_id, **fields) if self._alive() else False

    def delete(self, ids: Any) -> None:
        if self._alive():
            super().delete(ids)

    def set_meta(self, key: str, value: str) -> None:
        if self._alive():
            super().set_meta(key, value)


def _noop() -> None:
    return None


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.directory = Path(tempfile.mkdtemp(prefix="kite-queue-machine-", dir=_fast_tmp()))
        self.path = self.directory / "transfers.sqlite3"
        self.owners = self.directory / "owners"
        self.names = (f"doc-{n}" for n in itertools.count(1))
        self.ids = (f"object-{n}" for n in itertools.count(1))
        self.remote: dict[str, str] = {}
        """Objects the fake store holds: id → the document (transfer name) it was created for."""
        self.enqueued: dict[str, str] = {}
        """Every document the queue accepted: name → connection."""
        self.done: set[str] = set()
        self.cleared: set[str] = set()
        """Taken out of the queue by the person (Clear finished)."""
        self.retired: set[str] = set()
        """Finished (done, cancelled, skipped) on disk when the process died: history, not restored."""
        self.history: collections.defaultdict[str, list[TransferState]] = collections.defaultdict(list)
        self.last: dict[str, tuple[TransferState, str]] = {}
        self.problems: list[str] = []
        self.done_rows: dict[int, dict[str, Any]] = {}
        self.gates: dict[str, tuple[asyncio.Future[str], asyncio.Task[Any] | None]] = {}
        self.events = 0
        self.crashes = 0
        self.orphans = False
        """Rows may wait on disk that no live queue took over."""
        self._open()
        self.run(self.queue.restore())

    # -- the process ---------------------------------------------------------------------------------------
    def _open(self) -> None:
        self.owner = OwnerLock(self.owners)
        self.store = CrashableStore(self.path, self.owner)
        self.journal = QueueJournal(self.store)
        self.queue = TransferQueue(self.runner, 2, self.journal, delay=lambda attempt: 0.0)
        self.queue.added.connect(self._on_added)
        self.queue.changed.connect(self._on_changed)

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run one operation on the loop, then let the queue go on until every upload waits for the test."""

        async def operation() -> Any:
            result = await coroutine
            await self._settle()
            return result

        return self.loop.run_until_complete(operation())

    def call(self, action: Callable[[], object]) -> None:
        """A synchronous queue method, called on the running loop (it may start tasks)."""

        async def operation() -> None:
            action()

        self.run(operation())

    async def _settle(self) -> None:
        current = asyncio.current_task()
        seen: tuple[int, frozenset[asyncio.Task[Any]]] | None = None
        for _ in range(SETTLE_ROUNDS):
            for _ in range(10):
                await asyncio.sleep(0)  # a turn of the loop, not a wait
            await self.journal.run(_noop)  # every write asked for so far is committed
            others = frozenset(t for t in asyncio.all_tasks() if t is not current)
            waiting = {task for future, task in self.gates.values() if not future.done()}
            now = (self.events, others)
            if others <= waiting and now == seen:
                return
            seen = now
        raise AssertionError("the queue did not settle: something keeps running")

    async def _gate(self, name: str) -> str:
        """Wait for the test to say what this upload's next step does."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.gates[name] = (future, asyncio.current_task())
        try:
            return await future
        finally:
            if self.gates.get(name, (None,))[0] is future:
                del self.gates[name]

    async def runner(self, transfer: Transfer, progress: Callable[[int], None]) -> Document:
        queue = self.queue
        resume = ResumeState(transfer.resume, functools.partial(queue.save_resume, transfer))
        if resume.data is not None and resume.data["id"] in self.remote:
            event("a rerun found the object an earlier attempt created")
            progress(transfer.size)
            return self._document(transfer, resume.data["id"])  # an earlier attempt created it
        if resume.data is None:
            await resume.save({"id": next(self.ids)})  # reserved and on disk before anything is sent
        assert resume.data is not None
        object_id = str(resume.data["id"])
        sent = 0
        while True:
            action = await self._gate(transfer.name)
            event(f"step: {action}")
            if action == "chunk":
                sent = min(transfer.size, sent + max(1, transfer.size // 3))
                progress(sent)
            elif action == "complete":
                self._create(object_id, transfer.name)
                progress(transfer.size)
                return self._document(transfer, object_id)
            elif action == "passing":
                raise ConnectionUnavailableError("The network went away.")
            elif action == "reauth":
                raise CloudConnectionError("The account's sign-in was revoked.")
            elif action == "full":
                raise StorageFullError("The account is full.")
            elif action == "conflict":
                raise NameConflictError(f"A document named {transfer.name} already exists.")
            elif action == "broken":
                raise IntegrityError("The server stored other bytes.")
            else:  # "lost": the server committed the create, its answer never arrived
                self._create(object_id, transfer.name)
                raise ConnectionUnavailableError("The server's answer was lost.")

    def _create(self, object_id: str, name: str) -> None:
        if object_id in self.remote:
            self.problems.append(f"{name}: a second create with the reserved id {object_id}")
        self.remote[object_id] = name

    @staticmethod
    def _document(transfer: Transfer, object_id: str) -> Document:
        return Document(object_id, transfer.connection_id, object_id, transfer.name, transfer.size, "x", None)

    # -- what the queue says ------------------------------------------------------------------------------
    def _on_added(self, transfers: list[Transfer]) -> None:
        self.events += 1
        for transfer in transfers:
            self._observe(transfer, announced=False)

    def _on_changed(self, transfer: Transfer) -> None:
        self.events += 1
        self._observe(transfer, announced=True)

    def _observe(self, transfer: Transfer, *, announced: bool) -> None:
        before = self.last.get(transfer.name)
        now = (transfer.state, transfer.message)
        if announced and before is not None:
            state, _ = before
            if state is S.DONE and now != before:
                self.problems.append(f"{transfer.name}: done, then changed to {now}")
            elif transfer.state is not state and transfer.state not in LEGAL[state]:
                self.problems.append(f"{transfer.name}: illegal {state} → {transfer.state}")
        self.last[transfer.name] = now
        if not self.history[transfer.name] or self.history[transfer.name][-1] is not transfer.state:
            self.history[transfer.name].append(transfer.state)
        if transfer.state is S.DONE:
            self.done.add(transfer.name)

    def _by_name(self) -> dict[str, Transfer]:
        return {t.name: t for t in self.queue.items}

    def _draw_item(self, data: st.DataObject) -> Transfer:
        items = self._by_name()
        return items[data.draw(st.sampled_from(sorted(items)), label="item")]

    # -- rules --------------------------------------------------------------------------------------------
    @rule(
        files=st.lists(st.tuples(st.sampled_from(CONNECTIONS), st.integers(1, 9)), min_size=1, max_size=4),
    )
    def enqueue(self, files: list[tuple[str, int]]) -> None:
        transfers = [
            Transfer(TransferKind.UPLOAD, connection, next(self.names), size, source=Path(f"/data/{size}.bin"))
            for connection, size in files
        ]
        self.run(self.queue.add(transfers))
        for transfer in transfers:
            self.enqueued[transfer.name] = transfer.connection_id

    @precondition(lambda self: self.gates)
    @rule(data=st.data(), action=st.sampled_from(ACTIONS))
    def step(self, data: st.DataObject, action: str) -> None:
        name = data.draw(st.sampled_from(sorted(self.gates)), label="upload")
        future, _ = self.gates[name]

        async def answer() -> None:
            future.set_result(action)

        self.run(answer())

    @precondition(lambda self: self.gates)
    @rule(data=st.data())
    def step_all(self, data: st.DataObject) -> None:
        """Every running upload takes a step at once, mostly a good one."""
        likely = st.sampled_from(("chunk", "complete", "complete", "lost", *ACTIONS))
        actions = {name: data.draw(likely, label=name) for name in sorted(self.gates)}

        async def answer() -> None:
            for name, action in actions.items():
                self.gates[name][0].set_result(action)

        self.run(answer())

    @rule()
    def pause_all(self) -> None:
        self.call(self.queue.pause)

    @rule()
    def resume_all(self) -> None:
        self.call(self.queue.resume)

    @precondition(lambda self: self.queue.items)
    @rule(data=st.data())
    def pause_item(self, data: st.DataObject) -> None:
        transfer = self._draw_item(data)
        self.call(lambda: self.queue.pause_items([transfer.id]))

    @precondition(lambda self: self.queue.items)
    @rule(data=st.data())
    def resume_item(self, data: st.DataObject) -> None:
        transfer = self._draw_item(data)
        self.call(lambda: self.queue.resume_items([transfer.id]))

    @precondition(lambda self: self.queue.items)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        transfer = self._draw_item(data)
        self.call(lambda: self.queue.cancel(transfer.id))

    @precondition(lambda self: self.queue.items)
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        transfer = self._draw_item(data)
        self.call(lambda: self.queue.retry(transfer.id))

    @rule(connection=st.sampled_from(CONNECTIONS), pause=st.booleans())
    def pause_or_resume_connection(self, connection: str, pause: bool) -> None:
        act = self.queue.pause_connection if pause else self.queue.resume_connection
        self.call(lambda: act(connection))

    @rule()
    def cancel_all(self) -> None:
        self.call(self.queue.cancel_all)

    @precondition(lambda self: self.queue.held)
    @rule(data=st.data())
    def reconnect(self, data: st.DataObject) -> None:
        connection = data.draw(st.sampled_from(sorted(self.queue.held)), label="connection")
        self.call(lambda: self.queue.release(connection))

    @precondition(lambda self: self.queue.items)
    @rule(data=st.data())
    def burst(self, data: st.DataObject) -> None:
        """A few things at once, in one turn of the loop: no worker gets to stop before the next one comes
        (pause then resume, cancel then retry, an answer arriving as the item is paused...)."""
        names = sorted(self._by_name())
        operations = st.one_of(
            st.tuples(st.sampled_from(("pause", "resume", "cancel", "retry")), st.sampled_from(names)),
            st.tuples(st.sampled_from(("pause all", "resume all", "hold", "release")), st.sampled_from(CONNECTIONS)),
            st.tuples(st.just("answer"), st.sampled_from(names), st.sampled_from(ACTIONS)),
        )
        plan = data.draw(st.lists(operations, min_size=2, max_size=4), label="burst")

        async def all_at_once() -> None:
            queue, items = self.queue, self._by_name()
            for operation in plan:
                what, target = operation[0], operation[1]
                transfer = items.get(target)
                if what == "pause" and transfer:
                    queue.pause_items([transfer.id])
                elif what == "resume" and transfer:
                    queue.resume_items([transfer.id])
                elif what == "cancel" and transfer:
                    queue.cancel(transfer.id)
                elif what == "retry" and transfer:
                    queue.retry(transfer.id)
                elif what == "pause all":
                    queue.pause()
                elif what == "resume all":
                    queue.resume()
                elif what == "hold":
                    queue.hold(target, "Waiting: the account needs a new sign-in.")
                elif what == "release":
                    queue.release(target)
                elif what == "answer" and target in self.gates and not self.gates[target][0].done():
                    self.gates[target][0].set_result(operation[2])

        self.run(all_at_once())

    @rule()
    def clear_finished(self) -> None:
        gone = [t.name for t in self.queue.items if t.state.finished]
        self.call(self.queue.clear_finished)
        self.cleared.update(gone)

    @rule(only=st.sampled_from([None, *CONNECTIONS]))
    def crash_and_restart(self, only: str | None) -> None:
        """A kill; the next process restores everything (the window), or takes over one connection's
        rows only (the ``kite upload`` command adopting its own files), leaving the rest on disk."""
        self._crash(only)

    @precondition(lambda self: self.orphans)
    @rule()
    def adopt_the_rest(self) -> None:
        """A later start takes over what the last one left to others (the window opens after the command)."""
        self.run(self.queue.adopt(None))
        self.orphans = False

    @precondition(lambda self: self.gates)
    @rule(data=st.data(), action=st.sampled_from(ACTIONS), writes=st.integers(0, 6))
    def crash_mid_step(self, data: st.DataObject, action: str, writes: int) -> None:
        """One upload takes a step and the process dies after ``writes`` more writes reached the file."""
        name = data.draw(st.sampled_from(sorted(self.gates)), label="upload")
        future, _ = self.gates[name]
        self.store.budget = writes

        async def answer() -> None:
            future.set_result(action)

        self.run(answer())  # the dead process's queue goes on in memory; nothing more reaches the file
        self._crash(None)

    def _crash(self, only: str | None) -> None:
        """SIGKILL: nothing more is written; a new process opens the same file and restores the queue."""
        self.crashes += 1
        self.store.dead = True
        old_queue, old_journal, old_owner = self.queue, self.journal, self.owner
        old_queue.added.disconnect(self._on_added)
        old_queue.changed.disconnect(self._on_changed)

        async def die() -> None:
            await old_queue.shutdown()  # stops its tasks; what it would record is dropped by the dead store
            await old_journal.close()

        self.loop.run_until_complete(die())
        old_owner.release()
        self.gates.clear()
        self.last.clear()
        self._open()
        for row in self.store.rows():  # what the dead process left on disk: states it really had
            states = self.history.get(row["name"], [])
            if S(row["state"]) not in states:
                self.problems.append(f"{row['name']}: the file says {row['state']}, the queue only had {states}")
            if row["state"] in ("done", "cancelled", "skipped"):
                self.retired.add(row["name"])  # history: a restart does not bring it back
        if only is None:
            restored = self.run(self.queue.restore())
        else:
            restored = self.run(self.queue.adopt(lambda row: row["connection_id"] == only))
        self.orphans = only is not None or self.orphans
        event(f"restart restored {min(len(restored), 3)}+ transfers")

    # -- invariants ---------------------------------------------------------------------------------------
    @invariant()
    def every_announced_change_was_legal(self) -> None:
        assert not self.problems, self.problems

    @invariant()
    def at_most_one_remote_object_per_document(self) -> None:
        counts = collections.Counter(self.remote.values())
        assert all(n == 1 for n in counts.values()), counts
        assert set(counts) <= set(self.enqueued), "an object for a document nobody enqueued"
        for name in self.done:
            assert counts[name] == 1, f"{name} is done but the store holds {counts[name]} objects for it"

    @invariant()
    def no_enqueued_document_is_lost(self) -> None:
        present = set(self._by_name())
        on_disk = {  # left by a dead process to whoever takes it over
            row["name"]
            for row in self.store.rows()
            if row["owner"] != self.owner.token and row["state"] not in ("done", "cancelled", "skipped")
        }
        lost = set(self.enqueued) - present - on_disk - self.cleared - self.retired
        assert not lost, f"lost from the queue: {sorted(lost)}"

    @invariant()
    def nothing_is_stuck(self) -> None:
        items = self.queue.items
        running = {t.name for t in items if t.state.active}
        assert running == set(self.gates), f"active without a worker: {running - set(self.gates)}"
        waiting = [t.name for t in items if t.state is S.QUEUED and t.connection_id not in self.queue.held]
        if not self.queue.paused and waiting:
            assert len(running) == self.queue.max_concurrent, f"{waiting} wait while a worker is free"

    @invariant()
    def the_file_matches_the_queue(self) -> None:
        assert self.store.integrity_check() == "ok"
        rows = {row["id"]: row for row in self.store.rows()}
        for transfer in self.queue.items:
            row = rows.get(transfer.id)
            assert row is not None, f"{transfer.name} is queued but has no row"
            assert (row["state"], row["user_paused"]) == (transfer.state.value, transfer.user_paused), (
                f"{transfer.name}: the queue says {transfer.state} (paused by hand: {transfer.user_paused}), "
                f"the file says {row['state']} ({row['user_paused']})"
            )
        for row_id, row in rows.items():
            if row["state"] != "done":
                continue
            assert row["resume"] is None, "a done row keeps its session"
            kept = {k: v for k, v in row.items() if k not in ("updated_at", "owner")}
            assert self.done_rows.setdefault(row_id, kept) == kept, f"done row {row['name']} changed"

    def teardown(self) -> None:
        try:

            async def stop() -> None:
                await self.queue.shutdown()
                await self.journal.close()

            self.loop.run_until_complete(stop())
            self.owner.release()
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()
            shutil.rmtree(self.directory, ignore_errors=True)


def _fast_tmp() -> str | None:
    """Memory-backed when the system has it: the store commits with synchronous=FULL on every change."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and shm.stat().st_mode & 0o002 else None


def test_the_queue_keeps_its_promises_under_faults_pauses_and_crashes() -> None:
    run_state_machine_as_test(
        QueueMachine,
        settings=settings(
            max_examples=150,
            stateful_step_count=50,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
