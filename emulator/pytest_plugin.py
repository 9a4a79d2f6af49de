"""pytest plugin (entry point ``pytest11``): a live emulator for your tests.

Fixtures:
    upload_emulator          session-scoped live emulator on a free loopback port (real uvicorn: any HTTP client)
    emulator                 the same server, reset before the test; ``@pytest.mark.emulator(clock="frozen",
                             at="2026-01-01T00:00:00Z")`` freezes its clock for the test
    emulator_control         a ``ControlClient`` for it
    emulator_app             a fresh in-process app for one test (fast; no socket)
    emulator_transport       an ``httpx.ASGITransport`` on ``emulator_app``
    <provider>_base_url      one per provider: the URL to use instead of the real one
    <provider>_key           a ready dev key for that provider
    upload_chaos             session-scoped live emulator for ``emulator.chaos`` runs (an ``emulator.chaos.Target``)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from emulator.testing import ControlClient, serve_in_thread


@dataclass
class RunningEmulator:
    url: str
    control: ControlClient
    app: Any
    _server: Any = field(repr=False, default=None)

    def base_url(self, provider: str) -> str:
        """The base URL a client of ``provider`` uses instead of the real one."""
        from emulator.providers import PROVIDERS

        p = PROVIDERS[provider]
        return f"{self.url}/{provider}{p.specs.server_path}{p.client_path}"

    def key(self, provider: str) -> str:
        from emulator.providers import PROVIDERS

        return PROVIDERS[provider].keys.example


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "emulator(clock=None, at=None): configure the upload emulator for a test "
        "(clock='frozen' freezes the virtual clock, at an ISO time if given)",
    )


@pytest.fixture(scope="session")
def upload_emulator() -> Iterator[RunningEmulator]:
    served = serve_in_thread()
    control = ControlClient(served.url)
    try:
        yield RunningEmulator(served.url, control, served.app, served.server)
    finally:
        control.close()
        served.stop()


@pytest.fixture(scope="session")
def upload_chaos() -> Iterator[Any]:
    from emulator.chaos import Target

    with Target() as target:
        yield target


@pytest.fixture
def emulator(upload_emulator: RunningEmulator, request: pytest.FixtureRequest) -> RunningEmulator:
    upload_emulator.control.reset()
    marker = request.node.get_closest_marker("emulator")
    if marker is not None and marker.kwargs.get("clock") == "frozen":
        upload_emulator.control.freeze(marker.kwargs.get("at"))
    return upload_emulator


@pytest.fixture
def emulator_control(emulator: RunningEmulator) -> ControlClient:
    return emulator.control


@pytest.fixture
def emulator_app() -> Iterator[Any]:
    from emulator import Settings, create_app

    app = create_app(Settings(strict=True))
    yield app
    app.state.runtime.close()


@pytest.fixture
def emulator_transport(emulator_app: Any) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=emulator_app)


def _provider_fixtures() -> None:
    from emulator.providers import PROVIDERS

    for name in PROVIDERS:

        def base_url(emulator: RunningEmulator, _name: str = name) -> str:
            return emulator.base_url(_name)

        def key(_name: str = name) -> str:
            from emulator.providers import PROVIDERS as known

            return known[_name].keys.example

        globals()[f"{name}_base_url"] = pytest.fixture(base_url, name=f"{name}_base_url")
        globals()[f"{name}_key"] = pytest.fixture(key, name=f"{name}_key")


_provider_fixtures()
