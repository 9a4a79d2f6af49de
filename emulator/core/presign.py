"""Presigned URLs: HMAC-signed over provider, method, path, expiry, size limit and content type, with a secret.

The provider (``audience``) is part of the signed message, so a URL one provider issued never verifies on another,
even where two storage paths look alike. The secret is per process, or kept in the data directory when state
persists (``Runtime``), so URLs issued before a restart still work after it.

The signed components travel in the query string (as S3's ``X-Amz-*`` do) so a reader can see what was signed;
changing any of them, or the method or path, breaks the signature. Verification says which part is wrong, and
callers render that in their storage's own error shape (S3 XML, Cloudflare JSON).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote_plus

EXPIRES = "X-Emulator-Expires"
MAX_SIZE = "X-Emulator-Max-Size"
CONTENT_TYPE = "X-Emulator-Content-Type"
SIGNATURE = "X-Emulator-Signature"
SIGNED = (EXPIRES, MAX_SIZE, CONTENT_TYPE)


@dataclass(frozen=True)
class Grant:
    """What a verified URL allows."""

    method: str
    path: str
    expires: int
    max_size: int
    content_type: str


class PresignFailure(Exception):
    """``reason`` is one of: missing, malformed, signature, method, expired."""

    def __init__(self, reason: str, message: str, grant: Grant | None = None) -> None:
        super().__init__(message)
        self.reason, self.message, self.grant = reason, message, grant


class Presigner:
    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self._keyed = hmac.new(self._secret, digestmod=hashlib.sha256)  # copied per URL: the key is set up once

    def _mac(self, audience: str, method: str, path: str, expires: str, max_size: str, content_type: str) -> str:
        mac = self._keyed.copy()
        mac.update("\n".join((audience, method.upper(), path, expires, max_size, content_type)).encode())
        return mac.hexdigest()

    def query(self, method: str, path: str, *, audience: str, expires: int, max_size: int, content_type: str) -> str:
        """The signed query string for ``method path`` on provider ``audience``."""
        signature = self._mac(audience, method, path, str(expires), str(max_size), content_type)
        # the same string urlencode() builds, without its per-character generality (this is on the hot path)
        return (
            f"{EXPIRES}={expires}&{MAX_SIZE}={max_size}&{CONTENT_TYPE}={_quoted(content_type)}&{SIGNATURE}={signature}"
        )

    def verify(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        now: float,
        *,
        audience: str,
        alternatives: tuple[str, ...] = ("GET", "PUT", "POST"),
    ) -> Grant:
        missing = [name for name in (*SIGNED, SIGNATURE) if not query.get(name)]
        if missing:
            raise PresignFailure("missing", f"Query-string authentication requires {', '.join(missing)}.")
        expires, max_size, content_type = (query[name] for name in SIGNED)
        if not expires.isdigit() or not max_size.isdigit():
            raise PresignFailure("malformed", f"{EXPIRES} and {MAX_SIZE} must be whole numbers.")
        given = query[SIGNATURE]
        if not given.isascii():  # compare_digest refuses non-ASCII str; no valid signature contains any
            raise PresignFailure(
                "signature",
                "The request signature we calculated does not match the signature "
                "you provided: X-Emulator-Signature must be hexadecimal.",
            )
        if not hmac.compare_digest(self._mac(audience, method, path, expires, max_size, content_type), given):
            for other in alternatives:
                if other != method.upper() and hmac.compare_digest(
                    self._mac(audience, other, path, expires, max_size, content_type), given
                ):
                    raise PresignFailure("method", f"This URL was signed for {other}, not {method.upper()}.")
            raise PresignFailure(
                "signature",
                "The request signature we calculated does not match the signature you provided. "
                "The path, method, X-Emulator-Expires, X-Emulator-Max-Size and X-Emulator-Content-Type are signed; "
                "one of them was changed.",
            )
        grant = Grant(method.upper(), path, int(expires), int(max_size), content_type)
        if now > grant.expires:
            raise PresignFailure("expired", "Request has expired", grant)
        return grant


@functools.lru_cache(maxsize=256)  # a handful of content types, quoted on every presigned URL
def _quoted(content_type: str) -> str:
    return quote_plus(content_type)
