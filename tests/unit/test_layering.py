"""core, storage and the CLI never load Qt: ``kite`` works on a machine without a display or PySide6."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import kite_desktop

PACKAGE = Path(kite_desktop.__file__).parent
FORBIDDEN = ("PySide6", "shiboken6", "qasync", "kite_desktop.ui")
QT_FREE = sorted([*(PACKAGE / "core").rglob("*.py"), *(PACKAGE / "storage").rglob("*.py"), PACKAGE / "cli.py"])


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(tree: ast.AST, package: str, *, top_level_only: bool = False) -> list[tuple[int, str]]:
    """Every module an import statement in ``tree`` names; relative imports resolved against ``package``."""
    nodes = tree.body if top_level_only and isinstance(tree, ast.Module) else list(ast.walk(tree))
    found: list[tuple[int, str]] = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
    return found


def package_of(path: Path) -> str:
    name = module_name(path)
    return name if path.name == "__init__.py" else name.rsplit(".", 1)[0]


def forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f"{f}.") for f in FORBIDDEN)


def test_there_are_modules_to_check() -> None:
    names = {module_name(p) for p in QT_FREE}
    assert {"kite_desktop.cli", "kite_desktop.core.service", "kite_desktop.storage.local_backend"} <= names


@pytest.mark.parametrize(
    "source",
    [
        "import PySide6",
        "from PySide6.QtCore import QObject",
        "import qasync",
        "from kite_desktop import ui",
        "from kite_desktop.ui.main_window import MainWindow",
        "from ..ui import widgets",
        "def later():\n    from ..ui.launcher import run_gui",
    ],
)
def test_the_import_check_catches_each_way_of_importing_qt(source: str) -> None:
    names = imported_names(ast.parse(source), "kite_desktop.core")
    assert any(forbidden(name) for _, name in names)


@pytest.mark.parametrize("path", QT_FREE, ids=lambda p: module_name(p))
def test_no_qt_free_module_imports_qt_or_the_ui(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    bad = [(line, name) for line, name in imported_names(tree, package_of(path)) if forbidden(name)]
    assert bad == [], f"{path.relative_to(PACKAGE.parent)} imports {bad}"


def test_the_composition_root_imports_the_ui_only_inside_functions() -> None:
    """cli imports kite_desktop.app; app may start the window, but only when asked to."""
    path = PACKAGE / "app.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    names = imported_names(tree, "kite_desktop", top_level_only=True)
    assert any(name == "kite_desktop.core.service" for _, name in names)  # the check sees app's imports
    bad = [(line, name) for line, name in names if forbidden(name)]
    assert bad == []


IMPORT_EVERYTHING = """
import contextlib, importlib, io, json, pkgutil, sys
import kite_desktop.core, kite_desktop.storage
for package in (kite_desktop.core, kite_desktop.storage):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
import kite_desktop.app
from kite_desktop.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    main(["--help"])
status = main(["--profile", sys.argv[1], "--quiet", "connections"])
qt = ("PySide6", "shiboken6", "qasync")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in qt or m.startswith("kite_desktop.ui"))
print(json.dumps({"status": status, "loaded": loaded, "modules": len(sys.modules)}))
"""


def test_importing_everything_and_running_the_cli_loads_no_qt(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING, str(tmp_path / "profile")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )

    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["status"] == 0
    assert result["loaded"] == []
