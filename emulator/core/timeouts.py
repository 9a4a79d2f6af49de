"""A request body that stops arriving is refused instead of holding its request open forever (slow-loris).

``BodyTimeout`` is pure ASGI and wraps ``receive``: while the body is incomplete, each wait for the next piece may
last at most ``seconds`` (an idle timeout, like nginx's ``client_body_timeout`` or S3's ``RequestTimeout``: a slow
but steady upload is never cut off, a stalled one is). When the wait runs out, ``receive`` raises
``RequestTimeout``; it surfaces where the handler reads the body, so whatever was streamed so far is discarded the
way any refused upload's is, and the provider renders the 400 in its own envelope, with ``Connection: close``
because the rest of the body may still be on its way. Once the body is complete, ``receive`` is left alone (it then
only reports disconnects, which may take as long as a download does).

The waits are bounded by one timer per event loop (``_Watch``) rather than a timer per read: on the path of every
request, a read then costs a dict entry (the emulator runs on asyncio, as uvicorn does).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.core.errors import FieldError, RequestTimeout


def body_timeout_error(seconds: float) -> RequestTimeout:
    return RequestTimeout(
        "Your socket connection to the server was not read from or written to within the timeout period: no "
        f"request body bytes arrived for {seconds:g} s.",
        errors=[FieldError("body", f"stopped arriving for {seconds:g} s")],
        headers={"Connection": "close"},
    )


class _Watch:
    """The body reads waiting on one event loop, and one timer that checks them every ``tick`` seconds.

    ``asyncio.timeout`` around each read arms and cancels a timer per read: a fifth of what a small JSON request
    costs inside the app, for a body that has almost always arrived whole with its headers. Here a read costs a
    dict entry; the timer runs only while reads are waiting, and a read that waits longer than ``seconds`` is
    cancelled within one tick after that (never before).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, tick: float) -> None:
        self.loop, self.tick = loop, tick
        self.waiting: dict[asyncio.Task[Any], float] = {}  # task → deadline (loop time)
        self.expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def wait(self, task: asyncio.Task[Any], seconds: float) -> None:
        self.waiting[task] = self.loop.time() + seconds
        if self._timer is None:
            self._timer = self.loop.call_later(self.tick, self._check)

    def _check(self) -> None:
        self._timer = None
        now = self.loop.time()
        for task, deadline in list(self.waiting.items()):
            if deadline <= now:
                del self.waiting[task]
                self.expired.add(task)
                task.cancel()
        if self.waiting:
            self._timer = self.loop.call_later(self.tick, self._check)


class BodyTimeout:
    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app, self.seconds = app, seconds
        self.tick = min(1.0, seconds / 10)
        self._watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watch] = weakref.WeakKeyDictionary()
        self._thread = threading.local()  # .last: (the loop this thread last ran, its watch)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> _Watch:
        watch = self._watches.get(loop)
        if watch is None:
            watch = self._watches[loop] = _Watch(loop, self.tick)
        return watch

    def _current(self) -> tuple[_Watch, asyncio.Task[Any]]:
        """The running loop's watch and the current task.

        On Python 3.11 ``asyncio.get_running_loop()`` is a getpid() system call, which on this VM was 3 % of a
        JSON request under load. The loop a thread last ran is remembered instead, and asked for its current task:
        a thread runs one loop at a time, so when that loop is not the running one it has no current task, and the
        running loop is looked up after all.
        """
        last = getattr(self._thread, "last", None)
        task = asyncio.current_task(last[0]) if last is not None else None
        if last is None or task is None:
            loop = asyncio.get_running_loop()
            last = self._thread.last = (loop, self._watch(loop))
            task = asyncio.current_task(loop)
        assert task is not None
        return last[1], task

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.seconds <= 0:
            await self.app(scope, receive, send)
            return
        body_done = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            watch, task = self._current()
            watch.wait(task, self.seconds)
            try:
                message = await receive()
            except asyncio.CancelledError:
                if task in watch.expired:
                    watch.expired.discard(task)
                    if task.uncancel() == 0:  # cancelled by the watch alone: the body stopped arriving
                        body_done = True  # refused once; later reads only wait for the disconnect
                        raise body_timeout_error(self.seconds) from None
                raise
            finally:
                watch.waiting.pop(task, None)
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
        from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
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
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn's narrowing
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
            if self._url_too_long:
                return
            cycle = self.cycle
            if cycle.body or cycle.response_complete or self.parser.should_upgrade():
                if type(cycle.body) is bytes:  # a piece handed over as it is, below: gather in a bytearray
                    cycle.body = bytearray(cycle.body)
                super().on_body(body)
                return
            # uvicorn appends each piece to a bytearray, which ``receive`` copies again with ``bytes()``: a piece
            # that finds nothing waiting is handed over as it is (``bytes(piece)`` is ``piece``), two copies of
            # every body byte fewer. Pieces that do gather (the app is slower than the socket) take uvicorn's path.
            cycle.body = body  # type: ignore[assignment]  # bytes: read only by receive()'s bytes()
            if len(body) > HIGH_WATER_LIMIT:
                self.flow.pause_reading()
            cycle.message_event.set()

        def on_message_complete(self) -> None:
            if not self._url_too_long:
                super().on_message_complete()
                self._in_head, self._head_bytes = True, 0

    HeadGuardProtocol.__name__ = HeadGuardProtocol.__qualname__ = f"HeadGuardProtocol_{seconds:g}s_{max_head_bytes}B"
    return HeadGuardProtocol
