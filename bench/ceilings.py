"""This machine's ceilings for the work an upload has to do, measured in the harness process on one core.

Every PUT the emulator accepts is hashed (MD5, the S3-style ETag) and written to its data directory, so the lower of
the two speeds bounds any design that does both; the loopback copy (``sink.py``) bounds the transport.
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


def write_mb_s(directory: Path, nbytes: int) -> float:
    """Buffered writes of 1 MiB blocks to a new file in ``directory`` (page cache, no fsync), close included."""
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
