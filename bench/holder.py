"""Holds memory for the harness: uses up the pages the kernel could recycle, so what runs next needs new ones.

Run as ``python bench/holder.py``; each ``fill`` line on stdin makes it allocate and touch 256 MiB blocks until
two in a row are slow (the host had to back them: see ``ceilings.FreshPages``), answering the MiB it added; EOF
ends it and frees everything. Anonymous memory, not files, so nothing is ever written back to disk.
"""

from __future__ import annotations

import mmap
import sys
import time

BLOCK = 256 << 20
PAGE = mmap.PAGESIZE
SLOW_S = 0.35  # a block of recycled pages takes ~0.1 s to touch here, one the host must back ~1 s
LIMIT = 16 << 30


def fill(held: list[mmap.mmap]) -> int:
    slow, added = 0, 0
    while slow < 2 and len(held) * BLOCK < LIMIT:
        block = mmap.mmap(-1, BLOCK, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        start = time.perf_counter()
        for offset in range(0, BLOCK, PAGE):
            block[offset] = 1
        slow = slow + 1 if time.perf_counter() - start > SLOW_S else 0
        held.append(block)
        added += BLOCK
    return added


def main() -> None:
    held: list[mmap.mmap] = []
    for line in sys.stdin:
        if line.strip() == "fill":
            print(fill(held) >> 20, flush=True)


if __name__ == "__main__":
    main()
