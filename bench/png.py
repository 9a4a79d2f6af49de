"""Large, valid PNGs without Pillow: RGB scanlines of seeded noise in stored (uncompressed) deflate blocks.

Noise does not compress, so a real encoder would produce about the same size; stored blocks make the file size
exact and known in advance, so ``height_for`` can fit an image under a byte limit (PostEverywhere: 20 MiB).
The file is streamed out row by row: memory stays at one row whatever the size.
"""

from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

SIGNATURE = b"\x89PNG\r\n\x1a\n"
STORED_MAX = 65535  # bytes of payload in one stored deflate block
IDAT_MAX = 1 << 20  # split the zlib stream over IDAT chunks of this size, like common encoders


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _zlib_size(raw: int) -> int:
    blocks = max(1, -(-raw // STORED_MAX))
    return 2 + raw + 5 * blocks + 4


def size_of(width: int, height: int) -> int:
    """The exact size in bytes of ``write_png(width, height)``."""
    z = _zlib_size(height * (1 + 3 * width))
    idat_chunks = max(1, -(-z // IDAT_MAX))
    return len(SIGNATURE) + (12 + 13) + z + 12 * idat_chunks + 12


def height_for(limit: int, width: int = 2048) -> int:
    """The tallest image ``width`` pixels wide whose PNG is at most ``limit`` bytes."""
    height = max(1, limit // (1 + 3 * width))
    while height > 1 and size_of(width, height) > limit:
        height -= 1
    return height


def _stored_deflate(rows, raw_size: int):
    """zlib stream (no compression) of the concatenated rows, yielded in pieces."""
    yield b"\x78\x01"
    adler, pending, sent = 1, bytearray(), 0
    for row in rows:
        adler = zlib.adler32(row, adler)
        pending += row
        while len(pending) >= STORED_MAX and sent + STORED_MAX < raw_size:
            block, pending = pending[:STORED_MAX], pending[STORED_MAX:]
            sent += len(block)
            yield b"\x00" + struct.pack("<HH", len(block), len(block) ^ 0xFFFF) + bytes(block)
    while pending or sent < raw_size or raw_size == 0:
        block, pending = pending[:STORED_MAX], pending[STORED_MAX:]
        sent += len(block)
        final = 1 if sent >= raw_size else 0
        yield bytes([final]) + struct.pack("<HH", len(block), len(block) ^ 0xFFFF) + bytes(block)
        if final:
            break
    yield struct.pack(">I", adler)


def write_png(out: BinaryIO, width: int, height: int, seed: int = 0) -> int:
    """Write an RGB PNG of seeded noise to ``out``; returns the number of bytes written."""
    rng = random.Random(seed)
    rows = (b"\x00" + rng.randbytes(3 * width) for _ in range(height))
    written = out.write(SIGNATURE)
    written += out.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
    buffer = bytearray()
    for piece in _stored_deflate(rows, height * (1 + 3 * width)):
        buffer += piece
        while len(buffer) >= IDAT_MAX:
            written += out.write(_chunk(b"IDAT", bytes(buffer[:IDAT_MAX])))
            del buffer[:IDAT_MAX]
    if buffer:
        written += out.write(_chunk(b"IDAT", bytes(buffer)))
    written += out.write(_chunk(b"IEND", b""))
    return written


def form_image(path: Path) -> Path:
    """The image every form figure sends (figure 3 of bench/README.md): 2048 pixels wide, as tall as fits under
    PostEverywhere's 20 MiB image limit, seeded noise; written at ``path`` unless it is there already."""
    if not path.exists():
        with path.open("wb") as fh:
            write_png(fh, 2048, height_for(20 * 1024 * 1024), seed=10)
    return path
