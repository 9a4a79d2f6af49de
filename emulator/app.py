"""``create_app(settings)``: every provider under its prefix (or one at the root), plus the control plane."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from emulator import dashboard
from emulator.control import CONTROL, LoopbackGuard
from emulator.core.errors import EmulatorError
from emulator.core.journal import JournalMiddleware
from emulator.core.provider import Provider, build_app
from emulator.core.redaction import redact_logs
from emulator.core.responses import JSONResponse
from emulator.core.timeouts import BodyTimeout
from emulator.providers import PROVIDERS
from emulator.runtime import Runtime
from emulator.settings import Settings

_RAISED = "emulator.raised"  # scope key: the exception ``_Exceptions`` hands to Starlette's handling


async def _reraise(scope: Scope, receive: Receive, send: Send) -> None:
    raise scope.pop(_RAISED)


class _Exceptions:
    """Starlette's ``ExceptionMiddleware`` (the app's exception handlers: its 404, Starlette's ``HTTPException``
    answer), at no cost to a request that raises nothing.

    Starlette's made a request object and two closures for every request and wrapped every message sent, to know
    whether a response had started should an exception come: ~3 % of a JSON request's instructions. Here only an
    exception pays: it is handed to Starlette's own middleware, around an app that raises it again, which finds
    the handler and answers exactly as before. The one difference: a handled exception raised after a response
    started would meet the server's "response already started" error instead of Starlette's; the router, which
    raises the ones handled here, raises before anything is sent."""

    def __init__(self, app: ASGIApp, handlers: Mapping[Any, Any]) -> None:
        self.app = app
        self.handling = ExceptionMiddleware(_reraise, handlers=handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            if scope["type"] != "http":
                raise
            scope[_RAISED] = exc
            await self.handling(scope, receive, send)


class EmulatorApp(Starlette):
    """A Starlette app whose outermost layer is the journal, outside even the server-error middleware, so that
    every request is recorded and fault injection can reach the connection itself."""

    runtime: Runtime

    def build_middleware_stack(self) -> ASGIApp:
        # Starlette's stack (server errors, then exception handlers, then the router) with ``_Exceptions`` for its
        # exception layer; the emulator adds no middleware of Starlette's kind and handles no 500 itself
        assert not self.user_middleware and not {500, Exception} & self.exception_handlers.keys()
        app = ServerErrorMiddleware(_Exceptions(self.router, self.exception_handlers), debug=self.debug)
        runtime = self.state.runtime
        return JournalMiddleware(BodyTimeout(app, runtime.settings.body_timeout), runtime.journal)


def _mount(path: str, app: ASGIApp) -> Mount:
    """A Mount whose path also matches a percent-encoded newline (``%0A``) in the rest of the path.

    Starlette's ``{path:path}`` is ``.*``, which stops at a newline, so such a request would miss its provider and
    get the app-wide 404 instead of the provider's own error shape (JSON or S3 XML).
    """
    mount = Mount(path, app)
    mount.path_regex = re.compile(mount.path_regex.pattern, re.DOTALL)
    return mount


async def _reclaim_while_idle(runtime: Runtime) -> None:
    """Requests sweep abandoned uploads when a sweep is due; this does it for an emulator nobody is calling (once a
    minute of real time, or as often as sweeps fall due when that is more often)."""
    every = max(0.05, min(60.0, runtime.reclaimer.interval))
    while True:
        await anyio.sleep(every)
        try:
            runtime.refresh()
            runtime.reclaim_due(runtime.clock.now())
        except EmulatorError:  # the shared state is unreachable: the next request says so, the next sweep retries
            continue


def _check_rate_limits(overrides: dict[str, int]) -> None:
    """Refuse a rate-limit override that would silently do nothing (a misspelt provider or limit) or that no
    window can hold (a negative number); 0 is allowed and refuses every request."""
    for name, value in overrides.items():
        provider_name, _, limit = name.partition(".")
        provider = PROVIDERS.get(provider_name)
        if provider is None:
            raise ValueError(
                f"--rate-limit {name}: unknown provider {provider_name!r}; choose from {', '.join(PROVIDERS)}"
            )
        known = sorted({lim.name for op_id, *_ in provider.specs.operations() for lim in provider.limits(op_id)})
        if limit not in known:
            raise ValueError(f"--rate-limit {name}: {provider_name} has no limit {limit!r}; it has {', '.join(known)}")
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"--rate-limit {name}={value}: a limit is a whole number >= 0 (0 refuses every request)")


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> EmulatorApp:
    settings = settings or Settings()
    redact_logs()  # query secrets out of uvicorn's access log (should anyone turn it on) and trace log
    if settings.provider is not None and settings.provider not in PROVIDERS:
        raise ValueError(f"unknown provider {settings.provider!r}; choose from {', '.join(PROVIDERS)}")
    _check_rate_limits(settings.rate_limits)
    runtime = runtime or Runtime(settings)  # after the checks: it holds a directory (and its lock) until closed
    chosen: dict[str, Provider] = {
        name: provider for name, provider in PROVIDERS.items() if settings.provider is None or name == settings.provider
    }
    control = Mount("/_emulator", LoopbackGuard(build_app(CONTROL, runtime), settings.admin_token))
    ui = dashboard.routes(settings)  # /_emulator/ui, before the control plane's mount

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_reclaim_while_idle, runtime)
            yield
            tasks.cancel_scope.cancel()
        runtime.close()

    if settings.provider is not None:
        provider_app = build_app(chosen[settings.provider], runtime)
        app = EmulatorApp(
            routes=[*ui, control, *provider_app.routes],
            exception_handlers=provider_app.exception_handlers,
            lifespan=lifespan,
        )
    else:
        mounts = [_mount(f"/{name}", build_app(provider, runtime)) for name, provider in chosen.items()]

        async def not_found(request: Request, exc: Exception) -> Response:
            return JSONResponse(
                {
                    "error": "not_found",
                    "message": f"No provider serves {request.url.path}.",
                    "providers": [f"/{name}" for name in chosen],
                },
                status_code=404,
            )

        # the providers' mounts first: their prefixes and /_emulator match disjoint paths, so the order changes no
        # answer, and a provider request (nearly all of them) is not first tried against three control-plane routes
        app = EmulatorApp(routes=[*mounts, *ui, control], exception_handlers={404: not_found}, lifespan=lifespan)
    app.router.redirect_slashes = False
    app.state.runtime = runtime
    app.state.settings = settings
    return app
