"""Log files in the profile, with secrets taken out before anything is written.

A rotating ``logs/kite.log``. Every record passes through :class:`RedactingFilter`, which removes bearer
tokens, OAuth parameters (``code``, ``code_verifier``, ``access_token``, ``refresh_token``, ...), token
fields in JSON, and the capability URLs of upload sessions (Drive's ``upload_id``, OneDrive's uploadUrl),
whichever library logged them (RELIABILITY.md B4).
"""

from __future__ import annotations

import logging
import logging.handlers
import re
from pathlib import Path

REDACTED = "[redacted]"
_PATTERNS = [
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)[^'\",}\s]+(\s+[^'\",}\s]+)?"), r"\1" + REDACTED),
    (
        re.compile(
            r"(?i)\b(access_token|refresh_token|id_token|code|code_verifier|client_secret|upload_id|state|"
            r"client_info|assertion|password|tempauth|sig|token)=[^&\s'\"]+"
        ),
        r"\1=" + REDACTED,
    ),
    (
        re.compile(
            r"(?i)(['\"](?:access_token|refresh_token|id_token|client_secret|uploadUrl)['\"]\s*:\s*['\"])[^'\"]+"
        ),
        r"\1" + REDACTED,
    ),
    (re.compile(r"(https?://[^\s'\"]*/up/)[^\s'\"?]+"), r"\1" + REDACTED),
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = redact(record.getMessage())
        record.msg, record.args = message, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def configure_logging(log_dir: Path, level: int | str = logging.INFO, console: bool = False) -> Path:
    """Send the app's and its libraries' logs to ``log_dir/kite.log`` (rotating, redacted)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / "kite.log"
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.setLevel(level)
    for existing in list(root.handlers):
        if getattr(existing, "kite", False):
            root.removeHandler(existing)
            existing.close()
    handler.kite = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    # These log every request's full URL at INFO, and some URLs are credentials (pre-authenticated download
    # links, upload sessions): only their warnings go to the log.
    for noisy in ("httpx", "httpcore", "googleapiclient.discovery", "urllib3", "msal"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if console:
        stream = logging.StreamHandler()
        stream.addFilter(RedactingFilter())
        stream.kite = True  # type: ignore[attr-defined]
        root.addHandler(stream)
    return path
