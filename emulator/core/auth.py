"""API keys: where a provider reads them, what shape they have, and which tenant they stand for.

By default any well-formed key is accepted (local development needs no real key) and each distinct key is its own
tenant, so one key never sees another's media. ``strict_keys`` accepts only keys configured in the settings or
created through the control plane. Keys never leave this module in clear: everything downstream sees
``ApiKey.id``, a fingerprint.

Magic keys (in the spirit of payment providers' test cards) are declared per provider in ``KeyPolicy.magic``:
always revoked, always rate-limited, always slow, or scoped without write access.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from emulator.core.errors import Unauthorized


@dataclass(frozen=True)
class Magic:
    """What a magic key does. ``scopes=None`` means every scope."""

    describe: str
    revoked: bool = False
    rate_limited: bool = False
    delay: float = 0.0  # real seconds added to every request
    scopes: frozenset[str] | None = None


@dataclass(frozen=True)
class KeyPolicy:
    """How one provider carries and shapes its keys."""

    pattern: re.Pattern[str]
    bearer: bool = True  # ``Authorization: Bearer <key>``
    header: str | None = None  # e.g. ``x-api-key``
    example: str = ""  # a ready dev key, printed by ``serve``
    describe: str = ""  # human description of the shape, used in messages
    magic: Mapping[str, Magic] = field(default_factory=dict)

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
    scopes: frozenset[str] | None = None  # None: every scope
    rate_limits: Mapping[str, int] = field(default_factory=dict)  # per-key overrides of the provider's limits
    magic: Magic | None = None

    @property
    def tenant(self) -> str:
        return self.id

    def allows(self, scopes: tuple[str, ...]) -> bool:
        return self.scopes is None or all(scope in self.scopes for scope in scopes)


@dataclass
class CreatedKey:
    """A key made through the control plane. ``secret`` is shown once, when it is created."""

    id: str
    provider: str
    secret: str
    scopes: frozenset[str] | None
    rate_limits: dict[str, int]
    created_at: float
    revoked: bool = False

    def public(self) -> dict[str, object]:
        return {
            "id": self.id,
            "provider": self.provider,
            "hint": "…" + self.secret[-4:],
            "scopes": None if self.scopes is None else sorted(self.scopes),
            "rate_limits": self.rate_limits,
            "created_at": self.created_at,
            "revoked": self.revoked,
        }


@functools.lru_cache(maxsize=4096)  # on every request, and a client sends the same key again and again
def fingerprint(provider: str, secret: str) -> str:
    return "key_" + hashlib.sha256(f"{provider}\0{secret}".encode()).hexdigest()[:16]


@dataclass
class KeyRing:
    """Configured, created and revoked keys, per provider. Thread-safe; shared by every provider."""

    strict: bool = False
    configured: dict[str, set[str]] = field(default_factory=dict)
    _created: dict[str, CreatedKey] = field(default_factory=dict)
    _revoked: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create(
        self, provider: str, secret: str, scopes: frozenset[str] | None, rate_limits: dict[str, int], now: float
    ) -> CreatedKey:
        created = CreatedKey(fingerprint(provider, secret), provider, secret, scopes, dict(rate_limits), now)
        with self._lock:
            self._created[created.id] = created
            self._revoked.discard(created.id)
        return created

    def created(self) -> list[CreatedKey]:
        with self._lock:
            return list(self._created.values())

    def revoke(self, provider: str, secret: str) -> str:
        return self.revoke_id(fingerprint(provider, secret))

    def revoke_id(self, key_id: str) -> str:
        with self._lock:
            self._revoked.add(key_id)
            if key_id in self._created:
                self._created[key_id].revoked = True
        return key_id

    def reset(self, provider: str | None = None) -> None:
        with self._lock:
            doomed = [k for k, c in self._created.items() if provider is None or c.provider == provider]
            for key_id in doomed:
                del self._created[key_id]
            if provider is None:
                self._revoked.clear()

    def authenticate(self, provider: str, policy: KeyPolicy, headers: Mapping[str, str]) -> ApiKey:
        secret = policy.extract(headers)
        if secret is None:
            raise Unauthorized("Missing API key.", details={"reason": "missing"})
        if not policy.pattern.fullmatch(secret):
            raise Unauthorized(f"Malformed API key: expected {policy.describe}.", details={"reason": "malformed"})
        key_id = fingerprint(provider, secret)
        magic = policy.magic.get(secret)
        if key_id in self._revoked or (magic is not None and magic.revoked):
            raise Unauthorized("API key has been revoked.", details={"reason": "revoked"})
        created = self._created.get(key_id)
        if created is not None:
            return ApiKey(provider, key_id, created.scopes, created.rate_limits)
        if magic is not None:
            return ApiKey(provider, key_id, magic.scopes, magic=magic)
        if self.strict and secret not in self.configured.get(provider, set()):
            raise Unauthorized("Unknown API key.", details={"reason": "unknown"})
        return ApiKey(provider, key_id)
