"""Secrets stay secret: API keys never reach logs, the journal, the control plane's views or any error message, and
the control plane answers only loopback clients unless they present the admin token.

The log tests run a real uvicorn at trace level (its most verbose: every request's ASGI scope is logged) with its
access log on, capture every record of every logger while all four providers are driven through good keys,
malformed keys, revoked keys, created keys, keys in query strings, fault-injected 500s and refusals of every kind,
then search the captured text for each key; and run ``upload-emulator serve --log-level trace`` itself through
presigned uploads and secrets in query strings, searching its output for every key and signature.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp
from uvicorn.logging import TRACE_LOG_LEVEL

from emulator import Settings, create_app
from emulator.control import CONTROL
from emulator.testing import serve_in_thread
from tests.conftest import free_port
from tests.test_reliability_support import (
    AP,
    GENEROUS_LIMITS,
    PE,
    SF,
    XF,
    ap_asset,
    ap_clip,
    auth,
    key,
    payload,
    pe_image,
    pe_video,
    sf_asset,
    xf_image,
)

BOTH_STORES = True  # every test here runs on the memory store and on Redis (conftest.py)
pytestmark = pytest.mark.anyio
PROVIDERS = ["posteverywhere", "autoposting", "segmentflow", "xenonflare"]
MALFORMED = {
    "posteverywhere": "pe_live_NOT-HEX-secret-0001",
    "autoposting": "sk-social-!!secret!!",
    "segmentflow": "sk_live_short",
    "xenonflare": "xf_bad key secret",
}
REVOKED = {
    "posteverywhere": "pe_live_00000000000000000000000000000401",
    "autoposting": "sk-social-test-revoked-401",
    "segmentflow": "sk_live_00000000000000000000000000000401",
    "xenonflare": "xf_test_revoked_00000401",
}


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=TRACE_LOG_LEVEL)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(("httpx", "httpcore")):  # the test's own client, not the emulator
            self.lines.append(self.format(record))


@pytest.fixture
def debug_server() -> Iterator[tuple[str, object, Captured]]:
    """A live uvicorn at trace level with its access log on, every logger captured."""
    port = free_port()
    app = create_app(Settings(port=port, seed=41, rate_limits=GENEROUS_LIMITS, strict=True))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="trace", access_log=True, lifespan="on")
    captured = Captured()
    captured.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s %(args)s"))
    names = ["", "uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "emulator", "starlette"]
    loggers = [logging.getLogger(name) for name in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(captured)
        lg.setLevel(TRACE_LOG_LEVEL)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", app, captured
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(captured)
            lg.setLevel(level)


def _all_views() -> list[str]:
    """Every control-plane view that lists what the emulator holds."""
    return ["/_emulator/journal", "/_emulator/keys", "/_emulator/faults", *[f"/_emulator/state/{p}" for p in PROVIDERS]]


async def test_api_keys_never_appear_in_logs_journal_views_or_errors(debug_server):
    url, app, captured = debug_server
    secrets = {key(p, t) for p in PROVIDERS for t in (0, 1)} | set(MALFORMED.values()) | set(REVOKED.values())
    bodies: list[str] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        created = {}
        for p in PROVIDERS:  # a key made through the control plane is shown once, at creation
            r = await c.post("/_emulator/keys", json={"provider": p})
            assert r.status_code == 201
            created[p] = r.json()["key"]
            secrets.add(created[p])
        await c.post(
            "/_emulator/faults",
            json={
                "provider": "posteverywhere",
                "key": key("posteverywhere", 1),
                "action": "status",
                "status": 500,
                "times": 1,
            },
        )
        await pe_video(c, 0, payload("mp4", 5_000, 1))
        await ap_asset(c, 0, payload("png", 5_000, 2))
        await sf_asset(c, 0, payload("png", 5_000, 3))
        await xf_image(c, 0, payload("jpg", 5_000, 4))
        requests = {
            "posteverywhere": (
                "POST",
                f"{PE}/media/upload",
                {"filename": "a.png", "content_type": "image/png", "size": 5},
            ),
            "autoposting": (
                "POST",
                f"{AP}/clips/upload/init",
                {"brandId": "b", "title": "t", "fileName": "a.mp4", "fileSize": 5, "mimeType": "video/mp4"},
            ),
            "segmentflow": ("GET", f"{SF}/assets", None),
            "xenonflare": ("GET", f"{XF}/chunks?fileId=f", None),
        }
        for p, (method, path, body) in requests.items():
            name = next(iter(auth(p, 0)))
            for secret in (key(p, 1), MALFORMED[p], REVOKED[p], created[p], "Bearer " + key(p, 0)):
                value = secret if name == "X-API-Key" or secret.startswith("Bearer ") else f"Bearer {secret}"
                r = await c.request(method, path, headers={name: value}, json=body)
                bodies.append(r.text)
            # keys where they do not belong: in the query string and in a body field
            r = await c.request(
                method, path, params={"api_key": key(p, 0), "x-api-key": key(p, 0)}, headers=auth(p, 0), json=body
            )
            bodies.append(r.text)
            r = await c.post(path, headers=auth(p, 0), json={"apiKey": key(p, 0)})
            bodies.append(r.text)
        for p in PROVIDERS:
            r = await c.post("/_emulator/keys/revoke", json={"provider": p, "key": created[p]})
            assert r.status_code == 200
        views = [(await c.get(path)).text for path in _all_views()]
    journal = app.state.runtime.journal.query()
    assert len(journal) > 30 and any(e.status == 500 for e in journal)  # the fault fired, refusals happened
    logged = "\n".join(captured.lines)
    assert "GET /segmentflow/api/v1/assets?api_key=REDACTED" in logged  # the access log was on and captured
    assert "b'api_key=REDACTED&x-api-key=REDACTED'" in logged  # so was the trace log, with each request's scope
    for secret in secrets:
        assert secret not in logged, f"a key reached the log: {secret[:12]}…"
        for text in bodies + views:
            assert secret not in text, f"a key reached a response: {secret[:12]}…"
        assert secret not in json.dumps([e.to_dict() for e in journal])


# --- the control plane is for loopback clients ----------------------------------------------------------------------


def _control_requests() -> list[tuple[str, str]]:
    out = []
    for _, method, path, _ in CONTROL.specs.operations():
        concrete = (
            path.replace("{key_id}", "key_0123456789abcdef")
            .replace("{fault_id}", "fault_1")
            .replace("{provider}", "posteverywhere")
        )
        out.append((method, f"/_emulator{concrete}"))
    # paths that merely end like the open health check are not it
    out += [
        ("DELETE", "/_emulator/faults/health"),
        ("DELETE", "/_emulator/keys/health"),
        ("GET", "/_emulator/state/health"),
        ("GET", "/_emulator//health"),
        ("GET", "/_emulator/health/"),
    ]
    return out


def _client(app: ASGIApp, host: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(host, 40000)), base_url="http://emulator.example:8080"
    )


@pytest.mark.parametrize("host", ["203.0.113.7", "10.0.0.5", "2001:db8::1", "192.168.1.20", "fe80::1"])
async def test_the_control_plane_refuses_other_hosts_without_the_token(host):
    app = create_app(Settings(strict=True))
    try:
        async with _client(app, host) as c:
            for method, path in _control_requests():
                r = await c.request(method, path, json={} if method == "POST" else None)
                if path == "/_emulator/health":
                    assert r.status_code == 200
                    continue
                assert r.status_code == 403, (method, path, r.text)
                assert r.json()["error"] == "forbidden" and "loopback" in r.json()["message"]
    finally:
        app.state.runtime.close()
    assert app.state.runtime.journal.query() == []


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
async def test_the_control_plane_answers_loopback_clients(host):
    app = create_app(Settings(strict=True))
    try:
        async with _client(app, host) as c:
            assert (await c.get("/_emulator/clock")).status_code == 200
            assert (await c.post("/_emulator/clock/advance", json={"seconds": 5})).status_code == 200
    finally:
        app.state.runtime.close()


async def test_with_an_admin_token_other_hosts_need_exactly_that_token():
    app = create_app(Settings(strict=True, admin_token="s3cret-admin-token"))
    try:
        async with _client(app, "203.0.113.7") as c:
            for headers in (
                {},
                {"Authorization": "Bearer wrong"},
                {"Authorization": "s3cret-admin-token"},
                {"Authorization": "Basic s3cret-admin-token"},
                {"Authorization": "Bearer s3cret-admin-token-and-more"},
                {"X-Admin-Token": "s3cret-admin-token"},
            ):
                r = await c.get("/_emulator/journal", headers=headers)
                assert r.status_code == 401, headers  # a token could let them in: 401, with the scheme to use
                assert r.headers["www-authenticate"].startswith("Bearer ")
                assert r.json()["error"] == "unauthorized"
                assert "s3cret-admin-token" not in r.text
            ok = await c.get("/_emulator/journal", headers={"Authorization": "Bearer s3cret-admin-token"})
            assert ok.status_code == 200
            reset = await c.post("/_emulator/reset", json={}, headers={"Authorization": "bearer s3cret-admin-token"})
            assert reset.status_code == 200
    finally:
        app.state.runtime.close()


async def test_the_provider_apis_stay_open_to_other_hosts(client, app):
    async with _client(app, "203.0.113.7") as c:
        r = await c.post(
            f"{PE}/media/upload",
            headers=auth("posteverywhere", 0),
            json={"filename": "a.png", "content_type": "image/png", "size": 5},
        )
        assert r.status_code == 201  # only the control plane is guarded: the emulated APIs serve everyone


# --- serve --log-level trace: no key, signature or query secret in its output ----------------------------------------


QUERY_SECRETS = ("api_key", "token", "access_key", "Authorization", "signature", "X-Amz-Signature", "password")


async def test_serve_at_trace_level_logs_no_signature_and_no_query_secret(tmp_path):
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "emulator",
                "serve",
                "--port",
                str(port),
                "--seed",
                "43",
                "--log-level",
                "trace",
                "--rate-limit",
                "posteverywhere.minute=1000",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    signatures: list[str] = []

    async def note_signature(request: httpx.Request) -> None:
        signature = request.url.params.get("X-Emulator-Signature")
        if signature:
            signatures.append(signature)

    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=30, event_hooks={"request": [note_signature]}
        ) as c:
            deadline = time.monotonic() + 30
            while True:
                try:
                    assert (await c.get("/_emulator/health")).status_code == 200
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
                    await asyncio.sleep(0.05)
            # presigned PUTs and POSTs of every provider that issues them
            await pe_video(c, 0, payload("mp4", 5_000, 1))
            await pe_image(c, 0, payload("png", 5_000, 2))
            await ap_clip(c, 0, payload("mp4", 5_000, 3))
            await sf_asset(c, 0, payload("png", 5_000, 4))
            # secrets in query strings, with a key in its header too
            secrets = {key(p, 0) for p in PROVIDERS} | set(signatures)
            for p, path in (
                ("posteverywhere", f"{PE}/media"),
                ("segmentflow", f"{SF}/assets"),
                ("xenonflare", f"{XF}/chunks?fileId=f"),
                ("autoposting", f"{AP}/clips"),
            ):
                query = {}
                for i, name in enumerate(QUERY_SECRETS):
                    query[name] = f"q{i}-{p}-secret-value"
                    secrets.add(query[name])
                await c.get(path, params=query, headers=auth(p, 0))
                await c.get(f"{path.split('?')[0]}?API%5FKEY=encoded-name-secret")  # a percent-encoded name
            secrets.add("encoded-name-secret")
            journal = (await c.get("/_emulator/journal", params={"limit": 1000})).text
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    logged = log.read_text()
    assert len(signatures) >= 4
    assert "ASGI [" in logged and "Started scope=" in logged  # trace level: every request's scope was logged
    assert "X-Emulator-Signature=REDACTED" in logged and "access_key=REDACTED" in logged
    assert "access_key=REDACTED" in journal and "Authorization=REDACTED" in journal
    for secret in secrets:
        assert secret not in logged, f"a secret reached the log: {secret[:12]}…"
        assert secret not in journal, f"a secret reached the journal: {secret[:12]}…"


class _Failing:
    """Wraps the app: a request for /boom raises an exception whose message quotes its URL, query and all."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == "/boom":
            raise RuntimeError(f"could not serve {scope['path']}?{scope['query_string'].decode()}")
        await self.app(scope, receive, send)


def test_a_traceback_quoting_a_signed_url_reaches_the_log_redacted():
    served = serve_in_thread(Settings(), wrap=_Failing)
    captured = Captured()
    captured.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(captured)
    try:
        r = httpx.get(f"{served.url}/boom?X-Emulator-Signature=s3cr3tsig0123&api_key=k3yvalue0123&size=5")
        assert r.status_code == 500
    finally:
        logger.removeHandler(captured)
        served.stop()
    logged = "\n".join(captured.lines)
    assert "RuntimeError: could not serve /boom?X-Emulator-Signature=REDACTED&api_key=REDACTED&size=5" in logged
    assert "s3cr3tsig0123" not in logged and "k3yvalue0123" not in logged
