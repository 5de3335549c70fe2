"""QuickXorHash: published vectors, agreement with slow literal references, independence of chunking."""

from __future__ import annotations

import array
import base64
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kite_desktop.storage.quickxorhash import QuickXorHash, quickxorhash_b64

# --- Independent references -------------------------------------------------------------------------------


def reference_csharp(data: bytes) -> bytes:
    """A line-by-line port of the C# sample in Microsoft's definition (HashCore called once, then HashFinal).

    Three 64-bit cells (the last holds 32 bits); each byte goes to the bit offset that advances by 11 per
    byte, wrapping around at 160 bits; a byte that straddles a cell boundary is split between two cells.
    """
    cells = [0, 0, 0]
    ulong = (1 << 64) - 1
    shift_so_far = 0
    vector_index = shift_so_far // 64
    vector_offset = shift_so_far % 64
    for i in range(min(len(data), 160)):
        is_last_cell = vector_index == len(cells) - 1
        bits_in_cell = 32 if is_last_cell else 64
        if vector_offset <= bits_in_cell - 8:
            for j in range(i, len(data), 160):
                cells[vector_index] ^= (data[j] << vector_offset) & ulong
        else:
            index1 = vector_index
            index2 = 0 if is_last_cell else vector_index + 1
            low = bits_in_cell - vector_offset
            xored = 0
            for j in range(i, len(data), 160):
                xored ^= data[j]
            cells[index1] ^= (xored << vector_offset) & ulong
            cells[index2] ^= xored >> low
        vector_offset += 11
        while vector_offset >= bits_in_cell:
            vector_index = 0 if is_last_cell else vector_index + 1
            vector_offset -= bits_in_cell
    out = bytearray(
        cells[0].to_bytes(8, "little") + cells[1].to_bytes(8, "little") + cells[2].to_bytes(8, "little")[:4]
    )
    for i, b in enumerate(len(data).to_bytes(8, "little")):
        out[20 - 8 + i] ^= b
    return bytes(out)


def reference_bits(data: bytes) -> bytes:
    """The definition bit by bit: bit b of byte i flips bit (11*i + b) mod 160 of a 20-byte little-endian block."""
    block = bytearray(20)
    for i, byte in enumerate(data):
        for b in range(8):
            if byte >> b & 1:
                position = (11 * i + b) % 160
                block[position // 8] ^= 1 << (position % 8)
    for i, b in enumerate(len(data).to_bytes(8, "little")):
        block[12 + i] ^= b
    return bytes(block)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# --- Published vectors -------------------------------------------------------------------------------------

VECTORS = [
    (b"", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
    (b"\x4a", "SgAAAAAAAAAAAAAAAQAAAAAAAAA="),
    (b"hello world", "aCgDG9jwBhDc4Q1yawMZAAAAAAA="),
]


@pytest.mark.parametrize(("data", "expected"), VECTORS)
def test_published_vectors(data: bytes, expected: str) -> None:
    assert quickxorhash_b64(data) == expected
    h = QuickXorHash()
    h.update(data)
    assert h.b64digest() == expected
    assert len(h.b64digest()) == 28
    assert len(h.digest()) == 20


@pytest.mark.parametrize(("data", "expected"), VECTORS)
def test_the_references_agree_with_the_published_vectors(data: bytes, expected: str) -> None:
    assert b64(reference_csharp(data)) == expected
    assert b64(reference_bits(data)) == expected


# --- Agreement with the references -------------------------------------------------------------------------

_rng = random.Random(20240611)
SIZES = [0, 1, 2, 19, 20, 21, 159, 160, 161, 319, 320, 321, 1000, 4096, 65536 + 7]
SIZES += [160 * 512 - 1, 160 * 512, 160 * 512 + 1, 160 * 1024]  # around whole internal pieces
SIZES += sorted(_rng.randrange(2, 400_000) for _ in range(5))


@pytest.mark.parametrize("size", SIZES)
def test_matches_the_csharp_reference_on_random_data(size: int) -> None:
    data = random.Random(size).randbytes(size)
    assert QuickXorHash(data).digest() == reference_csharp(data)


@pytest.mark.parametrize("size", [0, 1, 19, 20, 21, 159, 160, 161, 1000, 5003])
def test_matches_the_bitwise_reference_on_random_data(size: int) -> None:
    data = random.Random(size + 1).randbytes(size)
    assert QuickXorHash(data).digest() == reference_bits(data) == reference_csharp(data)


def test_all_ones_for_longer_than_several_internal_pieces() -> None:
    data = b"\xff" * (3 * 160 * 1024 + 333)
    assert QuickXorHash(data).digest() == reference_csharp(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_property_matches_the_references(data: bytes) -> None:
    assert QuickXorHash(data).digest() == reference_csharp(data) == reference_bits(data)


# --- Chunking, copying, input types ------------------------------------------------------------------------


def _split(data: bytes, rng: random.Random, max_chunk: int) -> list[bytes]:
    chunks, i = [], 0
    while i < len(data):
        n = rng.randint(0, max_chunk)
        chunks.append(data[i : i + n])
        i += n
    return chunks


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("max_chunk", [1, 7, 161, 5000, 200_000])
def test_digest_does_not_depend_on_how_the_data_is_split(seed: int, max_chunk: int) -> None:
    rng = random.Random(seed)
    size = rng.randrange(0, 700_000 if max_chunk > 100 else 40_000)  # keep the 1-byte runs quick
    data = rng.randbytes(size)
    h = QuickXorHash()
    for chunk in _split(data, rng, max_chunk):
        h.update(chunk)
    assert h.digest() == QuickXorHash(data).digest() == reference_csharp(data)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(min_value=0, max_value=3000), max_size=10))
def test_property_splitting_is_irrelevant(data: bytes, cuts: list[int]) -> None:
    h = QuickXorHash()
    bounds = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    for a, b in itertools.pairwise(bounds):
        h.update(data[a:b])
    assert h.digest() == reference_csharp(data)


def test_one_byte_updates_match_one_update() -> None:
    data = random.Random(3).randbytes(1000)
    h = QuickXorHash()
    for i in range(len(data)):
        h.update(data[i : i + 1])
    assert h.digest() == QuickXorHash(data).digest() == reference_csharp(data)


def test_digest_can_be_read_repeatedly_and_hashing_continues() -> None:
    data = random.Random(4).randbytes(400_000)
    h = QuickXorHash()
    h.update(data[:250_000])
    first = h.digest()
    assert h.digest() == first
    assert first == reference_csharp(data[:250_000])
    h.update(data[250_000:])
    assert h.digest() == QuickXorHash(data).digest()


def test_copy_is_independent() -> None:
    rng = random.Random(5)
    a, b, c = rng.randbytes(170_000), rng.randbytes(333), rng.randbytes(99)
    h = QuickXorHash(a)
    clone = h.copy()
    h.update(b)
    clone.update(c)
    assert h.digest() == QuickXorHash(a + b).digest()
    assert clone.digest() == QuickXorHash(a + c).digest()


def test_accepts_bytearray_and_memoryview() -> None:
    data = random.Random(6).randbytes(200_001)
    expected = QuickXorHash(data).digest()
    h = QuickXorHash()
    h.update(bytearray(data[:100]))
    h.update(memoryview(data)[100:170_000])
    h.update(memoryview(bytearray(data[170_000:])))
    assert h.digest() == expected


def test_caller_buffer_is_not_held_or_aliased() -> None:
    buf = bytearray(b"abc" * 100)
    h = QuickXorHash()
    h.update(buf)
    buf.extend(b"resizable again")  # raises BufferError if a view were still exported
    buf[:] = b"x" * len(buf)
    assert h.digest() == QuickXorHash(b"abc" * 100).digest()


def test_memoryview_of_another_format_is_hashed_as_its_bytes() -> None:
    numbers = array.array("I", range(1000))
    assert QuickXorHash(memoryview(numbers)).digest() == QuickXorHash(numbers.tobytes()).digest()


def test_str_is_refused() -> None:
    with pytest.raises(TypeError):
        QuickXorHash().update("text")  # type: ignore[arg-type]
