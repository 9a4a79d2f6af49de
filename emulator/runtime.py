"""The one object that holds the emulator's state and mechanisms for the life of an app."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request

from emulator.core.auth import ApiKey, KeyRing
from emulator.core.faults import FaultBook
from emulator.core.journal import Journal
from emulator.core.clock import Clock
from emulator.core.ids import Ids
from emulator.core.presign import Presigner
from emulator.core.ratelimit import Limit, RateLimiter
from emulator.core.state import MemoryStore, Store
from emulator.core.storage import BlobStore
from emulator.settings import Settings

if TYPE_CHECKING:
    from emulator.core.provider import Provider


@dataclass
class Runtime:
    settings: Settings
    clock: Clock = field(default_factory=Clock)
    store: Store = field(default_factory=MemoryStore)
    limiter: RateLimiter = field(default_factory=RateLimiter)
    presigner: Presigner = field(default_factory=Presigner)
    faults: FaultBook = field(default_factory=FaultBook)
    ids: Ids = field(init=False)
    keys: KeyRing = field(init=False)
    blobs: BlobStore = field(init=False)
    journal: Journal = field(init=False)

    def __post_init__(self) -> None:
        self.ids = Ids(self.settings.seed)
        self.journal = Journal(self.clock)
        self.keys = KeyRing(strict=self.settings.strict_keys,
                            configured={p: set(k) for p, k in self.settings.keys.items()})
        self.blobs = BlobStore(self.settings.data_dir)

    def limits_for(self, provider: Provider, op_id: str, key: ApiKey | None = None) -> Sequence[Limit]:
        """The provider's documented limits for ``op_id``, with settings overrides, then the key's own, applied."""
        overrides = self.settings.rate_limits
        own = key.rate_limits if key is not None else {}
        return [
            Limit(limit.name, own.get(limit.name, overrides.get(f"{provider.name}.{limit.name}", limit.limit)),
                  limit.window)
            for limit in provider.limits(op_id)
        ]

    def reset(self, provider: str | None = None) -> None:
        """Forget state without restarting: everything, or one provider's records, bytes, limits, keys, faults."""
        prefix = "" if provider is None else f"{provider}:"
        self.store.clear(prefix)
        self.blobs.clear("" if provider is None else f"{provider}/")
        self.limiter.reset(prefix or None)
        self.journal.clear(provider)
        self.faults.clear(provider)
        self.keys.reset(provider)
        if provider is None:
            self.clock.reset()

    def provider_base(self, request: Request, provider: str) -> str:
        """The URL a client reaches ``provider`` at: ``public_url`` if set, else the request's own origin."""
        # the control plane ("_emulator") keeps its prefix even when one provider is served at the root
        mount = "" if self.settings.provider and not provider.startswith("_") else f"/{provider}"
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/") + mount
        origin = f"{request.url.scheme}://{request.url.netloc}"
        return origin + mount

    def close(self) -> None:
        self.blobs.close()
