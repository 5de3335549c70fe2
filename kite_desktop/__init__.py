"""Kite Desktop: keep your documents in storage you own."""

__version__ = "0.1.0"
APP_NAME = "Kite"
APP_ID = "kite-desktop"
