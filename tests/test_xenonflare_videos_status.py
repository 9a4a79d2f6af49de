"""POST /api/v1/media/videos, and GET /images/{id} and /videos/{id}: statuses moving on the virtual clock."""

from __future__ import annotations

import json
import re

import pytest

from emulator import Settings
from tests.conftest import FROZEN_AT
from tests.helpers import PDF
from tests.test_xenonflare_support import (
    FLAT_KEYS,
    FROZEN_ISO,
    HEADERS,
    JPG,
    MOV,
    OBJECT_ID,
    OTHER,
    VIDEO,
    WEBM,
    XF,
    YOUTUBE_FLAT_KEYS,
    assert_error,
    connect_test_accounts,
    different,
    post_image,
    post_video,
)

BOTH_STORES = True  # every test here runs on the memory store and on Redis (conftest.py)

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
async def test_accounts(client):
    """The account ids these tests send are connected accounts of KEY (see TEST_ACCOUNTS)."""
    await connect_test_accounts(client)


ALL_VIDEO_PLATFORMS = ["youtube", "instagram", "tiktok", "linkedin", "pinterest"]
AUTO = {p: json.dumps({"autoPublish": True}) for p in ALL_VIDEO_PLATFORMS}
REMOTE = {  # per-platform id field and the shapes of id and url once published
    "youtube": ("videoId", r"[A-Za-z0-9_-]{11}", r"https://www\.youtube\.com/watch\?v=[A-Za-z0-9_-]{11}"),
    "instagram": ("mediaId", r"[1-9]\d{16}", r"https://www\.instagram\.com/p/[A-Za-z0-9_-]+/"),
    "tiktok": ("videoId", r"[1-9]\d{18}", r"https://www\.tiktok\.com/@[A-Za-z0-9_.]+/(video|photo)/[1-9]\d{18}"),
    "linkedin": ("urn", r"urn:li:share:[1-9]\d{18}", r"https://www\.linkedin\.com/feed/update/urn:li:share:\d{19}/"),
    "pinterest": ("pinId", r"[1-9]\d{17}", r"https://www\.pinterest\.com/pin/[1-9]\d{17}/"),
}


async def status_of(client, kind: str, media_id: str, headers=HEADERS) -> dict:
    r = await client.get(f"{XF}/{kind}s/{media_id}", headers=headers)
    assert r.status_code == 200, r.text
    assert list(r.json()) == ["success", "data"] and r.json()["success"] is True
    return r.json()["data"]


# --- video upload ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [VIDEO, MOV], ids=["mp4", "mov"])
async def test_mp4_and_mov_are_accepted_by_content(client, data):
    r = await post_video(
        client, {"platforms": '["youtube"]'}, data=data, name="clip.bin", content_type="application/octet-stream"
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body) == ["success", "message", "data"] and body["message"] == "Upload successful"
    [item] = body["data"]
    assert OBJECT_ID.fullmatch(item["id"])
    assert item == {
        "id": item["id"],
        "title": "Untitled Video",
        "status": "scheduled",
        "platforms": ["youtube"],
        "createdAt": FROZEN_ISO,
    }


@pytest.mark.parametrize("data", [WEBM, JPG, PDF], ids=["webm", "jpeg", "pdf"])
async def test_other_files_are_415_even_named_mp4(client, data):
    r = await post_video(client, {"platforms": '["youtube"]'}, data=data, name="clip.mp4")
    body = assert_error(r, 415, "unsupported_media_type", "file")
    assert ".mp4 or .mov" in body["message"]


async def test_all_five_video_platforms_with_nested_configs(client):
    youtube = {
        "title": "t",
        "description": "d",
        "privacy": "unlisted",
        "autoPublish": True,
        "channels": ["UC_1"],
        "profileId": "p_1",
    }
    r = await post_video(
        client,
        {
            "platforms": json.dumps(ALL_VIDEO_PLATFORMS),
            **AUTO,
            "youtube": json.dumps(youtube),
            "title": "Launch",
            "description": "internal",
            "isDraft": "false",
            "scheduledAt": "2026-09-22T00:00:00Z",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"][0]["platforms"] == ALL_VIDEO_PLATFORMS and r.json()["data"][0]["title"] == "Launch"


async def test_a_video_draft(client):
    r = await post_video(client, {"platforms": '["youtube"]', "isDraft": "true"})
    assert r.json()["data"][0]["status"] == "draft"


VIDEO_FLAT_KEYS = {**FLAT_KEYS, **YOUTUBE_FLAT_KEYS}


@pytest.mark.parametrize("flat", sorted(VIDEO_FLAT_KEYS))
async def test_every_flat_key_works_on_videos_and_maps_to_its_nested_key(client, flat):
    platform, nested, good, typed, bad = VIDEO_FLAT_KEYS[flat]
    fields = {"platforms": json.dumps([platform]), flat: good}
    assert (await post_video(client, dict(fields))).status_code == 200
    clash = await post_video(client, {**fields, platform: json.dumps({nested: different(nested, typed)})})
    assert_error(clash, 400, "validation_failed", flat)
    if bad is not None:
        wrong = await post_video(client, {**fields, flat: bad})
        assert_error(wrong, 400, "validation_failed", flat + ".0" if bad.startswith("[") else flat)
    elsewhere = await post_video(
        client, {"platforms": '["linkedin"]' if platform != "linkedin" else '["youtube"]', flat: good}
    )
    assert_error(elsewhere, 400, "validation_failed", flat)


@pytest.mark.parametrize(
    "key, bad",
    [
        ("privacy", "PUBLIC"),
        ("autoPublish", "yes"),
        ("channels", "UC_1"),
        ("title", 1),
        ("description", []),
        ("chanels", ["UC_1"]),
    ],
)
async def test_the_nested_youtube_config_is_checked(client, key, bad):
    r = await post_video(client, {"platforms": '["youtube"]', "youtube": json.dumps({key: bad})})
    body = assert_error(r, 400, "validation_failed")
    assert body["error"]["field"].startswith(f"youtube.{key}")


async def test_youtube_is_not_an_image_platform(client):
    assert_error(await post_image(client, {"platforms": '["youtube"]'}), 400, "validation_failed", "platforms.0")
    assert_error(
        await post_image(client, {"platforms": '["instagram"]', "youtubePrivacy": "public"}),
        400,
        "validation_failed",
        "youtubePrivacy",
    )


@pytest.mark.parametrize("platforms", ['["facebook"]', "[]", '["youtube", "youtube"]'])
async def test_bad_video_platforms_are_400(client, platforms):
    assert_error(await post_video(client, {"platforms": platforms}), 400, "validation_failed")


async def test_video_file_and_file_id_together_is_400(client):
    r = await post_video(client, {"platforms": '["youtube"]', "fileId": "abc"})
    assert_error(r, 400, "validation_failed", "fileId")


# --- status ------------------------------------------------------------------------------------------------------


async def test_an_immediate_auto_published_image_is_published_with_ids_and_urls(client, clock):
    r = await post_image(
        client,
        {
            "platforms": '["instagram", "tiktok", "linkedin", "pinterest"]',
            **{p: AUTO[p] for p in ("instagram", "tiktok", "linkedin", "pinterest")},
            "title": "Launch",
        },
    )
    media_id = r.json()["data"][0]["id"]
    clock.advance(5)
    data = await status_of(client, "image", media_id)
    assert list(data) == [
        "id",
        "title",
        "status",
        "platforms",
        "scheduledAt",
        "instagram",
        "tiktok",
        "linkedin",
        "pinterest",
        "createdAt",
        "updatedAt",
    ]
    assert data["id"] == media_id and data["title"] == "Launch" and data["status"] == "completed"
    # scheduled for the upload time (an immediate upload), published once that passed
    assert data["scheduledAt"] == FROZEN_ISO and data["createdAt"] == FROZEN_ISO and data["updatedAt"] == FROZEN_ISO
    for platform in ("instagram", "tiktok", "linkedin", "pinterest"):
        id_field, id_shape, url_shape = REMOTE[platform]
        assert set(data[platform]) == {"status", id_field, "url"}
        assert data[platform]["status"] == "published"
        assert re.fullmatch(id_shape, data[platform][id_field]) and re.fullmatch(url_shape, data[platform]["url"])
    assert "/photo/" in data["tiktok"]["url"]  # TikTok photo post for an image
    assert data == await status_of(client, "image", media_id)  # stable: ids are fixed at upload time


async def test_the_tiktok_url_uses_the_first_account(client, clock):
    r = await post_video(
        client, {"platforms": '["tiktok"]', "tiktok": '{"autoPublish": true, "accounts": ["dance.co"]}'}
    )
    clock.advance(1)
    data = await status_of(client, "video", r.json()["data"][0]["id"])
    assert data["tiktok"]["url"].startswith("https://www.tiktok.com/@dance.co/video/")


async def test_a_scheduled_image_publishes_at_scheduled_at(client, clock):
    r = await post_image(
        client,
        {
            "platforms": '["instagram", "pinterest"]',
            "scheduledAt": "2026-09-21T15:00:00Z",
            "instagram": '{"autoPublish": true}',
            "pinterest": '{"autoPublish": true}',
        },
    )
    media_id = r.json()["data"][0]["id"]
    before = await status_of(client, "image", media_id)
    assert before["status"] == "scheduled" and before["scheduledAt"] == "2026-09-21T15:00:00.000Z"
    assert before["instagram"] == {"status": "pending", "mediaId": None, "url": None}
    assert before["pinterest"] == {"status": "pending", "pinId": None, "url": None}
    clock.advance(2800 - 1)  # 14:13:20 + 2800 s = 15:00:00: one second before
    assert (await status_of(client, "image", media_id))["status"] == "scheduled"
    clock.advance(1)  # 15:00:00: still scheduled at its publish time, published once it has passed
    at = await status_of(client, "image", media_id)
    assert at["status"] == "scheduled" and at["updatedAt"] == FROZEN_ISO
    clock.advance(0.001)
    after = await status_of(client, "image", media_id)
    assert after["status"] == "completed" and after["updatedAt"] == "2026-09-21T15:00:00.000Z"
    assert after["instagram"]["status"] == after["pinterest"]["status"] == "published"


async def test_platforms_without_auto_publish_wait_for_manual_publishing(client, clock):
    r = await post_image(client, {"platforms": '["instagram", "linkedin"]', "instagramAutoPublish": "false"})
    media_id = r.json()["data"][0]["id"]
    clock.advance(3600)
    data = await status_of(client, "image", media_id)
    assert data["status"] == "pending"
    assert data["instagram"] == {"status": "manual", "mediaId": None, "url": None}
    assert data["linkedin"] == {"status": "manual", "urn": None, "url": None}  # autoPublish defaults to false


async def test_a_draft_stays_a_draft_with_idle_platforms(client, clock):
    r = await post_image(
        client,
        {
            "platforms": '["instagram"]',
            "isDraft": "true",
            "instagramAutoPublish": "true",
            "scheduledAt": "2026-09-21T15:00:00Z",
        },
    )
    assert r.json()["data"][0]["status"] == "draft"
    clock.advance(86400)
    data = await status_of(client, "image", r.json()["data"][0]["id"])
    assert data["status"] == "draft" and data["instagram"]["status"] == "idle"
    assert data["updatedAt"] == FROZEN_ISO


@pytest.mark.parametrize("settings", [Settings(strict=True, seed=1234, video_processing_seconds=30)])
async def test_a_video_processes_for_the_configured_delay_then_publishes(client, clock, settings):
    r = await post_video(
        client,
        {"platforms": '["youtube", "instagram"]', "youtubeAutoPublish": "true", "instagram": '{"autoPublish": true}'},
    )
    media_id = r.json()["data"][0]["id"]
    assert (await status_of(client, "video", media_id))["status"] == "scheduled"  # the instant it was answered
    clock.advance(0.1)
    during = await status_of(client, "video", media_id)
    assert during["status"] == "processing"
    assert during["youtube"] == {"status": "processing", "videoId": None, "url": None}
    clock.advance(29.8)
    assert (await status_of(client, "video", media_id))["status"] == "processing"
    clock.freeze(FROZEN_AT + 30)  # exactly the end of processing (no float sum)
    after = await status_of(client, "video", media_id)
    assert after["status"] == "completed" and after["youtube"]["status"] == "published"
    assert after["updatedAt"] == "2026-09-21T14:13:50.000Z"


@pytest.mark.parametrize("settings", [Settings(strict=True, seed=1234, video_processing_seconds=30)])
async def test_images_do_not_wait_for_video_processing(client, clock, settings):
    r = await post_image(client, {"platforms": '["instagram"]', "instagramAutoPublish": "true"})
    clock.advance(0.001)
    assert (await status_of(client, "image", r.json()["data"][0]["id"]))["status"] == "completed"


async def test_an_account_id_starting_with_fail_makes_that_platform_fail(client, clock):
    both = await post_image(
        client,
        {
            "platforms": '["instagram", "pinterest"]',
            "instagram": '{"autoPublish": true, "accounts": ["fail_expired_token"]}',
            "pinterest": '{"autoPublish": true, "accounts": ["pin_1"]}',
        },
    )
    clock.advance(1)
    data = await status_of(client, "image", both.json()["data"][0]["id"])
    assert data["instagram"] == {"status": "failed", "mediaId": None, "url": None}
    assert data["pinterest"]["status"] == "published" and data["status"] == "completed"
    only = await post_video(
        client, {"platforms": '["youtube"]', "youtubeAutoPublish": "true", "selectedYoutubeChannels": '["FAIL"]'}
    )
    clock.advance(1)
    failed = await status_of(client, "video", only.json()["data"][0]["id"])
    assert failed["status"] == "failed" and failed["youtube"]["status"] == "failed"


async def test_an_image_is_not_a_video_and_back(client):
    image = (await post_image(client, {"platforms": '["instagram"]'})).json()["data"][0]["id"]
    video = (await post_video(client, {"platforms": '["youtube"]'})).json()["data"][0]["id"]
    assert_error(await client.get(f"{XF}/videos/{image}", headers=HEADERS), 404, "not_found")
    assert_error(await client.get(f"{XF}/images/{video}", headers=HEADERS), 404, "not_found")


@pytest.mark.parametrize("media_id", ["65cbde4f2a1b3c4d5e6f7a8b", "not-an-id", "x" * 300])
async def test_unknown_media_is_404(client, media_id):
    body = assert_error(await client.get(f"{XF}/images/{media_id}", headers=HEADERS), 404, "not_found")
    assert body["message"].startswith("Media not found")


async def test_another_keys_media_is_404(client):
    media_id = (await post_image(client, {"platforms": '["instagram"]'})).json()["data"][0]["id"]
    assert_error(await client.get(f"{XF}/images/{media_id}", headers=OTHER), 404, "not_found")
    assert (await client.get(f"{XF}/images/{media_id}", headers=HEADERS)).status_code == 200


async def test_an_immediate_upload_reads_as_it_was_answered_then_moves_on_the_clock(client, clock):
    r = await post_image(client, {"platforms": '["instagram"]', "instagramAutoPublish": "true"})
    answered = r.json()["data"][0]
    assert answered["status"] == "scheduled"  # the published example
    read = await status_of(client, "image", answered["id"])
    assert (read["status"], read["scheduledAt"], read["instagram"]["status"]) == ("scheduled", FROZEN_ISO, "pending")
    clock.advance(0.001)
    later = await status_of(client, "image", answered["id"])
    assert (later["status"], later["scheduledAt"], later["instagram"]["status"]) == (
        "completed",
        FROZEN_ISO,
        "published",
    )
    assert later["updatedAt"] == FROZEN_ISO  # the publish time, which was the upload time
    draft = await post_image(client, {"platforms": '["instagram"]', "isDraft": "true"})
    assert draft.json()["data"][0]["status"] == "draft"
    assert (await status_of(client, "image", draft.json()["data"][0]["id"]))["scheduledAt"] is None
