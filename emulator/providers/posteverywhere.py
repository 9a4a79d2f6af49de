"""PostEverywhere: the 3-step presigned media upload, upload-from-url and posts.

Published: ``specs/posteverywhere/published/`` (POST /v1/media/upload). Everything else is inferred and says so
in ``specs/posteverywhere/inferred.yaml``. Sections: constants · keys and ids · envelope · limits · records ·
handlers (API) · handlers (storage behind upload_url) · the provider.
"""

from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from emulator.core import s3
from emulator.core.auth import KeyPolicy, Magic
from emulator.core.chaos import (
    API,
    MP4_HEAD,
    PDF_HEAD,
    S3_STORAGE,
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
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    StorageError,
    Unauthorized,
    UnsupportedMediaType,
)
from emulator.core.media import IMAGE_TYPES, same_family, sniff_file
from emulator.core.multipart import FilePart, parse_form
from emulator.core.presign import PresignFailure
from emulator.core.provider import Call, Handler, Provider, Reply
from emulator.core.ranges import stored_object
from emulator.core.ratelimit import Limit
from emulator.core.reclaim import Abandonable
from emulator.core.responses import JSONResponse
from emulator.core.storage import Blob, BlobWriter
from emulator.runtime import Runtime

if TYPE_CHECKING:
    from emulator.core.fetch import FetchFailed

# --- constants ---------------------------------------------------------------------------------------------------

NAME = "posteverywhere"
MB = 1024 * 1024
IMAGE_MAX = 20 * MB  # the published max_size example: 20971520
DOCUMENT_MAX = 20 * MB
VIDEO_MAX = 500 * MB
FROM_URL_MAX = 25 * MB  # upload-from-url page: "images only, up to 25 MB"
EXPIRES_IN = 3600  # published example: expires_in 3600
FORBIDDEN_POST_FIELDS = ("media", "media_id", "mediaId", "attachments", "url")
VIDEO_EXTENSIONS = {".mp4", ".mov", ".m4v", ".webm", ".avi", ".mkv", ".wmv", ".flv", ".3gp"}
IMAGE_EXTENSIONS = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".heic": "image/heic",
    ".heif": "image/heif",
}
STORAGE_S3 = {"storeObject", "getStoredObject"}
STORAGE_IMAGES = {"storeImage", "storeImageRaw", "getStoredImage"}
MEDIA = f"{NAME}:media"
POSTS = f"{NAME}:posts"
# The official clients whose undocumented forms the emulator accepts (docs/official-clients.md), by version
SDK = "@posteverywhere/sdk 1.4.2"
MCP = "@posteverywhere/mcp 1.7.0"
LIST_DEFAULT, LIST_MAX = 20, 100  # MCP list_media: limit 1..100, default 20


def category(content_type: str) -> str:
    if content_type in IMAGE_TYPES:
        return "image"
    return "video" if content_type.startswith("video/") else "document"


# --- keys and ids ------------------------------------------------------------------------------------------------

MAGIC_KEYS = {
    "pe_live_00000000000000000000000000000401": Magic("always revoked: every request gets 401", revoked=True),
    "pe_live_00000000000000000000000000000429": Magic("always rate-limited: every request gets 429", rate_limited=True),
    "pe_live_00000000000000000000000000002000": Magic("always slow: every request waits 2 s", delay=2.0),
    "pe_live_00000000000000000000000000000403": Magic(
        "read scope only: writes get 401 (missing scope)", scopes=frozenset({"read"})
    ),
}
KEYS = KeyPolicy(
    pattern=re.compile(r"pe_live_[a-f0-9]{32}"),
    bearer=True,
    example="pe_live_" + "0123456789abcdef" * 2,
    describe="Authorization: Bearer pe_live_<32 lowercase hex>",
    magic=MAGIC_KEYS,
)
FAIL_PROCESSING = "fail-processing"  # magic: a filename starting with this completes with status "failed"


def request_id(runtime: Runtime, now: float) -> str:
    return "req_" + runtime.ids.ulid(now)  # shape from https://developers.posteverywhere.ai/errors


# --- envelope ----------------------------------------------------------------------------------------------------

CODES = {
    "validation": "validation_error",
    "invalid_json": "invalid_json",
    "unauthorized": "unauthorized",
    "forbidden": "forbidden",
    "not_found": "not_found",
    "method_not_allowed": "method_not_allowed",
    "conflict": "conflict",
    "payload_too_large": "payload_too_large",
    "unsupported_media_type": "unsupported_media_type",
    "unprocessable": "unprocessable_entity",
    "rate_limited": "rate_limited",
    "bad_request": "bad_request",
}


def meta(request_id: str, now: float) -> dict[str, str]:
    return {"request_id": request_id, "timestamp": iso_millis(now)}


def ok(call: Call, reply: Reply) -> Response:
    body = {"data": reply.data, "error": None, "meta": meta(call.request_id, call.now)}
    return JSONResponse(body, status_code=reply.status, headers=reply.headers)


UNAUTHORIZED = "Invalid or expired API key"


def key_hint(exc: EmulatorError) -> str:
    """Why the key was refused and the form that works, said once (a malformed key's message already says it)."""
    if exc.details.get("reason") == "malformed":
        return exc.message
    return f"{exc.message} Send {KEYS.describe}."


def error(call: Call | None, request: Request, exc: EmulatorError) -> Response:
    """The one place PostEverywhere's error shapes are written: API envelope, or the storage host's own."""
    runtime: Runtime = request.app.state.runtime
    now = call.now if call else runtime.clock.now()
    rid = call.request_id if call else request_id(runtime, now)
    # storage hosts answer in their own shape, also for requests no route matched (wrong method, bad path)
    storage = (
        call.op_id
        if call
        else (
            "storeObject"
            if "/storage/objects/" in request.url.path
            else "storeImage"
            if "/storage/images/" in request.url.path
            else ""
        )
    )
    if storage in STORAGE_S3:
        return s3.render(exc, rid)
    if storage in STORAGE_IMAGES:
        return cloudflare_error(exc)
    message = exc.message
    if exc.kind == "forbidden" and "required" in exc.details:
        # https://developers.posteverywhere.ai/scopes: a call outside the key's scopes is answered 401
        exc = Unauthorized(
            f"This API key lacks the {', '.join(exc.details['required'])} scope.",
            details={"reason": "scope", "required": exc.details["required"]},
        )
        message = f"{exc.message} Scopes are set when the key is created."
    elif exc.kind == "unauthorized":
        # the documented text, exactly (https://developers.posteverywhere.ai/authentication); what the emulator
        # knows about the key goes to details: why (reason) and how to send one that works (hint)
        message = UNAUTHORIZED
        exc = Unauthorized(exc.message, details={**exc.details, "hint": key_hint(exc)})
    details: dict[str, Any] = dict(exc.details)
    if exc.errors:
        details["validation_errors"] = [{"field": e.field, "message": e.message} for e in exc.errors]
    err: dict[str, Any] = {
        "message": message,
        "code": exc.code or CODES.get(exc.kind, "bad_request"),
        "retryable": exc.status >= 500 or exc.status == 429,
    }
    if isinstance(exc, RateLimited):
        err["retryAfter"] = exc.retry_after
    err["details"] = details
    body = {"data": None, "error": err, "meta": meta(rid, now)}
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


# Cloudflare Images answers {result, success, errors:[{code, message}], messages}; the numeric codes below are the
# emulator's (5xxx like Cloudflare's image errors), chosen per failure so clients can tell them apart.
_CF_CODES = {
    "AccessDenied": 5403,
    "SignatureDoesNotMatch": 10000,
    "AuthorizationQueryParametersError": 5400,
    "NoSuchKey": 5404,
    "NoSuchUpload": 5404,
}


def cloudflare_error(exc: EmulatorError) -> Response:
    if isinstance(exc, StorageError):
        code, status = _CF_CODES.get(exc.code or "", 5400), exc.status
    elif isinstance(exc, PayloadTooLarge):
        code, status = 5413, 413
    elif isinstance(exc, UnsupportedMediaType):
        code, status = 5415, 415
    elif isinstance(exc, NotFound):
        code, status = 5404, 404
    else:
        code, status = 5400, exc.status
    body = {"result": None, "success": False, "errors": [{"code": code, "message": exc.message}], "messages": []}
    return JSONResponse(body, status_code=status, headers=exc.headers)


# --- limits ------------------------------------------------------------------------------------------------------
# https://developers.posteverywhere.ai/rate-limits: 60/min and 1,000/h per key;
# https://posteverywhere.ai/developers/rate-limits: 10,000/day; POST /posts 20/min, 100/h, 500/day.

GENERAL = (Limit("minute", 60, 60), Limit("hour", 1000, 3600), Limit("day", 10000, 86400))
POSTING = (Limit("posts-minute", 20, 60), Limit("posts-hour", 100, 3600), Limit("posts-day", 500, 86400))


def limits(op_id: str) -> tuple[Limit, ...]:
    return GENERAL + POSTING if op_id == "createPost" else GENERAL


# --- records -----------------------------------------------------------------------------------------------------


@dataclass
class Media:
    id: str
    tenant: str
    filename: str
    content_type: str
    declared_size: int
    created_at: float
    expires_at: float
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    blob: Blob | None = None
    completed_at: float | None = None
    ready_at: float | None = None
    source_url: str | None = None
    failed: bool = False
    # creation order within one virtual instant (a frozen clock): newest first in the library even then
    seq: int = field(default_factory=time.perf_counter_ns)

    @property
    def type(self) -> str:
        return category(self.content_type)

    def status(self, now: float) -> str:
        if self.completed_at is None:
            return "uploading"
        if self.failed:
            return "failed"
        return "ready" if self.ready_at is not None and now >= self.ready_at else "processing"


@dataclass
class Post:
    id: str
    tenant: str
    content: str
    account_ids: list[int]
    media_ids: list[str]
    status: str
    scheduled_for: str | None
    timezone: str | None
    created_at: float
    platform_content: dict[str, Any] = field(default_factory=dict)
    updated_at: float | None = None
    seq: int = field(default_factory=time.perf_counter_ns)  # creation order within one virtual instant


def _own_media(call: Call, media_id: str) -> Media:
    media: Media | None = call.runtime.store.get(MEDIA, media_id)
    if media is None or media.tenant != call.tenant:  # never reveal another key's media
        raise NotFound(f"Media {media_id} not found.")
    return media


def _storage_path(call: Call, kind: str, media_id: str) -> str:
    return f"{call.provider.specs.server_path}/storage/{kind}/{media_id}"


_NOT_PLAIN = re.compile(r"[\x00-\x1f\x7f/\\]")


def _check_filename(filename: str, field_name: str = "filename") -> None:
    if _NOT_PLAIN.search(filename) or filename in (".", ".."):
        raise Invalid(
            f"{field_name}: must be a plain file name (no directory parts or control characters).",
            errors=[FieldError(field_name, "must be a plain file name without '/', '\\', '..' or control characters")],
        )


# --- undocumented forms official clients send ----------------------------------------------------------------------


def canonical_type(value: str) -> str:
    """A media type as the published enum spells it: ``IMAGE/JPEG`` and ``image/jpeg; charset=binary`` are
    ``image/jpeg``. Type and subtype are case-insensitive and may carry parameters (RFC 9110, section 8.3.1),
    so a client sending either form means the same type; what follows ``;`` is a parameter list, not the type."""
    return value.split(";", 1)[0].strip(" \t").lower()


def sdk_upload_body(call: Call, body: Any) -> Any:
    """Step 1's body before validation: the media type in its canonical form, and the official SDK's size.

    ``media.upload()`` of the official SDK sends the size as ``file_size``; the published page names it ``size``.
    """
    if isinstance(body, dict) and isinstance(body.get("content_type"), str):
        body = {**body, "content_type": canonical_type(body["content_type"])}
    if isinstance(body, dict) and "file_size" in body and "size" not in body:
        call.undocumented(
            "file_size instead of size in POST /v1/media/upload",
            f"{SDK} media.upload()",
            Invalid(
                "size: is required (file_size is not a documented field; --strict-docs is on).",
                errors=[FieldError("size", "is required; file_size is not a documented field")],
            ),
        )
        body = {**body, "size": body["file_size"]}
        del body["file_size"]
    return body


# --- handlers: API -----------------------------------------------------------------------------------------------


async def upload_media(call: Call) -> Reply:
    body = call.body
    _check_filename(body["filename"])
    content_type, kind = body["content_type"], category(body["content_type"])
    max_size = {"image": IMAGE_MAX, "video": VIDEO_MAX, "document": DOCUMENT_MAX}[kind]
    media = Media(
        id=call.runtime.ids.uuid4(),
        tenant=call.tenant,
        filename=body["filename"],
        content_type=content_type,
        declared_size=body["size"],
        created_at=call.now,
        expires_at=int(call.now) + EXPIRES_IN,
        width=body.get("width"),
        height=body.get("height"),
        duration=body.get("duration"),
    )
    await call.runtime.store.aput(MEDIA, media.id, media)
    if kind == "image":
        method, path_kind, signed_type = "POST", "images", "multipart/form-data"
        upload_method: dict[str, Any] = {"method": "POST", "content_type": "multipart/form-data", "field_name": "file"}
        provider = "images"
    else:
        method, path_kind, signed_type = "PUT", "objects", content_type
        upload_method = {"method": "PUT", "content_type": content_type, "headers": {"Content-Type": content_type}}
        provider = "r2"
    path = _storage_path(call, path_kind, media.id)
    query = call.runtime.presigner.query(
        method, path, audience=NAME, expires=int(media.expires_at), max_size=max_size, content_type=signed_type
    )
    return Reply(
        status=201,
        data={
            "media_id": media.id,
            "media_ids": [media.id],
            "upload_url": f"{call.base_url}{path}?{query}",
            "upload_method": upload_method,
            "provider": provider,
            "expires_in": EXPIRES_IN,
            "max_size": max_size,
            "next_step": f"Upload your file to upload_url (step 2), then call POST /v1/media/{media.id}/complete "
            "to finalize (step 3).",
        },
    )


def _shown_status(call: Call, media: Media) -> str:
    """The media's status as this answer reports it: a ``pending`` fault shows a ready video still processing."""
    status = media.status(call.now)
    return "processing" if call.pending and status == "ready" and media.type == "video" else status


def _media_view(call: Call, media: Media) -> dict[str, Any]:
    status = _shown_status(call, media)
    if status == "failed":
        next_step = "Media processing failed. Upload the file again with POST /v1/media/upload."
    elif status == "ready":
        next_step = f'Media is ready. Attach it to a post by passing "media_ids": ["{media.id}"] to POST /v1/posts.'
    else:
        next_step = (
            f"Media is processing. Call POST /v1/media/{media.id}/complete again to check; attach it with "
            f'"media_ids": ["{media.id}"] to POST /v1/posts once its status is "ready".'
        )
    assert media.blob is not None
    return {
        "id": media.id,
        "media_id": media.id,
        "media_ids": [media.id],
        "status": status,
        "type": media.type,
        "width": media.width,
        "height": media.height,
        "duration": media.duration,
        "size": media.blob.size,
        "content_type": media.content_type,
        "created_at": iso_millis(media.created_at),
        "next_step": next_step,
        "message": next_step,
    }


def _not_ready(reason: str) -> Invalid:
    return Invalid("Upload not ready or file verification failed", code="upload_not_ready", details={"reason": reason})


async def complete_media(call: Call) -> Reply:
    media = _own_media(call, call.request.path_params["media_id"])
    if media.completed_at is not None:  # calling again reports the current state
        return Reply(_media_view(call, media))
    blob = media.blob
    if blob is None or not call.runtime.blobs.holds(blob):
        raise _not_ready("No file has been uploaded to this media's upload_url yet (step 2).")
    if blob.size != media.declared_size:
        raise _not_ready(f"The uploaded file is {blob.size} bytes but size was declared as {media.declared_size}.")
    sniffed = sniff_file(blob.path)
    if not same_family(media.content_type, sniffed.mime):
        raise _not_ready(
            f"The uploaded bytes are {sniffed.mime or 'not a recognised format'}, "
            f"but content_type was declared as {media.content_type}."
        )
    if media.type == "image":
        media.width, media.height = sniffed.width, sniffed.height
    media.completed_at = call.now
    media.failed = media.filename.startswith(FAIL_PROCESSING)
    delay = call.runtime.settings.video_processing_seconds if media.type == "video" else 0.0
    media.ready_at = call.now + delay
    await call.runtime.store.aput(MEDIA, media.id, media)
    return Reply(_media_view(call, media))


def _delivery_url(call: Call, media: Media) -> str | None:
    if media.blob is None or not call.runtime.blobs.holds(media.blob):
        return None
    return call.base_url + _storage_path(call, "images" if media.type == "image" else "objects", media.id)


def _library_item(call: Call, media: Media) -> dict[str, Any]:
    """A media item as the official clients read it: the SDK's ``MediaItem`` and the MCP server's, both whole."""
    status = _shown_status(call, media)
    width, height = media.width, media.height
    dimensions = {"width": width, "height": height} if width and height else None
    return {
        "id": media.id,
        "media_id": media.id,
        "filename": media.filename,
        "original_name": media.filename,
        "type": media.type,
        "media_type": media.type,
        "mime_type": media.content_type,
        "content_type": media.content_type,
        "file_size": media.blob.size if media.blob is not None else media.declared_size,
        "status": status,
        "media_status": status,
        # the SDK's enum has no "processing": a video still being processed has not finished uploading for it
        "upload_status": {"processing": "uploading"}.get(status, status),
        "url": _delivery_url(call, media) if status != "uploading" else None,
        "thumbnail_url": None,  # the emulator makes no thumbnails
        "dimensions": dimensions,
        "width": width,
        "height": height,
        "duration": media.duration,
        "aspect_ratio": round(width / height, 4) if width and height else None,
        "orientation": (
            None
            if not (width and height)
            else "square"
            if width == height
            else "landscape"
            if width > height
            else "portrait"
        ),
        "error_message": "Media processing failed." if status == "failed" else None,
        "created_at": iso_millis(media.created_at),
    }


def _page(call: Call, records: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    """The ``limit``/``offset`` page of ``records``, newest first, and the pagination both official clients read."""
    query = call.request.query_params
    limit, offset = int(query.get("limit", LIST_DEFAULT)), int(query.get("offset", 0))
    records.sort(key=lambda r: (r.created_at, r.seq), reverse=True)
    page = records[offset : offset + limit]
    return page, {
        "total": len(records),
        "limit": limit,
        "offset": offset,
        "has_more": offset + len(page) < len(records),
    }


async def list_media(call: Call) -> Reply:
    kind = call.request.query_params.get("type")
    page, pagination = _page(
        call,
        [m for m in call.runtime.store.values(MEDIA) if m.tenant == call.tenant and (kind is None or m.type == kind)],
    )
    return Reply(
        {"media": [_library_item(call, m) for m in page], "total": pagination["total"], "pagination": pagination}
    )


async def get_media(call: Call) -> Reply:
    return Reply(_library_item(call, _own_media(call, call.request.path_params["media_id"])))


async def delete_media(call: Call) -> Reply:
    media = _own_media(call, call.request.path_params["media_id"])
    await call.runtime.store.adelete(MEDIA, media.id)
    if media.blob is not None:
        call.runtime.blobs.delete(media.blob.name)
    # the MCP server's delete_media: "posts that reference this media will no longer have the attachment"
    for post in call.runtime.store.values(POSTS):
        if post.tenant == call.tenant and media.id in post.media_ids:
            post.media_ids = [m for m in post.media_ids if m != media.id]
            await call.runtime.store.aput(POSTS, post.id, post)
    return Reply({"deleted": True, "id": media.id})


def _refuse_private_host(host: str, allow_loopback: bool = False) -> None:
    """The page's rule on the URL as given (--fetch-urls checks every resolved address and redirect too);
    ``allow_loopback``: the tests' own server, with the test-only setting."""
    bad = Invalid(
        f"url: host {host!r} is not public; private, loopback and link-local addresses are rejected.",
        errors=[FieldError("url", "must point at a public host")],
    )
    name = host.strip("[]").lower().rstrip(".")
    if allow_loopback and (name == "localhost" or _is_loopback_literal(name)):
        return
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        if (
            "." not in name
            or name == "localhost"
            or name.endswith((".localhost", ".local", ".internal", ".home.arpa", ".lan"))
        ):
            raise bad from None
        return
    if not address.is_global or address.is_multicast:
        raise bad


def _is_loopback_literal(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


_SAMPLES = {
    "image/jpeg": "sample.jpg",
    "image/png": "sample.png",
    "image/gif": "sample.gif",
    "image/webp": "sample.webp",
    "image/heic": "sample.heic",
    "image/heif": "sample.heic",
    "video/mp4": "sample.mp4",
}


def _fetch_refusal(failure: FetchFailed) -> EmulatorError:
    """A failed import as the endpoint answers it (inferred: the page names only the public-https rule, 25 MB and
    images-only; the other failures are 400 fetch_failed with the reason, and the source's status when it gave one)."""
    if failure.reason in ("not_public", "redirects"):
        return Invalid(f"url: {failure.message}.", errors=[FieldError("url", "must point at a public https:// host")])
    if failure.reason == "too_large":
        return PayloadTooLarge(
            f"url: the file is larger than 25 MB ({failure.message}); upload-from-url imports images up to 25 MB.",
            details={"max_size": FROM_URL_MAX},
        )
    details: dict[str, Any] = {"reason": failure.reason}
    if failure.status is not None:
        details["source_status"] = failure.status
    return Invalid(
        f"Could not fetch url: {failure.message}.",
        code="fetch_failed",
        details=details,
        errors=[FieldError("url", failure.message)],
    )


async def _fetched(call: Call, url: str, media_id: str, video_allowed: bool) -> tuple[Blob, str]:
    """--fetch-urls: the bytes at ``url``, streamed into the blob store under the page's rules; the type they are."""
    # imported here: httpx (which fetch uses) imports rich when it is installed, and serve starts without either
    from emulator.core.fetch import FetchFailed, FetchPolicy, fetch

    test_ca = call.runtime.settings.test_only_fetch_loopback_ca
    policy = FetchPolicy(FROM_URL_MAX, allow_loopback=test_ca is not None, extra_ca=test_ca)
    writer = call.runtime.blobs.writer(f"{NAME}/media/{media_id}", "application/octet-stream", FROM_URL_MAX)
    try:
        await fetch(url, policy, writer.write)
    except FetchFailed as failure:
        writer.abort()
        raise _fetch_refusal(failure) from None
    except BaseException:
        writer.abort()
        raise
    blob = writer.commit()
    mime = sniff_file(blob.path).mime
    if mime is not None and (mime in IMAGE_TYPES or (video_allowed and mime == "video/mp4")):
        return blob, mime
    call.runtime.blobs.delete(blob.name)
    raise UnsupportedMediaType(
        f"url: the file is {mime or 'not a recognised format'}, not an image; "
        "upload-from-url imports images only (JPEG, PNG, GIF, WebP, HEIC, HEIF).",
        errors=[FieldError("url", "must point at an image")],
    )


async def upload_from_url(call: Call) -> Reply:
    url = call.body["url"]
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket: "https://[::1"
        raise Invalid(
            "url: must be a public https:// URL.", errors=[FieldError("url", "must be an https:// URL")]
        ) from None
    if parts.scheme != "https" or not parts.hostname:
        raise Invalid("url: must be a public https:// URL.", errors=[FieldError("url", "must be an https:// URL")])
    settings = call.runtime.settings
    _refuse_private_host(
        parts.hostname, allow_loopback=settings.fetch_urls and settings.test_only_fetch_loopback_ca is not None
    )
    basename = PurePosixPath(unquote(parts.path)).name
    suffix = PurePosixPath(basename).suffix.lower()
    images_only = UnsupportedMediaType(
        "upload-from-url accepts images only; upload videos with POST /v1/media/upload.",
        errors=[FieldError("url", "must point at an image")],
    )
    if suffix in VIDEO_EXTENSIONS:
        if suffix != ".mp4":  # the MCP server's tool: "VIDEOS (MP4 only — up to 500 MB)"
            raise images_only
        call.undocumented(
            "an MP4 URL to POST /v1/media/upload-from-url, imported in the background (documented: images only, 415)",
            f"{MCP} upload_media_from_url",
            images_only,
        )
    filename = call.body.get("filename") or basename or ("video.mp4" if suffix == ".mp4" else "image.jpg")
    _check_filename(filename)
    media_id = call.runtime.ids.uuid4()
    if call.runtime.settings.fetch_urls:
        blob, content_type = await _fetched(call, url, media_id, video_allowed=suffix == ".mp4")
    else:
        # No outbound network by default: the file is synthesised from a bundled sample of the URL's type.
        content_type = "video/mp4" if suffix == ".mp4" else IMAGE_EXTENSIONS.get(suffix, "image/jpeg")
        sample = resources.files("emulator") / "assets" / _SAMPLES[content_type]
        writer = call.runtime.blobs.writer(f"{NAME}/media/{media_id}", content_type, FROM_URL_MAX)
        try:
            writer.write(sample.read_bytes())
        except BaseException:
            writer.abort()
            raise
        blob = writer.commit()
    sniffed = sniff_file(blob.path)
    video = content_type == "video/mp4"  # ready once the emulator's processing delay has passed, like uploads
    media = Media(
        id=media_id,
        tenant=call.tenant,
        filename=filename,
        content_type=content_type,
        declared_size=blob.size,
        created_at=call.now,
        expires_at=call.now,
        width=sniffed.width,
        height=sniffed.height,
        blob=blob,
        completed_at=call.now,
        source_url=url,
        ready_at=call.now + (call.runtime.settings.video_processing_seconds if video else 0.0),
    )
    await call.runtime.store.aput(MEDIA, media_id, media)
    ready = media.status(call.now) == "ready"
    next_step = (
        f'Media is ready. Attach it to a post by passing "media_ids": ["{media_id}"] to POST /v1/posts.'
        if ready
        else f"The video is importing. Poll GET /v1/media/{media_id} until its media_status is "
        '"ready", then attach it with media_ids.'
    )
    return Reply(
        status=201,
        data={
            "media_id": media_id,
            "media_ids": [media_id],
            "media_status": "ready" if ready else "uploading",
            "type": media.type,
            "url": _delivery_url(call, media),
            "filename": filename,
            "size": blob.size,
            "content_type": content_type,
            "source_url": url,
            "next_step": next_step,
        },
    )


def _check_post_fields(call: Call, body: dict[str, Any]) -> tuple[str | None, list[str] | None]:
    """The rules every post body follows: no attachment fields but media_ids, one schedule, ready own media."""
    for name in FORBIDDEN_POST_FIELDS:
        if name in body:
            raise Invalid(
                f"Unknown field '{name}': did you mean media_ids?",
                code="invalid_field_name",
                details={"field": name, "hint": "did you mean media_ids?"},
                errors=[FieldError(name, "is not a field of a post; did you mean media_ids?")],
            )
    scheduled = body.get("scheduled_for")
    alias = body.get("scheduled_at")
    if scheduled and alias and scheduled != alias:
        raise Invalid(
            "scheduled_at is a deprecated alias of scheduled_for; send one, or the same value.",
            errors=[FieldError("scheduled_at", "differs from scheduled_for")],
        )
    problems: list[FieldError] = []
    media_ids: list[str] | None = body.get("media_ids")
    for index, media_id in enumerate(media_ids or []):
        media: Media | None = call.runtime.store.get(MEDIA, media_id)
        if media is None or media.tenant != call.tenant:
            problems.append(FieldError(f"media_ids.{index}", f"media {media_id} not found"))
        elif (status := media.status(call.now)) != "ready":
            problems.append(FieldError(f"media_ids.{index}", f"media {media_id} is {status}, not ready"))
    if problems:
        raise Invalid(f"{problems[0].field}: {problems[0].message}", errors=problems)
    return scheduled or alias, media_ids


def _destinations(post: Post) -> list[dict[str, Any]]:
    """One destination per account. The emulator has no connected accounts, so it knows no platform or name."""
    status = "draft" if post.status == "draft" else "queued"
    return [
        {
            "id": f"{post.id}:{account}",
            "account_id": account,
            "social_account_id": account,
            "platform": None,
            "account_name": None,
            "status": status,
            "published_at": None,
            "platform_post_id": None,
            "error": None,
            "last_error": None,
            "attempts": 0,
        }
        for account in post.account_ids
    ]


def _post_view(call: Call, post: Post) -> dict[str, Any]:
    """A post as the official clients read it: the SDK's Post and the MCP server's, both whole."""
    media = []
    for media_id in post.media_ids:
        item: Media | None = call.runtime.store.get(MEDIA, media_id)
        if item is not None:
            media.append(
                {"id": item.id, "type": item.type, "mime_type": item.content_type, "url": _delivery_url(call, item)}
            )
    return {
        "id": post.id,
        "post_id": post.id,
        "content": post.content,
        "status": post.status,
        "post_status": post.status,
        "account_ids": post.account_ids,
        "media_ids": post.media_ids,
        "media": media,
        "scheduled_for": post.scheduled_for,
        "timezone": post.timezone,
        "platform_content": post.platform_content,
        "destinations": _destinations(post),
        "created_at": iso_millis(post.created_at),
        "updated_at": iso_millis(post.updated_at if post.updated_at is not None else post.created_at),
    }


def _own_post(call: Call) -> Post:
    post_id = call.request.path_params["post_id"]
    post: Post | None = call.runtime.store.get(POSTS, post_id)
    if post is None or post.tenant != call.tenant:  # never reveal another key's post
        raise NotFound(f"Post {post_id} not found.")
    return post


async def create_post(call: Call) -> Reply:
    body = call.body
    scheduled, media_ids = _check_post_fields(call, body)
    status = (
        "draft"
        if body.get("draft")
        else "queued"
        if body.get("use_queue")
        else "scheduled"
        if scheduled
        else "publishing"
    )
    post = Post(
        id=call.runtime.ids.uuid4(),
        tenant=call.tenant,
        content=body["content"],
        account_ids=body.get("account_ids", []),
        media_ids=media_ids or [],
        status=status,
        scheduled_for=scheduled,
        timezone=body.get("timezone"),
        created_at=call.now,
        platform_content=body.get("platform_content", {}),
    )
    await call.runtime.store.aput(POSTS, post.id, post)
    accounts = len(post.account_ids)
    message = {
        "draft": "Draft saved. It is not published until you schedule it.",
        "queued": "Post added to the queue.",
        "scheduled": f"Post scheduled for {scheduled} on {accounts} account(s).",
        "publishing": f"Post is publishing to {accounts} account(s).",
    }[status]
    return Reply(
        status=201,
        data={
            "id": post.id,
            "post_id": post.id,
            "post_group_id": post.id,
            "status": post.status,
            "content": post.content,
            "account_ids": post.account_ids,
            "media_ids": post.media_ids,
            "scheduled_for": post.scheduled_for,
            "timezone": post.timezone,
            "created_at": iso_millis(post.created_at),
            "destinations": accounts,
            "accounts_count": accounts,
            "message": message,
        },
    )


async def list_posts(call: Call) -> Reply:
    status, platform = call.request.query_params.get("status"), call.request.query_params.get("platform")
    page, pagination = _page(
        call,
        [
            p
            for p in call.runtime.store.values(POSTS)
            if p.tenant == call.tenant
            and (status is None or p.status == status)
            and (platform is None or platform in p.platform_content)
        ],
    )
    return Reply(
        {
            "posts": [_post_view(call, p) for p in page],
            "total": pagination["total"],
            "limit": pagination["limit"],
            "offset": pagination["offset"],
            "pagination": pagination,
        }
    )


async def get_post(call: Call) -> Reply:
    return Reply(_post_view(call, _own_post(call)))


def _editable(post: Post, action: str, allowed: tuple[str, ...]) -> None:
    if post.status not in allowed:
        raise Conflict(
            f"Post {post.id} is {post.status}: only {' or '.join(allowed)} posts can be {action}.",
            details={"status": post.status},
        )


async def update_post(call: Call) -> Reply:
    post = _own_post(call)
    _editable(post, "edited", ("draft", "scheduled", "queued"))
    body = call.body
    scheduled, media_ids = _check_post_fields(call, body)
    if "content" in body:
        post.content = body["content"]
    if scheduled is not None:
        post.scheduled_for = scheduled
    if "timezone" in body:
        post.timezone = body["timezone"]
    if "account_ids" in body:
        post.account_ids = body["account_ids"]
    if media_ids is not None:
        post.media_ids = media_ids
    if "platform_content" in body:  # "settings merge into the post" (MCP update_post)
        post.platform_content = {**post.platform_content, **body["platform_content"]}
    post.updated_at = call.now
    await call.runtime.store.aput(POSTS, post.id, post)
    return Reply(_post_view(call, post))


async def delete_post(call: Call) -> Reply:
    post = _own_post(call)
    _editable(post, "deleted", ("draft", "scheduled", "queued"))
    await call.runtime.store.adelete(POSTS, post.id)
    return Reply({"deleted": True, "id": post.id})


async def schedule_post(call: Call) -> Reply:
    post = _own_post(call)
    _editable(post, "scheduled with this call (use PATCH /v1/posts/{post_id} to re-time a scheduled post)", ("draft",))
    body = call.body
    publish_now, scheduled = bool(body.get("publish_now")), body.get("scheduled_for")
    if publish_now == (scheduled is not None):
        raise Invalid(
            "Send scheduled_for or publish_now: true (one of them).",
            errors=[FieldError("scheduled_for", "send it, or publish_now: true, not both")],
        )
    accounts = body.get("account_ids", post.account_ids)
    if not accounts:
        raise Invalid(
            "account_ids: the draft has no accounts; send account_ids to publish it.",
            errors=[FieldError("account_ids", "is required: the draft has none")],
        )
    post.account_ids, post.status = accounts, "publishing" if publish_now else "scheduled"
    post.scheduled_for = None if publish_now else scheduled
    if "timezone" in body:
        post.timezone = body["timezone"]
    post.updated_at = call.now
    await call.runtime.store.aput(POSTS, post.id, post)
    message = (
        f"Post is publishing to {len(accounts)} account(s)."
        if publish_now
        else f"Post scheduled for {scheduled} on {len(accounts)} account(s)."
    )
    return Reply(
        {
            "post_id": post.id,
            "status": post.status,
            "scheduled_for": post.scheduled_for,
            "publish_now": publish_now,
            "message": message,
            "destinations": [
                {"account_id": d["account_id"], "platform": d["platform"], "status": d["status"]}
                for d in _destinations(post)
            ],
        }
    )


# --- handlers: storage behind upload_url -------------------------------------------------------------------------


def _granted(call: Call, kind: str, signed_method: str | None = None) -> tuple[Media, int]:
    """Verify the presigned URL and return the media it is for and the size limit it grants.

    ``signed_method``: the method the URL was signed for, when the request legitimately uses another (the SDK's
    PUT to an image URL signed for POST); the Content-Type must then be the media's own.
    """
    media_id = call.request.path_params["media_id"]
    try:
        grant = call.runtime.presigner.verify(
            signed_method or call.request.method,
            _storage_path(call, kind, media_id),
            call.request.query_params,
            call.now,
            audience=NAME,
        )
    except PresignFailure as failure:
        raise s3.presign_error(failure, call.now) from None
    media: Media | None = call.runtime.store.get(MEDIA, media_id)
    if media is None:
        raise StorageError("The specified upload does not exist.", code="NoSuchUpload", http_status=404)
    if media.completed_at is not None:
        raise StorageError(
            "This upload URL was already used: the media has been completed.", code="AccessDenied", http_status=403
        )
    declared = s3.declared_length(call.request.headers)
    if declared is not None and declared > grant.max_size + 64 * 1024 * (kind == "images"):
        raise PayloadTooLarge(
            f"Your proposed upload exceeds the maximum allowed size of {grant.max_size} bytes.",
            details={"ProposedSize": declared, "MaxSizeAllowed": grant.max_size},
        )
    sent_type = (call.request.headers.get("content-type") or "").split(";")[0].strip().lower()
    expected = media.content_type if signed_method else grant.content_type
    if sent_type != expected:
        raise StorageError(
            f"The request signature we calculated does not match the signature you provided: the URL was signed "
            f"for Content-Type {expected}, the request sent {sent_type or 'none'}.",
            code="SignatureDoesNotMatch",
            http_status=403,
        )
    return media, grant.max_size


def _replace_blob(call: Call, media: Media, blob: Blob) -> None:
    """Attach freshly stored bytes to their media — unless the media was deleted (or replaced) while they streamed."""
    current: Media | None = call.runtime.store.get(MEDIA, media.id)
    if current is None or current.completed_at is not None:
        call.runtime.blobs.delete(blob.name)
        if current is None:
            raise StorageError(
                "The specified upload does not exist: the media was deleted while the bytes were arriving.",
                code="NoSuchUpload",
                http_status=404,
            )
        raise StorageError(
            "This upload URL was already used: the media was completed while the bytes were arriving.",
            code="AccessDenied",
            http_status=403,
        )
    previous, current.blob = current.blob, blob
    call.runtime.store.put(MEDIA, current.id, current)
    if previous is not None and previous.name != blob.name:  # after the put: no stored record names deleted bytes
        call.runtime.blobs.delete(previous.name)


def _require_length(call: Call) -> None:
    headers = call.request.headers
    if "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", ""):
        raise StorageError(
            "You must provide the Content-Length HTTP header.", code="MissingContentLength", http_status=411
        )


async def store_object(call: Call) -> Response:
    """R2 behind a presigned PUT: chunked bodies are taken (R2 refuses only aws-chunked signing, which a presigned
    URL does not use), a body of no length at all is 411, Content-MD5 and x-amz-checksum-* are verified."""
    media, max_size = _granted(call, "objects")
    s3.refuse_unframed_put(call.request.headers, chunked=True)
    integrity = s3.Integrity.declared(call.request.headers)
    name = f"{NAME}/media/{media.id}/{call.runtime.ids.hex(12)}"
    blob = await call.runtime.blobs.put_stream(
        name, call.request.stream(), media.content_type, max_size, s3.declared_length(call.request.headers)
    )
    try:
        echoed = await integrity.verify(blob.path, blob.md5)
    except StorageError:
        call.runtime.blobs.delete(blob.name)  # what an earlier PUT stored stays
        raise
    _replace_blob(call, media, blob)
    return Response(status_code=200, headers={"ETag": blob.etag, **echoed})


async def store_image(call: Call) -> Response:
    media, max_size = _granted(call, "images")

    def open_file(field_name: str, filename: str, content_type: str) -> BlobWriter:
        if field_name != "file":
            raise Invalid(
                f"Unexpected file field {field_name!r}: send the image in the field 'file'.",
                errors=[FieldError(field_name, "only the field 'file' may carry a file")],
            )
        # hashed at its first read (Cloudflare Images' answer names no checksum): the upload pays a CRC-32, not the
        # MD5 that was a third of its CPU (bench/README.md "Session 10")
        return call.runtime.blobs.writer(
            f"{NAME}/media/{media.id}/{call.runtime.ids.hex(12)}", media.content_type, max_size, hash_later=True
        )

    def discard(part: FilePart) -> None:
        call.runtime.blobs.delete(part.blob.name)

    form = await parse_form(call.request.headers.get("content-type"), call.request.stream(), open_file, discard=discard)
    files = form.files.get("file", [])
    if len(files) != 1:
        for part in files:
            discard(part)
        raise Invalid(
            "Send exactly one image in the multipart field 'file'.", errors=[FieldError("file", "is required once")]
        )
    return _image_stored(call, media, files[0].blob, files[0].filename or media.filename)


def _image_stored(call: Call, media: Media, blob: Blob, filename: str) -> Response:
    """Keep uploaded bytes that are an image (judged by content) and answer as Cloudflare Images does."""
    sniffed = sniff_file(blob.path)
    if not sniffed.is_image:
        call.runtime.blobs.delete(blob.name)
        raise UnsupportedMediaType(
            f"The uploaded file is {sniffed.mime or 'not a recognised image'}; "
            "accepted images: JPEG, PNG, GIF, WebP, HEIC, HEIF."
        )
    _replace_blob(call, media, blob)
    delivery = call.base_url + _storage_path(call, "images", media.id)
    return JSONResponse(
        {
            "result": {
                "id": media.id,
                "filename": filename,
                "uploaded": iso_millis(call.now),
                "requireSignedURLs": False,
                "variants": [delivery],
            },
            "success": True,
            "errors": [],
            "messages": [],
        }
    )


async def store_image_raw(call: Call) -> Response:
    """The official SDK's step 2 for every type: PUT the raw bytes with Content-Type, also to an image URL."""
    media, max_size = _granted(call, "images", signed_method="POST")
    _require_length(call)
    call.undocumented(
        "PUT of the raw image to an image upload_url (documented: POST multipart, field file)",
        f"{SDK} media.upload()",
        MethodNotAllowed(
            "This image upload URL takes POST multipart/form-data with the file in the "
            "field 'file' (PUT is undocumented; --strict-docs is on).",
            headers={"Allow": "GET, POST"},
        ),
    )
    name = f"{NAME}/media/{media.id}/{call.runtime.ids.hex(12)}"
    blob = await call.runtime.blobs.put_stream(
        name, call.request.stream(), media.content_type, max_size, s3.declared_length(call.request.headers)
    )
    return _image_stored(call, media, blob, media.filename)


async def get_stored(call: Call) -> Response:
    media: Media | None = await call.runtime.store.aget(MEDIA, call.request.path_params["media_id"])
    blob = await call.runtime.blobs.served(media.blob) if media is not None else None
    if media is None or blob is None:
        raise NotFound("The specified key does not exist.")
    return stored_object(
        call.request,
        blob.path,
        media_type=media.content_type,
        headers={"ETag": blob.etag, "Cache-Control": "public, max-age=31536000"},
    )


WRITE = ("write",)  # https://posteverywhere.ai/developers: Read, Write and AI scopes

# --- abandoned uploads (core.reclaim) ----------------------------------------------------------------------------
# Inferred: media never completed (step 3) is forgotten with its bytes; its id then answers 404 not_found, and its
# upload_url NoSuchUpload (it had expired long before).


def _media_started(media: Media) -> float | None:
    return media.created_at if media.completed_at is None else None


def _expire_media(runtime: Runtime, media_id: str, media: Media) -> None:
    runtime.store.delete(MEDIA, media_id)
    if media.blob is not None:  # after the delete: no stored record names deleted bytes
        runtime.blobs.delete(media.blob.name)


# --- chaos testing ----------------------------------------------------------------------------------------------
# upload → store (R2, S3-compatible: SlowDown is real there; Cloudflare Images for images has no SlowDown) →
# complete, polled while a video processes. Images go to Cloudflare Images, videos and documents to R2.

CLOUDFLARE_IMAGES = ("server_error", "drop", "drop_upload", "stall", "slow")


def _finished(tables: Tables, key_id: str, now: float) -> list[Finished]:
    return [
        Finished(m["id"], m["blob"]["md5"], m["blob"]["size"])
        for m in tables.get("media", [])
        if m["tenant"] == key_id
        and m["blob"]
        and m["completed_at"] is not None
        and not m["failed"]
        and m["ready_at"] is not None
        and m["ready_at"] <= now
    ]


CHAOS = ChaosProfile(
    steps=(
        Step("uploadMedia", API + ("expire",), expires=EXPIRES_IN),
        Step("storeObject", S3_STORAGE),
        Step("storeImage", CLOUDFLARE_IMAGES),
        Step("storeImageRaw", CLOUDFLARE_IMAGES),
        Step("completeMediaUpload", API + ("pending",)),
        Step("getMedia", API + ("pending",)),
    ),
    samples=(
        Sample("image/png", "photo.png", padded(asset("sample.png")), (len(asset("sample.png")), 300 * 1024)),
        Sample("video/mp4", "clip.mp4", padded(MP4_HEAD), (64 * 1024, 1024 * 1024 + 1), processing=True),
        Sample("application/pdf", "deck.pdf", padded(PDF_HEAD), (len(PDF_HEAD),)),
    ),
    finished=_finished,
    order=(
        Order(
            frozenset(STORAGE_S3 | STORAGE_IMAGES) - {"getStoredObject", "getStoredImage"},
            frozenset({"completeMediaUpload"}),
            "step 3 (complete) only after step 2 stored the bytes",
        ),
        Order(
            frozenset({"completeMediaUpload"}),
            frozenset({"createPost"}),
            "a post names media only once its upload was completed",
        ),
    ),
)

# --- the provider ------------------------------------------------------------------------------------------------

PROVIDER = Provider(
    name=NAME,
    title="PostEverywhere",
    real_base_url="https://app.posteverywhere.ai/api/v1",
    client_path="/v1",
    keys=KEYS,
    handlers={
        "uploadMedia": Handler(upload_media, scopes=WRITE, normalize=sdk_upload_body),
        "listMedia": Handler(list_media, body="none"),
        "getMedia": Handler(get_media, body="none"),
        "deleteMedia": Handler(delete_media, body="none", scopes=WRITE),
        "completeMediaUpload": Handler(complete_media, body="none", scopes=WRITE),
        "uploadMediaFromUrl": Handler(upload_from_url, scopes=WRITE),
        "createPost": Handler(create_post, scopes=WRITE),
        "listPosts": Handler(list_posts, body="none"),
        "getPost": Handler(get_post, body="none"),
        "updatePost": Handler(update_post, scopes=WRITE),
        "deletePost": Handler(delete_post, body="none", scopes=WRITE),
        "schedulePost": Handler(schedule_post, scopes=WRITE),
        "storeImage": Handler(store_image, body="stream", auth=False),
        "storeImageRaw": Handler(store_image_raw, body="stream", auth=False),
        "getStoredImage": Handler(get_stored, body="none", auth=False),
        "storeObject": Handler(store_object, body="stream", auth=False),
        "getStoredObject": Handler(get_stored, body="none", auth=False),
    },
    ok=ok,
    error=error,
    limits=limits,
    request_id=request_id,
    abandonable=(Abandonable(MEDIA, _media_started, _expire_media),),
    chaos=CHAOS,
)
