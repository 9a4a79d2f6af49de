"""Where the emulator reaches past ASGI into uvicorn's request cycle: the connection's transport, to drop a connection
for real (a fault rule's ``drop`` / ``drop_upload``); ASGI itself has no way to say "abort". (The other reach is
``timeouts.head_guard_protocol``, a subclass of uvicorn's httptools protocol that guards request heads and hands
body pieces to the cycle without uvicorn's two copies.)

uvicorn's ``send`` is a bound method of its request cycle (``RequestResponseCycle.send``, in both its httptools and
h11 protocols), which holds the connection's ``asyncio.Transport`` as ``transport``. Any other server (or an
in-process ``httpx.ASGITransport``) gives ``None``, and fault injection falls back to raising
``ConnectionDropped``. ``tests/test_dependency_internals.py`` fails if a uvicorn upgrade moves it.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Transport(Protocol):
    """What fault injection uses of a connection's transport (asyncio's, or uvloop's, which does not subclass it)."""

    def abort(self) -> None: ...

    def get_extra_info(self, name: str, default: Any = None) -> Any: ...


# isinstance() against a runtime-checkable Protocol walks the protocol's attributes on every call (~15 µs on Python
# 3.11, a tenth of a JSON request): the answer depends only on the transport's class, so it is kept per class
_IS_TRANSPORT: dict[type, bool] = {}


def connection_transport(send: Any) -> Transport | None:
    """The transport of the connection that ``send`` answers on, when the server is uvicorn; else ``None``."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        return None
    kind = type(transport)
    fits = _IS_TRANSPORT.get(kind)
    if fits is None:
        fits = _IS_TRANSPORT[kind] = isinstance(transport, Transport)
    return transport if fits else None
