"""This machine's ceilings for the work an upload has to do, measured in the harness process on one core.

Every PUT the emulator accepts is hashed (MD5, the S3-style ETag) and written to its data directory, so the lower of
the two speeds bounds any design that does both (the issue's ceiling); hashing then writing each block in sequence
on one core, as the emulator does, bounds an inline design lower still. The loopback copy (``sink.py``) bounds the
transport.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
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


def kept_writes_mb_s(directory: Path, nbytes: int, count: int) -> dict[str, list[float]]:
    """Files of ``nbytes`` written one after the other and all kept until the end, as the emulator keeps what it
    stores, so each needs pages the page cache has not just freed: ``count`` plain writes (``"write"``) alternating
    with ``count`` where each block is hashed and then written, in sequence on one core (``"md5-then-write"``: what
    a design that hashes and writes inline can reach at best). A first file is written but not counted.

    Run inside ``FreshPages``, like the uploads: new pages, the regime of an emulator that keeps what it stores.
    """
    block = os.urandom(BLOCK)
    names: list[str] = []
    out: dict[str, list[float]] = {"write": [], "md5-then-write": []}
    plan = ["warm-up"] + ["write", "md5-then-write"] * count
    try:
        for kind in plan:
            fd, name = tempfile.mkstemp(prefix=".ceiling-", dir=directory)
            names.append(name)
            digest = hashlib.md5(usedforsecurity=False)
            start = time.perf_counter()
            with os.fdopen(fd, "wb") as fh:
                for _ in range(nbytes // BLOCK):
                    if kind == "md5-then-write":
                        digest.update(block)
                    fh.write(block)
            if kind in out:
                out[kind].append(nbytes / (time.perf_counter() - start) / 1e6)
    finally:
        for name in names:
            os.unlink(name)
    return out


class FreshPages:
    """Use up the pages the kernel could recycle, and hold them, so what follows needs new pages.

    This machine is a VM whose memory the host backs lazily and takes back soon after the guest frees it: filling a
    page the host must back again costs about 4 ns a byte of system time (≈ 250 MB/s of page-cache writes), a page
    freed just before ≈ 3.7 GB/s. A long-running emulator storing uploads lives in the first regime. Without this,
    figures depend on what ran just before: an emulator taking five 500 MiB PUTs in a row went 248, 247, 256, then
    148, 126 MB/s, its system time rising from 0.8 to 2.8 s a PUT (user time flat at 1.3 s) once the recently
    freed pages ran out. ``enter()`` has ``holder.py`` (a child process) touch anonymous memory until it gets slow
    and keep it; ``close()`` ends the holder.
    """

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None

    def enter(self) -> int:
        """Returns the MiB the holder had to add this time."""
        if self.proc is None:
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("holder.py"))],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("fill\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(30)
            self.proc = None
