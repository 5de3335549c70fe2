"""The profile directory: the one place that holds everything the app stores.

Default: the platform's app-data directory. ``--profile DIR`` or ``KITE_PROFILE_DIR`` overrides it, so a
person or a test can run an isolated copy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from kite_desktop import APP_ID

PROFILE_ENV = "KITE_PROFILE_DIR"


def default_profile_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_ID, appauthor=False))


def default_local_folder() -> Path:
    """``Kite`` under the user's documents directory."""
    return Path(platformdirs.user_documents_dir()) / "Kite"


@dataclass(frozen=True)
class Profile:
    root: Path

    @classmethod
    def resolve(cls, explicit: str | os.PathLike[str] | None = None) -> Profile:
        chosen = explicit or os.environ.get(PROFILE_ENV) or default_profile_dir()
        return cls(Path(chosen).expanduser().absolute())

    def ensure(self) -> Profile:
        """Create the directory tree, private to the user."""
        for directory in (self.root, self.cache_dir, self.log_dir):
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, 0o700)
        return self

    @property
    def settings_path(self) -> Path:
        return self.root / "settings.json"

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.sqlite3"

    @property
    def queue_path(self) -> Path:
        """The transfer queue's own SQLite file (durable, ``synchronous=FULL``)."""
        return self.root / "transfers.sqlite3"

    @property
    def owners_dir(self) -> Path:
        """One lock file per running Kite process that owns queued transfers."""
        return self.root / "owners"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def open_cache_dir(self) -> Path:
        return self.cache_dir / "open"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def lock_path(self) -> Path:
        return self.root / "gui.lock"
