"""The error tree. Handlers raise; each provider's envelope renders.

    EmulatorError                 any refusal the emulator answers on purpose (never a 500)
    ├── Invalid                   400, request does not match the contract (field errors attached)
    │   ├── InvalidJSON           400, body is not parseable JSON
    │   └── RequestTimeout        400, the body stopped arriving (S3's RequestTimeout; the connection is closed)
    ├── Unauthorized              401, missing, malformed or revoked key
    ├── Forbidden                 403
    ├── NotFound                  404, unknown resource, or another key's resource
    ├── MethodNotAllowed          405
    ├── Conflict                  409
    ├── PayloadTooLarge           413
    ├── UnsupportedMediaType      415
    ├── Unprocessable             422
    ├── RateLimited               429, carries retry_after
    ├── Unavailable               503, the shared state store is unreachable (retryable, carries retry_after)
    └── StorageError              an error from the storage host behind a presigned URL (S3/R2 or Cloudflare
                                  style): ``code`` is the storage's own code, e.g. ``AccessDenied``

``kind`` is the provider-neutral name of the failure; a provider maps it to its own code and wording. A handler
can pass ``code=`` to force the provider's exact code (``invalid_field_name``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One precise complaint about one field: where, and what was expected."""

    field: str
    message: str


@dataclass
class EmulatorError(Exception):
    message: str = "The request could not be processed."
    code: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    errors: list[FieldError] = field(default_factory=list)

    status = 400
    kind = "bad_request"

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message)

    def __str__(self) -> str:
        return self.message


class Invalid(EmulatorError):
    status, kind = 400, "validation"


class InvalidJSON(Invalid):
    kind = "invalid_json"


class RequestTimeout(Invalid):
    kind = "request_timeout"


class Unauthorized(EmulatorError):
    status, kind = 401, "unauthorized"


class Forbidden(EmulatorError):
    status, kind = 403, "forbidden"


class NotFound(EmulatorError):
    status, kind = 404, "not_found"


class MethodNotAllowed(EmulatorError):
    status, kind = 405, "method_not_allowed"


class Conflict(EmulatorError):
    status, kind = 409, "conflict"


class PayloadTooLarge(EmulatorError):
    status, kind = 413, "payload_too_large"


class UnsupportedMediaType(EmulatorError):
    status, kind = 415, "unsupported_media_type"


class Unprocessable(EmulatorError):
    status, kind = 422, "unprocessable"


@dataclass
class RateLimited(EmulatorError):
    retry_after: int = 1

    status, kind = 429, "rate_limited"


@dataclass
class Unavailable(EmulatorError):
    """The emulator's shared state (Redis) cannot be reached: nothing was done, the client may retry."""

    retry_after: int = 1

    status, kind = 503, "server_error"


@dataclass
class StorageError(EmulatorError):
    """Raised by storage endpoints; ``status`` is per instance because storage codes map to several."""

    http_status: int = 403

    kind = "storage"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.status = self.http_status
