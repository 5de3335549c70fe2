"""PyInstaller's entry point for ``kite``, the command line (pyproject's scripts: kite_desktop.cli:main)."""

import sys

from kite_desktop.cli import main

if __name__ == "__main__":
    sys.exit(main())
