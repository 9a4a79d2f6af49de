"""Autoposting.ai keys (both headers, the two published 401 bodies, strict keys, revocation), per-key rate limits,
and serving (served spec, per-provider mode, unrouted paths, the ``serve`` banner)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import httpx
import pytest

from emulator import Settings
from tests.conftest import free_port
from tests.helpers import sample
from tests.test_autoposting_flow import (
    AP,
    AUTH,
    KEY,
    OTHER,
    OTHER_KEY,
    X_API_KEY,
    clips_error,
    ids,
    init,
    presign,
    video,
)

BOTH_STORES = True  # every test here runs on the memory store and on Redis (conftest.py)

pytestmark = pytest.mark.anyio

INIT = f"{AP}/clips/upload/init"
INIT_BODY = {"brandId": "b", "title": "t", "fileName": "f.mp4", "fileSize": 10, "mimeType": "video/mp4"}
CLIPS_401 = {"success": False, "error": "unauthorized", "message": "Missing or invalid API key."}
CAROUSEL_401 = {"success": False, "error": "Unauthorized", "message": "Authentication required."}


def clip_requests(clip: dict) -> list[tuple[str, str, dict | None]]:
    body = ids(clip)
    return [
        ("POST", INIT, INIT_BODY),
        ("POST", f"{AP}/clips/upload/presign", {**body, "partNumbers": [1]}),
        ("POST", f"{AP}/clips/upload/complete", {**body, "parts": [{"partNumber": 1, "eTag": "x"}]}),
        ("POST", f"{AP}/clips/upload/abort", body),
        ("GET", f"{AP}/clips/{clip['clipId']}", None),
    ]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer sk-social-"},
        {"Authorization": "Bearer sk-social-abc"},  # too short: at least 8 characters after the prefix
        {"Authorization": "Bearer sk-social-has spaces in it"},
        {"Authorization": f"Token {KEY}"},
        {"x-api-key": "pe_live_" + "0" * 32},
        {"x-api-key": ""},
    ],
)
async def test_every_clips_operation_answers_the_published_401(client, headers):
    clip = await init(client, 10)
    for method, path, body in clip_requests(clip):
        r = await client.request(method, path, headers=headers, json=body)
        assert r.status_code == 401, (path, r.text)
        assert r.json() == CLIPS_401
        assert "x-ratelimit-limit" not in r.headers


async def test_both_headers_are_accepted_on_every_operation(client):
    for headers in (AUTH, X_API_KEY, {"authorization": f"bearer {KEY}"}):
        clip = await init(client, 10, headers=headers)
        assert (await client.get(f"{AP}/clips/{clip['clipId']}", headers=headers)).status_code == 200
        r = await client.post(
            f"{AP}/carousels/car_1/assets", headers=headers, files={"file": ("a.png", sample("png"), "image/png")}
        )
        assert r.status_code == 200


async def test_x_api_key_and_bearer_name_the_same_tenant(client):
    clip = await init(client, 10, headers=X_API_KEY)
    assert (await client.get(f"{AP}/clips/{clip['clipId']}", headers=AUTH)).status_code == 200
    assert (await client.get(f"{AP}/clips/{clip['clipId']}", headers=OTHER)).status_code == 404


async def test_the_key_never_appears_in_a_response(client):
    bad = "sk-social-" + "x" * 7 + "!"
    for headers in ({"Authorization": f"Bearer {bad}"}, {"x-api-key": bad}):
        r = await client.post(INIT, headers=headers, json=INIT_BODY)
        assert bad not in r.text and "x" * 7 not in r.text
    r = await client.post(INIT, headers=AUTH, json={**INIT_BODY, "fileSize": "x"})
    assert KEY not in r.text and KEY not in str(r.headers)
    r = await client.post(f"{AP}/carousels/car_1/assets", headers=AUTH, files={"file": ("a.png", b"x", "image/png")})
    assert KEY not in r.text


@pytest.mark.parametrize("settings", [Settings(strict=True, strict_keys=True, keys={"autoposting": [KEY]})])
async def test_strict_keys_accept_only_configured_keys(client, settings):
    assert (await client.post(INIT, headers=AUTH, json=INIT_BODY)).status_code == 201
    r = await client.post(INIT, headers=OTHER, json=INIT_BODY)
    assert r.status_code == 401 and r.json() == CLIPS_401
    r = await client.post(
        f"{AP}/carousels/car_1/assets", headers=OTHER, files={"file": ("a.png", sample("png"), "image/png")}
    )
    assert r.status_code == 401 and r.json() == CAROUSEL_401


async def test_revoked_keys_get_401(client, runtime):
    runtime.keys.revoke("autoposting", KEY)
    r = await client.post(INIT, headers=X_API_KEY, json=INIT_BODY)
    assert r.status_code == 401 and r.json() == CLIPS_401
    assert (await client.post(INIT, headers=OTHER, json=INIT_BODY)).status_code == 201


# --- rate limits -------------------------------------------------------------------------------------------------


async def test_every_keyed_response_carries_rate_limit_headers(client, clock):
    r = await client.post(INIT, headers=AUTH, json=INIT_BODY)
    assert r.headers["x-ratelimit-limit"] == "100"
    assert r.headers["x-ratelimit-remaining"] == "99"
    assert r.headers["x-ratelimit-reset"] == str(int(clock.now()) + 60)
    assert "retry-after" not in r.headers
    bad = await client.post(INIT, headers=AUTH, json={})  # a refused request counts and carries them too
    assert bad.status_code == 400 and bad.headers["x-ratelimit-remaining"] == "98"
    missing = await client.get(f"{AP}/clips/clip_nope", headers=AUTH)
    assert missing.status_code == 404 and missing.headers["x-ratelimit-remaining"] == "97"


async def test_101st_request_in_a_minute_is_429_in_both_envelopes(client, clock):
    for n in range(100):
        r = await client.post(INIT, headers=AUTH, json=INIT_BODY)
        assert r.status_code == 201 and r.headers["x-ratelimit-remaining"] == str(99 - n)
        clock.advance(0.25)  # 100 requests over 25 s
    r = await client.post(INIT, headers=AUTH, json=INIT_BODY)
    # the first request leaves the window 60 s after it was made, 35 s from now
    assert clips_error(r, 429, "rate_limited") == "Rate limit exceeded. Retry after 35 seconds."
    assert r.headers["retry-after"] == "35"
    assert r.headers["x-ratelimit-limit"] == "100" and r.headers["x-ratelimit-remaining"] == "0"
    assert r.headers["x-ratelimit-reset"] == str(int(clock.now()) + 35)
    r = await client.post(
        f"{AP}/carousels/car_1/assets",
        headers=X_API_KEY,  # one budget per key, either header
        files={"file": ("a.png", sample("png"), "image/png")},
    )
    assert r.status_code == 429 and r.headers["retry-after"] == "35"
    assert r.json() == {
        "success": False,
        "error": "Too Many Requests",
        "message": "Rate limit exceeded. Retry after 35 seconds.",
    }
    assert (await client.post(INIT, headers=OTHER, json=INIT_BODY)).status_code == 201  # per key
    clock.advance(34)
    assert (await client.post(INIT, headers=AUTH, json=INIT_BODY)).status_code == 429
    clock.advance(1)
    assert (await client.post(INIT, headers=AUTH, json=INIT_BODY)).status_code == 201


@pytest.mark.parametrize("settings", [Settings(strict=True, rate_limits={"autoposting.minute": 3})])
async def test_the_default_is_configurable(client, settings):
    for _ in range(3):
        r = await client.post(INIT, headers=AUTH, json=INIT_BODY)
        assert r.status_code == 201 and r.headers["x-ratelimit-limit"] == "3"
    r = await client.get(f"{AP}/clips/clip_x", headers=AUTH)
    assert clips_error(r, 429, "rate_limited") == "Rate limit exceeded. Retry after 60 seconds."


async def test_limit_is_exact_under_concurrency(client):
    responses = await asyncio.gather(*(client.post(INIT, headers=AUTH, json=INIT_BODY) for _ in range(130)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 100 and statuses.count(429) == 30


@pytest.mark.parametrize("settings", [Settings(strict=True, rate_limits={"autoposting.minute": 2})])
async def test_storage_urls_are_not_rate_limited(client, settings):
    clip = await init(client, 10)
    urls = await presign(client, clip, [1])
    for _ in range(5):
        r = await client.put(urls[1], content=b"0123456789")
        assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers


# --- serving -----------------------------------------------------------------------------------------------------


async def test_openapi_json_serves_the_effective_spec_with_the_emulator_first(client):
    from emulator.core.specs import load

    r = await client.get("/autoposting/openapi.json")
    served = r.json()
    assert served["servers"][0] == {
        "url": "http://127.0.0.1:8080/autoposting/api-proxy",
        "description": "upload-emulator",
    }
    assert served["servers"][1:] == [{"url": "https://app.autoposting.ai/api-proxy", "description": "Production"}]
    assert served["paths"] == load("autoposting").effective["paths"]


@pytest.mark.parametrize("settings", [Settings(strict=True, provider="autoposting")])
async def test_per_provider_mode_serves_at_the_root(client, settings):
    r = await client.post("/api-proxy/clips/upload/init", headers=AUTH, json={**INIT_BODY, "fileSize": 200})
    assert r.status_code == 201
    clip = r.json()["data"]
    r = await client.post("/api-proxy/clips/upload/presign", headers=AUTH, json={**ids(clip), "partNumbers": [1]})
    url = r.json()["data"]["presignedUrls"][0]["url"]
    assert url.startswith(f"http://127.0.0.1:8080/api-proxy/storage/clips/{clip['uploadId']}/1?")
    etag = (await client.put(url, content=video(200))).headers["etag"]
    r = await client.post(
        "/api-proxy/clips/upload/complete", headers=AUTH, json={**ids(clip), "parts": [{"partNumber": 1, "etag": etag}]}
    )
    assert r.status_code == 200
    view = (await client.get(f"/api-proxy/clips/{clip['clipId']}", headers=AUTH)).json()["data"]
    assert view["url"].startswith("http://127.0.0.1:8080/api-proxy/storage/objects/clips/")
    r = await client.post(
        "/api-proxy/carousels/car_1/assets", headers=AUTH, files={"file": ("a.png", sample("png"), "image/png")}
    )
    assert r.json()["data"]["url"].startswith("http://127.0.0.1:8080/api-proxy/storage/assets/asset_")
    assert (await client.get(r.json()["data"]["url"])).content == sample("png")
    assert (await client.get("/openapi.json")).json()["servers"][0]["url"] == "http://127.0.0.1:8080/api-proxy"


async def test_unrouted_requests_answer_in_the_shape_of_their_path(client):
    r = await client.get(f"{AP}/nothing", headers=AUTH)
    assert clips_error(r, 404, "not_found") == f"No route for GET {AP}/nothing."
    r = await client.delete(f"{AP}/clips/upload/init", headers=AUTH)
    assert clips_error(r, 405, "method_not_allowed").startswith("Method DELETE is not allowed")
    r = await client.put(f"{AP}/carousels/car_1/assets", headers=AUTH)
    assert r.status_code == 405 and r.json()["error"] == "Method Not Allowed"


def test_serve_prints_the_autoposting_base_url_and_dev_key(tmp_path):
    port = free_port()
    env = {**os.environ, "UPLOAD_EMULATOR_PORT": str(port), "COLUMNS": "250", "TERM": "dumb"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", "--provider", "autoposting"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                r = httpx.post(
                    f"http://127.0.0.1:{port}/api-proxy/clips/upload/init",
                    timeout=1,
                    headers={"x-api-key": "sk-social-dev0123456789abcdef"},
                    json=INIT_BODY,
                )
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("serve did not answer")
        assert r.status_code == 201
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0]
    assert f"http://127.0.0.1:{port}/api-proxy" in output
    assert "https://app.autoposting.ai/api-proxy" in output
    assert "sk-social-dev0123456789abcdef" in output
    assert OTHER_KEY not in output


async def test_health_needs_no_key_and_answers_success_true(client):
    for headers in ({}, {"Authorization": "Bearer not-a-key"}, AUTH):
        r = await client.get(f"{AP}/health", headers=headers)
        assert r.status_code == 200 and r.json() == {"success": True}
        assert r.content == b'{"success":true}'
        assert "X-RateLimit-Limit" not in r.headers  # not rate-limited, not tied to a key
    r = await client.post(f"{AP}/health")
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"
