"""Document names: what is kept, what is changed, and why.

A document's name is a relative POSIX path ("Taxes/2025/receipt.pdf") when it came from a dropped folder.
Unicode, emoji and right-to-left text are kept as they are (normalised to NFC). Control characters and
invisible bidirectional overrides (which can disguise an extension) become "_"; path separators inside a
component become "_"; "." and ".." are refused; a component longer than 255 bytes is shortened with its
extension kept. Every change is reported so the user hears about it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from kite_desktop.core.errors import KiteError

MAX_COMPONENT_BYTES = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f]")


@dataclass
class CleanName:
    name: str
    changes: list[str] = field(default_factory=list)


def _shorten(component: str) -> str:
    stem, dot, ext = component.rpartition(".")
    if not dot or not stem or len(ext.encode()) > 16:
        stem, ext = component, ""
    suffix = f".{ext}" if ext else ""
    budget = MAX_COMPONENT_BYTES - len(suffix.encode())
    encoded = stem.encode()[:budget]
    return encoded.decode(errors="ignore").rstrip() + suffix


def clean_component(component: str) -> CleanName:
    """Make one path component safe to store anywhere; raise ValueError when nothing usable is left."""
    result = CleanName(unicodedata.normalize("NFC", component))
    if result.name != component:
        result.changes.append("normalised to NFC")
    cleaned = _CONTROL.sub("_", result.name)
    if cleaned != result.name:
        result.changes.append("control characters replaced with _")
    separators = cleaned.replace("/", "_").replace("\\", "_")
    if separators != cleaned:
        result.changes.append("slashes replaced with _")
    cleaned = separators.strip(" ")
    if cleaned in ("", ".", ".."):
        raise ValueError(f"{component!r} is not a usable name")
    if len(cleaned.encode()) > MAX_COMPONENT_BYTES:
        cleaned = _shorten(cleaned)
        result.changes.append("shortened to 255 bytes")
    result.name = cleaned
    return result


def clean_relative_path(path: str) -> CleanName:
    """Clean every component of a relative POSIX path; refuse absolute paths and '..'."""
    if path.startswith("/") or path.startswith("\\"):
        raise ValueError(f"{path!r} is an absolute path")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts:
        raise ValueError(f"{path!r} is empty")
    if any(p == ".." for p in parts):
        raise ValueError(f"{path!r} points outside its folder")
    result = CleanName("")
    cleaned: list[str] = []
    for part in parts:
        one = clean_component(part)
        cleaned.append(one.name)
        result.changes.extend(c for c in one.changes if c not in result.changes)
    result.name = "/".join(cleaned)
    return result


def numbered(name: str, number: int) -> str:
    """'report.pdf', 2 -> 'report (2).pdf'; keeps the folder part of a relative path."""
    folder, slash, base = name.rpartition("/")
    stem, dot, ext = base.rpartition(".")
    if not dot or not stem:
        stem, ext = base, ""
    numbered_base = f"{stem} ({number})" + (f".{ext}" if ext else "")
    return f"{folder}{slash}{numbered_base}"


def document_name(name: str) -> str:
    """``name`` cleaned for storing (see :func:`clean_relative_path`), or a KiteError saying why it cannot be."""
    try:
        return clean_relative_path(name).name
    except ValueError as exc:
        raise KiteError(f"{name!r} cannot be used as a document name: {exc}.", title="Unusable name") from None
