"""What a person dropped becomes upload items, or skipped items with a reason; one bad item never stops the rest."""

from __future__ import annotations

import errno
import os
import socket
import threading
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from kite_desktop.core.intake import Intake, collect

from .support import write_file


def names(intake: Intake) -> list[str]:
    return sorted(item.name for item in intake.items)


def reasons(intake: Intake) -> dict[str, str]:
    return {
        Path(s.source).name if "://" not in s.source and not s.source.startswith("data:") else s.source: s.reason
        for s in intake.skipped
    }


def collect_in_thread(sources: list[str | os.PathLike[str]]) -> Intake:
    """collect() in a worker, so a FIFO that blocks it fails the test instead of hanging it."""
    result: list[Intake] = []
    worker = threading.Thread(target=lambda: result.append(collect(sources)), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert result, "collect() blocked"
    return result[0]


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return write_file(tmp_path / "good.txt", "fine")


@pytest.fixture
def sockets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[socket.socket]]:
    """Unix sockets, bound by relative name (a tmp path can exceed the 108-byte limit of a socket address)."""
    monkeypatch.chdir(tmp_path)
    made: list[socket.socket] = []
    yield made
    for sock in made:
        sock.close()


def bind_socket(sockets: list[socket.socket], relative: str) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sockets.append(sock)
    sock.bind(relative)


# -- ordinary files and folders ----------------------------------------------------------------------------------------
def test_a_zero_byte_file_is_uploaded_not_skipped(tmp_path: Path) -> None:
    intake = collect([write_file(tmp_path / "empty.txt")])

    assert [(item.name, item.size) for item in intake.items] == [("empty.txt", 0)]
    assert intake.skipped == []


def test_a_dropped_folder_keeps_its_structure(tmp_path: Path) -> None:
    folder = tmp_path / "Taxes"
    write_file(folder / "summary.txt", "1")
    write_file(folder / "2025" / "receipt.pdf", "22")
    write_file(folder / "2025" / "q1" / "invoice.pdf", "333")
    (folder / "empty-subfolder").mkdir()

    intake = collect([folder])

    assert names(intake) == ["Taxes/2025/q1/invoice.pdf", "Taxes/2025/receipt.pdf", "Taxes/summary.txt"]
    assert intake.total_bytes == 6
    assert {item.name: item.path for item in intake.items}["Taxes/2025/receipt.pdf"] == folder / "2025" / "receipt.pdf"
    assert intake.skipped == []


def test_a_folder_given_with_a_trailing_slash_keeps_its_name(tmp_path: Path) -> None:
    write_file(tmp_path / "Photos" / "a.jpg", "a")

    assert names(collect([f"{tmp_path / 'Photos'}/"])) == ["Photos/a.jpg"]


def test_a_vanished_path_is_skipped_and_the_rest_carries_on(tmp_path: Path, good: Path) -> None:
    intake = collect([tmp_path / "gone.txt", good])

    assert names(intake) == ["good.txt"]
    assert "Not found" in reasons(intake)["gone.txt"]


# -- symbolic links ----------------------------------------------------------------------------------------------------
def test_a_folder_with_a_symlink_loop_is_walked_once(tmp_path: Path) -> None:
    folder = tmp_path / "Loopy"
    write_file(folder / "sub" / "file.txt", "x")
    (folder / "sub" / "back-up").symlink_to(folder, target_is_directory=True)
    (folder / "self").symlink_to(".", target_is_directory=True)

    intake = collect_in_thread([folder])

    assert names(intake) == ["Loopy/sub/file.txt"]
    assert set(reasons(intake)) == {"back-up", "self"}
    assert all("not followed" in reason for reason in reasons(intake).values())


def test_a_symlink_pointing_outside_the_dropped_folder_is_skipped_and_listed(tmp_path: Path) -> None:
    write_file(tmp_path / "private" / "passwords.txt", "hunter2")
    folder = tmp_path / "Share"
    write_file(folder / "notes.txt", "ok")
    (folder / "sneaky.txt").symlink_to(tmp_path / "private" / "passwords.txt")
    (folder / "sneaky-dir").symlink_to(tmp_path / "private", target_is_directory=True)

    intake = collect([folder])

    assert names(intake) == ["Share/notes.txt"]
    assert "outside the dropped folder" in reasons(intake)["sneaky.txt"]
    assert "outside the dropped folder" in reasons(intake)["sneaky-dir"]
    assert all(item.path != tmp_path / "private" / "passwords.txt" for item in intake.items)


def test_a_symlink_to_a_file_inside_the_dropped_folder_is_included(tmp_path: Path) -> None:
    folder = tmp_path / "Project"
    write_file(folder / "docs" / "spec.md", "spec")
    (folder / "latest.md").symlink_to(Path("docs") / "spec.md")

    intake = collect([folder])

    assert names(intake) == ["Project/docs/spec.md", "Project/latest.md"]
    latest = next(item for item in intake.items if item.name == "Project/latest.md")
    assert latest.path == (folder / "docs" / "spec.md").resolve()
    assert latest.size == 4
    assert intake.skipped == []


def test_a_broken_symlink_is_skipped(tmp_path: Path, good: Path) -> None:
    (tmp_path / "dangling.txt").symlink_to(tmp_path / "nothing-here")

    intake = collect([tmp_path / "dangling.txt", good])

    assert names(intake) == ["good.txt"]
    assert "Broken symbolic link" in reasons(intake)["dangling.txt"]


def test_a_dropped_symlink_is_followed_once_under_its_own_name(tmp_path: Path) -> None:
    target = write_file(tmp_path / "real" / "Quarterly report v7 FINAL.pdf", "pdf")
    (tmp_path / "report.pdf").symlink_to(target)

    intake = collect([tmp_path / "report.pdf"])

    assert [(item.name, item.path) for item in intake.items] == [("report.pdf", target)]


# -- things that are not files -----------------------------------------------------------------------------------------
def test_a_fifo_is_skipped_without_being_opened(tmp_path: Path, good: Path) -> None:
    folder = tmp_path / "Dropped"
    write_file(folder / "inside.txt", "in")
    os.mkfifo(folder / "pipe-in-folder")
    os.mkfifo(tmp_path / "pipe")

    intake = collect_in_thread([tmp_path / "pipe", folder, good])

    assert names(intake) == ["Dropped/inside.txt", "good.txt"]
    assert "named pipe" in reasons(intake)["pipe"]
    assert "named pipe" in reasons(intake)["pipe-in-folder"]
    # Nobody holds the read end open: a non-blocking writer finds no reader.
    with pytest.raises(OSError) as raised:
        os.open(tmp_path / "pipe", os.O_WRONLY | os.O_NONBLOCK)
    assert raised.value.errno == errno.ENXIO


def test_a_unix_socket_is_skipped(tmp_path: Path, good: Path, sockets: list[socket.socket]) -> None:
    folder = tmp_path / "Dropped"
    write_file(folder / "inside.txt", "in")
    bind_socket(sockets, "kite.sock")
    bind_socket(sockets, "Dropped/agent.sock")
    (folder / "link-to-socket").symlink_to(folder / "agent.sock")

    intake = collect_in_thread([tmp_path / "kite.sock", folder, good])

    assert names(intake) == ["Dropped/inside.txt", "good.txt"]
    assert "a socket" in reasons(intake)["kite.sock"]
    assert "a socket" in reasons(intake)["agent.sock"]
    assert "a socket" in reasons(intake)["link-to-socket"]


# -- names -------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    ["Résumé 2025.pdf", "🎉 party 🎂.jpg", "שלום.txt", "تقرير.docx", "مرحبا - hello.txt", "日本語.md"],
)
def test_unicode_emoji_and_right_to_left_names_are_kept(tmp_path: Path, name: str) -> None:
    intake = collect([write_file(tmp_path / name, "x")])

    assert names(intake) == [name]
    assert intake.items[0].notes == ()


def test_control_characters_are_replaced_with_a_note(tmp_path: Path, good: Path) -> None:
    intake = collect([write_file(tmp_path / "bell\x07and\ttab.txt", "x"), good])

    assert names(intake) == ["bell_and_tab.txt", "good.txt"]
    item = next(i for i in intake.items if i.name == "bell_and_tab.txt")
    assert any("control characters" in note for note in item.notes)


def test_a_bidi_override_cannot_disguise_the_extension(tmp_path: Path) -> None:
    # Shown as "invoice_exe.pdf" in a file manager, really "invoice_fdp.exe".
    intake = collect([write_file(tmp_path / "invoice_\u202efdp.exe", "MZ")])

    assert names(intake) == ["invoice__fdp.exe"]
    assert "\u202e" not in intake.items[0].name
    assert any("control characters" in note for note in intake.items[0].notes)


def test_a_name_that_grows_past_255_bytes_is_shortened_keeping_the_extension(tmp_path: Path) -> None:
    # U+0958 is 3 bytes, but NFC turns it into two characters of 3 bytes each, so this legal 247-byte
    # file name becomes 490 bytes once normalised.
    on_disk = "\u0958" * 81 + ".txt"
    assert len(on_disk.encode()) <= 255
    folder = tmp_path / "Hindi"
    write_file(folder / on_disk, "x")

    intake = collect([folder])

    (item,) = intake.items
    base = item.name.removeprefix("Hindi/")
    assert item.name.startswith("Hindi/")
    assert base.endswith(".txt")
    assert len(base.encode()) <= 255
    assert base == unicodedata.normalize("NFC", base)
    assert any("shortened" in note for note in item.notes)


# -- URLs --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    ["https://example.com/report.pdf", "http://example.com/a%20b.txt", "data:text/plain;base64,aGVsbG8=", "ftp://h/x"],
)
def test_a_url_that_is_not_a_local_file_is_skipped(tmp_path: Path, good: Path, url: str) -> None:
    intake = collect([url, good])

    assert names(intake) == ["good.txt"]
    assert [(s.source, s.reason.split(".")[0]) for s in intake.skipped] == [(url, "Not a local file")]


def test_file_urls_with_percent_encoding_are_accepted(tmp_path: Path) -> None:
    spaced = write_file(tmp_path / "my report #1 (final).pdf", "a")
    unicode = write_file(tmp_path / "Résumé 🎉.txt", "b")
    folder = write_file(tmp_path / "Two Words" / "inner file.txt", "c").parent

    intake = collect([spaced.as_uri(), unicode.as_uri(), folder.as_uri(), f"file://localhost{quote(str(spaced))}"])

    assert names(intake) == [
        "Résumé 🎉.txt",
        "Two Words/inner file.txt",
        "my report #1 (final).pdf",
        "my report #1 (final).pdf",
    ]
    assert "%20" in spaced.as_uri()
    assert intake.skipped == []


def test_a_file_url_on_another_host_is_skipped(good: Path) -> None:
    intake = collect([f"file://fileserver{good}"])

    assert intake.items == []
    assert "Not a local file" in intake.skipped[0].reason


# -- everything at once ------------------------------------------------------------------------------------------------
def test_a_mixed_drop_uploads_the_good_items_and_explains_each_bad_one(tmp_path: Path) -> None:
    folder = tmp_path / "Mixed"
    write_file(folder / "a.txt", "a")
    write_file(folder / "sub" / "b.txt", "b")
    os.mkfifo(folder / "fifo")
    (folder / "out").symlink_to(tmp_path)
    (folder / "loop").symlink_to(folder, target_is_directory=True)

    intake = collect_in_thread(
        [folder, tmp_path / "missing.doc", "https://example.com/x.pdf", write_file(tmp_path / "empty.bin")]
    )

    assert names(intake) == ["Mixed/a.txt", "Mixed/sub/b.txt", "empty.bin"]
    assert set(reasons(intake)) == {"fifo", "out", "loop", "missing.doc", "https://example.com/x.pdf"}
    assert all(reason.strip() for reason in reasons(intake).values())
