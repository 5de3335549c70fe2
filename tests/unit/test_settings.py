"""Settings: a first start that just works, broken files moved aside (never lost), saves that are atomic."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kite_desktop.core.models import ConnectionConfig, Provider
from kite_desktop.core.profile import Profile
from kite_desktop.core.settings import Settings, SettingsStore

from .support import async_test, open_service


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


# -- first start -------------------------------------------------------------------------------------------------------
@async_test
async def test_first_start_creates_a_local_connection_in_documents_kite(
    profile_dir: Path, local_folder: Path, home: Path
) -> None:
    assert not local_folder.exists()

    async with open_service(profile_dir) as service:
        (connection,) = service.connections()
        assert connection.name == "Local"
        assert connection.provider is Provider.LOCAL
        assert Path(connection.config.options["folder"]) == home / "Documents" / "Kite"
        assert service.settings.selected_connection == connection.id
        assert service.notices == []

    assert local_folder.is_dir()
    saved = read_json(profile_dir / "settings.json")
    assert [c["id"] for c in saved["connections"]] == [connection.id]


@async_test
async def test_the_same_connection_comes_back_on_the_next_start(profile_dir: Path) -> None:
    async with open_service(profile_dir) as service:
        first = service.connections()[0].id
    async with open_service(profile_dir) as service:
        assert [c.id for c in service.connections()] == [first]


def test_the_profile_and_settings_are_private_to_the_user(profile_dir: Path) -> None:
    Profile(profile_dir).ensure()
    SettingsStore(profile_dir / "settings.json").load()

    assert stat.S_IMODE(profile_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((profile_dir / "settings.json").stat().st_mode) == 0o600


def test_a_settings_file_without_connections_gets_the_local_one(profile_dir: Path) -> None:
    path = profile_dir / "settings.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"version": 1, "connections": [], "concurrent_transfers": 5}))

    settings = SettingsStore(path).load()

    assert [c.name for c in settings.connections] == ["Local"]
    assert settings.concurrent_transfers == 5
    assert [c["name"] for c in read_json(path)["connections"]] == ["Local"]


def test_hand_edited_values_out_of_range_are_brought_back_into_range(profile_dir: Path) -> None:
    path = profile_dir / "settings.json"
    path.parent.mkdir(parents=True)
    local = {"id": "local-1", "name": "Local", "provider": "local", "options": {"folder": "/x"}}
    path.write_text(json.dumps({"connections": [local], "concurrent_transfers": 500, "conflict_policy": "explode"}))

    settings = SettingsStore(path).load()

    assert settings.concurrent_transfers == 8
    assert settings.conflict_policy == "rename"
    assert settings.connection("local-1") == ConnectionConfig("local-1", "Local", Provider.LOCAL, {"folder": "/x"})


# -- broken files ------------------------------------------------------------------------------------------------------
BROKEN = [
    b"{ this is not json",
    b"\xff\xfe\x00 binary junk",
    b"",
    b"[]",
    b"null",
    b'"just a string"',
    b'{"connections": [{"id": "x"}]}',
    b'{"connections": [{"id": "x", "name": "Box", "provider": "dropbox"}]}',
    b'{"connections": "local"}',
    b'{"concurrent_transfers": "many"}',
]


@pytest.mark.parametrize("content", BROKEN, ids=lambda c: c.decode(errors="replace")[:25])
@async_test
async def test_a_broken_settings_file_is_moved_aside_with_a_notice(profile_dir: Path, content: bytes) -> None:
    path = profile_dir / "settings.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)

    async with open_service(profile_dir) as service:
        assert [c.name for c in service.connections()] == ["Local"]
        (notice,) = service.notices
        assert "could not be read" in notice

    (aside,) = profile_dir.glob("settings.json.broken-*")
    assert aside.read_bytes() == content
    assert str(aside) in notice
    assert [c["name"] for c in read_json(path)["connections"]] == ["Local"]


# -- saving ------------------------------------------------------------------------------------------------------------
def test_save_replaces_the_file_whole_and_leaves_no_temp_files(profile_dir: Path) -> None:
    store = SettingsStore(profile_dir / "settings.json")
    settings = store.load()
    settings.concurrent_transfers = 7
    settings.window_geometry = "AdnQywADAAA="

    store.save(settings)

    assert read_json(store.path)["concurrent_transfers"] == 7
    assert SettingsStore(store.path).load().window_geometry == "AdnQywADAAA="
    assert sorted(p.name for p in profile_dir.iterdir()) == ["settings.json"]


def test_a_save_that_cannot_be_serialised_keeps_the_previous_file(profile_dir: Path) -> None:
    store = SettingsStore(profile_dir / "settings.json")
    settings = store.load()
    before = store.path.read_bytes()
    settings.connections.append(ConnectionConfig("bad", "Bad", Provider.LOCAL, {"folder": object()}))

    with pytest.raises(TypeError):
        store.save(settings)

    assert store.path.read_bytes() == before
    assert sorted(p.name for p in profile_dir.iterdir()) == ["settings.json"]


SAVE_WITH_FULL_DISK = """
import resource, signal, sys
from pathlib import Path
from kite_desktop.core.settings import SettingsStore

store = SettingsStore(Path(sys.argv[1]))
settings = store.load()
settings.window_geometry = "x" * 200_000  # far more than the limit below lets it write
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    store.save(settings)
except OSError as exc:
    print("save failed:", exc.strerror)
"""


def test_a_save_that_fails_midway_keeps_the_previous_file_whole(profile_dir: Path) -> None:
    path = profile_dir / "settings.json"
    SettingsStore(path).load()
    before = path.read_bytes()

    proc = subprocess.run(
        [sys.executable, "-c", SAVE_WITH_FULL_DISK, str(path)], capture_output=True, text=True, timeout=60
    )

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("save failed")
    assert path.read_bytes() == before
    assert sorted(p.name for p in profile_dir.iterdir()) == ["settings.json"]


def test_settings_round_trip_through_json() -> None:
    settings = Settings(
        connections=[ConnectionConfig("l1", "Docs", Provider.LOCAL, {"folder": "/data/Docs"})],
        selected_connection="l1",
        concurrent_transfers=2,
        conflict_policy="skip",
        window_geometry="abc",
    )
    again = Settings.from_json(json.loads(json.dumps(settings.to_json())))
    assert again == settings


def test_app_registrations_in_settings_reach_the_sign_in_flows(tmp_path, monkeypatch):
    import json

    from kite_desktop.app import build_service
    from kite_desktop.core.tokens import MemoryTokenStore

    monkeypatch.delenv("KITE_GOOGLE_CLIENT_ID", raising=False)
    monkeypatch.setenv("KITE_MS_CLIENT_ID", "from-the-environment")
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "settings.json").write_text(
        json.dumps(
            {
                "connections": [
                    {"id": "l", "name": "Local", "provider": "local", "options": {"folder": str(tmp_path)}}
                ],
                "app_registrations": {
                    "KITE_GOOGLE_CLIENT_ID": "mine.apps.googleusercontent.com",
                    "KITE_MS_CLIENT_ID": "from-settings",
                    "SOMETHING_ELSE": "ignored",
                },
            }
        )
    )
    build_service(profile, MemoryTokenStore())
    import os

    assert os.environ["KITE_GOOGLE_CLIENT_ID"] == "mine.apps.googleusercontent.com"
    assert os.environ["KITE_MS_CLIENT_ID"] == "from-the-environment", "the environment wins"
    assert "SOMETHING_ELSE" not in os.environ
