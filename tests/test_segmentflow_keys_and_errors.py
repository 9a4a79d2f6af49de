"""Segmentflow keys (x-api-key, sk_live_ shape, revocation, strict keys, scopes, magic keys), the error
envelope of the errors page, unrouted requests, and rate limits (headers, 429, overrides)."""

from __future__ import annotations

import time

import pytest

from emulator import Settings
from tests.test_segmentflow_flow import (
    AUTH,
    KEY,
    OTHER,
    READONLY,
    READONLY_KEY,
    SF,
    png,
    register,
    stored_asset,
    uploaded,
)

BOTH_STORES = True  # every test here runs on the memory store and on Redis (conftest.py)

pytestmark = pytest.mark.anyio

UPLOAD_URL = f"{SF}/assets/upload-url"
BODY = {"filename": "photo.png", "contentType": "image/png", "size": 10}
SHAPE = "sk_live_ followed by 16 to 128 letters, digits or underscores"
ONE = f"{SF}/assets/00000000-0000-4000-8000-000000000000"


@pytest.mark.parametrize(
    "headers, reason",
    [
        ({}, "missing"),
        ({"x-api-key": ""}, "missing"),
        ({"Authorization": f"Bearer {KEY}"}, "missing"),  # the documented header is x-api-key, not a bearer token
        ({"x-api-key": "sk_test_" + "0" * 32}, "malformed"),
        ({"x-api-key": "sk_live_" + "0" * 15}, "malformed"),
        ({"x-api-key": "sk_live_" + "0" * 129}, "malformed"),
        ({"x-api-key": "sk_live_" + "0" * 31 + "-"}, "malformed"),
        ({"x-api-key": "pk_live_" + "0" * 32}, "malformed"),
    ],
)
async def test_missing_or_malformed_keys_are_401(client, headers, reason):
    r = await client.post(UPLOAD_URL, headers=headers, json=BODY)
    assert r.status_code == 401
    body = r.json()
    assert body["error"] == "unauthorized"
    assert body["message"].startswith("Missing or invalid x-api-key. ")
    assert body["details"] == {"reason": reason}
    if reason == "malformed":
        assert body["message"] == f"Missing or invalid x-api-key. Malformed API key: expected {SHAPE}."
        assert headers["x-api-key"] not in r.text
    assert "x-ratelimit-limit" not in r.headers


@pytest.mark.parametrize("key", ["sk_live_" + "a" * 16, "sk_live_" + "Z9_" * 42 + "ab", "sk_live_readonly_" + "x" * 7])
async def test_keys_of_the_documented_shape_are_accepted(client, key):
    assert len(key) <= 8 + 128
    r = await client.get(f"{SF}/assets", headers={"x-api-key": key})
    assert r.status_code == 200 and r.json() == {"success": True, "assets": []}


@pytest.mark.parametrize(
    "method, path", [("GET", f"{SF}/assets"), ("POST", f"{SF}/assets"), ("GET", ONE), ("PATCH", ONE), ("DELETE", ONE)]
)
async def test_every_api_operation_needs_a_key(client, method, path):
    r = await client.request(method, path, json={} if method in ("POST", "PATCH") else None)
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"


async def test_the_key_never_appears_in_a_response(client):
    for bad in ("sk_live_" + "Z" * 15, "sk_live_" + "é" * 20):
        r = await client.post(UPLOAD_URL, headers={"x-api-key": bad.encode()}, json=BODY)
        assert r.status_code == 401 and bad not in r.text and "Z" * 15 not in r.text
    asset = await stored_asset(client)
    for r in (
        await client.post(UPLOAD_URL, headers=AUTH, json={**BODY, "size": "x"}),
        await client.get(f"{SF}/assets/{asset['id']}", headers=AUTH),
        await client.post(UPLOAD_URL, headers=READONLY, json=BODY),
    ):
        assert KEY not in r.text and READONLY_KEY not in r.text


async def test_revoked_keys_are_401(client, runtime):
    runtime.keys.revoke("segmentflow", KEY)
    r = await client.post(UPLOAD_URL, headers=AUTH, json=BODY)
    assert r.status_code == 401 and r.json()["details"] == {"reason": "revoked"}
    assert r.json()["message"] == "Missing or invalid x-api-key. API key has been revoked."
    assert (await client.post(UPLOAD_URL, headers=OTHER, json=BODY)).status_code == 200


@pytest.mark.parametrize("settings", [Settings(strict=True, strict_keys=True, keys={"segmentflow": [KEY]})])
async def test_strict_keys_accept_only_configured_keys(client, settings):
    assert (await client.post(UPLOAD_URL, headers=AUTH, json=BODY)).status_code == 200
    r = await client.post(UPLOAD_URL, headers=OTHER, json=BODY)
    assert r.status_code == 401 and r.json()["details"] == {"reason": "unknown"}


# --- the read-only magic key ---------------------------------------------------------------------------------------


def assert_insufficient_scope(r, scope: str = "assets:write") -> None:
    assert r.status_code == 403
    assert r.json() == {
        "error": "insufficient_scope",
        "message": f"This API key lacks the scope(s) {scope}.",
        "required": [scope],
    }


async def test_the_read_only_magic_key_cannot_mint_uploads_or_register(client, runtime):
    assert_insufficient_scope(await client.post(UPLOAD_URL, headers=READONLY, json=BODY))
    image = png(4, 4)
    data = await uploaded(client, image)
    assert_insufficient_scope(await register(client, data["key"], image, headers=READONLY))
    # the scope is checked before the body: an invalid body from this key is refused for its scope too
    assert_insufficient_scope(await client.post(UPLOAD_URL, headers=READONLY, json={}))
    assert [u.key for u in runtime.store.values("segmentflow:uploads")] == [data["key"]]  # nothing created


async def test_the_read_only_magic_key_reads_but_cannot_patch_or_delete(client):
    listed = await client.get(f"{SF}/assets", headers=READONLY)
    assert listed.status_code == 200 and listed.json() == {"success": True, "assets": []}
    asset = await stored_asset(client)
    url = f"{SF}/assets/{asset['id']}"
    assert (await client.get(url, headers=READONLY)).status_code == 404  # it is an organisation of its own
    assert_insufficient_scope(await client.patch(url, headers=READONLY, json={"description": "x"}))
    assert_insufficient_scope(await client.delete(url, headers=READONLY))
    assert (await client.get(url, headers=AUTH)).json()["asset"] == asset  # untouched


async def test_keys_created_with_scopes_get_exactly_those(client, runtime, clock):
    writer, reader = "sk_live_" + "w" * 32, "sk_live_" + "r" * 32
    runtime.keys.create("segmentflow", writer, frozenset({"assets:write"}), {}, clock.now())
    runtime.keys.create("segmentflow", reader, frozenset({"assets:read"}), {}, clock.now())
    asset = await stored_asset(client, headers={"x-api-key": writer})
    assert_insufficient_scope(await client.get(f"{SF}/assets", headers={"x-api-key": writer}), "assets:read")
    assert_insufficient_scope(
        await client.get(f"{SF}/assets/{asset['id']}", headers={"x-api-key": writer}), "assets:read"
    )
    assert_insufficient_scope(await client.post(UPLOAD_URL, headers={"x-api-key": reader}, json=BODY))
    assert (await client.get(f"{SF}/assets", headers={"x-api-key": reader})).status_code == 200


async def test_the_always_revoked_magic_key_is_401(client):
    r = await client.get(f"{SF}/assets", headers={"x-api-key": "sk_live_00000000000000000000000000000401"})
    assert r.status_code == 401
    assert r.json() == {
        "error": "unauthorized",
        "message": "Missing or invalid x-api-key. API key has been revoked.",
        "details": {"reason": "revoked"},
    }


async def test_the_always_rate_limited_magic_key_is_429(client, clock):
    r = await client.post(UPLOAD_URL, headers={"x-api-key": "sk_live_00000000000000000000000000000429"}, json=BODY)
    assert r.status_code == 429
    assert r.json() == {
        "error": "rate_limited",
        "message": "Rate limit exceeded. Retry after 60 seconds.",
        "details": {"retryAfter": 60},
    }
    assert r.headers["retry-after"] == "60" and r.headers["x-ratelimit-remaining"] == "0"
    assert r.headers["x-ratelimit-limit"] == "1000" and r.headers["x-ratelimit-reset"] == "60"


async def test_the_slow_magic_key_waits_2_seconds(client):
    started = time.perf_counter()
    r = await client.get(f"{SF}/assets", headers={"x-api-key": "sk_live_00000000000000000000000000002000"})
    assert r.status_code == 200 and time.perf_counter() - started >= 2.0


# --- unrouted requests ---------------------------------------------------------------------------------------------


async def test_unknown_api_paths_are_404_in_the_envelope(client):
    r = await client.get(f"{SF}/media", headers=AUTH)
    assert r.status_code == 404
    assert r.json() == {"error": "not_found", "message": "No route for GET /segmentflow/api/v1/media."}


async def test_an_api_path_naming_storage_still_answers_in_the_json_envelope(client):
    r = await client.get(f"{SF}/storage/assets/x", headers=AUTH)
    assert r.status_code == 404 and r.json()["error"] == "not_found"


async def test_wrong_methods_are_405_in_the_envelope(client):
    r = await client.put(f"{SF}/assets", headers=AUTH, json={})
    assert r.status_code == 405
    assert r.json() == {
        "error": "method_not_allowed",
        "message": "Method PUT is not allowed on /segmentflow/api/v1/assets.",
    }


async def test_trailing_slashes_are_not_redirected(client):
    r = await client.post(f"{UPLOAD_URL}/", headers=AUTH, json=BODY)
    assert r.status_code == 404 and r.json()["error"] == "not_found"


# --- rate limits ---------------------------------------------------------------------------------------------------


async def test_every_keyed_response_carries_rate_limit_headers(client, clock):
    r = await client.post(UPLOAD_URL, headers=AUTH, json=BODY)
    assert r.headers["x-ratelimit-limit"] == "1000"
    assert r.headers["x-ratelimit-remaining"] == "999"
    assert r.headers["x-ratelimit-reset"] == "60"  # seconds until the window frees up, as @fastify/rate-limit
    assert "retry-after" not in r.headers
    clock.advance(12.4)
    later = await client.post(UPLOAD_URL, headers=AUTH, json=BODY)
    assert later.headers["x-ratelimit-reset"] == "48"  # ceil(60 - 12.4): rounded up, like Math.ceil(ttl / 1000)
    bad = await client.post(UPLOAD_URL, headers=AUTH, json={})  # refusals count and carry them too
    assert bad.status_code == 400 and bad.headers["x-ratelimit-remaining"] == "997"
    assert bad.headers["x-ratelimit-reset"] == "48"
    scoped = await client.post(UPLOAD_URL, headers=READONLY, json=BODY)
    assert scoped.status_code == 403 and "x-ratelimit-limit" not in scoped.headers  # refused before counting


@pytest.mark.parametrize("settings", [Settings(strict=True, rate_limits={"segmentflow.minute": 3})])
async def test_past_the_limit_is_429_with_headers_and_retry_after(client, clock, settings):
    for n in range(3):
        r = await client.post(UPLOAD_URL, headers=AUTH, json=BODY)
        assert r.status_code == 200 and r.headers["x-ratelimit-remaining"] == str(2 - n)
        clock.advance(10)
    r = await client.get(f"{SF}/assets", headers=AUTH)  # one budget for every operation
    assert r.status_code == 429
    assert r.json() == {
        "error": "rate_limited",
        "message": "Rate limit exceeded. Retry after 30 seconds.",
        "details": {"retryAfter": 30},
    }
    assert r.headers["retry-after"] == "30"
    assert r.headers["x-ratelimit-limit"] == "3" and r.headers["x-ratelimit-remaining"] == "0"
    assert r.headers["x-ratelimit-reset"] == "30"  # the same figure as Retry-After, as @fastify/rate-limit sends
    assert (await client.get(f"{SF}/assets", headers=OTHER)).status_code == 200  # another key is unaffected
    clock.advance(29)
    assert (await client.get(f"{SF}/assets", headers=AUTH)).status_code == 429
    clock.advance(1)
    assert (await client.get(f"{SF}/assets", headers=AUTH)).status_code == 200
