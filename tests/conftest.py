"""Fixtures: an app per test, an httpx client on it (in-process, app exceptions raised), its clock and runtime.

Every app here runs in strict mode: each response is validated against the provider's effective spec, and a
mismatch raises inside the test. So every test that makes a request also checks spec conformance.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from emulator import Settings, create_app
from emulator.core.clock import Clock
from emulator.runtime import Runtime
from emulator.testing import ServedEmulator, free_port, serve_in_thread  # noqa: F401 - free_port for tests
from tests.helpers import NODE_CLIENTS, clients_cache
from tests.redis_server import RedisServer, redis_binary

BASE = "http://127.0.0.1:8080"
FROZEN_AT = 1_790_000_000.0  # 2026-09-21T14:13:20Z


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module that sets ``BOTH_STORES = True`` runs each of its tests on the memory store and on Redis."""
    if getattr(metafunc.module, "BOTH_STORES", False) and "store_kind" in metafunc.fixturenames:
        metafunc.parametrize("store_kind", ["memory", "redis"], indirect=True)


@pytest.fixture
def store_kind(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "memory")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, without persistence, for the whole session."""
    server = RedisServer(redis_binary())
    server.start()
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test (restarted if an earlier test stopped it)."""
    if redis_server.proc is None:
        redis_server.start()
    redis_server.flush()
    return redis_server.url()


@pytest.fixture
def settings(store_kind: str, request: pytest.FixtureRequest) -> Settings:
    state = request.getfixturevalue("redis_url") if store_kind == "redis" else None
    return Settings(strict=True, seed=1234, state=state)


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


@pytest.fixture(scope="session")
def node_clients() -> Path:
    """The pinned official Node clients, installed with ``npm ci`` into the cache (once per lock file)."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if not npm or not node:
        message = "Node >= 20 with npm is needed to run PostEverywhere's official clients"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    assert int(version.lstrip("v").split(".")[0]) >= 20, f"Node >= 20 needed, found {version}"
    manifest, lock = (NODE_CLIENTS / "package.json").read_bytes(), (NODE_CLIENTS / "package-lock.json").read_bytes()
    target = clients_cache() / f"node-{hashlib.sha256(manifest + lock).hexdigest()[:16]}"
    if (target / ".installed").exists():
        return target
    scratch = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    (scratch / "package.json").write_bytes(manifest)
    (scratch / "package-lock.json").write_bytes(lock)
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
        cwd=scratch,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    (scratch / ".installed").write_text("ok\n")
    try:
        scratch.rename(target)
    except OSError:  # another run installed it first
        shutil.rmtree(scratch, ignore_errors=True)
    return target
