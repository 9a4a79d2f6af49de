"""Request builders and assertions shared by the XenonFlare tests (this module holds no tests itself)."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.helpers import MP4, sample

XF = "/xenonflare/api/v1/media"
KEY = "xf_live_" + "0123456789abcdef" * 2
OTHER_KEY = "xf_test_" + "fedcba9876543210" * 2
HEADERS = {"X-API-Key": KEY}
OTHER = {"X-API-Key": OTHER_KEY}

JPG = sample("jpg")
PNG = sample("png")
# ISO-BMFF with the QuickTime brand 'qt  ': what a .mov file starts with
MOV = b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  " + b"\x00\x00\x00\x08wide" + b"\x00" * 64
VIDEO = MP4
WEBM = bytes.fromhex("1a45dfa3") + b"\x42\x82\x84webm" + b"\x00" * 64

OBJECT_ID = re.compile(r"[0-9a-f]{24}")
ISO_MILLIS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
FROZEN_ISO = "2026-09-21T14:13:20.000Z"  # conftest's FROZEN_AT

# Every flat key of the tables: flat key → (platform, nested key, a valid form value, its typed value, a value of
# the wrong type or outside the enum — None for free text, where every string is valid).
FLAT_KEYS: dict[str, tuple[str, str, str, Any, str | None]] = {
    "instagramCaption": ("instagram", "caption", "Stunning view! #nature", "Stunning view! #nature", None),
    "instagramAutoPublish": ("instagram", "autoPublish", "true", True, "yes"),
    "selectedInstagramAccounts": ("instagram", "accounts", '["ig_1", "ig_2"]', ["ig_1", "ig_2"], "[1, 2]"),
    "tiktokCaption": ("tiktok", "caption", "Dance #fyp", "Dance #fyp", None),
    "tiktokPrivacy": ("tiktok", "privacy", "MUTUAL_FOLLOW_FRIENDS", "MUTUAL_FOLLOW_FRIENDS", "PRIVATE"),
    "tiktokAutoPublish": ("tiktok", "autoPublish", "false", False, "1"),
    "selectedTiktokAccounts": ("tiktok", "accounts", '["tt_1"]', ["tt_1"], '[{"id": "tt_1"}]'),
    "tiktokDisableComment": ("tiktok", "disableComment", "true", True, "on"),
    "tiktokDisableDuet": ("tiktok", "disableDuet", "true", True, "TRUE"),
    "tiktokDisableStitch": ("tiktok", "disableStitch", "false", False, "no"),
    "linkedinComment": ("linkedin", "comment", "Proud of the team", "Proud of the team", None),
    "linkedinAutoPublish": ("linkedin", "autoPublish", "true", True, "yes"),
    "selectedLinkedinAccounts": (
        "linkedin",
        "accounts",
        '["urn:li:organization:1"]',
        ["urn:li:organization:1"],
        "[true]",
    ),
    "pinterestTitle": ("pinterest", "title", "Nature Photography", "Nature Photography", None),
    "pinterestDescription": (
        "pinterest",
        "description",
        "Beautiful landscape photo.",
        "Beautiful landscape photo.",
        None,
    ),
    "pinterestAutoPublish": ("pinterest", "autoPublish", "true", True, "y"),
    "selectedPinterestAccounts": ("pinterest", "accounts", '["pin_1"]', ["pin_1"], "[null]"),
}
YOUTUBE_FLAT_KEYS: dict[str, tuple[str, str, str, Any, str | None]] = {
    "youtubeTitle": ("youtube", "title", "My video", "My video", None),
    "youtubeDescription": ("youtube", "description", "Shot on a phone.", "Shot on a phone.", None),
    "youtubePrivacy": ("youtube", "privacy", "unlisted", "unlisted", "PUBLIC"),
    "youtubeAutoPublish": ("youtube", "autoPublish", "true", True, "yes"),
    "selectedYoutubeChannels": ("youtube", "channels", '["UC_channel"]', ["UC_channel"], "[42]"),
}


# The account ids these tests send, connected to KEY through the control plane (an upload accepts only ids of the
# key's connected accounts, as GET /api/v1/channels lists them), and a profile `p_1` holding the first of each.
TEST_ACCOUNTS: dict[str, list[str]] = {
    "youtube": ["UC_channel", "UC_1"],
    "instagram": ["ig_1", "ig_2"],
    "tiktok": ["tt_1", "dance.co"],
    "linkedin": ["urn:li:organization:1", "li_1"],
    "pinterest": ["pin_1"],
}
CONNECTIONS = "/_emulator/xenonflare/connections"


async def connect_test_accounts(client: httpx.AsyncClient, key: str = KEY) -> dict[str, Any]:
    r = await client.put(
        CONNECTIONS,
        json={
            "key": key,
            "channels": {p: [{"platformId": i} for i in ids] for p, ids in TEST_ACCOUNTS.items()},
            "profiles": [
                {
                    "id": "p_1",
                    "name": "Test",
                    "isDefault": True,
                    **{
                        f"{p}{'ChannelId' if p == 'youtube' else 'AccountId'}": ids[0]
                        for p, ids in TEST_ACCOUNTS.items()
                    },
                }
            ],
        },
    )
    assert r.status_code == 200, r.text
    return r.json()


def different(nested_key: str, value: Any) -> Any:
    """Another valid value for ``nested_key``: makes a flat key and its nested key disagree."""
    if isinstance(value, bool):
        return not value
    if nested_key == "privacy":
        options = ["PUBLIC_TO_EVERYONE", "SELF_ONLY"] if value.isupper() else ["public", "private"]
        return options[0] if value != options[0] else options[1]
    return ["someone_else"] if isinstance(value, list) else "something else"


def multipart(fields: dict[str, Any], file: tuple[str, bytes, str] | None = None) -> list[tuple[str, Any]]:
    """Form parts as httpx sends them: text fields (a list value repeats the field), then the file part."""
    parts: list[tuple[str, Any]] = []
    for name, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            parts.append((name, (None, item)))
    if file is not None:
        parts.append(("file", file))
    return parts


async def post_image(
    client: httpx.AsyncClient,
    fields: dict[str, Any],
    *,
    data: bytes | None = JPG,
    headers: dict[str, str] | None = None,
    path: str = f"{XF}/images",
    name: str = "image.jpg",
    content_type: str = "image/jpeg",
) -> httpx.Response:
    """POST a multipart upload; ``data=None`` sends no file part (e.g. to finalize with fileId)."""
    file = (name, data, content_type) if data is not None else None
    return await client.post(path, headers=HEADERS if headers is None else headers, files=multipart(fields, file))


async def post_video(
    client: httpx.AsyncClient,
    fields: dict[str, Any],
    *,
    data: bytes | None = VIDEO,
    headers: dict[str, str] | None = None,
    name: str = "video.mp4",
    content_type: str = "video/mp4",
) -> httpx.Response:
    return await post_image(
        client, fields, data=data, headers=headers, path=f"{XF}/videos", name=name, content_type=content_type
    )


async def send_chunk(
    client: httpx.AsyncClient, file_id: str, index: int, total: int, data: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post(
        f"{XF}/chunks",
        headers=HEADERS if headers is None else headers,
        files={"file": ("blob", data, "application/octet-stream")},
        data={"chunkIndex": str(index), "totalChunks": str(total), "fileId": file_id},
    )


async def chunk_status(client: httpx.AsyncClient, file_id: str, headers: dict[str, str] | None = None) -> dict:
    r = await client.get(f"{XF}/chunks", params={"fileId": file_id}, headers=HEADERS if headers is None else headers)
    assert r.status_code == 200, r.text
    assert r.json()["success"] is True
    return r.json()["data"]


async def upload_in_chunks(client: httpx.AsyncClient, file_id: str, data: bytes, size: int) -> None:
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    for index, piece in enumerate(pieces):
        r = await send_chunk(client, file_id, index, len(pieces), piece)
        assert r.status_code == 200, r.text


def assert_error(r: httpx.Response, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    """The error envelope: ``{success: false, message, error: {code, field?}}``; returns the body."""
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False
    assert isinstance(body["message"], str) and body["message"]
    assert body["error"]["code"] == code
    if field is not None:
        assert body["error"]["field"] == field, body
        assert field in body["message"], body  # the message names the field, not only error.field
    assert KEY not in r.text and OTHER_KEY not in r.text
    return body
