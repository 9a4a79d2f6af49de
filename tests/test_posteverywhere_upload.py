"""Step 1, POST /v1/media/upload: every documented field, type, limit, content type and response field."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.helpers import AUTH, PE

BOTH_STORES = True  # every test here runs on the memory store and on Redis (conftest.py)

pytestmark = pytest.mark.anyio

UPLOAD = f"{PE}/media/upload"
MiB = 1024 * 1024
CATEGORIES = {
    "image/jpeg": ("images", "POST", 20 * MiB),
    "image/png": ("images", "POST", 20 * MiB),
    "image/gif": ("images", "POST", 20 * MiB),
    "image/webp": ("images", "POST", 20 * MiB),
    "image/heic": ("images", "POST", 20 * MiB),
    "image/heif": ("images", "POST", 20 * MiB),
    "video/mp4": ("r2", "PUT", 500 * MiB),
    "application/pdf": ("r2", "PUT", 20 * MiB),
}


async def test_published_request_example_gets_the_documented_response_shape(client):
    r = await client.post(
        UPLOAD, headers=AUTH, json={"filename": "product-photo.jpg", "content_type": "image/jpeg", "size": 2048576}
    )
    assert r.status_code == 201
    body = r.json()
    # the documented example, key for key
    assert set(body) == {"data", "error", "meta"}
    assert body["error"] is None
    data = body["data"]
    assert set(data) == {
        "media_id",
        "media_ids",
        "upload_url",
        "upload_method",
        "provider",
        "expires_in",
        "max_size",
        "next_step",
    }
    assert uuid.UUID(data["media_id"]).version == 4
    assert data["media_ids"] == [data["media_id"]]
    assert data["upload_method"] == {"method": "POST", "content_type": "multipart/form-data", "field_name": "file"}
    assert data["provider"] == "images"
    assert data["expires_in"] == 3600
    assert data["max_size"] == 20971520
    assert data["next_step"] == (
        f"Upload your file to upload_url (step 2), then call POST /v1/media/{data['media_id']}/complete "
        "to finalize (step 3)."
    )
    assert set(body["meta"]) == {"request_id", "timestamp"}
    assert re.fullmatch(r"req_[0-9A-HJKMNP-TV-Z]{26}", body["meta"]["request_id"])
    assert body["meta"]["timestamp"] == "2026-09-21T14:13:20.000Z"  # the frozen virtual clock, ms + Z


@pytest.mark.parametrize("content_type", sorted(CATEGORIES))
async def test_each_supported_content_type_gets_its_upload_method(client, content_type):
    provider, method, max_size = CATEGORIES[content_type]
    r = await client.post(UPLOAD, headers=AUTH, json={"filename": "f.bin", "content_type": content_type, "size": 10})
    assert r.status_code == 201
    data = r.json()["data"]
    assert data["provider"] == provider
    assert data["max_size"] == max_size
    assert data["upload_method"]["method"] == method
    if method == "PUT":
        assert data["upload_method"] == {
            "method": "PUT",
            "content_type": content_type,
            "headers": {"Content-Type": content_type},
        }
        assert "/storage/objects/" in data["upload_url"]
    else:
        assert "/storage/images/" in data["upload_url"]
    assert data["upload_url"].startswith("http://127.0.0.1:8080/posteverywhere/api/storage/")


async def test_optional_width_height_duration_are_accepted(client):
    r = await client.post(
        UPLOAD,
        headers=AUTH,
        json={
            "filename": "clip.mp4",
            "content_type": "video/mp4",
            "size": 1000,
            "width": 1920,
            "height": 1080,
            "duration": 12.5,
        },
    )
    assert r.status_code == 201


async def test_each_upload_gets_a_new_media_id(client):
    body = {"filename": "a.png", "content_type": "image/png", "size": 1}
    ids = {(await client.post(UPLOAD, headers=AUTH, json=body)).json()["data"]["media_id"] for _ in range(5)}
    assert len(ids) == 5


@pytest.mark.parametrize(
    "size, content_type, ok",
    [
        (20 * MiB, "image/png", True),
        (20 * MiB + 1, "image/png", False),
        (20 * MiB, "application/pdf", True),
        (20 * MiB + 1, "application/pdf", False),
        (500 * MiB, "video/mp4", True),
        (500 * MiB + 1, "video/mp4", False),
        (1, "image/jpeg", True),
        (0, "image/jpeg", False),
        (-5, "image/jpeg", False),
    ],
)
async def test_size_limits_per_category(client, size, content_type, ok):
    r = await client.post(UPLOAD, headers=AUTH, json={"filename": "f", "content_type": content_type, "size": size})
    assert r.status_code == (201 if ok else 400)
    if not ok:
        error = r.json()["error"]
        assert error["code"] == "validation_error"
        assert error["details"]["validation_errors"][0]["field"] == "size"


async def test_filename_up_to_255_characters(client):
    ok = await client.post(
        UPLOAD, headers=AUTH, json={"filename": "a" * 251 + ".jpg", "content_type": "image/jpeg", "size": 5}
    )
    assert ok.status_code == 201
    long = await client.post(
        UPLOAD, headers=AUTH, json={"filename": "a" * 252 + ".jpg", "content_type": "image/jpeg", "size": 5}
    )
    assert long.status_code == 400
    assert long.json()["error"]["details"]["validation_errors"] == [
        {"field": "filename", "message": f"'{'a' * 252}.jpg' is too long"}
    ]


@pytest.mark.parametrize(
    "body, field, fragment",
    [
        ({"content_type": "image/png", "size": 1}, "filename", "is required"),
        ({"filename": "a.png", "size": 1}, "content_type", "is required"),
        ({"filename": "a.png", "content_type": "image/png"}, "size", "is required"),
        ({"filename": "a.png", "content_type": "image/tiff", "size": 1}, "content_type", "is not one of"),
        ({"filename": "a.png", "content_type": "image/png", "size": "12"}, "size", "is not of type 'integer'"),
        ({"filename": "a.png", "content_type": "image/png", "size": 1.5}, "size", "is not of type 'integer'"),
        ({"filename": 7, "content_type": "image/png", "size": 1}, "filename", "is not of type 'string'"),
        ({"filename": "", "content_type": "image/png", "size": 1}, "filename", "should be non-empty"),
        ({"filename": "a.png", "content_type": "image/png", "size": 1, "width": "wide"}, "width", "is not of type"),
        ({"filename": "a.png", "content_type": "image/png", "size": 1, "height": 0}, "height", "less than the minimum"),
        (
            {"filename": "a.mp4", "content_type": "video/mp4", "size": 1, "duration": "long"},
            "duration",
            "is not of type 'number'",
        ),
        ({"filename": "a.png", "content_type": "image/png", "size": 10**30}, "size", "greater than the maximum"),
    ],
)
async def test_bad_fields_name_the_field_and_the_expectation(client, body, field, fragment):
    r = await client.post(UPLOAD, headers=AUTH, json=body)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "validation_error"
    assert error["retryable"] is False
    fields = {e["field"]: e["message"] for e in error["details"]["validation_errors"]}
    assert field in fields and fragment in fields[field], fields
    assert error["message"].startswith(f"{field}: ")
    assert r.json()["data"] is None


@pytest.mark.parametrize(
    "filename", ["../../etc/passwd.jpg", "/abs/photo.jpg", "a\\b.jpg", "..", "a\x00b.jpg", "line\nbreak.jpg"]
)
async def test_path_tricks_in_filenames_are_refused(client, filename):
    r = await client.post(UPLOAD, headers=AUTH, json={"filename": filename, "content_type": "image/jpeg", "size": 1})
    assert r.status_code == 400
    assert r.json()["error"]["details"]["validation_errors"][0]["field"] == "filename"


async def test_unicode_filenames_are_fine(client):
    r = await client.post(
        UPLOAD, headers=AUTH, json={"filename": "фото 📷.jpg", "content_type": "image/jpeg", "size": 1}
    )
    assert r.status_code == 201


async def test_invalid_json_is_invalid_json(client):
    r = await client.post(UPLOAD, headers={**AUTH, "Content-Type": "application/json"}, content=b'{"filename": ')
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_json"
    assert "line 1 column 14" in r.json()["error"]["message"]


async def test_invalid_utf8_is_invalid_json(client):
    r = await client.post(UPLOAD, headers={**AUTH, "Content-Type": "application/json"}, content=b'{"filename": "\xff"}')
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize("payload", [b"[]", b"null", b"42", b'"text"'])
async def test_json_that_is_not_an_object_is_refused(client, payload):
    r = await client.post(UPLOAD, headers={**AUTH, "Content-Type": "application/json"}, content=payload)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "validation_error"


async def test_deeply_nested_json_is_refused_not_crashed(client):
    payload = (
        b'{"filename": "a.png", "content_type": "image/png", "size": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    )
    r = await client.post(UPLOAD, headers={**AUTH, "Content-Type": "application/json"}, content=payload)
    assert r.status_code == 400
    assert r.json()["error"]["code"] in {"invalid_json", "validation_error"}


async def test_empty_body_is_refused(client):
    r = await client.post(UPLOAD, headers={**AUTH, "Content-Type": "application/json"}, content=b"")
    assert r.status_code == 400
    assert r.json()["error"]["details"]["validation_errors"] == [{"field": "body", "message": "is required"}]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_wrong_content_type_is_415(client, content_type):
    headers = {**AUTH, **({"Content-Type": content_type} if content_type else {})}
    r = await client.post(UPLOAD, headers=headers, content=b'{"filename":"a.png","content_type":"image/png","size":1}')
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "unsupported_media_type"


async def test_oversize_json_body_is_413_early(client):
    r = await client.post(
        UPLOAD, headers={**AUTH, "Content-Type": "application/json"}, content=b" " * (1024 * 1024 + 1)
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


async def test_unknown_path_and_wrong_method_use_the_envelope(client):
    r = await client.get(f"{PE}/nowhere/at/all", headers=AUTH)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    r = await client.get(UPLOAD, headers=AUTH)
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"
    assert r.headers["allow"] == "POST"


async def test_trailing_slash_is_not_redirected(client):
    r = await client.post(
        UPLOAD + "/", headers=AUTH, json={"filename": "a.png", "content_type": "image/png", "size": 1}
    )
    assert r.status_code == 404


@pytest.mark.parametrize(
    "raw, status, code",
    [
        (b'\xef\xbb\xbf{"filename":"a.jpg","content_type":"image/jpeg","size":1}', 201, None),  # one UTF-8 BOM: allowed
        (b'\xef\xbb\xbf\xef\xbb\xbf{"filename":"a.jpg","content_type":"image/jpeg","size":1}', 400, "invalid_json"),
        (
            b'{"filename":"\xed\xa0\x80.jpg","content_type":"image/jpeg","size":1}',
            400,
            "invalid_json",
        ),  # encoded surrogate
        (b'{"filename":"\xff.jpg","content_type":"image/jpeg","size":1}', 400, "invalid_json"),  # not UTF-8
    ],
)
async def test_json_bodies_are_strict_utf8_with_at_most_one_bom(client, raw, status, code):
    r = await client.post(UPLOAD, headers={**AUTH, "Content-Type": "application/json"}, content=raw)
    assert r.status_code == status, r.text
    if code is not None:
        assert r.json()["error"]["code"] == code and r.json()["data"] is None
