"""Fixtures: an app per test, an httpx client on it (in-process, app exceptions raised), its clock and runtime.

Every app here runs in strict mode: each response is validated against the provider's effective spec, and a
mismatch raises inside the test. So every test that makes a request also checks spec conformance.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from emulator import Settings, create_app
from emulator.core.clock import Clock
from emulator.runtime import Runtime

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    app: object
    server: uvicorn.Server


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    """The app behind a real uvicorn on a loopback port, in a thread; stopped after the test."""
    port = free_port()
    settings.port = port
    application = create_app(settings)
    config = uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                            lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    yield LiveServer(f"http://127.0.0.1:{port}", application, server)
    server.should_exit = True
    thread.join(timeout=10)
