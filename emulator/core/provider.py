"""What a provider declares, what core gives each request, and the pipeline every operation runs through.

A provider module builds one ``Provider``: its name and URLs, its key policy, its envelope (``ok``/``error``, the
only place its JSON shape is written), its rate limits and one ``Handler`` per operationId of its effective spec.
``build_app`` turns that into an ASGI sub-app (``ProviderApp``) whose routes come from the spec, so routes and spec
operations match one to one (start-up fails otherwise). Every request then reads top to bottom in ``_endpoint``:

    route → auth (magic keys, scopes) → faults → rate limit → validate (params; JSON — after the handler's
      ``normalize`` maps an official client's undocumented form — or streamed multipart body) → handler →
      envelope (+ rate-limit headers) → journal notes → fault effects, or the strict response check
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import anyio
from starlette.datastructures import State
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route, Router, get_route_path
from starlette.types import Receive, Scope, Send

from emulator.core import faults
from emulator.core.auth import ApiKey, KeyPolicy
from emulator.core.chaos import ChaosProfile
from emulator.core.errors import (
    EmulatorError,
    FieldError,
    Forbidden,
    Invalid,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
)
from emulator.core.faults import FaultRule
from emulator.core.forms import FormContract
from emulator.core.journal import ENTRY, Entry
from emulator.core.multipart import Form, parse_form
from emulator.core.ratelimit import Limit, Quota, quota_headers, quota_raw_headers
from emulator.core.reclaim import Abandonable
from emulator.core.responses import JSONResponse
from emulator.core.specs import ProviderSpecs, load
from emulator.core.storage import BlobWriter
from emulator.core.validation import OperationContract, SpecValidator

if TYPE_CHECKING:
    from emulator.runtime import Runtime


@dataclass
class Reply:
    """A handler's successful result: plain data; the provider's ``ok`` wraps it in the envelope."""

    data: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Call:
    """Everything one request carries through the pipeline."""

    request: Request
    provider: Provider
    runtime: Runtime
    op_id: str
    now: float
    request_id: str
    key: ApiKey | None = None
    quota: Quota | None = None
    body: Any = None  # parsed JSON, or typed multipart fields (file fields hold their file names)
    form: Form | None = None  # multipart operations: the parsed form, files already streamed to the blob store
    notes: list[str] = field(default_factory=list)  # for the journal entry
    pending: bool = False  # a "pending" fault: report work in progress as still in progress in this answer

    @property
    def tenant(self) -> str:
        assert self.key is not None, f"{self.op_id} runs without a key"
        return self.key.tenant

    @property
    def base_url(self) -> str:
        """Where this provider is served, as the client reached it (``http://127.0.0.1:8080/<provider>``)."""
        return self.runtime.provider_base(self.request, self.provider.name)

    def undocumented(self, form: str, basis: str, refusal: EmulatorError) -> None:
        """An official client sent ``form``, which the published docs do not show (docs/official-clients.md).

        It is accepted and the request's journal entry says so (``basis`` names the client and version that sends
        it), also when the request is refused later for another reason; with ``--strict-docs`` the request is
        refused with ``refusal`` instead.
        """
        if self.runtime.settings.strict_docs:
            raise refusal
        self.notes.append(f"undocumented form accepted: {form} (sent by {basis}); --strict-docs refuses it")


HandlerFunc = Callable[[Call], Awaitable["Reply | Response"]]


@dataclass(frozen=True)
class Handler:
    """One operation's handler and how the pipeline prepares its request.

    ``body``: ``json`` (parsed and validated), ``multipart`` (streamed: files to the blob store, each at most
    ``max_file_size``; fields typed and validated against the spec), ``stream`` (the handler reads
    ``request.stream()`` itself) or ``none``.
    """

    func: HandlerFunc
    body: Literal["json", "multipart", "stream", "none"] = "json"
    auth: bool = True
    rate_limited: bool = True
    max_file_size: int = 20 * 1024 * 1024
    scopes: tuple[str, ...] = ()  # scopes a key must hold (keys without explicit scopes hold them all)
    # body="json": maps an undocumented form an official client sends onto the documented one before validation
    # (calling ``Call.undocumented``, which refuses it under --strict-docs)
    normalize: Callable[[Call, Any], Any] | None = None


@dataclass
class Provider:
    name: str  # URL prefix and spec folder
    title: str
    real_base_url: str  # what clients use against the real provider
    client_path: str  # path after the server path that clients put in their base URL (``/v1``)
    keys: KeyPolicy
    handlers: dict[str, Handler]
    ok: Callable[[Call, Reply], Response]
    error: Callable[[Call | None, Request, EmulatorError], Response]
    limits: Callable[[str], Sequence[Limit]]
    request_id: Callable[[Runtime, float], str]
    # the unfinished uploads it keeps, expired after --abandoned-after (core.reclaim)
    abandonable: tuple[Abandonable, ...] = ()
    default_port: int | None = None  # the port of per-provider mode, when the provider's docs name one
    # control-plane operations the provider adds (operationId → handler of a JSON body; documented in the control
    # plane's OpenAPI, open like the rest of it): state only this provider has, such as connected accounts
    control: Mapping[str, Callable[[Call], Awaitable[Reply]]] = field(default_factory=dict)
    chaos: ChaosProfile | None = None  # what ``upload-emulator chaos`` draws and checks for this provider

    @property
    def specs(self) -> ProviderSpecs:
        return load(self.name)


class ContractViolation(AssertionError):
    """Strict mode: the emulator was about to send a response its own spec does not allow."""


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body of a small (JSON) request, refusing early when it is or becomes larger than ``limit``.

    Read from ``request.receive`` (a fault's wrapped one too), not ``request.stream()``: that async generator took
    three steps for a body that came in one message, ~2 % of a JSON request. The body is read once: nothing reads
    a JSON request's body again."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"Request body of {declared} bytes exceeds the {limit}-byte limit.", details={"max_size": limit}
        )
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect: the client went away mid-body
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body exceeds the {limit}-byte limit.", details={"max_size": limit})
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)  # a body that came in one message is returned as it is, not copied


async def _read_form(call: Call, handler: Handler, contract: FormContract) -> Form:
    """Stream a multipart body: file fields the spec declares go to the blob store, anything else is refused."""
    request, blobs = call.request, call.runtime.blobs
    declared = request.headers.get("content-length")
    limit = handler.max_file_size + 1024 * 1024  # room for the other fields and the part headers
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"Request body of {declared} bytes exceeds the {handler.max_file_size}-byte file limit.",
            details={"max_size": handler.max_file_size},
        )

    def open_file(field_name: str, filename: str, content_type: str) -> BlobWriter:
        if field_name not in contract.file_fields:
            raise Invalid(
                f"{field_name}: is not a file field of this operation "
                f"(file fields: {', '.join(sorted(contract.file_fields)) or 'none'}).",
                errors=[FieldError(field_name, "must not be a file")],
            )
        return blobs.writer(
            f"{call.provider.name}/{call.op_id}/{call.runtime.ids.hex(24)}", content_type, handler.max_file_size
        )

    return await parse_form(
        request.headers.get("content-type"),
        request.stream(),
        open_file,
        discard=lambda part: blobs.delete(part.blob.name),
    )


def _endpoint(
    provider: Provider,
    runtime: Runtime,
    op_id: str,
    handler: Handler,
    contract: OperationContract,
    form_contract: FormContract | None,
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        admission = _admission(provider, runtime, op_id, handler, request) if runtime.shared else None
        try:
            taken = None
            if runtime.shared:
                # what other processes changed (the shared clock): one read, before the time is read; it may take
                # the request's limits too (then ``taken`` gives the quota), saving a round trip
                taken = await runtime.refresh_async(admission[1:] if admission is not None else None)
            now = runtime.clock.now()
            runtime.reclaim_due(now)
        except EmulatorError as exc:  # the shared state is unreachable: a retryable 503 in the provider's envelope
            return provider.error(None, request, exc)
        call = Call(request, provider, runtime, op_id, now, provider.request_id(runtime, now))
        entry: Entry | None = request.scope.get(ENTRY)
        if entry is not None:
            entry.provider, entry.operation = provider.name, op_id
            if runtime.shared:  # opened before the shared clock was read: the time as every process sees it
                entry.epoch = now
        fault: FaultRule | None = None
        try:
            if handler.auth:
                # taken: the key was authenticated against the keys as they still stand (Sync.refresh checked)
                call.key = (
                    admission[0]
                    if taken is not None and admission is not None
                    else runtime.keys.authenticate(provider.name, provider.keys, request.headers)
                )
                if entry is not None:
                    entry.key_id = call.key.id
                magic = call.key.magic
                if magic is not None and magic.delay:
                    await anyio.sleep(magic.delay)
                if magic is not None and magic.rate_limited:
                    raise _always_limited(runtime.limits_for(provider, op_id, call.key), now)
                if not call.key.allows(handler.scopes):
                    raise Forbidden(
                        f"This API key lacks the scope(s) {', '.join(handler.scopes)}.",
                        code=None,
                        details={"required": list(handler.scopes)},
                    )
            if runtime.faults.armed:
                fault = runtime.faults.take(provider.name, op_id, call.key.id if call.key else None, request.url.path)
            if fault is not None:
                if entry is not None:
                    entry.fault = fault.id
                call.pending = fault.action == "pending"
                if fault.action == "status" and fault.status == 429 and handler.rate_limited and call.key:
                    raise _fault_limited(fault, runtime.limits_for(provider, op_id, call.key), now)
                call.request = await _apply_fault_before(fault, request)
                if request.scope.get(faults.DROPPED):  # the client is gone: handle nothing, store nothing
                    return Response(status_code=204)
            if handler.auth and handler.rate_limited:
                assert call.key is not None
                call.quota = (
                    taken()
                    if taken is not None
                    else runtime.limiter.take(
                        f"{provider.name}:{call.key.id}", runtime.limits_for(provider, op_id, call.key), now
                    )
                )
            if contract.has_parameters:
                contract.parameters(request.query_params, request.path_params, request.headers)
            if handler.body == "json":
                raw = await read_body(call.request, runtime.settings.max_json_body)
                normalize = functools.partial(handler.normalize, call) if handler.normalize else None
                call.body = contract.json_body(raw, request.headers.get("content-type"), normalize)
            elif handler.body == "multipart":
                assert form_contract is not None
                call.form = await _read_form(call, handler, form_contract)
                call.body = form_contract.validate(call.form)
            result = await handler.func(call)
            response = result if isinstance(result, Response) else provider.ok(call, result)
        except ClientDisconnect:
            # the client went away mid-body: whatever was streamed has been discarded; there is no one to answer
            # (499 is nginx's "client closed request", so the journal says what happened)
            return Response(status_code=499)
        except EmulatorError as exc:
            if call.form is not None:  # a refused request keeps none of the files it sent
                for parts in call.form.files.values():
                    for part in parts:
                        runtime.blobs.delete(part.blob.name)
            response = provider.error(call, request, exc)
        if entry is not None and call.notes:  # also when refused later: the note explains what was mapped
            entry.notes += call.notes
        _add_quota_headers(response, call.quota)
        if fault is not None:
            if fault.action == "advance_clock":  # the answer is out: the next step finds the clock moved on
                runtime.clock.advance(fault.advance)
            return _apply_fault_after(fault, response)
        if runtime.settings.strict:
            _check_response(contract, op_id, response)
        return response

    return endpoint


def _add_quota_headers(response: Response, quota: Quota | None) -> None:
    """The rate-limit headers, each unless the response already has it (a 429 carries its own figures, a provider
    its own reset), appended to the raw header list directly."""
    added = quota_raw_headers(quota)
    if added:
        present = {name for name, _ in response.raw_headers}
        response.raw_headers.extend(header for header in added if header[0] not in present)


def _admission(
    provider: Provider, runtime: Runtime, op_id: str, handler: Handler, request: Request
) -> tuple[ApiKey, str, Sequence[Limit]] | None:
    """With shared state: the key, bucket and limits a request will certainly be counted against, worked out from
    this process's copy of the keys, so that the one read of the shared state can take the limits too (sound only
    while that copy is current, which the read checks). None when the pipeline might stop before the limiter or
    count the request otherwise: no key, a key refused here or lacking a scope, a magic key, fault rules set."""
    if not (handler.auth and handler.rate_limited) or runtime.faults.armed:
        return None
    try:
        key = runtime.keys.authenticate(provider.name, provider.keys, request.headers)
    except EmulatorError:  # perhaps a key created on another process since: the pipeline authenticates again
        return None
    if key.magic is not None or not key.allows(handler.scopes):
        return None
    return key, f"{provider.name}:{key.id}", runtime.limits_for(provider, op_id, key)


def _always_limited(limits: Sequence[Limit], now: float) -> RateLimited:
    """What a magic always-rate-limited key gets: the tightest limit, exhausted, free again in its window."""
    limit = min(limits, key=lambda lim: lim.window) if limits else Limit("minute", 60, 60)
    retry = int(limit.window)
    return RateLimited(
        f"Rate limit exceeded. Retry after {retry} seconds.",
        retry_after=retry,
        headers={
            "X-RateLimit-Limit": str(limit.limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(now) + retry),
            "Retry-After": str(retry),
        },
    )


def _fault_limited(fault: FaultRule, limits: Sequence[Limit], now: float) -> EmulatorError:
    """A 429 fault answers like the provider's own limiter: Retry-After and the rate-limit headers of the tightest
    limit, exhausted until the fault's Retry-After has passed."""
    error = faults.error_for(fault)
    if limits and isinstance(error, RateLimited):
        limit = min(limits, key=lambda lim: lim.window)
        retry = error.retry_after
        error.headers = {**error.headers, **quota_headers(Quota(limit.limit, 0, math.ceil(now + retry), retry))}
    return error


async def _apply_fault_before(fault: FaultRule, request: Request) -> Request:
    """Faults that act before the handler: raise an error, wait, drop, or arm an upload fault."""
    if fault.action in ("status", "slow_down"):
        raise faults.error_for(fault)
    if fault.action == "delay":
        await anyio.sleep(fault.seconds)
    elif fault.action == "drop" and fault.when == "before_headers":
        faults.drop(request.scope)
    elif fault.action in ("stall", "drop_upload"):
        return faults.fault_request(request, fault)
    return request


def _apply_fault_after(fault: FaultRule, response: Response) -> Response:
    if fault.action == "wrong_etag":
        faults.wrong_etag(response)
    if fault.action == "drop" and fault.when == "after_headers":
        return faults.DroppingResponse(response)
    return response  # no strict check: a fault is a deliberate departure from the spec


def _check_response(contract: OperationContract, op_id: str, response: Response) -> None:
    body = getattr(response, "body", None)
    if body is None:  # streamed responses (stored media) carry no body to check
        return
    problems = contract.response_problems(
        response.status_code, body, response.headers, response.headers.get("content-type", "")
    )
    if problems:
        raise ContractViolation(f"{op_id} answered {response.status_code} outside its spec: " + "; ".join(problems))


@functools.cache
def _validator(provider: str) -> SpecValidator:
    """Specs never change while the process runs, so one compiled validator serves every app built here."""
    return SpecValidator(load(provider).effective)


@functools.cache
def _form_contract(provider: str, path: str, method: str) -> FormContract:
    return FormContract(load(provider).effective, path, method)


class SpecRoute(Route):
    """A route that matches the way OpenAPI does: a concrete path wins over a templated one.

    ``/assets/upload-url`` is never ``/assets/{id}`` with ``id = "upload-url"``: a method the concrete path does
    not declare gets 405 with its ``Allow``, not the templated operation's answer.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], *, concrete: set[str], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.shadowed = frozenset(p for p in concrete if p != path and "{" in path and self.path_regex.match(p))

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if self.shadowed and get_route_path(scope) in self.shadowed:
            return Match.NONE, {}
        return super().matches(scope)


ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


class _Served:
    """An operation's endpoint as a plain ASGI app. Starlette's ``request_response`` would wrap it in one more
    exception-handling layer, with a wrapper around every message sent, that the operations never use: the pipeline
    answers every ``EmulatorError`` in the provider's own envelope, and anything else is a bug for the app's
    server-error layer to report."""

    __slots__ = ("endpoint",)

    def __init__(self, endpoint: Callable[[Request], Awaitable[Response]]) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.endpoint(Request(scope, receive, send))
        await response(scope, receive, send)


class ProviderApp:
    """One provider's routes as an ASGI app: Starlette's router, and the provider's answer to what the router refuses
    (no route: 404; a route without that method: 405), both in the provider's own envelope.

    Not a ``Starlette`` app: mounted inside the emulator's, whose middleware already reports server errors and
    turns exceptions into responses, a second such stack cost every request ~8 % of its instructions (two more
    wrappers around each message sent, a request object and three closures) for nothing this app needs.
    """

    def __init__(self, routes: Sequence[Route], http_error: ErrorHandler) -> None:
        self.router = Router(list(routes), redirect_slashes=False)  # a real provider does not redirect /path/ to /path
        self.http_error = http_error
        self.exception_handlers: Mapping[Any, ErrorHandler] = {HTTPException: http_error}
        self.state = State()

    @property
    def routes(self) -> list[BaseRoute]:
        return self.router.routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self  # the providers' error shapes find the runtime through ``request.app.state``
        try:
            await self.router(scope, receive, send)
        except HTTPException as exc:  # raised by the router, before any response started
            response = await self.http_error(Request(scope, receive), exc)
            await response(scope, receive, send)


def build_app(provider: Provider, runtime: Runtime) -> ProviderApp:
    specs = provider.specs
    validator = _validator(provider.name)
    operations = list(specs.operations())
    spec_ids = {op_id for op_id, *_ in operations}
    missing, extra = spec_ids - provider.handlers.keys(), provider.handlers.keys() - spec_ids
    if missing or extra:
        raise RuntimeError(
            f"{provider.name}: operations without handlers {sorted(missing)}, "
            f"handlers without operations {sorted(extra)}"
        )
    concrete = {specs.server_path + path for _, _, path, _ in operations if "{" not in path}
    multipart = {op_id for op_id, handler in provider.handlers.items() if handler.body == "multipart"}
    routes: list[Route] = [
        SpecRoute(
            specs.server_path + path,
            _Served(
                _endpoint(
                    provider,
                    runtime,
                    op_id,
                    provider.handlers[op_id],
                    validator.contract(path, method),
                    _form_contract(provider.name, path, method) if op_id in multipart else None,
                )
            ),
            methods=[method],
            name=op_id,
            concrete=concrete,
        )
        for op_id, method, path, _ in operations
    ]

    async def openapi(request: Request) -> Response:
        return JSONResponse(specs.served(runtime.provider_base(request, provider.name)))

    routes.append(Route("/openapi.json", openapi, methods=["GET"], name="openapi"))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            # Starlette reports the methods of the first route that matched the path; list every route's
            methods = {
                m
                for route in app.routes
                if isinstance(route, Route) and route.matches(request.scope)[0] != Match.NONE
                for m in (route.methods or ())
            }
            allowed = ", ".join(sorted(methods)) or (exc.headers or {}).get("Allow", "")
            error: EmulatorError = MethodNotAllowed(
                f"Method {request.method} is not allowed on {request.url.path}.",
                headers={"Allow": allowed} if allowed else {},
            )
        elif exc.status_code == 404:
            error = NotFound(f"No route for {request.method} {request.url.path}.")
        else:
            error = EmulatorError(str(exc.detail))
            error.status = exc.status_code
        return provider.error(None, request, error)

    app = ProviderApp(routes, http_error)
    app.state.runtime = runtime
    return app
