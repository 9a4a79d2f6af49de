"""Every S3-style storage endpoint refuses what its real storage refuses (issue 21): a body of unknown length, and
bytes that disagree with the digests the client declared.

- Autoposting's part URLs and Segmentflow's uploadUrl stand in for S3 presigned PUTs: `Transfer-Encoding: chunked`
  is 501 NotImplemented, naming the header; a PUT with neither length nor chunking is 411 MissingContentLength.
- PostEverywhere's upload_url for videos and documents stands in for R2, which takes a chunked body (see the
  x-emulator-inferred note of /storage/objects/{media_id} for the basis) and is 411 without any length too.
- All three verify Content-MD5 and x-amz-checksum-crc32, -crc32c, -sha1, -sha256 (base64 of the digest): a mismatch is
  400 BadDigest and keeps nothing; a match is stored and the checksum header is echoed, as S3 does.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import google_crc32c
import httpx
import pytest

from emulator.testing import ServedEmulator
from tests.helpers import AUTH as PE_AUTH
from tests.helpers import MP4, PE, assert_put_without_length_is_411
from tests.test_autoposting_flow import AP, init, presign
from tests.test_autoposting_flow import AUTH as AP_AUTH
from tests.test_segmentflow_flow import SF, png, upload_url

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Storage:
    name: str
    payload: bytes
    content_type: str | None
    chunked_ok: bool  # R2 takes a chunked body; S3 answers 501
    grant: Callable[[httpx.AsyncClient, bytes], Awaitable[str]]  # a presigned URL for these bytes

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Type": self.content_type} if self.content_type else {}


async def _autoposting_part(client: httpx.AsyncClient, payload: bytes) -> str:
    return (await presign(client, await init(client, len(payload)), [1]))[1]


async def _segmentflow_upload_url(client: httpx.AsyncClient, payload: bytes) -> str:
    return str((await upload_url(client, size=len(payload)))["uploadUrl"])


async def _posteverywhere_object(client: httpx.AsyncClient, payload: bytes) -> str:
    r = await client.post(
        f"{PE}/media/upload",
        headers=PE_AUTH,
        json={"filename": "clip.mp4", "content_type": "video/mp4", "size": len(payload)},
    )
    assert r.status_code == 201, r.text
    assert r.json()["data"]["upload_method"]["method"] == "PUT"
    return str(r.json()["data"]["upload_url"])


STORAGES = [
    Storage("autoposting part URL", b"part bytes " * 50, None, False, _autoposting_part),
    Storage("segmentflow uploadUrl", png(10, 10), "image/png", False, _segmentflow_upload_url),
    Storage("posteverywhere R2 upload_url", MP4, "video/mp4", True, _posteverywhere_object),
]
BY_NAME = {storage.name: storage for storage in STORAGES}

# header → (name S3 uses in its message, digest of bytes)
ALGORITHMS = {
    "x-amz-checksum-crc32": ("CRC32", lambda data: zlib.crc32(data).to_bytes(4, "big")),
    "x-amz-checksum-crc32c": ("CRC32C", lambda data: google_crc32c.Checksum(data).digest()),
    "x-amz-checksum-sha1": ("SHA1", lambda data: hashlib.sha1(data).digest()),
    "x-amz-checksum-sha256": ("SHA256", lambda data: hashlib.sha256(data).digest()),
}


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def s3_error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/xml")
    assert f"<Code>{code}</Code>" in r.text and "<RequestId>" in r.text
    return r.text.split("<Message>")[1].split("</Message>")[0]


def test_crc32c_is_castagnoli():
    """The check value of CRC-32C (RFC 3720's polynomial) over "123456789" is 0xE3069283."""
    assert google_crc32c.Checksum(b"123456789").digest() == bytes.fromhex("e3069283")
    assert ALGORITHMS["x-amz-checksum-crc32"][1](b"123456789") == bytes.fromhex("cbf43926")  # CRC-32's check value


@pytest.mark.parametrize("storage", STORAGES, ids=lambda s: s.name)
async def test_a_chunked_put_is_501_on_s3_and_stored_on_r2(client, runtime, storage):
    url = await storage.grant(client, storage.payload)
    before = set(runtime.blobs.index)

    async def streamed():  # no length known up front: httpx sends Transfer-Encoding: chunked
        yield storage.payload[:10]
        yield storage.payload[10:]

    r = await client.put(url, content=streamed(), headers=storage.headers)
    if storage.chunked_ok:
        assert r.status_code == 200, r.text
        assert r.headers["etag"] == f'"{hashlib.md5(storage.payload).hexdigest()}"'
        return
    message = s3_error(r, 501, "NotImplemented")
    assert message == "A header you provided implies functionality that is not implemented"
    assert "<Header>Transfer-Encoding</Header>" in r.text
    assert set(runtime.blobs.index) == before


def _grant_sync(served: ServedEmulator, storage: Storage) -> str:
    """The same presigned URL as ``storage.grant``, over the live server (a blocking client)."""
    with httpx.Client(base_url=served.url, timeout=10) as c:
        if storage.name.startswith("autoposting"):
            clip = c.post(
                f"{AP}/clips/upload/init",
                headers=AP_AUTH,
                json={
                    "brandId": "b",
                    "title": "t",
                    "fileName": "f.mp4",
                    "fileSize": len(storage.payload),
                    "mimeType": "video/mp4",
                },
            ).json()["data"]
            r = c.post(
                f"{AP}/clips/upload/presign",
                headers=AP_AUTH,
                json={"clipId": clip["clipId"], "uploadId": clip["uploadId"], "key": clip["key"], "partNumbers": [1]},
            )
            return str(r.json()["data"]["presignedUrls"][0]["url"])
        if storage.name.startswith("segmentflow"):
            r = c.post(
                f"{SF}/assets/upload-url",
                headers={"x-api-key": "sk_live_" + "0123456789abcdef" * 2},
                json={"filename": "p.png", "contentType": "image/png", "size": len(storage.payload)},
            )
            return str(r.json()["uploadUrl"])
        r = c.post(
            f"{PE}/media/upload",
            headers=PE_AUTH,
            json={"filename": "clip.mp4", "content_type": "video/mp4", "size": len(storage.payload)},
        )
        return str(r.json()["data"]["upload_url"])


@pytest.mark.parametrize("name", list(BY_NAME))
def test_a_put_with_neither_length_nor_chunking_is_411_on_the_wire(live_server, name):
    storage = BY_NAME[name]
    content_type = f"Content-Type: {storage.content_type}\r\n" if storage.content_type else ""
    assert_put_without_length_is_411(_grant_sync(live_server, storage), content_type)


@pytest.mark.parametrize("header", list(ALGORITHMS))
@pytest.mark.parametrize("storage", STORAGES, ids=lambda s: s.name)
async def test_a_wrong_checksum_is_bad_digest_and_keeps_nothing(client, runtime, storage, header):
    name, digest = ALGORITHMS[header]
    url = await storage.grant(client, storage.payload)
    before = set(runtime.blobs.index)
    wrong = b64(digest(storage.payload + b"!"))
    r = await client.put(url, content=storage.payload, headers={**storage.headers, header: wrong})
    assert s3_error(r, 400, "BadDigest") == f"The {name} you specified did not match the calculated checksum."
    assert set(runtime.blobs.index) == before


@pytest.mark.parametrize("header", list(ALGORITHMS))
@pytest.mark.parametrize("storage", STORAGES, ids=lambda s: s.name)
async def test_the_right_checksum_is_accepted_and_echoed(client, storage, header):
    url = await storage.grant(client, storage.payload)
    right = b64(ALGORITHMS[header][1](storage.payload))
    r = await client.put(url, content=storage.payload, headers={**storage.headers, header: right})
    assert r.status_code == 200, r.text
    assert r.headers[header] == right
    assert r.headers["etag"] == f'"{hashlib.md5(storage.payload).hexdigest()}"'


@pytest.mark.parametrize("storage", STORAGES, ids=lambda s: s.name)
async def test_malformed_or_several_checksums_are_invalid_request(client, runtime, storage):
    url = await storage.grant(client, storage.payload)
    before = set(runtime.blobs.index)
    short = b64(hashlib.sha256(storage.payload).digest()[:31])
    r = await client.put(url, content=storage.payload, headers={**storage.headers, "x-amz-checksum-sha256": short})
    assert s3_error(r, 400, "InvalidRequest") == "Value for x-amz-checksum-sha256 header is invalid."
    r = await client.put(
        url, content=storage.payload, headers={**storage.headers, "x-amz-checksum-crc32": "not base64!"}
    )
    assert s3_error(r, 400, "InvalidRequest") == "Value for x-amz-checksum-crc32 header is invalid."
    both = {
        "x-amz-checksum-crc32": b64(zlib.crc32(storage.payload).to_bytes(4, "big")),
        "x-amz-checksum-sha1": b64(hashlib.sha1(storage.payload).digest()),
    }
    r = await client.put(url, content=storage.payload, headers={**storage.headers, **both})
    assert s3_error(r, 400, "InvalidRequest") == (
        "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
    )
    assert set(runtime.blobs.index) == before


@pytest.mark.parametrize("storage", STORAGES, ids=lambda s: s.name)
async def test_content_md5_is_verified_on_every_storage(client, runtime, storage):
    url = await storage.grant(client, storage.payload)
    before = set(runtime.blobs.index)
    wrong = b64(hashlib.md5(storage.payload + b"!").digest())
    r = await client.put(url, content=storage.payload, headers={**storage.headers, "Content-MD5": wrong})
    assert s3_error(r, 400, "BadDigest") == "The Content-MD5 you specified did not match what we received."
    assert set(runtime.blobs.index) == before
    r = await client.put(url, content=storage.payload, headers={**storage.headers, "Content-MD5": "short"})
    assert s3_error(r, 400, "InvalidDigest") == "The Content-MD5 you specified is not valid."
    right = b64(hashlib.md5(storage.payload).digest())
    r = await client.put(url, content=storage.payload, headers={**storage.headers, "Content-MD5": right})
    assert r.status_code == 200, r.text
