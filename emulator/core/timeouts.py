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
# for as long as the client likes. Nor does it bound the head's size: httptools hands uvicorn a header only once it
# is complete, and gathers its value by concatenation meanwhile, so a header streamed without end grows memory (and
# the copying takes the event loop from every other client) until the timeout. No ASGI layer can see a request
# before its head is complete, so both guards live in uvicorn's own protocol class (httptools, which
# uvicorn[standard] uses), subclassed once:
# - time: one timer per connection, armed when the connection opens and at the first byte of each request,
#   disarmed when the head is complete; when it fires, the client gets 408 (nginx's answer to
#   client_header_timeout) and the connection closes;
# - size: the bytes of a head are counted before the parser sees them, and it is fed no more than the limit
#   allows; a request line over MAX_REQUEST_LINE gets 414, a head that is not complete within ``max_head_bytes``
#   gets 431 (nginx answers 414 and 400; 431 is RFC 6585's status for it), and the connection closes there, so
#   at most one socket read (asyncio's 256 KiB) of a hostile head is ever held.

MAX_REQUEST_LINE = 8192  # bytes of "METHOD target HTTP/1.1", like nginx's default large_client_header_buffers (8k)


def _plain(status: bytes, text: bytes) -> bytes:
    return (
        b"HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (status, len(text), text)
    )


_REQUEST_TIMEOUT = _plain(b"408 Request Timeout", b"The request line and headers took too long to arrive.\n")
_URI_TOO_LONG = _plain(b"414 URI Too Long", b"The request line is longer than %d bytes.\n" % MAX_REQUEST_LINE)


def _head_too_large(limit: int) -> bytes:
    return _plain(
        b"431 Request Header Fields Too Large",
        b"The request line and headers are longer than %d bytes (--max-header-bytes).\n" % limit,
    )


def head_guard_protocol(seconds: float, max_head_bytes: int) -> type | str:
    """uvicorn's ``http`` setting: a protocol class that refuses request heads slower than ``seconds`` (408) or
    longer than ``max_head_bytes`` (431; a request line over ``MAX_REQUEST_LINE``: 414), or ``"auto"`` (uvicorn's
    own choice) when neither applies (0 disables either) or there is no httptools to build it on."""
    if seconds <= 0 and max_head_bytes <= 0:
        return "auto"
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # no httptools: uvicorn falls back to h11, without these guards
        return "auto"
    max_line = MAX_REQUEST_LINE
    too_large = _head_too_large(max_head_bytes)
    line_overhead = len("  HTTP/1.1")  # a request line's bytes besides its method and target

    class HeadGuardProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None
        _head_bytes = 0  # bytes fed to the parser since the current head began
        _in_head = True  # between a message's end (or the connection's start) and its head's end
        _heads = 0  # heads completed on this connection
        _url_too_long = False

        # -- time
        def _arm_head_timer(self) -> None:
            self._disarm_head_timer()
            if seconds > 0:
                self._head_timer = self.loop.call_later(seconds, self._head_timed_out)

        def _disarm_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            self._refuse(_REQUEST_TIMEOUT)

        def _refuse(self, answer: bytes) -> None:
            if not self.transport.is_closing():
                self.transport.write(answer)
                self.transport.close()

        # -- size
        def data_received(self, data: bytes) -> None:
            if not self._in_head or max_head_bytes <= 0:
                # body bytes, or no size limit. Should a request end and the next begin within this read, the next
                # head's bytes in it go uncounted: at most one read, and its request line is still measured
                super().data_received(data)
            else:
                allowance = max_head_bytes - self._head_bytes
                if len(data) <= allowance:
                    self._head_bytes += len(data)
                    super().data_received(data)
                else:
                    # feed what the limit allows: if the head ends within it, the rest is body (or more requests)
                    heads = self._heads
                    if allowance > 0:
                        self._head_bytes += allowance
                        super().data_received(data[:allowance])
                    if self._heads == heads and not self._url_too_long:
                        self._refuse(too_large)
                    elif not self._url_too_long and not self.transport.is_closing():
                        super().data_received(data[allowance:])
            if self._url_too_long:
                self._refuse(_URI_TOO_LONG)

        def on_url(self, url: bytes) -> None:
            # a parser callback may not raise (uvicorn would answer 400): a request line found too long is only
            # marked, the parser's later callbacks for it do nothing, and data_received answers once the parser
            # has returned
            if not self._url_too_long:
                if len(self.parser.get_method()) + len(self.url) + len(url) + line_overhead > max_line:
                    self._url_too_long = True
                else:
                    super().on_url(url)

        # -- the connection and the parser's callbacks
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
            if not self._url_too_long:  # else refused: the request never reaches the app
                self._in_head, self._heads = False, self._heads + 1
                super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if not self._url_too_long:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if not self._url_too_long:
                super().on_message_complete()
                self._in_head, self._head_bytes = True, 0

    HeadGuardProtocol.__name__ = HeadGuardProtocol.__qualname__ = f"HeadGuardProtocol_{seconds:g}s_{max_head_bytes}B"
    return HeadGuardProtocol
