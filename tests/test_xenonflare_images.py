"""POST /api/v1/media/images: the documented response, every field, every flat and nested key, and bad input."""

from __future__ import annotations

import json

import pytest

from tests.helpers import MP4, PDF, sample
from tests.test_xenonflare_support import (
    FLAT_KEYS,
    FROZEN_ISO,
    HEADERS,
    JPG,
    KEY,
    OBJECT_ID,
    OTHER,
    XF,
    assert_error,
    connect_test_accounts,
    different,
    multipart,
    post_image,
    post_video,
)

BOTH_STORES = True  # every test here runs on the memory store and on Redis (conftest.py)

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
async def test_accounts(client):
    """The account ids these tests send are connected accounts of KEY (see TEST_ACCOUNTS)."""
    await connect_test_accounts(client)


DOCS_FIELDS = {
    "platforms": '["instagram", "pinterest"]',
    "instagram": '{"caption": "Stunning view! #nature", "autoPublish": true, '
    '"accounts": ["YOUR_INSTAGRAM_BUSINESS_ID"]}',
    "pinterest": '{"title": "Nature Photography", "description": "Beautiful landscape photo.", "autoPublish": true, '
    '"accounts": ["YOUR_PINTEREST_ID"]}',
}


async def test_the_docs_example_names_placeholder_accounts_and_is_refused_for_them(client):
    r = await post_image(client, dict(DOCS_FIELDS), headers=OTHER)  # a key with the seeded accounts only
    body = assert_error(r, 400, "validation_failed", "instagram.accounts.0")
    assert "is not a connected Instagram account of this API key" in body["message"]
    assert "GET /api/v1/channels" in body["message"]


async def docs_fields_with_connected_accounts(client, headers) -> dict:
    """The docs' example, its placeholder account ids replaced by the key's own, as GET /api/v1/channels lists them."""
    channels = (await client.get("/xenonflare/api/v1/channels", headers=headers)).json()["data"]
    return {
        **DOCS_FIELDS,
        "instagram": DOCS_FIELDS["instagram"].replace("YOUR_INSTAGRAM_BUSINESS_ID", channels["instagram"][0]["id"]),
        "pinterest": DOCS_FIELDS["pinterest"].replace("YOUR_PINTEREST_ID", channels["pinterest"][0]["accountId"]),
    }


async def test_the_docs_example_gets_the_documented_response_exactly(client):
    r = await post_image(client, await docs_fields_with_connected_accounts(client, OTHER), headers=OTHER)
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body) == ["success", "message", "data"]  # the page's order, too
    assert body["success"] is True and body["message"] == "Upload successful"
    [item] = body["data"]
    assert list(item) == ["id", "title", "status", "platforms", "createdAt"]
    assert OBJECT_ID.fullmatch(item["id"])
    assert item["title"] == "Untitled Image"
    assert item["status"] == "scheduled"
    assert item["platforms"] == ["instagram", "pinterest"]
    assert item["createdAt"] == FROZEN_ISO  # the virtual clock, milliseconds and Z


async def test_object_ids_are_new_each_time_and_start_with_the_creation_time(client, clock):
    first = (await post_image(client, {"platforms": '["linkedin"]'})).json()["data"][0]["id"]
    clock.advance(1)
    second = (await post_image(client, {"platforms": '["linkedin"]'})).json()["data"][0]["id"]
    assert first != second
    assert int(first[:8], 16) == int(clock.now()) - 1 and int(second[:8], 16) == int(clock.now())


async def test_bearer_is_an_alternative_to_x_api_key(client):
    r = await post_image(client, {"platforms": '["tiktok"]'}, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200


# --- title, description, isDraft, scheduledAt --------------------------------------------------------------------


async def test_title_is_echoed_and_defaults_when_missing_or_empty(client):
    titled = await post_image(client, {"platforms": '["instagram"]', "title": "Sunset over the bay"})
    assert titled.json()["data"][0]["title"] == "Sunset over the bay"
    empty = await post_image(client, {"platforms": '["instagram"]', "title": ""})
    assert empty.json()["data"][0]["title"] == "Untitled Image"


async def test_description_is_accepted_and_stays_internal(client):
    r = await post_image(client, {"platforms": '["instagram"]', "description": "Internal: shot on 2026-09-20"})
    assert r.status_code == 200
    media_id = r.json()["data"][0]["id"]
    status = (await client.get(f"{XF}/images/{media_id}", headers=HEADERS)).json()["data"]
    assert "Internal: shot on 2026-09-20" not in json.dumps(status)  # "Internal description": never published


@pytest.mark.parametrize("value, status", [("true", "draft"), ("false", "scheduled")])
async def test_is_draft_is_a_form_boolean(client, value, status):
    r = await post_image(client, {"platforms": '["instagram"]', "isDraft": value})
    assert r.status_code == 200
    assert r.json()["data"][0]["status"] == status


@pytest.mark.parametrize("value", ["yes", "1", "True", ""])
async def test_is_draft_other_than_true_or_false_is_400(client, value):
    r = await post_image(client, {"platforms": '["instagram"]', "isDraft": value})
    assert_error(r, 400, "validation_failed", "isDraft")


async def test_scheduled_at_is_normalised_to_utc_milliseconds(client):
    r = await post_image(client, {"platforms": '["instagram"]', "scheduledAt": "2026-09-22T10:00:00+02:00"})
    assert r.status_code == 200 and r.json()["data"][0]["status"] == "scheduled"
    media = (await client.get(f"{XF}/images/{r.json()['data'][0]['id']}", headers=HEADERS)).json()["data"]
    assert media["scheduledAt"] == "2026-09-22T08:00:00.000Z"


@pytest.mark.parametrize("value", ["2026-09-22", "2026-09-22T10:00:00", "tomorrow", "2026-13-01T00:00:00Z"])
async def test_scheduled_at_must_be_an_iso_date_time_with_offset(client, value):
    r = await post_image(client, {"platforms": '["instagram"]', "scheduledAt": value})
    assert_error(r, 400, "validation_failed", "scheduledAt")


async def test_scheduled_at_in_the_past_is_400(client):
    r = await post_image(client, {"platforms": '["instagram"]', "scheduledAt": "2026-09-21T14:13:19Z"})
    body = assert_error(r, 400, "validation_failed", "scheduledAt")
    assert "past" in body["message"] and FROZEN_ISO in body["message"]


# --- platforms ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["instagram", "linkedin", "tiktok", "pinterest"])
async def test_each_image_platform_is_accepted(client, platform):
    r = await post_image(client, {"platforms": json.dumps([platform])})
    assert r.status_code == 200 and r.json()["data"][0]["platforms"] == [platform]


async def test_all_four_platforms_at_once_keep_their_order(client):
    r = await post_image(client, {"platforms": '["pinterest", "tiktok", "linkedin", "instagram"]'})
    assert r.json()["data"][0]["platforms"] == ["pinterest", "tiktok", "linkedin", "instagram"]


@pytest.mark.parametrize(
    "value, field, words",
    [
        ('["youtube"]', "platforms.0", "is not one of"),
        ('["instagram", "Instagram"]', "platforms.1", "is not one of"),
        ("[]", "platforms", "non-empty"),
        ('["tiktok", "tiktok"]', "platforms", "non-unique"),
        ('"instagram"', "platforms", "not of type 'array'"),
        ("instagram", "platforms", "must be valid JSON"),
        ('["instagram",', "platforms", "must be valid JSON"),
        ("[1]", "platforms.0", "not of type 'string'"),
    ],
)
async def test_bad_platforms_are_400_naming_the_problem(client, value, field, words):
    body = assert_error(await post_image(client, {"platforms": value}), 400, "validation_failed", field)
    assert words in body["message"]


async def test_platforms_is_required(client):
    assert_error(await post_image(client, {"title": "no platforms"}), 400, "validation_failed", "platforms")


# --- file or fileId ----------------------------------------------------------------------------------------------


async def test_neither_file_nor_file_id_is_400(client):
    r = await post_image(client, {"platforms": '["instagram"]'}, data=None)
    body = assert_error(r, 400, "validation_failed", "file")
    assert "fileId" in body["message"]


async def test_both_file_and_file_id_is_400(client):
    r = await post_image(client, {"platforms": '["instagram"]', "fileId": "3f0c8a2e-5b7d-4c1e-9a64-2d8f1b6e7c90"})
    body = assert_error(r, 400, "validation_failed", "fileId")
    assert "not both" in body["message"]


async def test_file_sent_as_a_text_field_is_400(client):
    r = await post_image(client, {"platforms": '["instagram"]', "file": "/path/to/image.jpg"}, data=None)
    body = assert_error(r, 400, "validation_failed", "file")
    assert "file part" in body["message"]


async def test_two_files_are_400(client):
    parts = multipart({"platforms": '["instagram"]'}, ("a.jpg", JPG, "image/jpeg")) + [
        ("file", ("b.jpg", JPG, "image/jpeg"))
    ]
    r = await client.post(f"{XF}/images", headers=HEADERS, files=parts)
    assert_error(r, 400, "validation_failed", "file")


async def test_a_file_in_another_field_is_400(client):
    parts = multipart({"platforms": '["instagram"]'}, ("a.jpg", JPG, "image/jpeg")) + [
        ("title", ("t.jpg", JPG, "image/jpeg"))
    ]
    assert_error(await client.post(f"{XF}/images", headers=HEADERS, files=parts), 400, "validation_failed", "title")


@pytest.mark.parametrize(
    "ext, mime",
    [("jpg", "image/jpeg"), ("png", "image/png"), ("gif", "image/gif"), ("webp", "image/webp"), ("heic", "image/heic")],
)
async def test_every_image_format_is_accepted_by_content(client, ext, mime):
    # sent as application/octet-stream under a neutral name: only the bytes decide
    r = await post_image(
        client,
        {"platforms": '["pinterest"]'},
        data=sample(ext),
        name="upload.bin",
        content_type="application/octet-stream",
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("data", [MP4, PDF, b"not an image at all", b"\x89PN"], ids=["mp4", "pdf", "text", "short"])
async def test_bytes_that_are_not_an_image_are_415_whatever_the_name(client, data):
    r = await post_image(client, {"platforms": '["instagram"]'}, data=data, name="photo.jpg", content_type="image/jpeg")
    body = assert_error(r, 415, "unsupported_media_type", "file")
    assert "image" in body["message"]


async def test_an_empty_file_is_415(client):
    r = await post_image(client, {"platforms": '["instagram"]'}, data=b"", name="photo.jpg")
    assert_error(r, 415, "unsupported_media_type", "file")


# --- per-platform config: flat keys ------------------------------------------------------------------------------


@pytest.mark.parametrize("flat", sorted(FLAT_KEYS))
async def test_every_flat_key_is_accepted_for_its_platform(client, flat):
    platform, _, good, _, _ = FLAT_KEYS[flat]
    r = await post_image(client, {"platforms": json.dumps([platform]), flat: good})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("flat", sorted(k for k, v in FLAT_KEYS.items() if v[4] is not None))
async def test_every_typed_flat_key_refuses_the_wrong_type(client, flat):
    platform, _, _, _, bad = FLAT_KEYS[flat]
    assert bad is not None
    r = await post_image(client, {"platforms": json.dumps([platform]), flat: bad})
    field = flat + ".0" if bad.startswith("[") else flat
    assert_error(r, 400, "validation_failed", field)


@pytest.mark.parametrize("flat", sorted(FLAT_KEYS))
async def test_every_flat_key_for_a_platform_not_in_platforms_is_400(client, flat):
    platform, _, good, _, _ = FLAT_KEYS[flat]
    other = "linkedin" if platform != "linkedin" else "instagram"
    r = await post_image(client, {"platforms": json.dumps([other]), flat: good})
    body = assert_error(r, 400, "validation_failed", flat)
    assert f"configures {platform}, which is not in platforms" in body["message"]


@pytest.mark.parametrize("flat", sorted(FLAT_KEYS))
async def test_every_flat_key_maps_to_its_nested_key(client, flat):
    # agreeing with the nested key is fine; disagreeing is a 400 naming both: proof they are the same setting
    platform, nested, good, typed, _ = FLAT_KEYS[flat]
    same = await post_image(
        client, {"platforms": json.dumps([platform]), flat: good, platform: json.dumps({nested: typed})}
    )
    assert same.status_code == 200, same.text
    clash = await post_image(
        client,
        {"platforms": json.dumps([platform]), flat: good, platform: json.dumps({nested: different(nested, typed)})},
    )
    body = assert_error(clash, 400, "validation_failed", flat)
    assert f"conflicts with {platform}.{nested}" in body["message"]


async def test_flat_and_nested_keys_merge_when_they_set_different_things(client, clock):
    r = await post_image(
        client,
        {
            "platforms": '["instagram"]',
            "instagram": '{"caption": "From nested"}',
            "instagramAutoPublish": "true",
            "selectedInstagramAccounts": '["ig_1"]',
        },
    )
    assert r.status_code == 200
    clock.advance(1)
    media = (await client.get(f"{XF}/images/{r.json()['data'][0]['id']}", headers=HEADERS)).json()["data"]
    assert media["instagram"]["status"] == "published"  # autoPublish came from the flat key


@pytest.mark.parametrize(
    "form",
    [
        {"selectedInstagramAccounts": '["ig_1", "ig_2"]'},
        {"selectedInstagramAccounts": ["ig_1", "ig_2"]},  # the field repeated
    ],
    ids=["json-array", "repeated-field"],
)
async def test_flat_account_lists_can_be_a_json_array_or_repeated_fields(client, form):
    fields = {"platforms": '["instagram"]', **form}
    assert (await post_image(client, {**fields, "instagram": '{"accounts": ["ig_1", "ig_2"]}'})).status_code == 200
    clash = await post_image(client, {**fields, "instagram": '{"accounts": ["ig_1"]}'})
    assert_error(clash, 400, "validation_failed", "selectedInstagramAccounts")


@pytest.mark.parametrize("post", [post_image, post_video], ids=["image", "video"])
@pytest.mark.parametrize(
    "repeated",
    [
        {"title": ["First", "Second"]},
        {"isDraft": ["true", "false"]},
        {"isDraft": ["false", "false"]},  # even the same value twice: a single-value field comes once
        {"platforms": ['["instagram"]', '["linkedin"]']},
        {"description": ["a", "b"]},
        {"instagramCaption": ["one", "two"]},
    ],
    ids=lambda form: next(iter(form)),
)
async def test_a_single_value_field_sent_twice_is_refused_never_last_wins(client, runtime, post, repeated):
    name = next(iter(repeated))
    fields = {"platforms": '["instagram"]', **repeated}
    r = await post(client, fields)
    body = assert_error(r, 400, "validation_failed", name)
    assert "2 times" in body["message"]
    # nothing stored (but the key's connected accounts, seeded on its first request)
    assert runtime.store.namespaces("xenonflare:") in ([], ["xenonflare:connections"])
    assert (
        await post(client, {k: v[-1] for k, v in fields.items()} | {"platforms": '["instagram"]'})
    ).status_code == 200  # the same form with each field once is accepted


async def test_a_single_plain_value_is_a_one_account_list(client):
    fields = {"platforms": '["pinterest"]', "selectedPinterestAccounts": "pin_1"}
    assert (await post_image(client, {**fields, "pinterest": '{"accounts": ["pin_1"]}'})).status_code == 200


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"selectedTiktokAccounts": '["tt_1", " "]'}, "selectedTiktokAccounts.1"),
        ({"tiktok": '{"accounts": [""]}'}, "tiktok.accounts.0"),
    ],
)
async def test_an_empty_account_id_is_400(client, fields, field):
    r = await post_image(client, {"platforms": '["tiktok"]', **fields})
    assert_error(r, 400, "validation_failed", field)


@pytest.mark.parametrize(
    "name, hint",
    [
        ("instagramCaptoin", "instagramCaption"),
        ("selectedInstagramAccount", "selectedInstagramAccounts"),
        ("youtube", None),
        ("youtubeTitle", None),
        ("caption", None),
    ],
)
async def test_unknown_fields_are_400_naming_the_field(client, name, hint):
    r = await post_image(client, {"platforms": '["instagram"]', name: "x"})
    body = assert_error(r, 400, "validation_failed", name)
    assert "is not a field of this upload" in body["message"]
    if hint:
        assert f"did you mean {hint}?" in body["message"]


# --- per-platform config: nested JSON ----------------------------------------------------------------------------

NESTED_OK = {
    "instagram": {"caption": "c", "autoPublish": True, "accounts": ["ig_1"], "profileId": "p_1"},
    "tiktok": {
        "caption": "c",
        "privacy": "SELF_ONLY",
        "autoPublish": False,
        "accounts": ["tt_1"],
        "disableComment": True,
        "disableDuet": False,
        "disableStitch": True,
        "profileId": "p_1",
    },
    "linkedin": {"comment": "c", "autoPublish": True, "accounts": ["li_1"], "profileId": "p_1"},
    "pinterest": {"title": "t", "description": "d", "autoPublish": True, "accounts": ["pin_1"], "profileId": "p_1"},
}


@pytest.mark.parametrize("platform", sorted(NESTED_OK))
async def test_every_nested_key_is_accepted(client, platform):
    r = await post_image(client, {"platforms": json.dumps([platform]), platform: json.dumps(NESTED_OK[platform])})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "platform, key, bad",
    [
        ("instagram", "caption", 5),
        ("instagram", "autoPublish", "true"),
        ("instagram", "accounts", "ig_1"),
        ("tiktok", "privacy", "PUBLIC"),
        ("tiktok", "disableComment", 1),
        ("tiktok", "disableDuet", None),
        ("tiktok", "disableStitch", "no"),
        ("tiktok", "accounts", [1]),
        ("linkedin", "comment", ["c"]),
        ("pinterest", "title", {"t": 1}),
        ("pinterest", "description", False),
        ("instagram", "profileId", 7),
    ],
)
async def test_nested_keys_are_type_checked(client, platform, key, bad):
    r = await post_image(client, {"platforms": json.dumps([platform]), platform: json.dumps({key: bad})})
    body = assert_error(r, 400, "validation_failed")
    assert body["error"]["field"].startswith(f"{platform}.{key}") and f"{platform}.{key}" in body["message"]


@pytest.mark.parametrize("platform", sorted(NESTED_OK))
async def test_a_nested_config_for_a_platform_not_in_platforms_is_400(client, platform):
    other = "linkedin" if platform != "linkedin" else "instagram"
    r = await post_image(client, {"platforms": json.dumps([other]), platform: json.dumps({"autoPublish": True})})
    assert_error(r, 400, "validation_failed", platform)


@pytest.mark.parametrize(
    "value, words",
    [
        ('{"caption": "unterminated}', "must be valid JSON"),
        ("caption=hello", "must be valid JSON"),
        ('["caption"]', "not of type 'object'"),
        ("null", "not of type 'object'"),
    ],
)
async def test_malformed_nested_json_is_400_naming_the_field(client, value, words):
    body = assert_error(
        await post_image(client, {"platforms": '["instagram"]', "instagram": value}),
        400,
        "validation_failed",
        "instagram",
    )
    assert words in body["message"]


async def test_unknown_nested_keys_are_400_naming_the_key(client):
    r = await post_image(client, {"platforms": '["instagram"]', "instagram": '{"captoin": "x", "autoPublish": true}'})
    body = assert_error(r, 400, "validation_failed", "instagram.captoin")
    assert "did you mean caption?" in body["message"]


async def test_every_problem_is_listed_not_only_the_first(client):
    r = await post_image(
        client,
        {"platforms": '["tiktok"]', "tiktokPrivacy": "PRIVATE", "isDraft": "maybe", "tiktok": '{"disableDuet": "no"}'},
    )
    body = assert_error(r, 400, "validation_failed")
    assert {e["field"] for e in body["error"]["errors"]} == {"tiktokPrivacy", "isDraft", "tiktok.disableDuet"}
    assert "(and 2 more)" in body["message"]


async def test_a_refused_upload_stores_nothing(client, runtime):
    before = set(runtime.blobs.index)
    assert (await post_image(client, {"platforms": '["youtube"]'})).status_code == 400
    assert (await post_image(client, {"platforms": '["instagram"]'}, data=MP4)).status_code == 415
    assert set(runtime.blobs.index) == before
    assert runtime.store.values("xenonflare:media") == []
