"""Keys, the error envelope, rate limits, size limits, content types, routing, and garbage that must not 500."""

from __future__ import annotations

import pytest

from emulator import Settings
from emulator.providers import xenonflare
from tests.test_xenonflare_support import (
    HEADERS,
    JPG,
    KEY,
    XF,
    assert_error,
    chunk_status,
    post_image,
    send_chunk,
)

BOTH_STORES = True  # every test here runs on the memory store and on Redis (conftest.py)

pytestmark = pytest.mark.anyio


# --- keys --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers, reason",
    [
        ({}, "Missing API key"),
        ({"X-API-Key": "YOUR_API_KEY"}, "Malformed API key"),
        ({"X-API-Key": "xf_short"}, "Malformed API key"),
        ({"Authorization": "Bearer pe_live_" + "0" * 32}, "Malformed API key"),
        ({"Authorization": "Basic " + KEY}, "Missing API key"),
    ],
)
async def test_missing_or_malformed_keys_are_401(client, headers, reason):
    r = await post_image(client, {"platforms": '["instagram"]'}, headers=headers)
    body = assert_error(r, 401, "api_key_invalid")
    assert body["message"].startswith(f"Invalid or missing API key: {reason}")
    assert body["message"].count("X-API-Key: xf_<16-128") == 1  # the hint once, also for a malformed key
    assert "x-ratelimit-limit" not in r.headers  # refused before it counts


@pytest.mark.parametrize(
    "path", [f"{XF}/chunks?fileId=a", f"{XF}/images/65cbde4f2a1b3c4d5e6f7a8b", f"{XF}/videos/65cbde4f2a1b3c4d5e6f7a8b"]
)
async def test_every_read_needs_a_key(client, path):
    assert_error(await client.get(path), 401, "api_key_invalid")


@pytest.mark.parametrize("settings", [Settings(strict=True, strict_keys=True, keys={"xenonflare": [KEY]})])
async def test_strict_keys_accept_only_configured_keys(client, settings):
    assert (await post_image(client, {"platforms": '["instagram"]'})).status_code == 200
    other = await post_image(client, {"platforms": '["instagram"]'}, headers={"X-API-Key": "xf_live_" + "9" * 32})
    body = assert_error(other, 401, "api_key_invalid")
    assert "9" * 32 not in body["message"]


async def test_x_api_key_is_read_before_the_bearer_token(client):
    good, bad = KEY, "xf_bad"
    both = {"X-API-Key": good, "Authorization": f"Bearer {bad}"}
    assert (await post_image(client, {"platforms": '["instagram"]'}, headers=both)).status_code == 200
    reversed_ = {"X-API-Key": bad, "Authorization": f"Bearer {good}"}
    assert_error(await post_image(client, {"platforms": '["instagram"]'}, headers=reversed_), 401, "api_key_invalid")


async def test_test_keys_work_too(client):
    r = await post_image(client, {"platforms": '["instagram"]'}, headers={"X-API-Key": "xf_test_" + "a1" * 16})
    assert r.status_code == 200


# --- rate limits -------------------------------------------------------------------------------------------------


async def test_default_limits_are_reported_on_every_keyed_response(client, clock):
    upload = await post_image(client, {"platforms": '["instagram"]'})
    assert (upload.headers["x-ratelimit-limit"], upload.headers["x-ratelimit-remaining"]) == ("60", "59")
    assert int(upload.headers["x-ratelimit-reset"]) == int(clock.now()) + 3600
    read = await client.get(f"{XF}/chunks", params={"fileId": "f"}, headers=HEADERS)
    assert read.headers["x-ratelimit-limit"] == "1000"
    chunk = await send_chunk(client, "f", 0, 2, b"abc")
    assert chunk.headers["x-ratelimit-limit"] == "1000" and chunk.headers["x-ratelimit-remaining"] == "999"
    refused = await post_image(client, {"platforms": '["nowhere"]'})
    assert refused.status_code == 400 and refused.headers["x-ratelimit-remaining"] == "58"


@pytest.mark.parametrize("settings", [Settings(strict=True, seed=1, rate_limits={"xenonflare.writes": 2})])
async def test_past_the_limit_is_429_with_retry_after_until_the_window_moves(client, clock, settings):
    for _ in range(2):
        assert (await post_image(client, {"platforms": '["instagram"]'})).status_code == 200
    clock.advance(600)
    r = await post_image(client, {"platforms": '["instagram"]'})
    body = assert_error(r, 429, "rate_limited")
    assert body["message"] == "Too many requests, please try again later."
    assert r.headers["retry-after"] == "3000"
    assert r.headers["x-ratelimit-limit"] == "2" and r.headers["x-ratelimit-remaining"] == "0"
    assert int(r.headers["x-ratelimit-reset"]) == int(clock.now()) + 3000
    # reads and chunks have their own budgets
    assert (await client.get(f"{XF}/chunks", params={"fileId": "f"}, headers=HEADERS)).status_code == 200
    assert (await send_chunk(client, "f", 0, 2, b"abc")).status_code == 200
    clock.advance(3000)
    assert (await post_image(client, {"platforms": '["instagram"]'})).status_code == 200


@pytest.mark.parametrize(
    "settings", [Settings(strict=True, seed=1, rate_limits={"xenonflare.reads": 1, "xenonflare.chunks": 1})]
)
async def test_read_and_chunk_limits_are_configurable(client, settings):
    assert (await client.get(f"{XF}/chunks", params={"fileId": "f"}, headers=HEADERS)).status_code == 200
    assert_error(await client.get(f"{XF}/images/65cbde4f2a1b3c4d5e6f7a8b", headers=HEADERS), 429, "rate_limited")
    assert (await send_chunk(client, "f", 0, 2, b"abc")).status_code == 200
    assert_error(await send_chunk(client, "f", 1, 2, b"def"), 429, "rate_limited")


async def test_limits_are_per_key(client):
    assert xenonflare.limits("uploadImage")[0].limit == 60
    first = await post_image(client, {"platforms": '["instagram"]'})
    other = await post_image(client, {"platforms": '["instagram"]'}, headers={"X-API-Key": "xf_live_" + "b" * 32})
    assert first.headers["x-ratelimit-remaining"] == other.headers["x-ratelimit-remaining"] == "59"


# --- sizes and content types -------------------------------------------------------------------------------------


async def test_a_direct_upload_over_100_mib_is_413_and_leaves_nothing(client, runtime):
    too_big = JPG + b"\0" * (xenonflare.DIRECT_MAX + 1 - len(JPG))

    async def stream():  # no Content-Length: the limit bites while streaming
        yield b'--b\r\nContent-Disposition: form-data; name="platforms"\r\n\r\n["instagram"]\r\n'
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n\r\n'
        for i in range(0, len(too_big), 8 * 1024 * 1024):
            yield too_big[i : i + 8 * 1024 * 1024]
        yield b"\r\n--b--\r\n"

    r = await client.post(
        f"{XF}/images", content=stream(), headers={**HEADERS, "Content-Type": "multipart/form-data; boundary=b"}
    )
    body = assert_error(r, 413, "payload_too_large", "file")
    assert str(xenonflare.DIRECT_MAX) in body["message"]
    assert runtime.blobs.index == {} and list(runtime.blobs.tmp_dir.iterdir()) == []


async def test_a_declared_oversize_body_is_413_before_reading(client):
    async def stream():
        yield b"--b\r\n"

    r = await client.post(
        f"{XF}/videos",
        content=stream(),
        headers={
            **HEADERS,
            "Content-Type": "multipart/form-data; boundary=b",
            "Content-Length": str(xenonflare.DIRECT_MAX + 2 * 1024 * 1024),
        },
    )
    assert_error(r, 413, "payload_too_large", "file")


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded", None])
async def test_a_body_that_is_not_multipart_is_415(client, content_type):
    headers = dict(HEADERS) | ({"Content-Type": content_type} if content_type else {})
    r = await client.post(f"{XF}/images", headers=headers, content=b'{"platforms": ["instagram"]}')
    body = assert_error(r, 415, "unsupported_media_type", "Content-Type")
    assert "multipart/form-data" in body["message"]


# --- routing -----------------------------------------------------------------------------------------------------


async def test_unknown_paths_and_methods_answer_in_the_envelope(client):
    assert_error(await client.get("/xenonflare/api/v1/media/audio", headers=HEADERS), 404, "not_found")
    r = await client.delete(f"{XF}/images", headers=HEADERS)
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "POST"


async def test_openapi_is_served_with_the_emulator_first(client):
    served = (await client.get("/xenonflare/openapi.json")).json()
    assert served["servers"][0]["url"] == "http://127.0.0.1:8080/xenonflare"
    assert served["servers"][1]["url"] == "https://api.xenonflare.com"


@pytest.mark.parametrize("settings", [Settings(strict=True, seed=1, provider="xenonflare")])
async def test_per_provider_mode_serves_the_real_paths_at_the_root(client, settings):
    r = await client.post(
        "/api/v1/media/images",
        headers=HEADERS,
        files={"file": ("a.jpg", JPG, "image/jpeg"), "platforms": (None, '["instagram"]')},
    )
    assert r.status_code == 200
    media_id = r.json()["data"][0]["id"]
    assert (await client.get(f"/api/v1/media/images/{media_id}", headers=HEADERS)).status_code == 200
    assert_error(await client.get(f"{XF}/images/{media_id}", headers=HEADERS), 404, "not_found")


# --- garbage in, a precise 4xx out -------------------------------------------------------------------------------

GARBAGE = {
    "no-boundary": ("multipart/form-data", b"--x\r\n"),
    "truncated": (
        "multipart/form-data; boundary=x",
        b'--x\r\nContent-Disposition: form-data; name="platforms"\r\n\r\n["instagram"]',
    ),
    "nameless-part": (
        "multipart/form-data; boundary=x",
        b"--x\r\nContent-Disposition: form-data\r\n\r\nv\r\n--x--\r\n",
    ),
    "not-utf8": (
        "multipart/form-data; boundary=x",
        b'--x\r\nContent-Disposition: form-data; name="platforms"\r\n\r\n\xff\xfe\r\n--x--\r\n',
    ),
    "empty": ("multipart/form-data; boundary=x", b""),
    "only-closing": ("multipart/form-data; boundary=x", b"--x--\r\n"),
    "deep-json": (
        "multipart/form-data; boundary=x",
        b'--x\r\nContent-Disposition: form-data; name="platforms"\r\n\r\n' + b"[" * 50000 + b"\r\n--x--\r\n",
    ),
    "nul-in-field": (
        "multipart/form-data; boundary=x",
        b'--x\r\nContent-Disposition: form-data; name="platforms"\r\n\r\n["insta\x00gram"]\r\n--x--\r\n',
    ),
}


@pytest.mark.parametrize("name", sorted(GARBAGE))
@pytest.mark.parametrize("path", [f"{XF}/images", f"{XF}/videos", f"{XF}/chunks"])
async def test_garbage_bodies_get_a_precise_400_never_a_500(client, name, path):
    content_type, body = GARBAGE[name]
    r = await client.post(path, headers={**HEADERS, "Content-Type": content_type}, content=body)
    assert r.status_code == 400, r.text
    assert_error(r, 400, "validation_failed")


async def test_a_huge_chunk_index_is_just_out_of_range(client):
    r = await send_chunk(client, "f", 10**30, 3, b"abc")
    assert_error(r, 400, "validation_failed", "chunkIndex")
    assert (await chunk_status(client, "f"))["exists"] is False
