"""``create_app(settings)``: every provider under its prefix (or one at the root), plus the control plane."""

from __future__ import annotations

import ipaddress
from contextlib import asynccontextmanager
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from emulator.core.provider import Provider, build_app
from emulator.providers import PROVIDERS
from emulator.runtime import Runtime
from emulator.settings import Settings


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("localhost", "testclient")


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Starlette:
    settings = settings or Settings()
    runtime = runtime or Runtime(settings)
    from emulator import __version__

    if settings.provider is not None and settings.provider not in PROVIDERS:
        raise ValueError(f"unknown provider {settings.provider!r}; choose from {', '.join(PROVIDERS)}")
    chosen: dict[str, Provider] = {
        name: provider for name, provider in PROVIDERS.items()
        if settings.provider is None or name == settings.provider
    }

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__, "providers": sorted(chosen)})

    control = Starlette(routes=[Route("/health", health, methods=["GET"])])
    control.router.redirect_slashes = False

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        runtime.close()

    if settings.provider is not None:
        provider_app = build_app(chosen[settings.provider], runtime)
        routes = [Mount("/_emulator", control), *provider_app.routes]
        app = Starlette(routes=routes, exception_handlers=provider_app.exception_handlers, lifespan=lifespan)
    else:
        mounts = [Mount(f"/{name}", build_app(provider, runtime)) for name, provider in chosen.items()]

        async def not_found(request: Request, exc: Exception) -> Response:
            return JSONResponse(
                {"error": "not_found", "message": f"No provider serves {request.url.path}.",
                 "providers": [f"/{name}" for name in chosen]},
                status_code=404,
            )

        app = Starlette(routes=[Mount("/_emulator", control), *mounts], exception_handlers={404: not_found},
                        lifespan=lifespan)
    app.router.redirect_slashes = False
    app.state.runtime = runtime
    app.state.settings = settings
    return app
