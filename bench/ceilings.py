"""This machine's ceilings for the work an upload has to do, measured in the harness process on one core.

Every PUT the emulator accepts is hashed (MD5, the S3-style ETag) and written to its data directory, so the lower of
the two speeds bounds any design that does both (the issue's ceiling); hashing then writing each block in sequence
on one core, as the emulator does, bounds an inline design lower still. The loopback copy (``sink.py``) bounds the
transport.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

BLOCK = 1 << 20


def md5_mb_s(nbytes: int) -> float:
    """Single-core ``hashlib.md5`` over ``nbytes`` fed in 1 MiB blocks already in memory (MB = 10^6 B)."""
    block = os.urandom(BLOCK)
    digest = hashlib.md5(usedforsecurity=False)
    start = time.perf_counter()
    for _ in range(nbytes // BLOCK):
        digest.update(block)
    digest.hexdigest()
    return nbytes / (time.perf_counter() - start) / 1e6


def write_recycled_mb_s(directory: Path, nbytes: int) -> float:
    """Buffered 1 MiB writes of ``nbytes`` to a new file in ``directory`` that is removed at once (page cache, no
    fsync, close included): the page cache recycling the pages it just freed."""
    block = os.urandom(BLOCK)
    fd, name = tempfile.mkstemp(prefix=".ceiling-", dir=directory)
    try:
        start = time.perf_counter()
        with os.fdopen(fd, "wb") as fh:
            for _ in range(nbytes // BLOCK):
                fh.write(block)
        return nbytes / (time.perf_counter() - start) / 1e6
    finally:
        os.unlink(name)


def write_kept_mb_s(directory: Path, nbytes: int, count: int, md5: bool = False) -> list[float]:
    """``count`` files of ``nbytes`` written one after the other and all kept until the end, as the emulator keeps
    what it stores: each file needs pages the page cache has not just freed. The first file may still land on
    recently freed pages, so it is written but not counted (``count + 1`` files in all).

    On this machine's VM, pages the guest has not used lately cost about 4 ns a byte of system time to fill
    (≈ 250 MB/s), against ≈ 3.7 GB/s for recycled ones; the emulator's uploads pay the first price.
    With ``md5`` each block is also hashed before it is written, in sequence on one core: what a design that hashes
    and writes inline can reach at best.
    """
    block = os.urandom(BLOCK)
    names: list[str] = []
    speeds = []
    try:
        for _ in range(count + 1):
            fd, name = tempfile.mkstemp(prefix=".ceiling-", dir=directory)
            names.append(name)
            digest = hashlib.md5(usedforsecurity=False)
            start = time.perf_counter()
            with os.fdopen(fd, "wb") as fh:
                for _ in range(nbytes // BLOCK):
                    if md5:
                        digest.update(block)
                    fh.write(block)
            speeds.append(nbytes / (time.perf_counter() - start) / 1e6)
    finally:
        for name in names:
            os.unlink(name)
    return speeds[1:]
