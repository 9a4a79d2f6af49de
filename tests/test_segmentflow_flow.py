"""Segmentflow end to end: upload-url → PUT → register, every asset field, list/get/PATCH/DELETE, both serving modes.

Also holds the request builders the other test_segmentflow_* modules import.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import uuid
import zlib
from datetime import UTC, datetime

import httpx
import pytest

from emulator import Settings, create_app
from tests.helpers import PDF, sample

BOTH_STORES = True  # every test here runs on the memory store and on Redis (conftest.py)

pytestmark = pytest.mark.anyio

SF = "/segmentflow/api/v1"
KEY = "sk_live_" + "0123456789abcdef" * 2
OTHER_KEY = "sk_live_" + "fedcba9876543210" * 2
READONLY_KEY = "sk_live_00000000000000000000000000000403"  # magic: assets:read only
AUTH = {"x-api-key": KEY}
OTHER = {"x-api-key": OTHER_KEY}
READONLY = {"x-api-key": READONLY_KEY}
WEBSITE = "3c90c3cc-0d44-4b50-8888-8dd25736052a"  # the published example
CREATED = "2026-09-21T14:13:20.000Z"  # the frozen clock of conftest
DOCUMENTED_FIELDS = {
    "id",
    "organizationId",
    "assetType",
    "filename",
    "s3Key",
    "contentType",
    "size",
    "url",
    "createdAt",
    "updatedAt",
    "description",
    "altText",
    "tags",
    "width",
    "height",
    "websiteId",
    "website",
}
CSV = b"email,first_name\nada@example.com,Ada\n"
XLS = bytes.fromhex("d0cf11e0a1b11ae1") + b"\x00" * 504  # an OLE2 (Excel 97-2003) header


def png(width: int, height: int) -> bytes:
    """A real PNG of the given size (RGB, black), built by hand so the test knows its true dimensions."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    rows = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


async def upload_url(
    client,
    content_type: str = "image/png",
    size: int = 10,
    filename: str = "photo.png",
    headers=AUTH,
    base: str = SF,
    **extra,
) -> dict:
    r = await client.post(
        f"{base}/assets/upload-url",
        headers=headers,
        json={"filename": filename, "contentType": content_type, "size": size, **extra},
    )
    assert r.status_code == 200, r.text
    return r.json()


async def put(client, url: str, payload: bytes, content_type: str, **headers: str) -> httpx.Response:
    return await client.put(url, content=payload, headers={"Content-Type": content_type, **headers})


async def uploaded(
    client,
    payload: bytes,
    content_type: str = "image/png",
    filename: str = "photo.png",
    headers=AUTH,
    base: str = SF,
    **extra,
) -> dict:
    """Steps 1 and 2: an upload URL for ``payload``, and the bytes PUT to it."""
    data = await upload_url(client, content_type, len(payload), filename, headers, base, **extra)
    r = await put(client, data["uploadUrl"], payload, content_type)
    assert r.status_code == 200, r.text
    return data


async def register(
    client,
    key: str,
    payload: bytes,
    content_type: str = "image/png",
    filename: str = "photo.png",
    headers=AUTH,
    base: str = SF,
    **extra,
) -> httpx.Response:
    """Step 3: POST /api/v1/assets with s3Key = the upload's key."""
    return await client.post(
        f"{base}/assets",
        headers=headers,
        json={"filename": filename, "s3Key": key, "contentType": content_type, "size": len(payload), **extra},
    )


async def stored_asset(
    client,
    payload: bytes | None = None,
    content_type: str = "image/png",
    filename: str = "photo.png",
    headers=AUTH,
    **extra,
) -> dict:
    """All three steps; the asset."""
    payload = png(40, 30) if payload is None else payload
    data = await uploaded(client, payload, content_type, filename, headers)
    r = await register(client, data["key"], payload, content_type, filename, headers, **extra)
    assert r.status_code == 200, r.text
    return r.json()["asset"]


# --- the whole flow ------------------------------------------------------------------------------------------------


async def test_png_flow_returns_its_true_size_and_every_documented_field(client, clock):
    image = png(317, 89)
    step1 = await upload_url(
        client, "image/png", len(image), "Hero Banner.png", assetType="content-image", websiteId=WEBSITE
    )
    assert set(step1) == {"success", "uploadUrl", "key", "expiresIn"}
    assert step1["success"] is True and step1["expiresIn"] == 900
    assert step1["key"].startswith("assets/") and step1["key"].endswith("-Hero_Banner.png")
    assert step1["uploadUrl"].startswith(f"http://127.0.0.1:8080/segmentflow/storage/{step1['key']}?")

    step2 = await put(client, step1["uploadUrl"], image, "image/png")
    assert step2.status_code == 200 and step2.content == b""
    assert step2.headers["etag"] == f'"{hashlib.md5(image).hexdigest()}"'

    step3 = await client.post(
        f"{SF}/assets",
        headers=AUTH,
        json={
            "filename": "Hero Banner.png",
            "s3Key": step1["key"],
            "contentType": "image/png",
            "size": len(image),
            "assetType": "content-image",
            "imageType": "hero",
            "websiteId": WEBSITE,
        },
    )
    assert step3.status_code == 200
    body = step3.json()
    assert set(body) == {"success", "asset"} and body["success"] is True
    asset = body["asset"]
    assert (asset["width"], asset["height"]) == (317, 89)
    assert uuid.UUID(asset["id"]).version == 4
    assert uuid.UUID(asset["organizationId"]).version == 5
    assert asset["assetType"] == "content-image"
    assert asset["filename"] == "Hero Banner.png"
    assert asset["s3Key"] == step1["key"]
    assert asset["contentType"] == "image/png"
    assert asset["size"] == len(image)
    assert asset["url"] == f"http://127.0.0.1:8080/segmentflow/storage/{step1['key']}"
    assert asset["createdAt"] == asset["updatedAt"] == CREATED
    assert asset["tags"] == []
    assert asset["websiteId"] == WEBSITE
    assert asset["website"] == {"id": WEBSITE, "name": "Website 3c90c3cc"}
    # every documented key, always: description and altText are null until PATCH sets them
    assert set(asset) == DOCUMENTED_FIELDS
    assert asset["description"] is None and asset["altText"] is None

    served = await client.get(asset["url"])
    assert served.status_code == 200 and served.content == image
    assert served.headers["content-type"] == "image/png"
    assert served.headers["etag"] == step2.headers["etag"]

    clock.advance(5)
    patched = await client.patch(
        f"{SF}/assets/{asset['id']}",
        headers=AUTH,
        json={
            "description": "Spring sale hero",
            "altText": "A black rectangle",
            "tags": ["spring", "sale"],
            "imageType": "header",
        },
    )
    assert patched.status_code == 200
    full = patched.json()["asset"]
    assert set(full) == DOCUMENTED_FIELDS
    assert full["description"] == "Spring sale hero" and full["altText"] == "A black rectangle"
    assert full["tags"] == ["spring", "sale"]
    assert full["updatedAt"] == "2026-09-21T14:13:25.000Z" and full["createdAt"] == CREATED
    assert {k: v for k, v in full.items() if k not in ("description", "altText", "tags", "updatedAt")} == {
        k: v for k, v in asset.items() if k not in ("description", "altText", "tags", "updatedAt")
    }
    got = await client.get(f"{SF}/assets/{asset['id']}", headers=AUTH)
    assert got.status_code == 200 and got.json() == {"success": True, "asset": full}


@pytest.mark.parametrize(
    "content_type, payload, filename, dimensions",
    [
        ("image/jpeg", sample("jpg"), "photo.jpg", (64, 48)),
        ("image/png", sample("png"), "photo.png", (64, 48)),
        ("text/csv", CSV, "leads.csv", None),
        ("application/vnd.ms-excel", XLS, "leads.xls", None),
        ("application/pdf", PDF, "guide.pdf", None),
    ],
)
async def test_every_documented_content_type_round_trips(client, content_type, payload, filename, dimensions):
    asset = await stored_asset(client, payload, content_type, filename)
    assert asset["contentType"] == content_type and asset["size"] == len(payload)
    if dimensions is None:  # not an image: the dimensions are documented keys, null
        assert asset["width"] is None and asset["height"] is None
    else:
        assert (asset["width"], asset["height"]) == dimensions
    served = await client.get(asset["url"])
    assert served.content == payload and served.headers["content-type"].startswith(content_type)


@pytest.mark.parametrize("asset_type", ["content-image", "content-document", "lead-magnet"])
async def test_asset_type_enum_is_stored(client, asset_type):
    asset = await stored_asset(client, PDF, "application/pdf", "guide.pdf", assetType=asset_type)
    assert asset["assetType"] == asset_type


async def test_asset_type_defaults_to_content_image_whatever_upload_url_said(client):
    data = await uploaded(client, PDF, "application/pdf", "guide.pdf", assetType="lead-magnet")
    r = await register(client, data["key"], PDF, "application/pdf", "guide.pdf")
    assert r.json()["asset"]["assetType"] == "content-image"


@pytest.mark.parametrize("image_type", ["logo", "hero", "header", "product", "background", "icon", "other"])
async def test_image_type_enum_is_accepted_on_create_and_patch(client, image_type):
    asset = await stored_asset(client, imageType=image_type)
    r = await client.patch(f"{SF}/assets/{asset['id']}", headers=AUTH, json={"imageType": image_type})
    assert r.status_code == 200


async def test_website_id_comes_from_upload_url_unless_the_registration_names_one(client):
    data = await uploaded(client, png(3, 2), websiteId=WEBSITE)
    r = await register(client, data["key"], png(3, 2))
    assert r.json()["asset"]["websiteId"] == WEBSITE
    other_site = "00000000-0000-0000-0000-000000000000"
    data = await uploaded(client, png(3, 2), websiteId=WEBSITE)
    r = await register(client, data["key"], png(3, 2), websiteId=other_site)
    assert r.json()["asset"]["website"] == {"id": other_site, "name": "Website 00000000"}
    no_site = await stored_asset(client, png(3, 2))
    assert set(no_site) == DOCUMENTED_FIELDS and no_site["websiteId"] is None and no_site["website"] is None


async def test_website_id_is_returned_in_lowercase(client):
    asset = await stored_asset(client, websiteId="3C90C3CC-0D44-4B50-A888-8DD25736052A")
    assert asset["websiteId"] == "3c90c3cc-0d44-4b50-a888-8dd25736052a"
    assert asset["website"]["id"] == asset["websiteId"]


async def test_content_type_parameters_and_case_are_ignored_when_registering(client):
    image = png(5, 6)
    data = await uploaded(client, image)
    r = await register(client, data["key"], image, "Image/PNG; charset=binary")
    assert r.status_code == 200 and r.json()["asset"]["contentType"] == "image/png"


async def test_size_as_a_whole_float_is_accepted(client):
    image = png(5, 6)
    data = await uploaded(client, image)
    r = await client.post(
        f"{SF}/assets",
        headers=AUTH,
        json={"filename": "a.png", "s3Key": data["key"], "contentType": "image/png", "size": float(len(image))},
    )
    assert r.status_code == 200 and r.json()["asset"]["size"] == len(image)


async def test_organization_id_is_one_per_key_and_stable_across_runs(client):
    first = await stored_asset(client)
    second = await stored_asset(client)
    other = await stored_asset(client, headers=OTHER)
    assert first["organizationId"] == second["organizationId"] != other["organizationId"]
    fresh = create_app(Settings(strict=True))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fresh), base_url="http://127.0.0.1:8080") as c:
            again = await stored_asset(c)
    finally:
        fresh.state.runtime.close()
    assert again["organizationId"] == first["organizationId"]


# --- registration refusals -----------------------------------------------------------------------------------------


async def test_registering_one_key_twice_is_409_naming_the_asset(client):
    image = png(8, 8)
    data = await uploaded(client, image)
    first = await register(client, data["key"], image)
    again = await register(client, data["key"], image)
    assert again.status_code == 409
    asset_id = first.json()["asset"]["id"]
    assert again.json() == {
        "error": "conflict",
        "message": f"s3Key: this key is already registered as asset {asset_id}.",
        "details": {
            "assetId": asset_id,
            "field": "s3Key",
            "errors": [{"field": "s3Key", "message": f"is already registered as asset {asset_id}"}],
        },
    }
    listed = (await client.get(f"{SF}/assets", headers=AUTH)).json()["assets"]
    assert [a["id"] for a in listed] == [asset_id]


async def test_concurrent_registrations_of_one_key_make_one_asset(client):
    image = png(8, 8)
    data = await uploaded(client, image)
    responses = await asyncio.gather(*(register(client, data["key"], image) for _ in range(10)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * 9
    assert len((await client.get(f"{SF}/assets", headers=AUTH)).json()["assets"]) == 1


async def test_a_key_never_uploaded_is_422(client):
    data = await upload_url(client, size=10)
    r = await register(client, data["key"], b"0" * 10)
    assert r.status_code == 422
    assert r.json() == {
        "error": "validation_failed",
        "message": "s3Key: nothing has been uploaded under this key yet; PUT the bytes to uploadUrl first",
        "details": {
            "field": "s3Key",
            "errors": [
                {
                    "field": "s3Key",
                    "message": "nothing has been uploaded under this key yet; PUT the bytes to uploadUrl first",
                }
            ],
        },
    }


async def test_a_key_never_issued_and_another_organizations_key_read_the_same(client):
    image = png(8, 8)
    theirs = await uploaded(client, image, headers=OTHER)
    foreign = await register(client, theirs["key"], image)
    invented = await register(client, "assets/00000000-0000-4000-8000-000000000000-photo.png", image)
    not_ours = await register(client, "uploads/photo.png", image)
    assert foreign.status_code == invented.status_code == not_ours.status_code == 422
    assert foreign.json() == invented.json() == not_ours.json()
    assert foreign.json()["message"] == (
        "s3Key: no upload URL was issued for this key to your organization; "
        "request one with POST /api/v1/assets/upload-url"
    )
    assert (await register(client, theirs["key"], image, headers=OTHER)).status_code == 200  # theirs is intact


async def test_an_expired_url_never_used_is_422_saying_so(client, clock):
    data = await upload_url(client, size=10)
    clock.advance(901)
    r = await register(client, data["key"], b"0" * 10)
    assert r.status_code == 422
    assert r.json()["message"] == (
        "s3Key: nothing was uploaded under this key and its uploadUrl expired at "
        "2026-09-21T14:28:20.000Z; request a new upload URL"
    )


async def test_an_object_uploaded_in_time_registers_after_the_url_expired(client, clock):
    image = png(9, 4)
    data = await uploaded(client, image)
    clock.advance(86400)
    r = await register(client, data["key"], image)
    assert r.status_code == 200 and (r.json()["asset"]["width"], r.json()["asset"]["height"]) == (9, 4)


async def test_size_that_disagrees_with_the_stored_object_is_422(client):
    image = png(8, 8)
    data = await upload_url(client, size=len(image) + 100)
    await put(client, data["uploadUrl"], image, "image/png")  # a smaller body than declared is accepted by the PUT
    r = await register(client, data["key"], image + b"\0" * 100)
    assert r.status_code == 422
    assert r.json()["message"] == f"size: the object under s3Key is {len(image)} bytes, not {len(image) + 100}"
    assert r.json()["details"]["field"] == "size"
    assert (await register(client, data["key"], image)).status_code == 200


async def test_content_type_that_disagrees_with_the_stored_object_is_422(client):
    image = png(8, 8)
    data = await uploaded(client, image)
    r = await register(client, data["key"], image, "image/jpeg")
    assert r.status_code == 422
    assert r.json()["message"] == "contentType: the object under s3Key was uploaded as image/png, not image/jpeg"
    assert r.json()["details"]["field"] == "contentType"


async def test_bytes_that_are_not_the_declared_image_are_422(client):
    image = png(8, 8)
    data = await uploaded(client, image, "image/jpeg", "photo.jpg")  # PNG bytes PUT as image/jpeg
    r = await register(client, data["key"], image, "image/jpeg", "photo.jpg")
    assert r.status_code == 422
    assert r.json()["message"] == ("contentType: the object under s3Key is not image/jpeg (its bytes are image/png)")
    junk = b"definitely not a picture"
    data = await uploaded(client, junk)
    r = await register(client, data["key"], junk)
    assert r.status_code == 422
    assert r.json()["message"] == (
        "contentType: the object under s3Key is not image/png (its bytes are of no recognised format)"
    )
    data = await uploaded(client, CSV, "application/pdf", "x.pdf")
    assert (await register(client, data["key"], CSV, "application/pdf", "x.pdf")).status_code == 422


async def test_a_truncated_png_without_readable_dimensions_is_422(client):
    stub = b"\x89PNG\r\n\x1a\n" + b"\0" * 4
    data = await uploaded(client, stub)
    r = await register(client, data["key"], stub)
    assert r.status_code == 422
    assert "width" in r.json()["message"] and r.json()["details"]["field"] == "contentType"


async def test_refused_registrations_lose_nothing(client):
    image = png(12, 7)
    data = await uploaded(client, image)
    for bad in ({"size": len(image) + 1}, {"contentType": "application/pdf"}, {"size": -1}, {"filename": ""}):
        body = {"filename": "a.png", "s3Key": data["key"], "contentType": "image/png", "size": len(image), **bad}
        assert (await client.post(f"{SF}/assets", headers=AUTH, json=body)).status_code in (400, 422)
    r = await register(client, data["key"], image)
    assert r.status_code == 200 and r.json()["asset"]["width"] == 12
    assert (await client.get(r.json()["asset"]["url"])).content == image


# --- list, get, patch, delete --------------------------------------------------------------------------------------


async def test_list_is_newest_first_paginated_and_per_organization(client):
    ids = [(await stored_asset(client, filename=f"{n}.png"))["id"] for n in range(5)]
    await stored_asset(client, headers=OTHER)
    r = await client.get(f"{SF}/assets", headers=AUTH)
    assert r.status_code == 200 and r.json()["success"] is True
    assert [a["id"] for a in r.json()["assets"]] == ids[::-1]
    page = await client.get(f"{SF}/assets", headers=AUTH, params={"limit": 2, "offset": 1})
    assert [a["id"] for a in page.json()["assets"]] == [ids[3], ids[2]]
    past = await client.get(f"{SF}/assets", headers=AUTH, params={"offset": 10})
    assert past.json() == {"success": True, "assets": []}
    mine = await client.get(f"{SF}/assets", headers=OTHER)
    assert len(mine.json()["assets"]) == 1


async def test_list_limit_is_1_to_100(client):
    await stored_asset(client)
    assert (await client.get(f"{SF}/assets", headers=AUTH, params={"limit": 100})).status_code == 200
    assert len((await client.get(f"{SF}/assets", headers=AUTH, params={"limit": 1})).json()["assets"]) == 1
    for params, name in (
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "1.5"}, "offset"),
    ):
        r = await client.get(f"{SF}/assets", headers=AUTH, params=params)
        assert r.status_code == 400, params
        assert r.json()["error"] == "validation_failed" and name in r.json()["message"]


async def test_patch_limits_are_exact(client):
    asset = await stored_asset(client)
    url = f"{SF}/assets/{asset['id']}"
    accepted = {"description": "d" * 500, "altText": "a" * 200, "tags": ["t" * 50] * 20}
    r = await client.patch(url, headers=AUTH, json=accepted)
    assert r.status_code == 200
    assert r.json()["asset"]["description"] == "d" * 500 and len(r.json()["asset"]["tags"]) == 20
    for body, name in (
        ({"description": "d" * 501}, "description"),
        ({"altText": "a" * 201}, "altText"),
        ({"tags": ["t"] * 21}, "tags"),
        ({"tags": ["ok", "t" * 51]}, "tags.1"),
        ({"tags": "spring"}, "tags"),
        ({"tags": [1]}, "tags.0"),
        ({"tags": None}, "tags"),
        ({"imageType": "banner"}, "imageType"),
        ({"description": 5}, "description"),
    ):
        bad = await client.patch(url, headers=AUTH, json=body)
        assert bad.status_code == 400, body
        assert bad.json()["error"] == "validation_failed" and bad.json()["details"]["field"] == name, bad.json()
    after = await client.get(url, headers=AUTH)
    assert after.json()["asset"] == r.json()["asset"]  # the refused PATCHes changed nothing


async def test_patch_counts_characters_not_bytes(client):
    asset = await stored_asset(client)
    r = await client.patch(f"{SF}/assets/{asset['id']}", headers=AUTH, json={"altText": "é" * 200, "tags": ["日" * 50]})
    assert r.status_code == 200 and r.json()["asset"]["altText"] == "é" * 200


async def test_patch_null_clears_and_absent_fields_stay(client, clock):
    asset = await stored_asset(client)
    url = f"{SF}/assets/{asset['id']}"
    await client.patch(url, headers=AUTH, json={"description": "x", "altText": "y", "tags": ["z"], "imageType": "logo"})
    r = await client.patch(url, headers=AUTH, json={"description": None, "imageType": None})
    assert r.status_code == 200
    out = r.json()["asset"]
    assert set(out) == DOCUMENTED_FIELDS  # a key PATCH set to null is still answered, as null
    assert out["description"] is None and out["altText"] == "y" and out["tags"] == ["z"]
    got = (await client.get(url, headers=AUTH)).json()["asset"]
    assert got == out
    listed = (await client.get(f"{SF}/assets", headers=AUTH)).json()["assets"]
    assert listed == [out]
    r = await client.patch(url, headers=AUTH, json={"altText": None})
    assert r.json()["asset"]["altText"] is None and r.json()["asset"]["description"] is None
    r = await client.patch(url, headers=AUTH, json={"tags": [], "altText": ""})
    assert r.json()["asset"]["tags"] == [] and r.json()["asset"]["altText"] == ""
    clock.advance(60)
    r = await client.patch(url, headers=AUTH, json={})
    assert r.status_code == 200 and r.json()["asset"]["updatedAt"] == "2026-09-21T14:14:20.000Z"


async def test_delete_removes_the_asset_and_its_object(client):
    asset = await stored_asset(client)
    url = f"{SF}/assets/{asset['id']}"
    r = await client.delete(url, headers=AUTH)
    assert r.status_code == 200 and r.json() == {"success": True}
    deleted = f"Asset {asset['id']} not found: it was deleted."
    for method in ("GET", "PATCH", "DELETE"):
        body = {"description": "x"} if method == "PATCH" else None
        again = await client.request(method, url, headers=AUTH, json=body)
        assert again.status_code == 404, method
        assert again.json() == {"error": "not_found", "message": deleted}
    gone = await client.get(asset["url"])
    assert gone.status_code == 404 and "<Code>NoSuchKey</Code>" in gone.text
    assert (await client.get(f"{SF}/assets", headers=AUTH)).json()["assets"] == []
    r = await register(client, asset["s3Key"], png(40, 30))
    assert r.status_code == 422
    assert r.json()["message"] == f"s3Key: the object under this key was deleted together with asset {asset['id']}"


async def test_another_organization_cannot_see_patch_or_delete_an_asset(client):
    asset = await stored_asset(client)
    url = f"{SF}/assets/{asset['id']}"
    missing = f"{SF}/assets/00000000-0000-4000-8000-000000000000"
    for method in ("GET", "PATCH", "DELETE"):
        body = {"description": "mine now"} if method == "PATCH" else None
        foreign = await client.request(method, url, headers=OTHER, json=body)
        absent = await client.request(method, missing, headers=OTHER, json=body)
        assert foreign.status_code == absent.status_code == 404
        assert foreign.json() == {"error": "not_found", "message": f"Asset {asset['id']} not found."}
        assert absent.json() == {
            "error": "not_found",
            "message": "Asset 00000000-0000-4000-8000-000000000000 not found.",
        }
    await client.delete(url, headers=AUTH)
    after = await client.get(url, headers=OTHER)  # a deletion is news only to its owner
    assert after.json()["message"] == f"Asset {asset['id']} not found."
    assert (await client.get(url, headers=AUTH)).json()["message"].endswith("it was deleted.")


async def test_asset_ids_are_matched_case_insensitively(client):
    asset = await stored_asset(client)
    r = await client.get(f"{SF}/assets/{asset['id'].upper()}", headers=AUTH)
    assert r.status_code == 200 and r.json()["asset"]["id"] == asset["id"]


# --- serving -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [Settings(strict=True, provider="segmentflow")])
async def test_per_provider_mode_serves_the_documented_paths_at_the_root(client, settings):
    image = png(20, 10)
    data = await uploaded(client, image, base="/api/v1")
    assert data["uploadUrl"].startswith("http://127.0.0.1:8080/storage/assets/")
    r = await register(client, data["key"], image, base="/api/v1")
    assert r.status_code == 200
    asset = r.json()["asset"]
    assert asset["url"] == f"http://127.0.0.1:8080/storage/{data['key']}"
    assert (await client.get(asset["url"])).content == image
    assert (await client.get(f"/api/v1/assets/{asset['id']}", headers=AUTH)).status_code == 200
    assert (await client.get("/openapi.json")).json()["servers"][0]["url"] == "http://127.0.0.1:8080"
    missing = await client.get("/segmentflow/api/v1/assets", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong_method = await client.post(data["uploadUrl"], content=image)
    assert wrong_method.status_code == 405 and "<Code>MethodNotAllowed</Code>" in wrong_method.text


@pytest.mark.parametrize("settings", [Settings(strict=True, public_url="https://emulator.internal:9443")])
async def test_public_url_is_used_for_upload_and_asset_urls(client, settings):
    data = await upload_url(client)
    assert data["uploadUrl"].startswith("https://emulator.internal:9443/segmentflow/storage/assets/")


async def test_openapi_json_lists_the_emulator_then_the_documented_server(client):
    served = (await client.get("/segmentflow/openapi.json")).json()
    assert served["servers"] == [
        {"url": "http://127.0.0.1:8080/segmentflow", "description": "upload-emulator"},
        {"url": "http://localhost:3001"},
    ]
    assert {
        "/api/v1/assets",
        "/api/v1/assets/upload-url",
        "/api/v1/assets/{id}",
        "/api/v1/public/assets/{id}/finalize",
        "/storage/assets/{objectId}",
    } == set(served["paths"])


@pytest.mark.live
def test_live_uvicorn_upload_put_register_fetch(live_server):
    image = png(123, 45)
    with httpx.Client(base_url=live_server.url, timeout=10) as c:
        r = c.post(
            f"{SF}/assets/upload-url",
            headers=AUTH,
            json={"filename": "live.png", "contentType": "image/png", "size": len(image)},
        )
        assert r.status_code == 200 and r.headers["x-ratelimit-limit"] == "1000"
        step1 = r.json()
        assert step1["uploadUrl"].startswith(f"{live_server.url}/segmentflow/storage/assets/")
        stored = c.put(step1["uploadUrl"], content=image, headers={"Content-Type": "image/png"})
        assert stored.status_code == 200 and stored.headers["etag"] == f'"{hashlib.md5(image).hexdigest()}"'
        asset = c.post(
            f"{SF}/assets",
            headers=AUTH,
            json={"filename": "live.png", "s3Key": step1["key"], "contentType": "image/png", "size": len(image)},
        )
        assert asset.status_code == 200
        out = asset.json()["asset"]
        assert (out["width"], out["height"]) == (123, 45)
        created = datetime.strptime(out["createdAt"], "%Y-%m-%dT%H:%M:%S.%f%z")
        assert abs((datetime.now(UTC) - created).total_seconds()) < 60  # real clock when not frozen
        assert c.get(out["url"]).content == image
        assert c.delete(f"{SF}/assets/{out['id']}", headers=AUTH).json() == {"success": True}
        assert c.get(out["url"]).status_code == 404


# --- the public presigned flow: upload-url → PUT → finalize -------------------------------------------------------


def finalize_url(data: dict) -> str:
    """finalize's {id}: the uuid the upload's key starts with (assets/<id>-<filename>)."""
    return f"{SF}/public/assets/{data['key'][len('assets/') :][:36]}/finalize"


async def test_finalize_turns_an_upload_into_an_asset_with_its_own_response_shape(client, clock):
    image = png(317, 89)
    data = await uploaded(client, image, filename="Hero Banner.png", assetType="lead-magnet", websiteId=WEBSITE)
    clock.advance(3)
    r = await client.post(
        finalize_url(data),
        headers=AUTH,
        json={"description": "Spring sale hero", "altText": "A black rectangle", "imageType": "hero"},
    )
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"asset"}  # no success field, unlike /api/v1/assets
    asset = r.json()["asset"]
    row_id = data["key"][len("assets/") :][:36]
    assert asset == {
        "id": row_id,
        "organizationId": asset["organizationId"],
        "filename": "Hero Banner.png",
        "contentType": "image/png",
        "size": len(image),
        "url": f"http://127.0.0.1:8080/segmentflow/storage/{data['key']}",
        "width": 317,
        "height": 89,
        "createdAt": "2026-09-21T14:13:23.000Z",
    }
    assert uuid.UUID(asset["organizationId"]).version == 5
    assert r.headers["x-ratelimit-remaining"] == "998" and r.headers["x-ratelimit-reset"] == "57"  # PUTs not counted
    # the asset row is an asset like any other: full shape through GET, in the list, and its bytes served
    full = (await client.get(f"{SF}/assets/{row_id}", headers=AUTH)).json()["asset"]
    assert set(full) == DOCUMENTED_FIELDS
    assert (full["description"], full["altText"], full["assetType"]) == (
        "Spring sale hero",
        "A black rectangle",
        "lead-magnet",
    )
    assert full["websiteId"] == WEBSITE and full["s3Key"] == data["key"]
    assert [a["id"] for a in (await client.get(f"{SF}/assets", headers=AUTH)).json()["assets"]] == [row_id]
    assert (await client.get(asset["url"])).content == image


async def test_finalize_without_a_body_and_for_a_document(client):
    data = await uploaded(client, PDF, "application/pdf", "guide.pdf")
    r = await client.post(finalize_url(data), headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["asset"]["width"] is None and r.json()["asset"]["height"] is None
    got = (await client.get(f"{SF}/assets/{r.json()['asset']['id']}", headers=AUTH)).json()["asset"]
    assert got["description"] is None and got["altText"] is None and got["assetType"] == "content-image"


async def test_finalize_refusals(client, clock):
    # an id no upload URL was issued under, or another organization's: 404
    missing = f"{SF}/public/assets/00000000-0000-4000-8000-000000000000/finalize"
    r = await client.post(missing, headers=AUTH, json={})
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    data = await upload_url(client, size=len(png(2, 2)))
    assert (await client.post(finalize_url(data), headers=OTHER, json={})).status_code == 404
    # nothing PUT yet: 422 naming the id
    r = await client.post(finalize_url(data), headers=AUTH, json={})
    assert r.status_code == 422 and r.json()["error"] == "validation_failed"
    assert r.json()["details"]["field"] == "id" and "PUT the bytes to uploadUrl first" in r.json()["message"]
    # bytes that are not the declared type: 422
    bad = await upload_url(client, size=len(PDF))
    assert (await put(client, bad["uploadUrl"], PDF, "image/png")).status_code == 200
    r = await client.post(finalize_url(bad), headers=AUTH, json={})
    assert r.status_code == 422 and "is not image/png" in r.json()["message"]
    # the body is validated (published limits): 400
    assert (await put(client, data["uploadUrl"], png(2, 2), "image/png")).status_code == 200
    for body in ({"description": "x" * 501}, {"altText": "x" * 201}, {"imageType": "banner"}):
        r = await client.post(finalize_url(data), headers=AUTH, json=body)
        assert r.status_code == 400 and r.json()["error"] == "validation_failed", body
    # once finalized: 409, and POST /api/v1/assets with its key too
    assert (await client.post(finalize_url(data), headers=AUTH, json={})).status_code == 200
    again = await client.post(finalize_url(data), headers=AUTH, json={})
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    assert (await register(client, data["key"], png(2, 2))).status_code == 409
    # registered by POST /api/v1/assets first: 409 naming that asset
    other = await uploaded(client, png(3, 3))
    registered = (await register(client, other["key"], png(3, 3))).json()["asset"]
    r = await client.post(finalize_url(other), headers=AUTH, json={})
    assert r.status_code == 409 and r.json()["details"]["assetId"] == registered["id"]
    # deleted: 404 that says so; the read-only key: 403
    row = finalize_url(data).split("/")[-2]
    assert (await client.delete(f"{SF}/assets/{row}", headers=AUTH)).status_code == 200
    r = await client.post(finalize_url(data), headers=AUTH, json={})
    assert r.status_code == 404 and r.json()["message"].endswith("it was deleted.")
    r = await client.post(finalize_url(other), headers=READONLY, json={})
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"


async def test_finalize_after_the_upload_url_expired_without_bytes_is_422(client, clock):
    data = await upload_url(client)
    clock.advance(901)
    r = await client.post(finalize_url(data), headers=AUTH, json={})
    assert r.status_code == 422 and "expired" in r.json()["message"]


async def test_the_state_view_shows_the_finalize_index_as_records(client):
    data = await uploaded(client, png(2, 2))
    assert (await client.post(finalize_url(data), headers=AUTH, json={})).status_code == 200
    tables = (await client.get("/_emulator/state/segmentflow")).json()["tables"]  # strict: every row an object
    assert tables["upload-ids"] == [{"object_id": data["key"][len("assets/") :]}]
