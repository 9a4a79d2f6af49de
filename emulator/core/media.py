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


# HEIF brands of ISO/IEC 23008-12, read from the ftyp box by hand: filetype knows only the `heic` brand (or
# mif1/msf1 listing heic), so a 10-bit HEIC (`heix`), a layered or scalable one (`heim`, `heis`), an HEVC image
# sequence (`hevc`, `hevx`, ...) or a generic HEIF (`mif1`, `msf1`, and MIAF's `miaf`) would read as unknown.
# HEVC-coded brands are image/heic (sequences too: image/heic-sequence, one container family); the structural
# brands alone are image/heif. AVIF (`avif`, `avis`) is also HEIF-structured but has its own type: left to filetype.
_HEVC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_STRUCTURAL_BRANDS = frozenset({b"mif1", b"mif2", b"msf1", b"miaf"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})


def _heif_brand(head: bytes) -> tuple[str | None, bool]:
    """(image/heic or image/heif or None, whether the major brand alone decided it) from a leading ftyp box."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return None, False
    size = int.from_bytes(head[0:4], "big")
    if size < 16 or size > len(head):
        return None, False
    major = head[8:12]
    compatible = {head[i : i + 4] for i in range(16, size - 3, 4)}
    if major in _HEVC_BRANDS:
        return "image/heic", True
    if major in _AVIF_BRANDS:
        return None, True
    brands = compatible | {major}
    if not brands & _STRUCTURAL_BRANDS or (brands & _AVIF_BRANDS and not brands & _HEVC_BRANDS):
        return None, False
    return ("image/heic" if brands & _HEVC_BRANDS else "image/heif"), major in _STRUCTURAL_BRANDS


def sniff_bytes(head: bytes) -> str | None:
    import filetype

    heif, by_major = _heif_brand(head)
    if heif is not None and by_major:
        return heif
    kind = filetype.guess(head)
    if kind is None:
        return heif  # compatible brands only: HEIF unless the bytes are something filetype recognises
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
