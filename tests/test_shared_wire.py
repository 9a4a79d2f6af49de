"""How the Redis store talks to Redis on the per-request path (``emulator.core.shared``: ``Wire``, ``Batches``):
requests waiting at once share round trips and still get their own, exact answers; a script Redis forgot is sent
again by its text; a command whose reply is lost is never sent a second time (it may have run: a rate limit taken,
a journal entry written)."""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
from collections.abc import Iterator
from typing import Any

import hiredis
import httpx
import pytest
import redis
from redis.exceptions import TimeoutError as RedisTimeoutError

from emulator.app import create_app
from emulator.core import shared
from emulator.settings import Settings
from tests.conftest import BASE
from tests.helpers import AUTH, PE

pytestmark = pytest.mark.anyio

BODY = {"filename": "a.jpg", "content_type": "image/jpeg", "size": 2048}


def _app(redis_url: str, **overrides: Any) -> Any:
    limits = Settings.parse("rate_limits", "posteverywhere.minute=20")
    return create_app(Settings(strict=True, seed=1, state=redis_url, rate_limits=limits, **overrides))


async def test_requests_waiting_at_once_share_round_trips_and_limits_stay_exact(redis_url, monkeypatch):
    sizes: list[int] = []  # commands per write to Redis
    send = shared.Batches._send

    def counted(self: shared.Batches) -> None:
        sizes.append(len(self._queue))
        send(self)

    monkeypatch.setattr(shared.Batches, "_send", counted)
    blocking: list[tuple[Any, ...]] = []
    wire = shared.Wire.__call__

    def sent(self: shared.Wire, *args: Any) -> Any:
        blocking.append(args)
        return wire(self, *args)

    monkeypatch.setattr(shared.Wire, "__call__", sent)
    app = _app(redis_url)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            # the first request loads the scripts (a Redis that has not run them answers NOSCRIPT, then gets the text)
            assert (await client.post(f"{PE}/media/upload", json=BODY, headers=AUTH)).status_code == 201
            sizes.clear()
            blocking.clear()
            replies = await asyncio.gather(
                *(client.post(f"{PE}/media/upload", json=BODY, headers=AUTH) for _ in range(50))
            )
    finally:
        app.state.runtime.close()
    assert sorted(r.status_code for r in replies) == [201] * 19 + [429] * 31
    # each request's read of the shared state and its journal entry, and each admitted upload's record (awaited by
    # the handler: ``RedisStore.aput``), several per round trip; nothing went on the blocking Wire
    assert sum(sizes) == 50 + 50 + 19 and max(sizes) > 1 and blocking == []
    remaining = sorted(int(r.headers["X-RateLimit-Remaining"]) for r in replies if r.status_code == 201)
    assert remaining == list(range(19))  # each request its own answer from the batch


async def test_scripts_redis_forgot_are_sent_again_by_their_text(redis_url):
    app = _app(redis_url)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            first = await client.post(f"{PE}/media/upload", json=BODY, headers=AUTH)
            redis.Redis.from_url(redis_url).script_flush()  # as a restarted Redis: no script cached
            second = await client.post(f"{PE}/media/upload", json=BODY, headers=AUTH)
            journal = (await client.get("/_emulator/journal")).json()
    finally:
        app.state.runtime.close()
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.headers["X-RateLimit-Remaining"] == "18"  # the read and the limits (Batches), by the text
    assert len(journal["entries"]) == 2  # the journal entry and the record put (Batches), by the text too


class FakeRedis:
    """A server that answers redis-py's connection set-up (HELLO, CLIENT SETINFO, PING) and hands every other command
    to ``answer``, which may hang up."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.commands: list[list[bytes]] = []
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.listener.getsockname()[1]}/0"

    def answer(self, conn: socket.socket, command: list[bytes]) -> bool:
        """Answer ``command`` (or not); True: hang up."""
        raise NotImplementedError

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                reader = hiredis.Reader()
                while data := conn.recv(65536):
                    reader.feed(data)
                    hung_up = False
                    while (command := reader.gets()) is not False:
                        if command[0].upper() == b"CLIENT":  # redis-py names itself on connecting
                            conn.sendall(b"+OK\r\n")
                        elif command[0].upper() == b"PING":  # and checks the connection's health
                            conn.sendall(b"+PONG\r\n")
                        elif command[0].upper() == b"HELLO":  # and asks for RESP3 (redis-py 8's default)
                            conn.sendall(b"%1\r\n$5\r\nproto\r\n:3\r\n")
                        else:
                            hung_up = self.answer(conn, command) or hung_up
                    if hung_up:
                        break

    def close(self) -> None:
        self.listener.close()


class SilentRedis(FakeRedis):
    """Reads each command, counts it and hangs up without a reply: the command may have run, and the client cannot
    know."""

    def answer(self, conn: socket.socket, command: list[bytes]) -> bool:
        self.commands.append(command)
        return True


@pytest.fixture
def silent() -> Iterator[SilentRedis]:
    server = SilentRedis()
    yield server
    server.close()


def test_a_command_whose_reply_is_lost_is_not_sent_again(silent: SilentRedis):
    client = shared.connect(silent.url)
    wire = shared.Wire(client)
    with pytest.raises(shared.DOWN):
        wire("INCR", "counted")
    with pytest.raises(shared.DOWN):  # the client's own commands (control plane) do not retry either
        client.incr("counted")
    wire.close()
    client.close()
    assert silent.commands == [[b"INCR", b"counted"], [b"INCRBY", b"counted", b"1"]]


async def test_a_batch_whose_replies_are_lost_is_not_sent_again(silent: SilentRedis):
    client = shared.connect(silent.url)
    batches = shared.Batches(client, shared.Wire(client))
    outcomes = await asyncio.gather(*(batches("INCR", f"counted{i}") for i in range(3)), return_exceptions=True)
    batches.close()
    client.close()
    assert all(isinstance(outcome, shared.DOWN) for outcome in outcomes)
    assert sorted(silent.commands) == [[b"INCR", f"counted{i}".encode()] for i in range(3)]


def test_a_loop_closed_with_a_batch_under_way_leaves_the_batches_usable_on_the_next(redis_url):
    client = shared.connect(redis_url)
    batches = shared.Batches(client, shared.Wire(client))

    async def abandon() -> None:
        asyncio.ensure_future(batches("PING"))
        await asyncio.sleep(0)  # the batch goes out; the loop then ends with its reply unread (its task cancelled)

    async def batched(*command: Any) -> Any:
        future = batches.submit(*command)
        assert future is not None  # batched, not sent on the Wire instead
        return await future

    for stage in range(2):  # the loop ends before the batch is sent, then while its reply is awaited
        asyncio.run(abandon() if stage == 0 else _abandon_later(batches))
        try:
            # a fresh connection: the old one's reply is never misread
            assert asyncio.run(batched("ECHO", f"after {stage}")) == f"after {stage}"
        except BaseException:
            batches.close()
            client.close()
            raise
    try:
        assert asyncio.run(batched("PING")) == "PONG"
    finally:
        batches.close()
        client.close()


async def _abandon_later(batches: shared.Batches) -> None:
    asyncio.ensure_future(batches("BLPOP", "never-pushed", "0.5"))  # a reply that takes half a second
    for _ in range(5):
        await asyncio.sleep(0)  # the batch is sent; the loop ends while its reply is awaited


def test_a_loop_closed_without_ending_its_batch_does_not_hold_the_batches(redis_url):
    client = shared.connect(redis_url)
    batches = shared.Batches(client, shared.Wire(client))
    loop = asyncio.new_event_loop()

    async def start() -> None:
        asyncio.ensure_future(batches("BLPOP", "never-pushed", "0.5"))
        for _ in range(5):
            await asyncio.sleep(0)

    loop.run_until_complete(start())
    loop.set_exception_handler(lambda _loop, _context: None)  # its tasks destroyed pending are this test's point
    loop.close()  # its tasks never cancelled: the batch under way never finishes
    del loop, start
    gc.collect()  # destroyed now, within this test

    async def batched() -> Any:
        future = batches.submit("ECHO", "next")
        assert future is not None  # batched on this loop, not sent on the Wire instead
        return await future

    try:
        assert asyncio.run(batched()) == "next"
    finally:
        batches.close()
        client.close()


async def test_commands_go_out_while_earlier_replies_are_still_due(redis_url):
    """Pipelined: a write does not wait for the replies of the one before; replies still reach their commands in
    order."""
    client = shared.connect(redis_url)
    batches = shared.Batches(client, shared.Wire(client))
    try:
        slow = asyncio.ensure_future(batches("BLPOP", "never-pushed", "0.3"))  # its reply takes 0.3 s
        await asyncio.sleep(0.05)  # written
        assert len(batches._due) == 1
        started = asyncio.get_running_loop().time()
        fast = asyncio.ensure_future(batches("ECHO", "second"))
        await asyncio.sleep(0.05)
        assert len(batches._due) == 2 and not batches._queue  # written behind the first, its reply not yet read
        assert await slow is None and await fast == "second"
        assert asyncio.get_running_loop().time() - started < 0.5
    finally:
        batches.close()
        client.close()


async def test_a_write_larger_than_the_socket_takes_at_once_goes_out_whole(redis_url):
    client = shared.connect(redis_url)
    batches = shared.Batches(client, shared.Wire(client))
    values = [f"{i:06d}".encode() * 20_000 for i in range(100)]  # 12 MB in one turn: more than a socket buffer
    try:
        replies = await asyncio.gather(*(batches("ECHO", value) for value in values))
    finally:
        batches.close()
        client.close()
    assert [reply.encode() for reply in replies] == values


async def test_an_overdue_reply_fails_the_commands_due_and_the_next_use_a_new_connection(redis_url, monkeypatch):
    monkeypatch.setattr(shared.Batches, "TIMEOUT", 0.2)
    client = shared.connect(redis_url)
    batches = shared.Batches(client, shared.Wire(client))
    try:
        outcomes = await asyncio.gather(
            batches("BLPOP", "never-pushed", "1"), batches("ECHO", "behind it"), return_exceptions=True
        )
        assert [type(outcome) for outcome in outcomes] == [RedisTimeoutError, RedisTimeoutError]
        assert await batches("ECHO", "next") == "next"  # never the late BLPOP reply
    finally:
        batches.close()
        client.close()


class ChattyRedis(FakeRedis):
    """Answers every command twice (as a broken proxy might): the second reply must never reach the next command."""

    def answer(self, conn: socket.socket, command: list[bytes]) -> bool:
        conn.sendall(b"+" + command[-1] + b"\r\n+EXTRA\r\n")
        return False


async def test_a_reply_no_command_waits_for_drops_the_connection():
    server = ChattyRedis()
    client = shared.connect(server.url)
    batches = shared.Batches(client, shared.Wire(client))
    try:
        assert await batches("ECHO", "first") == "first"
        await asyncio.sleep(0.05)  # the extra reply arrives with nothing due
        assert await batches("ECHO", "second") == "second"  # never "EXTRA"
    finally:
        batches.close()
        client.close()
        server.close()
    assert server.connections == 2
