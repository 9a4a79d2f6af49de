"""The request journal: every request and response, secrets redacted, queryable by tests.

``JournalMiddleware`` is pure ASGI and outermost (``BaseHTTPMiddleware`` would buffer uploads and break
streaming), so 401s, 404s, 429s and even unhandled errors are recorded. It counts the bytes that pass and keeps
the first ``PREVIEW`` bytes of each body, as text when the content type is text-like, with secrets redacted when
the request ends (see ``_preview``). The pipeline annotates the entry it finds in the scope with the provider,
operation and key id (a fingerprint — the key itself is never stored).
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.core.clock import Clock, iso_millis

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

PREVIEW = 1024  # bytes of each body kept (10,000 entries hold at most ~20 MiB of previews)
TEXT_TYPES = ("application/json", "application/xml", "application/x-www-form-urlencoded", "application/problem+json")
SECRET_HEADERS = (b"authorization", b"x-api-key", b"api-key", b"apikey", b"x-auth-token")
SECRET_MEMBERS = ("signature", "token", "access_token", "api_key", "api-key", "apikey", "x-api-key", "secret")
# a secret as a URL query parameter (a presigned URL inside a JSON or XML body) or as a JSON string member; each
# pattern runs only when the text holds one of the names (a plain substring test), which most bodies do not: the
# regular expressions cost tens of microseconds on a 1 KiB body, the test well under one
_QUERY_PARAM = re.compile(r'([?&](?:amp;)?)([\w.-]+)=[^&"\'\s<>]*')
_MEMBER = re.compile(r'"([\w.-]+)"(\s*:\s*)"(?:[^"\\]|\\.)*("?)')  # a preview may cut the value short
_QUERY_MARKS = tuple(f"{name}=" for name in SECRET_QUERY)
_MEMBER_MARKS = tuple(f'"{name}"' for name in SECRET_MEMBERS)


def _redact_param(m: re.Match[str]) -> str:
    return f"{m.group(1)}{m.group(2)}=REDACTED" if m.group(2).lower() in SECRET_QUERY else m.group(0)


def _redact_member(m: re.Match[str]) -> str:
    return f'"{m.group(1)}"{m.group(2)}"REDACTED{m.group(3)}' if m.group(1).lower() in SECRET_MEMBERS else m.group(0)


def redact_text(text: str) -> str:
    lowered = text.lower()
    # every secret name holds one of these words: four searches rule out most bodies
    if not ("key" in lowered or "token" in lowered or "signature" in lowered or "secret" in lowered):
        return text
    if any(mark in lowered for mark in _QUERY_MARKS):
        text = _QUERY_PARAM.sub(_redact_param, text)
    if any(mark in lowered for mark in _MEMBER_MARKS):
        text = _MEMBER.sub(_redact_member, text)
    return text


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
    request_body: str | None = None  # the first PREVIEW bytes as text, secrets redacted; None: not text-like
    response_body: str | None = None
    wall: float = 0.0  # real time the request arrived, unix seconds (``epoch`` is the virtual clock's)

    @property
    def at(self) -> str:
        """The virtual clock as ISO with milliseconds (formatted when read, not on every request)."""
        return iso_millis(self.epoch)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {"id": data.pop("id"), "at": self.at, **data}


def _text_like(content_type: str | None) -> bool:
    kind = (content_type or "").partition(";")[0].strip().lower()
    return kind.startswith("text/") or kind in TEXT_TYPES or kind.endswith("+json") or kind.endswith("+xml")


def _preview(head: bytes, content_type: str | None, secrets: list[str]) -> str | None:
    """A body's first bytes as text, or None when the body is not text-like (files, images, multipart).

    Redacted like the query string: secret query parameters (presigned URLs' signatures) and JSON members named
    like a secret become ``REDACTED``, and so does any credential the request carried in its headers, wherever a
    body repeats it.
    """
    if not head or not _text_like(content_type):
        return None
    text = head.decode("utf-8", "replace")
    for secret in secrets:
        text = text.replace(secret, "REDACTED")
        if len(head) == PREVIEW:  # cut short: the preview may end with the start of the credential
            cut = next((n for n in range(len(secret) - 1, 3, -1) if text.endswith(secret[:n])), 0)
            text = text[:len(text) - cut] + "REDACTED" if cut else text
    return redact_text(text)


def _secrets(raw: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """The credentials a request carries in its headers (a bearer token, an API key), to be kept out of previews."""
    found = []
    for name, value in raw:
        if name.lower() in SECRET_HEADERS:
            token = value.decode("latin-1").strip().rpartition(" ")[2]
            if len(token) >= 8:  # a short value ("x") would blank unrelated text
                found.append(token)
    return found


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
            request_headers=_select(scope.get("headers", []), _REQUEST_HEADERS), wall=time.time(),
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
        # uvicorn's send is a bound method of its request cycle, which holds the connection's transport: fault
        # injection needs it to drop a connection for real (ASGI itself has no way to say "abort").
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if transport is not None:
            scope[self.transport_key] = transport
        started = time.perf_counter()
        heads = [b"", b""]  # the first PREVIEW bytes of the request and of the response body
        response_type: list[str | None] = [None]

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                entry.request_bytes += len(body)
                if len(heads[0]) < PREVIEW:
                    heads[0] += body[:PREVIEW - len(heads[0])]
            return message

        async def recording_send(message: Message) -> None:
            if scope.get("emulator.dropped"):  # a fault closed the connection: nothing reached the client
                return
            if message["type"] == "http.response.start":
                entry.status = message["status"]
                entry.response_headers = _select(message.get("headers", []), _RESPONSE_HEADERS)
                response_type[0] = entry.response_headers.get("content-type")
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                entry.response_bytes += len(body)
                if len(heads[1]) < PREVIEW:
                    heads[1] += body[:PREVIEW - len(heads[1])]
                if not message.get("more_body", False):
                    entry.completed = True
            await send(message)

        try:
            await self.app(scope, counting_receive, recording_send)
        finally:
            entry.duration_ms = round((time.perf_counter() - started) * 1000, 3)
            if heads[0] or heads[1]:  # redacted now, so that no credential outlives the request in memory
                secrets = _secrets(scope.get("headers", []))
                entry.request_body = _preview(heads[0], entry.request_headers.get("content-type"), secrets)
                entry.response_body = _preview(heads[1], response_type[0], secrets)
