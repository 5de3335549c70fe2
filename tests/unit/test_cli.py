"""The ``kite`` command, run as a real subprocess on an isolated HOME and profile."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from kite_desktop import __version__

from .support import MiB, all_files, hand_to_runner, pattern_file, unprivileged_python, write_file

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_REAUTH, EXIT_ERROR = range(6)
CLI_MAIN = "import sys\nfrom kite_desktop.cli import main\nsys.exit(main(sys.argv[1:]))"

Kite = Callable[..., subprocess.CompletedProcess[str]]


def cli_env(home: Path, decoy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["HOME"] = str(home)
    # Every command passes --profile; if one were ignored, it would land here and the test would notice.
    env["KITE_PROFILE_DIR"] = str(decoy)
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_DOCUMENTS_DIR"):
        env.pop(name, None)
    return env


def run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)


@pytest.fixture
def decoy(tmp_path: Path) -> Path:
    return tmp_path / "decoy-profile"


@pytest.fixture
def kite(home: Path, profile_dir: Path, decoy: Path, tmp_path: Path) -> Kite:
    """``kite --profile PROFILE ARGS...`` in a subprocess; global options go before the command, as people type them."""

    def kite(*args: str, cwd: Path = tmp_path) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "kite_desktop.cli", "--profile", str(profile_dir), *args]
        return run(argv, cli_env(home, decoy), cwd)

    return kite


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """Some files and a folder to upload."""
    src = tmp_path / "src"
    write_file(src / "letter.txt", "Dear Kite,")
    pattern_file(src / "scan.pdf", 2 * MiB + 3)
    write_file(src / "Project" / "plan.md", "# Plan")
    write_file(src / "Project" / "assets" / "logo.svg", "<svg/>")
    return src


def uploaded_names(local_folder: Path) -> list[str]:
    return all_files(local_folder) if local_folder.exists() else []


# -- reading -----------------------------------------------------------------------------------------------------------
def test_connections_lists_the_local_connection(kite: Kite, local_folder: Path) -> None:
    result = kite("connections")

    assert result.returncode == EXIT_OK, result.stderr
    (line,) = result.stdout.splitlines()
    name, provider, status, where, connection_id = line.split("\t")
    assert (name, provider, status, where) == ("Local", "Local folder", "Not checked yet", str(local_folder))
    assert connection_id.startswith("local-")


def test_connections_json(kite: Kite, local_folder: Path) -> None:
    result = kite("--json", "connections")

    assert result.returncode == EXIT_OK, result.stderr
    (connection,) = json.loads(result.stdout)
    assert connection["name"] == "Local"
    assert connection["provider"] == "local"
    assert connection["folder"] == str(local_folder)


def test_ls_json_is_valid_json_describing_each_document(kite: Kite, docs: Path) -> None:
    assert kite("upload", str(docs / "letter.txt"), str(docs / "Project"), "--to", "Local").returncode == EXIT_OK

    result = kite("ls", "Local", "--json")

    assert result.returncode == EXIT_OK, result.stderr
    documents = json.loads(result.stdout)
    assert sorted(d["name"] for d in documents) == ["Project/assets/logo.svg", "Project/plan.md", "letter.txt"]
    letter = next(d for d in documents if d["name"] == "letter.txt")
    assert letter["size"] == len("Dear Kite,")
    assert letter["type"] == "text/plain"
    assert letter["id"] and letter["key"] == "letter.txt"


def test_ls_of_an_empty_connection_says_so(kite: Kite) -> None:
    result = kite("ls", "local")  # names match ignoring case

    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout == ""
    assert "holds no documents yet" in result.stderr


# -- upload ------------------------------------------------------------------------------------------------------------
def test_upload_of_files_and_a_folder(kite: Kite, docs: Path, local_folder: Path) -> None:
    result = kite("upload", str(docs / "letter.txt"), str(docs / "scan.pdf"), str(docs / "Project"), "--to", "Local")

    assert result.returncode == EXIT_OK, result.stderr
    assert sorted(result.stdout.splitlines()) == [
        "uploaded Project/assets/logo.svg",
        "uploaded Project/plan.md",
        "uploaded letter.txt",
        "uploaded scan.pdf",
    ]
    assert "4 uploaded to Local, 0 not uploaded." in result.stderr
    assert uploaded_names(local_folder) == ["Project/assets/logo.svg", "Project/plan.md", "letter.txt", "scan.pdf"]
    assert (local_folder / "scan.pdf").read_bytes() == (docs / "scan.pdf").read_bytes()


def test_upload_with_a_missing_path_uploads_the_rest_and_exits_1(kite: Kite, docs: Path, local_folder: Path) -> None:
    missing = docs / "no-such-file.txt"

    result = kite("upload", str(docs / "letter.txt"), str(missing), str(docs / "Project"), "--to", "Local")

    assert result.returncode == EXIT_PARTIAL
    assert f"kite: skipped {missing}: Not found" in result.stderr
    assert "3 uploaded to Local, 1 not uploaded." in result.stderr
    assert uploaded_names(local_folder) == ["Project/assets/logo.svg", "Project/plan.md", "letter.txt"]


def test_upload_json_reports_uploaded_and_skipped(kite: Kite, docs: Path) -> None:
    result = kite("--json", "upload", str(docs / "letter.txt"), "https://example.com/x.pdf", "--to", "Local")

    assert result.returncode == EXIT_PARTIAL
    report = json.loads(result.stdout)
    assert [u["name"] for u in report["uploaded"]] == ["letter.txt"]
    assert report["uploaded"][0]["document_id"]
    assert report["failed"] == []
    assert [s["source"] for s in report["skipped"]] == ["https://example.com/x.pdf"]


def test_uploading_an_empty_folder_is_a_usage_error(kite: Kite, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()

    result = kite("upload", str(tmp_path / "empty"), "--to", "Local")

    assert result.returncode == EXIT_USAGE
    assert "nothing to upload" in result.stderr


@pytest.mark.parametrize("position", ["before the command", "after the command"])
def test_quiet_prints_nothing_when_everything_works(kite: Kite, docs: Path, local_folder: Path, position: str) -> None:
    args = ["upload", str(docs / "letter.txt"), str(docs / "Project"), "--to", "Local"]
    result = kite("--quiet", *args) if position == "before the command" else kite(*args, "-q")

    assert result.returncode == EXIT_OK
    assert (result.stdout, result.stderr) == ("", "")
    assert uploaded_names(local_folder) == ["Project/assets/logo.svg", "Project/plan.md", "letter.txt"]


def test_quiet_still_prints_errors(kite: Kite, docs: Path) -> None:
    result = kite("-q", "upload", str(docs / "letter.txt"), str(docs / "gone.txt"), "--to", "Local")

    assert result.returncode == EXIT_PARTIAL
    assert result.stdout == ""
    assert "skipped" in result.stderr and "gone.txt" in result.stderr


def test_an_unreadable_file_fails_with_permission_denied_and_the_rest_upload(shared_tmp: Path) -> None:
    # Root reads a mode-000 file anyway, so as root the command runs as 'nobody' (see unprivileged_python).
    home = shared_tmp / "home"
    home.mkdir()
    hand_to_runner(home)
    src = shared_tmp / "src"
    write_file(src / "readable.txt", "fine")
    write_file(src / "Folder" / "also-readable.txt", "fine too")
    secret = write_file(src / "Folder" / "secret.txt", "no")
    secret.chmod(0)
    argv = [*unprivileged_python(CLI_MAIN), "--profile", str(home / "profile"), "upload", str(src / "readable.txt")]
    argv += [str(src / "Folder"), "--to", "Local"]

    result = run(argv, cli_env(home, home / "decoy"), home)

    assert result.returncode == EXIT_PARTIAL, result.stderr
    assert "secret.txt cannot be read: permission denied" in result.stderr
    assert "2 uploaded to Local, 1 not uploaded." in result.stderr
    assert all_files(home / "Documents" / "Kite") == ["Folder/also-readable.txt", "readable.txt"]


# -- get and rm --------------------------------------------------------------------------------------------------------
def test_get_with_output_file_and_output_folder(kite: Kite, docs: Path, tmp_path: Path) -> None:
    assert kite("upload", str(docs / "scan.pdf"), str(docs / "Project"), "--to", "Local").returncode == EXIT_OK
    out = tmp_path / "out"
    out.mkdir()

    to_file = kite("get", "Local", "scan.pdf", "-o", str(out / "copy.pdf"))
    to_folder = kite("get", "Local", "Project/plan.md", "-o", str(out))

    assert to_file.returncode == EXIT_OK, to_file.stderr
    assert to_file.stdout.strip() == str(out / "copy.pdf")
    assert (out / "copy.pdf").read_bytes() == (docs / "scan.pdf").read_bytes()
    assert to_folder.returncode == EXIT_OK, to_folder.stderr
    assert (out / "plan.md").read_text() == "# Plan"
    assert sorted(p.name for p in out.iterdir()) == ["copy.pdf", "plan.md"]


def test_get_without_output_saves_in_the_current_folder(kite: Kite, docs: Path, tmp_path: Path) -> None:
    kite("upload", str(docs / "letter.txt"), "--to", "Local")
    here = tmp_path / "here"
    here.mkdir()

    result = kite("get", "Local", "letter.txt", cwd=here)

    assert result.returncode == EXIT_OK, result.stderr
    assert (here / "letter.txt").read_text() == "Dear Kite,"


def test_rm_deletes_the_document(kite: Kite, docs: Path, local_folder: Path) -> None:
    kite("upload", str(docs / "letter.txt"), str(docs / "scan.pdf"), "--to", "Local")

    result = kite("rm", "Local", "letter.txt")

    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout.strip() == "deleted letter.txt"
    assert uploaded_names(local_folder) == ["scan.pdf"]
    assert [d["name"] for d in json.loads(kite("--json", "ls", "Local").stdout)] == ["scan.pdf"]
    again = kite("rm", "Local", "letter.txt")
    assert again.returncode == EXIT_NOT_FOUND
    assert "No document 'letter.txt'" in again.stderr


# -- errors and exit statuses ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [("ls", "Nope"), ("get", "Nope", "a.txt"), ("rm", "Nope", "a.txt"), ("upload", "{file}", "--to", "Nope")],
    ids=["ls", "get", "rm", "upload"],
)
def test_an_unknown_connection_exits_3_and_names_the_ones_there_are(
    kite: Kite, docs: Path, args: tuple[str, ...]
) -> None:
    result = kite(*(a.format(file=docs / "letter.txt") for a in args))

    assert result.returncode == EXIT_NOT_FOUND
    assert result.stderr.startswith("kite: No connection named 'Nope'.")
    assert "Connections: Local." in result.stderr
    assert result.stdout == ""


def test_a_usage_error_exits_2(kite: Kite, docs: Path) -> None:
    result = kite("upload", str(docs / "letter.txt"))  # no --to

    assert result.returncode == EXIT_USAGE
    assert "--to" in result.stderr


def test_options_before_the_command_name_are_honoured(
    home: Path, decoy: Path, tmp_path: Path, local_folder: Path
) -> None:
    chosen = tmp_path / "chosen-profile"
    argv = [sys.executable, "-m", "kite_desktop.cli", "--profile", str(chosen), "--json", "connections"]

    result = run(argv, cli_env(home, decoy), tmp_path)

    assert result.returncode == EXIT_OK, result.stderr
    assert json.loads(result.stdout)[0]["folder"] == str(local_folder)
    assert (chosen / "settings.json").exists()
    assert not decoy.exists()


def test_a_damaged_catalog_is_reported_and_the_command_still_works(kite: Kite, docs: Path, profile_dir: Path) -> None:
    kite("upload", str(docs / "letter.txt"), "--to", "Local")
    (profile_dir / "catalog.sqlite3").write_bytes(b"this is not a database" * 100)

    result = kite("ls", "Local")

    assert result.returncode == EXIT_OK, result.stderr
    assert "catalog was damaged" in result.stderr
    assert "letter.txt" in result.stdout


def test_a_catalog_from_a_newer_kite_exits_5_and_is_left_alone(kite: Kite, profile_dir: Path) -> None:
    kite("connections")
    db = sqlite3.connect(profile_dir / "catalog.sqlite3")
    db.execute("PRAGMA user_version = 999")
    db.close()

    result = kite("ls", "Local")

    assert result.returncode == EXIT_ERROR
    assert "newer Kite" in result.stderr
    assert not list(profile_dir.glob("catalog.sqlite3.corrupt-*"))


def test_set_folder_moves_the_local_connection(kite: Kite, tmp_path: Path) -> None:
    target = tmp_path / "Elsewhere"

    result = kite("set-folder", "Local", str(target))

    assert result.returncode == EXIT_OK, result.stderr
    assert target.is_dir()
    assert json.loads(kite("--json", "connections").stdout)[0]["folder"] == str(target)


def test_the_installed_kite_command_runs(home: Path, decoy: Path, tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("kite")
    if not script.exists():
        pytest.skip("the kite console script is not installed beside this interpreter")

    result = run([str(script), "--version"], cli_env(home, decoy), tmp_path)

    assert result.returncode == EXIT_OK
    assert result.stdout.strip() == f"kite {__version__}"
