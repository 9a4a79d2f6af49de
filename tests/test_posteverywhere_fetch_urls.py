"""upload-from-url with --fetch-urls: the URL is really fetched over https, under the page's rules (public
addresses only, at every redirect too; images only; 25 MB), from the tests' own TLS server on 127.0.0.1.

The server's certificate comes from trustme; the emulator trusts its CA and admits loopback only through the
test-only setting ``test_only_fetch_loopback_ca`` (no flag, no environment variable). Without it, loopback and
private addresses are refused as for any user.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme

from emulator import Settings
from emulator.core import fetch as fetch_module
from tests.helpers import AUTH, PE, sample

pytestmark = pytest.mark.anyio

FROM_URL = f"{PE}/media/upload-from-url"
MB = 1024 * 1024
PNG = sample("png")
HEIC = sample("heic")


class Source(BaseHTTPRequestHandler):
    """The tests' image host: a route per failure the import must answer."""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        routes = {
            "/photo.png": lambda: self._send(200, PNG, "image/png"),
            "/photo-without-extension": lambda: self._send(200, HEIC, "application/octet-stream"),
            "/missing.jpg": lambda: self._send(404, b"not here", "text/plain"),
            "/broken.jpg": lambda: self._send(500, b"oops", "text/plain"),
            "/page.jpg": lambda: self._send(200, b"<!doctype html><title>hi</title>", "text/html"),
            "/declared-too-large.jpg": self._declared_too_large,
            "/streams-too-much.jpg": self._streams_too_much,
            "/slow.jpg": self._slow,
            "/hop": lambda: self._redirect(f"https://127.0.0.1:{self.server.server_port}/photo.png"),
            "/hop-to-private": lambda: self._redirect("https://10.1.2.3/photo.png"),
            "/hop-to-metadata": lambda: self._redirect("https://169.254.169.254/latest/meta-data"),
            "/hop-to-http": lambda: self._redirect(f"http://127.0.0.1:{self.server.server_port}/photo.png"),
            "/loop": lambda: self._redirect("/loop"),
        }
        routes.get(self.path, lambda: self._send(404, b"", "text/plain"))()

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _declared_too_large(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(25 * MB + 1))
        self.end_headers()  # and nothing more: the import must refuse before reading

    def _streams_too_much(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.end_headers()  # no length: the body runs until the connection closes (HTTP/1.0)
        try:
            self.wfile.write(sample("jpg"))
            for _ in range(26):
                self.wfile.write(b"\0" * MB)
        except OSError:
            pass  # the import stopped reading past 25 MB

    def _slow(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PNG)))
        self.end_headers()
        self.wfile.flush()
        threading.Event().wait(2)  # longer than the read timeout the test sets
        try:
            self.wfile.write(PNG)
        except OSError:
            pass

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        pass


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def source(ca: trustme.CA) -> Iterator[str]:
    """https://127.0.0.1:<port>, with a certificate for 127.0.0.1 signed by the test CA."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Source)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "test-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def settings(ca_file: Path) -> Settings:
    return Settings(strict=True, seed=1234, fetch_urls=True, test_only_fetch_loopback_ca=ca_file)


async def test_the_image_at_the_url_is_fetched_and_stored(client, source):
    r = await client.post(FROM_URL, headers=AUTH, json={"url": f"{source}/photo.png"})
    assert r.status_code == 201, r.text
    data = r.json()["data"]
    assert data["content_type"] == "image/png" and data["size"] == len(PNG) and data["media_status"] == "ready"
    assert data["source_url"] == f"{source}/photo.png" and data["filename"] == "photo.png"
    assert (await client.get(data["url"])).content == PNG  # the fetched bytes, not a bundled sample
    media = (await client.get(f"{PE}/media/{data['media_id']}", headers=AUTH)).json()["data"]
    assert (media["width"], media["height"]) == (64, 48)


async def test_the_bytes_decide_the_type_not_the_url(client, source):
    r = await client.post(FROM_URL, headers=AUTH, json={"url": f"{source}/photo-without-extension"})
    assert r.status_code == 201, r.text
    assert r.json()["data"]["content_type"] == "image/heic"
    assert (await client.get(r.json()["data"]["url"])).content == HEIC


async def test_redirects_are_followed_to_a_public_https_url(client, source):
    r = await client.post(FROM_URL, headers=AUTH, json={"url": f"{source}/hop"})
    assert r.status_code == 201 and r.json()["data"]["size"] == len(PNG)


@pytest.mark.parametrize("path, reason, status", [("/missing.jpg", "status", 404), ("/broken.jpg", "status", 500)])
async def test_a_source_that_does_not_answer_200_is_400_fetch_failed(client, source, path, reason, status):
    r = await client.post(FROM_URL, headers=AUTH, json={"url": f"{source}{path}"})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "fetch_failed" and error["retryable"] is False
    assert error["details"]["reason"] == reason and error["details"]["source_status"] == status
    assert f"the source answered {status}" in error["message"]


async def test_an_unreachable_host_is_400_fetch_failed(client, source):
    closed = source.rsplit(":", 1)[0] + ":1"  # nothing listens on port 1
    r = await client.post(FROM_URL, headers=AUTH, json={"url": f"{closed}/photo.png"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "fetch_failed"
    assert r.json()["error"]["details"] == {
        "reason": "unreachable",
        "validation_errors": r.json()["error"]["details"]["validation_errors"],
    }


async def test_a_certificate_the_emulator_does_not_trust_is_unreachable(client, source, settings, tmp_path):
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    settings.test_only_fetch_loopback_ca = other  # the server's CA is no longer trusted
    r = await client.post(FROM_URL, headers=AUTH, json={"url": f"{source}/photo.png"})
    assert r.status_code == 400 and r.json()["error"]["details"]["reason"] == "unreachable"


async def test_a_source_that_stalls_times_out(client, source, monkeypatch):
    monkeypatch.setattr(fetch_module, "READ_TIMEOUT", 0.3)
    r = await client.post(FROM_URL, headers=AUTH, json={"url": f"{source}/slow.jpg"})
    assert r.status_code == 400 and r.json()["error"]["details"]["reason"] == "unreachable"


@pytest.mark.parametrize("path", ["/declared-too-large.jpg", "/streams-too-much.jpg"])
async def test_over_25_mb_is_413_and_nothing_is_kept(client, source, runtime, path):
    r = await client.post(FROM_URL, headers=AUTH, json={"url": f"{source}{path}"})
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "payload_too_large"
    assert r.json()["error"]["details"]["max_size"] == 25 * MB
    assert (await client.get(f"{PE}/media", headers=AUTH)).json()["data"]["media"] == []


async def test_a_file_that_is_not_an_image_is_415(client, source):
    r = await client.post(FROM_URL, headers=AUTH, json={"url": f"{source}/page.jpg"})
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    assert "not an image" in r.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/hop-to-private", "/hop-to-metadata", "/hop-to-http", "/loop"])
async def test_redirects_are_checked_again(client, source, path):
    r = await client.post(FROM_URL, headers=AUTH, json={"url": f"{source}{path}"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "validation_error"
    assert r.json()["error"]["details"]["validation_errors"][0]["field"] == "url"


@pytest.mark.parametrize("settings", [Settings(strict=True, seed=1234, fetch_urls=True)])
@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:{port}/photo.png",
        "https://localhost:{port}/photo.png",
        "https://[::1]:{port}/photo.png",
        "https://10.0.0.8/photo.png",
        "https://192.168.1.10/photo.png",
        "https://169.254.169.254/latest",
    ],
)
async def test_without_the_test_setting_loopback_and_private_addresses_are_refused(client, source, settings, url):
    port = source.rsplit(":", 1)[1]
    r = await client.post(FROM_URL, headers=AUTH, json={"url": url.format(port=port)})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "validation_error" and "is not public" in r.json()["error"]["message"]
