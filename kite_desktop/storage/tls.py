"""Which certificate authorities Kite trusts: the usual ones, plus ``KITE_CA_BUNDLE`` when it is set.

``KITE_CA_BUNDLE`` *adds* a CA (a corporate TLS-inspecting proxy, or the tests' emulator). httplib2 and
requests take one CA file that *replaces* their defaults, so for them Kite writes a combined file: certifi's
bundle followed by the extra one. Verification is never switched off.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from pathlib import Path


def extra_bundle() -> str | None:
    return os.environ.get("KITE_CA_BUNDLE") or None


@functools.cache
def _combined(extra: str) -> str:
    import certifi

    data = Path(certifi.where()).read_bytes() + b"\n" + Path(extra).read_bytes()
    folder = Path(tempfile.gettempdir()) / f"kite-desktop-ca-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()[:16]}.pem"
    if not path.exists():
        partial = path.with_suffix(".tmp")
        partial.write_bytes(data)
        partial.replace(path)
    return str(path)


def ca_file() -> str | None:
    """A CA file for clients that take one file (httplib2, requests), or None for their defaults."""
    extra = extra_bundle()
    return _combined(extra) if extra else None
