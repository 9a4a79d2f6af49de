"""Under load, through a live uvicorn: concurrent uploads lose nothing, and the rate limiter is exact.

- 100 uploads at once, across all four providers and ten keys (every flow of every provider: presigned PUTs,
  Cloudflare-style image POSTs, multipart clips, carousel assets, registered assets, direct and chunked XenonFlare
  uploads); afterwards every stored byte and ETag is read back and checked, nothing is left half-written, and no
  key sees another key's upload.
- 50 clients at once on one key, on every provider: exactly the limit is admitted, the rest get 429, and the
  rate-limit headers tell one consistent story.

``@pytest.mark.soak`` runs the same load ten times larger (``pytest -m soak``; see the README).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable

import httpx
import pytest

from emulator import Settings
from tests.test_reliability_support import (
    AP,
    GENEROUS_LIMITS,
    MIB,
    PE,
    SF,
    XF,
    Stored,
    ap_asset,
    ap_clip,
    auth,
    index_consistent,
    others_refused,
    partial_files,
    payload,
    pe_image,
    pe_video,
    sf_asset,
    verify,
    xf_chunked_video,
    xf_image,
)

pytestmark = pytest.mark.anyio
TENANTS = 10
LOAD = Settings(strict=True, seed=11, rate_limits=GENEROUS_LIMITS)
FROZEN = 1_790_000_000.0


def _flow(index: int) -> tuple[str, Callable[[httpx.AsyncClient], Awaitable[Stored]]]:
    """Upload ``index``'s provider and flow: providers round-robin, tenants cycle within each provider."""
    provider = ("posteverywhere", "autoposting", "segmentflow", "xenonflare")[index % 4]
    tenant = (index // 4) % TENANTS
    rng = random.Random(index)
    size = rng.randint(2_000, 300_000)
    variant = (index // 4) % 2
    if provider == "posteverywhere":
        if variant:
            return provider, lambda c: pe_video(c, tenant, payload("mp4", size, index))
        return provider, lambda c: pe_image(c, tenant, payload("png", size, index))
    if provider == "autoposting":
        if (index // 4) % 5 == 0:  # two parts: the first at S3's 5 MiB minimum
            data = payload("mp4", 5 * MIB + size, index)
            return provider, lambda c: ap_clip(c, tenant, data, part_size=5 * MIB)
        if variant:
            return provider, lambda c: ap_clip(c, tenant, payload("mp4", size, index))
        return provider, lambda c: ap_asset(c, tenant, payload("png", size, index))
    if provider == "segmentflow":
        return provider, lambda c: sf_asset(c, tenant, payload("png", size, index))
    if variant:
        return provider, lambda c: xf_chunked_video(
            c, tenant, payload("mp4", size, index), chunk=size // 3 + 1, file_id=f"load-{index}"
        )
    return provider, lambda c: xf_image(c, tenant, payload("jpg", size, index))


async def _run_load(live_server, uploads: int) -> None:
    runtime = live_server.app.state.runtime
    flows = [_flow(i) for i in range(uploads)]
    # the client lets idle connections go well before uvicorn's 5 s keep-alive timeout, so that it never sends on
    # a connection the server is closing at that moment (a client-side race no server can prevent)
    limits = httpx.Limits(max_connections=uploads, max_keepalive_connections=uploads, keepalive_expiry=1.0)
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60, limits=limits) as c:
        stored: list[Stored] = await asyncio.gather(*(flow(c) for _, flow in flows))
        assert Counter(s.provider for s in stored) == Counter(p for p, _ in flows)
        assert len({(s.provider, s.id) for s in stored}) == uploads  # every upload got its own id
        for item in stored:
            await verify(c, item, runtime)
            await others_refused(c, item, other=(item.tenant + 1) % TENANTS)
        for tenant in range(TENANTS):  # each organisation lists exactly its own assets
            listed = await c.get(f"{SF}/assets", headers=auth("segmentflow", tenant), params={"limit": 100})
            mine = {s.id for s in stored if s.provider == "segmentflow" and s.tenant == tenant}
            assert {a["id"] for a in listed.json()["assets"]} == mine
    # exactly one stored object per upload: no leftover parts or chunks, nothing half-written, nothing corrupted
    assert len(runtime.blobs.index) == uploads
    assert partial_files(runtime) == []
    index_consistent(runtime)


@pytest.mark.parametrize("settings", [LOAD])
async def test_100_concurrent_uploads_across_providers_and_keys_keep_every_byte(live_server):
    await _run_load(live_server, 100)


@pytest.mark.soak
@pytest.mark.timeout(900)
@pytest.mark.parametrize("settings", [LOAD])
async def test_soak_1000_concurrent_uploads(live_server):
    await _run_load(live_server, 1000)


# --- rate limiter exactness --------------------------------------------------------------------------------------

LIMIT = 20
CLIENTS = 50
EXACT = Settings(
    strict=True,
    seed=12,
    rate_limits={
        "posteverywhere.minute": LIMIT,
        "autoposting.minute": LIMIT,
        "segmentflow.minute": LIMIT,
        "xenonflare.writes": LIMIT,
    },
)


def _limited_request(provider: str) -> tuple[str, str, dict]:
    """One cheap, rate-limited request per provider, with the limit it counts against and its window."""
    if provider == "posteverywhere":
        return "POST", f"{PE}/media/upload", {"json": {"filename": "a.png", "content_type": "image/png", "size": 9}}
    if provider == "autoposting":
        return (
            "POST",
            f"{AP}/clips/upload/init",
            {"json": {"brandId": "b", "title": "t", "fileName": "a.mp4", "fileSize": 9, "mimeType": "video/mp4"}},
        )
    if provider == "segmentflow":
        return "POST", f"{SF}/assets/upload-url", {"json": {"filename": "a.png", "contentType": "image/png", "size": 9}}
    return (
        "POST",
        f"{XF}/images",
        {"files": [("platforms", (None, '["linkedin"]')), ("file", ("a.jpg", payload("jpg", 2_000, 1), "image/jpeg"))]},
    )


WINDOWS = {"posteverywhere": 60, "autoposting": 60, "segmentflow": 60, "xenonflare": 3600}


@pytest.mark.parametrize("settings", [EXACT])
@pytest.mark.parametrize("provider", ["posteverywhere", "autoposting", "segmentflow", "xenonflare"])
async def test_50_concurrent_clients_on_one_key_get_exactly_the_limit(live_server, provider):
    live_server.app.state.runtime.clock.freeze(FROZEN)  # one window for the whole burst
    method, path, kwargs = _limited_request(provider)
    headers = auth(provider, 0)
    window = WINDOWS[provider]

    async def one_client() -> httpx.Response:
        async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as c:  # its own connection
            return await c.request(method, path, headers=headers, **kwargs)

    answers = await asyncio.gather(*(one_client() for _ in range(CLIENTS)))
    admitted = [r for r in answers if r.status_code < 400]
    refused = [r for r in answers if r.status_code == 429]
    assert len(admitted) == LIMIT and len(refused) == CLIENTS - LIMIT, Counter(r.status_code for r in answers)
    # every admitted request saw a different count: remaining LIMIT-1 … 0, each exactly once
    assert sorted(int(r.headers["x-ratelimit-remaining"]) for r in admitted) == list(range(LIMIT))
    # Segmentflow's limiter (@fastify/rate-limit) sends the seconds until the window frees up, the others a Unix time
    reset = window if provider == "segmentflow" else int(FROZEN) + window
    for r in answers:
        assert r.headers["x-ratelimit-limit"] == str(LIMIT)
        assert int(r.headers["x-ratelimit-reset"]) == reset
    for r in refused:
        assert r.headers["x-ratelimit-remaining"] == "0"
        assert r.headers["retry-after"] == str(window)
    # the key's budget is spent, another key's is not, and after Retry-After seconds it is whole again
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as c:
        assert (await c.request(method, path, headers=headers, **kwargs)).status_code == 429
        fresh = await c.request(method, path, headers=auth(provider, 1), **kwargs)
        assert fresh.status_code < 400 and fresh.headers["x-ratelimit-remaining"] == str(LIMIT - 1)
        live_server.app.state.runtime.clock.advance(window)
        again = await c.request(method, path, headers=headers, **kwargs)
        assert again.status_code < 400 and again.headers["x-ratelimit-remaining"] == str(LIMIT - 1)
