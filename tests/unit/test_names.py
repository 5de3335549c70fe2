"""Document names: what is kept as the person wrote it, what is changed and reported, what is refused."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kite_desktop.core.names import MAX_COMPONENT_BYTES, clean_component, clean_relative_path, numbered


@pytest.mark.parametrize(
    "name",
    ["report.pdf", "Résumé – 2025.docx", "🎉🎂 party.jpg", "שלום עולם.txt", "تقرير.pdf", "日本語.md", ".bashrc", "a b"],
)
def test_ordinary_names_are_kept_unchanged(name: str) -> None:
    result = clean_component(name)
    assert (result.name, result.changes) == (name, [])


def test_decomposed_unicode_is_normalised_to_nfc_and_reported() -> None:
    result = clean_component(unicodedata.normalize("NFD", "Résumé.pdf"))
    assert result.name == "Résumé.pdf"
    assert result.changes == ["normalised to NFC"]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("tab\there.txt", "tab_here.txt"),
        ("new\nline.txt", "new_line.txt"),
        ("nul\x00byte.txt", "nul_byte.txt"),
        ("del\x7f.txt", "del_.txt"),
        ("invoice\u202efdp.exe", "invoice_fdp.exe"),  # right-to-left override
        ("a\u2066b\u2069.txt", "a_b_.txt"),  # isolates
        ("\u200fmark.txt", "_mark.txt"),  # right-to-left mark
        ("csi\x9b31m.txt", "csi_31m.txt"),  # C1 control: an 8-bit terminal escape
        ("next\x85line.txt", "next_line.txt"),  # C1 control: a line break in some renderers
    ],
)
def test_control_and_bidi_override_characters_become_underscores(raw: str, clean: str) -> None:
    result = clean_component(raw)
    assert result.name == clean
    assert "control characters replaced with _" in result.changes


def test_slashes_inside_a_component_become_underscores() -> None:
    result = clean_component("either/or\\both.txt")
    assert result.name == "either_or_both.txt"
    assert "slashes replaced with _" in result.changes


@pytest.mark.parametrize("bad", ["", ".", "..", "   ", " .. "])
def test_names_with_nothing_usable_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        clean_component(bad)


def test_surrounding_spaces_are_trimmed() -> None:
    assert clean_component("  padded.txt ").name == "padded.txt"


@pytest.mark.parametrize(
    ("name", "extension"),
    [("x" * 300 + ".pdf", ".pdf"), ("é" * 200 + ".tar", ".tar"), ("🎉" * 100 + ".jpeg", ".jpeg"), ("y" * 400, "")],
)
def test_long_names_are_shortened_to_255_bytes_keeping_the_extension(name: str, extension: str) -> None:
    result = clean_component(name)
    assert len(result.name.encode()) <= MAX_COMPONENT_BYTES
    assert result.name.endswith(extension)
    assert result.name.startswith(name[:10])
    assert "shortened to 255 bytes" in result.changes
    result.name.encode().decode()  # never cut inside a character


def test_a_name_of_exactly_255_bytes_is_kept() -> None:
    name = "z" * 251 + ".txt"
    assert clean_component(name).name == name


def test_relative_paths_are_cleaned_per_component_and_changes_listed_once() -> None:
    result = clean_relative_path("Taxes\x01/./2025\x02//receipt.pdf")
    assert result.name == "Taxes_/2025_/receipt.pdf"
    assert result.changes == ["control characters replaced with _"]


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "\\\\server\\share", "../up.txt", "a/../../up.txt", "a/..", "", "/", "./."]
)
def test_paths_that_are_absolute_leave_the_folder_or_are_empty_are_refused(path: str) -> None:
    with pytest.raises(ValueError):
        clean_relative_path(path)


@pytest.mark.parametrize(
    ("name", "number", "expected"),
    [
        ("report.pdf", 1, "report (1).pdf"),
        ("report.pdf", 12, "report (12).pdf"),
        ("Taxes/2025/receipt.pdf", 2, "Taxes/2025/receipt (2).pdf"),
        ("README", 1, "README (1)"),
        (".bashrc", 1, ".bashrc (1)"),
        ("a.b/noext", 3, "a.b/noext (3)"),
    ],
)
def test_numbered_names_keep_folder_and_extension(name: str, number: int, expected: str) -> None:
    assert numbered(name, number) == expected


@given(st.text(min_size=1, max_size=400))
def test_any_cleaned_component_is_safe_to_store(raw: str) -> None:
    try:
        result = clean_component(raw)
    except ValueError:
        return
    assert result.name not in ("", ".", "..")
    assert "/" not in result.name and "\\" not in result.name
    assert not any(unicodedata.category(ch) == "Cc" for ch in result.name)
    assert not any(ch in result.name for ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    assert len(result.name.encode()) <= MAX_COMPONENT_BYTES
    assert clean_component(result.name).name == result.name, "cleaning twice must change nothing"


@given(
    st.lists(st.text(alphabet=st.characters(blacklist_characters="/"), min_size=1, max_size=30), min_size=1, max_size=5)
)
def test_a_cleaned_path_never_points_outside_its_folder(parts: list[str]) -> None:
    try:
        result = clean_relative_path("/".join(parts))
    except ValueError:
        return
    assert not result.name.startswith("/")
    assert ".." not in result.name.split("/")
    assert "" not in result.name.split("/")
