"""The one object that holds the emulator's state and mechanisms for the life of an app."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.datastructures import URL
from starlette.requests import Request

from emulator.core.auth import ApiKey, KeyRing
from emulator.core.clock import Clock
from emulator.core.errors import Conflict
from emulator.core.faults import FaultBook
from emulator.core.ids import Ids
from emulator.core.journal import Journal
from emulator.core.presign import Presigner
from emulator.core.ratelimit import Limit, Quota, RateLimiter
from emulator.core.reclaim import Abandonable, Reclaimer
from emulator.core.state import WAY_OUT, MemoryStore, SqliteStore, StateError, Store
from emulator.core.storage import BlobStore
from emulator.settings import Settings

if TYPE_CHECKING:
    from emulator.core.provider import Provider
    from emulator.core.shared import RedisStore, Sync


@dataclass
class Runtime:
    settings: Settings
    clock: Clock = field(default_factory=Clock)
    # None: chosen in __post_init__ (in memory, or SQLite in the data directory with its presign secret)
    store: Store = None  # type: ignore[assignment]  # None until __post_init__ picks it (see the comment above)
    limiter: RateLimiter = None  # type: ignore[assignment]  # None: one that tracks settings.max_tracked_keys
    presigner: Presigner = None  # type: ignore[assignment]  # None: chosen in __post_init__, as the store
    faults: FaultBook = field(default_factory=FaultBook)
    ids: Ids = field(init=False)
    keys: KeyRing = field(init=False)
    blobs: BlobStore = field(init=False)
    journal: Journal = field(init=False)
    reclaimer: Reclaimer = field(init=False)
    _limits: dict[tuple[str, str], tuple[Limit, ...]] = field(init=False, default_factory=dict, repr=False)
    _sync: Sync | None = field(init=False, default=None, repr=False)  # with --state redis://…: once per request

    def __post_init__(self) -> None:
        # the reclaimer and the journal first, as they check their settings before anything is opened that would need
        # closing; then the blobs, before the state: the store takes the data directory's lock (and with
        # --reset-state moves the old state aside under it)
        self.reclaimer = Reclaimer(self.settings.abandoned_after)
        shared = self._shared_state()  # before the journal, which reads the (then shared) clock
        self.journal = Journal(self.clock, max_bytes=self.settings.journal_max_bytes)
        if shared is not None:
            from emulator.core.shared import SharedJournal

            assert self._sync is not None
            self.journal = SharedJournal(
                shared.client,
                self.clock,
                max_bytes=self.settings.journal_max_bytes,
                wire=shared.wire,
                batches=self._sync.batches,
            )
        try:
            self.blobs = BlobStore(
                self.settings.data_dir,
                shared=shared is not None,
                direct=not self.settings.buffered_writes,
                set_aside=STATE_FILES if self.settings.reset_state else None,
            )
        except BaseException:
            if shared is not None:
                shared.close()
            raise
        seed = self.settings.seed
        if shared is not None:
            try:
                self.store = shared
                seed = _seed_for_boot(seed, shared.boot())
            except BaseException:
                shared.close()
                self.blobs.close()
                raise
        elif self.store is None and self.settings.data_dir is not None:
            try:
                state_file = self.blobs.root / STATE_FILE
                if not state_file.exists() and self.blobs.index:  # deleted: the records of those bytes are gone
                    raise StateError(
                        f"{state_file}: is missing, but {len(self.blobs.index)} stored objects are "
                        f"there, whose records it held; {WAY_OUT}"
                    )
                persistent = SqliteStore(state_file, root=self.blobs.root)
            except BaseException:
                self.blobs.close()  # let the directory go: nothing else will run on it
                raise
            self.store = persistent
            seed = _seed_for_boot(seed, persistent.boot())
            self.presigner = self.presigner or Presigner(persistent.secret())
        self.store = self.store or MemoryStore()
        self.limiter = self.limiter or RateLimiter(self.settings.max_tracked_keys)
        self.presigner = self.presigner or Presigner()
        self.ids = Ids(seed)
        if shared is None:
            self.keys = KeyRing(
                strict=self.settings.strict_keys, configured={p: set(k) for p, k in self.settings.keys.items()}
            )

    def _shared_state(self) -> RedisStore | None:
        """With ``--state redis://…``: the store, and the clock and limiter that go with it, on Redis."""
        if self.settings.state is None:
            return None
        if self.settings.reset_state:
            raise ValueError(
                "--reset-state keeps the old state aside in --data-dir; with --state redis://… reset "
                "through POST /_emulator/reset instead"
            )
        from emulator.core import shared  # redis is an optional extra: imported only when asked for

        client = shared.connect(self.settings.state)
        problem = shared.problem(client)
        if problem is not None:  # at start a usage error: there is nothing to serve from
            client.close()
            raise ValueError(f"--state: {problem}")
        clock = shared.SharedClock(client)
        faults = shared.SharedFaultBook(client)
        self.keys = shared.SharedKeyRing(
            strict=self.settings.strict_keys,
            configured={p: set(k) for p, k in self.settings.keys.items()},
            client=client,
        )
        store = shared.RedisStore(client, root=self.settings.data_dir.absolute() if self.settings.data_dir else None)
        limiter = shared.SharedRateLimiter(client, store.wire)
        self.clock, self.limiter, self.faults = clock, limiter, faults
        self._sync = shared.Sync(client, clock, faults, self.keys, store, limiter)
        self._sync.on_secret = self._use_secret
        self._sync.refresh()  # reads (or sets) the presign secret: self.presigner
        return store

    def _use_secret(self, secret: bytes) -> None:
        self.presigner = Presigner(secret)

    def refresh(self, admit: tuple[str, Sequence[Limit]] | None = None) -> Callable[[], Quota] | None:
        """Read what other processes may have changed (the shared clock), once per request; nothing in memory.

        With shared state and ``admit`` (the bucket and limits the request is to be counted against), the limits
        may be taken in the same round trip: then the answer gives the request's quota (``Sync.refresh``)."""
        if self._sync is not None:
            return self._sync.refresh(admit)
        return None

    async def refresh_async(self, admit: tuple[str, Sequence[Limit]] | None = None) -> Callable[[], Quota] | None:
        """``refresh`` awaited: with shared state the event loop serves other requests while Redis answers."""
        if self._sync is not None:
            return await self._sync.refresh_async(admit)
        return None

    @property
    def shared(self) -> bool:
        """Whether the state is shared with other processes (``--state redis://…``)."""
        return self._sync is not None

    def problem(self) -> str | None:
        """Why the emulator cannot serve now (shared state unreachable), for the health check; None if it can."""
        client = getattr(self.store, "client", None)
        if client is None:
            return None
        from emulator.core import shared

        return shared.problem(client)

    def limits_for(self, provider: Provider, op_id: str, key: ApiKey | None = None) -> Sequence[Limit]:
        """The provider's documented limits for ``op_id``, with settings overrides, then the key's own, applied.

        Without a key's own limits the answer depends only on the operation (settings are fixed for the life of a
        runtime), so it is worked out once per operation.
        """
        own = key.rate_limits if key is not None else {}
        if not own:
            cached = self._limits.get((provider.name, op_id))
            if cached is None:
                cached = self._limits[(provider.name, op_id)] = tuple(self._limits_with(provider, op_id, {}))
            return cached
        return self._limits_with(provider, op_id, own)

    def _limits_with(self, provider: Provider, op_id: str, own: Mapping[str, int]) -> list[Limit]:
        overrides = self.settings.rate_limits
        return [
            Limit(
                limit.name,
                own.get(limit.name, overrides.get(f"{provider.name}.{limit.name}", limit.limit)),
                limit.window,
            )
            for limit in provider.limits(op_id)
        ]

    def abandonable(self) -> list[Abandonable]:
        from emulator.providers import PROVIDERS  # every provider: a data directory may hold any one's uploads

        return [kind for provider in PROVIDERS.values() for kind in provider.abandonable]

    def reclaim_due(self, now: float) -> None:
        """Expire abandoned uploads if a sweep is due (cheap otherwise: one comparison)."""
        if now >= self.reclaimer.due:
            try:
                self.reclaimer.tick(self, self.abandonable(), now)
            except Conflict:  # shared state: another process expired the same upload at the same moment
                self.reclaimer.due = now  # sweep again on the next request; what it expired stays expired

    def reclaim(self) -> int:
        """Expire abandoned uploads now (the clock was moved); the number expired."""
        return self.reclaimer.sweep(self, self.abandonable(), self.clock.now())

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
        server = request.scope.get("server")
        return (
            _origin(request.scope.get("scheme", "http"), request.headers.get("host"), tuple(server) if server else None)
            + mount
        )

    def close(self) -> None:
        if self._sync is not None:
            self._sync.batches.close()
        self.store.close()
        self.blobs.close()


@functools.lru_cache(maxsize=256)
def _origin(scheme: str, host: str | None, server: tuple[str, int] | None) -> str:
    """``scheme://netloc`` of a request, as Starlette's ``request.url`` works it out from the Host header or the
    server address; cached, because building the whole URL was a twentieth of a JSON request's time, and a server
    sees few distinct hosts (a hostile stream of them only cycles the cache)."""
    headers = [(b"host", host.encode("latin-1"))] if host is not None else []
    url = URL(scope={"scheme": scheme, "server": server, "path": "/", "headers": headers})
    return f"{url.scheme}://{url.netloc}"


STATE_FILE = "state.sqlite3"  # in the data directory, next to the blobs
STATE_FILES = (STATE_FILE, f"{STATE_FILE}-wal", f"{STATE_FILE}-shm")  # what --reset-state moves aside with them


def _seed_for_boot(seed: int | None, boot: int) -> int | None:
    """The first run of a data directory uses ``seed`` as given; later runs a seed derived from it and the boot
    count, so a restarted seeded emulator does not issue again the ids its stored records already hold."""
    if seed is None or boot <= 1:
        return seed
    return int.from_bytes(hashlib.sha256(f"{seed}:{boot}".encode()).digest()[:8], "big")
