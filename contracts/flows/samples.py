"""Bytes the flows upload: real sample images, a minimal MP4 and PDF, and filler derived from a drawn seed."""

from __future__ import annotations

import random
from importlib import resources

# A minimal ISO-BMFF header with the 'isom' brand: content sniffing calls it video/mp4.
MP4_HEADER = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + b"\x00\x00\x00\x08free" + b"\x00" * 64
PDF = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


def image(ext: str) -> bytes:
    """One of the emulator's sample images (jpg, png, gif, webp, heic)."""
    return (resources.files("emulator") / "assets" / f"sample.{ext}").read_bytes()


def filler(seed: int, size: int) -> bytes:
    """``size`` pseudo-random bytes from ``seed`` (hypothesis draws the seed, so examples replay and shrink)."""
    return random.Random(seed).randbytes(size)


def video(seed: int, size: int) -> bytes:
    """An MP4 of ``size`` bytes (at least the header's length): the header, then filler."""
    return (MP4_HEADER + filler(seed, max(0, size - len(MP4_HEADER))))[: max(size, len(MP4_HEADER))]
