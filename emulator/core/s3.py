"""S3-style storage for every provider whose storage is S3-like: the XML errors S3 and R2 answer presigned requests
with, and the checks S3 makes of a presigned PUT before and after its bytes (framing, Content-MD5, checksums)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as _escape

import google_crc32c  # CRC-32C (Castagnoli): not in the stdlib; Google's maintained C implementation
from starlette.responses import Response

from emulator.core.clock import iso_millis
from emulator.core.errors import (
    EmulatorError,
    Invalid,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    StorageError,
    UnsupportedMediaType,
)
from emulator.core.presign import PresignFailure

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")  # also lone surrogates


def escape(text: str) -> str:
    """XML-escape, and replace characters XML 1.0 cannot carry at all (control characters) with U+FFFD."""
    return _escape(_NOT_XML.sub("\ufffd", text))


class XMLResponse(Response):
    media_type = "application/xml"


def render(error: EmulatorError, request_id: str) -> Response:
    code, status, extra = _classify(error)
    fields = "".join(f"<{name}>{escape(str(value))}</{name}>" for name, value in extra.items())
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(error.message)}</Message>{fields}"
        f"<RequestId>{escape(request_id)}</RequestId></Error>"
    )
    return XMLResponse(body, status_code=status, headers=error.headers)


def _classify(error: EmulatorError) -> tuple[str, int, dict[str, Any]]:
    extra = {k: v for k, v in error.details.items() if k[:1].isupper()}
    if isinstance(error, StorageError):
        return error.code or "AccessDenied", error.status, extra
    if isinstance(error, PayloadTooLarge):
        return "EntityTooLarge", 400, extra
    if isinstance(error, UnsupportedMediaType):
        return "InvalidArgument", 400, extra
    if isinstance(error, MethodNotAllowed):
        return "MethodNotAllowed", 405, extra
    if isinstance(error, NotFound):
        return "NoSuchKey", 404, extra
    if isinstance(error, RequestTimeout):
        return "RequestTimeout", 400, extra
    if isinstance(error, Invalid):
        return "InvalidRequest", 400, extra
    return error.code or "InvalidRequest", error.status, extra


def presign_error(failure: PresignFailure, now: float) -> StorageError:
    """The storage error S3 answers for a presigned URL that fails verification."""
    if failure.reason == "expired" and failure.grant is not None:
        return StorageError(
            failure.message,
            code="AccessDenied",
            http_status=403,
            details={
                "X-Amz-Expires": failure.grant.expires,
                "Expires": iso_millis(failure.grant.expires),
                "ServerTime": iso_millis(now),
            },
        )
    if failure.reason == "missing":
        return StorageError(failure.message, code="AccessDenied", http_status=403)
    if failure.reason == "malformed":
        return StorageError(failure.message, code="AuthorizationQueryParametersError", http_status=400)
    return StorageError(failure.message, code="SignatureDoesNotMatch", http_status=403)


# --- what S3 refuses before and after a presigned PUT's bytes --------------------------------------------------------
# Texts as S3 answers them: NotImplemented for `Transfer-Encoding: chunked` (S3 needs the length up front),
# MissingContentLength for a PUT without any length, InvalidDigest/BadDigest for Content-MD5, and for the additional
# checksums (https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html) InvalidRequest for
# a malformed value or more than one, BadDigest "The CRC32 you specified did not match the calculated checksum."


def refuse_unframed_put(headers: Mapping[str, str], *, chunked: bool) -> None:
    """Refuse a PUT body of unknown length: chunked → 501 NotImplemented (unless ``chunked`` storage takes it),
    neither Content-Length nor chunking → 411 MissingContentLength."""
    if "transfer-encoding" in headers:
        if not chunked:
            raise StorageError(
                "A header you provided implies functionality that is not implemented",
                code="NotImplemented",
                http_status=501,
                details={"Header": "Transfer-Encoding"},
            )
        return
    if "content-length" not in headers:
        raise StorageError(
            "You must provide the Content-Length HTTP header.", code="MissingContentLength", http_status=411
        )


def declared_length(headers: Mapping[str, str]) -> int | None:
    """The Content-Length a request declares, if it declares a whole number (the server holds the body to it)."""
    value = headers.get("content-length")
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


def _crc32(data: bytes, value: int) -> int:
    return zlib.crc32(data, value)


def _crc32c(data: bytes, value: int) -> int:
    return int(google_crc32c.extend(value, data))


@dataclass(frozen=True)
class _Crc:
    update: Callable[[bytes, int], int]

    def digest(self, path: Path) -> bytes:
        value = 0
        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                value = self.update(block, value)
        return value.to_bytes(4, "big")


@dataclass(frozen=True)
class _Hash:
    name: str

    def digest(self, path: Path) -> bytes:
        with path.open("rb") as fh:
            return hashlib.file_digest(fh, self.name).digest()


# header → (name in messages, digest length, how to compute it over a stored file)
CHECKSUMS: dict[str, tuple[str, int, _Crc | _Hash]] = {
    "x-amz-checksum-crc32": ("CRC32", 4, _Crc(_crc32)),
    "x-amz-checksum-crc32c": ("CRC32C", 4, _Crc(_crc32c)),
    "x-amz-checksum-sha1": ("SHA1", 20, _Hash("sha1")),
    "x-amz-checksum-sha256": ("SHA256", 32, _Hash("sha256")),
}


@dataclass(frozen=True)
class Integrity:
    """The digests a PUT declares (Content-MD5, at most one x-amz-checksum-*), checked before any byte is read."""

    md5: str | None = None  # hex
    checksum: tuple[str, bytes, str] | None = None  # (header, digest, the header's value as sent)

    @classmethod
    def declared(cls, headers: Mapping[str, str]) -> Integrity:
        md5: str | None = None
        raw = headers.get("content-md5")
        if raw is not None:
            digest = _b64(raw)
            if digest is None or len(digest) != 16:
                raise StorageError("The Content-MD5 you specified is not valid.", code="InvalidDigest", http_status=400)
            md5 = digest.hex()
        sent = [header for header in CHECKSUMS if header in headers]
        if len(sent) > 1:
            raise StorageError(
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
                code="InvalidRequest",
                http_status=400,
            )
        checksum = None
        if sent:
            (header,) = sent
            digest = _b64(headers[header])
            if digest is None or len(digest) != CHECKSUMS[header][1]:
                raise StorageError(f"Value for {header} header is invalid.", code="InvalidRequest", http_status=400)
            checksum = (header, digest, headers[header])
        return cls(md5, checksum)

    async def verify(self, path: Path, md5: str) -> dict[str, str]:
        """Raise BadDigest if the stored bytes (``md5`` already computed) disagree; the headers S3 echoes if not."""
        if self.md5 is not None and self.md5 != md5:
            raise StorageError(
                "The Content-MD5 you specified did not match what we received.", code="BadDigest", http_status=400
            )
        if self.checksum is None:
            return {}
        header, expected, sent = self.checksum
        name, _, algorithm = CHECKSUMS[header]
        # a second pass over the file, off the event loop: only when a client asked for this checksum
        if await asyncio.to_thread(algorithm.digest, path) != expected:
            raise StorageError(
                f"The {name} you specified did not match the calculated checksum.", code="BadDigest", http_status=400
            )
        return {header: sent}


def _b64(value: str) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
