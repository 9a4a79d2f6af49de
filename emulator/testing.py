"""A small typed client for the control plane, for tests (yours and ours).

    control = ControlClient("http://127.0.0.1:8080")
    control.freeze()
    control.advance(3601)                      # presigned URLs issued before now are expired
    control.add_fault(provider=NAME, operation=OPERATION_ID, action="status", status=429, retry_after=5, times=1)
    entries = control.journal(provider=NAME, operation=OPERATION_ID)

and ``serve_in_thread``, which runs an emulator behind a real uvicorn on a free loopback port (the pytest plugin,
the contract suite and our own tests all start live emulators with it).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    import uvicorn

    from emulator.settings import Settings

__all__ = [
    "ControlClient",
    "ControlError",
    "JournalEntry",
    "JournalPage",
    "ServedEmulator",
    "free_port",
    "serve_in_thread",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServedEmulator:
    """A live emulator in this process: its URL, its app (``app.state.runtime``), its uvicorn server and thread."""

    url: str
    app: Any
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve_in_thread(
    settings: Settings | None = None,
    *,
    wrap: Callable[[Any], Any] | None = None,
    log_level: str = "warning",
    timeout: float = 15.0,
) -> ServedEmulator:
    """Start ``create_app(settings)`` behind uvicorn on a free 127.0.0.1 port, in a daemon thread; wait for it.

    ``wrap`` may wrap the ASGI app (e.g. to sabotage responses); ``ServedEmulator.app`` is the unwrapped one.
    """
    import uvicorn

    from emulator.app import create_app
    from emulator.core.timeouts import head_guard_protocol
    from emulator.settings import Settings

    settings = settings or Settings()
    settings.host, settings.port = "127.0.0.1", free_port()
    app = create_app(settings)
    config = uvicorn.Config(
        wrap(app) if wrap is not None else app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        http=head_guard_protocol(settings.head_timeout, settings.max_header_bytes),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"upload-emulator-{settings.port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError(f"the emulator did not start on 127.0.0.1:{settings.port}")
        time.sleep(0.01)
    return ServedEmulator(f"http://127.0.0.1:{settings.port}", app, server, thread)


class ControlError(RuntimeError):
    """The control plane refused a request: ``status`` and its ``{error, message, details}`` body."""

    def __init__(self, status: int, body: Any) -> None:
        message = body.get("message", body) if isinstance(body, dict) else body
        super().__init__(f"control plane answered {status}: {message}")
        self.status, self.body = status, body


@dataclass(frozen=True)
class JournalEntry:
    id: int
    at: str
    epoch: float
    method: str
    path: str
    query: str
    client: str | None
    provider: str | None
    operation: str | None
    key_id: str | None
    status: int | None
    duration_ms: float
    request_bytes: int
    response_bytes: int
    request_headers: dict[str, str]
    response_headers: dict[str, str]
    fault: str | None
    notes: list[str]
    completed: bool
    request_body: str | None = None
    response_body: str | None = None
    wall: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JournalEntry:
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})


@dataclass(frozen=True)
class JournalPage:
    entries: list[JournalEntry]
    next_cursor: str | None
    has_more: bool


class ControlClient:
    """Talks to ``<base_url>/_emulator`` over HTTP (any sync httpx transport may be passed in)."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/_emulator", headers=headers, transport=transport, timeout=timeout
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        body = response.json() if response.content else None
        if response.status_code >= 400:
            raise ControlError(response.status_code, body)
        return body

    # clock
    def clock(self) -> dict[str, Any]:
        return self._call("GET", "/clock")

    def advance(self, seconds: float) -> dict[str, Any]:
        return self._call("POST", "/clock/advance", json={"seconds": seconds})

    def freeze(self, at: datetime | str | None = None) -> dict[str, Any]:
        body = {} if at is None else {"time": at.isoformat() if isinstance(at, datetime) else at}
        return self._call("POST", "/clock/freeze", json=body)

    def set_time(self, at: datetime | str) -> dict[str, Any]:
        return self._call("POST", "/clock/set", json={"time": at.isoformat() if isinstance(at, datetime) else at})

    def resume(self) -> dict[str, Any]:
        return self._call("POST", "/clock/resume")

    # state
    def reset(self, provider: str | None = None) -> None:
        self._call("POST", "/reset", json={} if provider is None else {"provider": provider})

    def state(self, provider: str) -> dict[str, list[dict[str, Any]]]:
        return self._call("GET", f"/state/{provider}")["tables"]

    # keys
    def create_key(
        self,
        provider: str,
        *,
        key: str | None = None,
        scopes: list[str] | None = None,
        rate_limits: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"provider": provider}
        if key is not None:
            body["key"] = key
        if scopes is not None:
            body["scopes"] = scopes
        if rate_limits is not None:
            body["rate_limits"] = rate_limits
        return self._call("POST", "/keys", json=body)

    def revoke_key(self, provider: str, key: str) -> str:
        return self._call("POST", "/keys/revoke", json={"provider": provider, "key": key})["revoked"]

    def keys(self) -> list[dict[str, Any]]:
        return self._call("GET", "/keys")["keys"]

    # faults
    def add_fault(self, action: str, **rule: Any) -> dict[str, Any]:
        return self._call("POST", "/faults", json={"action": action, **rule})

    def faults(self) -> list[dict[str, Any]]:
        return self._call("GET", "/faults")["faults"]

    def remove_fault(self, fault_id: str) -> None:
        self._call("DELETE", f"/faults/{fault_id}")

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    # journal
    def journal(self, **filters: Any) -> list[JournalEntry]:
        """Every matching entry the journal holds, oldest first (it follows the pages' cursors)."""
        entries, page = [], self.journal_page(limit=1000, **filters)
        entries += page.entries
        while page.has_more:
            page = self.journal_page(cursor=page.next_cursor, limit=1000, **filters)
            entries += page.entries
        return entries

    def journal_page(
        self, *, cursor: str | None = None, limit: int | None = None, order: str | None = None, **filters: Any
    ) -> JournalPage:
        """One page: ``limit`` entries (100 by default), oldest first or ``order="desc"``; pass its
        ``next_cursor`` as ``cursor`` for the next (oldest first, it also finds entries that arrive later)."""
        params = {
            k: v for k, v in {**filters, "cursor": cursor, "limit": limit, "order": order}.items() if v is not None
        }
        body = self._call("GET", "/journal", params=params)
        return JournalPage([JournalEntry.from_dict(e) for e in body["entries"]], body["next_cursor"], body["has_more"])

    def clear_journal(self) -> None:
        self._call("DELETE", "/journal")
