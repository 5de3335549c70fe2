"""The window, tray and dialogs: the only package that imports PySide6 and qasync."""
