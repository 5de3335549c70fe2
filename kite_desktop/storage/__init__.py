"""Storage backends. SDK and HTTP types never leave this package; callers see ``kite_desktop.core`` types."""
