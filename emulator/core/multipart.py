"""Streaming multipart/form-data: file parts go straight to a ``BlobWriter``, text fields are kept (capped).

Why not Starlette's ``request.form()``: it has no limit on file size and spools every file to its own temporary
file; and openapi-core's multipart deserializer reads the whole body. Here each file part streams into the blob
store with its MD5 computed on the way, the size limit is enforced while streaming, and malformed, truncated or
nameless parts become precise 400s. The tokenizing itself is python-multipart's.

File bytes take the presigned PUT's path (``BlobWriter.add``/``drain``/``finish``): the parser's callbacks only
queue the pieces; between two chunks of the body, a full batch goes to the store's worker threads, which hash and
write it while the event loop receives and parses the next ones, and a file part that ended is finished and
committed. Hashing and writing on the event loop instead held every other upload's receiving while they ran.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import python_multipart
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header

from emulator.core.errors import FieldError, Invalid, UnsupportedMediaType
from emulator.core.storage import Blob, BlobWriter

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks


@dataclass
class FilePart:
    field: str
    filename: str
    content_type: str
    blob: Blob


@dataclass
class Form:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[FilePart]] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else None

    def names(self) -> set[str]:
        return set(self.fields) | set(self.files)


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    content_type: str = "application/octet-stream"
    disposition: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    writer: BlobWriter | None = None


OpenFile = Callable[[str, str, str], BlobWriter]


def boundary_of(content_type: str | None) -> bytes:
    mimetype, params = parse_options_header(content_type or "")
    if mimetype != b"multipart/form-data":
        raise UnsupportedMediaType(
            f"Content-Type must be multipart/form-data, got {mimetype.decode('latin-1') or 'none'}.",
            errors=[FieldError("Content-Type", "must be multipart/form-data")],
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise Invalid(
            "multipart/form-data body has no boundary parameter in its Content-Type.",
            errors=[FieldError("Content-Type", "boundary parameter is required")],
        )
    return boundary


class _Parser:
    def __init__(
        self,
        open_file: OpenFile,
        *,
        max_fields: int,
        max_field_size: int,
        max_parts: int,
        max_header_size: int = 16 * 1024,
    ) -> None:
        self.open_file = open_file
        self.max_fields, self.max_field_size, self.max_parts = max_fields, max_field_size, max_parts
        self.max_header_size = max_header_size
        self.form = Form()
        self.part = _Part()
        self.parts = 0
        self.open_writers: list[BlobWriter] = []
        self.ended: list[_Part] = []  # file parts whose closing boundary arrived, committed by ``settle``
        self.committed: list[FilePart] = []
        self.header_name = b""
        self.header_value = b""
        self.done = False

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > self.max_parts:
            raise Invalid(
                f"multipart body has more than {self.max_parts} parts.",
                errors=[FieldError("body", f"at most {self.max_parts} parts are accepted")],
            )
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]
        self._check_header()

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]
        self._check_header()

    def _check_header(self) -> None:
        if len(self.header_name) + len(self.header_value) > self.max_header_size:
            raise Invalid(
                "A multipart part header is too large.",
                errors=[FieldError("body", f"part headers are limited to {self.max_header_size} bytes")],
            )

    def on_header_end(self) -> None:
        name = self.header_name.lower()
        if name == b"content-disposition":
            self.part.disposition = self.header_value
        elif name == b"content-type":
            self.part.content_type = self.header_value.decode("latin-1").strip() or self.part.content_type
        self.header_name = self.header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.part.disposition)
        raw_name = options.get(b"name")
        if not raw_name:
            raise Invalid(
                'A multipart part has no name: its Content-Disposition needs name="...".',
                errors=[FieldError("body", "every part needs a Content-Disposition name")],
            )
        self.part.name = raw_name.decode("utf-8", "replace")
        if b"filename" in options:
            self.part.filename = options[b"filename"].decode("utf-8", "replace")
            self.part.writer = self.open_file(self.part.name, self.part.filename, self.part.content_type)
            self.open_writers.append(self.part.writer)
        elif sum(len(v) for v in self.form.fields.values()) >= self.max_fields:
            raise Invalid(
                f"multipart body has more than {self.max_fields} fields.",
                errors=[FieldError("body", f"at most {self.max_fields} fields are accepted")],
            )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.part.writer is not None:
            self.part.writer.add(data[start:end])
            return
        if len(self.part.data) + (end - start) > self.max_field_size:
            raise Invalid(
                f"Field {self.part.name!r} is longer than {self.max_field_size} bytes.",
                errors=[FieldError(self.part.name, f"must be at most {self.max_field_size} bytes")],
            )
        self.part.data.extend(data[start:end])

    def on_part_end(self) -> None:
        part = self.part
        if part.writer is not None:
            self.ended.append(part)
            return
        try:
            value = part.data.decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid(
                f"Field {part.name!r} is not valid UTF-8.", errors=[FieldError(part.name, "must be UTF-8 text")]
            ) from None
        self.form.fields.setdefault(part.name, []).append(value)

    def on_end(self) -> None:
        self.done = True

    async def settle(self) -> None:
        """After each chunk: commit the file parts that ended in it, and hand the open one's full batch over."""
        for part in self.ended:
            assert part.writer is not None
            await part.writer.finish()
            blob = part.writer.commit()
            self.open_writers.remove(part.writer)
            file_part = FilePart(part.name, part.filename or "", part.content_type, blob)
            self.committed.append(file_part)
            self.form.files.setdefault(part.name, []).append(file_part)
        self.ended.clear()
        writer = self.part.writer
        if writer is not None and writer.full and writer in self.open_writers:
            await writer.drain()


async def parse_form(
    content_type: str | None,
    stream: AsyncIterator[bytes],
    open_file: OpenFile,
    *,
    max_fields: int = 200,
    max_field_size: int = 64 * 1024,
    max_parts: int = 250,
    discard: Callable[[FilePart], None] | None = None,
) -> Form:
    """Parse a multipart body from ``stream``. On any failure every file written so far is removed."""
    boundary = boundary_of(content_type)
    state = _Parser(open_file, max_fields=max_fields, max_field_size=max_field_size, max_parts=max_parts)
    callbacks: MultipartCallbacks = {
        "on_part_begin": state.on_part_begin,
        "on_part_data": state.on_part_data,
        "on_part_end": state.on_part_end,
        "on_header_field": state.on_header_field,
        "on_header_value": state.on_header_value,
        "on_header_end": state.on_header_end,
        "on_headers_finished": state.on_headers_finished,
        "on_end": state.on_end,
    }
    try:
        parser = python_multipart.MultipartParser(boundary, callbacks)
    except FormParserError as exc:  # e.g. a boundary longer than the parser allows (256 bytes)
        raise Invalid(
            f"multipart/form-data boundary is not usable: {exc}.",
            errors=[FieldError("Content-Type", "boundary must be 1 to 70 characters (RFC 2046)")],
        ) from None
    try:
        async for chunk in stream:
            parser.write(chunk)
            await state.settle()
        parser.finalize()
        if not state.done:
            raise Invalid(
                "multipart body is truncated: the closing boundary never arrived.",
                errors=[FieldError("body", "ends before the closing boundary")],
            )
    except BaseException as exc:
        for writer in state.open_writers:
            writer.abort()
        if discard is not None:
            for part in state.committed:
                discard(part)
        if isinstance(exc, FormParserError):
            raise Invalid(
                f"Malformed multipart body: {exc}.", errors=[FieldError("body", "is not valid multipart")]
            ) from None
        raise
    return state.form
