"""Two more faults against the Drive and Microsoft emulators: a disk that fills up during a download, and a
source file deleted while it is being uploaded.

The full disk is a 1 MiB tmpfs mounted in a private mount namespace (``unshare --mount``), so it exists only
for a child process, which runs the download there and reports what it saw. The child shares the test's
network namespace, so it reaches the emulators on 127.0.0.1 like the backends in this process do. A disk that
fills up in the very last write (a short write, no error yet) must fail the download too, not truncate it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kite_desktop.core.errors import SourceFileError, StorageFullError
from kite_desktop.storage.base import StorageBackend
from tests.cloud import google_support, ms_support
from tests.emulators.google import FOLDER_MIME, GoogleEmulator
from tests.emulators.microsoft import MicrosoftEmulators

MiB = 1024 * 1024
OLD_DATA = "the old data"
CHILD_TIMEOUT = 120  # seconds; only a guard against a hang, never a condition of the test


@dataclass
class Store:
    """One provider's emulator, seen the same way for both: a backend, what it holds, how a child reaches it."""

    provider: str
    chunk: int
    backend: Callable[[], StorageBackend]
    documents: Callable[[], list[str]]
    """Names of every file (not folder) in the store."""
    child_config: Callable[[], dict[str, Any]]
    """Where the API is and fresh credentials, for a backend built in another process."""
    child_env: dict[str, str] = field(default_factory=dict)


@pytest.fixture(params=["google_drive", "onedrive"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    if request.param == "google_drive":
        with GoogleEmulator() as drive:
            yield Store(
                "google_drive",
                google_support.CHUNK,
                lambda: google_support.drive_backend(drive),
                lambda: [f.name for f in drive.all_files() if f.mime_type != FOLDER_MIME],
                lambda: {"api": drive.root_url, "credentials": drive.issue_tokens()},
            )
    else:
        with MicrosoftEmulators() as ms:
            env = {
                "KITE_CA_BUNDLE": ms.cert_path,
                "KITE_MS_AUTHORITY": ms.authority,
                "KITE_MS_CLIENT_ID": ms.client_id,
            }
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            yield Store(
                "onedrive",
                ms_support.FRAGMENT,
                lambda: ms_support.onedrive_backend(ms),
                lambda: [i.name for i in ms.graph.all_items() if not i.is_folder],
                lambda: {"api": ms.graph_url, "credentials": ms_support.credentials(ms)},
                env,
            )


def put_document(store: Store, data: bytes, document_id: str, extension: str) -> str:
    """Upload ``data`` with the backend itself; returns its key."""
    backend = store.backend()

    async def scenario() -> str:
        try:
            return await backend.put_object("user", document_id, data, extension, "application/octet-stream")
        finally:
            await backend.aclose()

    return asyncio.run(scenario())


# -- a disk that fills up during a download ------------------------------------------------------------------
# The child builds the backend as google_support.drive_backend / ms_support.onedrive_backend do (same retry
# policy, chunk size and timeout), writes the old file on the small disk, optionally fills the disk until only
# ``leave_free`` bytes are left, and downloads onto the old file's name. Credentials come on stdin, not argv.
DOWNLOAD_IN_CHILD = """
import asyncio, json, os, sys
from pathlib import Path
from kite_desktop.core.errors import KiteError
from kite_desktop.storage.retry import RetryPolicy

config = json.load(sys.stdin)
destination = Path(config["destination"])
destination.parent.mkdir()
destination.write_text(config["old_data"])
if config["leave_free"] is not None:
    disk = os.statvfs(config["disk"])
    filler = disk.f_bavail * disk.f_frsize - config["leave_free"]
    Path(config["disk"], "filler").write_bytes(b"x" * filler)
retry = RetryPolicy(attempts=5, base=0.005, cap=0.02, max_retry_after=5)
if config["provider"] == "google_drive":
    from kite_desktop.storage.google_drive_backend import GoogleDriveBackend

    backend = GoogleDriveBackend(
        config["credentials"], api_root=config["api"], retry=retry, chunk_size=config["chunk"], timeout=10
    )
else:
    from kite_desktop.storage.onedrive_backend import OneDriveBackend

    backend = OneDriveBackend(
        config["credentials"], graph=config["api"], retry=retry, chunk_size=config["chunk"], timeout=10
    )

async def main():
    try:
        await backend.download_file(config["key"], destination)
    except KiteError as exc:
        return {"error": type(exc).__name__, "message": exc.describe()}
    finally:
        await backend.aclose()
    return {"error": None, "message": None}

result = asyncio.run(main())
result["files"] = sorted(os.listdir(destination.parent))
data = destination.read_bytes() if destination.exists() else None
result["target_size"] = None if data is None else len(data)
result["target"] = data.decode() if data is not None and len(data) < 1000 else None
print(json.dumps(result))
"""

MOUNT = ["unshare", "--mount", "--propagation", "private", "sh", "-c"]
MOUNT_TMPFS = 'mount -t tmpfs -o size=1m kite-test "$0" && exec "$@"'
needs_root_and_unshare = pytest.mark.skipif(
    not shutil.which("unshare") or os.geteuid() != 0, reason="needs root and unshare to mount a tmpfs"
)


def download_onto_a_small_disk(
    store: Store, key: str, small_disk: Path, name: str, leave_free: int | None = None
) -> dict[str, Any]:
    """Download ``key`` to ``small_disk/downloads/name`` (over an old file) in a child with a 1 MiB tmpfs there."""
    small_disk.mkdir()
    probe = subprocess.run([*MOUNT, MOUNT_TMPFS, str(small_disk), "true"], capture_output=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.decode().strip()}")
    config = {
        **store.child_config(),
        "provider": store.provider,
        "chunk": store.chunk,
        "key": key,
        "disk": str(small_disk),
        "destination": str(small_disk / "downloads" / name),
        "old_data": OLD_DATA,
        "leave_free": leave_free,
    }
    proc = subprocess.run(
        [*MOUNT, MOUNT_TMPFS, str(small_disk), sys.executable, "-c", DOWNLOAD_IN_CHILD],
        input=json.dumps(config),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        cwd="/",
        env={**os.environ, **store.child_env},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@needs_root_and_unshare
def test_a_download_onto_a_full_disk_says_so_and_leaves_the_old_file_untouched(store: Store, tmp_path: Path):
    data = os.urandom(4 * MiB)
    key = put_document(store, data, "dataset", ".csv")

    result = download_onto_a_small_disk(store, key, tmp_path / "small-disk", "dataset.csv")

    assert result["error"] == StorageFullError.__name__, result
    assert "Not enough disk space" in str(result["message"])
    assert result["target"] == OLD_DATA
    assert result["files"] == ["dataset.csv"], "no temp file is left beside the target"
    assert store.documents() == ["dataset.csv"], "the document in the store is not touched"


# HashingWriter.write (kite_desktop/storage/google_media.py) ignores what its unbuffered file's write()
# returns: a short write on a full disk raises nothing, so the missing tail is counted and hashed anyway.


@needs_root_and_unshare
@pytest.mark.parametrize("store", ["google_drive", "onedrive"], indirect=True)
def test_a_disk_that_fills_up_in_the_last_write_of_a_download_is_not_a_finished_download(store: Store, tmp_path: Path):
    """The disk has room for all but the last 4 KiB: the last write is short (no error), a further one fails.
    A sink that does not write the rest counts and hashes bytes that never reached the disk, passes its size and
    hash check and replaces the old file with a truncated one."""
    size = 1 * MiB
    data = os.urandom(size)
    key = put_document(store, data, "photo", ".jpg")

    result = download_onto_a_small_disk(store, key, tmp_path / "small-disk", "photo.jpg", leave_free=size - 4096)

    assert result["error"] == StorageFullError.__name__, result
    assert "Not enough disk space" in str(result["message"])
    assert result["target"] == OLD_DATA
    assert result["files"] == ["photo.jpg"], "no temp file is left beside the target"


# -- a source file deleted during an upload ---------------------------------------------------------------------
def test_a_file_deleted_during_upload_fails_and_leaves_nothing_in_the_store(store: Store, tmp_path: Path):
    # Drive: more than 5 MiB goes in a resumable session of 256 KiB chunks; OneDrive: 320 KiB fragments.
    size = 6 * MiB + 123 if store.provider == "google_drive" else 8 * store.chunk + 123
    source = tmp_path / "scan.pdf"
    source.write_bytes(os.urandom(size))
    backend = store.backend()
    progress: list[int] = []

    def delete_after_the_first_chunk(done: int) -> None:
        progress.append(done)
        if len(progress) == 1:
            source.unlink()  # another program deletes the file while Kite uploads it

    async def scenario() -> None:
        try:
            await backend.upload_file(source, source.name, "application/pdf", delete_after_the_first_chunk)
        finally:
            await backend.aclose()

    with pytest.raises(SourceFileError, match=r"scan\.pdf was deleted while it was being read"):
        asyncio.run(scenario())
    assert progress and 0 < progress[0] < size, "the file was deleted after the first chunk, before the last"
    assert max(progress) <= 2 * store.chunk, "the upload stopped at the next chunk, not after sending the rest"
    assert store.documents() == [], "nothing is left in the store"
