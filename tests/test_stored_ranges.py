"""Stored objects served back answer ``Range`` as S3 does, for every provider that serves them.

One byte range: 206 with ``Content-Range`` (an end past the object clamped). A Range S3 cannot use — another unit,
several ranges, a last byte before the first, not digits — is ignored: 200 and the whole object. A valid range that
cannot be satisfied (a first byte past the end, ``bytes=-0``): 416 in the storage's own error shape, with
``Content-Range: bytes */size``. Each app runs strict, so every answer is also checked against the spec.
"""

from __future__ import annotations

import httpx
import pytest

from emulator import Settings
from tests.test_reliability_support import (
    GENEROUS_LIMITS,
    ap_asset,
    ap_clip,
    payload,
    pe_image,
    pe_video,
    sf_asset,
)

BOTH_STORES = True  # every test here runs on the memory store and on Redis (conftest.py)

pytestmark = pytest.mark.anyio
SIZE = 5000
STORED = {
    "posteverywhere-video": pe_video,
    "posteverywhere-image": pe_image,
    "autoposting-clip": ap_clip,
    "autoposting-asset": ap_asset,
    "segmentflow-asset": sf_asset,
}
KINDS = {
    "posteverywhere-video": "mp4",
    "posteverywhere-image": "png",
    "autoposting-clip": "mp4",
    "autoposting-asset": "png",
    "segmentflow-asset": "png",
}


@pytest.fixture
def settings() -> Settings:
    return Settings(strict=True, seed=77, rate_limits=GENEROUS_LIMITS)


@pytest.fixture(params=sorted(STORED))
async def stored(request, client: httpx.AsyncClient):
    return await STORED[request.param](client, 0, payload(KINDS[request.param], SIZE, 5)), request.param


@pytest.mark.parametrize(
    "header, first, last",
    [
        ("bytes=0-9", 0, 9),
        ("bytes=4990-", 4990, 4999),
        ("bytes=4990-100000", 4990, 4999),
        ("bytes=-10", 4990, 4999),
        ("bytes=-100000", 0, 4999),
        ("BYTES=1-1", 1, 1),
    ],
)
async def test_one_byte_range_is_206_with_content_range(client, stored, header, first, last):
    obj, _ = stored
    r = await client.get(obj.read_url, headers={"Range": header})
    assert r.status_code == 206 and r.content == obj.data[first : last + 1]
    assert r.headers["content-range"] == f"bytes {first}-{last}/{SIZE}"
    assert r.headers["etag"] == obj.etag


@pytest.mark.parametrize(
    "header",
    [
        "bytes=5-1",
        "items=0-1",
        "bytes=0-1,5-6",
        "bytes=-",
        "bytes=abc",
        "bytes=+1-2",
        "bytes= 1-2",
        "bytes=1-2-3",
        "bytes",
        "bytes=١-٢".encode(),
        "bytes=" + "9" * 5000 + "-",
    ],
)
async def test_a_range_s3_cannot_use_is_ignored_and_the_whole_object_served(client, stored, header):
    obj, _ = stored
    r = await client.get(obj.read_url, headers={"Range": header})
    assert r.status_code == 200 and r.content == obj.data
    assert "content-range" not in r.headers and r.headers["etag"] == obj.etag


@pytest.mark.parametrize("header", ["bytes=5000-", "bytes=5000-5001", "bytes=99999999999999999999-", "bytes=-0"])
async def test_an_unsatisfiable_range_is_416_invalid_range_in_the_storage_shape(client, stored, header):
    obj, name = stored
    r = await client.get(obj.read_url, headers={"Range": header})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{SIZE}"
    assert "satisfiable" in r.text and obj.data[:20] not in r.content
    if name == "posteverywhere-image":  # Cloudflare Images answers in its JSON envelope
        assert r.json()["success"] is False
    else:
        assert r.headers["content-type"].startswith("application/xml")
        assert "<Code>InvalidRange</Code>" in r.text and f"<ActualObjectSize>{SIZE}</ActualObjectSize>" in r.text
    assert (await client.get(obj.read_url)).content == obj.data  # nothing changed
