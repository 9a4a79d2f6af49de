"""``create_app(settings)``: every provider under its prefix (or one at the root), plus the control plane."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.types import ASGIApp

from emulator.control import CONTROL, LoopbackGuard
from emulator.core.journal import JournalMiddleware
from emulator.core.provider import Provider, build_app
from emulator.providers import PROVIDERS
from emulator.runtime import Runtime
from emulator.settings import Settings


class EmulatorApp(Starlette):
    """A Starlette app whose outermost layer is the journal, outside even the server-error middleware, so that
    every request is recorded and fault injection can reach the connection itself."""

    runtime: Runtime

    def build_middleware_stack(self) -> ASGIApp:
        return JournalMiddleware(super().build_middleware_stack(), self.state.runtime.journal)


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> EmulatorApp:
    settings = settings or Settings()
    runtime = runtime or Runtime(settings)
    if settings.provider is not None and settings.provider not in PROVIDERS:
        raise ValueError(f"unknown provider {settings.provider!r}; choose from {', '.join(PROVIDERS)}")
    chosen: dict[str, Provider] = {
        name: provider for name, provider in PROVIDERS.items()
        if settings.provider is None or name == settings.provider
    }
    control = Mount("/_emulator", LoopbackGuard(build_app(CONTROL, runtime), settings.admin_token))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        runtime.close()

    if settings.provider is not None:
        provider_app = build_app(chosen[settings.provider], runtime)
        app = EmulatorApp(routes=[control, *provider_app.routes], exception_handlers=provider_app.exception_handlers,
                          lifespan=lifespan)
    else:
        mounts = [Mount(f"/{name}", build_app(provider, runtime)) for name, provider in chosen.items()]

        async def not_found(request: Request, exc: Exception) -> Response:
            return JSONResponse(
                {"error": "not_found", "message": f"No provider serves {request.url.path}.",
                 "providers": [f"/{name}" for name in chosen]},
                status_code=404,
            )

        app = EmulatorApp(routes=[control, *mounts], exception_handlers={404: not_found}, lifespan=lifespan)
    app.router.redirect_slashes = False
    app.state.runtime = runtime
    app.state.settings = settings
    return app
