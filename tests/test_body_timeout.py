"""BodyTimeout's one watch per event loop: a stalled read is refused, a steady or finished body never is, and a
cancellation that is not the watch's passes through untouched."""

from __future__ import annotations

import asyncio
import time

import pytest

from emulator.core.errors import RequestTimeout
from emulator.core.timeouts import BodyTimeout

SCOPE = {"type": "http", "method": "PUT", "path": "/x", "headers": []}


def _reader(seconds: float, pieces: list[float | None]):
    """A BodyTimeout around an app that reads the body; ``pieces`` are the client's pauses before each piece
    (``None``: it never sends that piece). Returns (middleware, what the app saw)."""
    seen: list[object] = []

    async def receive():
        pause = pieces.pop(0)
        if pause is None:
            await asyncio.Event().wait()
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


def test_a_stalled_read_is_refused_within_a_tick_of_the_timeout():
    middleware, seen, receive = _reader(0.3, [0, None])
    started = time.monotonic()
    asyncio.run(middleware(SCOPE, receive, None))
    waited = time.monotonic() - started
    assert seen[0] == b"x" and isinstance(seen[1], RequestTimeout)
    assert "0.3 s" in seen[1].message
    assert 0.3 <= waited < 0.3 + middleware.tick + 0.2


def test_a_slow_but_steady_body_is_never_cut_off():
    # each pause is under the timeout, their sum well over it: the timeout is per read, not per body
    middleware, seen, receive = _reader(0.3, [0.15] * 6)
    asyncio.run(middleware(SCOPE, receive, None))
    assert seen == [b"x"] * 6


def test_a_finished_body_leaves_nothing_waiting():
    middleware, seen, receive = _reader(5, [0, 0, 0])

    async def run():
        await middleware(SCOPE, receive, None)
        watch = middleware._watch(asyncio.get_running_loop())
        return dict(watch.waiting), set(watch.expired)

    assert asyncio.run(run()) == ({}, set())
    assert seen == [b"x"] * 3


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
