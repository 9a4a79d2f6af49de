"""Upload flows for all four providers, keys for many tenants, and checks on what the server keeps.

Shared by the ``test_reliability_*``, ``test_security_*`` and ``test_hostile_*`` modules (it holds no tests).
Every flow takes an ``httpx.AsyncClient`` — in-process or against a live uvicorn — runs a provider's whole upload
with the given bytes, and returns a ``Stored``: what was uploaded and where to read it back, so a test can verify
every stored byte and ETag afterwards, and that no other key can see it.
"""

from __future__ import annotations

import hashlib
import os
import random
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from emulator import Settings, create_app
from emulator.providers import PROVIDERS as REGISTRY
from emulator.runtime import Runtime
from tests.helpers import MP4, sample

PROVIDERS = tuple(REGISTRY)
PE = "/posteverywhere/api/v1"
AP = "/autoposting/api-proxy"
SF = "/segmentflow/api/v1"
XF = "/xenonflare/api/v1/media"
MIB = 1024 * 1024

# Every limit of every provider (from each operation's limits), raised so that load tests measure the server and not
# the rate limiter.
GENEROUS_LIMITS = {
    f"{name}.{limit.name}": 10**6
    for name, provider in REGISTRY.items()
    for op_id in provider.handlers
    for limit in provider.limits(op_id)
}


def key(provider: str, tenant: int) -> str:
    """Tenant ``tenant``'s key for ``provider``: the dev key with its last 16 hex digits replaced, so well-formed,
    never one of the magic keys."""
    digest = hashlib.sha256(f"tenant-{tenant}".encode()).hexdigest()[:16]
    policy = REGISTRY[provider].keys
    secret = policy.example[:-16] + digest
    assert policy.pattern.fullmatch(secret) and secret not in policy.magic, secret
    return secret


def auth(provider: str, tenant: int) -> dict[str, str]:
    """The key where the provider reads it: its own header when it has one, else ``Authorization: Bearer``."""
    policy = REGISTRY[provider].keys
    secret = key(provider, tenant)
    return {policy.header: secret} if policy.header else {"Authorization": f"Bearer {secret}"}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def multipart_etag(parts: list[bytes]) -> str:
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f'"{digest}-{len(parts)}"'


def payload(kind: str, size: int, seed: int) -> bytes:
    """``size`` bytes that sniff as ``kind`` (png, jpg or mp4): a real header, then seeded random bytes."""
    head = {"png": sample("png"), "jpg": sample("jpg"), "mp4": MP4}[kind]
    return head + random.Random(seed).randbytes(max(0, size - len(head)))


@dataclass
class Stored:
    """One completed upload: who stored what, and how to read it back."""

    provider: str
    tenant: int
    id: str
    data: bytes
    etag: str  # the ETag the stored object must carry, quoted
    read_url: str | None  # where its bytes are served (XenonFlare serves none: read from the blob store)
    kind: str = ""


def url_path(url: str) -> str:
    """The path and query of an absolute URL the emulator returned (so one client reaches it in-process too)."""
    return httpx.URL(url).raw_path.decode("ascii")


# --- the flows ---------------------------------------------------------------------------------------------------


async def pe_video(c: httpx.AsyncClient, tenant: int, data: bytes) -> Stored:
    h = auth("posteverywhere", tenant)
    r = await c.post(
        f"{PE}/media/upload", headers=h, json={"filename": "clip.mp4", "content_type": "video/mp4", "size": len(data)}
    )
    assert r.status_code == 201, r.text
    step = r.json()["data"]
    put = await c.put(url_path(step["upload_url"]), content=data, headers={"Content-Type": "video/mp4"})
    assert put.status_code == 200, put.text
    assert put.headers["etag"] == f'"{md5(data)}"'
    done = await c.post(f"{PE}/media/{step['media_id']}/complete", headers=h)
    assert done.status_code == 200, done.text
    assert done.json()["data"]["size"] == len(data)
    return Stored(
        "posteverywhere",
        tenant,
        step["media_id"],
        data,
        f'"{md5(data)}"',
        url_path(step["upload_url"]).split("?")[0],
        "video",
    )


async def pe_image(c: httpx.AsyncClient, tenant: int, data: bytes) -> Stored:
    h = auth("posteverywhere", tenant)
    r = await c.post(
        f"{PE}/media/upload", headers=h, json={"filename": "photo.png", "content_type": "image/png", "size": len(data)}
    )
    assert r.status_code == 201, r.text
    step = r.json()["data"]
    sent = await c.post(url_path(step["upload_url"]), files={"file": ("photo.png", data, "image/png")})
    assert sent.status_code == 200, sent.text
    done = await c.post(f"{PE}/media/{step['media_id']}/complete", headers=h)
    assert done.status_code == 200, done.text
    assert done.json()["data"]["size"] == len(data) and done.json()["data"]["width"] == 64
    return Stored(
        "posteverywhere",
        tenant,
        step["media_id"],
        data,
        f'"{md5(data)}"',
        url_path(step["upload_url"]).split("?")[0],
        "image",
    )


async def ap_clip(c: httpx.AsyncClient, tenant: int, data: bytes, part_size: int | None = None) -> Stored:
    h = auth("autoposting", tenant)
    r = await c.post(
        f"{AP}/clips/upload/init",
        headers=h,
        json={
            "brandId": f"brand_{tenant}",
            "title": "Load",
            "fileName": "load.mp4",
            "fileSize": len(data),
            "mimeType": "video/mp4",
        },
    )
    assert r.status_code == 201, r.text
    clip = r.json()["data"]
    ids = {"clipId": clip["clipId"], "uploadId": clip["uploadId"], "key": clip["key"]}
    size = part_size or len(data)
    parts = [data[at : at + size] for at in range(0, len(data), size)]
    r = await c.post(
        f"{AP}/clips/upload/presign", headers=h, json={**ids, "partNumbers": list(range(1, len(parts) + 1))}
    )
    assert r.status_code == 200, r.text
    urls = {item["partNumber"]: item["url"] for item in r.json()["data"]["presignedUrls"]}
    listed = []
    for number, part in enumerate(parts, start=1):
        put = await c.put(url_path(urls[number]), content=part)
        assert put.status_code == 200, put.text
        assert put.headers["etag"] == f'"{md5(part)}"'
        listed.append({"partNumber": number, "eTag": put.headers["etag"]})
    done = await c.post(f"{AP}/clips/upload/complete", headers=h, json={**ids, "parts": listed})
    assert done.status_code == 200, done.text
    got = await c.get(f"{AP}/clips/{clip['clipId']}", headers=h)
    assert got.status_code == 200 and got.json()["data"]["status"] == "ready", got.text
    return Stored(
        "autoposting", tenant, clip["clipId"], data, multipart_etag(parts), url_path(got.json()["data"]["url"]), "clip"
    )


async def ap_asset(c: httpx.AsyncClient, tenant: int, data: bytes) -> Stored:
    h = auth("autoposting", tenant)
    r = await c.post(f"{AP}/carousels/car_{tenant}/assets", headers=h, files={"file": ("slide.png", data, "image/png")})
    assert r.status_code == 200, r.text
    asset = r.json()["data"]
    return Stored("autoposting", tenant, asset["assetId"], data, f'"{md5(data)}"', url_path(asset["url"]), "asset")


async def sf_asset(c: httpx.AsyncClient, tenant: int, data: bytes) -> Stored:
    h = auth("segmentflow", tenant)
    r = await c.post(
        f"{SF}/assets/upload-url",
        headers=h,
        json={"filename": "hero.png", "contentType": "image/png", "size": len(data)},
    )
    assert r.status_code == 200, r.text
    step = r.json()
    put = await c.put(url_path(step["uploadUrl"]), content=data, headers={"Content-Type": "image/png"})
    assert put.status_code == 200, put.text
    assert put.headers["etag"] == f'"{md5(data)}"'
    r = await c.post(
        f"{SF}/assets",
        headers=h,
        json={"filename": "hero.png", "s3Key": step["key"], "contentType": "image/png", "size": len(data)},
    )
    assert r.status_code == 200, r.text
    asset = r.json()["asset"]
    assert asset["size"] == len(data) and asset["width"] == 64
    return Stored("segmentflow", tenant, asset["id"], data, f'"{md5(data)}"', url_path(asset["url"]), "asset")


async def xf_image(c: httpx.AsyncClient, tenant: int, data: bytes) -> Stored:
    r = await c.post(
        f"{XF}/images",
        headers=auth("xenonflare", tenant),
        files=[("platforms", (None, '["linkedin"]')), ("file", ("photo.jpg", data, "image/jpeg"))],
    )
    assert r.status_code == 200, r.text
    return Stored("xenonflare", tenant, r.json()["data"][0]["id"], data, f'"{md5(data)}"', None, "image")


async def xf_chunked_video(c: httpx.AsyncClient, tenant: int, data: bytes, chunk: int, file_id: str) -> Stored:
    h = auth("xenonflare", tenant)
    pieces = [data[at : at + chunk] for at in range(0, len(data), chunk)]
    for index, piece in enumerate(pieces):
        r = await c.post(
            f"{XF}/chunks",
            headers=h,
            files={"file": ("blob", piece, "application/octet-stream")},
            data={"chunkIndex": str(index), "totalChunks": str(len(pieces)), "fileId": file_id},
        )
        assert r.status_code == 200, r.text
    r = await c.post(
        f"{XF}/videos", headers=h, files=[("platforms", (None, '["youtube"]')), ("fileId", (None, file_id))]
    )
    assert r.status_code == 200, r.text
    return Stored("xenonflare", tenant, r.json()["data"][0]["id"], data, f'"{md5(data)}"', None, "video")


# --- checks ------------------------------------------------------------------------------------------------------


async def verify(c: httpx.AsyncClient, stored: Stored, runtime: Runtime) -> None:
    """The object is there, byte for byte, with its ETag; read back over HTTP where the provider serves it."""
    if stored.read_url is not None:
        r = await c.get(stored.read_url)
        assert r.status_code == 200, (stored, r.text[:300])
        assert r.content == stored.data, f"{stored.provider} {stored.id}: bytes differ"
        assert r.headers["etag"] == stored.etag
        return
    media = runtime.store.get("xenonflare:media", stored.id)
    assert media is not None and media.size == len(stored.data)
    blob = runtime.blobs.get(media.blob_name)
    assert blob is not None and f'"{blob.md5}"' == stored.etag
    assert blob.path.read_bytes() == stored.data, f"xenonflare {stored.id}: bytes differ"
    kind = "images" if stored.kind == "image" else "videos"
    r = await c.get(f"{XF}/{kind}/{stored.id}", headers=auth("xenonflare", stored.tenant))
    assert r.status_code == 200, r.text


async def _pe_refused(c: httpx.AsyncClient, stored: Stored, h: dict[str, str]) -> None:
    r = await c.post(f"{PE}/media/{stored.id}/complete", headers=h)
    assert r.status_code == 404, r.text
    r = await c.post(f"{PE}/posts", headers=h, json={"content": "x", "account_ids": [1], "media_ids": [stored.id]})
    assert r.status_code == 400 and "not found" in r.text, r.text


async def _ap_refused(c: httpx.AsyncClient, stored: Stored, h: dict[str, str]) -> None:
    if stored.kind == "clip":  # carousel assets are public by design: their url is the CDN's
        r = await c.get(f"{AP}/clips/{stored.id}", headers=h)
        assert r.status_code == 404, r.text


async def _sf_refused(c: httpx.AsyncClient, stored: Stored, h: dict[str, str]) -> None:
    r = await c.get(f"{SF}/assets/{stored.id}", headers=h)
    assert r.status_code == 404, r.text
    listed = await c.get(f"{SF}/assets", headers=h, params={"limit": 100})
    assert stored.id not in listed.text


async def _xf_refused(c: httpx.AsyncClient, stored: Stored, h: dict[str, str]) -> None:
    kind = "images" if stored.kind == "image" else "videos"
    r = await c.get(f"{XF}/{kind}/{stored.id}", headers=h)
    assert r.status_code == 404, r.text


REFUSALS = {
    "posteverywhere": _pe_refused,
    "autoposting": _ap_refused,
    "segmentflow": _sf_refused,
    "xenonflare": _xf_refused,
}


async def others_refused(c: httpx.AsyncClient, stored: Stored, other: int) -> None:
    """Another tenant's key cannot read, complete or list ``stored``: the provider answers as if it did not exist."""
    await REFUSALS[stored.provider](c, stored, auth(stored.provider, other))


def stored_files(root: Path) -> dict[str, bytes]:
    """Every committed blob file under a blob store's root (the two-character folders), by relative path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.glob("??/*") if not p.suffix}


def partial_files(runtime: Runtime) -> list[Path]:
    return list(runtime.blobs.tmp_dir.iterdir())


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def index_consistent(runtime: Runtime) -> None:
    """Every indexed blob exists on disk with the size and MD5 the index holds (or, for a form's file not read yet,
    the CRC-32 it arrived with): nothing stored is corrupted."""
    for name, blob in runtime.blobs.index.items():
        data = blob.path.read_bytes()
        assert len(data) == blob.size, name
        assert md5(data) == blob.md5 if blob.md5 else zlib.crc32(data) == blob._crc32, name


ENVELOPES = {  # each provider's error envelope: is this parsed body in it?
    "posteverywhere": lambda body: (
        body["data"] is None
        and {"request_id", "timestamp"} <= body["meta"].keys()
        and {"message", "code", "retryable", "details"} <= body["error"].keys()
    ),
    "autoposting": lambda body: (
        body["success"] is False and isinstance(body["error"], str) and isinstance(body["message"], str)
    ),
    "segmentflow": lambda body: isinstance(body["error"], str) and isinstance(body["message"], str),
    "xenonflare": lambda body: (
        body["success"] is False and isinstance(body["message"], str) and "code" in body["error"]
    ),
}


def envelope(provider: str, body: Any) -> None:
    """The error body has ``provider``'s own JSON envelope shape."""
    assert ENVELOPES[provider](body), body


@asynccontextmanager
async def running(data_dir: Path, seed: int | None = 5) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    """An app on ``data_dir`` and a client for it; closed on exit, as ``serve`` closes it at shutdown."""
    app = create_app(Settings(strict=True, seed=seed, data_dir=data_dir, rate_limits=GENEROUS_LIMITS))
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client:
            yield client, app.state.runtime
    finally:
        app.state.runtime.close()
