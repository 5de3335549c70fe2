"""Desktop integration (kite_desktop/desktop_entry.py): the menu entry, icons, metainfo and autostart, in
throwaway XDG folders, checked with desktop-file-validate; and ``kite desktop-entry``."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from kite_desktop import cli, desktop_entry
from kite_desktop.desktop_entry import DesktopIntegrationError

ROOT = Path(__file__).resolve().parents[2]
needs_validator = pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="no desktop-file-utils")


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    data, config = tmp_path / "xdg-data", tmp_path / "xdg-config"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return data, config


def validate(path: Path) -> None:
    if shutil.which("desktop-file-validate") is None:
        return
    done = subprocess.run(["desktop-file-validate", str(path)], capture_output=True, text=True)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def entry_values(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def exec_arguments(value: str) -> list[str]:
    """Undo the Desktop Entry specification's escapes of an Exec value (the reverse of what Kite writes)."""
    value = re.sub(r"\\(.)", lambda m: {"s": " ", "n": "\n", "t": "\t", "r": "\r"}.get(m[1], m[1]), value)
    arguments, current, quoted, i, started = [], "", False, 0, False
    while i < len(value):
        c = value[i]
        if quoted and c == "\\" and i + 1 < len(value):
            current, i = current + value[i + 1], i + 2
            continue
        if c == '"':
            quoted, started = not quoted, True
        elif c == " " and not quoted:
            if started:
                arguments.append(current)
            current, started = "", False
        else:
            current, started = current + c, True
        i += 1
    if started:
        arguments.append(current)
    return [a.replace("%%", "%") for a in arguments]


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", header[16:24])
    return width, height


@needs_validator
def test_install_writes_a_valid_entry_that_starts_this_kite(xdg: tuple[Path, Path]):
    data, _ = xdg
    written = desktop_entry.install_desktop_entry()

    entry = data / "applications" / "kite-desktop.desktop"
    assert entry in written and set(written) == set(desktop_entry.installed_files())
    validate(entry)
    values = entry_values(entry)
    command = desktop_entry.launch_command()
    assert Path(command[0]).is_absolute()
    assert values["Exec"].endswith(" %U") and exec_arguments(values["Exec"].removesuffix(" %U")) == command
    assert values["TryExec"] == command[0]
    # Icon= names what was installed in the hicolor theme, at every size, and as SVG.
    assert values["Icon"] == "kite-desktop"
    for size in desktop_entry.ICON_SIZES:
        assert png_size(data / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "kite-desktop.png") == (size, size)
    assert (data / "icons" / "hicolor" / "scalable" / "apps" / "kite-desktop.svg").read_bytes() == (
        ROOT / "resources" / "icons" / "kite-desktop.svg"
    ).read_bytes()
    metainfo = data / "metainfo" / "io.github.kite.KiteDesktop.metainfo.xml"
    assert '<launchable type="desktop-id">kite-desktop.desktop</launchable>' in metainfo.read_text()
    assert not [p for p in data.rglob(".kite-tmp-*")]


@needs_validator
@pytest.mark.parametrize(
    "program",
    ["/opt/My Apps/kite-desktop", '/tmp/it\'s $HOME & "100%"/back\\slash`x`/kite-desktop', "/opt/kite/kite-desktop"],
)
def test_exec_is_quoted_as_the_specification_says(xdg, monkeypatch: pytest.MonkeyPatch, program: str):
    monkeypatch.setattr(desktop_entry, "launch_command", lambda: [program])
    desktop_entry.install_desktop_entry()
    entry = desktop_entry.desktop_file_path()
    validate(entry)
    assert exec_arguments(entry_values(entry)["Exec"].removesuffix(" %U")) == [program]


def test_a_path_with_a_newline_is_refused():
    with pytest.raises(DesktopIntegrationError, match="control characters"):
        desktop_entry.quote_exec_argument("/opt/a\nb/kite-desktop")


def test_the_frozen_bundle_points_at_its_own_kite_desktop(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bundle" / "kite"))
    assert desktop_entry.launch_command() == [str(tmp_path / "bundle" / "kite-desktop")]


def test_without_a_kite_desktop_program_the_entry_runs_the_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python3"))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert desktop_entry.launch_command() == [str(tmp_path / "python3"), "-m", "kite_desktop"]


def test_remove_takes_out_what_install_wrote(xdg: tuple[Path, Path]):
    data, _ = xdg
    (data / "applications").mkdir(parents=True)
    other = data / "applications" / "someone-else.desktop"
    other.write_text("[Desktop Entry]\n")
    written = desktop_entry.install_desktop_entry()
    assert sorted(desktop_entry.remove_desktop_entry()) == sorted(written)
    assert not any(p.exists() for p in written)
    assert other.exists()
    assert desktop_entry.remove_desktop_entry() == []


def test_relative_xdg_dirs_are_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", "relative/share")
    monkeypatch.setenv("XDG_CONFIG_HOME", "")
    assert desktop_entry.desktop_file_path() == tmp_path / ".local/share/applications/kite-desktop.desktop"
    assert desktop_entry.autostart_path() == tmp_path / ".config/autostart/kite-desktop.desktop"


@needs_validator
def test_autostart_on_and_off(xdg: tuple[Path, Path]):
    _, config = xdg
    assert not desktop_entry.autostart_enabled()
    path = desktop_entry.set_autostart(True)
    assert path == config / "autostart" / "kite-desktop.desktop"
    validate(path)
    values = entry_values(path)
    assert values["X-GNOME-Autostart-enabled"] == "true"
    # No %U (nothing to open at login), and straight to the tray.
    assert exec_arguments(values["Exec"]) == [*desktop_entry.launch_command(), "--minimised"]
    assert desktop_entry.autostart_enabled()

    # A desktop's own switch (GNOME Tweaks, KDE's autostart page) counts as off.
    path.write_text(path.read_text().replace("X-GNOME-Autostart-enabled=true", "X-GNOME-Autostart-enabled=false"))
    assert not desktop_entry.autostart_enabled()
    path.write_text(path.read_text() + "Hidden=true\n")
    assert not desktop_entry.autostart_enabled()

    assert desktop_entry.set_autostart(False) is None
    assert not path.exists() and not desktop_entry.autostart_enabled()
    desktop_entry.set_autostart(False)  # already off: nothing to do, no error


def test_an_unwritable_folder_is_a_clear_error(xdg: tuple[Path, Path]):
    data, _ = xdg
    data.mkdir(parents=True)
    (data / "applications").write_text("not a folder")
    with pytest.raises(DesktopIntegrationError, match="Could not write") as caught:
        desktop_entry.install_desktop_entry()
    assert "applications" in caught.value.message and caught.value.hint


@pytest.mark.parametrize("platform", ["win32", "darwin"])
def test_other_systems_are_told_plainly(xdg: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, platform: str):
    data, config = xdg
    monkeypatch.setattr(sys, "platform", platform)
    assert not desktop_entry.supported()
    for call in (desktop_entry.install_desktop_entry, desktop_entry.remove_desktop_entry):
        with pytest.raises(DesktopIntegrationError, match="Linux desktop feature"):
            call()
    with pytest.raises(DesktopIntegrationError):
        desktop_entry.set_autostart(True)
    assert desktop_entry.set_autostart(False) is None
    assert not desktop_entry.autostart_enabled()
    assert not data.exists() and not config.exists()


def test_the_icons_are_generated_at_every_size():
    for size in desktop_entry.ICON_SIZES:
        path = ROOT / "resources" / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "kite-desktop.png"
        assert png_size(path) == (size, size)
    assert (ROOT / "packaging" / "kite-desktop.ico").read_bytes()[:4] == b"\x00\x00\x01\x00"
    assert (ROOT / "packaging" / "kite-desktop.icns").read_bytes()[:4] == b"icns"
    shipped = entry_values(ROOT / "resources" / "kite-desktop.desktop")
    assert shipped["Icon"] == desktop_entry.ICON_NAME


# -- kite desktop-entry ----------------------------------------------------------------------------------
@needs_validator
def test_the_cli_installs_and_removes_the_entry(xdg: tuple[Path, Path], tmp_path: Path):
    data, _ = xdg
    env = {**os.environ, "PYTHONWARNINGS": "error"}

    def kite(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kite_desktop.cli", *args], capture_output=True, text=True, env=env, timeout=60
        )

    installed = kite("desktop-entry", "install")
    assert installed.returncode == 0, installed.stderr
    entry = data / "applications" / "kite-desktop.desktop"
    assert str(entry) in installed.stdout
    validate(entry)
    # It needs no profile: nothing was created in the default one.
    assert not (tmp_path / "home" / ".local" / "share" / "kite-desktop").exists()

    removed = kite("--json", "desktop-entry", "remove")
    assert removed.returncode == 0, removed.stderr
    report = json.loads(removed.stdout)
    assert report["action"] == "remove" and str(entry) in report["files"] and not entry.exists()

    again = kite("desktop-entry", "remove", "-q")
    assert again.returncode == 0 and again.stdout == "" and again.stderr == ""


def test_the_cli_says_why_it_cannot(xdg: tuple[Path, Path]):
    pretend_windows = (
        "import sys; from kite_desktop.cli import main; sys.platform = 'win32'; sys.exit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", pretend_windows, "desktop-entry", "install"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == cli.EXIT_ERROR
    assert done.stderr.startswith("kite: Desktop integration: Desktop entries are a Linux desktop feature"), done.stderr
    assert not xdg[0].exists()
    with pytest.raises(SystemExit) as usage:
        cli.main(["desktop-entry", "update"])
    assert usage.value.code == cli.EXIT_USAGE
