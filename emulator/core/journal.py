"""The request journal: every request and response, secrets redacted, queryable by tests.

``JournalMiddleware`` is pure ASGI and outermost (``BaseHTTPMiddleware`` would buffer uploads and break
streaming), so 401s, 404s, 429s and even unhandled errors are recorded. It never reads bodies: it counts the bytes
that pass. The pipeline annotates the entry it finds in the scope with the provider, operation and key id (a
fingerprint — the key itself is never stored).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.core.clock import Clock, iso_millis
from emulator.core.uvicorn_internals import connection_transport

ENTRY = "emulator.entry"  # scope key under which the pipeline finds the entry being written
REQUEST_HEADERS = ("content-type", "content-length", "transfer-encoding", "user-agent", "idempotency-key", "expect")
RESPONSE_HEADERS = ("content-type", "content-length", "etag", "retry-after", "x-ratelimit-limit",
                    "x-ratelimit-remaining", "x-ratelimit-reset", "allow", "location")
_REQUEST_HEADERS = frozenset(h.encode() for h in REQUEST_HEADERS)
_RESPONSE_HEADERS = frozenset(h.encode() for h in RESPONSE_HEADERS)


KEPT = 2048  # characters kept of a header value, path or query: a hostile 1 MB header must not fill the journal


def _select(raw: Iterable[tuple[bytes, bytes]], wanted: frozenset[bytes]) -> dict[str, str]:
    """The wanted headers only (never Authorization or x-api-key), decoded; raw ASGI names are lowercase."""
    return {k.decode("latin-1"): _clip(v[:KEPT + 1].decode("latin-1")) for k, v in raw if k.lower() in wanted}


def _clip(text: str) -> str:
    return text if len(text) <= KEPT else text[:KEPT] + "…"


SECRET_QUERY = ("x-emulator-signature", "signature", "token", "access_token", "api_key", "api-key", "apikey",
                "x-api-key", "key")


@dataclass
class Entry:
    id: int
    epoch: float  # virtual clock, seconds
    method: str
    path: str
    query: str
    client: str | None
    provider: str | None = None
    operation: str | None = None
    key_id: str | None = None
    status: int | None = None
    duration_ms: float = 0.0
    request_bytes: int = 0
    response_bytes: int = 0
    request_headers: dict[str, str] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)
    fault: str | None = None
    notes: list[str] = field(default_factory=list)
    completed: bool = False  # false when the client went away or the connection was dropped mid-response

    @property
    def at(self) -> str:
        """The virtual clock as ISO with milliseconds (formatted when read, not on every request)."""
        return iso_millis(self.epoch)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {"id": data.pop("id"), "at": self.at, **data}


def redact_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, "REDACTED" if k.lower() in SECRET_QUERY else v) for k, v in pairs])


class Journal:
    def __init__(self, clock: Clock, capacity: int = 10_000) -> None:
        self._clock = clock
        self._entries: deque[Entry] = deque(maxlen=capacity)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def open(self, scope: Scope) -> Entry:
        now = self._clock.now()
        client = scope.get("client")
        raw_query = scope.get("query_string", b"")
        entry = Entry(
            id=next(self._ids), epoch=now, method=scope.get("method", ""),
            path=_clip(scope.get("path", "")),
            query=_clip(redact_query(raw_query.decode("latin-1"))) if raw_query else "",
            client=client[0] if client else None,
            request_headers=_select(scope.get("headers", []), _REQUEST_HEADERS),
        )
        with self._lock:
            self._entries.append(entry)
        return entry

    def query(self, *, provider: str | None = None, operation: str | None = None, status: int | None = None,
              since: float | None = None, key_id: str | None = None, method: str | None = None,
              limit: int | None = None) -> list[Entry]:
        with self._lock:
            entries: Iterable[Entry] = list(self._entries)
        out = [
            e for e in entries
            if (provider is None or e.provider == provider) and (operation is None or e.operation == operation)
            and (status is None or e.status == status) and (since is None or e.epoch >= since)
            and (key_id is None or e.key_id == key_id) and (method is None or e.method == method.upper())
        ]
        return out[-limit:] if limit else out

    def clear(self, provider: str | None = None) -> None:
        with self._lock:
            if provider is None:
                self._entries.clear()
            else:
                kept = [e for e in self._entries if e.provider != provider]
                self._entries.clear()
                self._entries.extend(kept)


class JournalMiddleware:
    """Outermost ASGI layer: opens an entry, counts bytes both ways, closes it with status and timing."""

    def __init__(self, app: ASGIApp, journal: Journal, transport_key: str = "emulator.transport",
                 skip_prefix: str = "/_emulator") -> None:
        self.app, self.journal, self.transport_key, self.skip_prefix = app, journal, transport_key, skip_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # the control plane is not journaled: the journal records what clients do to the providers
        if scope["type"] != "http" or scope.get("path", "").startswith(self.skip_prefix):
            await self.app(scope, receive, send)
            return
        entry = self.journal.open(scope)
        scope[ENTRY] = entry
        # fault injection needs the connection's transport to drop a connection for real (uvicorn only)
        transport = connection_transport(send)
        if transport is not None:
            scope[self.transport_key] = transport
        started = time.perf_counter()

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                entry.request_bytes += len(message.get("body", b""))
            return message

        async def recording_send(message: Message) -> None:
            if scope.get("emulator.dropped"):  # a fault closed the connection: nothing reached the client
                return
            if message["type"] == "http.response.start":
                entry.status = message["status"]
                entry.response_headers = _select(message.get("headers", []), _RESPONSE_HEADERS)
            elif message["type"] == "http.response.body":
                entry.response_bytes += len(message.get("body", b""))
                if not message.get("more_body", False):
                    entry.completed = True
            await send(message)

        try:
            await self.app(scope, counting_receive, recording_send)
        finally:
            entry.duration_ms = round((time.perf_counter() - started) * 1000, 3)
