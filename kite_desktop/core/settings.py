"""User settings: a JSON file in the profile, written atomically.

Config (what the user chose, including the list of connections) lives here, apart from state (the
catalog), so a lost or corrupted catalog can be rebuilt without losing the user's connections.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kite_desktop.core.atomic import write_atomic
from kite_desktop.core.models import ConnectionConfig, Provider
from kite_desktop.core.profile import default_local_folder

log = logging.getLogger(__name__)

CONFLICT_POLICIES = ("rename", "replace", "skip")
APP_REGISTRATION_KEYS = ("KITE_GOOGLE_CLIENT_ID", "KITE_GOOGLE_CLIENT_SECRET", "KITE_MS_CLIENT_ID")
ENDPOINT_KEYS = (
    "KITE_GOOGLE_API_ROOT",
    "KITE_GOOGLE_TOKEN_URI",
    "KITE_GOOGLE_AUTH_URI",
    "KITE_GRAPH_URL",
    "KITE_MS_AUTHORITY",
    "KITE_CA_BUNDLE",
)


@dataclass
class Settings:
    connections: list[ConnectionConfig] = field(default_factory=list)
    selected_connection: str | None = None
    concurrent_transfers: int = 4
    """Transfers at once; 4 measured best (bench/transfer_concurrency.py, docs/performance.md)."""
    conflict_policy: str = "rename"
    window_geometry: str | None = None
    upload_limit_kib: int = 0
    """Upload bandwidth limit in KiB/s for all transfers together; 0 means no limit."""
    download_limit_kib: int = 0
    start_minimised: bool = False
    """Start with the window hidden (in the tray, where there is one)."""
    start_at_login: bool = False
    """Start Kite when the user logs in (XDG autostart on Linux)."""
    app_registrations: dict[str, str] = field(default_factory=dict)
    """Your own OAuth client ids (see the README): KITE_GOOGLE_CLIENT_ID, KITE_GOOGLE_CLIENT_SECRET,
    KITE_MS_CLIENT_ID. The environment wins over these."""
    endpoints: dict[str, str] = field(default_factory=dict)
    """Other service endpoints (ENDPOINT_KEYS), for tests and special deployments; the environment wins."""
    notices: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "connections": [c.to_json() for c in self.connections],
            "selected_connection": self.selected_connection,
            "concurrent_transfers": self.concurrent_transfers,
            "conflict_policy": self.conflict_policy,
            "window_geometry": self.window_geometry,
            "upload_limit_kib": self.upload_limit_kib,
            "download_limit_kib": self.download_limit_kib,
            "start_minimised": self.start_minimised,
            "start_at_login": self.start_at_login,
            "app_registrations": self.app_registrations,
            "endpoints": self.endpoints,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Settings:
        settings = cls()
        settings.connections = [ConnectionConfig.from_json(c) for c in data.get("connections", [])]
        settings.selected_connection = data.get("selected_connection")
        settings.concurrent_transfers = max(1, min(8, int(data.get("concurrent_transfers", 4))))
        policy = data.get("conflict_policy", "rename")
        settings.conflict_policy = policy if policy in CONFLICT_POLICIES else "rename"
        settings.window_geometry = data.get("window_geometry")
        settings.upload_limit_kib = max(0, int(data.get("upload_limit_kib", 0)))
        settings.download_limit_kib = max(0, int(data.get("download_limit_kib", 0)))
        settings.start_minimised = bool(data.get("start_minimised", False))
        settings.start_at_login = bool(data.get("start_at_login", False))
        registrations = data.get("app_registrations") or {}
        settings.app_registrations = {
            str(k): str(v) for k, v in registrations.items() if str(k) in APP_REGISTRATION_KEYS and v
        }
        endpoints = data.get("endpoints") or {}
        settings.endpoints = {str(k): str(v) for k, v in endpoints.items() if str(k) in ENDPOINT_KEYS and v}
        return settings

    def connection(self, connection_id: str) -> ConnectionConfig | None:
        return next((c for c in self.connections if c.id == connection_id), None)

    def replace_connection(self, updated: ConnectionConfig) -> None:
        self.connections = [updated if c.id == updated.id else c for c in self.connections]


class SettingsStore:
    """Loads and saves :class:`Settings`; a broken file is moved aside, never silently overwritten."""

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> Settings:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return self._first_start()
        try:
            settings = Settings.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # AttributeError: JSON but not an object
            aside = self.path.with_name(
                f"{self.path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
            )
            self.path.replace(aside)
            log.warning("settings file unreadable (%s); moved to %s", exc, aside.name)
            settings = self._first_start()
            settings.notices.append(
                f"Your settings file could not be read and was moved to {aside}. Kite started with default settings."
            )
            return settings
        if not settings.connections:
            settings = self._with_local(settings)
            self.save(settings)
        return settings

    def save(self, settings: Settings) -> None:
        data = json.dumps(settings.to_json(), indent=2, ensure_ascii=False).encode()
        write_atomic(self.path, data)

    def _first_start(self) -> Settings:
        settings = self._with_local(Settings())
        self.save(settings)
        return settings

    @staticmethod
    def _with_local(settings: Settings) -> Settings:
        local = ConnectionConfig(
            id=f"local-{uuid.uuid4().hex[:8]}",
            name="Local",
            provider=Provider.LOCAL,
            options={"folder": str(default_local_folder())},
        )
        return replace(settings, connections=[local], selected_connection=local.id)
