"""Fault rules set through the control plane: match requests, then change what happens to them.

A rule matches by provider, operation id, key id and/or a path regex (all given parts must match) and fires
``times`` times (``None``: always). Actions:

    status       answer with this status in the provider's own envelope (``retry_after`` for 429)
    delay        wait ``seconds`` (real time) before handling
    drop         close the connection ``before_headers`` or ``after_headers`` (part of the body sent)
    stall        stop reading the request body after ``bytes`` bytes for ``seconds``, then go on
    drop_upload  close the connection after ``bytes`` bytes of request body were read
    wrong_etag   answer normally, but with an ETag that does not match the stored bytes
    slow_down    storage's 503 SlowDown ("Please reduce your request rate.")
    advance_clock  answer normally, then move the virtual clock ``advance`` seconds (a presigned URL just issued
                 expires before the client's next step)
    pending      answer normally, but report work still in progress (a processing video stays "processing" in this
                 answer); providers with a processing state honour it, through ``Call.pending``

``after`` lets that many matching requests through untouched before the rule fires (the third part PUT drops).

Dropping needs the connection's transport (a live server); in-process (httpx's ASGITransport) a drop surfaces as
``ConnectionDropped`` raised to the client, which is what a dropped connection looks like to test code.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from emulator.core.errors import (
    Conflict,
    EmulatorError,
    FieldError,
    Forbidden,
    Invalid,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    StorageError,
    Unauthorized,
    UnsupportedMediaType,
    Unprocessable,
)

Action = Literal[
    "status", "delay", "drop", "stall", "drop_upload", "wrong_etag", "slow_down", "advance_clock", "pending"
]
ACTIONS: tuple[str, ...] = (
    "status",
    "delay",
    "drop",
    "stall",
    "drop_upload",
    "wrong_etag",
    "slow_down",
    "advance_clock",
    "pending",
)
TRANSPORT = "emulator.transport"
DROPPED = "emulator.dropped"  # set in the scope once a fault closed the connection: nothing more is sent


class ConnectionDropped(ConnectionError):
    """A fault closed the connection (raised in-process, where there is no socket to close)."""


@dataclass
class FaultRule:
    id: str
    action: str
    provider: str | None = None
    operation: str | None = None
    key_id: str | None = None
    path: str | None = None  # regex searched in the request path
    times: int | None = None  # None: every matching request
    status: int | None = None
    message: str | None = None
    retry_after: int | None = None
    seconds: float = 0.0
    bytes: int = 0
    when: str = "before_headers"
    after: int = 0  # matching requests let through before the rule fires
    advance: float = 0.0  # advance_clock: virtual seconds
    hits: int = 0
    seen: int = 0  # matching requests so far, fired on or let through
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)

    def matches(self, provider: str, operation: str, key_id: str | None, path: str) -> bool:
        return (
            (self.provider is None or self.provider == provider)
            and (self.operation is None or self.operation == operation)
            and (self.key_id is None or self.key_id == key_id)
            and (self._pattern is None or self._pattern.search(path) is not None)
            and (self.times is None or self.hits < self.times)
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("_pattern")
        data.pop("seen")
        data["remaining"] = None if self.times is None else self.times - self.hits
        return data


def rule_from(spec: dict[str, Any], rule_id: str, key_id: str | None) -> FaultRule:
    """Build a rule from the control plane's JSON (already schema-validated), checking what a schema cannot."""
    rule = FaultRule(
        id=rule_id,
        action=spec["action"],
        provider=spec.get("provider"),
        operation=spec.get("operation"),
        key_id=key_id,
        path=spec.get("path"),
        times=spec.get("times"),
        status=spec.get("status"),
        message=spec.get("message"),
        retry_after=spec.get("retry_after"),
        seconds=float(spec.get("seconds", 0)),
        bytes=int(spec.get("bytes", 0)),
        when=spec.get("when", "before_headers"),
        after=int(spec.get("after", 0)),
        advance=float(spec.get("advance", 0)),
    )
    if rule.action == "status" and rule.status is None:
        raise Invalid("status: is required when action is 'status'", errors=[FieldError("status", "is required")])
    if rule.action == "advance_clock" and rule.advance <= 0:
        raise Invalid(
            "advance: is required (seconds, more than 0) when action is 'advance_clock'",
            errors=[FieldError("advance", "is required")],
        )
    if rule.path is not None:
        try:
            rule._pattern = re.compile(rule.path)
        except (re.error, RecursionError, OverflowError) as exc:  # deep nesting exhausts the regex compiler
            reason = exc if isinstance(exc, re.error) else "nested too deeply"
            raise Invalid(
                f"path: is not a valid regular expression ({reason})",
                errors=[FieldError("path", "must be a valid regular expression")],
            ) from None
    return rule


class FaultBook:
    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, spec: dict[str, Any], key_id: str | None) -> FaultRule:
        rule = rule_from(spec, f"fault_{next(self._ids)}", key_id)
        with self._lock:
            self._rules.append(rule)
        return rule

    def list(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def clear(self, provider: str | None = None) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if provider is not None and r.provider != provider]

    @property
    def armed(self) -> bool:
        """Whether any rule is set (read without the lock: a request racing ``add`` may miss the new rule, as it
        would have by arriving a moment earlier)."""
        return bool(self._rules)

    def take(self, provider: str, operation: str, key_id: str | None, path: str) -> FaultRule | None:
        """The first rule that matches, its use counted (atomically: ``times`` is exact under concurrency)."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(provider, operation, key_id, path):
                    rule.seen += 1
                    if rule.seen <= rule.after:  # let through, and let a later rule have it
                        continue
                    rule.hits += 1
                    return rule
        return None


_BY_STATUS: dict[int, type[EmulatorError]] = {
    400: Invalid,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: Unprocessable,
}


def error_for(rule: FaultRule) -> EmulatorError:
    """The provider-neutral error a ``status`` or ``slow_down`` rule stands for; the provider renders it."""
    if rule.action == "slow_down":
        return StorageError(
            "Please reduce your request rate.", code="SlowDown", http_status=503, headers={"Retry-After": "1"}
        )
    status = rule.status or 500
    message = rule.message or f"Injected fault {rule.id}: status {status}."
    if status == 429:
        retry = rule.retry_after if rule.retry_after is not None else 60
        return RateLimited(
            rule.message or f"Rate limit exceeded. Retry after {retry} seconds.",
            retry_after=retry,
            headers={"Retry-After": str(retry)},
        )
    cls = _BY_STATUS.get(status)
    if cls is not None:
        return cls(message)
    # a 5xx with retry_after carries Retry-After too, as a 503 Service Unavailable may (RFC 9110, 10.2.3)
    retry_header = {"Retry-After": str(rule.retry_after)} if rule.retry_after is not None and status >= 500 else {}
    error = EmulatorError(message, code="internal_error" if status == 500 else None, headers=retry_header)
    error.status = status
    error.kind = "server_error" if status >= 500 else "bad_request"
    return error


def drop(scope: Scope) -> None:
    """Close the client's connection now (live server), or raise ``ConnectionDropped`` (in-process)."""
    transport = scope.get(TRANSPORT)
    if transport is None:
        raise ConnectionDropped("connection dropped by fault injection")
    scope[DROPPED] = True
    transport.abort()


def wrap_receive(scope: Scope, receive: Receive, rule: FaultRule) -> Receive:
    """A receive that stalls, or drops the connection, once ``rule.bytes`` body bytes have been read."""
    seen = 0
    fired = False

    async def faulty_receive() -> Message:
        nonlocal seen, fired
        message = await receive()
        if message["type"] == "http.request" and not fired:
            seen += len(message.get("body", b""))
            if seen >= rule.bytes:
                fired = True
                if rule.action == "stall":
                    await asyncio.sleep(rule.seconds)
                else:
                    drop(scope)
                    return {"type": "http.disconnect"}
        return message

    return faulty_receive


def wrong_etag(response: Response) -> None:
    etag = response.headers.get("etag")
    if etag is not None:
        bogus = hashlib.md5(b"wrong:" + etag.encode(), usedforsecurity=False).hexdigest()
        suffix = etag.strip('"').partition("-")[2]
        response.headers["etag"] = f'"{bogus}-{suffix}"' if suffix else f'"{bogus}"'


class DroppingResponse(Response):
    """Sends the headers and part of the body of ``inner``, then drops the connection."""

    def __init__(self, inner: Response) -> None:
        self.inner = inner
        self.status_code = inner.status_code
        self.background = None
        self.raw_headers = inner.raw_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = getattr(self.inner, "body", b"") or b""
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        drop(scope)


def fault_request(request: Request, rule: FaultRule) -> Request:
    """The request a handler sees under an upload fault (stall/drop after N bytes)."""
    return Request(request.scope, wrap_receive(request.scope, request.receive, rule))
