"""Segmentflow: presigned asset upload (upload-url → PUT), asset registration, metadata, list, get and delete.

Published: ``specs/segmentflow/published/`` (POST /api/v1/assets). Everything else is inferred and says so in
``specs/segmentflow/inferred.yaml``. Sections: constants · keys and ids · envelope · limits · records · handlers
(API) · handlers (storage behind uploadUrl) · the provider.
"""

from __future__ import annotations

import itertools
import math
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from emulator.core import s3
from emulator.core.auth import KeyPolicy, Magic
from emulator.core.chaos import (
    API,
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
    NotFound,
    PayloadTooLarge,
    RateLimited,
    StorageError,
    Unprocessable,
)
from emulator.core.media import IMAGE_TYPES, same_family, sniff_file
from emulator.core.presign import SIGNATURE, PresignFailure
from emulator.core.provider import Call, Handler, Provider, Reply
from emulator.core.ranges import stored_object
from emulator.core.ratelimit import Limit
from emulator.core.reclaim import Abandonable
from emulator.core.responses import JSONResponse
from emulator.core.storage import Blob, TooLarge
from emulator.runtime import Runtime

# --- constants ---------------------------------------------------------------------------------------------------

NAME = "segmentflow"
EXPIRES_IN = 900  # undocumented; @aws-sdk/s3-request-presigner's default expiresIn
DEFAULT_ASSET_TYPE = "content-image"  # published default of assetType
KEY_PREFIX = "assets/"
STORAGE_OPS = {"putAssetObject", "getAssetObject"}
WRITE_SCOPE, READ_SCOPE = "assets:write", "assets:read"
UPLOADS = f"{NAME}:uploads"  # by object id (the part of the key after ``assets/``)
ASSETS = f"{NAME}:assets"  # by asset id
DELETED = f"{NAME}:deleted"  # asset id → tenant, so an owner learns its asset was deleted (nobody else does)
UPLOAD_IDS = f"{NAME}:upload-ids"  # the uuid that starts an object id → UploadRow naming that object id
# Organisation ids are derived, not random: one key is one organisation, the same on every run.
ORGANIZATION_NAMESPACE = uuid.UUID("6f1c2a4e-5b7d-4e8f-9a0b-1c2d3e4f5a6b")
_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_XML_UNSAFE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_STORAGE_PATH = re.compile(rf"^(/{NAME})?/storage/")  # prefixed, or at the root in per-provider mode
# creation order for the list (timestamps tie under a frozen clock); counted from the wall clock in nanoseconds so
# that assets registered after a restart (records kept in --data-dir) still sort after the earlier ones
_order = itertools.count(time.time_ns())


# --- keys and ids ------------------------------------------------------------------------------------------------

# Magic keys, like the other providers'. The 403 key holds assets:read only (the scope of
# https://segmentflow.ai/docs/authentication that writes need is assets:write), so every write answers 403
# insufficient_scope; keys made through the control plane can carry any scopes.
MAGIC_KEYS = {
    "sk_live_00000000000000000000000000000401": Magic("always revoked: every request gets 401", revoked=True),
    "sk_live_00000000000000000000000000000429": Magic("always rate-limited: every request gets 429", rate_limited=True),
    "sk_live_00000000000000000000000000002000": Magic("always slow: every request waits 2 s", delay=2.0),
    "sk_live_00000000000000000000000000000403": Magic(
        "assets:read only: writes get 403 insufficient_scope", scopes=frozenset({READ_SCOPE})
    ),
}
KEYS = KeyPolicy(
    pattern=re.compile(r"sk_live_[A-Za-z0-9_]{16,128}"),
    bearer=False,
    header="x-api-key",
    example="sk_live_" + "0123456789abcdef" * 2,
    describe="sk_live_ followed by 16 to 128 letters, digits or underscores",
    magic=MAGIC_KEYS,
)
WRITE, READ = (WRITE_SCOPE,), (READ_SCOPE,)  # what each handler needs (core checks it before validation)


def organization_id(tenant: str) -> str:
    return str(uuid.uuid5(ORGANIZATION_NAMESPACE, f"{NAME}:{tenant}"))


def request_id(runtime: Runtime, now: float) -> str:
    return runtime.ids.hex(16).upper()  # the shape of S3's x-amz-request-id, shown in storage errors


# --- envelope ----------------------------------------------------------------------------------------------------
# https://segmentflow.ai/docs/errors: {error: "<snake_case_code>", message, details?}

CODES = {
    "validation": "validation_failed",
    "invalid_json": "validation_failed",
    "bad_request": "validation_failed",
    "unprocessable": "validation_failed",
    "unauthorized": "unauthorized",
    "forbidden": "insufficient_scope",
    "not_found": "not_found",
    "method_not_allowed": "method_not_allowed",
    "conflict": "conflict",
    "payload_too_large": "payload_too_large",
    "unsupported_media_type": "unsupported_media_type",
    "rate_limited": "rate_limited",
}


def _fastify_reset(call: Call | None, exc: EmulatorError | None = None) -> dict[str, str]:
    """X-RateLimit-Reset as @fastify/rate-limit sends it: seconds until the window frees up, rounded up
    (``timeLeftInSeconds = Math.ceil(ttl / 1000)`` in its index.js), not a Unix time; on a 429 the same figure
    as Retry-After, as there."""
    if isinstance(exc, RateLimited):
        return {"X-RateLimit-Reset": str(exc.retry_after)}
    if call is None or call.quota is None or not call.quota.limit:
        return {}
    return {"X-RateLimit-Reset": str(max(0, math.ceil(call.quota.frees_at - call.now)))}


def ok(call: Call, reply: Reply) -> Response:
    return JSONResponse(reply.data, status_code=reply.status, headers={**reply.headers, **_fastify_reset(call)})


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def error(call: Call | None, request: Request, exc: EmulatorError) -> Response:
    """The one place Segmentflow's error shapes are written: the API envelope, or S3 XML for the storage host."""
    runtime: Runtime = request.app.state.runtime
    now = call.now if call else runtime.clock.now()
    rid = call.request_id if call else request_id(runtime, now)
    storage = call.op_id in STORAGE_OPS if call else bool(_STORAGE_PATH.match(request.url.path))
    if storage:
        if exc.kind == "validation":  # only the signed query parameters are validated on storage paths
            exc = StorageError(exc.message, code="AuthorizationQueryParametersError", http_status=400)
        return s3.render(exc, rid)
    body: dict[str, Any] = {"error": exc.code or CODES.get(exc.kind, "validation_failed"), "message": exc.message}
    details = {_camel(k): v for k, v in exc.details.items()}
    if exc.kind == "unauthorized":
        body["message"] = f"Missing or invalid x-api-key. {exc.message}"
    if exc.kind == "forbidden" and "required" in details:  # the errors page: insufficient_scope lists `required`
        body["required"] = details.pop("required")
    if isinstance(exc, RateLimited):
        details["retryAfter"] = exc.retry_after
    if exc.errors:
        details["field"] = exc.errors[0].field
        details["errors"] = [{"field": e.field, "message": e.message} for e in exc.errors]
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=exc.status, headers={**exc.headers, **_fastify_reset(call, exc)})


# --- limits ------------------------------------------------------------------------------------------------------
# Undocumented (the errors page says only "429 Rate limited"): @fastify/rate-limit's defaults, 1000 per minute per
# key, overridable with --rate-limit segmentflow.minute=N.

GENERAL = (Limit("minute", 1000, 60),)


def limits(op_id: str) -> tuple[Limit, ...]:
    return GENERAL


# --- records -----------------------------------------------------------------------------------------------------


@dataclass
class Upload:
    """One presigned upload: what upload-url was told, and the object PUT to its URL (if any)."""

    object_id: str
    tenant: str
    filename: str
    content_type: str
    website_id: str | None  # the default websiteId of the asset registered from it
    created_at: float
    expires_at: int
    asset_type: str = DEFAULT_ASSET_TYPE  # what upload-url was told: the assetType of the row finalize makes
    blob: Blob | None = None
    asset_id: str | None = None  # set once registered; the object then belongs to that asset
    deleted: bool = False  # its asset (and the object with it) was deleted
    expired: bool = False  # its object was never registered and was removed (core.reclaim)

    @property
    def key(self) -> str:
        return KEY_PREFIX + self.object_id

    @property
    def row_id(self) -> str:
        """The asset row's id, the uuid ``key`` starts with: what finalize names in its path."""
        return self.object_id[:36]


@dataclass
class Asset:
    id: str
    tenant: str
    object_id: str
    asset_type: str
    filename: str
    content_type: str
    size: int
    created_at: float
    updated_at: float
    order: int
    width: int | None = None
    height: int | None = None
    website_id: str | None = None
    image_type: str | None = None
    description: str | None = None
    alt_text: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class UploadRow:
    """finalize's ``{id}`` (the asset row an upload URL was minted for) → the upload behind it."""

    object_id: str


def _storage_path(call: Call, object_id: str) -> str:
    return f"{call.provider.specs.server_path}/storage/assets/{object_id}"


def _object_id(call: Call, filename: str) -> str:
    # S3 keys may hold any character; ours stay URL-safe so uploadUrl needs no escaping and the key is one segment.
    safe = _UNSAFE_KEY_CHARS.sub("_", filename)[:200]
    return f"{call.runtime.ids.uuid4()}-{safe}"


def website(website_id: str) -> dict[str, str]:
    """Websites have no published endpoint: any well-formed websiteId is one of the caller's sites, named by it."""
    return {"id": website_id, "name": f"Website {website_id[:8]}"}


def asset_view(call: Call, asset: Asset) -> dict[str, Any]:
    """The published asset shape: every documented key, null when it has no value (inferred.yaml says why)."""
    view: dict[str, Any] = {
        "id": asset.id,
        "organizationId": organization_id(asset.tenant),
        "assetType": asset.asset_type,
        "filename": asset.filename,
        "s3Key": KEY_PREFIX + asset.object_id,
        "contentType": asset.content_type,
        "size": asset.size,
        "url": call.base_url + _storage_path(call, asset.object_id),
        "createdAt": iso_millis(asset.created_at),
        "updatedAt": iso_millis(asset.updated_at),
    }
    view["description"] = asset.description
    view["altText"] = asset.alt_text
    view["tags"] = list(asset.tags)
    view["width"], view["height"] = asset.width, asset.height
    view["websiteId"] = asset.website_id
    view["website"] = website(asset.website_id) if asset.website_id is not None else None
    return view


def _whole_size(value: float) -> int:
    """``size`` is published as a number; a byte count must also be finite, whole and not negative."""
    whole = isinstance(value, int) or (math.isfinite(value) and value == int(value))
    if not whole or value < 0:
        shown = value if isinstance(value, int) or math.isfinite(value) else str(value)
        raise Invalid(
            f"size: must be a whole number of bytes, 0 or more (got {shown}).",
            errors=[FieldError("size", "must be a whole number of bytes, 0 or more")],
        )
    return int(value)


def _base_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def _own_asset(call: Call) -> Asset:
    asset_id = call.request.path_params["id"].lower()
    asset: Asset | None = call.runtime.store.get(ASSETS, asset_id)
    if asset is None or asset.tenant != call.tenant:  # another organisation's asset reads as missing
        if call.runtime.store.get(DELETED, asset_id) == call.tenant:
            raise NotFound(f"Asset {asset_id} not found: it was deleted.")
        raise NotFound(f"Asset {asset_id} not found.")
    return asset


# --- handlers: API -----------------------------------------------------------------------------------------------


async def create_upload_url(call: Call) -> Reply:
    body = call.body
    size = _whole_size(body["size"])
    upload = Upload(
        object_id=_object_id(call, body["filename"]),
        tenant=call.tenant,
        filename=body["filename"],
        content_type=body["contentType"],
        website_id=body["websiteId"].lower() if "websiteId" in body else None,
        created_at=call.now,
        expires_at=int(call.now) + EXPIRES_IN,
        asset_type=body.get("assetType", DEFAULT_ASSET_TYPE),
    )
    await call.runtime.store.aput(UPLOADS, upload.object_id, upload)
    await call.runtime.store.aput(UPLOAD_IDS, upload.row_id, UploadRow(upload.object_id))
    path = _storage_path(call, upload.object_id)
    query = call.runtime.presigner.query(
        "PUT", path, audience=NAME, expires=upload.expires_at, max_size=size, content_type=upload.content_type
    )
    return Reply(
        {"success": True, "uploadUrl": f"{call.base_url}{path}?{query}", "key": upload.key, "expiresIn": EXPIRES_IN}
    )


def _unprocessable(field_name: str, message: str) -> Unprocessable:
    return Unprocessable(f"{field_name}: {message}", errors=[FieldError(field_name, message)])


def _registrable_upload(call: Call, key: str) -> Upload:
    """The upload behind ``s3Key``, checked to hold an object this organisation may register."""
    upload: Upload | None = None
    if key.startswith(KEY_PREFIX):
        upload = call.runtime.store.get(UPLOADS, key[len(KEY_PREFIX) :])
    if upload is None or upload.tenant != call.tenant:  # another organisation's key reads as never issued
        raise _unprocessable(
            "s3Key",
            "no upload URL was issued for this key to your organization; request one "
            "with POST /api/v1/assets/upload-url",
        )
    if upload.asset_id is not None and not upload.deleted:
        raise Conflict(
            f"s3Key: this key is already registered as asset {upload.asset_id}.",
            details={"assetId": upload.asset_id},
            errors=[FieldError("s3Key", f"is already registered as asset {upload.asset_id}")],
        )
    if upload.deleted:
        raise _unprocessable("s3Key", f"the object under this key was deleted together with asset {upload.asset_id}")
    if upload.expired:
        raise _unprocessable(
            "s3Key",
            "the object under this key was never registered and has expired (abandoned "
            "uploads are removed); request a new upload URL and upload it again",
        )
    if not call.runtime.blobs.holds(upload.blob):
        if call.now > upload.expires_at:
            raise _unprocessable(
                "s3Key",
                f"nothing was uploaded under this key and its uploadUrl expired at "
                f"{iso_millis(upload.expires_at)}; request a new upload URL",
            )
        raise _unprocessable("s3Key", "nothing has been uploaded under this key yet; PUT the bytes to uploadUrl first")
    return upload


def _dimensions(upload: Upload) -> tuple[int | None, int | None]:
    """Check the stored bytes are what contentType says; width and height come from the image itself."""
    assert upload.blob is not None
    if upload.content_type not in IMAGE_TYPES and upload.content_type != "application/pdf":
        return None, None  # CSV and Excel files have no reliable signature: stored as S3 stores them
    sniffed = sniff_file(upload.blob.path)
    if not same_family(upload.content_type, sniffed.mime):
        raise _unprocessable(
            "contentType",
            f"the object under s3Key is not {upload.content_type} "
            f"(its bytes are {sniffed.mime or 'of no recognised format'})",
        )
    if upload.content_type in IMAGE_TYPES and (sniffed.width is None or sniffed.height is None):
        raise _unprocessable("contentType", f"the {upload.content_type} under s3Key has no readable width and height")
    return sniffed.width, sniffed.height


async def create_asset(call: Call) -> Reply:
    # No await from here to the store: the check for a duplicate registration and the write are one step.
    body = call.body
    size = _whole_size(body["size"])
    upload = _registrable_upload(call, body["s3Key"])
    assert upload.blob is not None
    if _base_type(body["contentType"]) != upload.content_type:
        raise _unprocessable(
            "contentType", f"the object under s3Key was uploaded as {upload.content_type}, not {body['contentType']}"
        )
    if size != upload.blob.size:
        raise _unprocessable("size", f"the object under s3Key is {upload.blob.size} bytes, not {size}")
    width, height = _dimensions(upload)
    website_id = body["websiteId"].lower() if "websiteId" in body else upload.website_id
    asset = Asset(
        id=call.runtime.ids.uuid4(),
        tenant=call.tenant,
        object_id=upload.object_id,
        asset_type=body.get("assetType", DEFAULT_ASSET_TYPE),
        filename=body["filename"],
        content_type=upload.content_type,
        size=upload.blob.size,
        created_at=call.now,
        updated_at=call.now,
        order=next(_order),
        width=width,
        height=height,
        website_id=website_id,
        image_type=body.get("imageType"),
    )
    upload.asset_id = asset.id
    await call.runtime.store.aput(ASSETS, asset.id, asset)
    await call.runtime.store.aput(UPLOADS, upload.object_id, upload)
    return Reply({"success": True, "asset": asset_view(call, asset)})


def _query_int(call: Call, name: str, default: int) -> int:
    raw = call.request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:  # the spec already refused non-integers; a form such as "5.0" lands here
        raise Invalid(
            f"{name}: must be an integer (query parameter).",
            errors=[FieldError(name, "must be an integer (query parameter)")],
        ) from None


async def list_assets(call: Call) -> Reply:
    limit, offset = _query_int(call, "limit", 50), _query_int(call, "offset", 0)
    own = sorted(
        (a for a in call.runtime.store.values(ASSETS) if a.tenant == call.tenant), key=lambda a: a.order, reverse=True
    )
    return Reply({"success": True, "assets": [asset_view(call, a) for a in own[offset : offset + limit]]})


async def get_asset(call: Call) -> Reply:
    return Reply({"success": True, "asset": asset_view(call, _own_asset(call))})


async def update_asset(call: Call) -> Reply:
    asset = _own_asset(call)
    body = call.body
    if "description" in body:
        asset.description = body["description"]
    if "altText" in body:
        asset.alt_text = body["altText"]
    if "tags" in body:
        asset.tags = list(body["tags"])
    if "imageType" in body:
        asset.image_type = body["imageType"]
    asset.updated_at = call.now
    await call.runtime.store.aput(ASSETS, asset.id, asset)
    return Reply({"success": True, "asset": asset_view(call, asset)})


def _finalized_view(call: Call, asset: Asset) -> dict[str, Any]:
    """The finalize page's asset: fewer keys than the /api/v1/assets shape, width and height null when not an image."""
    return {
        "id": asset.id,
        "organizationId": organization_id(asset.tenant),
        "filename": asset.filename,
        "contentType": asset.content_type,
        "size": asset.size,
        "url": call.base_url + _storage_path(call, asset.object_id),
        "width": asset.width,
        "height": asset.height,
        "createdAt": iso_millis(asset.created_at),
    }


async def finalize_public_asset(call: Call) -> Response:
    # No await from here to the store, as in create_asset: the check for an earlier finalize and the write are one.
    row_id = call.request.path_params["id"].lower()
    row: UploadRow | None = await call.runtime.store.aget(UPLOAD_IDS, row_id)
    upload: Upload | None = await call.runtime.store.aget(UPLOADS, row.object_id) if row is not None else None
    if upload is None or upload.tenant != call.tenant:  # another organisation's upload reads as never issued
        raise NotFound(
            f"Asset {row_id} not found: no upload URL was issued for it to your organization (its id is "
            "the uuid that the key of POST /api/v1/assets/upload-url starts with)."
        )
    if upload.deleted:
        raise NotFound(f"Asset {row_id} not found: it was deleted.")
    if upload.asset_id is not None:
        how = "finalized" if upload.asset_id == row_id else f"registered as asset {upload.asset_id}"
        raise Conflict(f"Asset {row_id} was already {how}.", details={"assetId": upload.asset_id})
    if not call.runtime.blobs.holds(upload.blob):
        if call.now > upload.expires_at:
            raise _unprocessable(
                "id",
                f"nothing was uploaded for this asset and its uploadUrl expired at "
                f"{iso_millis(upload.expires_at)}; request a new upload URL",
            )
        raise _unprocessable("id", "nothing has been uploaded for this asset yet; PUT the bytes to uploadUrl first")
    assert upload.blob is not None
    width, height = _dimensions(upload)
    body = call.body or {}
    asset = Asset(
        id=row_id,
        tenant=call.tenant,
        object_id=upload.object_id,
        asset_type=upload.asset_type,
        filename=upload.filename,
        content_type=upload.content_type,
        size=upload.blob.size,
        created_at=call.now,
        updated_at=call.now,
        order=next(_order),
        width=width,
        height=height,
        website_id=upload.website_id,
        image_type=body.get("imageType"),
        description=body.get("description"),
        alt_text=body.get("altText"),
    )
    upload.asset_id = asset.id
    await call.runtime.store.aput(ASSETS, asset.id, asset)
    await call.runtime.store.aput(UPLOADS, upload.object_id, upload)
    return JSONResponse({"asset": _finalized_view(call, asset)}, headers=_fastify_reset(call))


async def delete_asset(call: Call) -> Reply:
    asset = _own_asset(call)
    upload: Upload | None = await call.runtime.store.aget(UPLOADS, asset.object_id)
    if upload is not None:
        stored, upload.blob, upload.deleted = upload.blob, None, True
        await call.runtime.store.aput(UPLOADS, upload.object_id, upload)
        if stored is not None:  # after the put: no stored record names deleted bytes
            call.runtime.blobs.delete(stored.name)
    await call.runtime.store.adelete(ASSETS, asset.id)
    await call.runtime.store.aput(DELETED, asset.id, asset.tenant)
    return Reply({"success": True})


# --- handlers: storage behind uploadUrl --------------------------------------------------------------------------


def _declared_length(call: Call, max_size: int) -> int:
    """The body's declared length, refused when absent, not a whole number or over ``max_size``."""
    s3.refuse_unframed_put(call.request.headers, chunked=False)  # S3: chunked 501, no length at all 411
    declared = s3.declared_length(call.request.headers)
    if declared is None:
        raise StorageError("Content-Length must be a whole number of bytes.", code="InvalidArgument", http_status=400)
    if declared > max_size:
        raise PayloadTooLarge(
            "Your proposed upload exceeds the maximum allowed size",
            details={"ProposedSize": declared, "MaxSizeAllowed": max_size},
        )
    return declared


async def put_asset_object(call: Call) -> Response:
    object_id = call.request.path_params["objectId"]
    if not call.request.query_params.get(SIGNATURE, "").isascii():  # hmac.compare_digest raises on non-ASCII
        raise s3.presign_error(
            PresignFailure(
                "signature", "The request signature we calculated does not match the signature you provided."
            ),
            call.now,
        )
    try:
        grant = call.runtime.presigner.verify(
            "PUT", _storage_path(call, object_id), call.request.query_params, call.now, audience=NAME
        )
    except PresignFailure as failure:
        raise s3.presign_error(failure, call.now) from None
    sent_type = _base_type(call.request.headers.get("content-type") or "")
    if sent_type != grant.content_type:
        raise StorageError(
            "The request signature we calculated does not match the signature you provided. Check your key and "
            f"signing method. The URL was signed for Content-Type {grant.content_type}; the request sent "
            f"{sent_type or 'none'}.",
            code="SignatureDoesNotMatch",
            http_status=403,
        )
    upload: Upload | None = await call.runtime.store.aget(UPLOADS, object_id)
    if upload is None:
        raise StorageError("The specified upload does not exist.", code="NoSuchUpload", http_status=404)
    if upload.asset_id is not None:  # the bytes behind a registered asset never change under it
        raise StorageError(
            f"Access Denied: this key is registered as asset {upload.asset_id}; its object can no "
            "longer be overwritten.",
            code="AccessDenied",
            http_status=403,
        )
    length = _declared_length(call, grant.max_size)
    integrity = s3.Integrity.declared(call.request.headers)
    name = f"{NAME}/objects/{object_id}/{call.runtime.ids.hex(12)}"
    try:
        blob = await call.runtime.blobs.put_stream(
            name, call.request.stream(), upload.content_type, grant.max_size, length
        )
    except TooLarge:
        raise PayloadTooLarge(
            "Your proposed upload exceeds the maximum allowed size", details={"MaxSizeAllowed": grant.max_size}
        ) from None
    try:
        echoed = await integrity.verify(blob.path, blob.md5)
    except StorageError:
        call.runtime.blobs.delete(blob.name)  # the object already stored (if any) stays as it was
        raise
    previous, upload.blob = upload.blob, blob
    await call.runtime.store.aput(UPLOADS, object_id, upload)
    if previous is not None:  # S3: a second PUT to a key replaces the object (deleted after the put, so no stored
        call.runtime.blobs.delete(previous.name)  # record ever names bytes that are gone)
    return Response(status_code=200, headers={"ETag": blob.etag, **echoed})


def _xml_safe(text: str) -> str:
    """``text`` with the characters XML 1.0 cannot carry percent-encoded (a key may hold any character)."""
    return _XML_UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode("utf-8", "surrogatepass")), text)


async def get_asset_object(call: Call) -> Response:
    object_id = call.request.path_params["objectId"]
    upload: Upload | None = await call.runtime.store.aget(UPLOADS, object_id)
    if upload is None or upload.blob is None or not await call.runtime.blobs.intact(upload.blob):
        raise NotFound("The specified key does not exist.", details={"Key": _xml_safe(KEY_PREFIX + object_id)})
    return stored_object(
        call.request, upload.blob.path, media_type=upload.content_type, headers={"ETag": upload.blob.etag}
    )


# --- abandoned uploads (core.reclaim) ----------------------------------------------------------------------------
# Inferred: an object PUT to an upload URL and never registered as an asset is removed, as a lifecycle rule on the
# bucket would; its key then answers NoSuchKey, and registering it 422 (expired).


def _object_started(upload: Upload) -> float | None:
    return upload.created_at if upload.blob is not None and upload.asset_id is None else None


def _expire_object(runtime: Runtime, object_id: str, upload: Upload) -> None:
    stored, upload.blob, upload.expired = upload.blob, None, True
    runtime.store.put(UPLOADS, object_id, upload)
    if stored is not None:  # after the put: no stored record names deleted bytes
        runtime.blobs.delete(stored.name)


# --- chaos testing ----------------------------------------------------------------------------------------------
# upload-url → PUT (S3: SlowDown, dropped PUTs, wrong ETags are all real there) → register. Single PUT, 20 MiB max.


def _finished(tables: Tables, key_id: str, now: float) -> list[Finished]:
    uploads = {u["object_id"]: u for u in tables.get("uploads", [])}
    out = []
    for row in tables.get("assets", []):
        blob = (uploads.get(row["object_id"]) or {}).get("blob")
        if row["tenant"] == key_id and blob:
            out.append(Finished(row["id"], blob["md5"], blob["size"]))
    return out


CHAOS = ChaosProfile(
    steps=(
        Step("createAssetUploadUrl", API + ("expire",), expires=EXPIRES_IN),
        Step("putAssetObject", S3_STORAGE),
        Step("createAsset", API),
    ),
    samples=(
        Sample("image/png", "photo.png", padded(asset("sample.png")), (len(asset("sample.png")), 1024 * 1024 + 1)),
        Sample("image/jpeg", "photo.jpg", padded(asset("sample.jpg")), (len(asset("sample.jpg")),)),
        Sample("application/pdf", "guide.pdf", padded(PDF_HEAD), (len(PDF_HEAD), 256 * 1024)),
    ),
    finished=_finished,
    order=(
        Order(
            frozenset({"putAssetObject"}),
            frozenset({"createAsset"}),
            "an asset is registered only after its bytes were PUT",
        ),
    ),
)

# --- the provider ------------------------------------------------------------------------------------------------

PROVIDER = Provider(
    name=NAME,
    title="Segmentflow",
    real_base_url="https://api.segmentflow.ai",
    client_path="",
    default_port=3001,  # every API-reference page's example server is http://localhost:3001
    keys=KEYS,
    handlers={
        "createAssetUploadUrl": Handler(create_upload_url, scopes=WRITE),
        "createAsset": Handler(create_asset, scopes=WRITE),
        "listAssets": Handler(list_assets, body="none", scopes=READ),
        "getAsset": Handler(get_asset, body="none", scopes=READ),
        "updateAsset": Handler(update_asset, scopes=WRITE),
        "deleteAsset": Handler(delete_asset, body="none", scopes=WRITE),
        "finalizePublicAsset": Handler(finalize_public_asset, scopes=WRITE),
        "putAssetObject": Handler(put_asset_object, body="stream", auth=False),
        "getAssetObject": Handler(get_asset_object, body="none", auth=False),
    },
    ok=ok,
    error=error,
    limits=limits,
    request_id=request_id,
    abandonable=(Abandonable(UPLOADS, _object_started, _expire_object),),
    chaos=CHAOS,
)
