"""``kite upload`` killed with SIGKILL again and again against the emulators, then run to the end.

A folder of files of mixed sizes (small ones in one request, big ones in resumable sessions of several chunks)
is uploaded by the real command in a subprocess. The emulator kills that process itself, from inside the
request handler, when the run's K-th upload request arrives (K drawn from a seeded RNG): either before the
request takes effect, or after it took effect but before its answer is sent (the server committed, the
client never heard). No wall-clock delays decide anything. After the kills the command runs once more and
must finish.

Then every file is in the store exactly once under its own name, byte for byte; no folder was made twice; the
profile's SQLite files pass ``PRAGMA integrity_check`` and the queue holds no unfinished work; and at least
one run said it went on with uploads an earlier run left unfinished. Nothing else is in the store: no
numbered copy ("x (1).bin") of a file a killed run had already finished (the test at the end of this module
pins that case down on its own).

The command keeps its sign-in in the OS keyring, so this runs inside ``tests/with_keyring.sh`` (``make test``,
CI) and skips elsewhere unless ``KITE_REQUIRE_KEYRING=1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kite_desktop.app import build_service
from kite_desktop.auth.keyring_store import KeyringTokenStore
from kite_desktop.core.models import Provider
from tests.cloud import ms_support
from tests.emulators.google import FOLDER_MIME, GoogleEmulator
from tests.emulators.microsoft import MicrosoftEmulators
from tests.emulators.server import EmulatorServer

SEED = 20240611
KILLS = 12
KIB, MIB = 1024, 1024 * 1024
SMALL = [0, 1, 700, 2 * KIB, 5 * KIB, 17 * KIB, 33 * KIB, 64 * KIB, 80 * KIB, 100 * KIB]
BIG = [6 * MIB, 8 * MIB + 123, 11 * MIB, 14 * MIB + 5, 20 * MIB]
RUN_TIMEOUT = 120  # seconds; only a guard against a hang, never a condition of the test
RESUMED = "an earlier run left unfinished"


@pytest.fixture
def secret_service() -> None:
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        if os.environ.get("KITE_REQUIRE_KEYRING") == "1":
            pytest.fail("no Secret Service: run the tests through tests/with_keyring.sh")
        pytest.skip("no Secret Service here (make test runs this inside tests/with_keyring.sh)")


# -- the killer, inside the emulator ------------------------------------------------------------------------------
@dataclass
class Killer:
    """Kills the running command when its ``target``-th upload request reaches the emulator.

    ``after``: let that request take effect and kill before its answer goes out; else kill before it does
    anything. The handler waits until the process is gone, so no answer can reach it any more."""

    is_upload: Callable[[str, str], bool]
    lock: threading.Lock = field(default_factory=threading.Lock)
    process: subprocess.Popen[bytes] | None = None
    target: int = 0
    after: bool = False
    seen: int = 0
    killed: bool = False

    def arm(self, process: subprocess.Popen[bytes], target: int, after: bool) -> None:
        with self.lock:
            self.process, self.target, self.after, self.seen, self.killed = process, target, after, 0, False

    def disarm(self) -> None:
        with self.lock:
            self.process = None

    def arrived(self, method: str, path: str) -> str | None:
        """Called as a request arrives: "before" (killed: do nothing), "after" (kill before answering), None."""
        with self.lock:
            if self.process is None or self.killed or not self.is_upload(method, path):
                return None
            self.seen += 1
            if self.seen < self.target:
                return None
            self.killed = True
            moment = "after" if self.after else "before"
        if moment == "before":
            self.kill()
        return moment

    def kill(self) -> None:
        process = self.process
        if process is not None:
            process.kill()
            process.wait()  # gone before anything more is sent to it


def install(server: EmulatorServer, killer: Killer) -> None:
    """Hook ``killer`` into ``server``'s handler: requests take effect in ``route``, answers go out through
    ``send_bytes``."""
    base: Any = server.RequestHandlerClass

    class KillingHandler(base):  # type: ignore[misc, valid-type]
        _kill_before_answer = False

        def route(self) -> None:
            moment = killer.arrived(self.command, self.path)
            if moment == "before":
                self._abort()
                return
            self._kill_before_answer = moment == "after"
            try:
                super().route()
            finally:
                if self._kill_before_answer:  # no answer went out at all
                    killer.kill()

        def send_bytes(self, *args: Any, **kwargs: Any) -> None:
            if self._kill_before_answer:
                self._kill_before_answer = False
                killer.kill()
            super().send_bytes(*args, **kwargs)

    server.RequestHandlerClass = KillingHandler


# -- the providers --------------------------------------------------------------------------------------------------
@dataclass
class Cloud:
    provider: Provider
    env: dict[str, str]
    credentials: dict[str, Any]
    account: str
    servers: list[EmulatorServer]
    is_upload: Callable[[str, str], bool]
    uploads_per_small_file: int
    """Upload requests for a small file; its last one carries the bytes, after its session is on disk."""
    stored: Callable[[], dict[str, list[bytes]]]
    """Every file in the app's folder: path under it → the contents of each file with that path."""
    folders: Callable[[], list[str]]
    """Every folder path under the app's folder, its duplicates included."""


@contextlib.contextmanager
def google_cloud() -> Iterator[Cloud]:
    with GoogleEmulator() as google:
        tokens = google.issue_tokens()

        def paths() -> tuple[dict[str, list[bytes]], list[str]]:
            everything = google.all_files()
            by_id = {f.id: f for f in everything}
            files: dict[str, list[bytes]] = {}
            folders: list[str] = []
            for item in everything:
                parts, parent = [item.name], item.parents[0] if item.parents else ""
                while parent in by_id:
                    parts.insert(0, by_id[parent].name)
                    parent = by_id[parent].parents[0] if by_id[parent].parents else ""
                path = "/".join(parts)
                if item.mime_type == FOLDER_MIME:
                    folders.append(path)
                else:
                    files.setdefault(path.removeprefix("Kite/"), []).append(item.data or b"")
            return files, folders

        yield Cloud(
            Provider.GOOGLE_DRIVE,
            {
                "KITE_GOOGLE_API_ROOT": google.root_url,
                "KITE_GOOGLE_TOKEN_URI": google.token_uri,
                "KITE_GOOGLE_AUTH_URI": google.auth_uri,
                "KITE_GOOGLE_CLIENT_ID": tokens["client_id"],
                "KITE_GOOGLE_CLIENT_SECRET": tokens["client_secret"],
                "OAUTHLIB_INSECURE_TRANSPORT": "1",
            },
            tokens,
            tokens["email"],
            [google.server],
            lambda method, path: path.startswith("/upload/"),
            1,  # one multipart request
            lambda: paths()[0],
            lambda: paths()[1],
        )


@contextlib.contextmanager
def onedrive_cloud() -> Iterator[Cloud]:
    with MicrosoftEmulators() as ms:
        graph = ms.graph
        root = graph.approot()
        prefix = graph.path_of(root) + "/"

        def paths() -> tuple[dict[str, list[bytes]], list[str]]:
            files: dict[str, list[bytes]] = {}
            folders: list[str] = []
            for item in graph.all_items():
                path = graph.path_of(item)
                if item.id == root.id or not path.startswith(prefix):
                    continue
                if item.is_folder:
                    folders.append(path)
                else:
                    files.setdefault(path.removeprefix(prefix), []).append(item.data)
            return files, folders

        yield Cloud(
            Provider.ONEDRIVE,
            ms.env(),
            ms_support.credentials(ms),
            ms.directory.current_username,
            [graph.server],
            lambda method, path: path.startswith("/up/") or "createUploadSession" in path,
            2,  # a session, one fragment
            lambda: paths()[0],
            lambda: paths()[1],
        )


CLOUDS = {"google": google_cloud, "onedrive": onedrive_cloud}


# -- helpers ---------------------------------------------------------------------------------------------------------
def make_batch(folder: Path, rng: random.Random) -> dict[str, bytes]:
    """Files of mixed sizes, shuffled so small and big ones are interleaved in the queue."""
    sizes = SMALL + BIG
    rng.shuffle(sizes)
    batch: dict[str, bytes] = {}
    for number, size in enumerate(sizes):
        name = f"{folder.name}/file-{number:02d}-{size}.bin"
        data = rng.randbytes(size)
        (folder.parent / name).write_bytes(data)
        batch[name] = data
    return batch


@contextlib.contextmanager
def connected(profile: Path, cloud: Cloud, concurrency: int | None = None) -> Iterator[str]:
    """A connection with its sign-in in place, as ``kite connect`` leaves it (tokens in the keyring); the
    sign-in is taken out of the keyring again afterwards."""

    async def add() -> str:
        tokens = KeyringTokenStore()
        service = await asyncio.to_thread(build_service, profile, tokens)
        try:
            config = await service.add_cloud_connection(cloud.provider, "Cloud", cloud.credentials, cloud.account)
            if concurrency is not None:
                service.settings.concurrent_transfers = concurrency
                await service.save_settings()
        finally:
            await service.close()
        assert tokens.problem is None, tokens.problem
        return config.id

    connection = asyncio.run(add())
    try:
        yield connection
    finally:
        asyncio.run(KeyringTokenStore().delete(connection))


def command_env(cloud: Cloud, home: Path, profile: Path) -> dict[str, str]:
    return {**os.environ, **cloud.env, "HOME": str(home), "KITE_PROFILE_DIR": str(profile)}


def run_until_killed(
    command: list[str], env: dict[str, str], killer: Killer, target: int, after: bool, log: Path
) -> int:
    """Run the command with ``killer`` armed; its exit status (-9 when it was killed)."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        killer.arm(process, target, after)
        try:
            return process.wait(timeout=RUN_TIMEOUT)
        finally:
            killer.disarm()
            if process.poll() is None:  # it hung: do not leave it behind
                process.kill()
                process.wait()


def integrity(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def queue_rows(profile: Path) -> list[tuple[str, str]]:
    """(name, state) of every row in the profile's queue (opened as the next process would, WAL and all)."""
    with contextlib.closing(sqlite3.connect(profile / "transfers.sqlite3")) as db:
        return db.execute("SELECT name, state FROM transfers").fetchall()


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


# -- the tests -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", sorted(CLOUDS))
def test_upload_killed_again_and_again_then_finished_stores_each_file_once(
    secret_service: None, home: Path, tmp_path: Path, which: str
) -> None:
    rng = random.Random(f"{SEED}-{which}")
    source = tmp_path / "batch"
    source.mkdir()
    batch = make_batch(source, rng)
    profile = tmp_path / "profile"
    outputs: list[str] = []
    kills = {"before": 0, "after": 0}
    with CLOUDS[which]() as cloud, connected(profile, cloud) as connection:
        killer = Killer(cloud.is_upload)
        for server in cloud.servers:
            install(server, killer)
        env = command_env(cloud, home, profile)
        command = [sys.executable, "-m", "kite_desktop.cli", "upload", str(source), "--to", connection]
        for run in range(KILLS):
            log = tmp_path / f"run-{run:02d}.txt"
            after = rng.random() < 0.5
            code = run_until_killed(command, env, killer, rng.randint(1, 4), after, log)
            outputs.append(log.read_text())
            if not killer.killed:  # everything was done before the K-th upload request
                assert code == 0, outputs[-1]
                break
            assert code == -9, outputs[-1]
            kills["after" if after else "before"] += 1

        final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        outputs.append(final.stderr)
        assert final.returncode == 0, final.stderr
        stored = cloud.stored()
        folders = cloud.folders()

    assert kills["before"] and kills["after"] and sum(kills.values()) >= 8, f"kills: {kills}"
    for name, data in batch.items():
        copies = stored.get(name, [])
        assert len(copies) == 1, f"{name} is stored {len(copies)} times (kills: {kills})"
        assert md5(copies[0]) == md5(data), f"{name} differs from the file"
    extra = sorted(set(stored) - set(batch))
    assert not extra, f"the store holds {extra} besides the batch (kills: {kills})"
    assert len(folders) == len(set(folders)), f"folders made twice: {sorted(folders)}"
    assert any(RESUMED in output for output in outputs), outputs
    for database in ("catalog.sqlite3", "transfers.sqlite3"):
        assert integrity(profile / database) == "ok", database
    assert not [row for row in queue_rows(profile) if row[1] != "done"], "unfinished rows left in the queue"


@pytest.mark.parametrize("which", sorted(CLOUDS))
def test_a_rerun_after_a_kill_does_not_upload_again_what_the_killed_run_had_finished(
    secret_service: None, home: Path, tmp_path: Path, which: str
) -> None:
    """One upload at a time: a.bin is uploaded and recorded done, then the run is killed as b.bin's bytes arrive.
    The queue writes in order and b.bin's session is on disk before its bytes go out, so a.bin's done row is too."""
    source = tmp_path / "batch"
    source.mkdir()
    (source / "a.bin").write_bytes(b"a" * 1000)
    (source / "b.bin").write_bytes(b"b" * 1000)
    profile = tmp_path / "profile"
    with CLOUDS[which]() as cloud, connected(profile, cloud, concurrency=1) as connection:
        killer = Killer(cloud.is_upload)
        for server in cloud.servers:
            install(server, killer)
        env = command_env(cloud, home, profile)
        command = [sys.executable, "-m", "kite_desktop.cli", "upload", str(source), "--to", connection]
        target = 2 * cloud.uploads_per_small_file  # b.bin's last upload request
        code = run_until_killed(command, env, killer, target, False, tmp_path / "run.txt")
        assert killer.killed and code == -9, (tmp_path / "run.txt").read_text()
        assert sorted(cloud.stored()) == ["batch/a.bin"]

        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        assert again.returncode == 0, again.stderr
        stored = cloud.stored()
    assert sorted(stored) == ["batch/a.bin", "batch/b.bin"], f"a rerun stored {sorted(stored)}: {again.stderr}"
