"""The emulator's own invariants as schemathesis checks (registered on import, so "all checks" includes them).

    rate_limit_headers   a keyed 2xx or 429 carries X-RateLimit-Limit/-Remaining/-Reset; wherever they appear they
                         are whole numbers with Remaining ≤ Limit; a 429 carries Retry-After in seconds
    etag_matches_body    a plain ETag (a quoted MD5, not a multipart ``"…-N"`` one) is the MD5 of the bytes: those
                         PUT to storage, or those a storage GET served

Each is one small function that raises a ``schemathesis.core.failures.Failure`` subclass naming what is wrong.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import schemathesis
from schemathesis.core.failures import Failure

RATE_LIMIT_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
PLAIN_ETAG = re.compile(r'^"([0-9a-f]{32})"$')


class RateLimitHeadersInconsistent(Failure):
    code = "ST911"
    checks = ("rate_limit_headers",)
    kind_title = "Rate-limit headers missing or inconsistent"


class EtagMismatch(Failure):
    code = "ST912"
    checks = ("etag_matches_body",)
    kind_title = "ETag does not match the bytes"


def _header(response: Any, name: str) -> str | None:
    values = response.headers.get(name)
    if not values:
        return None
    return values[0] if isinstance(values, list) else str(values)


def _is_keyed(case: Any) -> bool:
    """Whether the operation takes an API key (storage URLs behind presigned links declare ``security: []``)."""
    raw = case.operation.definition.raw
    security = raw.get("security", case.operation.schema.raw_schema.get("security", []))
    return bool(security)


def _sent_as_declared(case: Any, response: Any) -> bool:
    """The request reached the operation: its declared method (not one of coverage's undeclared-method probes)."""
    return str(response.request.method).upper() == case.method.upper()


@schemathesis.check
def rate_limit_headers(ctx: Any, response: Any, case: Any) -> bool | None:
    if not _is_keyed(case) or not _sent_as_declared(case, response):
        return None
    present = {name: _header(response, name) for name in RATE_LIMIT_HEADERS}
    status = response.status_code
    missing = [name for name, value in present.items() if value is None]
    if (200 <= status < 300 or status == 429) and missing:
        raise RateLimitHeadersInconsistent(
            operation=case.operation.label,
            message=f"A keyed {status} response lacks {', '.join(h.title() for h in missing)}: every request a key "
            "makes counts against its limit, and the response says where it stands.",
        )
    if missing:
        return None
    numbers: dict[str, int] = {}
    for name, value in present.items():
        assert value is not None
        if not value.isdigit():
            raise RateLimitHeadersInconsistent(
                operation=case.operation.label, message=f"{name.title()}: {value!r} is not a whole number"
            )
        numbers[name] = int(value)
    if numbers["x-ratelimit-remaining"] > numbers["x-ratelimit-limit"]:
        raise RateLimitHeadersInconsistent(
            operation=case.operation.label,
            message=f"X-RateLimit-Remaining {numbers['x-ratelimit-remaining']} exceeds X-RateLimit-Limit "
            f"{numbers['x-ratelimit-limit']}",
        )
    if status == 429:
        retry_after = _header(response, "retry-after")
        if retry_after is None or not retry_after.isdigit():
            raise RateLimitHeadersInconsistent(
                operation=case.operation.label, message=f"a 429 needs Retry-After in whole seconds, got {retry_after!r}"
            )
        if numbers["x-ratelimit-remaining"] != 0:
            raise RateLimitHeadersInconsistent(
                operation=case.operation.label,
                message=f"a 429 says X-RateLimit-Remaining {numbers['x-ratelimit-remaining']}, not 0",
            )
    return None


def _body_bytes(body: Any) -> bytes | None:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return None  # a streamed body: nothing to compare


@schemathesis.check
def etag_matches_body(ctx: Any, response: Any, case: Any) -> bool | None:
    if not 200 <= response.status_code < 300 or response.status_code == 206:
        return None
    etag = _header(response, "etag")
    match = PLAIN_ETAG.match(etag or "")
    if match is None:
        return None
    method = str(response.request.method).upper()
    if method == "PUT":
        content_type = (response.request.headers.get("content-type") or "").lower()
        if content_type.startswith("multipart/"):
            return None
        sent = _body_bytes(response.request.body)
        if sent is None:
            return None
        digest, what = hashlib.md5(sent, usedforsecurity=False).hexdigest(), f"the {len(sent)} bytes PUT"
    elif method == "GET":
        if response.content_size != len(response.content):
            return None  # only part of the body was kept
        digest = hashlib.md5(response.content, usedforsecurity=False).hexdigest()
        what = f"the {len(response.content)} bytes served"
    else:
        return None
    if match.group(1) != digest:
        raise EtagMismatch(operation=case.operation.label, message=f'ETag {etag} is not the MD5 of {what} ("{digest}")')
    return None
