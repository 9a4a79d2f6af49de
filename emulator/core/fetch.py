"""Fetch a public https URL for a provider that imports media by URL (opt-in: ``--fetch-urls``).

The rules a provider states for such URLs ("public HTTPS; private, loopback and link-local addresses rejected")
are kept at every step, not just on the URL as given:

- every address the host resolves to must be public (``is_global``, not multicast); the connection then goes to
  that checked address, with the URL's host name for TLS (SNI and certificate check) and ``Host`` — so a DNS
  answer that changes between check and connect (rebinding) cannot reach another address;
- redirects are followed by hand, at most ``MAX_REDIRECTS``, each target checked again (https, public);
- the body is streamed into the blob store and cut off past ``max_size`` (a ``Content-Length`` over it is refused
  before reading); connect, read and whole-fetch timeouts bound the time; proxies from the environment are
  ignored (they would bypass the address check).

httpx does the HTTP and TLS; only the address policy and the redirect loop are written here, because httpx has no
hook that checks each connection's resolved address. Failures are ``FetchFailed`` with a ``reason`` the provider
turns into its own answer.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import anyio
import httpx

MAX_REDIRECTS = 5
CONNECT_TIMEOUT, READ_TIMEOUT, TOTAL_TIMEOUT = 5.0, 10.0, 30.0
REDIRECTS = frozenset({301, 302, 303, 307, 308})


class FetchFailed(Exception):
    """Why a URL could not be imported. ``reason``: ``not_public`` (an address outside the rules), ``unreachable``
    (DNS, connection, TLS or time), ``status`` (the source answered ``status``, not 2xx), ``too_large``,
    ``redirects`` (too many, or to a URL that is not https)."""

    def __init__(self, reason: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.reason, self.message, self.status = reason, message, status


@dataclass(frozen=True)
class FetchPolicy:
    max_size: int
    allow_loopback: bool = False  # tests only: their own TLS server on 127.0.0.1
    extra_ca: Path | None = None  # tests only: the CA that signed that server's certificate


@dataclass(frozen=True)
class Fetched:
    url: str  # after redirects
    content_type: str | None  # as the source declared it (the bytes decide what they are)
    size: int


def _allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address, policy: FetchPolicy) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    if policy.allow_loopback and address.is_loopback:
        return True
    return address.is_global and not address.is_multicast


async def _public_address(host: str, port: int, policy: FetchPolicy) -> str:
    """One address of ``host`` to connect to, every one of them checked; refused when any is not public."""
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise FetchFailed("unreachable", f"host {host!r} could not be resolved ({exc.__class__.__name__})") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise FetchFailed("unreachable", f"host {host!r} has no address")
    for address in addresses:
        if not _allowed(address, policy):
            raise FetchFailed(
                "not_public",
                f"host {host!r} resolves to {address}, which is not a public address; "
                "private, loopback and link-local addresses are rejected",
            )
    return str(addresses[0])


def _ssl_context(policy: FetchPolicy) -> ssl.SSLContext:
    import certifi

    context = ssl.create_default_context(cafile=certifi.where())
    if policy.extra_ca is not None:
        context.load_verify_locations(cafile=str(policy.extra_ca))
    return context


async def fetch(url: str, policy: FetchPolicy, write: Callable[[bytes], None]) -> Fetched:
    """GET ``url`` (and its redirects) under ``policy``, handing the body to ``write`` chunk by chunk."""
    try:
        with anyio.fail_after(TOTAL_TIMEOUT):
            return await _fetch(url, policy, write)
    except TimeoutError:
        raise FetchFailed("unreachable", f"the fetch took longer than {TOTAL_TIMEOUT:.0f} s") from None


async def _fetch(url: str, policy: FetchPolicy, write: Callable[[bytes], None]) -> Fetched:
    timeout = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
    async with httpx.AsyncClient(
        verify=_ssl_context(policy), trust_env=False, timeout=timeout, follow_redirects=False
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            if parts.scheme != "https" or not parts.hostname:
                raise FetchFailed("redirects", f"redirected to {url!r}, which is not an https:// URL")
            host, port = parts.hostname, parts.port or 443
            address = await _public_address(host, port, policy)
            target = httpx.URL(url).copy_with(host=address)
            request = client.build_request(
                "GET", target, headers={"Host": parts.netloc.rsplit("@", 1)[-1]}, extensions={"sni_hostname": host}
            )
            try:
                response = await client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise FetchFailed("unreachable", f"could not connect to {host!r} ({exc.__class__.__name__})") from None
            try:
                if response.status_code in REDIRECTS and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                if not 200 <= response.status_code < 300:
                    raise FetchFailed(
                        "status", f"the source answered {response.status_code}", status=response.status_code
                    )
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > policy.max_size:
                    raise FetchFailed("too_large", f"the source declares {declared} bytes")
                size = 0
                try:
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > policy.max_size:
                            raise FetchFailed("too_large", f"the source sent more than {policy.max_size} bytes")
                        write(chunk)
                except httpx.HTTPError as exc:
                    raise FetchFailed(
                        "unreachable", f"the download from {host!r} broke off ({exc.__class__.__name__})"
                    ) from None
                return Fetched(url, response.headers.get("content-type"), size)
            finally:
                await response.aclose()
    raise FetchFailed("redirects", f"more than {MAX_REDIRECTS} redirects")
