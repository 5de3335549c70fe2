"""QuickXorHash: the content hash OneDrive reports for every file (``file.hashes.quickXorHash``).

The definition is Microsoft's "Code Snippets: QuickXorHash Algorithm"
(https://learn.microsoft.com/onedrive/developer/code-snippets/quickxorhash, C# sample by R. Gregg, 2016).
It is a 160-bit, non-cryptographic checksum:

* the state is a 160-bit integer, initially zero;
* byte number ``i`` of the input (counting from 0 over the whole stream) is XOR-ed into the state rotated
  left by ``(11 * i) mod 160`` bits, i.e. ``state ^= rotl160(byte, 11 * i)``;
* the result is the state's 20 bytes in little-endian order, with the total length as a little-endian
  64-bit integer XOR-ed into the last 8 of them (bytes 12..19), which is what the C# ``HashFinal`` does
  (the prose on that page speaks of a byte ``reverse``; the C# sample, which OneDrive matches, has none);
* OneDrive shows it base64-encoded (28 characters).

How this module makes it fast in pure Python: the rotation of byte ``i`` depends only on ``i mod 160``
(because ``11 * 160 ≡ 0 (mod 160)``), so the stream can first be XOR-*folded* into 160 byte slots by
offset ``mod 160`` and the rotations applied once, to those 160 bytes, when a digest is asked for. The
folding is done by CPython's big-integer code in C: the stream is cut into aligned pieces of
``_PIECE`` bytes (a multiple of 160), each piece becomes one integer with ``int.from_bytes``, and the
integers are XOR-ed together. Because every piece starts at a stream offset that is a multiple of
``_PIECE``, the bits of equal slots line up and no shifting is needed while streaming. Unaligned input
is buffered (at most one piece) like hashlib does with its blocks. A digest folds the ``_PIECE``-byte
accumulator down to 160 bytes by repeatedly XOR-ing its upper part onto its lower part, then performs
the 160 rotations. The speed is that of ``int.from_bytes``: about 2.4 GB/s of CPU time on the development
machine, faster than hashlib's md5 and on a par with its sha1 (``python -m bench.quickxorhash_speed``).

Only the standard library is used, so it installs anywhere.
"""

from __future__ import annotations

import base64
from typing import Final

__all__ = ["QuickXorHash", "quickxorhash_b64"]

_WIDTH_BITS: Final = 160
_SLOTS: Final = 160
"""Bytes whose offsets agree modulo 160 get the same rotation (11 * 160 is a multiple of 160)."""
_SHIFT: Final = 11
_STATE_MASK: Final = (1 << _WIDTH_BITS) - 1
_SLOT_BITS: Final = _SLOTS * 8
_PIECE: Final = _SLOTS * 512
"""Bytes turned into one integer at a time: 80 KiB, a multiple of 160 that stays in the CPU cache (measured
fastest among 20-640 KiB)."""

# For slot k (bits 8k..8k+7 of the folded integer): the rotation 11k mod 160 that its byte undergoes.
_ROTATIONS: Final = tuple((_SHIFT * k) % _WIDTH_BITS for k in range(_SLOTS))


def _fold_to_slots(value: int) -> int:
    """XOR the 160-byte blocks of a little-endian integer together, leaving one block (1280 bits)."""
    while value.bit_length() > _SLOT_BITS:
        blocks = -(-value.bit_length() // _SLOT_BITS)
        cut = ((blocks + 1) // 2) * _SLOT_BITS
        value = (value >> cut) ^ (value & ((1 << cut) - 1))
    return value


def _rotate_slots(slots: int) -> int:
    """The 160-bit state for a folded input: slot k's byte rotated left by 11k bits, all XOR-ed together."""
    state = 0
    for k, rotation in enumerate(_ROTATIONS):
        byte = (slots >> (8 * k)) & 0xFF
        if byte:
            state ^= (byte << rotation) | (byte >> (_WIDTH_BITS - rotation))
    return state & _STATE_MASK


class QuickXorHash:
    """Incremental QuickXorHash with a hashlib-like interface.

    ``update`` accepts any bytes-like object in chunks of any size; ``digest`` may be called at any time,
    any number of times, and does not end the hash. Not safe to share between threads without a lock.
    """

    name: Final = "quickxorhash"
    digest_size: Final = 20
    block_size: Final = _SLOTS

    __slots__ = ("_acc", "_buffer", "_length")

    def __init__(self, data: bytes | bytearray | memoryview = b"") -> None:
        self._acc = 0
        """XOR of the input's ``_PIECE``-byte pieces so far, as little-endian integers."""
        self._buffer = bytearray()
        """Input after the last whole piece (fewer than ``_PIECE`` bytes); it starts at a piece boundary."""
        self._length = 0
        if data:
            self.update(data)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Add ``data`` to the hashed stream."""
        if isinstance(data, str):
            raise TypeError("strings must be encoded before hashing")
        with memoryview(data) as view:
            view = view.cast("B") if view.format != "B" or view.ndim != 1 else view
            size = len(view)
            if not size:
                return
            self._length += size
            buffer = self._buffer
            start = 0
            if buffer:
                start = _PIECE - len(buffer)
                if size < start:
                    buffer += view
                    return
                buffer += view[:start]
                self._acc ^= int.from_bytes(buffer, "little")
                buffer.clear()
            end = start + (size - start) // _PIECE * _PIECE
            if end > start:
                acc = self._acc
                from_bytes = int.from_bytes
                for offset in range(start, end, _PIECE):
                    acc ^= from_bytes(view[offset : offset + _PIECE], "little")
                self._acc = acc
            if end < size:
                buffer += view[end:]

    def _state(self) -> int:
        slots = _fold_to_slots(self._acc ^ int.from_bytes(self._buffer, "little"))
        return _rotate_slots(slots) ^ ((self._length & 0xFFFF_FFFF_FFFF_FFFF) << (_WIDTH_BITS - 64))

    def digest(self) -> bytes:
        """The 20-byte hash of everything given so far."""
        return self._state().to_bytes(self.digest_size, "little")

    def b64digest(self) -> str:
        """The hash as OneDrive shows it: base64 of the 20 bytes (28 characters)."""
        return base64.b64encode(self.digest()).decode("ascii")

    def hexdigest(self) -> str:
        return self.digest().hex()

    def copy(self) -> QuickXorHash:
        """An independent hash object in the same state."""
        clone = QuickXorHash.__new__(QuickXorHash)
        clone._acc = self._acc
        clone._buffer = bytearray(self._buffer)
        clone._length = self._length
        return clone


def quickxorhash_b64(data: bytes | bytearray | memoryview) -> str:
    """The base64 QuickXorHash of ``data``, as in OneDrive's ``file.hashes.quickXorHash``."""
    return QuickXorHash(data).b64digest()
