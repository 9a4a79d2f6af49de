"""Presigned URLs cannot be bent: every signed component is bound, and a URL works once, where it was issued.

For each presigned upload of each provider (PostEverywhere's R2 PUT and Cloudflare image POST, Autoposting's part
PUT, Segmentflow's asset PUT): changing any signed value (expiry, size limit, content type, the signature itself,
the object it names, the method), dropping the signature, waiting past the expiry, replaying it after the upload
completed, and using it on another provider's storage are all refused in the storage's own error shape, and
nothing is stored. Another key can never complete, register or read an upload through the API either.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest

from emulator.core.presign import Presigner, PresignFailure
from tests.test_reliability_support import AP, PE, SF, XF, auth, md5, payload

BOTH_STORES = True  # every test here runs on the memory store and on Redis (conftest.py)

pytestmark = pytest.mark.anyio
VIDEO = payload("mp4", 4_000, 1)
IMAGE = payload("png", 4_000, 2)


@dataclass
class Presigned:
    """One issued upload URL and how to use it: send(url) uploads the right bytes the right way."""

    kind: str
    url: str
    method: str
    send: Callable[[httpx.AsyncClient, str], Awaitable[httpx.Response]]
    finish: Callable[[httpx.AsyncClient], Awaitable[None]]  # completes the upload the URL belongs to
    shape: str  # xml or cloudflare


def _put(
    content: bytes, content_type: str | None = None
) -> Callable[[httpx.AsyncClient, str], Awaitable[httpx.Response]]:
    async def send(c: httpx.AsyncClient, url: str) -> httpx.Response:
        headers = {"Content-Type": content_type} if content_type else {}
        return await c.put(url, content=content, headers=headers)

    return send


async def pe_object(c: httpx.AsyncClient, tenant: int = 0) -> Presigned:
    h = auth("posteverywhere", tenant)
    step = (
        await c.post(
            f"{PE}/media/upload", headers=h, json={"filename": "v.mp4", "content_type": "video/mp4", "size": len(VIDEO)}
        )
    ).json()["data"]

    async def finish(c: httpx.AsyncClient) -> None:
        assert (await c.post(f"{PE}/media/{step['media_id']}/complete", headers=h)).status_code == 200

    return Presigned("pe-object", step["upload_url"], "PUT", _put(VIDEO, "video/mp4"), finish, "xml")


async def pe_image(c: httpx.AsyncClient, tenant: int = 0) -> Presigned:
    h = auth("posteverywhere", tenant)
    step = (
        await c.post(
            f"{PE}/media/upload", headers=h, json={"filename": "a.png", "content_type": "image/png", "size": len(IMAGE)}
        )
    ).json()["data"]

    async def send(c: httpx.AsyncClient, url: str) -> httpx.Response:
        return await c.post(url, files={"file": ("a.png", IMAGE, "image/png")})

    async def finish(c: httpx.AsyncClient) -> None:
        assert (await c.post(f"{PE}/media/{step['media_id']}/complete", headers=h)).status_code == 200

    return Presigned("pe-image", step["upload_url"], "POST", send, finish, "cloudflare")


async def ap_part(c: httpx.AsyncClient, tenant: int = 0) -> Presigned:
    h = auth("autoposting", tenant)
    clip = (
        await c.post(
            f"{AP}/clips/upload/init",
            headers=h,
            json={"brandId": "b", "title": "t", "fileName": "a.mp4", "fileSize": len(VIDEO), "mimeType": "video/mp4"},
        )
    ).json()["data"]
    ids = {"clipId": clip["clipId"], "uploadId": clip["uploadId"], "key": clip["key"]}
    url = (await c.post(f"{AP}/clips/upload/presign", headers=h, json={**ids, "partNumbers": [1, 2]})).json()["data"][
        "presignedUrls"
    ][0]["url"]

    async def finish(c: httpx.AsyncClient) -> None:
        done = await c.post(
            f"{AP}/clips/upload/complete", headers=h, json={**ids, "parts": [{"partNumber": 1, "eTag": md5(VIDEO)}]}
        )
        assert done.status_code == 200, done.text

    return Presigned("ap-part", url, "PUT", _put(VIDEO), finish, "xml")


async def sf_object(c: httpx.AsyncClient, tenant: int = 0) -> Presigned:
    h = auth("segmentflow", tenant)
    step = (
        await c.post(
            f"{SF}/assets/upload-url",
            headers=h,
            json={"filename": "a.png", "contentType": "image/png", "size": len(IMAGE)},
        )
    ).json()

    async def finish(c: httpx.AsyncClient) -> None:
        r = await c.post(
            f"{SF}/assets",
            headers=h,
            json={"filename": "a.png", "s3Key": step["key"], "contentType": "image/png", "size": len(IMAGE)},
        )
        assert r.status_code == 200, r.text

    return Presigned("sf-object", step["uploadUrl"], "PUT", _put(IMAGE, "image/png"), finish, "xml")


ISSUERS = {"pe-object": pe_object, "pe-image": pe_image, "ap-part": ap_part, "sf-object": sf_object}


def with_query(url: str, **changes: str | None) -> str:
    """``url`` with query parameters changed (None removes one)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return parts._replace(query=urlencode(query)).geturl()


def signed(url: str, name: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))[name]


def flip(signature: str) -> str:
    return ("0" if signature[0] != "0" else "1") + signature[1:]


def refused(presigned: Presigned, r: httpx.Response, code: str | None = None, status: int = 403) -> None:
    assert r.status_code == status, r.text[:400]
    if presigned.shape == "xml":
        assert r.text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>'), r.text[:200]
        if code:
            assert f"<Code>{code}</Code>" in r.text, r.text[:300]
    else:
        body = r.json()
        assert body["success"] is False and body["errors"][0]["message"]


TAMPERINGS: dict[str, Callable[[str], str]] = {
    "expires-plus-one": lambda u: with_query(u, X_Emulator_Expires=str(int(signed(u, "X-Emulator-Expires")) + 1)),
    "expires-ten-years": lambda u: with_query(
        u, X_Emulator_Expires=str(int(signed(u, "X-Emulator-Expires")) + 10 * 365 * 86400)
    ),
    "max-size-doubled": lambda u: with_query(u, X_Emulator_Max_Size=str(int(signed(u, "X-Emulator-Max-Size")) * 2)),
    "content-type": lambda u: with_query(u, X_Emulator_Content_Type="application/octet-stream"),
    "signature-flipped": lambda u: with_query(u, X_Emulator_Signature=flip(signed(u, "X-Emulator-Signature"))),
    "signature-upper": lambda u: with_query(u, X_Emulator_Signature=signed(u, "X-Emulator-Signature").upper()),
    "signature-truncated": lambda u: with_query(u, X_Emulator_Signature=signed(u, "X-Emulator-Signature")[:-2]),
    "signature-of-another-url": lambda u: u,  # replaced in the test by another URL's signature
    "signature-twice-bogus-last": lambda u: u + "&X-Emulator-Signature=" + "0" * 64,
}


@pytest.mark.parametrize("tampering", list(TAMPERINGS))
@pytest.mark.parametrize("kind", list(ISSUERS))
async def test_changing_any_signed_component_is_refused_and_stores_nothing(client, runtime, kind, tampering):
    presigned = await ISSUERS[kind](client)
    url = TAMPERINGS[tampering](presigned.url)
    if tampering == "signature-of-another-url":
        other = await ISSUERS[kind](client)
        url = with_query(presigned.url, X_Emulator_Signature=signed(other.url, "X-Emulator-Signature"))
    r = await presigned.send(client, url)
    refused(presigned, r, "SignatureDoesNotMatch")
    assert runtime.blobs.index == {}
    ok = await presigned.send(client, presigned.url)  # the genuine URL still works afterwards
    assert ok.status_code == 200, ok.text[:300]


@pytest.mark.parametrize("kind", list(ISSUERS))
async def test_the_url_names_one_object_another_objects_path_is_refused(client, runtime, kind):
    presigned = await ISSUERS[kind](client)
    other = await ISSUERS[kind](client)
    # this URL's signature and parameters on the other upload's path
    moved = urlsplit(other.url)._replace(query=urlsplit(presigned.url).query).geturl()
    refused(presigned, await presigned.send(client, moved), "SignatureDoesNotMatch")
    if kind == "ap-part":  # another part number of the same upload is another object too
        path = urlsplit(presigned.url).path
        renumbered = urlsplit(presigned.url)._replace(path=re.sub(r"/1$", "/2", path)).geturl()
        refused(presigned, await presigned.send(client, renumbered), "SignatureDoesNotMatch")
    assert runtime.blobs.index == {}


@pytest.mark.parametrize("kind", list(ISSUERS))
async def test_an_unsigned_url_is_access_denied(client, runtime, kind):
    presigned = await ISSUERS[kind](client)
    r = await presigned.send(client, with_query(presigned.url, X_Emulator_Signature=None))
    refused(presigned, r, "AccessDenied")
    r = await presigned.send(client, presigned.url.split("?")[0])
    refused(presigned, r, "AccessDenied")
    assert runtime.blobs.index == {}


@pytest.mark.parametrize("kind", list(ISSUERS))
async def test_an_expired_url_is_refused_as_expired(client, runtime, clock, kind):
    presigned = await ISSUERS[kind](client)
    clock.advance(int(signed(presigned.url, "X-Emulator-Expires")) - clock.now() + 1)
    r = await presigned.send(client, presigned.url)
    refused(presigned, r, "AccessDenied")
    assert "Request has expired" in r.text
    assert runtime.blobs.index == {}


@pytest.mark.parametrize("kind", list(ISSUERS))
async def test_another_method_on_the_url_is_refused(client, runtime, kind):
    presigned = await ISSUERS[kind](client)
    other = "POST" if presigned.method == "PUT" else "PUT"
    r = await client.request(other, presigned.url, content=VIDEO, headers={"Content-Type": "video/mp4"})
    assert r.status_code in (403, 405), r.text[:300]  # signed for one method; the storage may not route the other
    assert runtime.blobs.index == {}


@pytest.mark.parametrize("kind", list(ISSUERS))
async def test_replaying_a_url_after_its_upload_completed_is_refused(client, runtime, kind):
    presigned = await ISSUERS[kind](client)
    first = await presigned.send(client, presigned.url)
    assert first.status_code == 200, first.text[:300]
    await presigned.finish(client)
    stored = dict(runtime.blobs.index)
    again = await presigned.send(client, presigned.url)
    if kind == "ap-part":
        refused(presigned, again, "NoSuchUpload", status=404)  # S3: the multipart upload no longer exists
    else:
        refused(presigned, again, "AccessDenied")
    assert runtime.blobs.index == stored  # the completed object is untouched


PROVIDER_SUBSETS = {  # tests/test_registry.py: tables that cover only some providers, and why
    "STORAGE_PATHS": "XenonFlare has no presigned storage: its uploads are multipart bodies on its API",
}
STORAGE_PATHS = {  # a path of each provider's storage that takes an upload
    "posteverywhere": "/posteverywhere/api/storage/objects/3c90c3cc-0d44-4b50-8888-8dd25736052a",
    "autoposting": "/autoposting/api-proxy/storage/clips/upload-id/1",
    "segmentflow": "/segmentflow/storage/assets/3c90c3cc-0d44-4b50-8888-8dd25736052a-a.png",
}


ISSUED_BY = {
    "pe-object": "posteverywhere",
    "pe-image": "posteverywhere",
    "ap-part": "autoposting",
    "sf-object": "segmentflow",
}
CROSS = [(kind, target) for kind in ISSUERS for target in STORAGE_PATHS if ISSUED_BY[kind] != target]


@pytest.mark.parametrize("kind, target", CROSS)
async def test_a_url_is_refused_on_another_providers_storage(client, runtime, kind, target):
    presigned = await ISSUERS[kind](client)
    query = urlsplit(presigned.url).query
    r = await client.put(
        f"{STORAGE_PATHS[target]}?{query}",
        content=VIDEO,
        headers={"Content-Type": signed(presigned.url, "X-Emulator-Content-Type")},
    )
    assert r.status_code in (403, 404), r.text[:300]
    assert r.text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>')
    assert runtime.blobs.index == {}


def test_the_signature_binds_the_provider_that_issued_it():
    presigner = Presigner(b"k" * 32)
    query = presigner.query(
        "PUT", "/storage/assets/a", audience="segmentflow", expires=2_000_000_000, max_size=10, content_type="image/png"
    )
    params = dict(parse_qsl(query))
    grant = presigner.verify("PUT", "/storage/assets/a", params, 1_900_000_000, audience="segmentflow")
    assert grant.max_size == 10
    with pytest.raises(PresignFailure) as failure:  # the same path and values, issued by another provider
        presigner.verify("PUT", "/storage/assets/a", params, 1_900_000_000, audience="posteverywhere")
    assert failure.value.reason == "signature"


# --- another key's uploads, through the API ------------------------------------------------------------------------


async def test_another_key_cannot_complete_presign_register_or_finalize(client):
    pe = await pe_object(client, tenant=0)
    assert (await pe.send(client, pe.url)).status_code == 200
    media_id = urlsplit(pe.url).path.rsplit("/", 1)[1]
    r = await client.post(f"{PE}/media/{media_id}/complete", headers=auth("posteverywhere", 1))
    assert r.status_code == 404

    h0, h1 = auth("autoposting", 0), auth("autoposting", 1)
    clip = (
        await client.post(
            f"{AP}/clips/upload/init",
            headers=h0,
            json={"brandId": "b", "title": "t", "fileName": "a.mp4", "fileSize": 10, "mimeType": "video/mp4"},
        )
    ).json()["data"]
    ids = {"clipId": clip["clipId"], "uploadId": clip["uploadId"], "key": clip["key"]}
    for path, body in (
        (f"{AP}/clips/upload/presign", {**ids, "partNumbers": [1]}),
        (f"{AP}/clips/upload/complete", {**ids, "parts": [{"partNumber": 1, "eTag": md5(b"x")}]}),
        (f"{AP}/clips/upload/abort", ids),
    ):
        assert (await client.post(path, headers=h1, json=body)).status_code == 404
    assert (await client.get(f"{AP}/clips/{clip['clipId']}", headers=h1)).status_code == 404

    sf = await sf_object(client, tenant=0)
    assert (await sf.send(client, sf.url)).status_code == 200
    key = "assets/" + urlsplit(sf.url).path.rsplit("/", 1)[1]
    r = await client.post(
        f"{SF}/assets",
        headers=auth("segmentflow", 1),
        json={"filename": "a.png", "s3Key": key, "contentType": "image/png", "size": len(IMAGE)},
    )
    assert r.status_code == 422 and "no upload URL was issued for this key to your organization" in r.text

    x0, x1 = auth("xenonflare", 0), auth("xenonflare", 1)
    r = await client.post(
        f"{XF}/chunks",
        headers=x0,
        files={"file": ("b", VIDEO, "application/octet-stream")},
        data={"chunkIndex": "0", "totalChunks": "1", "fileId": "shared-name"},
    )
    assert r.status_code == 200
    status = await client.get(f"{XF}/chunks", headers=x1, params={"fileId": "shared-name"})
    assert status.json()["data"]["exists"] is False  # the same client-chosen fileId is another upload per key
    r = await client.post(
        f"{XF}/videos", headers=x1, files=[("platforms", (None, '["youtube"]')), ("fileId", (None, "shared-name"))]
    )
    assert r.status_code == 404
