"""Autoposting.ai: carousel asset uploads and the multipart clip upload (init → presign → PUT parts → complete).

Published: ``specs/autoposting/published/`` (POST /carousels/{carouselId}/assets, POST /clips/upload/complete, both
verbatim OpenAPI). Everything else — the clip init/presign/abort/get steps from the official SDK, the S3/R2-style
part storage, the delivery URLs, 400/404/409/413/415/429 bodies — is inferred and says so in
``specs/autoposting/inferred.yaml``. Sections: constants · keys and ids · envelope · limits · records · handlers
(carousel assets) · handlers (clips) · handlers (storage behind presigned and delivery URLs) · the provider.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response

from emulator.core import s3
from emulator.core.auth import KeyPolicy, Magic
from emulator.core.chaos import (
    API,
    MP4_HEAD,
    S3_STORAGE,
    UPLOAD_BODY,
    ChaosProfile,
    Finished,
    Order,
    Sample,
    Step,
    Tables,
    asset,
    padded,
)
from emulator.core.clock import iso_millis
from emulator.core.errors import (
    Conflict,
    EmulatorError,
    FieldError,
    Invalid,
    NotFound,
    PayloadTooLarge,
    StorageError,
)
from emulator.core.media import sniff_file
from emulator.core.presign import PresignFailure
from emulator.core.provider import Call, Handler, Provider, Reply
from emulator.core.ranges import stored_object
from emulator.core.ratelimit import Limit
from emulator.core.reclaim import Abandonable
from emulator.core.responses import JSONResponse
from emulator.core.storage import Blob, BlobStore, TooLarge, multipart_etag
from emulator.runtime import Runtime

# --- constants ---------------------------------------------------------------------------------------------------

NAME = "autoposting"
MIB = 1024 * 1024
ASSET_MAX = 20 * MIB  # no carousel limit is published: the sibling POST /media/upload's 20 MB (SDK media.ts)
ASSET_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}  # published: "JPEG, PNG, WebP"
VIDEO_EXTENSIONS = {
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
    "video/x-matroska": "mkv",
    "video/x-msvideo": "avi",
    "video/x-m4v": "m4v",
}  # the SDK's VIDEO_MIME map
MIN_PART_SIZE = 5 * MIB  # R2/S3 multipart: every part but the last is at least 5 MiB
MAX_PART_SIZE = 5 * 1024 * MIB  # R2/S3 multipart: a part is at most 5 GiB
PART_URL_EXPIRES_IN = 3600  # no source states the expiry; S3/R2 presigned URLs commonly last an hour
ANY_CONTENT_TYPE = "*/*"  # part URLs accept any Content-Type, as an S3 UploadPart URL signed without one does

# magic values: documented in docs/control-plane.md ("Magic keys and values") and inferred.yaml; they produce the
# documented 404 on demand
MISSING_CAROUSEL = "car_not_found"
MISSING_BRAND = "brand_not_found"

ASSETS = f"{NAME}:assets"
CLIPS = f"{NAME}:clips"
UPLOADS = f"{NAME}:uploads"

CAROUSEL_OPS = {"uploadCarouselAssets"}
STORAGE_OPS = {"uploadClipPart", "getCarouselAsset", "getClipObject"}


# --- keys and ids ------------------------------------------------------------------------------------------------

# Magic keys, in the spirit of payment providers' test cards (docs/control-plane.md, "Magic keys and values").
MAGIC_KEYS = {
    "sk-social-test-revoked-401": Magic("always revoked: every request gets 401", revoked=True),
    "sk-social-test-ratelimited-429": Magic("always rate-limited: every request gets 429", rate_limited=True),
    "sk-social-test-slow-2000": Magic("always slow: every request waits 2 s", delay=2.0),
    "sk-social-test-readonly-403": Magic(
        "read scopes only: writes get 403", scopes=frozenset({"clips:read", "carousels:read"})
    ),
}
KEYS = KeyPolicy(
    pattern=re.compile(r"sk-social-[A-Za-z0-9_-]{8,200}"),
    bearer=True,
    header="x-api-key",
    example="sk-social-dev0123456789abcdef",
    describe="Authorization: Bearer sk-social-... or x-api-key: sk-social-...",
    magic=MAGIC_KEYS,
)


def request_id(runtime: Runtime, now: float) -> str:
    return runtime.ids.hex(16).upper()  # only the S3-style XML errors carry one (<RequestId>)


def org_id(tenant: str) -> str:
    """Keys are scoped to an organisation; in the emulator each key is its own org."""
    return "org_" + tenant.removeprefix("key_")


def new_upload_id(call: Call) -> str:
    """Opaque, URL-safe, as long as the upload ids R2/S3 issue."""
    return base64.urlsafe_b64encode(call.runtime.ids.bytes(36)).decode().rstrip("=")


# --- envelope ----------------------------------------------------------------------------------------------------
# Two published spellings: the carousel document's error is the HTTP reason phrase ("Unauthorized",
# "Authentication required."), the clips document's a snake_case code ("unauthorized", "Missing or invalid API key.").

CAROUSEL_UNAUTHORIZED = "Authentication required."
CLIPS_UNAUTHORIZED = "Missing or invalid API key."
REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
}
CODES = {
    "validation": "validation_error",
    "invalid_json": "validation_error",
    "bad_request": "validation_error",
    "unauthorized": "unauthorized",
    "forbidden": "forbidden",
    "not_found": "not_found",
    "method_not_allowed": "method_not_allowed",
    "conflict": "conflict",
    "payload_too_large": "payload_too_large",
    "unsupported_media_type": "unsupported_media_type",
    "rate_limited": "rate_limited",
}


def ok(call: Call, reply: Reply) -> Response:
    return JSONResponse({"success": True, "data": reply.data}, status_code=reply.status, headers=reply.headers)


def _style(op_id: str | None, path: str) -> str:
    """Which error shape answers: an operation's own, or for unrouted requests the one its path belongs to."""
    if op_id is not None:
        return "storage" if op_id in STORAGE_OPS else "carousel" if op_id in CAROUSEL_OPS else "clips"
    return "storage" if "/storage/" in path else "carousel" if "/carousels/" in path else "clips"


def error(call: Call | None, request: Request, exc: EmulatorError) -> Response:
    """The one place Autoposting's error shapes are written: the API envelope, or S3 XML for storage URLs."""
    runtime: Runtime = request.app.state.runtime
    style = _style(call.op_id if call else None, request.url.path)
    if style == "storage":
        rid = call.request_id if call else request_id(runtime, runtime.clock.now())
        return s3.render(_as_storage_error(exc), rid)
    if style == "carousel":
        code = REASONS.get(exc.status, "Bad Request")
        message = CAROUSEL_UNAUTHORIZED if exc.kind == "unauthorized" else exc.message
    else:
        code = CODES.get(exc.kind, "validation_error")
        message = CLIPS_UNAUTHORIZED if exc.kind == "unauthorized" else exc.message
    body = {"success": False, "error": code, "message": message}
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


def _as_storage_error(exc: EmulatorError) -> EmulatorError:
    """Parameter errors on a presigned URL, worded as S3 words them."""
    if not isinstance(exc, Invalid) or not exc.errors:
        return exc
    # a value of the wrong type is reported as field "parameters" with the parameter's name in the message
    named = " ".join(f"{e.field} {e.message}" for e in exc.errors)
    if "partNumber" in named:
        return StorageError(
            "Part number must be an integer between 1 and 10000, inclusive",
            code="InvalidArgument",
            http_status=400,
            details={"ArgumentName": "partNumber"},
        )
    if "X-Emulator-" in named:
        return StorageError(
            "X-Emulator-Expires and X-Emulator-Max-Size must be whole numbers, as issued.",
            code="AuthorizationQueryParametersError",
            http_status=400,
        )
    return exc


# --- limits ------------------------------------------------------------------------------------------------------
# The docs name the headers (https://docs.autoposting.ai/authentication) but give no numbers for general requests
# ("subject to per-org limits"): 100 requests per rolling minute per key is the emulator's default, overridable
# with --rate-limit autoposting.minute=N. Presigned part PUTs and delivery GETs are storage, not the API: unlimited.

GENERAL = (Limit("minute", 100, 60),)


def limits(op_id: str) -> tuple[Limit, ...]:
    return GENERAL


# --- records -----------------------------------------------------------------------------------------------------


@dataclass
class Asset:
    id: str
    tenant: str
    carousel_id: str
    slide_id: str | None
    content_type: str
    blob: Blob
    created_at: float

    @property
    def file_name(self) -> str:
        return f"{self.id}.{ASSET_TYPES[self.content_type]}"


@dataclass
class Upload:
    """The R2/S3 multipart upload behind a clip: uploaded parts by number, and where it stands."""

    id: str
    clip_id: str
    tenant: str
    max_part_size: int
    state: str = "active"  # active | completing | completed | aborted | expired (abandoned, core.reclaim)
    parts: dict[int, Blob] = field(default_factory=dict)


@dataclass
class Clip:
    id: str
    tenant: str
    org_id: str
    brand_id: str
    title: str
    file_name: str
    file_size: int
    mime_type: str
    upload_id: str
    created_at: float
    updated_at: float
    object: Blob | None = None  # the completed video: the parts concatenated
    etag: str | None = None  # multipart ETag, "<md5 of part md5s>-<parts>"
    ready_at: float | None = None
    is_video: bool = False  # what processing found in the bytes
    aborted: bool = False

    @property
    def key(self) -> str:
        return f"clips/{self.org_id}/{self.id}/clip.{VIDEO_EXTENSIONS[self.mime_type]}"

    def status(self, now: float) -> str:
        if self.aborted:
            return "failed"
        if self.object is None or self.ready_at is None:
            return "uploading"
        if now < self.ready_at:
            return "processing"
        return "ready" if self.is_video else "failed"


# --- handlers: carousel assets -----------------------------------------------------------------------------------


def _asset_path(call: Call, file_name: str) -> str:
    return f"{call.provider.specs.server_path}/storage/assets/{file_name}"


async def upload_carousel_asset(call: Call) -> Reply:
    carousel_id = call.request.path_params["carouselId"]
    if carousel_id == MISSING_CAROUSEL:  # any other carousel id exists for its key
        raise NotFound(f"Carousel {carousel_id} not found or not owned by your org.")
    assert call.form is not None
    files = call.form.files.get("file", [])
    if not files:
        raise Invalid(
            "file: must be a file part (with a filename), not a text field.",
            errors=[FieldError("file", "must be a file")],
        )
    if len(files) > 1:
        raise Invalid(
            f"file: send exactly one file per request; got {len(files)}.",
            errors=[FieldError("file", "must be sent once")],
        )
    blob = files[0].blob
    if blob.size == 0:
        raise Invalid(
            "file: is empty (0 bytes); send a JPEG, PNG or WebP image.", errors=[FieldError("file", "is empty")]
        )
    sniffed = sniff_file(blob.path)
    if sniffed.mime not in ASSET_TYPES:
        found = (
            f"the uploaded bytes are {sniffed.mime}"
            if sniffed.mime
            else "the uploaded bytes are not a recognised format"
        )
        raise Invalid(
            f"file: must be a JPEG, PNG or WebP image; {found}.",
            errors=[FieldError("file", "must be a JPEG, PNG or WebP image")],
        )
    asset = Asset(
        id="asset_" + call.runtime.ids.ulid(call.now),
        tenant=call.tenant,
        carousel_id=carousel_id,
        slide_id=call.body.get("slideId"),
        content_type=sniffed.mime,
        blob=blob,
        created_at=call.now,
    )
    await call.runtime.store.aput(ASSETS, asset.id, asset)
    return Reply({"assetId": asset.id, "url": call.base_url + _asset_path(call, asset.file_name)})


# --- handlers: clips ---------------------------------------------------------------------------------------------


def _not_found(what: str) -> NotFound:
    return NotFound(f"{what} not found or not owned by your org.")


def _own_clip(call: Call, clip_id: str) -> Clip:
    clip: Clip | None = call.runtime.store.get(CLIPS, clip_id)
    if clip is None or clip.tenant != call.tenant:  # another key's clip is as unknown as a missing one
        raise _not_found(f"Clip {clip_id}")
    return clip


def _own_upload(call: Call) -> tuple[Clip, Upload]:
    """The clip and multipart upload a presign/complete/abort body names, checked to belong together."""
    body = call.body
    clip = _own_clip(call, body["clipId"])
    if body["uploadId"] != clip.upload_id:
        raise NotFound(
            f"Upload {body['uploadId']} is not the multipart upload of clip {clip.id}: send the uploadId "
            "that POST /clips/upload/init returned for this clip."
        )
    key = body.get("key")
    if key is not None and key != clip.key:
        raise Invalid(
            f"key: {key!r} is not the object key of clip {clip.id}; expected {clip.key!r}.",
            errors=[FieldError("key", "does not match the clip")],
        )
    upload: Upload | None = call.runtime.store.get(UPLOADS, clip.upload_id)
    assert upload is not None, "stored with its clip at init and never deleted"
    if upload.state == "aborted":
        raise NotFound(f"Upload {upload.id} of clip {clip.id} was aborted; start again with POST /clips/upload/init.")
    if upload.state == "expired":
        raise NotFound(
            f"Upload {upload.id} of clip {clip.id} was never completed and has expired: abandoned "
            "uploads are aborted, their parts deleted (as an S3 lifecycle rule's "
            "AbortIncompleteMultipartUpload does); start again with POST /clips/upload/init."
        )
    if upload.state == "completing":
        raise Conflict(f"Upload {upload.id} of clip {clip.id} is being completed by another request.")
    if upload.state == "completed":
        raise Conflict(
            f"Upload {upload.id} of clip {clip.id} is already completed; the clip is {clip.status(call.now)}."
        )
    return clip, upload


def _clip_view(call: Call, clip: Clip) -> dict[str, Any]:
    status = clip.status(call.now)
    if call.pending and status == "ready":  # a "pending" fault: this answer shows the clip still processing
        status = "processing"
    view: dict[str, Any] = {
        "id": clip.id,
        "name": clip.title,
        "title": clip.title,
        "status": status,
        "brandId": clip.brand_id,
        "fileName": clip.file_name,
        "fileSize": clip.file_size,
        "mimeType": clip.mime_type,
        "key": clip.key,
        "createdAt": iso_millis(clip.created_at),
        "updatedAt": iso_millis(clip.updated_at),
    }
    if status == "ready":
        view["url"] = call.base_url + f"{call.provider.specs.server_path}/storage/objects/{clip.key}"
    return view


async def init_clip_upload(call: Call) -> Reply:
    body = call.body
    if body["brandId"] == MISSING_BRAND:
        raise _not_found(f"Brand {body['brandId']}")
    clip_id = "clip_" + call.runtime.ids.ulid(call.now)
    upload = Upload(
        id=new_upload_id(call), clip_id=clip_id, tenant=call.tenant, max_part_size=min(body["fileSize"], MAX_PART_SIZE)
    )
    clip = Clip(
        id=clip_id,
        tenant=call.tenant,
        org_id=org_id(call.tenant),
        brand_id=body["brandId"],
        title=body["title"],
        file_name=body["fileName"],
        file_size=body["fileSize"],
        mime_type=body["mimeType"],
        upload_id=upload.id,
        created_at=call.now,
        updated_at=call.now,
    )
    await call.runtime.store.aput(UPLOADS, upload.id, upload)
    await call.runtime.store.aput(CLIPS, clip.id, clip)
    return Reply(status=201, data={"clipId": clip.id, "uploadId": upload.id, "key": clip.key})


def _part_path(call: Call, upload_id: str, part_number: int) -> str:
    return f"{call.provider.specs.server_path}/storage/clips/{upload_id}/{part_number}"


async def presign_clip_parts(call: Call) -> Reply:
    _, upload = _own_upload(call)
    expires = int(call.now) + PART_URL_EXPIRES_IN
    urls = []
    for number in call.body["partNumbers"]:
        path = _part_path(call, upload.id, number)
        query = call.runtime.presigner.query(
            "PUT", path, audience=NAME, expires=expires, max_size=upload.max_part_size, content_type=ANY_CONTENT_TYPE
        )
        urls.append({"partNumber": number, "url": f"{call.base_url}{path}?{query}"})
    return Reply({"presignedUrls": urls})


def _listed_parts(parts: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """(partNumber, ETag without quotes) per listed part, in order; ``eTag`` (published) or ``etag`` (SDK)."""
    listed: list[tuple[int, str]] = []
    for index, part in enumerate(parts):
        spellings = {part[name].strip().strip('"').lower() for name in ("eTag", "etag") if name in part}
        if len(spellings) > 1:
            raise Invalid(
                f"parts.{index}: part {part['partNumber']} has both eTag and etag, with different values; send one.",
                errors=[FieldError(f"parts.{index}", "eTag and etag differ")],
            )
        number = part["partNumber"]
        if listed and number <= listed[-1][0]:
            how = "twice" if number == listed[-1][0] else f"after part {listed[-1][0]}"
            raise Invalid(
                f"parts.{index}: part {number} is listed {how}; list each part once, in ascending partNumber order.",
                errors=[FieldError(f"parts.{index}.partNumber", "out of order")],
            )
        listed.append((number, spellings.pop()))
    return listed


def _parts_to_join(upload: Upload, clip: Clip, listed: list[tuple[int, str]], stored: BlobStore) -> list[Blob]:
    """The stored parts to concatenate, after S3's CompleteMultipartUpload checks; raises naming the bad part."""
    blobs: list[Blob] = []
    for index, (number, etag) in enumerate(listed):
        blob = upload.parts.get(number)
        if blob is None or not stored.holds(blob):
            uploaded = ", ".join(map(str, sorted(upload.parts))) or "none"
            raise Invalid(
                f"parts.{index}: part {number} was not uploaded (uploaded parts: {uploaded}).",
                errors=[FieldError(f"parts.{index}.partNumber", "was not uploaded")],
            )
        if etag != blob.md5:
            raise Invalid(
                f"parts.{index}: the ETag of part {number} does not match the uploaded part "
                f'(sent "{etag}", stored {blob.etag}).',
                errors=[FieldError(f"parts.{index}.eTag", "does not match the uploaded part")],
            )
        blobs.append(blob)
    for index, ((number, _), blob) in enumerate(zip(listed[:-1], blobs[:-1], strict=True)):
        if blob.size < MIN_PART_SIZE:
            raise Invalid(
                f"parts.{index}: part {number} is {blob.size} bytes; every part except the last must be "
                f"at least 5 MiB ({MIN_PART_SIZE} bytes).",
                errors=[FieldError(f"parts.{index}", "is smaller than 5 MiB")],
            )
    total = sum(blob.size for blob in blobs)
    if total != clip.file_size:
        raise Invalid(
            f"parts: the listed parts total {total} bytes, but fileSize was declared as {clip.file_size} "
            "bytes at init.",
            errors=[FieldError("parts", "total size differs from fileSize")],
        )
    return blobs


async def complete_clip_upload(call: Call) -> Reply:
    clip, upload = _own_upload(call)
    parts = _parts_to_join(upload, clip, _listed_parts(call.body["parts"]), call.runtime.blobs)
    upload.state = "completing"  # part PUTs and other completes now wait out; a failure below reopens the upload
    blobs = call.runtime.blobs

    def join() -> tuple[Blob, bool]:
        joined = blobs.concat(
            f"{NAME}/clips/{clip.id}/{clip.key.rsplit('/', 1)[-1]}", parts, clip.mime_type, clip.file_size
        )
        return joined, (sniff_file(joined.path).mime or "").startswith("video/")

    try:
        joined, is_video = await anyio.to_thread.run_sync(join)
    except BaseException:
        upload.state = "active"
        raise
    stored_parts = list(upload.parts.values())
    upload.parts, upload.state = {}, "completed"
    clip.object, clip.etag, clip.is_video = joined, multipart_etag([blob.md5 for blob in parts]), is_video
    clip.ready_at = call.now + call.runtime.settings.video_processing_seconds
    clip.updated_at = call.now
    await call.runtime.store.aput(CLIPS, clip.id, clip)
    await call.runtime.store.aput(UPLOADS, upload.id, upload)
    for blob in stored_parts:  # listed parts are in the object now; unlisted ones are discarded (S3)
        blobs.delete(blob.name)
    return Reply({"clipId": clip.id, "status": "processing"})


async def abort_clip_upload(call: Call) -> Reply:
    clip, upload = _own_upload(call)
    stored_parts = list(upload.parts.values())
    upload.parts, upload.state = {}, "aborted"
    clip.aborted, clip.updated_at = True, call.now
    await call.runtime.store.aput(UPLOADS, upload.id, upload)
    await call.runtime.store.aput(CLIPS, clip.id, clip)
    for blob in stored_parts:  # after the puts: no stored record names deleted bytes
        call.runtime.blobs.delete(blob.name)
    return Reply({"aborted": True})


async def get_clip(call: Call) -> Reply:
    return Reply(_clip_view(call, _own_clip(call, call.request.path_params["clipId"])))


# --- handlers: storage behind presigned and delivery URLs --------------------------------------------------------


def _no_such_upload(upload_id: str, why: str = "") -> StorageError:
    return StorageError(
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have "
        f"been aborted or completed.{why}",
        code="NoSuchUpload",
        http_status=404,
        details={"UploadId": upload_id},
    )


def _open_upload(call: Call, upload_id: str) -> Upload:
    upload: Upload | None = call.runtime.store.get(UPLOADS, upload_id)
    if upload is None or upload.state in ("aborted", "expired"):
        raise _no_such_upload(upload_id)
    if upload.state != "active":
        raise _no_such_upload(upload_id, f" This upload is {upload.state}.")
    return upload


async def upload_clip_part(call: Call) -> Response:
    upload_id, number = call.request.path_params["uploadId"], int(call.request.path_params["partNumber"])
    try:
        grant = call.runtime.presigner.verify(
            "PUT", _part_path(call, upload_id, number), call.request.query_params, call.now, audience=NAME
        )
    except PresignFailure as failure:
        raise s3.presign_error(failure, call.now) from None
    _open_upload(call, upload_id)
    headers = call.request.headers
    s3.refuse_unframed_put(headers, chunked=False)  # S3's UploadPart: chunked 501, no length at all 411
    integrity = s3.Integrity.declared(headers)
    declared = s3.declared_length(headers)
    too_large = PayloadTooLarge(
        f"Your proposed upload exceeds the maximum allowed size: a part may be at most "
        f"{grant.max_size} bytes (the clip's declared fileSize, at most 5 GiB).",
        details={"MaxSizeAllowed": grant.max_size},
    )
    if declared is not None and declared > grant.max_size:
        too_large.details["ProposedSize"] = declared
        raise too_large
    name = f"{NAME}/uploads/{upload_id}/{number}/{call.runtime.ids.hex(12)}"
    try:
        blob = await call.runtime.blobs.put_stream(
            name, call.request.stream(), "application/octet-stream", grant.max_size, declared
        )
    except TooLarge:
        raise too_large from None
    try:
        echoed = await integrity.verify(blob.path, blob.md5)
        if blob.size == 0:
            raise StorageError(
                f"Part {number} is empty: your proposed upload is smaller than the minimum allowed size.",
                code="EntityTooSmall",
                http_status=400,
            )
        upload = _open_upload(call, upload_id)  # again: an abort or complete may have landed while bytes streamed
    except StorageError:
        call.runtime.blobs.delete(blob.name)
        raise
    previous = upload.parts.get(number)
    upload.parts[number] = blob  # re-uploading a part number replaces the part, as in S3
    await call.runtime.store.aput(UPLOADS, upload.id, upload)
    if previous is not None:  # after the put: no stored record names deleted bytes
        call.runtime.blobs.delete(previous.name)
    return Response(status_code=200, headers={"ETag": blob.etag, **echoed})


async def get_carousel_asset(call: Call) -> Response:
    file_name = call.request.path_params["assetFile"]
    asset: Asset | None = await call.runtime.store.aget(ASSETS, file_name.rsplit(".", 1)[0])
    if asset is None or asset.file_name != file_name or not await call.runtime.blobs.intact(asset.blob):
        raise StorageError(
            "The specified key does not exist.",
            code="NoSuchKey",
            http_status=404,
            details={"Key": f"assets/{file_name}"},
        )
    return stored_object(
        call.request,
        asset.blob.path,
        media_type=asset.content_type,
        headers={"ETag": asset.blob.etag, "Cache-Control": "public, max-age=31536000, immutable"},
    )


async def get_clip_object(call: Call) -> Response:
    params = call.request.path_params
    key = f"clips/{params['orgId']}/{params['clipId']}/{params['fileName']}"
    clip: Clip | None = await call.runtime.store.aget(CLIPS, params["clipId"])
    if clip is None or clip.key != key or not await call.runtime.blobs.intact(clip.object):
        raise StorageError("The specified key does not exist.", code="NoSuchKey", http_status=404, details={"Key": key})
    assert clip.object is not None and clip.etag is not None
    return stored_object(call.request, clip.object.path, media_type=clip.mime_type, headers={"ETag": clip.etag})


# --- abandoned uploads (core.reclaim) ----------------------------------------------------------------------------
# Inferred: R2/S3 buckets commonly carry an AbortIncompleteMultipartUpload lifecycle rule; an expired upload then
# answers as an aborted one (NoSuchUpload for its part URLs, 404 for presign/complete/abort, the clip "failed").


def _clip_started(clip: Clip) -> float | None:
    return clip.created_at if clip.object is None and not clip.aborted else None


def _expire_clip(runtime: Runtime, clip_id: str, clip: Clip) -> None:
    upload: Upload | None = runtime.store.get(UPLOADS, clip.upload_id)
    if upload is not None and upload.state != "active":  # being completed right now: the next sweep decides
        return
    stored_parts = list(upload.parts.values()) if upload is not None else []
    if upload is not None:
        upload.parts, upload.state = {}, "expired"
        runtime.store.put(UPLOADS, upload.id, upload)
    clip.aborted, clip.updated_at = True, runtime.clock.now()
    runtime.store.put(CLIPS, clip.id, clip)
    for blob in stored_parts:  # after the puts: no stored record names deleted bytes
        runtime.blobs.delete(blob.name)


# --- chaos testing ----------------------------------------------------------------------------------------------
# Images: one multipart POST to a carousel. Videos: init → presign → PUT parts to R2 (S3-compatible: SlowDown,
# wrong ETags are real there; every part but the last is ≥ 5 MiB) → complete → poll the clip while it processes.


def _finished(tables: Tables, key_id: str, now: float) -> list[Finished]:
    out = [
        Finished(a["id"], a["blob"]["md5"], a["blob"]["size"])
        for a in tables.get("assets", [])
        if a["tenant"] == key_id
    ]
    out += [
        Finished(c["id"], c["object"]["md5"], c["object"]["size"])
        for c in tables.get("clips", [])
        if c["tenant"] == key_id
        and c["object"]
        and c["is_video"]
        and not c["aborted"]
        and c["ready_at"] is not None
        and c["ready_at"] <= now
    ]
    return out


CHAOS = ChaosProfile(
    steps=(
        Step("uploadCarouselAssets", API + UPLOAD_BODY),
        Step("initClipUpload", API),
        Step("presignClipParts", API + ("expire",), expires=PART_URL_EXPIRES_IN),
        Step("uploadClipPart", S3_STORAGE),
        Step("completeClipUpload", API),
        Step("getClip", API + ("pending",)),
    ),
    samples=(
        Sample("image/png", "slide.png", padded(asset("sample.png")), (len(asset("sample.png")), 200 * 1024)),
        Sample("image/jpeg", "slide.jpg", padded(asset("sample.jpg")), (len(asset("sample.jpg")),)),
        Sample("video/mp4", "clip.mp4", padded(MP4_HEAD), (256 * 1024, MIN_PART_SIZE + 1024), processing=True),
    ),
    finished=_finished,
    order=(
        Order(
            frozenset({"uploadClipPart"}),
            frozenset({"completeClipUpload"}),
            "a multipart upload is completed only after its parts were stored",
        ),
    ),
)

# --- the provider ------------------------------------------------------------------------------------------------


async def health(call: Call) -> Response:
    """The overview's health check: no key, no envelope around it, just ``{"success": true}``."""
    return JSONResponse({"success": True})


PROVIDER = Provider(
    name=NAME,
    title="Autoposting.ai",
    real_base_url="https://app.autoposting.ai/api-proxy",
    client_path="",
    keys=KEYS,
    handlers={
        # scopes from https://docs.autoposting.ai/authentication
        "uploadCarouselAssets": Handler(
            upload_carousel_asset, body="multipart", max_file_size=ASSET_MAX, scopes=("carousels:write",)
        ),
        "initClipUpload": Handler(init_clip_upload, scopes=("clips:write",)),
        "presignClipParts": Handler(presign_clip_parts, scopes=("clips:write",)),
        "completeClipUpload": Handler(complete_clip_upload, scopes=("clips:write",)),
        "abortClipUpload": Handler(abort_clip_upload, scopes=("clips:write",)),
        "getClip": Handler(get_clip, body="none", scopes=("clips:read",)),
        "uploadClipPart": Handler(upload_clip_part, body="stream", auth=False, rate_limited=False),
        "getCarouselAsset": Handler(get_carousel_asset, body="none", auth=False, rate_limited=False),
        "getClipObject": Handler(get_clip_object, body="none", auth=False, rate_limited=False),
        "getHealth": Handler(health, body="none", auth=False, rate_limited=False),
    },
    ok=ok,
    error=error,
    limits=limits,
    request_id=request_id,
    abandonable=(Abandonable(CLIPS, _clip_started, _expire_clip),),
    chaos=CHAOS,
)
