"""A stored object served back, with ``Range`` answered the way S3 answers it.

S3 is more forgiving than RFC 9110 allows a server to be, and Starlette's ``FileResponse`` is stricter (it refuses
an invalid Range with a plain-text 400). S3 (and R2, which copies it) answers a single byte range with 206 and
``Content-Range``, an end past the object clamped to its last byte; it *ignores* a Range it cannot use — another
unit (``items=0-1``), several ranges, a last byte before the first (``bytes=5-1``), anything that is not digits —
and answers 200 with the whole object; and it refuses only a range that is valid but unsatisfiable — a first byte
past the object's end, or the empty suffix ``bytes=-0`` — with 416 ``InvalidRange``. Basis: the maintainers' notes
on matching AWS in moto (getmoto/moto#6778, "tested thoroughly against AWS") and LocalStack (localstack#9082), and
AWS answering ``bytes=15-1`` on a 12-byte object with the whole object (localstack#9076).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.types import Receive, Scope, Send

from emulator.core.errors import StorageError

_DIGITS = re.compile(r"[0-9]*")


def requested_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The first and last byte (inclusive) a ``Range`` header asks of a ``size``-byte object, or None for the whole
    object; a ``StorageError`` (416 ``InvalidRange``) for a valid range that is not satisfiable."""
    if not header:
        return None
    unit, equals, spec = header.partition("=")
    first_text, dash, last_text = spec.partition("-")
    if (
        not equals
        or unit.strip().lower() != "bytes"
        or not dash
        or not _DIGITS.fullmatch(first_text)
        or not _DIGITS.fullmatch(last_text)
    ):
        return None  # another unit, several ranges, a sign, a space, another dash: ignored
    try:
        first = int(first_text) if first_text else None
        last = int(last_text) if last_text else None
    except ValueError:  # more digits than Python converts (4,300): no object is that large either
        return None
    if first is not None and last is not None and last < first:
        return None  # an invalid int-range (RFC 9110 14.1.1): ignored
    if (first is None and last == 0) or (first is not None and first >= size):
        raise StorageError(
            "The requested range is not satisfiable",
            code="InvalidRange",
            http_status=416,
            details={"RangeRequested": header, "ActualObjectSize": size},
            headers={"Content-Range": f"bytes */{size}"},
        )
    if first is not None:
        return first, size - 1 if last is None else min(last, size - 1)
    if last is not None:  # a suffix: the last ``last`` bytes
        return size - min(last, size), size - 1
    return None  # "bytes=-"


class _StoredObject(FileResponse):
    """A ``FileResponse`` that sees the range already decided: one clean single range, or none at all."""

    def __init__(
        self,
        path: Path,
        byte_range: tuple[int, int] | None,
        stat: os.stat_result,
        media_type: str,
        headers: Mapping[str, str],
    ) -> None:
        super().__init__(path, media_type=media_type, headers=headers, stat_result=stat)
        self.byte_range = byte_range

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k, v) for k, v in scope.get("headers", []) if k != b"range"]
        if self.byte_range is not None:
            headers.append((b"range", b"bytes=%d-%d" % self.byte_range))
        await super().__call__({**scope, "headers": headers}, receive, send)


def stored_object(request: Request, path: Path, *, media_type: str, headers: Mapping[str, str]) -> FileResponse:
    """The object at ``path``, whole (200) or the one range its request asks for (206, with ``Content-Range``)."""
    stat = os.stat(path)
    byte_range = requested_range(request.headers.get("range"), stat.st_size)
    return _StoredObject(path, byte_range, stat, media_type, headers)
