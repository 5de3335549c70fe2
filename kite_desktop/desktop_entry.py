"""Desktop integration on Linux: the applications-menu entry, its icons, the AppStream metainfo, and autostart.

Everything follows the freedesktop.org specifications and goes to the user's own XDG directories, never to
system ones:

- ``install_desktop_entry()`` writes ``$XDG_DATA_HOME/applications/kite-desktop.desktop`` (``$XDG_DATA_HOME``
  defaults to ``~/.local/share``) with ``Exec=`` set to the absolute path of the ``kite-desktop`` being run
  (the bundle's own executable when frozen, else the one on ``PATH`` or beside this Python, else
  ``python -m kite_desktop``), the icons under ``icons/hicolor/<n>x<n>/apps/`` and ``scalable/apps/``, and
  ``metainfo/io.github.kite.KiteDesktop.metainfo.xml``. ``remove_desktop_entry()`` removes them again.
- ``set_autostart(True)`` writes ``$XDG_CONFIG_HOME/autostart/kite-desktop.desktop`` (default
  ``~/.config``); ``set_autostart(False)`` removes it; ``autostart_enabled()`` says whether it is there and
  not switched off (``Hidden=true`` or ``X-GNOME-Autostart-enabled=false``).

On Windows and macOS there is no such thing: an installer makes the Start-menu shortcut, and a macOS app
is its own entry. There ``install_desktop_entry``, ``remove_desktop_entry`` and ``set_autostart(True)`` raise
:class:`DesktopIntegrationError`, ``set_autostart(False)`` does nothing and ``autostart_enabled()`` is False.
``supported()`` tells beforehand. This module does not import Qt.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from kite_desktop import APP_ID
from kite_desktop.core.atomic import write_atomic
from kite_desktop.core.errors import KiteError

DESKTOP_FILE = f"{APP_ID}.desktop"
"""Also the desktop id Qt reports (``QGuiApplication.setDesktopFileName``) and the metainfo's launchable."""
ICON_NAME = APP_ID
"""The .desktop file's ``Icon=``: the name of the PNGs and the SVG installed in the hicolor theme."""
METAINFO_FILE = "io.github.kite.KiteDesktop.metainfo.xml"
ICON_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)

_RESERVED = re.compile(r"""[\s"'\\><~|&;$*?#()`]""")
_FILE_MODE = 0o644


class DesktopIntegrationError(KiteError):
    """Desktop integration is not possible here, or its files cannot be written."""

    title = "Desktop integration"


def supported() -> bool:
    """True on Linux and the BSDs: desktops that read freedesktop.org .desktop files."""
    return not (sys.platform.startswith(("win", "cygwin", "darwin")) or sys.platform == "msys")


def _require_support() -> None:
    if not supported():
        where = "macOS" if sys.platform == "darwin" else "Windows"
        raise DesktopIntegrationError(
            f"Desktop entries are a Linux desktop feature; on {where} the installer adds Kite to the system.",
            hint="Install Kite with its installer package instead.",
        )


def _xdg_dir(variable: str, default: str) -> Path:
    value = os.environ.get(variable, "")
    # The XDG Base Directory spec: a relative path is invalid and must be ignored.
    return Path(value) if value and os.path.isabs(value) else Path.home() / default


def data_home() -> Path:
    return _xdg_dir("XDG_DATA_HOME", ".local/share")


def config_home() -> Path:
    return _xdg_dir("XDG_CONFIG_HOME", ".config")


def desktop_file_path() -> Path:
    return data_home() / "applications" / DESKTOP_FILE


def autostart_path() -> Path:
    return config_home() / "autostart" / DESKTOP_FILE


def launch_command() -> list[str]:
    """The command that starts this installation's window, as absolute paths."""
    if getattr(sys, "frozen", False):  # a PyInstaller bundle: kite and kite-desktop sit side by side
        name = "kite-desktop.exe" if sys.platform == "win32" else "kite-desktop"
        return [str(Path(sys.executable).with_name(name))]
    beside = Path(sys.executable).parent / "kite-desktop"  # a virtualenv that is not on PATH
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside.absolute())]
    found = shutil.which("kite-desktop")
    if found:
        return [str(Path(found).absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "kite_desktop"]


def quote_exec_argument(argument: str) -> str:
    """One argument of an ``Exec=`` value, quoted and escaped as the Desktop Entry specification says."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in argument):
        raise DesktopIntegrationError(
            f"The path {argument!r} contains control characters, which a desktop entry cannot hold.",
            hint="Install Kite in a folder with a plainer name.",
        )
    if argument == "" or _RESERVED.search(argument):
        argument = '"' + re.sub(r'([`"$\\])', r"\\\1", argument) + '"'
    # Then the escapes of any string value: a literal % is %%, and a backslash is doubled once more.
    return argument.replace("%", "%%").replace("\\", "\\\\")


def exec_line(command: list[str], field_codes: str = "") -> str:
    return " ".join([*(quote_exec_argument(a) for a in command), *([field_codes] if field_codes else [])])


def _resource(package: str, *parts: str) -> Traversable:
    node: Traversable = resources.files(package)
    for part in parts:  # one at a time: not every Traversable takes several
        node = node.joinpath(part)
    return node


def _entry_text(command: list[str], *, autostart: bool) -> str:
    """The shipped .desktop file with ``Exec=`` (and ``TryExec=``) pointing at ``command``."""
    lines = []
    for line in _resource("kite_desktop.resources", DESKTOP_FILE).read_text(encoding="utf-8").splitlines():
        if line.startswith("TryExec="):
            continue
        if line.startswith("Exec="):
            # TryExec hides the entry once the program is gone (an uninstalled bundle), instead of a dead icon.
            lines.append("TryExec=" + command[0].replace("\\", "\\\\"))
            line = "Exec=" + exec_line(command, "" if autostart else "%U")
        lines.append(line)
    if autostart:
        lines.append("X-GNOME-Autostart-enabled=true")
    return "\n".join(lines) + "\n"


def _icon_files() -> list[tuple[Traversable, Path]]:
    """(shipped file, path below ``icons/hicolor``) for every size and the scalable SVG."""
    icons = "kite_desktop.resources.icons"
    pairs = [
        (
            _resource(icons, "hicolor", f"{n}x{n}", "apps", f"{ICON_NAME}.png"),
            Path(f"{n}x{n}", "apps", f"{ICON_NAME}.png"),
        )
        for n in ICON_SIZES
    ]
    pairs.append((_resource(icons, f"{ICON_NAME}.svg"), Path("scalable", "apps", f"{ICON_NAME}.svg")))
    return pairs


def _write(path: Path, data: bytes) -> None:
    try:
        write_atomic(path, data, mode=_FILE_MODE)
    except OSError as exc:
        raise DesktopIntegrationError(
            f"Could not write {path}: {exc.strerror or exc}.", hint="Check that the folder is writable."
        ) from exc


def installed_files() -> list[Path]:
    """Every file ``install_desktop_entry`` writes, whether or not it is there now."""
    share = data_home()
    hicolor = share / "icons" / "hicolor"
    return [
        share / "applications" / DESKTOP_FILE,
        *(hicolor / below for _, below in _icon_files()),
        share / "metainfo" / METAINFO_FILE,
    ]


def install_desktop_entry() -> list[Path]:
    """Put Kite in the applications menu of this user's desktop; returns the files written."""
    _require_support()
    share = data_home()
    hicolor = share / "icons" / "hicolor"
    written: list[Path] = []
    # Icons first, so the menu entry never appears without its icon.
    for shipped, below in _icon_files():
        if not shipped.is_file():
            raise DesktopIntegrationError(f"This installation of Kite lacks its icon {below}.", hint="Reinstall Kite.")
        _write(hicolor / below, shipped.read_bytes())
        written.append(hicolor / below)
    with contextlib.suppress(OSError):
        os.utime(hicolor)  # GTK and Qt re-read an icon theme whose folder changed
    metainfo = share / "metainfo" / METAINFO_FILE
    _write(metainfo, _resource("kite_desktop.resources", METAINFO_FILE).read_bytes())
    written.append(metainfo)
    entry = desktop_file_path()
    _write(entry, _entry_text(launch_command(), autostart=False).encode())
    written.append(entry)
    return written


def _remove(paths: list[Path]) -> list[Path]:
    removed = []
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise DesktopIntegrationError(f"Could not remove {path}: {exc.strerror or exc}.") from exc
        removed.append(path)
    return removed


def remove_desktop_entry() -> list[Path]:
    """Take Kite out of the applications menu again; returns the files removed (autostart is left alone)."""
    _require_support()
    removed = _remove(installed_files())
    with contextlib.suppress(OSError):
        os.utime(data_home() / "icons" / "hicolor")
    return removed


def set_autostart(enabled: bool) -> Path | None:
    """Start Kite when the user logs in, or no longer. Returns the autostart file written, else None."""
    if not enabled:
        if supported():
            _remove([autostart_path()])
        return None
    _require_support()
    path = autostart_path()
    _write(path, _entry_text([*launch_command(), "--minimised"], autostart=True).encode())  # straight to the tray
    return path


def autostart_enabled() -> bool:
    """Whether this user's session starts Kite at login (an autostart entry that is not switched off)."""
    if not supported():
        return False
    try:
        text = autostart_path().read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    values: dict[str, str] = {}
    group = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            group = line
        elif group == "[Desktop Entry]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key.strip()] = value
    return values.get("Hidden", "false").strip() != "true" and (
        values.get("X-GNOME-Autostart-enabled", "true").strip() != "false"
    )
