"""XenonFlare: image and video uploads with per-platform publishing config, resumable chunked uploads, status.

Published: ``specs/xenonflare/published/`` (POST /api/v1/media/images). Everything else (chunks, videos, status,
errors, limits) is inferred and says so in ``specs/xenonflare/inferred.yaml``. Sections: constants · keys and
ids · envelope · limits · records · platform config · handlers (chunks) · handlers (media) · the provider.
"""

from __future__ import annotations

import ast
import base64
import difflib
import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response

from emulator.core.auth import KeyPolicy, Magic, fingerprint
from emulator.core.chaos import API, MP4_HEAD, UPLOAD_BODY, ChaosProfile, Finished, Sample, Step, Tables, asset, padded
from emulator.core.clock import iso_millis
from emulator.core.errors import (
    EmulatorError,
    FieldError,
    Forbidden,
    Invalid,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from emulator.core.media import IMAGE_TYPES, sniff_bytes, sniff_file
from emulator.core.multipart import FilePart
from emulator.core.provider import Call, Handler, Provider, Reply
from emulator.core.ratelimit import Limit
from emulator.core.reclaim import Abandonable
from emulator.core.responses import JSONResponse
from emulator.core.specs import load
from emulator.core.storage import Blob
from emulator.runtime import Runtime

# --- constants ---------------------------------------------------------------------------------------------------

NAME = "xenonflare"
MiB = 1024 * 1024
# No limit is documented for a direct upload; the chunked flow exists for files "up to 5GB". 100 MiB per request
# body (a direct file or one chunk) is the emulator's choice, the request-body cap of common API proxies.
DIRECT_MAX = 100 * MiB
CHUNK_MAX = DIRECT_MAX
CHUNKED_MAX = 5 * 1024 * MiB  # "files up to 5GB" (chunked-upload page), read as 5 GiB
VIDEO_TYPES = frozenset({"video/mp4", "video/quicktime"})  # video-upload page: ".mp4 or .mov"
FAIL_PREFIX = "fail"  # magic: an account/channel id starting with it makes that platform's publishing fail
MEDIA = f"{NAME}:media"
CHUNKS = f"{NAME}:chunks"
CONNECTIONS = f"{NAME}:connections"  # by tenant: the key's connected accounts, profiles and plan
PLANS = ("free", "plus", "pro")  # the profiles page names Plus and Pro; the others are the emulator's
PROFILE_PLANS = ("plus", "pro")  # "Profiles are available on Plus and Pro plans"
DEFAULT_PLAN = "pro"  # so that every documented endpoint works out of the box

IMAGE_PLATFORMS = ("instagram", "linkedin", "tiktok", "pinterest")
VIDEO_PLATFORMS = ("youtube", "instagram", "tiktok", "linkedin", "pinterest")

# Every flat key of the pages' tables → (platform, nested key). YouTube's are the video page's.
FLAT_KEYS: dict[str, tuple[str, str]] = {
    "instagramCaption": ("instagram", "caption"),
    "instagramAutoPublish": ("instagram", "autoPublish"),
    "selectedInstagramAccounts": ("instagram", "accounts"),
    "tiktokCaption": ("tiktok", "caption"),
    "tiktokPrivacy": ("tiktok", "privacy"),
    "tiktokAutoPublish": ("tiktok", "autoPublish"),
    "selectedTiktokAccounts": ("tiktok", "accounts"),
    "tiktokDisableComment": ("tiktok", "disableComment"),
    "tiktokDisableDuet": ("tiktok", "disableDuet"),
    "tiktokDisableStitch": ("tiktok", "disableStitch"),
    "linkedinComment": ("linkedin", "comment"),
    "linkedinAutoPublish": ("linkedin", "autoPublish"),
    "selectedLinkedinAccounts": ("linkedin", "accounts"),
    "pinterestTitle": ("pinterest", "title"),
    "pinterestDescription": ("pinterest", "description"),
    "pinterestAutoPublish": ("pinterest", "autoPublish"),
    "selectedPinterestAccounts": ("pinterest", "accounts"),
    "youtubeTitle": ("youtube", "title"),
    "youtubeDescription": ("youtube", "description"),
    "youtubePrivacy": ("youtube", "privacy"),
    "youtubeAutoPublish": ("youtube", "autoPublish"),
    "selectedYoutubeChannels": ("youtube", "channels"),
}
ID_LISTS = ("accounts", "channels")  # nested keys holding account/channel ids


@dataclass(frozen=True)
class Kind:
    """What differs between the image and the video upload."""

    name: str  # "image" | "video"
    platforms: tuple[str, ...]
    default_title: str
    accepted: frozenset[str]
    accepted_text: str


IMAGE = Kind("image", IMAGE_PLATFORMS, "Untitled Image", IMAGE_TYPES, "an image (JPEG, PNG, GIF, WebP, HEIC or HEIF)")
VIDEO = Kind("video", VIDEO_PLATFORMS, "Untitled Video", VIDEO_TYPES, "an .mp4 or .mov video")

# --- keys and ids ------------------------------------------------------------------------------------------------

# Magic keys, in the spirit of payment providers' test cards (docs/control-plane.md, "Magic keys and values").
MAGIC_KEYS = {
    "xf_test_revoked_00000401": Magic("always revoked: every request gets 401", revoked=True),
    "xf_test_ratelimited_0429": Magic("always rate-limited: every request gets 429", rate_limited=True),
    "xf_test_slow_000002000": Magic("always slow: every request waits 2 s", delay=2.0),
    "xf_test_readonly_000403": Magic("read only: uploads get 403", scopes=frozenset({"read"})),
}
WRITE = ("write",)  # not a documented XenonFlare scope: only magic and created keys ever lack it
KEYS = KeyPolicy(
    magic=MAGIC_KEYS,
    pattern=re.compile(r"xf_[A-Za-z0-9_-]{16,128}"),
    bearer=True,
    header="x-api-key",
    example="xf_live_" + "0123456789abcdef" * 2,
    describe="X-API-Key: xf_<16-128 letters, digits, '_' or '-'> (or Authorization: Bearer xf_...)",
)


def request_id(runtime: Runtime, now: float) -> str:
    return runtime.ids.object_id(now)  # never sent: the docs show no request id


def _digits(call: Call, n: int) -> str:
    """``n`` random decimal digits, the first not zero: the shape of Instagram/TikTok/LinkedIn/Pinterest ids."""
    value = int(call.runtime.ids.hex(2 * n), 16) % (9 * 10 ** (n - 1))
    return str(value + 10 ** (n - 1))


def _youtube_id(call: Call) -> str:
    return base64.urlsafe_b64encode(call.runtime.ids.bytes(8)).decode().rstrip("=")  # 11 characters


# --- envelope ----------------------------------------------------------------------------------------------------

CODES = {
    "validation": "validation_failed",
    "invalid_json": "validation_failed",
    "bad_request": "validation_failed",
    "unauthorized": "api_key_invalid",
    "forbidden": "forbidden",
    "not_found": "not_found",
    "method_not_allowed": "method_not_allowed",
    "payload_too_large": "payload_too_large",
    "unsupported_media_type": "unsupported_media_type",
    "rate_limited": "rate_limited",
}
MESSAGE_FIRST = {"uploadImage", "uploadVideo"}  # the published upload body reads success, message, data
UNPREFIXED = "Unprefixed"  # the newer pages' paths without /api/v1: same operations (inferred.yaml's path aliases)


def base_operation(op_id: str) -> str:
    """The operation an operationId names, whichever path family the client called."""
    return op_id.removesuffix(UNPREFIXED)


@dataclass
class Answer:
    """A handler's result: the ``data`` of the envelope and, where the docs show one, its ``message``."""

    data: Any
    message: str | None = None


def ok(call: Call, reply: Reply) -> Response:
    answer: Answer = reply.data
    if base_operation(call.op_id) in MESSAGE_FIRST:
        body: dict[str, Any] = {"success": True, "message": answer.message, "data": answer.data}
    else:
        body = {"success": True, "data": answer.data}
        if answer.message is not None:
            body["message"] = answer.message
    return JSONResponse(body, status_code=reply.status, headers=reply.headers)


def error(call: Call | None, request: Request, exc: EmulatorError) -> Response:
    """The one place XenonFlare's error body is written: ``{success: false, message, error: {code, field?}}``."""
    message, errors = exc.message, exc.errors
    err: dict[str, Any] = {"code": exc.code or CODES.get(exc.kind, "validation_failed")}
    if call is not None and errors:
        precise = _precise(errors, call.op_id)
        if precise != errors:
            more = f" (and {len(precise) - 1} more)" if len(precise) > 1 else ""
            message, errors = f"{precise[0].field}: {precise[0].message}{more}", precise
    if exc.kind == "unauthorized":
        # a malformed key's message already names the expected form: say it once
        hint = "" if exc.details.get("reason") == "malformed" else f" Send {KEYS.describe}."
        message = f"Invalid or missing API key: {exc.message}{hint}"
    elif exc.kind == "rate_limited":
        message = "Too many requests, please try again later."  # express-rate-limit's default message
    elif exc.kind == "payload_too_large" and not errors:
        message = f"file: is too large. {exc.message}"
        err["field"] = "file"
    if errors:
        err["field"] = errors[0].field
        if exc.kind in ("validation", "invalid_json", "bad_request"):
            err["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    return JSONResponse(
        {"success": False, "message": message, "error": err}, status_code=exc.status, headers=exc.headers
    )


def invalid(field_name: str, message: str) -> Invalid:
    return Invalid(f"{field_name}: {message}", errors=[FieldError(field_name, message)])


# The spec refuses unknown fields and unknown config keys (additionalProperties: false); jsonschema reports those
# against the enclosing object ("body: Additional properties are not allowed ('x' was unexpected)"). Clients need
# the field itself named, and a hint for a typo.
_UNEXPECTED = re.compile(r"Additional properties are not allowed \((?P<names>.*) (?:was|were) unexpected\)")
_NEITHER_FILE = "requires one of: file, fileId"
CONFIG_SCHEMAS = {
    "instagram": "InstagramConfig",
    "tiktok": "TikTokConfig",
    "linkedin": "LinkedInConfig",
    "pinterest": "PinterestConfig",
    "youtube": "YouTubeConfig",
}


@functools.cache
def _form_fields(op_id: str) -> tuple[str, ...]:
    effective = load(NAME).effective
    for found, _, _, operation in load(NAME).operations():
        if found == op_id and "requestBody" in operation:
            schema = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
            if "$ref" in schema:
                schema = effective["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
            return tuple(sorted(schema["properties"]))
    return ()


@functools.cache
def _config_keys(platform: str) -> tuple[str, ...]:
    schema = load(NAME).effective["components"]["schemas"].get(CONFIG_SCHEMAS.get(platform, ""), {})
    return tuple(sorted(schema.get("properties", {})))


def _unknown(where: str, name: str, op_id: str) -> FieldError:
    if where == "body":
        field_name, known, what = name, _form_fields(op_id), "is not a field of this upload"
    else:
        field_name, known = f"{where}.{name}", _config_keys(where)
        what = f"is not a key of the {where} config (keys: {', '.join(known)})"
    close = difflib.get_close_matches(name, known, n=1)
    return FieldError(field_name, what + (f"; did you mean {close[0]}?" if close else ""))


def _precise(errors: list[FieldError], op_id: str) -> list[FieldError]:
    out: list[FieldError] = []
    for problem in errors:
        unexpected = _UNEXPECTED.fullmatch(problem.message)
        if unexpected:
            try:
                names = ast.literal_eval(f"[{unexpected['names']}]")  # jsonschema writes the names as reprs
            except (ValueError, SyntaxError):
                names = None
            if isinstance(names, list):
                out += [_unknown(problem.field, str(name), op_id) for name in names]
                continue
        if problem.field == "body" and problem.message == _NEITHER_FILE:
            out.append(FieldError("file", "either file or fileId must be provided"))
            continue
        out.append(problem)
    return out


# --- limits ------------------------------------------------------------------------------------------------------
# The media API documents no limits. The figures are those https://xenonflare.com/docs/developer-api gives for
# another XenonFlare API ("1000 reads/hr and 60 writes/hr per key"), a weak hint; chunks get their own budget
# (1000/h: two 5 GB uploads in the 10 MiB chunks of the docs' example), else one large upload would use up writes.

READS = (Limit("reads", 1000, 3600),)
WRITES = (Limit("writes", 60, 3600),)
CHUNK_WRITES = (Limit("chunks", 1000, 3600),)


def limits(op_id: str) -> tuple[Limit, ...]:
    op_id = base_operation(op_id)
    if op_id in ("uploadImage", "uploadVideo"):
        return WRITES
    return CHUNK_WRITES if op_id == "uploadChunk" else READS


# --- records -----------------------------------------------------------------------------------------------------


@dataclass
class Chunk:
    blob_name: str
    size: int
    md5: str


@dataclass
class ChunkedUpload:
    """One client-generated fileId of one key: its chunks, kept in order, until it is finalized."""

    file_id: str
    tenant: str
    total_chunks: int
    created_at: float
    chunks: list[Chunk] = field(default_factory=list)
    size: int = 0  # bytes received: what the status check reports as currentSize
    finalizing: bool = False  # a finalize is assembling the chunks right now
    media_id: str | None = None  # set once finalized; the chunk blobs are gone then

    def append(self, blob: Blob) -> None:
        self.chunks.append(Chunk(blob.name, blob.size, blob.md5))
        self.size += blob.size

    @property
    def complete(self) -> bool:
        return len(self.chunks) == self.total_chunks


@dataclass
class Target:
    """One platform of one media: its merged config and the ids it gets when published."""

    platform: str
    config: dict[str, Any]
    remote_id: str
    url: str

    @property
    def auto_publish(self) -> bool:
        return self.config.get("autoPublish") is True

    @property
    def fails(self) -> bool:
        ids = [i for key in ID_LISTS for i in self.config.get(key, [])]
        return any(i.lower().startswith(FAIL_PREFIX) for i in ids)


@dataclass
class Media:
    id: str
    tenant: str
    kind: str
    title: str
    description: str | None
    platforms: list[str]
    targets: dict[str, Target]
    scheduled_at: float | None
    is_draft: bool
    created_at: float
    processing_seconds: float
    blob_name: str
    content_type: str
    size: int
    width: int | None = None
    height: int | None = None
    file_id: str | None = None
    md5: str | None = None  # of the stored bytes (the state view shows what was stored)

    @property
    def publish_at(self) -> float:
        """When it is scheduled to publish: ``scheduledAt``, or for an immediate upload the upload time."""
        return self.scheduled_at if self.scheduled_at is not None else self.created_at

    # The states, on the virtual clock (docs/providers/xenonflare.md, "Status state machine"): a media is
    # `scheduled` up to and including its publish time (so an immediate upload is `scheduled` at the instant it is
    # answered, as the published example shows, and a read at that instant agrees), and publishes once that time has
    # passed:
    # `processing` for a video's processing delay, then `completed` / `failed` / `pending` (manual platforms).

    def platform_status(self, target: Target, now: float) -> str:
        if self.is_draft:
            return "idle"
        if not target.auto_publish:
            return "manual"
        if now <= self.publish_at:
            return "pending"
        if now < self.publish_at + self.processing_seconds:
            return "processing"
        return "failed" if target.fails else "published"

    def status(self, now: float) -> str:
        if self.is_draft:
            return "draft"
        if now <= self.publish_at:
            return "scheduled"
        auto = [self.platform_status(t, now) for t in self.targets.values() if t.auto_publish]
        if not auto:
            return "pending"  # nothing publishes by itself: waiting for manual publishing
        if "processing" in auto:
            return "processing"
        return "failed" if all(s == "failed" for s in auto) else "completed"

    def updated_at(self, now: float) -> float:
        """The time of the last transition: the upload, then the publish time once passed, then the end of the
        video's processing once reached."""
        if self.is_draft or now <= self.publish_at:
            return self.created_at
        transitions = [self.publish_at]
        if any(t.auto_publish for t in self.targets.values()):
            transitions.append(self.publish_at + self.processing_seconds)
        return max(t for t in transitions if t <= now)

    def scheduled_for(self) -> float | None:
        """``scheduledAt`` as a read reports it: when it is (or was) scheduled to publish; a draft only if given."""
        return self.scheduled_at if self.is_draft else self.publish_at


# --- connected accounts and profiles ------------------------------------------------------------------------------
# GET /api/v1/channels lists a key's connected accounts by platform, GET /profiles its profiles (groups of one
# account per platform). Per key, seeded on first use with one account per platform and a default profile holding
# them, replaced through the control plane (PUT /_emulator/xenonflare/connections). The ids they show are what the
# uploads' per-platform configs accept: `accounts`/`channels` name a connected account by its `id` or by its
# platform id (channelId/accountId), `profileId` a profile.

PLATFORM_ID = {"youtube": "channelId"}  # the documented field for the platform's own id; accountId elsewhere
PLATFORM_NAME = {"youtube": "title"}  # the documented display field; username elsewhere (Instagram's, documented)
PROFILE_FIELDS = {
    "youtube": "youtubeChannelId",
    "instagram": "instagramAccountId",
    "tiktok": "tiktokAccountId",
    "linkedin": "linkedinAccountId",
    "pinterest": "pinterestAccountId",
}
TITLES = {
    "youtube": "YouTube",
    "instagram": "Instagram",
    "tiktok": "TikTok",
    "linkedin": "LinkedIn",
    "pinterest": "Pinterest",
}


@dataclass
class Account:
    id: str  # XenonFlare's id of the connection
    platform_id: str  # the platform's own id: channelId (YouTube) or accountId
    name: str  # title (YouTube) or username
    thumbnail: str | None = None

    def view(self, platform: str) -> dict[str, Any]:
        return {
            "id": self.id,
            PLATFORM_ID.get(platform, "accountId"): self.platform_id,
            PLATFORM_NAME.get(platform, "username"): self.name,
            "thumbnail": self.thumbnail,
        }


@dataclass
class Profile:
    id: str
    name: str
    accounts: dict[str, str | None]  # platform → the id of one of its connected accounts, or None
    is_default: bool
    created_at: float

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            **{PROFILE_FIELDS[p]: self.accounts.get(p) for p in VIDEO_PLATFORMS},
            "isDefault": self.is_default,
            "createdAt": iso_millis(self.created_at),
        }


@dataclass
class Connections:
    tenant: str
    plan: str
    channels: dict[str, list[Account]]
    profiles: list[Profile]

    def find(self, platform: str, account_id: str) -> Account | None:
        return next((a for a in self.channels.get(platform, []) if account_id in (a.id, a.platform_id)), None)

    def profile(self, profile_id: str) -> Profile | None:
        return next((p for p in self.profiles if p.id == profile_id), None)


def _derived(tenant: str, what: str, n: int) -> str:
    """``n`` hex digits derived from the key and ``what``: the same seeded ids on every run and every process."""
    return hashlib.sha256(f"{NAME}:{tenant}:{what}".encode()).hexdigest()[:n]


def _derived_digits(tenant: str, what: str, n: int) -> str:
    return str(int(_derived(tenant, what, 32), 16) % (9 * 10 ** (n - 1)) + 10 ** (n - 1))


def _seeded(tenant: str, now: float) -> Connections:
    """A new key's connections: one plausible account per platform, and a default profile holding all five."""
    channels = {
        "youtube": [
            Account(
                _derived(tenant, "youtube", 24),
                "UC" + base64.urlsafe_b64encode(bytes.fromhex(_derived(tenant, "youtube-channel", 32))).decode()[:22],
                "Emulator Channel",
            )
        ],
        "instagram": [
            Account(_derived(tenant, "instagram", 24), "17841" + _derived_digits(tenant, "ig", 12), "emulator.studio")
        ],
        "tiktok": [Account(_derived(tenant, "tiktok", 24), _derived_digits(tenant, "tt", 19), "emulator.studio")],
        "linkedin": [
            Account(
                _derived(tenant, "linkedin", 24),
                "urn:li:organization:" + _derived_digits(tenant, "li", 8),
                "Emulator Studio",
            )
        ],
        "pinterest": [Account(_derived(tenant, "pinterest", 24), _derived_digits(tenant, "pin", 18), "emulatorstudio")],
    }
    profile = Profile(_derived(tenant, "profile", 24), "Default", {p: a[0].id for p, a in channels.items()}, True, now)
    return Connections(tenant, DEFAULT_PLAN, channels, [profile])


def connections(runtime: Runtime, tenant: str, now: float) -> Connections:
    found: Connections | None = runtime.store.get(CONNECTIONS, tenant)
    return found if found is not None else _seeded(tenant, now)


def set_connections(runtime: Runtime, tenant: str, body: dict[str, Any], now: float) -> dict[str, Any]:
    """The control plane's PUT: replace the platforms' accounts, the profiles and/or the plan that ``body`` gives."""
    current = connections(runtime, tenant, now)
    channels = dict(current.channels)
    for platform, listed in body.get("channels", {}).items():
        seen: set[str] = set()
        built = []
        for index, given in enumerate(listed):
            account = Account(
                given.get("id") or _derived(tenant, f"{platform}:{given['platformId']}", 24),
                given["platformId"],
                given.get("name") or given["platformId"],
                given.get("thumbnail"),
            )
            if {account.id, account.platform_id} & seen:
                raise invalid(f"channels.{platform}.{index}", "names an account listed twice for this platform")
            seen |= {account.id, account.platform_id}
            built.append(account)
        channels[platform] = built
    profiles = current.profiles
    if "profiles" in body:
        profiles = []
        for index, given in enumerate(body["profiles"]):
            accounts: dict[str, str | None] = {}
            for platform, field_name in PROFILE_FIELDS.items():
                account_id = given.get(field_name)
                found = next((a for a in channels.get(platform, []) if account_id in (a.id, a.platform_id)), None)
                if account_id is not None and found is None:
                    raise invalid(f"profiles.{index}.{field_name}", f"is not a connected {TITLES[platform]} account")
                accounts[platform] = found.id if found is not None else None
            profile_id = given.get("id") or _derived(tenant, f"profile:{index}:{given['name']}", 24)
            if any(p.id == profile_id for p in profiles):
                raise invalid(f"profiles.{index}.id", "is the id of another profile")
            profiles.append(Profile(profile_id, given["name"], accounts, bool(given.get("isDefault")), now))
        if sum(p.is_default for p in profiles) > 1:
            raise invalid("profiles", "at most one profile can be the default")
    else:  # profiles keep only the accounts that are still connected
        for profile in profiles:
            for platform, account_id in profile.accounts.items():
                if account_id is not None and not any(a.id == account_id for a in channels.get(platform, [])):
                    profile.accounts[platform] = None
    updated = Connections(tenant, body.get("plan", current.plan), channels, profiles)
    runtime.store.put(CONNECTIONS, tenant, updated)
    return {"plan": updated.plan, "channels": _channels_view(updated), "profiles": [p.view() for p in updated.profiles]}


def _channels_view(conn: Connections) -> dict[str, list[dict[str, Any]]]:
    return {p: [a.view(p) for a in conn.channels.get(p, [])] for p in VIDEO_PLATFORMS}


# --- platform config ---------------------------------------------------------------------------------------------
# Both ways the page allows: a JSON object in the field named after the platform, and the flat keys. They are
# merged key by key. The same setting given both ways must agree: different values are a 400 naming both, since
# either precedence would silently drop something the client meant.

REMOTE_FIELDS = {
    "youtube": "videoId",
    "instagram": "mediaId",
    "tiktok": "videoId",
    "linkedin": "urn",
    "pinterest": "pinId",
}


def _not_selected(field_name: str, platform: str, platforms: list[str]) -> Invalid:
    return invalid(field_name, f"configures {platform}, which is not in platforms ({json.dumps(platforms)})")


def _platform_configs(
    body: dict[str, Any], platforms: list[str], kind: Kind, conn: Connections
) -> dict[str, dict[str, Any]]:
    configs: dict[str, dict[str, Any]] = {p: {} for p in platforms}
    origin: dict[tuple[str, str], str] = {}  # (platform, key) → the field it came from, for messages
    for platform in kind.platforms:
        if platform not in body:
            continue
        if platform not in platforms:
            raise _not_selected(platform, platform, platforms)
        for key, value in json.loads(body[platform]).items():  # an object: the spec's contentSchema says so
            configs[platform][key] = value
            origin[(platform, key)] = f"{platform}.{key}"
    for flat, (platform, key) in FLAT_KEYS.items():
        if flat not in body or platform not in kind.platforms:
            continue
        if platform not in platforms:
            raise _not_selected(flat, platform, platforms)
        value, config = body[flat], configs[platform]
        if key in config and config[key] != value:
            raise invalid(
                flat,
                f"conflicts with {origin[(platform, key)]}: {json.dumps(value)} vs "
                f"{json.dumps(config[key])}; send the setting once, or the same value both ways",
            )
        config[key] = value
        origin.setdefault((platform, key), flat)
    for platform, config in configs.items():
        for key in ID_LISTS:
            for index, account in enumerate(config.get(key, [])):
                if not account.strip():
                    raise invalid(f"{origin[(platform, key)]}.{index}", "must be a non-empty id")
                if conn.find(platform, account) is None and not account.lower().startswith(FAIL_PREFIX):
                    raise invalid(f"{origin[(platform, key)]}.{index}", _not_connected(conn, platform))
        if "profileId" in config:
            _profile_account(conn, platform, config["profileId"])
    return configs


def _not_connected(conn: Connections, platform: str) -> str:
    """Why an account id is refused, and the ids that would be accepted (GET /api/v1/channels lists them too)."""
    known = [f"{a.id} or {a.platform_id} ({a.name})" for a in conn.channels.get(platform, [])[:5]]
    return (
        f"is not a connected {TITLES[platform]} account of this API key; send the id or "
        f"{PLATFORM_ID.get(platform, 'accountId')} of one from GET /api/v1/channels"
        + (f" ({'; '.join(known)})" if known else f" (none is connected for {TITLES[platform]})")
    )


def _profile_account(conn: Connections, platform: str, profile_id: str) -> Account:
    """The account a ``profileId`` targets on ``platform``; refused when the plan has no profiles or it is unknown."""
    if conn.plan not in PROFILE_PLANS:
        raise Forbidden(
            f"{platform}.profileId: profiles are available on the Plus and Pro plans; this API key's "
            f"plan is {conn.plan}.",
            code="plan_required",
            errors=[FieldError(f"{platform}.profileId", "needs the Plus or Pro plan")],
        )
    profile = conn.profile(profile_id)
    if profile is None:
        raise invalid(f"{platform}.profileId", "is not a profile of this API key (GET /api/v1/profiles lists them)")
    account_id = profile.accounts.get(platform)
    account = conn.find(platform, account_id) if account_id is not None else None
    if account is None:
        raise invalid(f"{platform}.profileId", f"profile {profile.name!r} has no {TITLES[platform]} account")
    return account


def _target(call: Call, platform: str, config: dict[str, Any], kind: Kind, conn: Connections) -> Target:
    ids = config.get("accounts") or config.get("channels") or []
    first = conn.find(platform, ids[0]) if ids else None
    if first is None and "profileId" in config:
        first = _profile_account(conn, platform, config["profileId"])
    name = first.name if first is not None else (ids[0] if ids else "xenonflare")
    handle = re.sub(r"[^A-Za-z0-9_.]", "", name)
    if platform == "youtube":
        remote = _youtube_id(call)
        return Target(platform, config, remote, f"https://www.youtube.com/watch?v={remote}")
    if platform == "instagram":
        code = base64.urlsafe_b64encode(call.runtime.ids.bytes(8)).decode().rstrip("=")
        return Target(platform, config, _digits(call, 17), f"https://www.instagram.com/p/{code}/")
    if platform == "tiktok":
        remote = _digits(call, 19)
        path = "video" if kind.name == "video" else "photo"
        return Target(platform, config, remote, f"https://www.tiktok.com/@{handle or 'xenonflare'}/{path}/{remote}")
    if platform == "linkedin":
        urn = f"urn:li:share:{_digits(call, 19)}"
        return Target(platform, config, urn, f"https://www.linkedin.com/feed/update/{urn}/")
    remote = _digits(call, 18)
    return Target(platform, config, remote, f"https://www.pinterest.com/pin/{remote}/")


def _platforms_view(media: Media, now: float) -> dict[str, dict[str, Any]]:
    view = {}
    for platform, target in media.targets.items():
        status = media.platform_status(target, now)
        published = status == "published"
        view[platform] = {
            "status": status,
            REMOTE_FIELDS[platform]: target.remote_id if published else None,
            "url": target.url if published else None,
        }
    return view


# --- handlers: chunks --------------------------------------------------------------------------------------------


def _chunk_key(tenant: str, file_id: str) -> str:
    return f"{tenant}/{file_id}"  # fileIds are client-generated: scoped per key so keys never meet


def _one_file(call: Call, required: bool) -> FilePart | None:
    """The single file part named ``file``; a text field named ``file`` or two files are refused."""
    assert call.form is not None
    parts = call.form.files.get("file", [])
    if "file" in call.form.fields:
        raise invalid(
            "file",
            "must be a file part (Content-Disposition with a filename, e.g. curl -F "
            '"file=@photo.jpg"), not a text field',
        )
    if len(parts) > 1:
        raise invalid("file", f"send one file, not {len(parts)}")
    if required and not parts:
        raise invalid("file", "is required")
    return parts[0] if parts else None


async def get_chunk_status(call: Call) -> Reply:
    file_id = call.request.query_params["fileId"]
    upload: ChunkedUpload | None = await call.runtime.store.aget(CHUNKS, _chunk_key(call.tenant, file_id))
    size = upload.size if upload is not None else 0
    return Reply(Answer({"exists": size > 0, "currentSize": size, "fileId": file_id}))


def _chunk_answer(upload: ChunkedUpload, index: int) -> Reply:
    if index == upload.total_chunks - 1:
        return Reply(Answer({"completed": True, "fileId": upload.file_id}, "Upload complete"))
    return Reply(Answer({"completed": False, "chunkIndex": index}, "Chunk received"))


async def upload_chunk(call: Call) -> Reply:
    body = call.body
    part = _one_file(call, required=True)
    assert part is not None
    index, total, file_id = body["chunkIndex"], body["totalChunks"], body["fileId"]
    if index >= total:
        raise invalid("chunkIndex", f"must be less than totalChunks ({total}); chunkIndex is 0-based")
    key = _chunk_key(call.tenant, file_id)
    upload: ChunkedUpload | None = await call.runtime.store.aget(CHUNKS, key)
    if upload is None:
        upload = ChunkedUpload(file_id, call.tenant, total, call.now)
    elif total != upload.total_chunks:
        raise invalid(
            "totalChunks",
            f"this upload was started with totalChunks={upload.total_chunks}; send the "
            "same value with every chunk, or start over with a new fileId",
        )
    received = len(upload.chunks)
    if index < received:  # a repeat: harmless when the bytes are the same (a retried request)
        earlier = upload.chunks[index]
        if (earlier.size, earlier.md5) != (part.blob.size, part.blob.md5):
            raise invalid(
                "chunkIndex",
                f"chunk {index} was already received with different bytes ({earlier.size} "
                f"bytes, MD5 {earlier.md5}); a received chunk cannot be replaced — resume "
                "from currentSize, or start over with a new fileId",
            )
        call.runtime.blobs.delete(part.blob.name)
        return _chunk_answer(upload, index)
    if index > received:
        raise invalid(
            "chunkIndex",
            f"chunk {index} is out of order: the next chunk expected is {received} "
            f"(currentSize {upload.size}); send chunks in order from chunkIndex 0",
        )
    if part.blob.size == 0:
        raise invalid("file", "the chunk is empty")
    if upload.size + part.blob.size > CHUNKED_MAX:
        raise PayloadTooLarge(
            f"file: the chunked upload would reach {upload.size + part.blob.size} bytes, over "
            f"the {CHUNKED_MAX}-byte (5 GB) limit of a chunked upload.",
            errors=[FieldError("file", f"the whole upload must be at most {CHUNKED_MAX} bytes")],
            details={"max_size": CHUNKED_MAX},
        )
    upload.append(part.blob)
    await call.runtime.store.aput(CHUNKS, key, upload)
    return _chunk_answer(upload, index)


def _head(call: Call, upload: ChunkedUpload, n: int = 8192) -> bytes:
    """The first ``n`` bytes of the chunked file, read across chunks (the first chunk may be tiny)."""
    head = bytearray()
    for chunk in upload.chunks:
        blob = call.runtime.blobs.get(chunk.blob_name)
        if blob is None:
            break
        head += blob.head(n - len(head))
        if len(head) >= n:
            break
    return bytes(head)


async def _finalize_chunked(call: Call, file_id: str, kind: Kind, media_id: str) -> tuple[Blob, str]:
    """Assemble a complete chunked upload into one blob for ``media_id``; return (blob, sniffed type)."""
    key = _chunk_key(call.tenant, file_id)
    upload: ChunkedUpload | None = await call.runtime.store.aget(CHUNKS, key)
    if upload is None:
        raise NotFound(
            "fileId: no chunked upload with this fileId (send its chunks to POST /api/v1/media/chunks first)",
            errors=[FieldError("fileId", "no chunked upload with this fileId")],
        )
    if upload.media_id is not None:
        raise invalid("fileId", f"this chunked upload was already finalized as media {upload.media_id}")
    if upload.finalizing:
        raise invalid("fileId", "this chunked upload is being finalized by another request")
    if not upload.complete:
        raise invalid(
            "fileId",
            f"the chunked upload is incomplete: {len(upload.chunks)} of {upload.total_chunks} "
            f"chunks received (currentSize {upload.size})",
        )
    parts = [blob for chunk in upload.chunks if (blob := call.runtime.blobs.get(chunk.blob_name)) is not None]
    if len(parts) != len(upload.chunks):  # the bytes were cleared under the record (a reset): never assemble less
        raise NotFound(
            "fileId: the chunks of this upload are no longer stored; upload them again",
            errors=[FieldError("fileId", "chunks no longer stored")],
        )
    mime = sniff_bytes(_head(call, upload))
    if mime not in kind.accepted:
        raise UnsupportedMediaType(
            f"fileId: the uploaded file is {mime or 'not a recognised format'}; this "
            f"endpoint accepts {kind.accepted_text}.",
            errors=[FieldError("fileId", f"must hold {kind.accepted_text}")],
        )
    # the copy below yields to the event loop: keep a second finalize out. Not put: the flag lives in memory only,
    # so a restart during the copy leaves the upload finalizable rather than forever "being finalized".
    upload.finalizing = True
    try:
        blob = await anyio.to_thread.run_sync(
            lambda: call.runtime.blobs.concat(f"{NAME}/media/{media_id}", parts, mime, CHUNKED_MAX)
        )
    finally:
        upload.finalizing = False
    for chunk in upload.chunks:
        call.runtime.blobs.delete(chunk.blob_name)
    upload.media_id = media_id
    await call.runtime.store.aput(CHUNKS, key, upload)
    return blob, mime


# --- handlers: media ---------------------------------------------------------------------------------------------


def _scheduled_at(body: dict[str, Any], now: float) -> float | None:
    raw = body.get("scheduledAt")
    if raw is None:
        return None
    try:  # the spec's format: date-time has already required RFC 3339 (a date, a time and an offset)
        when = datetime.fromisoformat(raw.upper().replace(" ", "T")).timestamp()
    except ValueError:
        raise invalid(
            "scheduledAt", "must be an ISO 8601 date-time with an offset, e.g. 2026-10-01T09:00:00Z"
        ) from None
    if when < now:
        raise invalid("scheduledAt", f"must not be in the past (the emulator's clock reads {iso_millis(now)})")
    return when


async def _upload(call: Call, kind: Kind) -> Reply:
    body = call.body
    part = _one_file(call, required=False)
    file_id = body.get("fileId")
    if part is not None and file_id is not None:
        raise invalid("fileId", "send either file or fileId, not both")
    platforms: list[str] = json.loads(body["platforms"])  # validated by the spec: known platforms, no repeats
    conn = connections(call.runtime, call.tenant, call.now)
    configs = _platform_configs(body, platforms, kind, conn)
    scheduled_at = _scheduled_at(body, call.now)
    media_id = call.runtime.ids.object_id(call.now)
    if part is not None:
        sniffed = sniff_file(part.blob.path)
        if sniffed.mime not in kind.accepted:
            raise UnsupportedMediaType(
                f"file: the uploaded file is {sniffed.mime or 'not a recognised format'}; "
                f"this endpoint accepts {kind.accepted_text} (decided by content).",
                errors=[FieldError("file", f"must be {kind.accepted_text}")],
            )
        blob, mime = part.blob, sniffed.mime
    else:
        blob, mime = await _finalize_chunked(call, file_id, kind, media_id)
        sniffed = sniff_file(blob.path)
    media = Media(
        id=media_id,
        tenant=call.tenant,
        kind=kind.name,
        title=body.get("title") or kind.default_title,
        description=body.get("description"),
        platforms=platforms,
        targets={p: _target(call, p, configs[p], kind, conn) for p in platforms},
        scheduled_at=scheduled_at,
        is_draft=body.get("isDraft", False),
        created_at=call.now,
        processing_seconds=call.runtime.settings.video_processing_seconds if kind is VIDEO else 0.0,
        blob_name=blob.name,
        content_type=mime,
        size=blob.size,
        width=sniffed.width,
        height=sniffed.height,
        file_id=file_id,
        md5=blob.md5,
    )
    await call.runtime.store.aput(MEDIA, media.id, media)
    return Reply(
        Answer(
            [
                {
                    "id": media.id,
                    "title": media.title,
                    "status": media.status(call.now),  # draft or scheduled, by construction
                    "platforms": media.platforms,
                    "createdAt": iso_millis(media.created_at),
                }
            ],
            "Upload successful",
        )
    )


async def upload_image(call: Call) -> Reply:
    return await _upload(call, IMAGE)


async def upload_video(call: Call) -> Reply:
    return await _upload(call, VIDEO)


def _get_media(call: Call, kind: Kind) -> Reply:
    media_id = call.request.path_params["id"]
    media: Media | None = call.runtime.store.get(MEDIA, media_id)
    if media is None or media.tenant != call.tenant or media.kind != kind.name:  # never reveal another key's media
        raise NotFound(f"Media not found: no {kind.name} {media_id} for this API key.")
    now = call.now
    return Reply(
        Answer(
            {
                "id": media.id,
                "title": media.title,
                "status": media.status(now),
                "platforms": media.platforms,
                "scheduledAt": iso_millis(when) if (when := media.scheduled_for()) is not None else None,
                **_platforms_view(media, now),
                "createdAt": iso_millis(media.created_at),
                "updatedAt": iso_millis(media.updated_at(now)),
            }
        )
    )


async def get_image(call: Call) -> Reply:
    return _get_media(call, IMAGE)


async def get_video(call: Call) -> Reply:
    return _get_media(call, VIDEO)


# --- abandoned uploads (core.reclaim) ----------------------------------------------------------------------------
# Inferred (no page says how long chunks are kept): a chunked upload never finalized is forgotten with its chunks,
# so its fileId then reads as one never used (status exists: false, finalize 404 not_found).


def _chunks_started(upload: ChunkedUpload) -> float | None:
    return upload.created_at if upload.media_id is None and not upload.finalizing else None


def _expire_chunks(runtime: Runtime, key: str, upload: ChunkedUpload) -> None:
    runtime.store.delete(CHUNKS, key)
    for chunk in upload.chunks:  # after the delete: no stored record names deleted bytes
        runtime.blobs.delete(chunk.blob_name)


async def list_channels(call: Call) -> Reply:
    return Reply(Answer(_channels_view(connections(call.runtime, call.tenant, call.now))))


async def list_profiles(call: Call) -> Reply:
    conn = connections(call.runtime, call.tenant, call.now)
    if conn.plan not in PROFILE_PLANS:
        raise Forbidden(
            f"Profiles are available on the Plus and Pro plans; this API key's plan is {conn.plan}.",
            code="plan_required",
        )
    return Reply(Answer([p.view() for p in conn.profiles]))


async def put_connections(call: Call) -> Reply:
    """Control plane, ``PUT /_emulator/xenonflare/connections``: a key's connected accounts, profiles and plan (what
    GET /api/v1/channels and /profiles show, and so which ids its uploads accept)."""
    body = call.body
    secret = body["key"]
    if not PROVIDER.keys.pattern.fullmatch(secret):
        raise Invalid(
            f"key: must look like {PROVIDER.keys.describe}",
            errors=[FieldError("key", f"must match {PROVIDER.keys.pattern.pattern}")],
        )
    key_id = fingerprint(NAME, secret)
    view = set_connections(call.runtime, key_id, body, call.now)
    return Reply({"key_id": key_id, **view})


# --- chaos testing ----------------------------------------------------------------------------------------------
# Direct multipart uploads, or chunks then a finalizing upload with fileId. The docs' example resumes at
# currentSize 10485760, so 10 MiB chunks: sizes are drawn either side of that boundary.


def _finished(tables: Tables, key_id: str, now: float) -> list[Finished]:
    return [Finished(m["id"], m["md5"], m["size"]) for m in tables.get("media", []) if m["tenant"] == key_id]


DOCS_CHUNK = 10 * MiB
CHAOS = ChaosProfile(
    steps=(
        Step("uploadImage", API + UPLOAD_BODY),
        Step("uploadVideo", API + UPLOAD_BODY),
        Step("getChunkStatus", API),
        Step("uploadChunk", API + UPLOAD_BODY),
    ),
    samples=(
        Sample("image/png", "photo.png", padded(asset("sample.png")), (len(asset("sample.png")), 300 * 1024)),
        Sample("image/jpeg", "photo.jpg", padded(asset("sample.jpg")), (len(asset("sample.jpg")),)),
        Sample("video/mp4", "clip.mp4", padded(MP4_HEAD), (256 * 1024, DOCS_CHUNK + 1024)),
    ),
    finished=_finished,
)

# --- the provider ------------------------------------------------------------------------------------------------

HANDLERS = {
    "uploadImage": Handler(upload_image, body="multipart", max_file_size=DIRECT_MAX, scopes=WRITE),
    "uploadVideo": Handler(upload_video, body="multipart", max_file_size=DIRECT_MAX, scopes=WRITE),
    "getChunkStatus": Handler(get_chunk_status, body="none"),
    "uploadChunk": Handler(upload_chunk, body="multipart", max_file_size=CHUNK_MAX, scopes=WRITE),
    "getImage": Handler(get_image, body="none"),
    "getVideo": Handler(get_video, body="none"),
    "listChannels": Handler(list_channels, body="none"),
    "listProfiles": Handler(list_profiles, body="none"),
}
# the prefix-less family the newer pages call (/media/images, /media/videos, /media/chunks): the same handlers
HANDLERS |= {
    op_id + UNPREFIXED: HANDLERS[op_id]
    for op_id in ("uploadImage", "uploadVideo", "getChunkStatus", "uploadChunk", "listProfiles")
}

PROVIDER = Provider(
    name=NAME,
    title="XenonFlare",
    real_base_url="https://api.xenonflare.com",
    client_path="",
    keys=KEYS,
    handlers=HANDLERS,
    ok=ok,
    error=error,
    limits=limits,
    request_id=request_id,
    abandonable=(Abandonable(CHUNKS, _chunks_started, _expire_chunks),),
    control={"setXenonflareConnections": put_connections},
    chaos=CHAOS,
)
