"""Keys (format, tenants, strict mode, revocation) and rate limits (headers, 429 arithmetic, concurrency)."""

from __future__ import annotations

import asyncio

import pytest

from emulator import Settings
from tests.helpers import AUTH, OTHER, PE, PE_KEY

BOTH_STORES = True  # every test here runs on the memory store and on Redis (conftest.py)

pytestmark = pytest.mark.anyio

UPLOAD = f"{PE}/media/upload"
BODY = {"filename": "a.png", "content_type": "image/png", "size": 10}
POST = {"content": "hello", "account_ids": [1]}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {PE_KEY}"},
        {"Authorization": "Bearer pe_live_" + "A" * 32},
        {"Authorization": "Bearer pe_live_" + "a" * 31},
        {"Authorization": "Bearer pe_test_" + "a" * 32},
        {"Authorization": "Bearer sk-social-abc"},
        {"x-api-key": PE_KEY},
    ],
)
async def test_missing_or_malformed_keys_get_401(client, headers):
    r = await client.post(UPLOAD, headers=headers, json=BODY)
    assert r.status_code == 401
    body = r.json()
    assert body["data"] is None
    assert body["error"]["code"] == "unauthorized"
    assert body["error"]["retryable"] is False
    assert body["error"]["message"] == "Invalid or expired API key"  # the documented text, exactly
    details = body["error"]["details"]
    assert details["reason"] in ("missing", "malformed")
    assert details["hint"].count("Bearer pe_live_<32 lowercase hex>") == 1  # the hint, once
    assert "x-ratelimit-limit" not in r.headers


async def test_the_key_never_appears_in_an_error(client):
    bad = "pe_live_" + "Z" * 32
    r = await client.post(UPLOAD, headers={"Authorization": f"Bearer {bad}"}, json=BODY)
    assert bad not in r.text
    r = await client.post(UPLOAD, headers=AUTH, json={**BODY, "size": "x"})
    assert PE_KEY not in r.text


@pytest.mark.parametrize("settings", [Settings(strict=True, strict_keys=True, keys={"posteverywhere": [PE_KEY]})])
async def test_strict_keys_accept_only_configured_keys(client, settings):
    assert (await client.post(UPLOAD, headers=AUTH, json=BODY)).status_code == 201
    r = await client.post(UPLOAD, headers=OTHER, json=BODY)
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "Invalid or expired API key"
    assert r.json()["error"]["details"]["reason"] == "unknown"
    assert r.json()["error"]["details"]["hint"].startswith("Unknown API key.")


async def test_revoked_keys_get_401(client, runtime):
    runtime.keys.revoke("posteverywhere", PE_KEY)
    r = await client.post(UPLOAD, headers=AUTH, json=BODY)
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "Invalid or expired API key"
    assert r.json()["error"]["details"]["reason"] == "revoked"
    assert (await client.post(UPLOAD, headers=OTHER, json=BODY)).status_code == 201


async def test_every_keyed_response_carries_rate_limit_headers(client, clock):
    r = await client.post(UPLOAD, headers=AUTH, json=BODY)
    assert r.headers["x-ratelimit-limit"] == "60"
    assert r.headers["x-ratelimit-remaining"] == "59"
    assert r.headers["x-ratelimit-reset"] == str(int(clock.now()) + 60)
    assert "retry-after" not in r.headers
    bad = await client.post(UPLOAD, headers=AUTH, json={})  # a 400 counts and carries them too
    assert bad.status_code == 400 and bad.headers["x-ratelimit-remaining"] == "58"


async def test_61st_request_in_a_minute_is_429_with_retry_after(client, clock):
    for n in range(60):
        r = await client.post(UPLOAD, headers=AUTH, json=BODY)
        assert r.status_code == 201 and r.headers["x-ratelimit-remaining"] == str(59 - n)
        clock.advance(0.5)  # 60 requests spread over 30 s
    r = await client.post(UPLOAD, headers=AUTH, json=BODY)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "30"  # the first request leaves the window 60 s after it was made
    assert r.headers["x-ratelimit-remaining"] == "0"
    assert r.headers["x-ratelimit-limit"] == "60"
    assert r.headers["x-ratelimit-reset"] == str(int(clock.now()) + 30)
    error = r.json()["error"]
    assert error == {
        "message": "Rate limit exceeded. Retry after 30 seconds.",
        "code": "rate_limited",
        "retryable": True,
        "retryAfter": 30,
        "details": {},
    }
    # another key is not affected
    assert (await client.post(UPLOAD, headers=OTHER, json=BODY)).status_code == 201
    clock.advance(29)
    assert (await client.post(UPLOAD, headers=AUTH, json=BODY)).status_code == 429
    clock.advance(1)
    assert (await client.post(UPLOAD, headers=AUTH, json=BODY)).status_code == 201


@pytest.mark.parametrize(
    "settings", [Settings(strict=True, rate_limits={"posteverywhere.minute": 10_000, "posteverywhere.hour": 5})]
)
async def test_hourly_limit_and_overrides(client, clock, settings):
    for _ in range(5):
        assert (await client.post(UPLOAD, headers=AUTH, json=BODY)).status_code == 201
        clock.advance(60)
    r = await client.post(UPLOAD, headers=AUTH, json=BODY)
    assert r.status_code == 429
    assert r.headers["x-ratelimit-limit"] == "5"
    assert r.headers["retry-after"] == str(3600 - 5 * 60)


async def test_posts_have_their_own_20_per_minute(client):
    for n in range(20):
        r = await client.post(f"{PE}/posts", headers=AUTH, json=POST)
        assert r.status_code == 201
        assert r.headers["x-ratelimit-limit"] == "20" and r.headers["x-ratelimit-remaining"] == str(19 - n)
    r = await client.post(f"{PE}/posts", headers=AUTH, json=POST)
    assert r.status_code == 429 and r.headers["retry-after"] == "60"
    # the general budget still has room for other operations
    r = await client.post(UPLOAD, headers=AUTH, json=BODY)
    assert r.status_code == 201 and r.headers["x-ratelimit-remaining"] == "39"


async def test_limit_is_exact_under_concurrency(client):
    responses = await asyncio.gather(*(client.post(UPLOAD, headers=AUTH, json=BODY) for _ in range(100)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 60 and statuses.count(429) == 40
    remaining = sorted(int(r.headers["x-ratelimit-remaining"]) for r in responses if r.status_code == 201)
    assert remaining == list(range(60))


async def test_storage_requests_are_not_rate_limited(client):
    data = (await client.post(UPLOAD, headers=AUTH, json=BODY)).json()["data"]
    r = await client.get(data["upload_url"].split("?")[0])
    assert "x-ratelimit-limit" not in r.headers
