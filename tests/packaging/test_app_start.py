"""The installed program starts and stops cleanly, also with transfers running, from a wheel too."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def env_for(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path / "home"), "PYTHONWARNINGS": "error"}


def test_the_app_starts_and_quits_cleanly_while_uploading(tmp_path: Path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(64 * 1024 * 1024))
    done = subprocess.run(
        [sys.executable, "-m", "kite_desktop", "--profile", str(tmp_path / "profile"), "--quit-after-start", str(big)],
        env=env_for(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "window shown" in done.stdout
    for bad in ("Traceback", "Task was destroyed but it is pending", "Exception ignored", "never awaited"):
        assert bad not in done.stderr, done.stderr
    assert (tmp_path / "profile" / "catalog.sqlite3").exists()
    local = tmp_path / "home" / "Documents" / "Kite"
    assert not [p for p in local.rglob("*") if p.name.startswith(".kite-tmp-")], "no partial file left behind"


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-utils not installed")
def test_the_desktop_entry_is_valid():
    done = subprocess.run(
        ["desktop-file-validate", str(ROOT / "resources" / "kite-desktop.desktop")], capture_output=True, text=True
    )
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("appstreamcli") is None, reason="appstream not installed")
def test_the_appstream_metainfo_is_valid():
    done = subprocess.run(
        ["appstreamcli", "validate", "--no-net", str(ROOT / "resources" / "io.github.kite.KiteDesktop.metainfo.xml")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_wheel_installs_and_the_app_starts_from_it(tmp_path: Path):
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("kite_desktop-*.whl")
    # Everything the program is made of is in the wheel. (Below, the venv sees this environment's packages,
    # and an editable install of Kite among them would hide a subpackage the wheel lacks.)
    shipped = set(zipfile.ZipFile(wheel).namelist())
    sources = {
        f"kite_desktop/{p.relative_to(ROOT / 'kite_desktop').as_posix()}" for p in (ROOT / "kite_desktop").rglob("*.py")
    }
    resources = {
        f"kite_desktop/resources/{p.relative_to(ROOT / 'resources').as_posix()}"
        for p in (ROOT / "resources").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert not (sources | resources) - shipped, sorted((sources | resources) - shipped)
    target = tmp_path / "venv"
    # The dependencies come from this environment; the program itself only from the wheel.
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(target)
    python = target / "bin" / "python"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    where = subprocess.run(
        [
            str(python),
            "-c",
            "import kite_desktop, kite_desktop.ui.icons as i; print(kite_desktop.__file__); "
            "print(i.icon_path('kite-desktop'))",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env_for(tmp_path),
    )
    module, icon = where.stdout.split()
    assert module.startswith(str(target)) and icon.startswith(str(target)), where.stdout
    started = subprocess.run(
        [str(target / "bin" / "kite-desktop"), "--profile", str(tmp_path / "p"), "--quit-after-start"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env_for(tmp_path),
    )
    assert started.returncode == 0 and "window shown" in started.stdout, started.stderr
    version = subprocess.run(
        [str(target / "bin" / "kite"), "--version"], capture_output=True, text=True, cwd=tmp_path, env=env_for(tmp_path)
    )
    assert version.stdout.startswith("kite ")
