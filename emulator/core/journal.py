"""The request journal: every request and response, secrets redacted, queryable by tests.

``JournalMiddleware`` is pure ASGI and outermost (``BaseHTTPMiddleware`` would buffer uploads and break
streaming), so 401s, 404s, 429s and even unhandled errors are recorded. It counts the bytes that pass and keeps
the first ``PREVIEW`` bytes of each body, as text when the content type is text-like, with secrets redacted when
the request ends (see ``_preview``). The pipeline annotates the entry it finds in the scope with the provider,
operation and key id (a fingerprint — the key itself is never stored).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.core.clock import Clock, iso_millis
from emulator.core.redaction import redact_query, redact_text
from emulator.core.uvicorn_internals import connection_transport

ENTRY = "emulator.entry"  # scope key under which the pipeline finds the entry being written
REQUEST_HEADERS = ("content-type", "content-length", "transfer-encoding", "user-agent", "idempotency-key", "expect")
RESPONSE_HEADERS = (
    "content-type",
    "content-length",
    "etag",
    "retry-after",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "allow",
    "location",
)
# raw name → the name kept (one string for every entry, not one decoded per header)
_REQUEST_HEADERS = {h.encode(): h for h in REQUEST_HEADERS}
_RESPONSE_HEADERS = {h.encode(): h for h in RESPONSE_HEADERS}


# What one entry may hold, so that a hostile request cannot fill the journal: a header value's first 512 characters,
# the path's and the query's first 1,024, each cut one marked with "…" (bodies are never stored, only counted).
HEADER_KEPT = 512
URL_KEPT = 1024
CAPACITY = 10_000  # entries kept at most; the oldest go first
MAX_BYTES = 32 * 1024 * 1024  # and at most this many bytes (estimated, see Entry.weight); the oldest go first


def _select(raw: Iterable[tuple[bytes, bytes]], wanted: dict[bytes, str]) -> dict[str, str]:
    """The wanted headers only (never Authorization or x-api-key), decoded. Raw ASGI names are lowercase: servers
    lowercase a request's (the ASGI spec; uvicorn and httpx's ASGI transport do), Starlette a response's."""
    # latin-1 decodes a byte to a character, so the byte length says whether a value needs cutting (the call is
    # left out for the short ones: most values, on every request)
    return {
        wanted[k]: v.decode("latin-1") if len(v) <= HEADER_KEPT else _clip(v.decode("latin-1"), HEADER_KEPT)
        for k, v in raw
        if k in wanted
    }


def _clip(text: str, kept: int) -> str:
    return text if len(text) <= kept else text[:kept] + "…"


# An entry's weight: a fixed part for the object and its containers, plus what each string it holds takes
# (``sys.getsizeof``: a cut value ends with "…", which makes CPython store the whole string in two bytes a
# character). Checked with tracemalloc: an entry with every field at its maximum really holds ~22 KB and is weighed
# the same; a typical one holds ~1.2 KB and is weighed ~1.5 KB (the fixed part errs on the safe side).
_ENTRY_WEIGHT = 400
# every string weighed, ~20 a request, through str.__sizeof__: the same figure as sys.getsizeof (which adds a
# garbage-collector header only to objects the collector tracks, and strings are not), at a quarter of the cost
# (sys.getsizeof looks the method up on every call: the weighing was 5 % of a JSON request's instructions)
_size = str.__sizeof__

PREVIEW = 1024  # bytes of each body kept (10,000 entries hold at most ~20 MiB of previews, within MAX_BYTES)
TEXT_TYPES = ("application/json", "application/xml", "application/x-www-form-urlencoded", "application/problem+json")
SECRET_HEADERS = (b"authorization", b"x-api-key", b"api-key", b"apikey", b"x-auth-token")
SECRET_MEMBERS = ("signature", "token", "access_token", "api_key", "api-key", "apikey", "x-api-key", "secret")
# a secret as a JSON string member; the pattern runs only when the text holds one of the names (a plain substring
# test), which most bodies do not: the regular expression costs tens of microseconds on a 1 KiB body, the test
# well under one. Secrets as query parameters (a presigned URL inside a body) go through ``redaction.redact_text``.
_MEMBER = re.compile(r'"([\w.-]+)"(\s*:\s*)"(?:[^"\\]|\\.)*("?)')  # a preview may cut the value short
_MEMBER_MARKS = re.compile("|".join(re.escape(f'"{name}"') for name in SECRET_MEMBERS))  # in the lowercased text


def _redact_member(m: re.Match[str]) -> str:
    return f'"{m.group(1)}"{m.group(2)}"REDACTED{m.group(3)}' if m.group(1).lower() in SECRET_MEMBERS else m.group(0)


def _redact_body(text: str) -> str:
    text = redact_text(text)
    lowered = text.lower()
    if _MEMBER_MARKS.search(lowered):
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
    weight: int = field(default=0, repr=False, compare=False)  # bytes counted against the journal's budget
    # body previews still to pass the pattern-based redaction (done when the entry is first read: see ``_preview``)
    unread: bool = field(default=False, repr=False, compare=False)

    def keep_previews(self, previews: tuple[str | None, str | None]) -> None:
        """Hold the body previews (request, response), to be redacted by pattern when the entry is first read."""
        self.request_body, self.response_body = previews
        self.unread = True

    def redacted(self) -> Entry:
        """This entry with its body previews fully redacted (the journal hands out no entry that is not)."""
        if self.unread:
            self.request_body = _redact_body(self.request_body) if self.request_body else self.request_body
            self.response_body = _redact_body(self.response_body) if self.response_body else self.response_body
            self.unread = False
        return self

    # Each string is weighed once: what an entry holds when it is opened, then what its response added
    # (``Journal.settle``); ``weight`` is the sum of both.
    def weigh_request(self) -> int:
        return (
            _ENTRY_WEIGHT
            + _size(self.path)
            + _size(self.query)
            + sum(map(_size, self.request_headers.keys()))
            + sum(map(_size, self.request_headers.values()))
        )

    def weigh_response(self) -> int:
        return (
            sum(map(_size, self.notes))
            + sum(map(_size, self.response_headers.keys()))
            + sum(map(_size, self.response_headers.values()))
            + _size(self.request_body or "")
            + _size(self.response_body or "")
        )

    @property
    def at(self) -> str:
        """The virtual clock as ISO with milliseconds (formatted when read, not on every request)."""
        return iso_millis(self.epoch)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self.redacted())
        del data["weight"], data["unread"]
        return {"id": data.pop("id"), "at": self.at, **data}


@functools.lru_cache(maxsize=64)  # two calls a request, on a handful of distinct values (each cut to HEADER_KEPT)
def _text_like(content_type: str | None) -> bool:
    kind = (content_type or "").partition(";")[0].strip().lower()
    return kind.startswith("text/") or kind in TEXT_TYPES or kind.endswith("+json") or kind.endswith("+xml")


def _preview(head: bytes, content_type: str | None, secrets: list[str]) -> str | None:
    """A body's first bytes as text, or None when the body is not text-like (files, images, multipart).

    Redacted like the query string: secret query parameters (presigned URLs' signatures) and JSON members named
    like a secret become ``REDACTED``, and so does any credential the request carried in its headers, wherever a
    body repeats it. The credentials from the headers are replaced here, before the request ends (a plain string
    replacement); the pattern-based pass waits until the entry is first read (``Entry.redacted``), since it costs
    more than a tenth of a JSON request and most entries are never read. Until then the preview stays in this
    process's memory only: every way out of the journal (``query``, ``page``, ``to_dict``) redacts first.
    """
    if not head or not _text_like(content_type):
        return None
    text = head.decode("utf-8", "replace")
    for secret in secrets:
        text = text.replace(secret, "REDACTED")
        if len(head) == PREVIEW:  # cut short: the preview may end with the start of the credential
            cut = next((n for n in range(len(secret) - 1, 3, -1) if text.endswith(secret[:n])), 0)
            text = text[: len(text) - cut] + "REDACTED" if cut else text
    return text


def _secrets(raw: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """The credentials a request carries in its headers (a bearer token, an API key), to be kept out of previews."""
    found = []
    for name, value in raw:
        if name in SECRET_HEADERS:  # raw ASGI names are lowercase (see _select)
            token = value.decode("latin-1").strip().rpartition(" ")[2]
            if len(token) >= 8:  # a short value ("x") would blank unrelated text
                found.append(token)
    return found


class Journal:
    """The entries, oldest first, bounded by count and by (estimated) bytes: past either bound the oldest go.

    An entry is weighed when it is opened, and what its response added (response headers, notes, body previews) when
    it is settled, once its response is done: each string is weighed once. ``page`` reads it in pages that stay put
    while entries arrive or go: a page is the entries after (or before) an id, and ids only grow.
    """

    # an entry another process reads only once it is written (``shared.SharedJournal``) is settled before the
    # response's last bytes are sent, and they wait until it is ``written``: a client that has its answer finds the
    # entry on every process
    settle_before_last_send = False

    def __init__(self, clock: Clock, capacity: int = CAPACITY, max_bytes: int = MAX_BYTES) -> None:
        if capacity < 1 or max_bytes < 1:
            raise ValueError(
                f"the journal needs room for at least one entry (capacity {capacity}, max bytes {max_bytes})"
            )
        self._clock = clock
        self.capacity, self.max_bytes = capacity, max_bytes
        self._entries: deque[Entry] = deque()
        self._bytes = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    @property
    def bytes(self) -> int:
        """The weight of the entries held."""
        return self._bytes

    def open(self, scope: Scope) -> Entry:
        now = self._clock.now()
        client = scope.get("client")
        raw_query = scope.get("query_string", b"")
        entry = Entry(
            id=next(self._ids),
            epoch=now,
            method=scope.get("method", ""),
            path=_clip(scope.get("path", ""), URL_KEPT),
            query=_clip(redact_query(raw_query.decode("latin-1")), URL_KEPT) if raw_query else "",
            client=client[0] if client else None,
            request_headers=_select(scope.get("headers", []), _REQUEST_HEADERS),
            wall=time.time(),
        )
        entry.weight = entry.weigh_request()
        with self._lock:
            self._entries.append(entry)
            self._bytes += entry.weight
            self._trim()
        return entry

    async def written(self, entry: Entry) -> None:
        """Return once a settled ``entry`` is where every process reads it: at once here (only this process reads)."""

    def settle(self, entry: Entry, previews: tuple[str | None, str | None] | None = None) -> None:
        """Keep ``entry``'s body ``previews`` (request, response; redacted by pattern when the entry is first read),
        add to its weight what its response added, once it is done, and trim the journal to its bounds."""
        if entry.notes:
            entry.notes[:] = [_clip(note, URL_KEPT) for note in entry.notes]
        with self._lock:  # a reader in another thread sees both previews and the flag, or none of them
            if previews is not None:
                entry.keep_previews(previews)
            added = entry.weigh_response()
            if entry.weight:  # still held
                self._bytes += added
                entry.weight += added
                self._trim()

    def _trim(self) -> None:
        while self._entries and (len(self._entries) > self.capacity or self._bytes > self.max_bytes):
            gone = self._entries.popleft()
            self._bytes -= gone.weight
            gone.weight = 0  # no longer held: settle() leaves it alone

    def _matching(
        self,
        provider: str | None,
        operation: str | None,
        status: int | None,
        since: float | None,
        key_id: str | None,
        method: str | None,
    ) -> Callable[[Entry], bool]:
        method = method.upper() if method is not None else None
        return lambda e: (
            (provider is None or e.provider == provider)
            and (operation is None or e.operation == operation)
            and (status is None or e.status == status)
            and (since is None or e.epoch >= since)
            and (key_id is None or e.key_id == key_id)
            and (method is None or e.method == method)
        )

    def query(
        self,
        *,
        provider: str | None = None,
        operation: str | None = None,
        status: int | None = None,
        since: float | None = None,
        key_id: str | None = None,
        method: str | None = None,
        limit: int | None = None,
    ) -> list[Entry]:
        """Every matching entry, oldest first (the last ``limit`` of them if given)."""
        with self._lock:
            entries = list(self._entries)
        out = list(filter(self._matching(provider, operation, status, since, key_id, method), entries))
        with self._lock:
            return [entry.redacted() for entry in (out[-limit:] if limit else out)]

    def page(
        self,
        *,
        position: int | None = None,
        newest_first: bool = False,
        limit: int = 100,
        provider: str | None = None,
        operation: str | None = None,
        status: int | None = None,
        since: float | None = None,
        key_id: str | None = None,
        method: str | None = None,
    ) -> tuple[list[Entry], bool]:
        """Up to ``limit`` matching entries, oldest first from the id after ``position`` (or the oldest), or newest
        first from the id before ``position`` (or the newest); and whether more matched."""
        with self._lock:
            entries = list(self._entries)
        ids = [e.id for e in entries]
        candidates: Iterable[Entry]
        if newest_first:
            candidates = reversed(entries if position is None else entries[: bisect.bisect_left(ids, position)])
        else:
            candidates = entries[bisect.bisect_right(ids, position or 0) :]
        found = list(
            itertools.islice(
                filter(self._matching(provider, operation, status, since, key_id, method), candidates), limit + 1
            )
        )
        with self._lock:
            return [entry.redacted() for entry in found[:limit]], len(found) > limit

    def clear(self, provider: str | None = None) -> None:
        with self._lock:
            kept: deque[Entry] = deque()
            for entry in self._entries:
                if provider is None or entry.provider == provider:
                    entry.weight = 0  # no longer held: settle() leaves it alone
                else:
                    kept.append(entry)
            self._entries, self._bytes = kept, sum(e.weight for e in kept)


class JournalMiddleware:
    """Outermost ASGI layer: opens an entry, counts bytes both ways, closes it with status and timing."""

    def __init__(
        self, app: ASGIApp, journal: Journal, transport_key: str = "emulator.transport", skip_prefix: str = "/_emulator"
    ) -> None:
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
        request_head = response_head = b""  # the first PREVIEW bytes of each body
        settled = False

        async def counting_receive() -> Message:
            nonlocal request_head
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                entry.request_bytes += len(body)
                if len(request_head) < PREVIEW:
                    request_head += body[: PREVIEW - len(request_head)]
            return message

        async def recording_send(message: Message) -> None:
            nonlocal response_head
            if scope.get("emulator.dropped"):  # a fault closed the connection: nothing reached the client
                return
            if message["type"] == "http.response.start":
                entry.status = message["status"]
                entry.response_headers = _select(message.get("headers", []), _RESPONSE_HEADERS)
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                entry.response_bytes += len(body)
                if len(response_head) < PREVIEW:
                    response_head += body[: PREVIEW - len(response_head)]
                if not message.get("more_body", False):
                    entry.completed = True
                    if self.journal.settle_before_last_send:
                        finish()
                        await self.journal.written(entry)
            await send(message)

        def finish() -> None:
            nonlocal settled
            settled = True
            entry.duration_ms = round((time.perf_counter() - started) * 1000, 3)
            previews = None
            if request_head or response_head:  # redacted now, so that no credential outlives the request in memory
                secrets = _secrets(scope.get("headers", []))
                previews = (
                    _preview(request_head, entry.request_headers.get("content-type"), secrets),
                    _preview(response_head, entry.response_headers.get("content-type"), secrets),
                )
            self.journal.settle(entry, previews)  # what its response and previews added is weighed

        try:
            await self.app(scope, counting_receive, recording_send)
        finally:
            if not settled:
                finish()
