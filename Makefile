# Kite Desktop developer commands. `make run` starts the app, `make test` runs the tests; both set up
# what they need first (Debian/Ubuntu packages for Qt, a virtual environment in .venv).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# What Qt's xcb (X11) platform plugin and the tests need on a fresh Debian or Ubuntu machine.
APT_PACKAGES := libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libfreetype6 libdbus-1-3 \
	libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 \
	libxcb-shape0 libxcb-xinerama0 libxcb-xfixes0 libxcb-xkb1 fonts-dejavu-core xdg-utils xvfb xauth \
	desktop-file-utils appstream gnome-keyring dbus dbus-x11 libsecret-tools chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint dist system-deps venv screenshots clean

run: system-deps venv ## set up and start Kite Desktop
	$(BIN)/kite-desktop

test: system-deps venv ## set up and run every test (headless, with a throwaway real keyring)
	QT_QPA_PLATFORM=offscreen tests/with_keyring.sh $(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check kite_desktop tests docs bench packaging
	$(BIN)/ruff format --check kite_desktop tests docs bench packaging
	$(BIN)/mypy

dist: system-deps venv $(VENV)/.installed-dist ## build the one-folder bundle dist/kite-desktop/ (PyInstaller)
	@# PyInstaller needs the shared libpython. Debian's python3 does not link it: it is the package libpython3.X.
	@$(BIN)/python -c 'import os, sys, sysconfig as c; sys.exit(not os.path.exists(os.path.join(c.get_config_var("LIBDIR"), c.get_config_var("INSTSONAME"))))' || { \
	  lib=libpython$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	  if command -v apt-get >/dev/null && ! dpkg -s $$lib >/dev/null 2>&1; then \
	    echo "Installing $$lib"; $(SUDO) apt-get install -y -qq --no-install-recommends $$lib; fi; }
	$(BIN)/python -m PyInstaller --noconfirm --clean --log-level WARN \
	  --distpath dist --workpath build/pyinstaller packaging/kite-desktop.spec
	@du -sh dist/kite-desktop

$(VENV)/.installed-dist: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[test,dist]'
	touch $@

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null; then \
	    echo "Installing system packages:$$missing"; \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	  else echo "Please install the equivalents of:$$missing"; fi; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

screenshots: system-deps venv ## retake docs/screenshots/*.png on a virtual screen
	xvfb-run -a -s "-screen 0 1280x800x24" $(BIN)/python docs/screenshots/make_screenshots.py

clean:
	rm -rf $(VENV) build dist *.egg-info
