"""A request body that stops arriving is refused instead of holding its request open forever (slow-loris).

``BodyTimeout`` is pure ASGI and wraps ``receive``: while the body is incomplete, each wait for the next piece may
last at most ``seconds`` (an idle timeout, like nginx's ``client_body_timeout`` or S3's ``RequestTimeout``: a slow
but steady upload is never cut off, a stalled one is). When the wait runs out, ``receive`` raises
``RequestTimeout``; it surfaces where the handler reads the body, so whatever was streamed so far is discarded the
way any refused upload's is, and the provider renders the 400 in its own envelope, with ``Connection: close``
because the rest of the body may still be on its way. Once the body is complete, ``receive`` is left alone (it then
only reports disconnects, which may take as long as a download does).

The wait is bounded with ``asyncio.timeout`` (the emulator runs on asyncio, as uvicorn does). One timer per event
loop instead of one per read was tried (653b712 to 54a2c56): ~4 % fewer instructions per request (bench/README.md,
683k to 656k) for four times the code, under the 5 % a speed trick must show to be kept.
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


# --- the request head ----------------------------------------------------------------------------------------------
# uvicorn bounds the wait between requests on a kept-alive connection, but neither a connection that never sends a
# byte nor a request line and headers that trickle in a byte at a time: either holds its connection (and a slot)
# for as long as the client likes. No ASGI layer can see a request before its head is complete, so this is done
# in uvicorn's own protocol class (httptools, which uvicorn[standard] uses), subclassed for one timer per
# connection: armed when the connection opens and at the first byte of each request, disarmed when the head is
# complete; when it fires, the client gets 408 (nginx's answer to client_header_timeout) and the connection closes.

_HEAD_TOO_SLOW = b"The request line and headers took too long to arrive.\n"
_REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(_HEAD_TOO_SLOW), _HEAD_TOO_SLOW))


def head_timeout_protocol(seconds: float) -> type | str:
    """uvicorn's ``http`` setting: a protocol class that refuses request heads slower than ``seconds``, or
    ``"auto"`` (uvicorn's own choice) when there is no timeout or no httptools to build it on."""
    if seconds <= 0:
        return "auto"
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # no httptools: uvicorn falls back to h11, without this guard
        return "auto"

    class HeadTimeoutProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None

        def _arm_head_timer(self) -> None:
            self._disarm_head_timer()
            self._head_timer = self.loop.call_later(seconds, self._head_timed_out)

        def _disarm_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                self.transport.write(_REQUEST_TIMEOUT)
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_head_timer()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm_head_timer()

        def on_headers_complete(self) -> None:
            self._disarm_head_timer()
            super().on_headers_complete()

    HeadTimeoutProtocol.__name__ = HeadTimeoutProtocol.__qualname__ = f"HeadTimeoutProtocol_{seconds:g}s"
    return HeadTimeoutProtocol
