"""What a provider declares for chaos testing (``emulator.chaos``): its upload flow's steps, the faults that are
faithful for each, the files it accepts, and how to find what a finished upload left behind.

Provider-neutral, like ``KeyPolicy``: each provider module builds one ``ChaosProfile`` and sets it as
``Provider.chaos``; ``emulator.chaos`` reads it through the registry and never names a provider.

Fault kinds (each becomes one control-plane fault rule, see ``emulator.chaos.schedule``):

    rate_limited  429 in the provider's envelope with Retry-After
    server_error  500, 502 or 503 in the provider's envelope (a 503 may carry Retry-After)
    slow_down     S3-style storage's 503 SlowDown (only where the storage is S3-style)
    drop          the connection closed before the response, or after its headers
    drop_upload   the connection closed after k bytes of the upload
    stall         the upload stalls after k bytes, then goes on
    wrong_etag    an ETag that is not the MD5 of the bytes
    slow          the answer comes late
    expire        right after the step answered, the clock moves past the URL's ``expires_in``
    pending       the next polls report the upload still processing
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

FAULT_KINDS = (
    "rate_limited",
    "server_error",
    "slow_down",
    "drop",
    "drop_upload",
    "stall",
    "wrong_etag",
    "slow",
    "expire",
    "pending",
)
API = ("rate_limited", "server_error", "drop", "slow")  # what any JSON API operation can answer
S3_STORAGE = ("server_error", "slow_down", "drop", "drop_upload", "stall", "wrong_etag", "slow")  # S3-style PUT
UPLOAD_BODY = ("drop_upload", "stall")  # any request that carries the file

Tables = Mapping[str, Sequence[Mapping[str, Any]]]  # GET /_emulator/state/{provider} → "tables"


@dataclass(frozen=True)
class Step:
    """One operation of the upload flow and the faults the real provider can do to it."""

    operation: str
    faults: tuple[str, ...]
    expires: int | None = None  # the step hands out a URL valid this many seconds (``expire`` moves past it)


@dataclass(frozen=True)
class Sample:
    """A kind of file the provider accepts, and the sizes worth drawing (small, and either side of a part or chunk
    boundary)."""

    content_type: str
    filename: str
    make: Callable[[int, int], bytes]  # (size, seed) → bytes of that size that really are this type
    sizes: tuple[int, ...]
    processing: bool = False  # its upload passes through "processing" (``pending`` faults are faithful)


@dataclass(frozen=True)
class Finished:
    """A completed, ready record of one key and the MD5 of its stored bytes."""

    id: str
    md5: str
    size: int


@dataclass(frozen=True)
class Order:
    """``after`` operations must not be called before one ``before`` operation answered 2xx in full."""

    before: frozenset[str]
    after: frozenset[str]
    rule: str  # what it means, in the provider's words


@dataclass(frozen=True)
class ChaosProfile:
    steps: tuple[Step, ...]
    samples: tuple[Sample, ...]
    finished: Callable[[Tables, str, float], list[Finished]]  # (state tables, key id, virtual now)
    order: tuple[Order, ...] = ()

    def step(self, operation: str) -> Step:
        return next(s for s in self.steps if s.operation == operation)


def asset(name: str) -> bytes:
    return (resources.files("emulator") / "assets" / name).read_bytes()


def padded(head: bytes) -> Callable[[int, int], bytes]:
    """Files of any size at least ``len(head)``: ``head`` (a real sample: content sniffing reads the start), then
    seeded filler. Image readers stop at the image's end marker, so trailing bytes change nothing."""

    def make(size: int, seed: int) -> bytes:
        return head + random.Random(seed).randbytes(max(0, size - len(head)))

    return make


# A minimal ISO-BMFF header with the 'isom' brand: content sniffing calls it video/mp4.
MP4_HEAD = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + b"\x00\x00\x00\x08free" + b"\x00" * 64
PDF_HEAD = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
