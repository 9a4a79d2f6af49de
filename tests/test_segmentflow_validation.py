"""Segmentflow request validation, exactly as published: minLength, number, enums, the websiteId pattern verbatim,
and the bad-input list (empty strings, odd sizes, non-object JSON, bodies too big or not JSON) — precise 400s."""

from __future__ import annotations

import pytest

from tests.test_segmentflow_flow import AUTH, SF, png, register, stored_asset, uploaded

BOTH_STORES = True  # every test here runs on the memory store and on Redis (conftest.py)

pytestmark = pytest.mark.anyio

UPLOAD_URL = f"{SF}/assets/upload-url"
CREATE = f"{SF}/assets"
UPLOAD_BODY = {"filename": "photo.png", "contentType": "image/png", "size": 10}
CREATE_BODY = {"filename": "photo.png", "s3Key": "assets/x", "contentType": "image/png", "size": 10}
ENDPOINTS = [(UPLOAD_URL, UPLOAD_BODY), (CREATE, CREATE_BODY)]

# Every branch of the published pattern:
# ^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}
#   |00000000-0000-0000-0000-000000000000|ffffffff-ffff-ffff-ffff-ffffffffffff)$
VALID_WEBSITE_IDS = [
    *(f"3c90c3cc-0d44-{v}b50-8888-8dd25736052a" for v in "12345678"),  # version digits 1-8
    *(f"3c90c3cc-0d44-4b50-{v}888-8dd25736052a" for v in "89abAB"),  # every variant digit
    "3C90C3CC-0D44-4B50-A888-8DD25736052A",  # upper-case hex
    "00000000-0000-0000-0000-000000000000",  # nil UUID
    "ffffffff-ffff-ffff-ffff-ffffffffffff",  # max UUID
]
INVALID_WEBSITE_IDS = [
    "3c90c3cc-0d44-0b50-8888-8dd25736052a",  # version 0
    "3c90c3cc-0d44-9b50-8888-8dd25736052a",  # version 9
    "3c90c3cc-0d44-fb50-8888-8dd25736052a",  # version f
    "3c90c3cc-0d44-4b50-7888-8dd25736052a",  # variant 7
    "3c90c3cc-0d44-4b50-c888-8dd25736052a",  # variant c
    "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",  # the max alternative is lower-case only (and F is no version)
    "00000000-0000-0000-0000-000000000001",  # almost nil: version 0
    "3c90c3c-0d44-4b50-8888-8dd25736052a",  # first group 7 digits
    "3c90c3cc-0d44-4b50-8888-8dd25736052",  # last group 11 digits
    "3c90c3cc-0d44-4b50-8888-8dd25736052aa",  # last group 13 digits
    "3c90c3cg-0d44-4b50-8888-8dd25736052a",  # not hex
    "3c90c3cc0d444b5088888dd25736052a",  # no hyphens
    "{3c90c3cc-0d44-4b50-8888-8dd25736052a}",  # braces
    "urn:uuid:3c90c3cc-0d44-4b50-8888-8dd25736052a",  # URN form
    "3c90c3cc-0d44-4b50-8888-8dd25736052a\n",  # trailing newline ($ must be the very end)
    " 3c90c3cc-0d44-4b50-8888-8dd25736052a",  # leading space
    "",
]


def assert_invalid(r, field: str, named_first: bool = True) -> None:
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "validation_failed"
    assert body["details"]["field"] == field, body
    if named_first:
        assert body["message"].startswith(f"{field}: ")
    assert body["details"]["errors"][0]["field"] == field


@pytest.mark.parametrize("website_id", VALID_WEBSITE_IDS)
async def test_website_ids_matching_the_published_pattern_pass(client, website_id):
    r = await client.post(UPLOAD_URL, headers=AUTH, json={**UPLOAD_BODY, "websiteId": website_id})
    assert r.status_code == 200
    asset = await stored_asset(client, websiteId=website_id)
    assert asset["websiteId"] == website_id.lower()


@pytest.mark.parametrize("path, body", ENDPOINTS)
@pytest.mark.parametrize("website_id", INVALID_WEBSITE_IDS)
async def test_website_ids_outside_the_published_pattern_are_400(client, path, body, website_id):
    r = await client.post(path, headers=AUTH, json={**body, "websiteId": website_id})
    assert_invalid(r, "websiteId")


@pytest.mark.parametrize("path, body", ENDPOINTS)
async def test_each_required_field_is_named_when_missing(client, path, body):
    for name in body:
        r = await client.post(path, headers=AUTH, json={k: v for k, v in body.items() if k != name})
        assert_invalid(r, name)
        assert r.json()["details"]["errors"][0]["message"] == "is required"


@pytest.mark.parametrize(
    "path, body, name",
    [
        (UPLOAD_URL, UPLOAD_BODY, "filename"),
        (CREATE, CREATE_BODY, "filename"),
        (CREATE, CREATE_BODY, "s3Key"),
        (CREATE, CREATE_BODY, "contentType"),
    ],
)
async def test_empty_strings_are_refused_by_min_length_1(client, path, body, name):
    r = await client.post(path, headers=AUTH, json={**body, name: ""})
    assert_invalid(r, name)
    assert r.json()["message"] == f"{name}: '' should be non-empty"


async def test_one_character_strings_pass_min_length(client):
    r = await client.post(UPLOAD_URL, headers=AUTH, json={**UPLOAD_BODY, "filename": "a"})
    assert r.status_code == 200
    r = await client.post(CREATE, headers=AUTH, json={**CREATE_BODY, "s3Key": "k", "contentType": "x", "filename": "a"})
    assert r.status_code == 422  # shape accepted; no such upload


@pytest.mark.parametrize(
    "content_type", ["image/jpeg", "image/png", "text/csv", "application/vnd.ms-excel", "application/pdf"]
)
async def test_upload_url_accepts_each_documented_content_type(client, content_type):
    r = await client.post(UPLOAD_URL, headers=AUTH, json={**UPLOAD_BODY, "contentType": content_type})
    assert r.status_code == 200
    assert f"X-Emulator-Content-Type={content_type.replace('/', '%2F')}" in r.json()["uploadUrl"]


@pytest.mark.parametrize(
    "content_type",
    [
        "image/gif",
        "image/webp",
        "IMAGE/PNG",
        "image/png; charset=binary",
        "video/mp4",
        "",
        "application/octet-stream",
        None,
        5,
    ],
)
async def test_upload_url_refuses_content_types_outside_the_enum(client, content_type):
    r = await client.post(UPLOAD_URL, headers=AUTH, json={**UPLOAD_BODY, "contentType": content_type})
    assert_invalid(r, "contentType")


@pytest.mark.parametrize("path, body", ENDPOINTS)
@pytest.mark.parametrize("asset_type", ["content-video", "Content-Image", "", None, ["content-image"]])
async def test_asset_type_outside_the_enum_is_400(client, path, body, asset_type):
    assert_invalid(await client.post(path, headers=AUTH, json={**body, "assetType": asset_type}), "assetType")


@pytest.mark.parametrize("image_type", ["banner", "LOGO", "", None])
async def test_image_type_outside_the_enum_is_400_on_create(client, image_type):
    assert_invalid(await client.post(CREATE, headers=AUTH, json={**CREATE_BODY, "imageType": image_type}), "imageType")


async def test_upload_url_size_limit_is_20971520(client):
    assert (await client.post(UPLOAD_URL, headers=AUTH, json={**UPLOAD_BODY, "size": 20971520})).status_code == 200
    r = await client.post(UPLOAD_URL, headers=AUTH, json={**UPLOAD_BODY, "size": 20971521})
    assert_invalid(r, "size")
    assert r.json()["message"] == "size: 20971521 is greater than the maximum of 20971520"


async def test_zero_byte_upload_url_is_allowed(client):
    assert (await client.post(UPLOAD_URL, headers=AUTH, json={**UPLOAD_BODY, "size": 0})).status_code == 200


@pytest.mark.parametrize("path, body", ENDPOINTS)
@pytest.mark.parametrize(
    "size, message",
    [
        (-1, "size: -1 is less than the minimum of 0"),
        (-0.5, "size: -0.5 is less than the minimum of 0 (and 1 more)"),
        (1.5, "size: 1.5 is not a multiple of 1"),
        (-(10**30), "size: -1000000000000000000000000000000 is less than the minimum of 0"),
    ],
)
async def test_negative_and_fractional_sizes_are_400(client, path, body, size, message):
    r = await client.post(path, headers=AUTH, json={**body, "size": size})
    assert_invalid(r, "size")
    assert r.json()["message"] == message


@pytest.mark.parametrize("path, body", ENDPOINTS)
@pytest.mark.parametrize("size", ["10", True, None, [10], {"bytes": 10}])
async def test_size_must_be_a_json_number(client, path, body, size):
    r = await client.post(path, headers=AUTH, json={**body, "size": size})
    assert_invalid(r, "size")
    assert "is not of type 'number'" in r.json()["message"]


@pytest.mark.parametrize("path, body", ENDPOINTS)
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_non_finite_sizes_are_400_not_500(client, path, body, literal):
    fields = ", ".join(f'"{k}": "{v}"' for k, v in body.items() if k != "size")
    r = await client.post(
        path, headers={**AUTH, "Content-Type": "application/json"}, content=f'{{{fields}, "size": {literal}}}'
    )
    if literal == "1e999":  # valid JSON, a number too large for a double: refused as a size
        assert_invalid(r, "size")
    else:  # NaN and Infinity are not JSON at all (RFC 8259), as JSON.parse also says
        assert_invalid(r, "body", named_first=False)
        assert literal.lstrip("-") in r.json()["message"]


async def test_huge_sizes_are_refused_by_the_limit_or_the_stored_object(client):
    r = await client.post(UPLOAD_URL, headers=AUTH, json={**UPLOAD_BODY, "size": 10**30})
    assert_invalid(r, "size")
    image = png(4, 4)
    data = await uploaded(client, image)
    r = await client.post(CREATE, headers=AUTH, json={**CREATE_BODY, "s3Key": data["key"], "size": 1e300})
    assert r.status_code == 422 and r.json()["details"]["field"] == "size"
    assert (await register(client, data["key"], image)).status_code == 200


@pytest.mark.parametrize("path", [UPLOAD_URL, CREATE])
@pytest.mark.parametrize(
    "raw, expected",
    [
        ("[]", "body: [] is not of type 'object'"),
        ('"photo.png"', "body: 'photo.png' is not of type 'object'"),
        ("42", "body: 42 is not of type 'object'"),
        ("true", "body: True is not of type 'object'"),
        ("null", "body: None is not of type 'object'"),
    ],
)
async def test_json_that_is_not_an_object_is_400(client, path, raw, expected):
    r = await client.post(path, headers={**AUTH, "Content-Type": "application/json"}, content=raw)
    assert_invalid(r, "body")
    assert r.json()["message"] == expected


@pytest.mark.parametrize("path", [UPLOAD_URL, CREATE])
async def test_malformed_and_empty_json_are_400(client, path):
    r = await client.post(path, headers={**AUTH, "Content-Type": "application/json"}, content='{"filename": ')
    assert_invalid(r, "body", named_first=False)
    assert r.json()["message"] == "Request body is not valid JSON at line 1 column 14."
    r = await client.post(path, headers={**AUTH, "Content-Type": "application/json"}, content=b"")
    assert_invalid(r, "body", named_first=False)
    assert r.json()["message"] == "Request body is required (a JSON object)."
    r = await client.post(path, headers={**AUTH, "Content-Type": "application/json"}, content=b"\xff\xfe{}")
    assert_invalid(r, "body", named_first=False)
    assert r.json()["message"].startswith("Request body is not valid JSON")


@pytest.mark.parametrize("path", [UPLOAD_URL, CREATE])
async def test_a_body_that_is_not_json_is_415(client, path):
    r = await client.post(path, headers={**AUTH, "Content-Type": "text/plain"}, content="filename=photo.png")
    assert r.status_code == 415
    assert r.json() == {
        "error": "unsupported_media_type",
        "message": "Content-Type must be application/json, got text/plain.",
        "details": {
            "field": "Content-Type",
            "errors": [{"field": "Content-Type", "message": "must be application/json"}],
        },
    }


@pytest.mark.parametrize("path", [UPLOAD_URL, CREATE])
async def test_a_json_body_over_1_mib_is_413(client, path):
    r = await client.post(path, headers=AUTH, json={"filename": "a" * (1024 * 1024)})
    assert r.status_code == 413
    assert r.json()["error"] == "payload_too_large"
    assert r.json()["details"] == {"maxSize": 1048576}


async def test_patch_validates_its_body_shape(client):
    asset = await stored_asset(client)
    url = f"{SF}/assets/{asset['id']}"
    for raw in ("[]", '"x"', "null"):
        r = await client.patch(url, headers={**AUTH, "Content-Type": "application/json"}, content=raw)
        assert_invalid(r, "body")
    r = await client.patch(url, headers={**AUTH, "Content-Type": "text/plain"}, content="x")
    assert r.status_code == 415
    assert (await client.patch(url, headers=AUTH, json={"description": "x" * (1024 * 1024)})).status_code == 413


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
@pytest.mark.parametrize("asset_id", ["not-a-uuid", "3c90c3cc0d444b5088888dd25736052a", "12345"])
async def test_asset_id_must_be_a_uuid(client, method, asset_id):
    r = await client.request(method, f"{SF}/assets/{asset_id}", headers=AUTH, json={} if method == "PATCH" else None)
    assert_invalid(r, "id")
    assert r.json()["message"] == f"id: '{asset_id}' is not a 'uuid' (path parameter)"


async def test_unknown_fields_are_ignored_as_the_published_schemas_allow(client):
    r = await client.post(UPLOAD_URL, headers=AUTH, json={**UPLOAD_BODY, "colour": "blue"})
    assert r.status_code == 200
    asset = await stored_asset(client)
    r = await client.patch(f"{SF}/assets/{asset['id']}", headers=AUTH, json={"filename": "renamed.png"})
    assert r.status_code == 200 and r.json()["asset"]["filename"] == "photo.png"


async def test_file_names_with_any_characters_make_url_safe_keys(client):
    for name in ("../../etc/passwd", "a b/c\\d?.png", "日本語.png", "\x00\x1f.png", "." * 300):
        data = (await client.post(UPLOAD_URL, headers=AUTH, json={**UPLOAD_BODY, "filename": name})).json()
        object_id = data["key"].removeprefix("assets/")
        assert "/" not in object_id and len(object_id) <= 37 + 200
        assert all(ch.isascii() and (ch.isalnum() or ch in "._-") for ch in object_id)
    image = png(2, 2)
    data = await uploaded(client, image, filename="../../etc/passwd")
    r = await register(client, data["key"], image, filename="../../etc/passwd")
    assert r.json()["asset"]["filename"] == "../../etc/passwd"  # the name is data, never a path
