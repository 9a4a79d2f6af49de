"""Autoposting.ai clips: the official SDK's multipart flow end to end, clip status on the virtual clock, abort.

Also holds the small request builders the other ``test_autoposting_*`` modules import (names not starting with
``test`` so pytest does not collect them twice).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re

import httpx
import pytest

from emulator import Settings
from tests.helpers import MP4

BOTH_STORES = True  # every test here runs on the memory store and on Redis (conftest.py)
pytestmark = pytest.mark.anyio

AP = "/autoposting/api-proxy"
KEY = "sk-social-dev0123456789abcdef"
OTHER_KEY = "sk-social-otherkey_98765-4321"
AUTH = {"Authorization": f"Bearer {KEY}"}
X_API_KEY = {"x-api-key": KEY}
OTHER = {"Authorization": f"Bearer {OTHER_KEY}"}
MIB = 1024 * 1024
ULID = r"[0-9A-HJKMNP-TV-Z]{26}"
SLOW = Settings(strict=True, seed=1234, video_processing_seconds=30)


def video(size: int, seed: int = 7) -> bytes:
    """``size`` bytes that sniff as MP4: a real ftyp header, then seeded random bytes."""
    return MP4 + random.Random(seed).randbytes(size - len(MP4))


def split(data: bytes, sizes: list[int]) -> list[bytes]:
    assert sum(sizes) == len(data)
    out, at = [], 0
    for size in sizes:
        out.append(data[at : at + size])
        at += size
    return out


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


async def init(client: httpx.AsyncClient, size: int, headers: dict[str, str] = AUTH, **fields: object) -> dict:
    body = {
        "brandId": "brand_01",
        "title": "Launch teaser",
        "fileName": "launch.mp4",
        "fileSize": size,
        "mimeType": "video/mp4",
        **fields,
    }
    r = await client.post(f"{AP}/clips/upload/init", headers=headers, json=body)
    assert r.status_code == 201, r.text
    return r.json()["data"]


def ids(clip: dict) -> dict:
    return {"clipId": clip["clipId"], "uploadId": clip["uploadId"], "key": clip["key"]}


async def presign(
    client: httpx.AsyncClient, clip: dict, numbers: list[int], headers: dict[str, str] = AUTH
) -> dict[int, str]:
    r = await client.post(f"{AP}/clips/upload/presign", headers=headers, json={**ids(clip), "partNumbers": numbers})
    assert r.status_code == 200, r.text
    return {item["partNumber"]: item["url"] for item in r.json()["data"]["presignedUrls"]}


async def put_part(client: httpx.AsyncClient, url: str, data: bytes) -> str:
    r = await client.put(url, content=data)  # no API key: the URL is the authorisation
    assert r.status_code == 200, r.text
    return r.headers["etag"]


async def upload(client: httpx.AsyncClient, data: bytes, sizes: list[int]) -> tuple[dict, list[str]]:
    """init, presign every part, PUT each: the clip and the ETags, as the SDK holds them before complete."""
    clip = await init(client, len(data))
    urls = await presign(client, clip, list(range(1, len(sizes) + 1)))
    etags = [await put_part(client, urls[n], chunk) for n, chunk in enumerate(split(data, sizes), start=1)]
    return clip, etags


def sdk_parts(etags: list[str]) -> list[dict]:
    return [{"partNumber": n, "etag": etag} for n, etag in enumerate(etags, start=1)]


async def complete(
    client: httpx.AsyncClient, clip: dict, parts: list[dict], headers: dict[str, str] = AUTH, with_key: bool = True
) -> httpx.Response:
    body = {**ids(clip), "parts": parts}
    if not with_key:
        del body["key"]
    return await client.post(f"{AP}/clips/upload/complete", headers=headers, json=body)


async def get_clip(client: httpx.AsyncClient, clip_id: str, headers: dict[str, str] = AUTH) -> httpx.Response:
    return await client.get(f"{AP}/clips/{clip_id}", headers=headers)


def clips_error(r: httpx.Response, status: int, code: str) -> str:
    """Assert the clips error envelope and return its message."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"success", "error", "message"}
    assert body["success"] is False and body["error"] == code
    return body["message"]


# --- the SDK flow ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [SLOW])
async def test_sdk_flow_uploads_12_mib_in_three_parts_and_stores_the_same_bytes(client, clock, settings):
    source = video(12 * MIB)
    sizes = [5 * MIB, 5 * MIB, 2 * MIB]

    r = await client.post(
        f"{AP}/clips/upload/init",
        headers=AUTH,
        json={
            "brandId": "brand_01HXYZ",
            "title": "Launch teaser",
            "fileName": "launch.mp4",
            "fileSize": len(source),
            "mimeType": "video/mp4",
        },
    )
    assert r.status_code == 201
    body = r.json()
    assert body["success"] is True and set(body["data"]) == {"clipId", "uploadId", "key"}
    clip = body["data"]
    assert re.fullmatch(f"clip_{ULID}", clip["clipId"])
    assert re.fullmatch(r"[A-Za-z0-9_-]{40,}", clip["uploadId"])
    assert re.fullmatch(rf"clips/org_[0-9a-f]{{16}}/{clip['clipId']}/clip\.mp4", clip["key"])

    r = await client.post(f"{AP}/clips/upload/presign", headers=AUTH, json={**ids(clip), "partNumbers": [1, 2, 3]})
    assert r.status_code == 200
    presigned = r.json()["data"]["presignedUrls"]
    assert [p["partNumber"] for p in presigned] == [1, 2, 3]
    for p in presigned:
        assert p["url"].startswith(f"http://127.0.0.1:8080{AP}/storage/clips/{clip['uploadId']}/{p['partNumber']}?")

    etags = []
    for p, chunk in zip(presigned, split(source, sizes), strict=True):
        put = await client.put(p["url"], content=chunk)
        assert put.status_code == 200 and put.content == b""
        assert put.headers["etag"] == f'"{md5(chunk)}"'  # quoted MD5, kept verbatim by the SDK
        assert "x-ratelimit-limit" not in put.headers  # storage, not the API
        etags.append(put.headers["etag"])

    r = await complete(client, clip, sdk_parts(etags))  # the SDK's spelling: etag, quotes included, plus key
    assert r.status_code == 200
    assert r.json() == {"success": True, "data": {"clipId": clip["clipId"], "status": "processing"}}

    r = await get_clip(client, clip["clipId"])
    assert r.json()["data"]["status"] == "processing" and "url" not in r.json()["data"]
    clock.advance(29.9)
    assert (await get_clip(client, clip["clipId"])).json()["data"]["status"] == "processing"
    clock.advance(0.1)
    ready = (await get_clip(client, clip["clipId"])).json()["data"]
    assert ready["status"] == "ready"
    assert ready["url"] == f"http://127.0.0.1:8080{AP}/storage/objects/{clip['key']}"

    stored = await client.get(ready["url"])
    assert stored.status_code == 200
    assert stored.content == source
    assert stored.headers["content-type"] == "video/mp4"
    part_md5s = b"".join(bytes.fromhex(md5(chunk)) for chunk in split(source, sizes))
    assert stored.headers["etag"] == f'"{hashlib.md5(part_md5s).hexdigest()}-3"'


async def test_published_spelling_etag_without_quotes_and_without_key(client):
    data = video(6 * MIB)
    clip, etags = await upload(client, data, [5 * MIB, 1 * MIB])
    parts = [{"partNumber": n, "eTag": etag.strip('"')} for n, etag in enumerate(etags, start=1)]
    r = await complete(client, clip, parts, with_key=False)
    assert r.status_code == 200 and r.json()["data"] == {"clipId": clip["clipId"], "status": "processing"}
    # default video_processing_seconds is 0: ready at once, and the url serves the bytes
    clip_view = (await get_clip(client, clip["clipId"])).json()["data"]
    assert clip_view["status"] == "ready"
    assert (await client.get(clip_view["url"])).content == data


async def test_a_single_part_may_be_smaller_than_5_mib(client):
    data = video(1000)
    clip, etags = await upload(client, data, [1000])
    assert (await complete(client, clip, sdk_parts(etags))).status_code == 200


async def test_x_api_key_header_works_through_the_whole_flow(client):
    data = video(2048)
    clip = await init(client, len(data), headers=X_API_KEY)
    urls = await presign(client, clip, [1], headers=X_API_KEY)
    etag = await put_part(client, urls[1], data)
    r = await complete(client, clip, sdk_parts([etag]), headers=X_API_KEY)
    assert r.status_code == 200
    assert (await get_clip(client, clip["clipId"], headers=AUTH)).status_code == 200  # same key, either header


async def test_clip_fields_after_init(client, clock):
    clip = await init(client, 123, title="Teaser", fileName="t.mov", mimeType="video/quicktime", brandId="brand_9")
    assert clip["key"].endswith(f"/{clip['clipId']}/clip.mov")
    r = await get_clip(client, clip["clipId"])
    assert r.status_code == 200
    assert r.headers["x-ratelimit-limit"] == "100"
    assert r.json() == {
        "success": True,
        "data": {
            "id": clip["clipId"],
            "name": "Teaser",
            "title": "Teaser",
            "status": "uploading",
            "brandId": "brand_9",
            "fileName": "t.mov",
            "fileSize": 123,
            "mimeType": "video/quicktime",
            "key": clip["key"],
            "createdAt": "2026-09-21T14:13:20.000Z",
            "updatedAt": "2026-09-21T14:13:20.000Z",
        },
    }


@pytest.mark.parametrize(
    "mime, ext",
    [
        ("video/mp4", "mp4"),
        ("video/quicktime", "mov"),
        ("video/webm", "webm"),
        ("video/x-matroska", "mkv"),
        ("video/x-msvideo", "avi"),
        ("video/x-m4v", "m4v"),
    ],
)
async def test_every_video_type_gets_its_extension_in_the_key(client, mime, ext):
    clip = await init(client, 10, mimeType=mime)
    assert clip["key"].endswith(f"/clip.{ext}")


@pytest.mark.parametrize("settings", [SLOW])
async def test_bytes_that_are_not_a_video_end_failed_after_processing(client, clock, settings):
    data = b"this is not a video " * 100
    clip, etags = await upload(client, data, [len(data)])
    r = await complete(client, clip, sdk_parts(etags))
    assert r.json()["data"]["status"] == "processing"
    clock.advance(30)
    view = (await get_clip(client, clip["clipId"])).json()["data"]
    assert view["status"] == "failed" and "url" not in view


async def test_complete_updates_updated_at(client, clock):
    data = video(500)
    clip, etags = await upload(client, data, [500])
    clock.advance(5)
    await complete(client, clip, sdk_parts(etags))
    view = (await get_clip(client, clip["clipId"])).json()["data"]
    assert view["createdAt"] == "2026-09-21T14:13:20.000Z" and view["updatedAt"] == "2026-09-21T14:13:25.000Z"


async def test_reuploading_a_part_replaces_it(client):
    data = video(300)
    clip = await init(client, len(data))
    urls = await presign(client, clip, [1])
    first = await put_part(client, urls[1], b"x" * 300)
    second = await put_part(client, urls[1], data)
    assert first != second
    r = await complete(client, clip, sdk_parts([first]))
    assert "does not match the uploaded part" in clips_error(r, 400, "validation_error")
    assert (await complete(client, clip, sdk_parts([second]))).status_code == 200
    url = (await get_clip(client, clip["clipId"])).json()["data"]["url"]
    assert (await client.get(url)).content == data


# --- abort, completing twice, other keys -------------------------------------------------------------------------


async def test_abort_discards_the_upload_and_fails_the_clip(client):
    data = video(6 * MIB)
    clip, etags = await upload(client, data, [5 * MIB, 1 * MIB])
    urls = await presign(client, clip, [2])
    r = await client.post(f"{AP}/clips/upload/abort", headers=AUTH, json=ids(clip))
    assert r.status_code == 200 and r.json() == {"success": True, "data": {"aborted": True}}
    assert r.headers["x-ratelimit-remaining"].isdigit()
    assert (await get_clip(client, clip["clipId"])).json()["data"]["status"] == "failed"

    put = await client.put(urls[2], content=b"late")
    assert put.status_code == 404 and "<Code>NoSuchUpload</Code>" in put.text
    message = clips_error(await complete(client, clip, sdk_parts(etags)), 404, "not_found")
    assert message == (
        f"Upload {clip['uploadId']} of clip {clip['clipId']} was aborted; start again with POST /clips/upload/init."
    )
    again = await client.post(f"{AP}/clips/upload/abort", headers=AUTH, json=ids(clip))
    assert "was aborted" in clips_error(again, 404, "not_found")
    r = await client.post(f"{AP}/clips/upload/presign", headers=AUTH, json={**ids(clip), "partNumbers": [1]})
    assert "was aborted" in clips_error(r, 404, "not_found")


async def test_completing_twice_is_409_and_the_upload_is_closed(client):
    data = video(500)
    clip, etags = await upload(client, data, [500])
    urls = await presign(client, clip, [1])
    assert (await complete(client, clip, sdk_parts(etags))).status_code == 200
    message = clips_error(await complete(client, clip, sdk_parts(etags)), 409, "conflict")
    assert message == (f"Upload {clip['uploadId']} of clip {clip['clipId']} is already completed; the clip is ready.")
    r = await client.post(f"{AP}/clips/upload/abort", headers=AUTH, json=ids(clip))
    assert "already completed" in clips_error(r, 409, "conflict")
    r = await client.post(f"{AP}/clips/upload/presign", headers=AUTH, json={**ids(clip), "partNumbers": [2]})
    assert "already completed" in clips_error(r, 409, "conflict")
    put = await client.put(urls[1], content=data)
    assert put.status_code == 404 and "<Code>NoSuchUpload</Code>" in put.text
    assert "This upload is completed." in put.text
    # the completed object is untouched
    view = (await get_clip(client, clip["clipId"])).json()["data"]
    assert (await client.get(view["url"])).content == data


async def test_another_keys_clip_is_not_found_everywhere(client):
    data = video(500)
    clip, etags = await upload(client, data, [500])
    expected = f"Clip {clip['clipId']} not found or not owned by your org."
    assert clips_error(await get_clip(client, clip["clipId"], OTHER), 404, "not_found") == expected
    r = await client.post(f"{AP}/clips/upload/presign", headers=OTHER, json={**ids(clip), "partNumbers": [1]})
    assert clips_error(r, 404, "not_found") == expected
    assert clips_error(await complete(client, clip, sdk_parts(etags), OTHER), 404, "not_found") == expected
    r = await client.post(f"{AP}/clips/upload/abort", headers=OTHER, json=ids(clip))
    assert clips_error(r, 404, "not_found") == expected
    # nothing happened to it: the owner completes it
    assert (await complete(client, clip, sdk_parts(etags))).status_code == 200


async def test_unknown_clip_is_404(client):
    r = await get_clip(client, "clip_01K5QKXK80ZJ7M3W0E6V9R2T4N")
    assert (
        clips_error(r, 404, "not_found") == "Clip clip_01K5QKXK80ZJ7M3W0E6V9R2T4N not found or not owned by your org."
    )
    assert "x-ratelimit-limit" in r.headers


async def test_two_simultaneous_completes_one_wins_one_is_409(client):
    source = video(12 * MIB)
    clip, etags = await upload(client, source, [5 * MIB, 5 * MIB, 2 * MIB])
    first, second = await asyncio.gather(
        complete(client, clip, sdk_parts(etags)), complete(client, clip, sdk_parts(etags))
    )
    assert sorted([first.status_code, second.status_code]) == [200, 409]
    loser = first if first.status_code == 409 else second
    # the loser arrives while the winner concatenates the parts in a worker thread
    assert (
        clips_error(loser, 409, "conflict")
        == f"Upload {clip['uploadId']} of clip {clip['clipId']} is being completed by another request."
    )
    url = (await get_clip(client, clip["clipId"])).json()["data"]["url"]
    assert (await client.get(url)).content == source
