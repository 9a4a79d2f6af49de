"""BodyTimeout: a stalled read is refused, a steady or finished body never is, and a cancellation that is not the
timeout's passes through untouched."""

from __future__ import annotations

import asyncio
import time

import pytest
from starlette.types import Message

from emulator.core.errors import RequestTimeout
from emulator.core.timeouts import BodyTimeout

SCOPE = {"type": "http", "method": "PUT", "path": "/x", "headers": []}


async def send_nothing(message: Message) -> None:
    raise AssertionError(f"the app under test sends nothing, yet sent {message}")


def _reader(seconds: float, pieces: list[float | None]):
    """A BodyTimeout around an app that reads the body; ``pieces`` are the client's pauses before each piece
    (``None``: it never sends that piece). Returns (middleware, what the app saw)."""
    seen: list[object] = []

    async def receive():
        pause = pieces.pop(0)
        if pause is None:
            await asyncio.Event().wait()  # never set: the client stalls for good
        else:
            await asyncio.sleep(pause)
        return {"type": "http.request", "body": b"x", "more_body": bool(pieces)}

    async def app(scope, receive, send):
        try:
            while True:
                message = await receive()
                seen.append(message["body"])
                if not message["more_body"]:
                    break
        except RequestTimeout as exc:
            seen.append(exc)

    return BodyTimeout(app, seconds), seen, receive


def test_a_stalled_read_is_refused_at_the_timeout():
    middleware, seen, receive = _reader(0.3, [0, None])
    started = time.monotonic()
    asyncio.run(middleware(SCOPE, receive, None))
    waited = time.monotonic() - started
    assert seen[0] == b"x" and isinstance(seen[1], RequestTimeout)
    assert "0.3 s" in seen[1].message
    assert 0.3 <= waited < 0.3 + 0.2


def test_a_slow_but_steady_body_is_never_cut_off():
    # each pause is under the timeout, their sum well over it: the timeout is per read, not per body
    middleware, seen, receive = _reader(0.3, [0.15] * 6)
    asyncio.run(middleware(SCOPE, receive, None))
    assert seen == [b"x"] * 6


def test_once_the_body_is_complete_a_read_may_wait_as_long_as_it_takes():
    # after the last piece, receive only reports the disconnect, which may come long after (a download)
    disconnect_after = 0.5
    pieces: list[float] = [0, 0]

    async def receive():
        if pieces:
            await asyncio.sleep(pieces.pop(0))
            return {"type": "http.request", "body": b"x", "more_body": bool(pieces)}
        await asyncio.sleep(disconnect_after)
        return {"type": "http.disconnect"}

    seen: list[object] = []

    async def app(scope, receive, send):
        while (message := await receive())["type"] == "http.request":
            seen.append(message["body"])
        seen.append(message["type"])

    asyncio.run(BodyTimeout(app, 0.2)(SCOPE, receive, send_nothing))
    assert seen == [b"x", b"x", "http.disconnect"]


def test_a_cancellation_from_elsewhere_stays_a_cancellation():
    middleware, seen, receive = _reader(5, [None])

    async def run():
        task = asyncio.create_task(middleware(SCOPE, receive, None))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert seen == []
