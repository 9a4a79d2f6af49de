"""A minimal HTTP/1.1 upload client: headers, then the file straight from the page cache with ``sendfile``.

The same client drives every server (emulator, moto, the raw sink), so differences are the servers'. It never sends
``Expect: 100-continue``, opens one connection per upload (``Connection: close``), and refuses any host that is not
loopback.
"""

from __future__ import annotations

import http.client
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float


def _target(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK:
        raise ValueError(f"benchmarks only talk to loopback over http, not {url}")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, parts.port or 80, path


def send(
    url: str,
    method: str,
    headers: dict[str, str],
    path: Path | None = None,
    prefix: bytes = b"",
    suffix: bytes = b"",
    timeout: float = 600.0,
) -> Reply:
    """Send ``prefix + file + suffix`` as the body; the time runs from connect to the last byte of the answer."""
    host, port, target = _target(url)
    size = len(prefix) + (os.path.getsize(path) if path else 0) + len(suffix)
    head = [
        f"{method} {target} HTTP/1.1",
        f"Host: {host}:{port}",
        f"Content-Length: {size}",
        "Connection: close",
        "User-Agent: upload-emulator-bench",
    ]
    head += [f"{name}: {value}" for name, value in headers.items()]
    start = time.perf_counter()
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + prefix)
            if path is not None:
                with open(path, "rb") as fh:
                    sock.sendfile(fh)
            sock.sendall(suffix)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early (an error); read what it said
        response = http.client.HTTPResponse(sock, method=method)  # (an answer to HEAD has no body)
        response.begin()
        body = response.read()
        seconds = time.perf_counter() - start
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, body, seconds)


def request(
    url: str, method: str = "GET", headers: dict[str, str] | None = None, body: bytes = b"", timeout: float = 5.0
) -> Reply:
    """A small request with an in-memory body (API calls, readiness probes)."""
    return send(url, method, headers or {}, prefix=body, timeout=timeout)


def multipart(
    fields: list[tuple[str, str]], file_field: str, filename: str, content_type: str, boundary: str | None = None
) -> tuple[str, bytes, bytes]:
    """(Content-Type header, bytes before the file, bytes after it) of a form whose last part is the file."""
    boundary = boundary or f"bench{uuid.uuid4().hex}"
    before = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields
    )
    before += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    after = f"\r\n--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", before, after
