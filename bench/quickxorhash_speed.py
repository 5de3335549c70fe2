"""Speed of the pure-Python QuickXorHash against hashlib's md5 and sha1 on the same data.

    python -m bench.quickxorhash_speed [--total-mib 1024] [--chunk-mib 8] [--repeat 3]

``--total-mib`` of data (default 1 GiB) is hashed in ``update`` calls of ``--chunk-mib`` (default 8 MiB), as
the OneDrive backend does while streaming a file. The data is a 64 MiB pool of random bytes cycled through, so
that it does not all sit in the CPU cache. Each figure is the best of ``--repeat`` runs, in MB/s (10**6 bytes),
by the wall clock and by the process's CPU time (steadier on a busy machine).
A second table shows smaller updates (64 KiB, 320 KiB: OneDrive's fragment unit, 1 MiB), which cost a little
more per byte.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from kite_desktop.storage.quickxorhash import QuickXorHash

MIB = 1 << 20
POOL_BYTES = 64 * MIB


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...


def _chunks(pool: bytes, total: int, chunk: int) -> list[memoryview]:
    view = memoryview(pool)
    out, offset = [], 0
    while total > 0:
        n = min(chunk, total)
        if offset + n > len(pool):
            offset = 0
        out.append(view[offset : offset + n])
        offset += n
        total -= n
    return out


def _speed(factory: Callable[[], _Hasher], chunks: Sequence[memoryview], repeat: int) -> str:
    """Best wall-clock and best CPU-time throughput, formatted."""
    total = sum(len(c) for c in chunks)
    wall = cpu = float("inf")
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        h = factory()
        for c in chunks:
            h.update(c)
        h.digest()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return f"{total / wall / 1e6:8.0f} MB/s wall {total / cpu / 1e6:8.0f} MB/s CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--total-mib", type=int, default=1024)
    parser.add_argument("--chunk-mib", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    pool = os.urandom(POOL_BYTES)
    hashers: dict[str, Callable[[], _Hasher]] = {
        "quickxorhash (pure Python)": QuickXorHash,
        "hashlib.md5": hashlib.md5,
        "hashlib.sha1": hashlib.sha1,
    }
    total = args.total_mib * MIB
    print(f"{args.total_mib} MiB in {args.chunk_mib} MiB updates, best of {args.repeat}:")
    chunks = _chunks(pool, total, args.chunk_mib * MIB)
    for name, factory in hashers.items():
        print(f"  {name:28} {_speed(factory, chunks, args.repeat)}")

    small_total = min(total, 256 * MIB)
    print(f"\nquickxorhash, {small_total // MIB} MiB in smaller updates:")
    for size, label in ((64 << 10, "64 KiB"), (320 << 10, "320 KiB"), (MIB, "1 MiB")):
        chunks = _chunks(pool, small_total, size)
        print(f"  {label:28} {_speed(QuickXorHash, chunks, args.repeat)}")

    h = QuickXorHash(pool[:1_000_003])
    start = time.perf_counter()
    for _ in range(1000):
        h.digest()
    print(f"\ndigest(): {(time.perf_counter() - start) * 1000:.0f} µs per call")


if __name__ == "__main__":
    main()
