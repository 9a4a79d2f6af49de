"""API keys: where a provider reads them, what shape they have, and which tenant they stand for.

By default any well-formed key is accepted (local development needs no real key) and each distinct key is its own
tenant, so one key never sees another's media. ``strict_keys`` accepts only keys configured in the settings.
Keys never leave this module in clear: everything downstream sees ``ApiKey.id``, a fingerprint.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from emulator.core.errors import Unauthorized


@dataclass(frozen=True)
class KeyPolicy:
    """How one provider carries and shapes its keys."""

    pattern: re.Pattern[str]
    bearer: bool = True  # ``Authorization: Bearer <key>``
    header: str | None = None  # e.g. ``x-api-key``
    example: str = ""  # a ready dev key, printed by ``serve``
    describe: str = ""  # human description of the shape, used in messages

    def extract(self, headers: Mapping[str, str]) -> str | None:
        if self.header:
            value = headers.get(self.header)
            if value:
                return value.strip()
        if self.bearer:
            auth = headers.get("authorization", "")
            scheme, _, token = auth.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        return None


@dataclass(frozen=True)
class ApiKey:
    provider: str
    id: str  # fingerprint: safe to log, journal and use as the tenant id

    @property
    def tenant(self) -> str:
        return self.id


def fingerprint(provider: str, secret: str) -> str:
    return "key_" + hashlib.sha256(f"{provider}\0{secret}".encode()).hexdigest()[:16]


@dataclass
class KeyRing:
    """Configured and revoked keys, per provider. Thread-safe; shared by every provider."""

    strict: bool = False
    configured: dict[str, set[str]] = field(default_factory=dict)
    _revoked: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def revoke(self, provider: str, secret: str) -> None:
        with self._lock:
            self._revoked.add(fingerprint(provider, secret))

    def authenticate(self, provider: str, policy: KeyPolicy, headers: Mapping[str, str]) -> ApiKey:
        secret = policy.extract(headers)
        if secret is None:
            raise Unauthorized("Missing API key.", details={"reason": "missing"})
        if not policy.pattern.fullmatch(secret):
            raise Unauthorized(f"Malformed API key: expected {policy.describe}.", details={"reason": "malformed"})
        key = ApiKey(provider, fingerprint(provider, secret))
        if key.id in self._revoked:
            raise Unauthorized("API key has been revoked.", details={"reason": "revoked"})
        if self.strict and secret not in self.configured.get(provider, set()):
            raise Unauthorized("Unknown API key.", details={"reason": "unknown"})
        return key
