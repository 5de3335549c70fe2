"""PyInstaller's entry point for ``kite-desktop``, the window (pyproject's gui-scripts: kite_desktop.app:main)."""

import sys

from kite_desktop.app import main

if __name__ == "__main__":
    sys.exit(main())
