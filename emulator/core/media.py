"""What uploaded bytes really are, decided by content (magic numbers), never by file name or declared type.

``filetype`` and ``imagesize`` are imported on the first sniff, not at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "image/heic", "image/heif"})
VIDEO_TYPES = frozenset({"video/mp4", "video/quicktime", "video/webm", "video/x-matroska"})

# filetype names some types differently from the MIME types the providers document
_ALIASES = {"video/x-m4v": "video/mp4", "image/heif-sequence": "image/heif"}


@dataclass(frozen=True)
class Sniffed:
    mime: str | None
    width: int | None = None
    height: int | None = None

    @property
    def is_image(self) -> bool:
        return self.mime in IMAGE_TYPES


def sniff_bytes(head: bytes) -> str | None:
    import filetype

    kind = filetype.guess(head)
    if kind is None:
        return None
    return _ALIASES.get(kind.mime, kind.mime)


def sniff_file(path: Path, head: bytes | None = None) -> Sniffed:
    if head is None:
        with path.open("rb") as fh:
            head = fh.read(8192)
    mime = sniff_bytes(head)
    if mime in IMAGE_TYPES:
        import imagesize

        try:
            width, height = imagesize.get(str(path))
        except (ValueError, OSError):
            width = height = -1
        if width > 0 and height > 0:
            return Sniffed(mime, width, height)
        return Sniffed(mime)
    return Sniffed(mime)


def same_family(declared: str, actual: str | None) -> bool:
    """Whether sniffed bytes satisfy a declared type (HEIC and HEIF are one container; so are MP4 brands)."""
    if actual is None:
        return False
    if declared == actual:
        return True
    pairs = ({"image/heic", "image/heif"}, {"video/mp4", "video/quicktime"})
    return any({declared, actual} <= pair for pair in pairs)
