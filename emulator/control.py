"""The control plane under ``/_emulator``: clock, reset, keys, faults, journal, state.

It is served like a provider (its own spec in ``specs/_emulator/``, routes from operationIds, requests validated,
responses checked in strict mode), with a plain ``{error, message, details}`` envelope and no API keys. Access is
guarded by ``LoopbackGuard``: loopback clients only, unless an admin token is configured, which other hosts must
then present as ``Authorization: Bearer <token>``. ``GET /_emulator/health`` is open to all.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import get_route_path
from starlette.types import ASGIApp, Receive, Scope, Send

from emulator.core.auth import KeyPolicy, same_secret
from emulator.core.clock import iso_millis
from emulator.core.errors import EmulatorError, FieldError, Invalid, NotFound, Unavailable
from emulator.core.provider import Call, Handler, Provider, Reply
from emulator.core.responses import JSONResponse
from emulator.core.storage import Blob
from emulator.providers import PROVIDERS
from emulator.runtime import Runtime

if TYPE_CHECKING:
    from collections.abc import Mapping

NAME = "_emulator"


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost"
    # a dual-stack listener sees an IPv4 loopback client as ::ffff:127.0.0.1
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


class LoopbackGuard:
    """Pure ASGI: refuse control-plane requests from other hosts unless they carry the admin token.

    Without an admin token other hosts get 403 (nothing they could send would let them in); with one, a missing or
    wrong token gets 401 and ``WWW-Authenticate: Bearer``. The token is compared as bytes, in constant time, so a
    header of any bytes (``é``, a raw ``0xE9``) is just a wrong token.
    """

    def __init__(self, app: ASGIApp, token: str | None, open_paths: tuple[str, ...] = ("/health",)) -> None:
        self.app, self.token, self.open_paths = app, token, open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self._refusal(scope) if scope["type"] == "http" else None
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> Response | None:
        # the path inside the mount, compared whole: "/faults/health" is not the open "/health"
        if get_route_path(scope) in self.open_paths:
            return None
        client = scope.get("client")
        if client and is_loopback(client[0]):
            return None
        if not self.token:
            return JSONResponse(
                {
                    "error": "forbidden",
                    "message": "The control plane answers loopback clients only; "
                    "start the emulator with --admin-token to allow other hosts.",
                },
                status_code=403,
            )
        if self._token_given(scope):
            return None
        return JSONResponse(
            {
                "error": "unauthorized",
                "message": "The control plane answers loopback clients only; "
                "other hosts must send Authorization: Bearer <admin token>.",
            },
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="upload-emulator control plane"'},
        )

    def _token_given(self, scope: Scope) -> bool:
        assert self.token is not None
        value = next((v for k, v in scope.get("headers", []) if k.lower() == b"authorization"), b"")
        scheme, _, given = value.partition(b" ")
        return scheme.lower() == b"bearer" and same_secret(given.strip(), self.token)


# --- envelope ------------------------------------------------------------------------------------------------------


def ok(call: Call, reply: Reply) -> Response:
    return JSONResponse(reply.data, status_code=reply.status, headers=reply.headers)


def error(call: Call | None, request: Request, exc: EmulatorError) -> Response:
    body: dict[str, Any] = {"error": exc.code or exc.kind, "message": exc.message}
    details = dict(exc.details)
    if exc.errors:
        details["validation_errors"] = [{"field": e.field, "message": e.message} for e in exc.errors]
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


# --- helpers -------------------------------------------------------------------------------------------------------


def _providers(call: Call) -> Mapping[str, Provider]:
    return PROVIDERS


def _provider(call: Call, name: str, field: str = "provider") -> Provider:
    providers = _providers(call)
    if name not in providers:
        raise NotFound(
            f"{field}: unknown provider {name!r}; known: {', '.join(sorted(providers))}.",
            errors=[FieldError(field, f"must be one of {', '.join(sorted(providers))}")],
        )
    return providers[name]


# The virtual clock stays where every id and timestamp can hold it: ObjectIds and ULIDs encode the time as an
# unsigned number (ObjectIds in 32 bits), and ISO timestamps need a four-digit year.
EARLIEST, LATEST = 0.0, float(2**32 - 1)  # 1970-01-01T00:00:00Z … 2106-02-07T06:28:15Z


def _in_range(ts: float, field: str) -> float:
    if not EARLIEST <= ts <= LATEST:
        raise Invalid(
            f"{field}: the emulator's clock runs from {iso_millis(EARLIEST)} to {iso_millis(LATEST)} "
            f"(ids encode the time in 32 bits); {ts:.0f} is outside.",
            errors=[FieldError(field, "must be between 1970-01-01T00:00:00Z and 2106-02-07T06:28:15Z")],
        )
    return ts


def _time(value: str, field: str = "time") -> float:
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError):
        raise Invalid(
            f"{field}: must be an ISO 8601 date-time with a zone, e.g. 2026-01-01T00:00:00Z",
            errors=[FieldError(field, "must be an ISO 8601 date-time")],
        ) from None
    return _in_range(when, field)


def _clock_view(runtime: Runtime, moved: bool = False) -> dict[str, Any]:
    now = runtime.clock.now()
    if moved:  # rate-limit windows that the move left behind are freed now, not a few per request
        runtime.limiter.sweep(now)
    return {"now": iso_millis(now), "epoch": now, "frozen": runtime.clock.frozen}


def _jsonable(value: Any, unhashed: list[tuple[Blob, dict[str, Any]]]) -> Any:
    """``value`` as JSON; the stored bytes whose MD5 is computed at their first read (a form's file) are listed in
    ``unhashed`` with the object that shows them, for the caller to fill in."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        shown = {
            f.name: _jsonable(getattr(value, f.name), unhashed)
            for f in dataclasses.fields(value)
            if not f.name.startswith("_")
        }
        if isinstance(value, Blob) and not value.md5:
            unhashed.append((value, shown))
        return shown
    if isinstance(value, dict):
        return {str(k): _jsonable(v, unhashed) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v, unhashed) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _mint(policy: KeyPolicy, runtime: Runtime) -> str | None:
    """A fresh key in the provider's own format: its example key with the part after the last separator renewed."""
    example = policy.example
    cut = max(example.rfind("_"), example.rfind("-")) + 1
    tail = example[cut:]
    candidate = example[:cut] + runtime.ids.hex(len(tail))
    return candidate if tail and policy.pattern.fullmatch(candidate) else None


# --- handlers ------------------------------------------------------------------------------------------------------


async def health(call: Call) -> Reply:
    from emulator import __version__

    settings = call.runtime.settings
    problem = call.runtime.problem()
    if problem is not None:
        raise Unavailable(f"The emulator cannot serve now: {problem}.", headers={"Retry-After": "1"})
    providers = sorted(p for p in _providers(call) if settings.provider in (None, p))
    return Reply({"status": "ok", "version": __version__, "providers": providers})


async def get_clock(call: Call) -> Reply:
    return Reply(_clock_view(call.runtime))


async def advance_clock(call: Call) -> Reply:
    _in_range(call.runtime.clock.now() + call.body["seconds"], "seconds")
    call.runtime.clock.advance(call.body["seconds"])
    call.runtime.reclaim()  # uploads abandoned as of the new time are expired at once
    return Reply(_clock_view(call.runtime, moved=True))


async def freeze_clock(call: Call) -> Reply:
    at = call.body.get("time") if isinstance(call.body, dict) else None
    call.runtime.clock.freeze(_time(at) if at else None)
    call.runtime.reclaim()  # uploads abandoned as of the new time are expired at once
    return Reply(_clock_view(call.runtime, moved=True))


async def set_clock(call: Call) -> Reply:
    call.runtime.clock.set(_time(call.body["time"]))
    call.runtime.reclaim()  # uploads abandoned as of the new time are expired at once
    return Reply(_clock_view(call.runtime, moved=True))


async def resume_clock(call: Call) -> Reply:
    call.runtime.clock.resume()
    call.runtime.reclaim()  # uploads abandoned as of the new time are expired at once
    return Reply(_clock_view(call.runtime, moved=True))


async def reset(call: Call) -> Reply:
    name = call.body.get("provider") if isinstance(call.body, dict) else None
    if name is not None:
        _provider(call, name)
    call.runtime.reset(name)
    return Reply({"reset": name or "all"})


async def list_keys(call: Call) -> Reply:
    return Reply({"keys": [k.public() for k in call.runtime.keys.created()]})


async def create_key(call: Call) -> Reply:
    provider = _provider(call, call.body["provider"])
    secret = call.body.get("key") or _mint(provider.keys, call.runtime)
    if secret is None or not provider.keys.pattern.fullmatch(secret):
        raise Invalid(
            f"key: must look like {provider.keys.describe}",
            errors=[FieldError("key", f"must match {provider.keys.pattern.pattern}")],
        )
    limits = call.body.get("rate_limits", {})
    known = {limit.name for op_id, *_ in provider.specs.operations() for limit in provider.limits(op_id)}
    unknown = sorted(set(limits) - known)
    if unknown:
        raise Invalid(
            f"rate_limits: unknown limit {unknown[0]!r}; {provider.name} has {', '.join(sorted(known))}",
            errors=[FieldError(f"rate_limits.{unknown[0]}", f"must be one of {', '.join(sorted(known))}")],
        )
    scopes = call.body.get("scopes")
    created = call.runtime.keys.create(
        provider.name, secret, None if scopes is None else frozenset(scopes), limits, call.now
    )
    return Reply({**created.public(), "key": secret}, status=201)


async def revoke_key(call: Call) -> Reply:
    provider = _provider(call, call.body["provider"])
    return Reply({"revoked": call.runtime.keys.revoke(provider.name, call.body["key"])})


async def revoke_key_by_id(call: Call) -> Reply:
    return Reply({"revoked": call.runtime.keys.revoke_id(call.request.path_params["key_id"])})


async def list_faults(call: Call) -> Reply:
    return Reply({"faults": [rule.to_dict() for rule in call.runtime.faults.list()]})


async def add_fault(call: Call) -> Reply:
    spec = call.body
    key_id = None
    if "provider" in spec:
        provider = _provider(call, spec["provider"])
        if "operation" in spec and spec["operation"] not in {op for op, *_ in provider.specs.operations()}:
            ops = sorted(op for op, *_ in provider.specs.operations())
            raise Invalid(
                f"operation: {provider.name} has no operation {spec['operation']!r}",
                errors=[FieldError("operation", f"must be one of {', '.join(ops)}")],
            )
        if "key" in spec:
            from emulator.core.auth import fingerprint

            key_id = fingerprint(provider.name, spec["key"])
    elif "key" in spec:
        raise Invalid("key: give provider too, keys are per provider", errors=[FieldError("provider", "is required")])
    return Reply(call.runtime.faults.add(spec, key_id).to_dict(), status=201)


async def clear_faults(call: Call) -> Reply:
    call.runtime.faults.clear()
    return Reply({"cleared": True})


async def remove_fault(call: Call) -> Reply:
    fault_id = call.request.path_params["fault_id"]
    if not call.runtime.faults.remove(fault_id):
        raise NotFound(f"No fault rule {fault_id!r}.")
    return Reply({"removed": fault_id})


PAGE_SIZE = 100  # journal entries per page unless ``limit`` says otherwise (at most 1,000)


def _cursor(order: str, last_id: int) -> str:
    """An opaque journal cursor: the page's direction and the id it ended at (ids only grow, so a cursor points
    at the same place however many entries arrive or are dropped meanwhile)."""
    return base64.urlsafe_b64encode(f"{order}:{last_id}".encode()).decode().rstrip("=")


def _read_cursor(cursor: str) -> tuple[str, int]:
    try:
        order, _, last = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition(":")
        if order in ("asc", "desc") and last.isdigit() and len(last) < 20:
            return order, int(last)
    except ValueError:  # not base64, or not UTF-8
        pass
    raise Invalid(
        "cursor: not a cursor this journal issued; use the next_cursor of a previous page",
        errors=[FieldError("cursor", "must be a next_cursor from GET /_emulator/journal")],
    )


async def get_journal(call: Call) -> Reply:
    q = call.request.query_params
    order = q.get("order", "asc")
    position: int | None = None
    if "cursor" in q:
        order, position = _read_cursor(q["cursor"])
    limit = int(q["limit"]) if "limit" in q else PAGE_SIZE
    filters: dict[str, Any] = {
        "provider": q.get("provider"),
        "operation": q.get("operation"),
        "status": int(q["status"]) if "status" in q else None,
        "since": float(q["since"]) if "since" in q else None,
        "key_id": q.get("key_id"),
        "method": q.get("method"),
    }
    journal = call.runtime.journal
    if order == "desc":
        entries, more = journal.page(position=position, newest_first=True, limit=limit, **filters)
        # newest first: past the oldest there is nothing more to come
        next_cursor = _cursor("desc", entries[-1].id) if more else None
    else:
        entries, more = journal.page(position=position, limit=limit, **filters)
        # oldest first: the cursor also finds entries that arrive later, so a client can follow the journal
        next_cursor = _cursor("asc", entries[-1].id if entries else position or 0)
    return Reply({"entries": [e.to_dict() for e in entries], "next_cursor": next_cursor, "has_more": more})


async def clear_journal(call: Call) -> Reply:
    call.runtime.journal.clear()
    return Reply({"cleared": True})


def _record(value: Any, now: float, unhashed: list[tuple[Blob, dict[str, Any]]]) -> Any:
    """A record as JSON, with the status it has now when its kind computes one (``status(now)``)."""
    data = _jsonable(value, unhashed)
    status = getattr(value, "status", None)
    if callable(status) and isinstance(data, dict):
        data["status"] = status(now)
    return data


async def get_state(call: Call) -> Reply:
    provider = _provider(call, call.request.path_params["provider"])
    store = call.runtime.store
    prefix = f"{provider.name}:"
    unhashed: list[tuple[Blob, dict[str, Any]]] = []
    tables = {
        ns.removeprefix(prefix): [_record(r, call.now, unhashed) for r in store.values(ns)]
        for ns in store.namespaces(prefix)
    }
    for blob, shown in unhashed:  # the state view is such a first read; null: changed on disk since they arrived
        hashed = await call.runtime.blobs.hashed(blob)
        shown["md5"] = hashed.md5 if hashed is not None else None
    return Reply({"provider": provider.name, "tables": tables})


async def get_stored_bytes(call: Call) -> Response:
    """The bytes a provider stored under a blob name (the ``name`` of a record's blob in ``getState``)."""
    provider = _provider(call, call.request.path_params["provider"])
    name = call.request.query_params["name"]
    blob = call.runtime.blobs.get(name) if name.startswith(f"{provider.name}/") else None
    if blob is None or not blob.path.is_file():
        raise NotFound(
            f"name: {provider.name} has no stored bytes named {name!r}.",
            errors=[FieldError("name", "must name a blob listed in GET /state/{provider}")],
        )
    served = await call.runtime.blobs.served(blob)  # hashed here if it was stored to be hashed at its first read
    if served is None:
        raise NotFound(
            f"name: the stored bytes named {name!r} changed on disk since they were stored (outside the emulator): "
            "they are not served; `upload-emulator state check` names every such file.",
            errors=[FieldError("name", "its bytes no longer match their checksum")],
        )
    filename = re.sub(r"[^A-Za-z0-9._-]", "_", name.rsplit("/", 1)[-1]) or "blob"
    return FileResponse(
        served.path,
        media_type=served.content_type,
        filename=filename,
        headers={"ETag": served.etag, "X-Content-Type-Options": "nosniff"},
    )


async def list_providers(call: Call) -> Reply:
    """What the forms need: each served provider's operations, rate limits, scopes and where its key goes."""
    settings = call.runtime.settings
    out = []
    for name, provider in _providers(call).items():
        if settings.provider not in (None, name):
            continue
        operations = sorted(provider.specs.operations(), key=lambda op: op[0])
        limits = {
            limit.name: {"limit": limit.limit, "window": limit.window}
            for op_id, *_ in operations
            for limit in call.runtime.limits_for(provider, op_id)
        }
        # scopes its operations require, and those its magic keys hold (a read-only key's "read")
        scopes = sorted(
            {scope for handler in provider.handlers.values() for scope in handler.scopes}
            | {scope for magic in provider.keys.magic.values() for scope in magic.scopes or ()}
        )
        mount = "" if settings.provider else f"/{name}"
        out.append(
            {
                "name": name,
                "title": provider.title,
                "base_path": mount + provider.specs.server_path,
                "key_header": provider.keys.header or "authorization",
                "bearer": provider.keys.header is None,
                "operations": [{"id": op_id, "method": method, "path": path} for op_id, method, path, _ in operations],
                "rate_limits": [{"name": n, **v} for n, v in limits.items()],
                "scopes": scopes,
            }
        )
    return Reply({"providers": out})


def _request_id(runtime: Runtime, now: float) -> str:
    return "ctl_" + runtime.ids.hex(12)


def _no_limits(op_id: str) -> tuple:
    return ()


def _open(func: Any, body: Literal["json", "none"] = "none") -> Handler:
    return Handler(func, body=body, auth=False, rate_limited=False)


CONTROL = Provider(
    name=NAME,
    title="Control plane",
    real_base_url="",
    client_path="",
    keys=KeyPolicy(pattern=re.compile(r"(?!)")),
    handlers={
        "health": _open(health),
        "getClock": _open(get_clock),
        "advanceClock": _open(advance_clock, "json"),
        "freezeClock": _open(freeze_clock, "json"),
        "setClock": _open(set_clock, "json"),
        "resumeClock": _open(resume_clock),
        "reset": _open(reset, "json"),
        "listKeys": _open(list_keys),
        "createKey": _open(create_key, "json"),
        "revokeKey": _open(revoke_key, "json"),
        "revokeKeyById": _open(revoke_key_by_id),
        "listFaults": _open(list_faults),
        "addFault": _open(add_fault, "json"),
        "clearFaults": _open(clear_faults),
        "removeFault": _open(remove_fault),
        "getJournal": _open(get_journal),
        "clearJournal": _open(clear_journal),
        "getState": _open(get_state),
        "getStoredBytes": _open(get_stored_bytes),
        "listProviders": _open(list_providers),
    }
    | {  # what providers add to the control plane (operationId → handler), each in the control plane's OpenAPI
        op_id: _open(handler, "json") for provider in PROVIDERS.values() for op_id, handler in provider.control.items()
    },
    ok=ok,
    error=error,
    limits=_no_limits,
    request_id=_request_id,
)
