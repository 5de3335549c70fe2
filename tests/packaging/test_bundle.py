"""The PyInstaller bundle (``make dist`` → dist/kite-desktop/) starts, uploads and installs its desktop entry.

Runs when dist/kite-desktop/ exists, or with ``KITE_TEST_BUNDLE=1``, which builds the bundle first if it is
missing (about a minute; PyInstaller from the ``dist`` extra). Otherwise skipped. It tests whatever bundle
is in dist/: rebuild it (``make dist``) after changing the code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kite_desktop import __version__

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "dist" / "kite-desktop"
BUILD_ASKED = os.environ.get("KITE_TEST_BUNDLE") == "1"

pytestmark = pytest.mark.skipif(
    not (BUNDLE.is_dir() or BUILD_ASKED),
    reason="no bundle in dist/kite-desktop (make dist, or KITE_TEST_BUNDLE=1 to build it)",
)


@pytest.fixture(scope="module")
def bundle() -> Path:
    if not (BUNDLE / "kite-desktop").is_file():
        built = subprocess.run(
            [
                sys.executable,
                "-m",
                "PyInstaller",
                "--noconfirm",
                "--clean",
                "--log-level",
                "WARN",
                "--distpath",
                str(ROOT / "dist"),
                "--workpath",
                str(ROOT / "build" / "pyinstaller"),
                str(ROOT / "packaging" / "kite-desktop.spec"),
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return BUNDLE


def env_for(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return {
        **env,
        "QT_QPA_PLATFORM": "offscreen",
        "HOME": str(tmp_path / "home"),
        "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
    }


def run(command: list[str], tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=env_for(tmp_path))
    for bad in ("Traceback", "Exception ignored", "never awaited", "Could not load the Qt platform plugin"):
        assert bad not in done.stderr, done.stderr
    return done


def test_the_bundle_is_this_version_and_lean(bundle: Path, tmp_path: Path):
    assert run([str(bundle / "kite"), "--version"], tmp_path).stdout.strip() == f"kite {__version__}"
    assert run([str(bundle / "kite-desktop"), "--version"], tmp_path).stdout.strip() == f"kite-desktop {__version__}"
    internal = bundle / "_internal"
    names = {p.relative_to(internal).as_posix() for p in internal.rglob("*")}
    for unwanted in ("QtQml", "QtQuick", "QtWebEngine", "Qt3D", "QtMultimedia", "QtCharts", "libqgtk3", "numpy/"):
        assert not [n for n in names if unwanted in n], unwanted
    documents = [n for n in names if n.startswith("googleapiclient/discovery_cache/documents/")]
    assert documents == ["googleapiclient/discovery_cache/documents/drive.v3.json"]
    assert "kite_desktop/resources/icons/hicolor/256x256/apps/kite-desktop.png" in names


def test_the_bundle_starts_the_window_then_uploads_with_its_cli(bundle: Path, tmp_path: Path):
    profile = tmp_path / "profile"
    # The window starts offscreen, shows itself, then quits (the hidden --quit-after-start): exit 0 is the signal.
    started = run([str(bundle / "kite-desktop"), "--profile", str(profile), "--quit-after-start"], tmp_path)
    assert started.returncode == 0, started.stderr
    assert "window shown" in started.stdout
    assert (profile / "catalog.sqlite3").is_file() and (profile / "logs" / "kite.log").is_file()

    document = tmp_path / "report.pdf"
    document.write_bytes(b"%PDF-1.4\n" + os.urandom(200_000))
    uploaded = run(
        [str(bundle / "kite"), "--profile", str(profile), "upload", str(document), "--to", "Local"], tmp_path
    )
    assert uploaded.returncode == 0, uploaded.stderr
    stored = tmp_path / "home" / "Documents" / "Kite" / "report.pdf"
    assert stored.read_bytes() == document.read_bytes()

    listed = run([str(bundle / "kite"), "--profile", str(profile), "--json", "ls", "Local"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [d["name"] for d in json.loads(listed.stdout)] == ["report.pdf"]


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-utils not installed")
def test_the_bundle_installs_a_desktop_entry_that_starts_it(bundle: Path, tmp_path: Path):
    installed = run([str(bundle / "kite"), "desktop-entry", "install"], tmp_path)
    assert installed.returncode == 0, installed.stderr
    entry = tmp_path / "xdg-data" / "applications" / "kite-desktop.desktop"
    checked = subprocess.run(["desktop-file-validate", str(entry)], capture_output=True, text=True)
    assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout
    assert (tmp_path / "xdg-data" / "icons" / "hicolor" / "48x48" / "apps" / "kite-desktop.png").is_file()
    values = dict(line.split("=", 1) for line in entry.read_text().splitlines() if "=" in line)
    program = str(bundle.resolve() / "kite-desktop")
    assert values["Exec"] in (f"{program} %U", f'"{program}" %U')  # quoted only if the path needs it
    started = run([program, "--profile", str(tmp_path / "p"), "--quit-after-start"], tmp_path)
    assert started.returncode == 0 and "window shown" in started.stdout, started.stderr
