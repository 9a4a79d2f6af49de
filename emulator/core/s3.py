"""S3-style XML errors, as S3 and R2 answer presigned requests, for every provider whose storage is S3-like."""

from __future__ import annotations

import re
from typing import Any
from xml.sax.saxutils import escape as _escape

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
