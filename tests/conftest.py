"""Fixtures: an app per test, an httpx client on it (in-process, app exceptions raised), its clock and runtime.

Every app here runs in strict mode: each response is validated against the provider's effective spec, and a
mismatch raises inside the test. So every test that makes a request also checks spec conformance.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from emulator import Settings, create_app
from emulator.core.clock import Clock
from emulator.runtime import Runtime
from emulator.testing import ServedEmulator, free_port, serve_in_thread  # noqa: F401 - free_port for tests

BASE = "http://127.0.0.1:8080"
FROZEN_AT = 1_790_000_000.0  # 2026-09-21T14:13:20Z


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings() -> Settings:
    return Settings(strict=True, seed=1234)


@pytest.fixture
def app(settings: Settings):
    application = create_app(settings)
    yield application
    application.state.runtime.close()


@pytest.fixture
def runtime(app) -> Runtime:
    return app.state.runtime


@pytest.fixture
def clock(runtime: Runtime) -> Clock:
    runtime.clock.freeze(FROZEN_AT)
    return runtime.clock


@pytest.fixture
async def client(app, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        yield c


@pytest.fixture
def live_server(settings: Settings) -> Iterator[ServedEmulator]:
    """The app behind a real uvicorn on a loopback port, in a thread; stopped after the test."""
    served = serve_in_thread(settings)
    yield served
    served.stop()
