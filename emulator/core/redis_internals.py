"""The one place the emulator reaches past redis-py's public API: a connection's socket, which ``shared.Batches``
uses without blocking on whichever event loop awaits (redis-py has no auto-pipelining, and its asyncio client binds
a connection to one loop; see ``Batches``).

redis-py's ``Connection`` keeps the socket it connected, authenticated and selected the database on as ``_sock``
(``AbstractConnection.connect``, redis-py 5 to 8). ``tests/test_dependency_internals.py`` fails if an upgrade moves
it, before it turns into requests that hang or answer 503.
"""

from __future__ import annotations

import socket
from typing import Any


class RedisPyChanged(RuntimeError):
    """redis-py no longer keeps a connected connection's socket where this module looks for it."""


def connection_socket(conn: Any) -> socket.socket | None:
    """The socket of redis-py connection ``conn`` (an ``ssl.SSLSocket`` for ``rediss://``); None when it is not
    connected."""
    if not hasattr(conn, "_sock"):
        raise RedisPyChanged(
            f"redis-py's {type(conn).__name__} has no _sock: emulator/core/redis_internals.py needs updating"
        )
    sock = conn._sock
    if sock is not None and not isinstance(sock, socket.socket):
        raise RedisPyChanged(f"redis-py's connection socket is a {type(sock).__name__}, not a socket")
    return sock
