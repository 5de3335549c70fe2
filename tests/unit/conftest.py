"""Fixtures for the non-GUI tests: every test gets its own HOME and profile inside its tmp_path."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

# The contract lives outside test modules; let pytest explain its failing asserts too.
pytest.register_assert_rewrite(f"{__name__.rpartition('.')[0]}.backend_contract")

# When a property test fails, hypothesis imports libcst to suggest a patch; libcst's import raises a
# DeprecationWarning (from mypy_extensions) that filterwarnings=error turns into an INTERNALERROR hiding the
# real failure. Import it once here, where that warning can be ignored.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    with contextlib.suppress(ImportError):
        import hypothesis.extra._patching  # noqa: F401

_XDG = ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_DOCUMENTS_DIR")


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME inside tmp_path, so ~/Documents/Kite (the default Local folder) is too; profile likewise."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in _XDG:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KITE_PROFILE_DIR", str(tmp_path / "profile"))
    return home


@pytest.fixture
def profile_dir(tmp_path: Path) -> Path:
    return tmp_path / "profile"


@pytest.fixture
def local_folder(home: Path) -> Path:
    """Where the default Local connection keeps documents."""
    return home / "Documents" / "Kite"


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory another user can enter (pytest's own tmp dirs are private to the user running it)."""
    path = Path(tempfile.mkdtemp(prefix="kite-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for directory, _, names in os.walk(path):
            os.chmod(directory, 0o700)
            for name in names:
                if not os.path.islink(os.path.join(directory, name)):
                    os.chmod(os.path.join(directory, name), 0o600)
        shutil.rmtree(path)
