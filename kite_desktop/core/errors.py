"""Errors a person can read.

Every failure a user can hit becomes a :class:`KiteError` with a short ``title``, a ``message`` that says
what happened and a ``hint`` that says what to do. The UI and the CLI show these three fields as they are.
"""

from __future__ import annotations


class KiteError(Exception):
    """A failure with a user-facing title, message and hint."""

    title = "Something went wrong"
    hint = ""

    def __init__(self, message: str = "", *, title: str | None = None, hint: str | None = None):
        super().__init__(message or self.title)
        self.message = message or self.title
        if title is not None:
            self.title = title
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return self.message

    def describe(self) -> str:
        """One line for a status bar, a table cell or a terminal."""
        return f"{self.message} {self.hint}".strip()


class CloudConnectionError(KiteError):
    """The provider no longer accepts this connection's grant (``invalid_grant``): the user must reconnect."""

    title = "Needs reconnect"
    hint = "Reconnect the account to continue; queued work waits until then."


class ConnectionUnavailableError(KiteError):
    """The storage cannot be reached right now (offline, folder missing, server down)."""

    title = "Connection unavailable"
    hint = "Check that the storage is reachable, then refresh (F5)."


class NotFoundError(KiteError):
    """A connection, document or object that does not exist."""

    title = "Not found"


class SourceFileError(KiteError):
    """A local file that cannot be uploaded: unreadable, vanished, changed, or not a regular file."""

    title = "Cannot read file"


class StorageFullError(KiteError):
    """No space left: on the local disk or in the account's quota."""

    title = "Storage full"
    hint = "Free some space, then try again."


class NameConflictError(KiteError):
    """A document with this name already exists and the chosen policy forbids replacing it."""

    title = "Name already used"


class IntegrityError(KiteError):
    """What arrived is not what was sent (size or hash mismatch)."""

    title = "Transfer check failed"
    hint = "The transfer was not kept; use Retry."


class CatalogError(KiteError):
    """The local catalog database cannot be used."""

    title = "Catalog problem"


class ProfileLockedError(KiteError):
    """Another Kite process holds this profile."""

    title = "Kite is already running"
