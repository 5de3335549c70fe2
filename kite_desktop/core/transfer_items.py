"""What the transfer queue holds: transfers, their states and the legal moves between them, and totals."""

from __future__ import annotations

import enum
import itertools
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kite_desktop.core.models import Document

SPEED_WINDOW = 3.0


class TransferKind(enum.StrEnum):
    UPLOAD = "upload"
    DOWNLOAD = "download"


class TransferState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    VERIFYING = "verifying"
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
            "verifying": "Verifying",
            "paused": "Paused",
            "done": "Done",
            "failed": "Failed",
            "cancelled": "Cancelled",
            "skipped": "Skipped",
        }[self.value]

    @property
    def finished(self) -> bool:
        return self in FINISHED

    @property
    def active(self) -> bool:
        return self in (TransferState.RUNNING, TransferState.VERIFYING)


S = TransferState
FINISHED = {S.DONE, S.FAILED, S.CANCELLED, S.SKIPPED}
LEGAL: dict[TransferState, set[TransferState]] = {
    S.QUEUED: {S.RUNNING, S.PAUSED, S.CANCELLED, S.FAILED},
    S.RUNNING: {S.VERIFYING, S.DONE, S.FAILED, S.PAUSED, S.CANCELLED, S.SKIPPED, S.QUEUED},
    S.VERIFYING: {S.DONE, S.FAILED, S.PAUSED, S.CANCELLED, S.SKIPPED, S.QUEUED},
    S.PAUSED: {S.QUEUED, S.CANCELLED},
    S.FAILED: {S.QUEUED},  # Retry
    S.CANCELLED: {S.QUEUED},  # Retry
    S.DONE: set(),
    S.SKIPPED: set(),
}
"""Where each state may go. Forward only, except what a person asks for (Resume, Retry) and an automatic
retry after a passing failure (running → queued). Staying in a state with a new message is always allowed."""

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
    attempts: int = 0
    """Failed attempts so far (passing failures that were retried automatically)."""
    user_paused: bool = False
    """Paused by the person (stays paused over a restart), not by a hold on its connection."""
    resume: dict[str, Any] | None = field(default=None, repr=False)
    """The backend's resumable session (see :class:`~kite_desktop.core.models.ResumeState`); never shown."""
    note: str = ""
    """A passing remark while it runs (the server asked to slow down), not kept on disk."""
    not_before: float = 0.0
    """For an automatic retry: not started again before this ``time.monotonic()``."""
    id: int = field(default_factory=lambda: next(_ids))
    _samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=64), repr=False)

    @property
    def fraction(self) -> float:
        if self.state is TransferState.DONE:
            return 1.0
        return min(1.0, self.done / self.size) if self.size else 0.0

    @property
    def retryable(self) -> bool:
        """Failed or cancelled; or waiting for its next automatic try (Retry starts it now)."""
        waiting = self.state is TransferState.QUEUED and self.not_before > 0
        return waiting or self.state in (TransferState.FAILED, TransferState.CANCELLED)

    @property
    def speed(self) -> float:
        """Bytes per second over the last few seconds; 0 when not running."""
        if not self.state.active or len(self._samples) < 2:
            return 0.0
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0

    def _record(self, done: int) -> None:
        now = time.monotonic()
        self.done = done
        self._samples.append((now, done))
        while self._samples and now - self._samples[0][0] > SPEED_WINDOW:
            self._samples.popleft()

    # -- on disk ---------------------------------------------------------------------------------------------
    def to_row(self) -> dict[str, Any]:
        document = None
        if self.document is not None:
            document = asdict(self.document)
            document["modified"] = self.document.modified.isoformat() if self.document.modified else None
        return {
            "kind": self.kind.value,
            "connection_id": self.connection_id,
            "name": self.name,
            "size": self.size,
            "source": self.source,
            "destination": self.destination,
            "document": document,
            "state": self.state.value,
            "message": self.message,
            "attempts": self.attempts,
            "user_paused": self.user_paused,
            "resume": self.resume,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Transfer:
        document = None
        if row.get("document"):
            data = dict(row["document"])
            data["modified"] = datetime.fromisoformat(data["modified"]) if data.get("modified") else None
            document = Document(**data)
        return cls(
            TransferKind(row["kind"]),
            row["connection_id"],
            row["name"],
            int(row["size"]),
            source=Path(row["source"]) if row.get("source") else None,
            destination=Path(row["destination"]) if row.get("destination") else None,
            document=document,
            state=TransferState(row["state"]),
            message=row.get("message") or "",
            attempts=int(row.get("attempts") or 0),
            user_paused=bool(row.get("user_paused")),
            resume=row.get("resume"),
            id=int(row["id"]),
        )


@dataclass(frozen=True)
class Totals:
    active: int
    finished: int
    failed: int
    done_bytes: int
    total_bytes: int
    speed: float
    paused: bool
    waiting: int = 0
    """Of ``active``, how many are paused (by hand, or waiting for a reconnect or for space)."""

    @property
    def stuck(self) -> bool:
        """Work is left but none of it can move until the person does something."""
        return self.active > 0 and self.waiting == self.active

    @property
    def fraction(self) -> float:
        return self.done_bytes / self.total_bytes if self.total_bytes else 0.0

    @property
    def busy(self) -> bool:
        return self.active > 0
