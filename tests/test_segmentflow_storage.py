"""The S3-style host behind uploadUrl: signed, expiring, bound to the declared size and content type, S3 XML errors,
and never losing or corrupting what it already holds."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from tests.test_segmentflow_flow import AUTH, SF, png, put, register, stored_asset, upload_url, uploaded

BOTH_STORES = True  # every test here runs on the memory store and on Redis (conftest.py)

pytestmark = pytest.mark.anyio


def tamper(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def s3_code(r) -> str:
    assert r.headers["content-type"].startswith("application/xml")
    assert r.text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    return r.text.split("<Code>")[1].split("</Code>")[0]


def s3_message(r) -> str:
    return r.text.split("<Message>")[1].split("</Message>")[0]


async def test_put_answers_200_with_the_md5_etag(client):
    image = png(10, 10)
    data = await upload_url(client, size=len(image))
    r = await put(client, data["uploadUrl"], image, "image/png")
    assert r.status_code == 200 and r.content == b""
    assert r.headers["etag"] == f'"{hashlib.md5(image).hexdigest()}"'


async def test_url_expires_after_900_seconds_on_the_clock(client, clock):
    image = png(10, 10)
    data = await upload_url(client, size=len(image))
    clock.advance(900)
    assert (await put(client, data["uploadUrl"], image, "image/png")).status_code == 200  # valid at exactly 900 s
    clock.advance(1)
    r = await put(client, data["uploadUrl"], image, "image/png")
    assert r.status_code == 403
    assert s3_code(r) == "AccessDenied" and s3_message(r) == "Request has expired"
    assert "<Expires>2026-09-21T14:28:20.000Z</Expires>" in r.text
    assert "<ServerTime>2026-09-21T14:28:21.000Z</ServerTime>" in r.text
    assert "<RequestId>" in r.text
    assert (await register(client, data["key"], image)).status_code == 200  # the object PUT in time is kept


async def test_expired_url_never_used_leaves_nothing_to_register(client, clock, runtime):
    data = await upload_url(client, size=4)
    clock.advance(901)
    r = await put(client, data["uploadUrl"], b"abcd", "image/png")
    assert r.status_code == 403
    assert runtime.blobs.index == {}


@pytest.mark.parametrize(
    "change",
    [
        {"X-Emulator-Expires": "9999999999"},
        {"X-Emulator-Max-Size": "20971520"},
        {"X-Emulator-Content-Type": "application/pdf"},
        {"X-Emulator-Signature": "0" * 64},
    ],
)
async def test_any_change_to_the_signed_query_is_signature_does_not_match(client, change):
    image = png(10, 10)
    data = await upload_url(client, size=len(image))
    r = await put(client, tamper(data["uploadUrl"], **change), image, "image/png")
    assert r.status_code == 403
    assert s3_code(r) == "SignatureDoesNotMatch"


async def test_a_url_for_one_key_does_not_open_another(client):
    first = await upload_url(client, size=10)
    second = await upload_url(client, size=10)
    swapped = first["uploadUrl"].replace(first["key"].removeprefix("assets/"), second["key"].removeprefix("assets/"))
    r = await put(client, swapped, b"0" * 10, "image/png")
    assert r.status_code == 403 and s3_code(r) == "SignatureDoesNotMatch"


async def test_an_unsigned_url_is_access_denied(client):
    data = await upload_url(client, size=10)
    r = await put(client, data["uploadUrl"].split("?")[0], b"0" * 10, "image/png")
    assert r.status_code == 403 and s3_code(r) == "AccessDenied"
    assert "X-Emulator-Signature" in s3_message(r)


@pytest.mark.parametrize("name", ["X-Emulator-Expires", "X-Emulator-Max-Size"])
async def test_a_malformed_signed_number_is_authorization_query_parameters_error(client, name):
    data = await upload_url(client, size=10)
    r = await put(client, tamper(data["uploadUrl"], **{name: "soon"}), b"0" * 10, "image/png")
    assert r.status_code == 400 and s3_code(r) == "AuthorizationQueryParametersError"
    r = await put(client, tamper(data["uploadUrl"], **{name: "-5"}), b"0" * 10, "image/png")
    assert r.status_code == 400 and s3_code(r) == "AuthorizationQueryParametersError"


@pytest.mark.parametrize("sent", ["image/jpeg", "application/octet-stream", ""])
async def test_a_content_type_other_than_the_declared_one_is_signature_does_not_match(client, sent):
    image = png(10, 10)
    data = await upload_url(client, size=len(image))
    r = await client.put(data["uploadUrl"], content=image, headers={"Content-Type": sent} if sent else {})
    assert r.status_code == 403 and s3_code(r) == "SignatureDoesNotMatch"
    assert f"signed for Content-Type image/png; the request sent {sent or 'none'}." in s3_message(r)


async def test_content_type_parameters_do_not_break_the_binding(client):
    data = await upload_url(client, "text/csv", 3, "a.csv")
    r = await put(client, data["uploadUrl"], b"a,b", "text/csv; charset=utf-8")
    assert r.status_code == 200


async def test_a_body_declared_larger_than_the_size_is_refused_before_reading(client, runtime):
    data = await upload_url(client, size=10)
    r = await put(client, data["uploadUrl"], b"0" * 11, "image/png")
    assert r.status_code == 400 and s3_code(r) == "EntityTooLarge"
    assert "<ProposedSize>11</ProposedSize><MaxSizeAllowed>10</MaxSizeAllowed>" in r.text
    assert runtime.blobs.index == {}


async def test_a_body_longer_than_its_content_length_is_cut_off_and_nothing_kept(client, runtime):
    data = await upload_url(client, size=1024)

    async def body():
        for _ in range(4):
            yield b"0" * 1024

    r = await client.put(
        data["uploadUrl"], content=body(), headers={"Content-Type": "image/png", "Content-Length": "1024"}
    )
    assert r.status_code == 400 and s3_code(r) == "EntityTooLarge"
    assert "<MaxSizeAllowed>1024</MaxSizeAllowed>" in r.text
    assert runtime.blobs.index == {} and list(runtime.blobs.tmp_dir.iterdir()) == []


async def test_chunked_transfer_is_501_not_implemented_as_on_s3(client, runtime):
    data = await upload_url(client, size=10)

    async def body():
        yield b"0" * 10

    r = await client.put(data["uploadUrl"], content=body(), headers={"Content-Type": "image/png"})
    assert r.status_code == 501 and s3_code(r) == "NotImplemented"
    assert "<Header>Transfer-Encoding</Header>" in r.text
    assert runtime.blobs.index == {}


@pytest.mark.parametrize("length", [b"ten", "²".encode("latin-1")])  # "²" is a digit to str.isdigit(), not to int()
async def test_a_non_numeric_content_length_is_invalid_argument(client, length):
    data = await upload_url(client, size=10)
    r = await client.put(
        data["uploadUrl"], content=b"0" * 10, headers={"Content-Type": "image/png", "Content-Length": length}
    )
    assert r.status_code == 400 and s3_code(r) == "InvalidArgument"


async def test_content_md5_is_checked_as_s3_checks_it(client):
    image = png(10, 10)
    data = await upload_url(client, size=len(image))
    good = base64.b64encode(hashlib.md5(image).digest()).decode()
    assert (await put(client, data["uploadUrl"], image, "image/png", **{"Content-MD5": good})).status_code == 200
    other = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    r = await put(client, data["uploadUrl"], png(11, 11)[: len(image)], "image/png", **{"Content-MD5": other})
    assert r.status_code == 400 and s3_code(r) == "BadDigest"
    for malformed in ("not base64!", base64.b64encode(b"short").decode()):
        r = await put(client, data["uploadUrl"], image, "image/png", **{"Content-MD5": malformed})
        assert r.status_code == 400 and s3_code(r) == "InvalidDigest"
    r = await register(client, data["key"], image)  # the refused PUTs left the good object in place
    assert r.status_code == 200 and (r.json()["asset"]["width"], r.json()["asset"]["height"]) == (10, 10)


async def test_a_second_put_before_registration_replaces_the_object(client, runtime):
    first, second = png(10, 10), png(30, 20)
    data = await upload_url(client, size=max(len(first), len(second)))
    await put(client, data["uploadUrl"], first, "image/png")
    await put(client, data["uploadUrl"], second, "image/png")
    assert len(runtime.blobs.index) == 1
    assert (await client.get(f"http://127.0.0.1:8080/segmentflow/storage/{data['key']}")).content == second
    r = await register(client, data["key"], second)
    assert (r.json()["asset"]["width"], r.json()["asset"]["height"]) == (30, 20)


async def test_a_failed_put_keeps_the_object_already_stored(client):
    image = png(10, 10)
    data = await upload_url(client, size=len(image))
    good = await put(client, data["uploadUrl"], image, "image/png")

    async def too_long():
        yield image
        yield b"extra"

    bad = await client.put(
        data["uploadUrl"], content=too_long(), headers={"Content-Type": "image/png", "Content-Length": str(len(image))}
    )
    assert bad.status_code == 400
    fetched = await client.get(data["uploadUrl"].split("?")[0])
    assert fetched.content == image and fetched.headers["etag"] == good.headers["etag"]


async def test_a_registered_object_cannot_be_overwritten(client):
    image = png(10, 10)
    data = await uploaded(client, image)
    asset = (await register(client, data["key"], image)).json()["asset"]
    r = await put(client, data["uploadUrl"], png(10, 10), "image/png")
    assert r.status_code == 403 and s3_code(r) == "AccessDenied"
    assert f"registered as asset {asset['id']}" in s3_message(r)
    assert (await client.get(asset["url"])).content == image


async def test_uploaded_objects_are_readable_before_registration(client):
    data = await uploaded(client, b"a,b\n", "text/csv", "a.csv")
    r = await client.get(data["uploadUrl"].split("?")[0])
    assert r.status_code == 200 and r.content == b"a,b\n" and r.headers["content-type"].startswith("text/csv")


async def test_unknown_and_not_yet_uploaded_keys_are_no_such_key(client):
    r = await client.get("/segmentflow/storage/assets/00000000-0000-4000-8000-000000000000-x.png")
    assert r.status_code == 404 and s3_code(r) == "NoSuchKey"
    assert "<Key>assets/00000000-0000-4000-8000-000000000000-x.png</Key>" in r.text
    data = await upload_url(client)
    r = await client.get(data["uploadUrl"].split("?")[0])
    assert r.status_code == 404 and s3_code(r) == "NoSuchKey"


@pytest.mark.parametrize("method", ["POST", "DELETE", "PATCH"])
async def test_other_methods_on_the_storage_host_answer_in_s3_xml(client, method):
    data = await upload_url(client)
    r = await client.request(method, data["uploadUrl"], content=b"x")
    assert r.status_code == 405 and s3_code(r) == "MethodNotAllowed"


async def test_unknown_storage_paths_answer_in_s3_xml(client):
    r = await client.get("/segmentflow/storage/assets/a/b")
    assert r.status_code == 404 and s3_code(r) == "NoSuchKey"


async def test_storage_requests_need_no_key_and_carry_no_rate_limit_headers(client):
    asset = await stored_asset(client)
    r = await client.get(asset["url"])
    assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers
    api = await client.get(f"{SF}/assets", headers=AUTH)
    assert api.headers["x-ratelimit-limit"] == "1000"
