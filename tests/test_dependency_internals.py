"""The emulator's reaches past its dependencies' public APIs still work with the installed versions.

openapi-core's validator factory and ``_iter_errors`` (``emulator/core/openapi_internals.py``), uvicorn's
transport behind ``send`` (``emulator/core/uvicorn_internals.py``), uvicorn's request cycle as the head guard
protocol feeds it body pieces (``emulator/core/timeouts.py``) and redis-py's connection socket
(``emulator/core/redis_internals.py``): an upgrade that moves one fails here, naming the code to fix, before it
turns into wrong answers, faults that no longer drop connections, bodies that arrive copied or torn, or batches
that never reach Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
import uvicorn

from emulator.core import openapi_internals
from emulator.core.openapi_internals import OpenAPICoreChanged, format_checker, response_errors, schema_validator
from emulator.core.redis_internals import RedisPyChanged, connection_socket
from emulator.core.uvicorn_internals import Transport, connection_transport
from emulator.core.validation import SpecValidator
from emulator.testing import free_port

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "t", "version": "1"},
    "paths": {
        "/things": {
            "post": {
                "operationId": "makeThing",
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 0},
                                    "at": {"type": "string", "format": "date-time"},
                                },
                            }
                        }
                    }
                },
                "responses": {
                    "201": {
                        "description": "made",
                        "headers": {"X-RateLimit-Limit": {"required": True, "schema": {"type": "integer"}}},
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["id"],
                                    "properties": {"id": {"type": "string"}},
                                }
                            }
                        },
                    }
                },
            }
        }
    },
}


@pytest.fixture(scope="module")
def spec() -> SpecValidator:
    return SpecValidator(SPEC)


def operation(spec: SpecValidator) -> Any:
    return spec.openapi.spec / "paths" / "/things" / "post"


def test_the_schema_validator_accepts_and_refuses_with_schema_errors(spec: SpecValidator) -> None:
    from openapi_core.validation.schemas.exceptions import InvalidSchemaValue

    body = schema_validator(spec.requests, operation(spec) / "requestBody" / "content" / "application/json" / "schema")
    body.validate({"size": 3, "at": "2030-01-01T00:00:00Z"})
    with pytest.raises(InvalidSchemaValue) as refused:
        body.validate({"size": -1})
    (error,) = refused.value.schema_errors
    assert "minimum" in str(error)
    checker = format_checker(body)
    assert checker.conforms("2030-01-01T00:00:00Z", "date-time") and not checker.conforms("soon", "date-time")


def test_response_errors_name_each_problem_and_an_undocumented_status(spec: SpecValidator) -> None:
    from openapi_core.templating.responses.exceptions import ResponseNotFound
    from openapi_core.validation.schemas.exceptions import InvalidSchemaValue

    ok = response_errors(
        spec.responses, 201, b'{"id":"a"}', {"x-ratelimit-limit": "5"}, "application/json", operation(spec)
    )
    assert ok == []
    bad = response_errors(spec.responses, 201, b'{"ident":"a"}', {}, "application/json", operation(spec))
    assert any(isinstance(err.__cause__, InvalidSchemaValue) for err in bad)
    assert any("X-RateLimit-Limit" in str(err) for err in bad)
    undocumented = response_errors(spec.responses, 418, b"{}", {}, "application/json", operation(spec))
    assert [type(err) for err in undocumented] == [ResponseNotFound]


def test_a_missing_internal_is_a_loud_error_naming_the_adapter(
    monkeypatch: pytest.MonkeyPatch, spec: SpecValidator
) -> None:
    class Moved:
        spec = schema_validators_factory = format_validators = extra_format_validators = None

    with pytest.raises(OpenAPICoreChanged, match="_iter_errors.*openapi_internals.py"):
        response_errors(Moved(), 201, b"{}", {}, "application/json", operation(spec))
    monkeypatch.delattr(Moved, "schema_validators_factory")
    with pytest.raises(OpenAPICoreChanged, match="schema_validators_factory"):
        openapi_internals.schema_validator(Moved(), operation(spec))


@contextlib.contextmanager
def _uvicorn(http_app: Any, http: Any) -> Iterator[int]:
    """``http_app`` behind a real uvicorn (``http``: its protocol) on a loopback port, in a thread; yields the port."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await http_app(scope, receive, send)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=http, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_uvicorn_hands_the_connection_transport_through_send(http: str) -> None:
    seen: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        transport = connection_transport(send)
        seen.append(transport)
        if scope["path"] == "/drop" and transport is not None:
            transport.abort()  # what a fault's drop does
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with _uvicorn(app, http) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        assert client.get("/").text == "ok"
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/drop")
    assert len(seen) == 2 and all(isinstance(t, Transport) for t in seen)
    assert seen[0].get_extra_info("sockname")[1] == port  # the connection's own socket


def test_an_asgi_server_other_than_uvicorn_gives_no_transport() -> None:
    async def send(message: Any) -> None:
        pass

    assert connection_transport(send) is None


def test_redis_py_connection_socket_is_where_the_adapter_reads_it(redis_url: str) -> None:
    """``shared.Batches`` sends and reads on the socket redis-py connected (``redis_internals``): None before the
    connection connects, the very socket it talks on after (a PING written there is answered there)."""
    conn = redis.Redis.from_url(redis_url).connection_pool.make_connection()
    assert connection_socket(conn) is None
    conn.connect()
    try:
        sock = connection_socket(conn)
        assert isinstance(sock, socket.socket)
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        assert sock.recv(64) == b"+PONG\r\n"
    finally:
        conn.disconnect()
    assert connection_socket(conn) is None


def test_redis_internals_fail_loudly_when_redis_py_moves_the_socket() -> None:
    class Moved:
        socket = None

    with pytest.raises(RedisPyChanged, match="redis_internals.py"):
        connection_socket(Moved())


@pytest.mark.parametrize("slow_app", [False, True], ids=["piece-as-it-is", "pieces-gathered"])
def test_the_head_guard_protocol_hands_body_pieces_over_whole_in_order_and_uncopied(slow_app: bool) -> None:
    """``head_guard_protocol``'s ``on_body`` (emulator/core/timeouts.py) puts a body piece that finds nothing waiting
    in uvicorn's request cycle as it is, relying on ``RequestResponseCycle.receive`` handing ``bytes(cycle.body)``
    over (the piece itself); pieces that gather while the app is busy go through uvicorn's bytearray. Either way the
    app gets every byte in order, as ``bytes``, reading pauses past uvicorn's high-water mark, and a lone piece is
    the very object the parser handed over (no copy). Fails if a uvicorn upgrade moves ``body`` or ``receive``."""
    from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT

    from emulator.core.timeouts import head_guard_protocol

    guard = head_guard_protocol(5.0, 65536)
    assert not isinstance(guard, str)
    pieces: list[bytes] = []
    gathered = 0  # pieces that arrived while an earlier one still waited for the app

    class Spy(guard):  # type: ignore[misc,valid-type]
        def on_body(self, body: bytes) -> None:
            nonlocal gathered
            pieces.append(body)
            gathered += bool(self.cycle.body)
            super().on_body(body)

    messages: list[bytes] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        more = True
        while more:
            if slow_app:
                await asyncio.sleep(0.02)  # the loop reads on meanwhile: small pieces gather
            message = await receive()
            assert type(message["body"]) is bytes
            messages.append(message["body"])
            more = message["more_body"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": hashlib.md5(b"".join(messages)).hexdigest().encode()})

    body = os.urandom(1 << 20 if slow_app else 4 << 20)
    with _uvicorn(app, Spy) as port:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body))
            step = 16384 if slow_app else 1 << 20
            for start in range(0, len(body), step):
                sock.sendall(body[start : start + step])
                if slow_app:
                    time.sleep(0.002)  # a trickle: each socket read is one small piece
            sock.settimeout(30)
            answer = b""
            while chunk := sock.recv(4096):  # the server closes after its answer
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 200") and hashlib.md5(body).hexdigest().encode() in answer
    assert b"".join(messages) == body == b"".join(pieces)
    assert max(map(len, messages)) <= HIGH_WATER_LIMIT + max(map(len, pieces))  # reading paused past the mark
    if slow_app:
        assert gathered and len(messages) < len(pieces)  # pieces did gather into one message
    else:
        by_id = {id(piece) for piece in pieces}
        assert sum(id(m) in by_id for m in messages) >= len(messages) // 2  # lone pieces arrive uncopied
