"""A request body that stops arriving is refused instead of holding its request open forever (slow-loris).

``BodyTimeout`` is pure ASGI and wraps ``receive``: while the body is incomplete, each wait for the next piece may
last at most ``seconds`` (an idle timeout, like nginx's ``client_body_timeout`` or S3's ``RequestTimeout``: a slow
but steady upload is never cut off, a stalled one is). When the wait runs out, ``receive`` raises
``RequestTimeout``; it surfaces where the handler reads the body, so whatever was streamed so far is discarded the
way any refused upload's is, and the provider renders the 400 in its own envelope, with ``Connection: close``
because the rest of the body may still be on its way. Once the body is complete, ``receive`` is left alone (it then
only reports disconnects, which may take as long as a download does).

The wait is bounded with ``asyncio.timeout`` (the emulator runs on asyncio, as uvicorn does): on the path of every
request, it costs half of what ``anyio.fail_after`` does.
"""

from __future__ import annotations

import asyncio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.core.errors import FieldError, RequestTimeout


def body_timeout_error(seconds: float) -> RequestTimeout:
    return RequestTimeout(
        "Your socket connection to the server was not read from or written to within the timeout period: no "
        f"request body bytes arrived for {seconds:g} s.",
        errors=[FieldError("body", f"stopped arriving for {seconds:g} s")],
        headers={"Connection": "close"},
    )


class BodyTimeout:
    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.seconds <= 0:
            await self.app(scope, receive, send)
            return
        body_done = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout(self.seconds):
                    message = await receive()
            except TimeoutError:
                body_done = True  # refused once; later reads only wait for the disconnect
                raise body_timeout_error(self.seconds) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        await self.app(scope, timed_receive, send)
