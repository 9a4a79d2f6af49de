"""State on Redis (``--state redis://HOST:PORT/DB``): several processes or replicas act as one emulator.

Three pieces replace their in-process counterparts behind the same interfaces, so providers never know which store
they run on:

- ``RedisStore``: the records of every provider, serialised exactly as ``SqliteStore`` writes them
  (``core.records``), one Redis hash per namespace plus a sorted set that keeps the order records were first put
  in (listings page in that order, as they do in memory); the presign secret and the boot count. Putting back a
  record read earlier is a compare-and-set: if another process changed it meanwhile, the put is refused (409).
- ``SharedClock``: the virtual clock's offset and frozen instant live in one Redis hash; every change is one Lua
  script (atomic, so two processes advancing at once both count), and each request reads the hash once
  (``Sync.refresh``) before it looks at the time, so ``POST /_emulator/clock/advance`` on one process is seen by
  the next request on any.
- ``SharedRateLimiter``: each limit of each key is a sorted set of admission times; one Lua script drops the
  expired ones, checks every limit and admits into all of them, so a key's documented limits hold exactly when its
  requests are spread over processes. A request whose key this process already knows has its limits taken by the
  same script that reads the clock (``Sync``): one round trip for both.

- ``SharedFaultBook`` and ``SharedKeyRing``: fault rules (and their remaining counts, taken by one script) and the
  keys created or revoked through the control plane; each process keeps a copy, reloaded when a version counter
  moves, which the same once-per-request read (``Sync``) checks.
- ``SharedJournal``: the request journal of every process, one capped sorted set, paged as in memory.

The commands every request makes go out on a connection of their own, awaited and pipelined with those of the
requests waiting at once (``Batches``): the shared-state read, the records a handler reads or writes (the store
seam's ``aget``/``aput``/``adelete``; its plain calls, made outside the event loop, go out on the ``Wire``), and the
journal entry, which a response's last bytes wait for (``SharedJournal.written``). Each command is sent at most once.

Redis being unreachable raises ``Unavailable`` (a 503 in the provider's own envelope, with ``Retry-After``); the
client reconnects on the next call, so service resumes by itself when Redis returns. Every write is one command, one
MULTI or one script: a failure leaves nothing half-written.

All keys start with ``upload-emulator:``; choose a database (the URL's ``/DB``) per emulator that should be separate.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import itertools
import json
import math
import os
import secrets
import select
import socket
import ssl
import threading
import uuid
import weakref
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import hiredis
import orjson
import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from starlette.types import Scope

from emulator.core import records
from emulator.core.auth import CreatedKey, KeyRing, fingerprint
from emulator.core.clock import Clock
from emulator.core.errors import Conflict, RateLimited, Unavailable
from emulator.core.faults import FaultBook, FaultRule, rule_from
from emulator.core.journal import CAPACITY, MAX_BYTES, URL_KEPT, Entry, Journal, _clip
from emulator.core.ratelimit import Limit, Quota, RateLimiter, _headers
from emulator.core.redis_internals import connection_socket

# redis-py's annotations describe its sync and async clients at once (every command "returns" an awaitable or a
# value), so the client is typed loosely here rather than cast at each of its calls
RedisClient = Any
PREFIX = "upload-emulator:"
SCHEMES = ("redis", "rediss", "unix")
RETRY_AFTER = 1  # seconds a client is told to wait while Redis is away (reconnecting is attempted per request)
DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
# a record operation as the commands it sends (``RedisStore._drive``): each step a script with (keys, arguments), or
# None with a plain command's arguments; the step's reply is sent back in, the operation's result is returned
Steps = Generator[tuple[Script | None, tuple[Any, ...]], Any, Any]


def check_url(url: str) -> str:
    """``url`` if it names a Redis server, else a ``ValueError`` saying the accepted forms (a usage error)."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or (parts.scheme != "unix" and not parts.hostname):
        # the scheme only: a URL may carry a password, which never goes into a message
        raise ValueError(
            f"--state: a {parts.scheme or 'schemeless'} URL; expected redis://HOST:PORT/DB (or rediss://, unix://)"
        )
    return url


def connect(url: str) -> RedisClient:
    """A client for ``url`` with short timeouts: a request waits at most about a second for an absent Redis.

    Without retries: redis-py's default sends a command again after a connection error or a timeout, also one that
    Redis may already have run (a script that took a rate limit, advanced the clock or wrote a journal entry would
    then count twice). A connection Redis closed meanwhile is found by the pool before it is used (it checks a
    connection for pending data at every checkout) and replaced; an error after a command was sent answers 503."""
    return redis.Redis.from_url(
        check_url(url),
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
        health_check_interval=30,
        decode_responses=True,
        retry=Retry(NoBackoff(), 0),
    )


class Wire:
    """One connection of its own for the commands every request makes (``Sync``'s script, record gets and puts,
    journal entries): each is sent and its reply read straight on the connection, without the client's per-command
    machinery (pool checkout and release, retry wrapper, metrics hooks), which cost three times the round trip
    itself in CPU (27 µs against 8 µs per command on the bench machine; bench/README.md "Scale"). redis-py has no
    lighter call for one command; ``Connection.send_packed_command`` and ``read_response`` are its public
    connection API. Commands are packed by hiredis directly (arguments are str, bytes, int or float): redis-py's
    packer, which first rewraps every argument, was a twelfth of a request's CPU. One command at a time (a lock: a
    handler may run in a worker thread).

    A command is sent at most once. An error before it is sent (connecting) leaves nothing run; an error after it
    (the reply lost, a timeout) may leave it run, so it is never sent again: the caller answers 503. The connection
    is checked before each command, as redis-py's pool checks one at every checkout (a poll, no round trip), so a
    Redis restarted meanwhile costs no request."""

    def __init__(self, client: RedisClient) -> None:
        pool = client.connection_pool
        self._conn = pool.connection_class(**pool.connection_kwargs)
        self._lock = threading.Lock()

    def __call__(self, *args: Any) -> Any:
        """The reply to one command; ``DOWN`` errors as redis-py raises them, Redis's error replies as exceptions."""
        with self._lock:
            conn = self._conn
            if _stale(conn):
                conn.disconnect()  # reconnected by the send below
            conn.send_packed_command([hiredis.pack_command(args)], check_health=False)
            return conn.read_response()

    def run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a registered script by its digest; the first time after Redis lost its script cache (a restart),
        by its text (NOSCRIPT means it did not run, so sending it again is safe)."""
        try:
            return self("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return self("EVAL", script.script, len(keys), *keys, *args)

    def close(self) -> None:
        with self._lock:
            self._conn.disconnect()


def _stale(conn: Any) -> bool:
    """Whether a connection with nothing due on it is no longer usable: something to read on it (Redis closed it,
    as when it was restarted) or an error finding out (redis-py raises "closed by server" without disconnecting)."""
    try:
        return bool(conn.can_read())  # connects when not connected
    except DOWN:
        return True


class Batches:
    """Commands awaited on an event loop, pipelined to Redis: the commands every request submitted while the loop ran
    its ready callbacks go out together in one write at the loop's next turn, without waiting for the replies of
    those sent before, and replies are read as they arrive and handed to their commands in order. A request waiting
    for its reply leaves the loop free for the others, and Redis works on one write while the process works on the
    next (with one batch at a time, each waited for the other: 60 % of a core was the most this process used).

    Written by hand: redis-py offers no auto-pipelining (redis/redis-py#3767, open), and its asyncio client binds a
    connection to one event loop and costs more CPU per command than this. The connection is made and set up
    (AUTH, SELECT) by redis-py, then its socket is watched by the loop (``add_reader``) while replies are due and
    read without blocking, parsed by hiredis (the parser redis-py itself uses). It serves whichever loop submits
    while nothing is due: loops of other threads take turns (one that submits while another loop's commands are due
    sends on the ``Wire`` instead). A TLS connection (``rediss://``) cannot be used that way: there each command is
    sent at once on the ``Wire``, as before.

    As with ``Wire``, a command is sent at most once: a connection lost after commands went out fails every command
    still due on it (``DOWN``: a 503), never sends them again; a command waits at most ``TIMEOUT`` for its reply."""

    TIMEOUT = 1.0  # seconds, as the client's socket timeout

    def __init__(self, client: RedisClient, wire: Wire) -> None:
        pool = client.connection_pool
        self._make = functools.partial(pool.connection_class, **pool.connection_kwargs)
        self._decode = "utf-8" if pool.connection_kwargs.get("decode_responses") else None
        self.wire = wire  # for a TLS connection, and for a loop other than the one commands are due on
        self._conn: Any = None  # the redis-py connection whose socket is used
        self._sock: socket.socket | None = None
        self._reader: Any = None
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []  # submitted, to go out at the next turn
        self._due: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()  # sent: (reply, when)
        self._out = bytearray()  # written, not yet taken by the socket (its buffer was full)
        self._writing = False  # whether the loop watches the socket for room to write the rest
        self._reading = False  # whether it watches the socket for replies
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop that has commands queued or due, if any
        self._timer: asyncio.TimerHandle | None = None
        # guards which loop owns the connection; reentrant: a future's callbacks may submit again
        self._owner = threading.RLock()
        self._tls = False

    async def __call__(self, *args: Any) -> Any:
        future = self.submit(*args)
        return self.wire(*args) if future is None else await future

    def submit(self, *args: Any) -> asyncio.Future[Any] | None:
        """Queue a command for the running loop's next write: the future of its reply. None when it cannot be
        batched (TLS, or commands due for another loop: another thread's server); then send it on the Wire."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # (only this loop's thread releases the connection this loop owns)
            with self._owner:  # loops of other threads take turns, never share the connection
                if self._loop is not None and self._loop.is_closed():  # it closed with commands queued or due
                    self._drop()  # replies may be due on the connection
                    self._loop, self._queue = None, []
                    self._due.clear()
                if self._loop is None:  # nothing queued or due: this loop takes the connection
                    if self._tls or self._socket() is None:  # DOWN when Redis is away: nothing was sent
                        return None
                    self._loop = loop
                else:
                    return None
        if not self._queue:  # the first this turn: the write goes out at the loop's next turn
            loop.call_soon(self._send)
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((args, future))
        return future

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """``Wire.run``, awaited."""
        try:
            return await self("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self("EVAL", script.script, len(keys), *keys, *args)

    def _socket(self) -> socket.socket | None:
        """The connected socket (connecting, or reconnecting after Redis closed it); None with TLS. Anything to read
        on it while no reply is due means Redis closed it."""
        sock = self._sock
        if sock is not None and not self._due and select.select([sock], [], [], 0)[0]:
            self._drop()  # reconnected below
            sock = None
        if sock is None:
            conn = self._make()
            conn.connect()  # DOWN when Redis is away: nothing was sent
            sock = connection_socket(conn)  # connected and authenticated by redis-py; nothing else reads it now
            if sock is None or isinstance(sock, ssl.SSLSocket):
                conn.disconnect()
                self._tls = True
                return None
            sock.setblocking(False)
            self._conn, self._sock, self._reader = conn, sock, hiredis.Reader(encoding=self._decode)
        return sock

    def _send(self) -> None:
        """Write every command queued since the last turn (a callback on the owning loop)."""
        loop = self._loop
        batch, self._queue = self._queue, []
        if loop is None or not batch:
            return
        try:
            sock = self._sock or self._socket()  # a new connection when the last one was lost
        except DOWN as exc:  # nothing was sent: each command fails (a 503), none has run
            sock, lost = None, exc
        else:
            lost = RedisConnectionError("Redis could not be used here")
        if sock is None:
            for _, future in batch:
                if not future.done():
                    future.set_exception(lost)
            self._release_if_idle()
            return
        if not self._reading:  # the loop watches for replies while this loop owns the connection
            loop.add_reader(sock, self._readable)
            self._reading = True
        now = loop.time()
        self._due.extend((future, now) for _, future in batch)
        self._out += b"".join([hiredis.pack_command(args) for args, _ in batch])
        if self._timer is None:
            self._timer = loop.call_at(now + self.TIMEOUT, self._expire)
        self._write()

    def _write(self) -> None:
        assert self._sock is not None and self._loop is not None
        try:
            sent = self._sock.send(self._out)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._fail(exc)
            return
        del self._out[:sent]
        if self._out and not self._writing:  # the rest when the socket takes it
            self._loop.add_writer(self._sock, self._write)
        elif not self._out and self._writing:
            self._loop.remove_writer(self._sock)
        self._writing = bool(self._out)

    def _readable(self) -> None:
        assert self._sock is not None
        try:
            chunk = self._sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            self._fail(exc)
            return
        if not chunk:
            self._fail(RedisConnectionError("Connection closed by server."))
            return
        self._reader.feed(chunk)
        while self._due and (reply := self._reader.gets()) is not False:
            future, _ = self._due.popleft()
            if future.done():  # cancelled: its request went away
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(_error(reply))
            else:
                future.set_result(reply)
        if not self._due and self._reader.has_data():  # a reply nothing asked for: the next could be taken for it
            self._fail(RedisConnectionError("Redis sent a reply no command was waiting for"))
            return
        self._release_if_idle()

    def _expire(self) -> None:
        """A reply overdue (``TIMEOUT`` after its command was sent) fails every command due: the connection is
        dropped, so a late reply is never taken for another command's."""
        assert self._loop is not None
        self._timer = None
        if not self._due:
            return
        oldest = self._due[0][1]
        if self._loop.time() >= oldest + self.TIMEOUT:
            self._fail(RedisTimeoutError("Timeout reading from Redis"))
        else:
            self._timer = self._loop.call_at(oldest + self.TIMEOUT, self._expire)

    def _fail(self, exc: BaseException) -> None:
        """The connection is lost: every command due may have run, so each fails (``DOWN``) and none is sent again.
        Commands queued and not yet written go out on a new connection at the loop's next turn."""
        due, self._due = self._due, collections.deque()
        self._drop()
        for future, _ in due:
            if not future.done():
                future.set_exception(exc)
        self._release_if_idle()

    def _release_if_idle(self) -> None:
        with self._owner:
            if self._due or self._queue:
                return
            self._unwatch()
            self._loop = None

    def _unwatch(self) -> None:
        """The owning loop stops watching the socket and the oldest reply's deadline."""
        loop, sock = self._loop, self._sock
        if sock is not None and loop is not None and not loop.is_closed():
            if self._reading:
                loop.remove_reader(sock)
            if self._writing:
                loop.remove_writer(sock)
        self._writing = self._reading = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _drop(self) -> None:
        self._unwatch()
        if self._conn is not None:
            self._conn.disconnect()
        self._conn = self._sock = self._reader = None
        self._out.clear()

    def close(self) -> None:
        self._drop()


def _error(reply: Exception) -> redis.ResponseError:
    """An error reply as redis-py raises it: a missing script as ``NoScriptError``, anything else as itself."""
    text = str(reply)
    return NoScriptError(text) if text.startswith("NOSCRIPT") else redis.ResponseError(text)


def unavailable(exc: BaseException) -> Unavailable:
    # the exception's text names host and port only (a URL's password is never in redis-py's connection errors)
    return Unavailable(
        f"The service is temporarily unavailable (state store unreachable: {type(exc).__name__}). "
        f"Retry after {RETRY_AFTER} seconds.",
        retry_after=RETRY_AFTER,
        headers={"Retry-After": str(RETRY_AFTER)},
    )


def problem(client: RedisClient) -> str | None:
    """Why the shared state cannot be used right now (for ``/_emulator/health``), or None when Redis answers."""
    try:
        client.ping()
    except DOWN as exc:
        return f"state store unreachable ({type(exc).__name__}: {exc})"
    return None


# put: store the body; a record new to its namespace gets the next position in the namespace's order. With ARGV[4]
# = '1', only if the stored body is still ARGV[5] (the one this process read): else 0, and nothing is written
_PUT = """
if ARGV[4] == '1' and redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[5] then return 0 end
if redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1])
end
redis.call('SADD', KEYS[4], ARGV[3])
return 1
"""


# a record's removal: KEYS its namespace's hash and order set, ARGV its id (one script: never half-removed)
_DELETE = """
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""

MERGES = 8  # attempts to put a record other processes keep changing (each merges their change in)
_MISSING, _CONFLICT = object(), object()


def merge(base: str, ours: str, theirs: str) -> str | None:
    """Three-way merge of a record's stored JSON: ``ours`` and ``theirs`` both changed ``base``. Fields (and the
    entries of mappings, such as an upload's parts by number) changed on one side only are taken from that side,
    and a mapping both sides only added to (two parts of one upload) gets both additions. Anything else changed on
    both sides is a conflict (None): two completions of one upload both change its state, and a part stored while
    a completion took the parts is refused rather than kept beside a completed upload. Lists are merged whole."""
    merged = _merge(json.loads(base), json.loads(ours), json.loads(theirs))
    return None if merged is _CONFLICT else json.dumps(merged, ensure_ascii=True, separators=(",", ":"))


def _merge(base: Any, ours: Any, theirs: Any) -> Any:
    if ours == theirs or theirs == base:
        return ours
    if ours == base:
        return theirs
    if not all(isinstance(v, dict) for v in (base, ours, theirs)):
        return _CONFLICT
    if any(records.ITEMS in v for v in (base, ours, theirs)):  # a mapping with keys other than strings
        # an empty mapping is stored as {} (records.dumps sees no key to tell it by): it is that mapping, empty. Taken
        # for a conflict, it refused the first parts two processes added to one upload at once (the old flaky 409)
        base, ours, theirs = ({records.ITEMS: []} if v == {} else v for v in (base, ours, theirs))
        if not all(set(v) == {records.ITEMS} for v in (base, ours, theirs)):
            return _CONFLICT
        merged = _merge(*({json.dumps(k): item for k, item in v[records.ITEMS]} for v in (base, ours, theirs)))
        if merged is _CONFLICT:
            return _CONFLICT
        return {records.ITEMS: [[json.loads(k), item] for k, item in merged.items()]}
    if not base.get(records.TYPE) == ours.get(records.TYPE) == theirs.get(records.TYPE):
        return _CONFLICT
    if records.TYPE not in base and (set(base) - set(ours) or set(base) - set(theirs)):
        return _CONFLICT  # a mapping both changed and one emptied or shrank (a completion takes the parts): no merge
    out = {}
    for key in dict.fromkeys([*ours, *theirs, *base]):
        value = _merge(base.get(key, _MISSING), ours.get(key, _MISSING), theirs.get(key, _MISSING))
        if value is _CONFLICT:
            return _CONFLICT
        if value is not _MISSING:
            out[key] = value
    return out


class RedisStore:
    """The ``Store`` seam on Redis. A handler's change reaches the other processes when it ``put``s the record,
    exactly as with ``SqliteStore``.

    Within one process, handlers share live records as they do in memory (a flag set in place, such as an upload
    being completed, is seen by a concurrent handler): each record decoded is kept with the text it was decoded
    from, and ``get`` hands out that same object for as long as Redis holds that same text. A record another
    process has put since is decoded afresh. The cache holds what Redis holds, no more (deletes and resets drop it),
    and at most ``LIVE`` records: a record another process deleted leaves it only when read again, or when it is
    among the oldest held.

    Every record object this process decoded or put remembers the text it came from (``_origins``), and putting it
    back is a compare-and-set against that text, also when the cache has moved on to a newer copy meanwhile (a
    handler held the object across an await while another request of this process read the record afresh): an
    object never overwrites unseen changes unconditionally.
    """

    LIVE = 10_000  # live records held per process (``_keep``)

    def __init__(self, client: RedisClient, root: Path | None = None) -> None:
        self.client, self._root, self.wire = client, root, Wire(client)
        self._put = client.register_script(_PUT)
        self._delete_script = client.register_script(_DELETE)
        self.batches = Batches(client, self.wire)
        # (namespace, id) → (stored text, live record), oldest first: at most LIVE records (``_keep``)
        self._live: dict[tuple[str, str], tuple[str, Any]] = {}
        # id(object) → (weak reference to it, the stored text it was decoded from or last put as); records are
        # dataclasses, which compare by value and so cannot key a WeakKeyDictionary
        self._origins: dict[int, tuple[weakref.ref[Any], str]] = {}

    def _note(self, record: Any, body: str) -> None:
        key = id(record)
        try:
            ref = weakref.ref(record, lambda gone: self._drop_origin(key, gone))
        except TypeError:  # a plain value (a string): not shared in place, put as it is
            return
        self._origins[key] = (ref, body)

    def _drop_origin(self, key: int, gone: weakref.ref[Any]) -> None:
        known = self._origins.get(key)
        if known is not None and known[0] is gone:
            del self._origins[key]

    def _origin(self, record: Any) -> str | None:
        known = self._origins.get(id(record))
        return known[1] if known is not None and known[0]() is record else None

    def _decode(self, namespace: str, id: str, body: str) -> Any:
        known = self._live.get((namespace, id))
        if known is not None and known[0] == body:
            return known[1]
        record = records.loads(body, self._root)
        self._keep(namespace, id, body, record)
        return record

    def _keep(self, namespace: str, id: str, body: str, record: Any) -> None:
        """Hold ``record`` as the live copy of ``body``. The cache is bounded: records other processes delete are
        never read here again, so past ``LIVE`` the copies held longest go first (a handler still holding one
        keeps it, and its put is still compared against the text it came from: ``_origins``)."""
        live = self._live
        live.pop((namespace, id), None)  # re-inserted last: the newest
        live[(namespace, id)] = (body, record)
        while len(live) > self.LIVE:
            del live[next(iter(live))]
        self._note(record, body)

    def forget_all(self) -> None:
        """Drop the live copies (records cleared elsewhere): the next reads decode what Redis holds."""
        self._live.clear()

    def _forget(self, namespace: str, id: str) -> None:
        self._live.pop((namespace, id), None)

    @staticmethod
    def _keys(namespace: str) -> tuple[str, str]:
        return f"{PREFIX}records:{namespace}", f"{PREFIX}order:{namespace}"

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except DOWN as exc:
            raise unavailable(exc) from None

    # Each record operation is written once, as a generator of the commands it sends (a ``Step``: a script with its
    # keys and arguments, or a plain command) that is sent each reply in turn, and driven two ways: ``_drive`` on
    # the ``Wire`` (the store seam's plain calls, which block their thread for each round trip) and ``_adrive`` on
    # ``Batches`` (``aget``/``aput``/``adelete``, awaited by handlers on the event loop, which serves other requests
    # meanwhile and sends their commands in the same round trip).
    def _drive(self, steps: Steps) -> Any:
        reply = None
        try:
            while True:
                script, args = steps.send(reply)
                reply = self._call(self.wire, *args) if script is None else self._call(self.wire.run, script, *args)
        except StopIteration as done:
            return done.value

    async def _adrive(self, steps: Steps) -> Any:
        reply = None
        try:
            while True:
                script, args = steps.send(reply)
                try:
                    reply = await (self.batches(*args) if script is None else self.batches.run(script, *args))
                except DOWN as exc:
                    raise unavailable(exc) from None
        except StopIteration as done:
            return done.value

    def get(self, namespace: str, id: str) -> Any | None:
        return self._drive(self._get(namespace, id))

    async def aget(self, namespace: str, id: str) -> Any | None:
        return await self._adrive(self._get(namespace, id))

    def _get(self, namespace: str, id: str) -> Steps:
        body = yield None, ("HGET", self._keys(namespace)[0], id)
        if body is None:
            self._forget(namespace, id)
            return None
        return self._decode(namespace, id, body)

    def put(self, namespace: str, id: str, record: Any) -> None:
        """Store ``record``. When it is the record this process read, only if no other process has changed it
        since: else ``Conflict`` (409), and nothing is written, so two processes completing one upload at the same
        moment cannot both succeed, and a change is never silently lost."""
        self._drive(self._put_steps(namespace, id, record))

    async def aput(self, namespace: str, id: str, record: Any) -> None:
        """``put``, awaited."""
        await self._adrive(self._put_steps(namespace, id, record))

    def _put_steps(self, namespace: str, id: str, record: Any) -> Steps:
        body = records.dumps(record, self._root)
        table, order = self._keys(namespace)
        known = self._live.get((namespace, id))
        read = known[0] if known is not None and known[1] is record else self._origin(record)
        for _ in range(MERGES):
            written = yield (
                self._put,
                (
                    [table, order, f"{PREFIX}sequence", f"{PREFIX}namespaces"],
                    [id, body, namespace, "0" if read is None else "1", read or ""],
                ),
            )
            if written:
                break
            # changed meanwhile: keep both changes when they touch different fields (two parts of one upload)
            current = yield None, ("HGET", table, id)
            merged = None if current is None or read is None else merge(read, body, current)
            if merged is None:
                self._forget(namespace, id)
                raise Conflict(
                    "This resource was changed by another request at the same moment; nothing was "
                    "changed by this one. Read it again, then retry."
                )
            read, body = current, merged
            fresh = records.loads(body, self._root)
            if type(fresh) is type(record) and hasattr(record, "__dict__"):
                # the merge lands in the live object itself: a concurrent handler of this process that holds it
                # (another part of the same upload) then puts the merged record, never a copy without the other
                # process's change (which would be written over it, and make the next merge a conflict)
                record.__dict__.update(fresh.__dict__)
            else:
                record = fresh
        else:
            raise Conflict("This resource is being changed by many requests at the same moment; retry.")
        self._keep(namespace, id, body, record)

    def delete(self, namespace: str, id: str) -> None:
        self._drive(self._delete(namespace, id))

    async def adelete(self, namespace: str, id: str) -> None:
        await self._adrive(self._delete(namespace, id))

    def _delete(self, namespace: str, id: str) -> Steps:
        table, order = self._keys(namespace)
        yield self._delete_script, ([table, order], [id])
        self._forget(namespace, id)

    def items(self, namespace: str) -> list[tuple[str, Any]]:
        table, order = self._keys(namespace)

        def run() -> list[tuple[str, str | None]]:
            with self.client.pipeline(transaction=True) as pipe:
                ids, bodies = pipe.zrange(order, 0, -1).hgetall(table).execute()
            return [(id, bodies.get(id)) for id in ids]

        found = [(id, self._decode(namespace, id, body)) for id, body in self._call(run) if body is not None]
        present = {id for id, _ in found}  # records other processes deleted: not kept here either
        for gone in [key for key in self._live if key[0] == namespace and key[1] not in present]:
            del self._live[gone]
        return found

    def values(self, namespace: str) -> list[Any]:
        return [record for _, record in self.items(namespace)]

    def namespaces(self, prefix: str = "") -> list[str]:
        names: set[str] = self._call(self.client.smembers, f"{PREFIX}namespaces")
        return sorted(name for name in names if name.startswith(prefix))

    def clear(self, prefix: str = "") -> None:
        def run() -> None:
            names = [n for n in self.client.smembers(f"{PREFIX}namespaces") if n.startswith(prefix)]
            if names:
                with self.client.pipeline(transaction=True) as pipe:
                    for name in names:
                        pipe.delete(*self._keys(name))
                    pipe.srem(f"{PREFIX}namespaces", *names)
                    pipe.hincrby(SharedClock.KEY, "store", 1).execute()  # other processes drop their copies

        self._call(run)
        for key in [key for key in self._live if key[0].startswith(prefix)]:
            del self._live[key]

    def secret(self, mine: bytes | None = None) -> bytes:
        """The presign secret, made once per Redis database (the first process to start sets it, or after Redis lost
        its data, the first process to notice, with the secret it had: its URLs stay good), so a URL signed by one
        process verifies on every other. It sits in the hash each request reads (``Sync``)."""
        offer = (mine or secrets.token_bytes(32)).hex()
        self._call(self.client.hsetnx, SharedClock.KEY, "secret", offer)
        return bytes.fromhex(self._call(self.client.hget, SharedClock.KEY, "secret"))

    def boot(self) -> int:
        """Count this start (every process of every replica), so seeded ids of later processes do not repeat."""
        return int(self._call(self.client.incr, f"{PREFIX}boots"))

    def close(self) -> None:
        self.wire.close()
        self.client.close()


# the clock: op, wall time (the caller's), argument; offset and frozen instant are kept as %.17g text (exact doubles)
_CLOCK = """
local key, op, wall, arg = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local offset = tonumber(redis.call('HGET', key, 'offset') or '0')
local frozen = redis.call('HGET', key, 'frozen')
if frozen then frozen = tonumber(frozen) end
if op == 'advance' then
  if frozen then frozen = frozen + arg else offset = offset + arg end
elseif op == 'freeze' then
  if arg then frozen = arg elseif not frozen then frozen = wall + offset end
elseif op == 'resume' then
  if frozen then offset = frozen - wall; frozen = nil end
elseif op == 'set' then
  if frozen then frozen = arg else offset = arg - wall end
elseif op == 'reset' then
  offset, frozen = 0, nil
end
redis.call('HSET', key, 'offset', string.format('%.17g', offset))
if frozen then
  redis.call('HSET', key, 'frozen', string.format('%.17g', frozen))
else
  redis.call('HDEL', key, 'frozen')
end
return {string.format('%.17g', offset), frozen and string.format('%.17g', frozen) or false}
"""


class SharedClock(Clock):
    """The virtual clock, shared: changes go to Redis atomically; ``Sync.refresh`` reads the shared state (once per
    request) and ``_apply``s it, and ``now`` answers from what was read, at no further cost."""

    KEY = f"{PREFIX}shared"  # one hash with the tables' versions (VERSIONS), so a request reads both at once

    def __init__(self, client: RedisClient) -> None:
        super().__init__()
        self.client = client
        self._script = client.register_script(_CLOCK)

    def _apply(self, offset: str | None, frozen: str | None) -> None:
        with self._lock:
            self._offset = float(offset) if offset is not None else 0.0
            self._frozen_at = float(frozen) if frozen is not None else None

    def _run(self, op: str, arg: float | None = None) -> None:
        try:
            offset, frozen = self._script(
                keys=[self.KEY], args=[op, repr(self._wall()), "" if arg is None else repr(float(arg))]
            )
        except DOWN as exc:
            raise unavailable(exc) from None
        self._apply(offset, frozen)

    def freeze(self, at: float | None = None) -> None:
        self._run("freeze", at)

    def resume(self) -> None:
        self._run("resume")

    def advance(self, seconds: float) -> None:
        self._run("advance", seconds)

    def set(self, at: float) -> None:
        self._run("set", at)

    def reset(self) -> None:
        self._run("reset")


# rate limits: each limit of a key is a sorted set of admission times. ``take``: the sets are KEYS[first], ... (to
# the last key), the limit and window of each are ARGV[arg], ARGV[arg + 1], ... Returns {0, index of the limit that
# refuses, wait} or {1, count, oldest admission} per limit. Each set expires an hour (real time) after its window
# would have emptied, so a key that stops calling leaves nothing behind.
_LIMITS = """
local function take(first, arg, now, member)
  local counts, worst, worst_wait = {}, nil, nil
  for i = first, #KEYS do
    local at = arg + 2 * (i - first)
    local limit, window = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', string.format('%.17g', now - window))
    local count = redis.call('ZCARD', KEYS[i])
    counts[i] = count
    if count >= limit then
      local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
      local wait = window
      if oldest[2] then wait = tonumber(oldest[2]) + window - now end
      if worst_wait == nil or wait > worst_wait then worst, worst_wait = i - first + 1, wait end
    end
  end
  if worst then return {0, worst, string.format('%.17g', worst_wait)} end
  local out = {1}
  for i = first, #KEYS do
    local window = tonumber(ARGV[arg + 2 * (i - first) + 1])
    redis.call('ZADD', KEYS[i], string.format('%.17g', now), member)
    redis.call('PEXPIRE', KEYS[i], math.ceil(window * 1000) + 3600000)
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    out[#out + 1] = counts[i] + 1
    out[#out + 1] = oldest[2]
  end
  return out
end
"""
# KEYS the limits' sets; ARGV now, member, then limit and window per key
_TAKE = _LIMITS + "return take(1, 3, tonumber(ARGV[1]), ARGV[2])"
# what a request reads first (``Sync.refresh``): KEYS[1] the shared hash (clock, versions, secret), then the sets of
# the limits the request is to be counted against, if any; ARGV wall time, the faults' and the keys' versions this
# process holds, member, then limit and window per set. Returns the hash's fields, and, when there are limits and
# both versions are still those (the process authenticated the key against current keys, and no fault rule can
# intervene), the limits taken on the shared clock: one round trip instead of two
_BEGIN = (
    _LIMITS
    + """
local fields = redis.call('HMGET', KEYS[1], 'offset', 'frozen', 'faults', 'keys', 'store', 'secret')
if #KEYS == 1 or (fields[3] or '') ~= ARGV[2] or (fields[4] or '') ~= ARGV[3] then return {fields} end
local now = tonumber(ARGV[1]) + tonumber(fields[1] or '0')
if fields[2] then now = tonumber(fields[2]) end
return {fields, take(2, 5, now, ARGV[4])}
"""
)


class SharedRateLimiter(RateLimiter):
    """Sliding logs in Redis sorted sets, admitted by one script: exact across processes, on the shared clock."""

    def __init__(self, client: RedisClient, wire: Wire | None = None) -> None:
        super().__init__()
        self.client, self.wire = client, wire or Wire(client)
        self._script = client.register_script(_TAKE)
        # each admission's member in the sorted sets, unique across processes (and forks): a random prefix per
        # limiter, the process id and a count; a uuid4 per request was a getrandom system call, ~3 % of a request's
        # CPU behind uvicorn on the bench machine
        self._prefix, self._admissions = uuid.uuid4().hex, itertools.count()

    @staticmethod
    def _key(bucket: str, name: str) -> str:
        return f"{PREFIX}limits:{bucket}\x00{name}"

    def reset(self, prefix: str | None = None) -> None:
        pattern = f"{PREFIX}limits:{_glob_escape(prefix or '')}*"
        try:
            doomed = list(self.client.scan_iter(match=pattern, count=500))
            if doomed:
                self.client.delete(*doomed)
        except DOWN as exc:
            raise unavailable(exc) from None

    def take(self, bucket: str, limits: Sequence[Limit], now: float) -> Quota:
        if not limits:
            return Quota(0, 0, 0)
        keys, args = self.arguments(bucket, limits)
        try:
            answer = self.wire.run(self._script, keys, [repr(now), *args])
        except DOWN as exc:
            raise unavailable(exc) from None
        return self.quota(limits, now, answer)

    def arguments(self, bucket: str, limits: Sequence[Limit]) -> tuple[list[str], list[str | int]]:
        """The script's keys (a set per limit) and arguments (member, then limit and window per set)."""
        args: list[str | int] = [f"{self._prefix}:{os.getpid()}:{next(self._admissions)}"]
        for limit in limits:
            args += [limit.limit, repr(float(limit.window))]
        return [self._key(bucket, limit.name) for limit in limits], args

    @staticmethod
    def quota(limits: Sequence[Limit], now: float, answer: list[Any]) -> Quota:
        """What the script's answer means: the headers' figures, or ``RateLimited`` when a limit refused."""
        if answer[0] == 0:
            limit, wait = limits[int(answer[1]) - 1], float(answer[2])
            retry_after = max(1, math.ceil(wait))
            raise RateLimited(
                f"Rate limit exceeded. Retry after {retry_after} seconds.",
                retry_after=retry_after,
                headers=_headers(Quota(limit.limit, 0, math.ceil(now + wait), retry_after)),
            )
        tightest: tuple[int, int, int, float] | None = None
        for i, limit in enumerate(limits):
            count, oldest = int(answer[1 + 2 * i]), float(answer[2 + 2 * i])
            frees_at = oldest + limit.window
            figures = (limit.limit - count, math.ceil(frees_at), limit.limit, frees_at)
            if tightest is None or figures[:2] < tightest[:2]:
                tightest = figures
        assert tightest is not None
        remaining, reset, most, frees_at = tightest
        return Quota(most, remaining, reset, frees_at=frees_at)


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


VERSIONS = SharedClock.KEY  # hash: a counter per shared table (faults, keys, store), bumped on every change to it


# a fault rule's use, counted atomically: KEYS counts hash; ARGV rule id, after, times (-1: always). Returns 1 when
# the rule fires, 0 when this request is let through (``after``), -1 when the rule is used up
_FAULT = """
local times = tonumber(ARGV[3])
local hits = tonumber(redis.call('HGET', KEYS[1], ARGV[1] .. ':hits') or '0')
if times >= 0 and hits >= times then return -1 end
if redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':seen', 1) <= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':hits', 1)
return 1
"""


class SharedFaultBook(FaultBook):
    """Fault rules in Redis: each process keeps a copy of the rules, reloaded when their version changes (checked
    once per request, ``Sync``); a rule's remaining count is one counter in Redis, taken by one script, so
    ``times`` is exact across processes."""

    RULES, COUNTS, IDS = f"{PREFIX}faults:rules", f"{PREFIX}faults:counts", f"{PREFIX}faults:ids"

    def __init__(self, client: RedisClient) -> None:
        super().__init__()
        self.client, self.version = client, cast(str | None, None)
        self._take = client.register_script(_FAULT)

    def reload(self, version: str | None = None) -> None:
        try:
            stored, counts = self._read()
        except DOWN as exc:
            raise unavailable(exc) from None
        rules = []
        for rule_id, text in sorted(stored.items(), key=lambda item: int(item[0].rpartition("_")[2])):
            data = json.loads(text)
            rule = rule_from(data["spec"], rule_id, data["key_id"])
            rule.hits, rule.seen = int(counts.get(f"{rule_id}:hits", 0)), int(counts.get(f"{rule_id}:seen", 0))
            rules.append(rule)
        with self._lock:
            self._rules, self.version = rules, version if version is not None else self.version

    def _read(self) -> tuple[dict[str, str], dict[str, str]]:
        with self.client.pipeline(transaction=True) as pipe:
            stored, counts = pipe.hgetall(self.RULES).hgetall(self.COUNTS).execute()
        return stored, counts

    def _changed(self, change: Any) -> None:
        try:
            with self.client.pipeline(transaction=True) as pipe:
                change(pipe)
                pipe.hincrby(VERSIONS, "faults", 1).execute()
        except DOWN as exc:
            raise unavailable(exc) from None
        self.reload()

    def add(self, spec: dict[str, Any], key_id: str | None) -> FaultRule:
        try:
            rule_id = f"fault_{self.client.incr(self.IDS)}"
        except DOWN as exc:
            raise unavailable(exc) from None
        rule = rule_from(spec, rule_id, key_id)  # refuses a bad rule before anything is stored
        self._changed(lambda pipe: pipe.hset(self.RULES, rule_id, json.dumps({"spec": spec, "key_id": key_id})))
        return rule

    def list(self) -> list[FaultRule]:
        self.reload()  # the counts as they stand now, every process's uses included
        return super().list()

    def remove(self, rule_id: str) -> bool:
        try:
            removed = bool(self.client.hdel(self.RULES, rule_id))
        except DOWN as exc:
            raise unavailable(exc) from None
        self._changed(lambda pipe: pipe.hdel(self.COUNTS, f"{rule_id}:hits", f"{rule_id}:seen"))
        return removed

    def clear(self, provider: str | None = None) -> None:
        self.reload()
        doomed = [r.id for r in self._rules if provider is None or r.provider == provider]

        def change(pipe: Any) -> None:
            if doomed:
                pipe.hdel(self.RULES, *doomed)
                pipe.hdel(self.COUNTS, *[f"{rule_id}:{n}" for rule_id in doomed for n in ("hits", "seen")])

        self._changed(change)

    def take(self, provider: str, operation: str, key_id: str | None, path: str) -> FaultRule | None:
        for rule in list(self._rules):
            if not rule.matches(provider, operation, key_id, path):
                continue
            try:
                fired = self._take(
                    keys=[self.COUNTS], args=[rule.id, rule.after, -1 if rule.times is None else rule.times]
                )
            except DOWN as exc:
                raise unavailable(exc) from None
            if fired == 1:
                rule.hits += 1
                return rule
            if fired == -1:
                rule.hits = rule.times or 0  # used up by other processes
        return None


@dataclass
class SharedKeyRing(KeyRing):
    """Keys created and revoked through the control plane, in Redis (created keys as typed JSON, revoked ids as a
    set); each process authenticates against its copy, reloaded when the keys' version changes (``Sync``)."""

    client: Any = None
    version: str | None = None

    CREATED, REVOKED = f"{PREFIX}keys:created", f"{PREFIX}keys:revoked"

    def reload(self, version: str | None = None) -> None:
        try:
            with self.client.pipeline(transaction=True) as pipe:
                created, revoked = pipe.hgetall(self.CREATED).smembers(self.REVOKED).execute()
        except DOWN as exc:
            raise unavailable(exc) from None
        keys = {key_id: records.loads(text) for key_id, text in created.items()}
        with self._lock:
            self._created, self._revoked = keys, set(revoked)
            self.version = version if version is not None else self.version

    def _changed(self, change: Any) -> None:
        try:
            with self.client.pipeline(transaction=True) as pipe:
                change(pipe)
                pipe.hincrby(VERSIONS, "keys", 1).execute()
        except DOWN as exc:
            raise unavailable(exc) from None
        self.reload()

    def create(
        self, provider: str, secret: str, scopes: frozenset[str] | None, rate_limits: dict[str, int], now: float
    ) -> CreatedKey:
        created = CreatedKey(fingerprint(provider, secret), provider, secret, scopes, dict(rate_limits), now)
        self._changed(
            lambda pipe: pipe.hset(self.CREATED, created.id, records.dumps(created)).srem(self.REVOKED, created.id)
        )
        return created

    def created(self) -> list[CreatedKey]:
        self.reload()
        return super().created()

    def revoke_id(self, key_id: str) -> str:
        self.reload()
        known = self._created.get(key_id)

        def change(pipe: Any) -> None:
            pipe.sadd(self.REVOKED, key_id)
            if known is not None:
                pipe.hset(self.CREATED, key_id, records.dumps(dataclasses.replace(known, revoked=True)))

        self._changed(change)
        return key_id

    def reset(self, provider: str | None = None) -> None:
        self.reload()
        doomed = [k for k, c in self._created.items() if provider is None or c.provider == provider]

        def change(pipe: Any) -> None:
            if doomed:
                pipe.hdel(self.CREATED, *doomed)
            if provider is None:
                pipe.delete(self.REVOKED)

        self._changed(change)


class Sync:
    """What each request reads first, in one round trip: the shared clock and the versions of the shared tables;
    a table whose version moved is reloaded (fault rules and keys change rarely: through the control plane), and
    after a reset the store's live copies are dropped, so a process keeps no copy of a record Redis no longer has.

    A request whose rate limits are known before that read (``admit``: worked out from this process's copy of the
    keys) has them taken in the same round trip, on the shared clock as the script reads it, provided the keys and
    the fault rules are still those the process holds: then nothing read afterwards could have changed the key, its
    limits or whether a fault answers first. Otherwise nothing is taken, and the request takes its limits later, as
    it always did."""

    def __init__(
        self,
        client: RedisClient,
        clock: SharedClock,
        faults: SharedFaultBook,
        keys: SharedKeyRing,
        store: RedisStore,
        limiter: SharedRateLimiter,
    ) -> None:
        self.client, self.clock, self.faults, self.keys, self.store = client, clock, faults, keys, store
        self.limiter = limiter
        self._begin = client.register_script(_BEGIN)
        self.batches = store.batches  # the store's records and this read share round trips
        self.cleared: str | None = None
        self.secret: str | None = None  # hex, as stored
        self.on_secret: Any = lambda secret: None  # told the presign secret when it is first read or changes

    def refresh(self, admit: tuple[str, Sequence[Limit]] | None = None) -> Callable[[], Quota] | None:
        """Read the shared state; with ``admit`` (bucket, limits), also take the limits if that is still sound:
        then the answer gives the request's ``Quota`` (or raises ``RateLimited``), else None (nothing taken)."""
        wall, keys, args = self._arguments(admit)
        try:
            answer = self.store.wire.run(self._begin, keys, args)
        except DOWN as exc:
            raise unavailable(exc) from None
        return self._apply(answer, wall, admit)

    async def refresh_async(self, admit: tuple[str, Sequence[Limit]] | None = None) -> Callable[[], Quota] | None:
        """``refresh`` for a request on an event loop: the loop serves other requests while this one waits, and the
        reads of requests that arrive meanwhile share a round trip (``Batches``)."""
        wall, keys, args = self._arguments(admit)
        try:
            answer = await self.batches.run(self._begin, keys, args)
        except DOWN as exc:
            raise unavailable(exc) from None
        return self._apply(answer, wall, admit)

    def _arguments(self, admit: tuple[str, Sequence[Limit]] | None) -> tuple[float, list[str], list[str | int]]:
        wall = self.clock._wall()
        keys: list[str] = [VERSIONS]
        args: list[str | int] = [repr(wall), self.faults.version or "", self.keys.version or ""]
        if admit is not None and admit[1]:
            more_keys, more_args = self.limiter.arguments(*admit)
            keys += more_keys
            args += more_args
        return wall, keys, args

    def _apply(
        self, answer: list[Any], wall: float, admit: tuple[str, Sequence[Limit]] | None
    ) -> Callable[[], Quota] | None:
        # with requests waiting at once, an answer may be applied after a newer one: the clock then goes back to
        # what this request read (its own time) until the next answer, and a table reloaded for an older version
        # than the one held is only reloaded once more (its contents are read afresh, never older than the version)
        offset, frozen, faults, keys_version, cleared, secret = answer[0]
        if secret is None or secret != self.secret:  # read at start; missing only when Redis lost its data
            self.secret = self.store.secret(bytes.fromhex(self.secret) if self.secret else None).hex()
            self.on_secret(bytes.fromhex(self.secret))
        self.clock._apply(offset, frozen)
        if faults != self.faults.version:
            self.faults.reload(faults)
        if keys_version != self.keys.version:
            self.keys.reload(keys_version)
        if cleared != self.cleared:  # records were cleared (a reset, perhaps on another process)
            self.store.forget_all()
            self.cleared = cleared
        if len(answer) == 1 or admit is None:
            return None
        # the instant the script took the limits at, worked out as it did (the same doubles)
        now = float(frozen) if frozen is not None else wall + float(offset or 0)
        return functools.partial(self.limiter.quota, admit[1], now, answer[1])


# a finished journal entry: KEYS entries (sorted set by id), ids counter, bytes counter; ARGV the entry's JSON with
# its id left as 0, capacity, max bytes. The id is given here (ids grow in the order entries are finished); past
# either bound the oldest entries go. Returns the id.
_JOURNAL = """
local id = redis.call('INCR', KEYS[2])
local body = string.gsub(ARGV[1], '^{"id":0,', '{"id":' .. id .. ',', 1)
redis.call('ZADD', KEYS[1], id, body)
local total = redis.call('INCRBY', KEYS[3], #body)
local capacity, most = tonumber(ARGV[2]), tonumber(ARGV[3])
while redis.call('ZCARD', KEYS[1]) > capacity or total > most do
  local gone = redis.call('ZPOPMIN', KEYS[1])
  if #gone == 0 then break end
  total = redis.call('DECRBY', KEYS[3], #gone[1])
end
return id
"""


_ENTRY_FIELDS = tuple(f.name for f in dataclasses.fields(Entry) if f.name not in ("id", "weight", "unread"))


class SharedJournal(Journal):
    """The journal of every process, in one Redis sorted set (entries as JSON, scored by id), bounded by count and
    by the bytes of that JSON like the in-memory journal. An entry is written when its response is complete, just
    before its last bytes are sent (so a client that has its answer finds the entry on any process), and given its
    id then; ``page`` and ``query`` read Redis, so any process lists what every process served. An entry that cannot
    be written while Redis is away is lost (the request itself was answered 503).

    On an event loop with ``batches``, ``settle`` only starts the write (batched with the other requests' commands)
    and the journal's layer holds the response's last bytes until it is ``written``: the process serves other
    requests meanwhile instead of waiting for Redis."""

    ENTRIES, IDS, BYTES = f"{PREFIX}journal:entries", f"{PREFIX}journal:ids", f"{PREFIX}journal:bytes"
    settle_before_last_send = True  # in Redis before the client has its answer: a journal read anywhere then lists it
    CHUNK = 500  # entries read per round trip while paging through filtered entries

    def __init__(
        self,
        client: RedisClient,
        clock: Clock,
        capacity: int = CAPACITY,
        max_bytes: int = MAX_BYTES,
        wire: Wire | None = None,
        batches: Batches | None = None,
    ) -> None:
        super().__init__(clock, capacity, max_bytes)
        self.client, self.wire, self.batches = client, wire or Wire(client), batches
        self._write = client.register_script(_JOURNAL)
        self._keys = [self.ENTRIES, self.IDS, self.BYTES]
        self._writing: dict[int, asyncio.Future[Any]] = {}  # id(entry) → the reply to its write under way

    def open(self, scope: Scope) -> Entry:
        entry = super().open(scope)
        with self._lock:  # held locally only while the request runs
            self._entries.remove(entry)
            self._bytes -= entry.weight
        entry.weight = 0
        return entry

    def settle(self, entry: Entry, previews: tuple[str | None, str | None] | None = None) -> None:
        entry.notes[:] = [_clip(note, URL_KEPT) for note in entry.notes]
        if previews is not None:  # this process alone holds the entry until it is written
            entry.keep_previews(previews)
        # the fields as they are (strings, numbers, flat dicts and lists): dataclasses.asdict's deep copy cost a
        # tenth of a request's time; orjson writes the same compact JSON several times faster than json
        entry.redacted()  # nothing unredacted leaves this process: the pattern pass before the shared store
        data = {"id": 0, **{name: getattr(entry, name) for name in _ENTRY_FIELDS}}
        args = [orjson.dumps(data), self.capacity, self.max_bytes]
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a direct call): written at once
            self._write_now(entry, args)
            return
        self._start(entry, "EVALSHA", args)

    def _start(self, entry: Entry, how: str, args: list[Any]) -> None:
        """Queue the entry's write (``EVALSHA``, or ``EVAL`` after Redis lost its scripts) in the loop's batch;
        ``written`` waits for it. Without a batch for this loop (TLS, another loop's), it is written at once."""
        script = self._write.sha if how == "EVALSHA" else self._write.script
        try:
            future = None if self.batches is None else self.batches.submit(how, script, 3, *self._keys, *args)
        except DOWN:
            return  # nowhere to write it; the client got the 503 that says why
        if future is None:
            self._write_now(entry, args)
            return
        self._writing[id(entry)] = future
        future.add_done_callback(functools.partial(self._done, entry, args))

    def _write_now(self, entry: Entry, args: list[Any]) -> None:
        try:
            entry.id = int(self.wire.run(self._write, self._keys, args))
        except DOWN:
            pass  # nowhere to write it; the client got the 503 that says why

    def _done(self, entry: Entry, args: list[Any], future: asyncio.Future[Any]) -> None:
        """The write's reply (run before ``written`` resumes: callbacks run in the order they were added)."""
        del self._writing[id(entry)]
        if future.cancelled():
            return
        error = future.exception()  # also marks it seen: asyncio logs an error nobody retrieved
        if isinstance(error, NoScriptError):  # Redis lost its scripts (a restart): nothing ran; send the text
            self._start(entry, "EVAL", args)
        elif error is None:
            entry.id = int(future.result())
        # else DOWN: nowhere to write it; the client got the 503 that says why

    async def written(self, entry: Entry) -> None:
        """Return once ``entry``, settled, is in Redis (or could not be written): at once when it was written
        synchronously or already."""
        while (future := self._writing.get(id(entry))) is not None:
            # its outcome is ``_done``'s to read (added first, it runs before this resumes); a NOSCRIPT reply makes
            # it send the entry again: then the loop waits for that write
            with contextlib.suppress(Exception):
                await future

    @property
    def bytes(self) -> int:
        try:
            return int(self.client.get(self.BYTES) or 0)
        except DOWN as exc:
            raise unavailable(exc) from None

    def _read(self, newest_first: bool, position: int | None) -> Iterator[Entry]:
        """Entries from ``position`` (exclusive) on, in the order asked, a chunk per round trip."""
        bound = position
        while True:
            try:
                if newest_first:
                    chunk = self.client.zrevrangebyscore(
                        self.ENTRIES, f"({bound}" if bound else "+inf", "-inf", start=0, num=self.CHUNK, withscores=True
                    )
                else:
                    chunk = self.client.zrangebyscore(
                        self.ENTRIES, f"({bound or 0}", "+inf", start=0, num=self.CHUNK, withscores=True
                    )
            except DOWN as exc:
                raise unavailable(exc) from None
            for body, _ in chunk:
                yield Entry(**json.loads(body))
            if len(chunk) < self.CHUNK:
                return
            bound = int(chunk[-1][1])

    def query(
        self,
        *,
        provider: str | None = None,
        operation: str | None = None,
        status: int | None = None,
        since: float | None = None,
        key_id: str | None = None,
        method: str | None = None,
        limit: int | None = None,
    ) -> list[Entry]:
        out = list(filter(self._matching(provider, operation, status, since, key_id, method), self._read(False, None)))
        return out[-limit:] if limit else out

    def page(
        self,
        *,
        position: int | None = None,
        newest_first: bool = False,
        limit: int = 100,
        provider: str | None = None,
        operation: str | None = None,
        status: int | None = None,
        since: float | None = None,
        key_id: str | None = None,
        method: str | None = None,
    ) -> tuple[list[Entry], bool]:
        found = list(
            itertools.islice(
                filter(
                    self._matching(provider, operation, status, since, key_id, method),
                    self._read(newest_first, position),
                ),
                limit + 1,
            )
        )
        return found[:limit], len(found) > limit

    def clear(self, provider: str | None = None) -> None:
        try:
            if provider is None:
                self.client.delete(self.ENTRIES, self.BYTES)
                return
            doomed = [
                (body, len(body))
                for body, _ in self.client.zrange(self.ENTRIES, 0, -1, withscores=True)
                if json.loads(body).get("provider") == provider
            ]
            if doomed:
                with self.client.pipeline(transaction=True) as pipe:
                    pipe.zrem(self.ENTRIES, *[body for body, _ in doomed])
                    pipe.decrby(self.BYTES, sum(size for _, size in doomed)).execute()
        except DOWN as exc:
            raise unavailable(exc) from None
