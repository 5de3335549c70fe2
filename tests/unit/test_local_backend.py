"""LocalFolderBackend: the shared contract, plus what only a folder on this computer can promise."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import unicodedata
import urllib.request
from pathlib import Path

import pytest

from kite_desktop.core.errors import (
    ConnectionUnavailableError,
    KiteError,
    NotFoundError,
    SourceFileError,
    StorageFullError,
)
from kite_desktop.core.models import ResumeState
from kite_desktop.storage.local_backend import LocalFolderBackend

from .backend_contract import BackendContract, listing
from .support import (
    MiB,
    all_files,
    async_test,
    pattern_file,
    sparse_file,
    unprivileged_python,
    write_file,
)


class TestLocalFolderBackend(BackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> LocalFolderBackend:
        root = tmp_path / "store"
        root.mkdir()
        return LocalFolderBackend(root)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    path.mkdir()
    return path


@pytest.fixture
def backend(root: Path) -> LocalFolderBackend:
    return LocalFolderBackend(root)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the store holding a file nothing may read, change or delete through the backend."""
    path = tmp_path / "outside"
    write_file(path / "secret.txt", "top secret")
    return path


def no_temp_files(*folders: Path) -> bool:
    return not any(p.name.startswith(".kite-tmp-") for folder in folders for p in folder.rglob("*"))


# -- the seed methods, as a folder does them ---------------------------------------------------------------------------
@async_test
async def test_put_object_writes_document_id_plus_extension_into_the_folder(
    backend: LocalFolderBackend, root: Path
) -> None:
    key = await backend.put_object("user-1", "3f2a", b"hello", ".pdf", "application/pdf")

    assert key == "3f2a.pdf"
    assert (root / "3f2a.pdf").read_bytes() == b"hello"
    assert all_files(root) == ["3f2a.pdf"]


@async_test
async def test_presigned_get_url_is_a_file_url_that_reads_the_document(backend: LocalFolderBackend, root: Path) -> None:
    write_file(root / "Taxes" / "receipt 2025 é.pdf", b"receipt bytes")

    url = await backend.presigned_get_url("Taxes/receipt 2025 é.pdf")

    assert url.startswith("file://")
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"receipt bytes"
    with pytest.raises(NotFoundError):
        await backend.presigned_get_url("Taxes/missing.pdf")


@async_test
async def test_presigned_put_url_is_not_available_for_a_folder(backend: LocalFolderBackend) -> None:
    with pytest.raises(NotImplementedError):
        await backend.generate_presigned_put_url("anything.txt")


@async_test
async def test_files_the_user_puts_in_the_folder_are_listed(backend: LocalFolderBackend, root: Path) -> None:
    write_file(root / "copied by hand.txt", "12345")
    write_file(root / "Trip" / "photo.jpg", b"\xff\xd8" * 10)

    objects = {item.name: item for item in await listing(backend)}

    assert sorted(objects) == ["Trip/photo.jpg", "copied by hand.txt"]
    assert objects["copied by hand.txt"].size == 5
    assert objects["Trip/photo.jpg"].content_type == "image/jpeg"
    assert objects["Trip/photo.jpg"].modified is not None


@async_test
async def test_deleting_the_last_document_of_a_subfolder_removes_the_empty_folders(
    backend: LocalFolderBackend, root: Path
) -> None:
    write_file(root / "a" / "b" / "only.txt", "x")
    write_file(root / "a" / "keep.txt", "y")

    await backend.delete_object("a/b/only.txt")

    assert not (root / "a" / "b").exists()
    assert (root / "a" / "keep.txt").exists()
    await backend.delete_object("a/keep.txt")
    assert not (root / "a").exists()
    assert root.is_dir()  # the store itself stays


@async_test
async def test_an_expired_page_token_asks_for_a_refresh(backend: LocalFolderBackend) -> None:
    with pytest.raises(KiteError, match="refresh"):
        await backend.list_objects("not-a-walk:2")


@async_test
async def test_names_are_stored_in_nfc(backend: LocalFolderBackend, tmp_path: Path, root: Path) -> None:
    decomposed = unicodedata.normalize("NFD", "Résumé.txt")

    info = await backend.upload_file(write_file(tmp_path / "cv", "cv"), decomposed, "text/plain")

    assert info.name == "Résumé.txt" == unicodedata.normalize("NFC", decomposed)
    assert (root / "Résumé.txt").read_text() == "cv"


@async_test
async def test_a_local_folder_that_is_itself_a_symlink_works(tmp_path: Path) -> None:
    real = tmp_path / "disk" / "Kite"
    real.mkdir(parents=True)
    link = tmp_path / "Kite-link"
    link.symlink_to(real, target_is_directory=True)
    backend = LocalFolderBackend(link)

    info = await backend.upload_file(write_file(tmp_path / "a.txt", "via link"), "a.txt", "text/plain")

    assert (real / "a.txt").read_text() == "via link"
    assert [item.name for item in await listing(backend)] == ["a.txt"]
    assert await backend.get_object(info.key) == b"via link"


# -- the folder is unavailable -----------------------------------------------------------------------------------------
@async_test
async def test_a_missing_folder_is_unavailable_and_health_check_says_so_without_raising(tmp_path: Path) -> None:
    backend = LocalFolderBackend(tmp_path / "unplugged-drive" / "Kite")

    assert await backend.health_check() is False
    with pytest.raises(ConnectionUnavailableError, match="not there"):
        await backend.list_objects()
    with pytest.raises(ConnectionUnavailableError):
        await backend.upload_file(write_file(tmp_path / "a.txt", "a"), "a.txt", "text/plain")
    assert not (tmp_path / "unplugged-drive").exists()  # never created behind the user's back


# -- nothing escapes the folder ----------------------------------------------------------------------------------------
# "{outside}" and "{tmp}" are filled in per test, so a bug could only ever touch this test's own files.
BAD_KEYS = ["../outside/secret.txt", "sub/../../outside/secret.txt", "{outside}/secret.txt", "./x.txt", "a//b.txt"]


@pytest.mark.parametrize("key", BAD_KEYS)
@async_test
async def test_keys_that_leave_the_folder_or_are_not_canonical_find_nothing(
    backend: LocalFolderBackend, root: Path, outside: Path, tmp_path: Path, key: str
) -> None:
    key = key.format(outside=outside)
    write_file(root / "x.txt", "x")
    write_file(root / "a" / "b.txt", "b")
    destination = tmp_path / "got.txt"
    with pytest.raises(NotFoundError):
        await backend.get_object(key)
    with pytest.raises(NotFoundError):
        await backend.stat_object(key)
    with pytest.raises(NotFoundError):
        await backend.download_file(key, destination)
    with pytest.raises(NotFoundError):
        await backend.presigned_get_url(key)
    await backend.delete_object(key)  # finds nothing to delete

    assert (outside / "secret.txt").read_text() == "top secret"
    assert all_files(root) == ["a/b.txt", "x.txt"]
    assert not destination.exists()


@pytest.mark.parametrize("name", ["../escaped.txt", "../../escaped.txt", "{tmp}/escaped.txt", "a/../../escaped.txt"])
@async_test
async def test_uploads_cannot_be_named_outside_the_folder(
    backend: LocalFolderBackend, root: Path, tmp_path: Path, name: str
) -> None:
    name = name.format(tmp=tmp_path)
    source = write_file(tmp_path / "src.txt", "payload")
    before = all_files(tmp_path.parent)

    with pytest.raises((KiteError, ValueError)):
        await backend.upload_file(source, name, "text/plain")

    assert all_files(root) == []
    assert all_files(tmp_path.parent) == before


@async_test
async def test_a_symlinked_folder_inside_the_store_is_never_followed(
    backend: LocalFolderBackend, root: Path, outside: Path, tmp_path: Path
) -> None:
    (root / "link").symlink_to(outside, target_is_directory=True)
    source = write_file(tmp_path / "new.txt", "new")

    with pytest.raises(KiteError):
        await backend.upload_file(source, "link/new.txt", "text/plain")
    with pytest.raises(KiteError):
        await backend.upload_file(source, "link/deeper/new.txt", "text/plain")
    with pytest.raises(KiteError):
        await backend.get_object("link/secret.txt")
    with pytest.raises(KiteError):
        await backend.stat_object("link/secret.txt")
    with pytest.raises(KiteError):
        await backend.download_file("link/secret.txt", tmp_path / "got.txt")
    with pytest.raises(KiteError):
        await backend.presigned_get_url("link/secret.txt")
    with pytest.raises(KiteError):
        await backend.delete_object("link/secret.txt")

    assert await listing(backend) == []
    assert all_files(outside) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "top secret"
    assert not (tmp_path / "got.txt").exists()


@async_test
async def test_a_symlinked_document_is_never_followed(
    backend: LocalFolderBackend, root: Path, outside: Path, tmp_path: Path
) -> None:
    (root / "evil.txt").symlink_to(outside / "secret.txt")

    assert await listing(backend) == []
    with pytest.raises(NotFoundError):
        await backend.get_object("evil.txt")
    with pytest.raises(NotFoundError):
        await backend.stat_object("evil.txt")
    with pytest.raises(NotFoundError):
        await backend.download_file("evil.txt", tmp_path / "got.txt")
    with pytest.raises(NotFoundError):
        await backend.presigned_get_url("evil.txt")

    # Replacing the name swaps out the link itself; nothing is written through it.
    await backend.upload_file(
        write_file(tmp_path / "new.txt", "replacement"), "evil.txt", "text/plain", conflict="replace"
    )
    assert (outside / "secret.txt").read_text() == "top secret"
    assert not (root / "evil.txt").is_symlink()
    assert (root / "evil.txt").read_text() == "replacement"


@async_test
async def test_a_symlink_given_as_the_source_is_not_followed(
    backend: LocalFolderBackend, outside: Path, tmp_path: Path
) -> None:
    link = tmp_path / "innocent.txt"
    link.symlink_to(outside / "secret.txt")

    with pytest.raises(SourceFileError, match="symbolic link"):
        await backend.upload_file(link, "innocent.txt", "text/plain")
    assert await listing(backend) == []


@async_test
async def test_a_fifo_given_as_the_source_is_refused_without_blocking(
    backend: LocalFolderBackend, tmp_path: Path
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    # Opening a FIFO for reading blocks until a writer comes; the upload must refuse it straight away.
    upload = asyncio.ensure_future(backend.upload_file(fifo, "pipe", "application/octet-stream"))
    done, _ = await asyncio.wait({upload}, timeout=30)
    if not done:
        with open(fifo, "wb"):  # unblock the stuck reader so the test can end
            pass
    assert done, "upload_file blocked on a FIFO"
    with pytest.raises(SourceFileError, match="not a regular file"):
        upload.result()
    assert await listing(backend) == []


# -- temp files and interrupted uploads --------------------------------------------------------------------------------
@async_test
async def test_leftover_temp_files_are_never_listed(backend: LocalFolderBackend, root: Path) -> None:
    write_file(root / ".kite-tmp-0123456789abcdef", "half written")
    write_file(root / "sub" / ".kite-tmp-fedcba9876543210", "half written")
    write_file(root / "sub" / "real.txt", "real")

    assert [item.name for item in await listing(backend)] == ["sub/real.txt"]


@async_test
async def test_an_upload_in_progress_shows_neither_its_temp_file_nor_a_partial_document(
    backend: LocalFolderBackend, root: Path, tmp_path: Path
) -> None:
    source = sparse_file(tmp_path / "disk-image.iso", 1024 * MiB)
    started = asyncio.Event()
    upload = asyncio.create_task(
        backend.upload_file(source, "disk-image.iso", "application/octet-stream", lambda done: started.set())
    )
    await started.wait()

    names_during = [item.name for item in await listing(backend)]
    files_during = all_files(root)
    upload.cancel()
    with pytest.raises(asyncio.CancelledError):
        await upload

    assert names_during == []
    assert len(files_during) == 1 and files_during[0].startswith(".kite-tmp-"), files_during


@async_test
async def test_cancelling_an_upload_midway_leaves_no_temp_file_and_no_document(
    backend: LocalFolderBackend, root: Path, tmp_path: Path
) -> None:
    source = sparse_file(tmp_path / "big.bin", 1024 * MiB)
    reported: list[int] = []
    first_progress = asyncio.Event()

    def progress(done: int) -> None:
        reported.append(done)
        first_progress.set()

    upload = asyncio.create_task(backend.upload_file(source, "Backups/big.bin", "application/octet-stream", progress))
    await first_progress.wait()
    upload.cancel()
    with pytest.raises(asyncio.CancelledError):
        await upload

    assert reported, "progress was never reported"
    assert all_files(root) == []
    assert no_temp_files(root)
    assert await listing(backend) == []


# -- downloads that cannot be written ----------------------------------------------------------------------------------
@async_test
async def test_downloading_onto_a_folder_fails_and_leaves_it_alone(backend: LocalFolderBackend, tmp_path: Path) -> None:
    info = await backend.upload_file(write_file(tmp_path / "a.txt", "data"), "a.txt", "text/plain")
    target = tmp_path / "downloads" / "a.txt"
    write_file(target / "inside.txt", "mine")

    with pytest.raises(KiteError, match="is a folder"):
        await backend.download_file(info.key, target)

    assert all_files(tmp_path / "downloads") == ["a.txt/inside.txt"]


@async_test
async def test_downloading_into_a_folder_that_does_not_exist_says_so(
    backend: LocalFolderBackend, tmp_path: Path
) -> None:
    info = await backend.upload_file(write_file(tmp_path / "a.txt", "data"), "a.txt", "text/plain")

    with pytest.raises(KiteError, match="does not exist"):
        await backend.download_file(info.key, tmp_path / "nowhere" / "a.txt")
    assert not (tmp_path / "nowhere").exists()


DOWNLOAD_SCRIPT = """
import asyncio, json, os, sys
from pathlib import Path
from kite_desktop.core.errors import KiteError
from kite_desktop.core.models import ResumeState
from kite_desktop.storage.local_backend import LocalFolderBackend

store, key, destination = sys.argv[1:4]

async def main():
    try:
        await LocalFolderBackend(Path(store)).download_file(key, Path(destination))
    except KiteError as exc:
        return {"error": type(exc).__name__, "message": exc.describe()}
    return {"error": None}

result = asyncio.run(main())
folder = Path(destination).parent
result["files"] = sorted(os.listdir(folder))
result["target"] = Path(destination).read_text() if Path(destination).exists() else None
print(json.dumps(result))
"""


def run_download_script(argv_prefix: list[str], *args: str) -> dict[str, object]:
    proc = subprocess.run(
        [*argv_prefix, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120, cwd="/"
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_download_into_an_unwritable_folder_leaves_the_target_untouched(shared_tmp: Path) -> None:
    store = shared_tmp / "store"
    pattern_file(store / "report.pdf", 3 * MiB)
    downloads = shared_tmp / "downloads"
    write_file(downloads / "report.pdf", "the old report")
    os.chmod(downloads, 0o555)  # and when run as root, the download runs as 'nobody', who does not own it

    result = run_download_script(
        unprivileged_python(DOWNLOAD_SCRIPT), str(store), "report.pdf", str(downloads / "report.pdf")
    )

    assert result["error"] == "KiteError"
    assert "Permission denied" in str(result["message"])
    assert result["target"] == "the old report"
    assert result["files"] == ["report.pdf"]


def test_download_that_hits_the_file_size_limit_midway_leaves_the_target_untouched(tmp_path: Path) -> None:
    store = tmp_path / "store"
    pattern_file(store / "movie.mkv", 8 * MiB)
    downloads = tmp_path / "downloads"
    write_file(downloads / "movie.mkv", "the old movie")
    # RLIMIT_FSIZE makes writes past 2 MiB fail (EFBIG), a disk that fills up half way through.
    limited = "import resource, signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n" + (
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({2 * MiB}, {2 * MiB}))\n"
    )

    result = run_download_script(
        [sys.executable, "-c", limited + DOWNLOAD_SCRIPT], str(store), "movie.mkv", str(downloads / "movie.mkv")
    )

    assert result["error"] == "KiteError"
    assert "Cannot write" in str(result["message"])
    assert result["target"] == "the old movie"
    assert result["files"] == ["movie.mkv"]


@pytest.mark.skipif(not shutil.which("unshare") or os.geteuid() != 0, reason="needs root and unshare to mount a tmpfs")
def test_download_onto_a_full_disk_says_so_and_leaves_the_target_untouched(tmp_path: Path) -> None:
    store = tmp_path / "store"
    pattern_file(store / "dataset.csv", 4 * MiB)
    small_disk = tmp_path / "small-disk"
    small_disk.mkdir()
    # A private mount namespace: the 1 MiB tmpfs exists only for the child and disappears with it.
    prepare = f"from pathlib import Path\nPath({str(small_disk)!r}, 'dataset.csv').write_text('the old data')\n"
    mount = ["unshare", "--mount", "--propagation", "private", "sh", "-c"]
    script = 'mount -t tmpfs -o size=1m kite-test "$0" && exec "$@"'

    probe = subprocess.run([*mount, script, str(small_disk), "true"], capture_output=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.decode().strip()}")
    result = run_download_script(
        [*mount, script, str(small_disk), sys.executable, "-c", prepare + DOWNLOAD_SCRIPT],
        str(store),
        "dataset.csv",
        str(small_disk / "dataset.csv"),
    )

    assert result["error"] == StorageFullError.__name__
    assert "Not enough disk space" in str(result["message"])
    assert result["target"] == "the old data"
    assert result["files"] == ["dataset.csv"]


@async_test
async def test_files_named_outside_kites_own_rules_can_be_opened_and_deleted(
    backend: LocalFolderBackend, root: Path, tmp_path: Path
) -> None:
    """A name copied from a Mac (NFD), or with a leading space, is listed; Open and Delete must work on it."""
    odd = ["cafe\u0301.txt", " leading space.txt"]
    for name in odd:
        write_file(root / name, name)
    listed = {item.name: item.key async for item in backend.iter_objects()}
    for name in odd:
        await backend.download_file(listed[name], tmp_path / "copy.txt")
        assert (tmp_path / "copy.txt").read_text() == name
        await backend.delete_object(listed[name])
    assert all_files(root) == []


@async_test
async def test_temp_files_a_killed_copy_left_are_removed_once_stale(
    backend: LocalFolderBackend, root: Path, tmp_path: Path
) -> None:
    """A copy killed mid-way leaves a hidden temp file; the next listing removes it once nothing writes to it."""
    (root / "Scans").mkdir()
    stale = root / "Scans" / ".kite-tmp-0123456789abcdef"
    stale.write_bytes(b"half a scan")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = root / ".kite-tmp-fedcba9876543210"  # another Kite process is writing this one right now
    fresh.write_bytes(b"in progress")
    listed = [item async for item in backend.iter_objects()]
    assert listed == []
    assert not stale.exists() and fresh.exists()


class SavedPlan:
    """What the transfer queue keeps on disk for one upload."""

    def __init__(self) -> None:
        self.data: dict[str, object] | None = None

    async def save(self, data: dict[str, object] | None) -> None:
        self.data = data

    def state(self) -> ResumeState:
        return ResumeState(self.data, self.save)  # type: ignore[arg-type]


@async_test
async def test_a_copy_placed_just_before_a_kill_is_not_made_twice(
    backend: LocalFolderBackend, root: Path, tmp_path: Path
) -> None:
    """Kite placed the copy, then was killed before it wrote "done": the next run finds it instead of making
    "scan (1).pdf" — but a name that was already taken before, by another file, is not mistaken for it."""
    (root / "scan.pdf").write_bytes(b"someone else's scan")  # taken before: the copy goes to "scan (1).pdf"
    source = write_file(tmp_path / "scan.pdf", "my scan")
    plan = SavedPlan()
    first = await backend.upload_file(source, "scan.pdf", "application/pdf", resume=plan.state())
    assert first.name == "scan (1).pdf" and plan.data is not None

    again = await backend.upload_file(source, "scan.pdf", "application/pdf", resume=plan.state())
    assert again.key == first.key
    assert sorted(p.name for p in root.iterdir()) == ["scan (1).pdf", "scan.pdf"]

    source.write_text("my scan, edited")  # changed since: it is a new upload after all
    edited = await backend.upload_file(source, "scan.pdf", "application/pdf", resume=plan.state())
    assert edited.name == "scan (2).pdf"
