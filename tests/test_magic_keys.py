"""Magic keys of every provider, through HTTP: always revoked, always rate-limited, always slow, read-only."""

from __future__ import annotations

import time

import pytest

from emulator.providers import PROVIDERS

BOTH_STORES = True  # every test here runs on the memory store and on Redis (conftest.py)

pytestmark = pytest.mark.anyio

# provider → (a write request (method, path, json), the read-only key's status on writes, or None when its read-only
# key is tested on its own below); how each carries its key comes from its KeyPolicy
CASES = {
    "autoposting": (
        (
            "POST",
            "/autoposting/api-proxy/clips/upload/init",
            {"brandId": "brand_1", "title": "t", "fileName": "a.mp4", "fileSize": 10, "mimeType": "video/mp4"},
        ),
        403,
    ),
    "posteverywhere": (
        ("POST", "/posteverywhere/api/v1/media/upload", {"filename": "a.png", "content_type": "image/png", "size": 10}),
        401,
    ),
    "segmentflow": (
        (
            "POST",
            "/segmentflow/api/v1/assets/upload-url",
            {"filename": "a.png", "contentType": "image/png", "size": 10},
        ),
        403,
    ),
    "xenonflare": (("GET", "/xenonflare/api/v1/media/chunks?fileId=abc", None), None),
}
PROVIDER_SUBSETS = {  # tests/test_registry.py: tests that cover only some providers, and why
    "test_read_only_keys_cannot_write": "a read-only key refused with a status (CASES); XenonFlare's has its own test",
}


def magic(provider: str, describe_prefix: str) -> str:
    (key,) = [k for k, m in PROVIDERS[provider].keys.magic.items() if m.describe.startswith(describe_prefix)]
    return key


def headers(provider: str, key: str) -> dict[str, str]:
    """The key where the provider reads it: its own header when it has one, else ``Authorization: Bearer``."""
    policy = PROVIDERS[provider].keys
    return {policy.header: key} if policy.header else {"Authorization": f"Bearer {key}"}


async def send(client, provider: str, key: str):
    method, path, body = CASES[provider][0]
    return await client.request(method, path, headers=headers(provider, key), json=body)


def test_every_provider_declares_the_four_magic_keys():
    for name, provider in PROVIDERS.items():
        behaviours = sorted(
            "revoked" if m.revoked else "rate_limited" if m.rate_limited else "slow" if m.delay else "read_only"
            for m in provider.keys.magic.values()
            if m.revoked or m.rate_limited or m.delay or m.scopes is not None
        )
        assert behaviours == ["rate_limited", "read_only", "revoked", "slow"], name
        for key in provider.keys.magic:
            assert provider.keys.pattern.fullmatch(key), key


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
async def test_always_revoked(client, provider):
    r = await send(client, provider, magic(provider, "always revoked"))
    assert r.status_code == 401


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
async def test_always_rate_limited(client, provider):
    r = await send(client, provider, magic(provider, "always rate-limited"))
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0 and r.headers["x-ratelimit-remaining"] == "0"


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
async def test_always_slow(client, provider):
    started = time.perf_counter()
    r = await send(client, provider, magic(provider, "always slow"))
    assert r.status_code < 500 and r.status_code not in (401, 429)
    assert time.perf_counter() - started >= 2.0


@pytest.mark.parametrize("provider", sorted(p for p in PROVIDERS if CASES[p][1] is not None))
async def test_read_only_keys_cannot_write(client, provider):
    key = [k for k, m in PROVIDERS[provider].keys.magic.items() if m.scopes is not None][0]
    r = await send(client, provider, key)
    assert r.status_code == CASES[provider][1]
    assert "scope" in r.text


async def test_xenonflare_read_only_key_reads_but_cannot_upload(client):
    key = magic("xenonflare", "read only")
    assert (await send(client, "xenonflare", key)).status_code == 200
    r = await client.post(
        "/xenonflare/api/v1/media/images",
        headers={"x-api-key": key},
        files={"fileId": (None, "abc"), "platforms": (None, '["instagram"]')},
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden" and r.json()["success"] is False
