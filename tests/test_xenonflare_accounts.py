"""Connected accounts and profiles: GET /api/v1/channels, GET /profiles (and /api/v1/profiles), their ids in the
uploads' per-platform configs, and the control plane that sets them per key."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.test_xenonflare_support import (
    HEADERS,
    KEY,
    OTHER,
    OTHER_KEY,
    assert_error,
    post_image,
    post_video,
)

BOTH_STORES = True  # every test here runs on the memory store and on Redis (conftest.py)

pytestmark = pytest.mark.anyio

API = "/xenonflare/api/v1"
CONNECTIONS = "/_emulator/xenonflare/connections"
PLATFORMS = ["youtube", "instagram", "tiktok", "linkedin", "pinterest"]
PROFILE_FIELDS = [
    "youtubeChannelId",
    "instagramAccountId",
    "tiktokAccountId",
    "linkedinAccountId",
    "pinterestAccountId",
]


async def channels(client, headers=HEADERS) -> dict:
    r = await client.get(f"{API}/channels", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["success"] is True
    return r.json()["data"]


async def test_a_new_key_has_one_account_per_platform_in_the_documented_shapes(client):
    data = await channels(client)
    assert list(data) == PLATFORMS
    assert all(len(data[p]) == 1 for p in PLATFORMS)
    [youtube] = data["youtube"]
    assert set(youtube) == {"id", "channelId", "title", "thumbnail"}  # the page's YouTube item
    assert re.fullmatch(r"UC[A-Za-z0-9_-]{22}", youtube["channelId"])
    [instagram] = data["instagram"]
    assert set(instagram) == {"id", "accountId", "username", "thumbnail"}  # the page's Instagram item
    assert re.fullmatch(r"17841\d{12}", instagram["accountId"])
    assert data["linkedin"][0]["accountId"].startswith("urn:li:organization:")
    assert all(re.fullmatch(r"[0-9a-f]{24}", data[p][0]["id"]) for p in PLATFORMS)
    assert data == await channels(client)  # stable
    other = await channels(client, OTHER)
    assert other["instagram"][0]["id"] != instagram["id"]  # each key its own accounts


@pytest.mark.parametrize("path", [f"{API}/profiles", "/xenonflare/profiles"])
async def test_profiles_hold_the_connected_accounts_on_both_paths(client, path):
    data = await channels(client)
    r = await client.get(path, headers=HEADERS)
    assert r.status_code == 200 and r.json()["success"] is True
    [profile] = r.json()["data"]
    assert list(profile) == ["id", "name", *PROFILE_FIELDS, "isDefault", "createdAt"]
    assert profile["isDefault"] is True and profile["name"] == "Default"
    assert [profile[f] for f in PROFILE_FIELDS] == [data[p][0]["id"] for p in PLATFORMS]
    assert r.headers["x-ratelimit-limit"] == "1000"  # a read
    assert_error(await client.get(path), 401, "api_key_invalid")


async def test_uploads_accept_the_listed_ids_by_id_or_platform_id_and_refuse_others(client, clock):
    data = await channels(client)
    ig, pin, yt = data["instagram"][0], data["pinterest"][0], data["youtube"][0]
    r = await post_image(
        client,
        {
            "platforms": '["instagram", "pinterest"]',
            "instagram": json.dumps({"autoPublish": True, "accounts": [ig["id"]]}),
            "selectedPinterestAccounts": json.dumps([pin["accountId"]]),
            "pinterestAutoPublish": "true",
        },
    )
    assert r.status_code == 200, r.text
    assert (
        await post_video(client, {"platforms": '["youtube"]', "selectedYoutubeChannels": json.dumps([yt["channelId"]])})
    ).status_code == 200
    for fields, field in (
        ({"instagram": '{"accounts": ["YOUR_INSTAGRAM_BUSINESS_ID"]}'}, "instagram.accounts.0"),
        ({"selectedInstagramAccounts": json.dumps([ig["id"], "17841499999999999"])}, "selectedInstagramAccounts.1"),
        ({"instagram": json.dumps({"accounts": [pin["id"]]})}, "instagram.accounts.0"),
    ):
        body = assert_error(
            await post_image(client, {"platforms": '["instagram"]', **fields}), 400, "validation_failed", field
        )
        assert ig["id"] in body["message"]  # the refusal lists the ids that would be accepted
    other_key_id = (await channels(client, OTHER))["instagram"][0]["id"]
    r = await post_image(client, {"platforms": '["instagram"]', "selectedInstagramAccounts": other_key_id})
    assert_error(r, 400, "validation_failed", "selectedInstagramAccounts.0")  # another key's account
    magic = await post_image(
        client,
        {
            "platforms": '["instagram"]',
            "instagramAutoPublish": "true",
            "selectedInstagramAccounts": "fail_expired_token",
        },
    )
    assert magic.status_code == 200  # the magic failing id needs no connection


async def test_the_control_plane_sets_accounts_profiles_and_plan_per_key(client, clock):
    before = await channels(client)
    r = await client.put(
        CONNECTIONS,
        json={
            "key": KEY,
            "channels": {
                "instagram": [
                    {"platformId": "17841400000000001", "name": "brand.one"},
                    {
                        "id": "acc_two",
                        "platformId": "17841400000000002",
                        "name": "brand.two",
                        "thumbnail": "https://example.com/t.jpg",
                    },
                ]
            },
        },
    )
    assert r.status_code == 200, r.text
    state = r.json()
    assert KEY not in r.text and state["key_id"].startswith("key_") and state["plan"] == "pro"
    after = await channels(client)
    assert after["youtube"] == before["youtube"]  # platforms not named stay
    assert [a["username"] for a in after["instagram"]] == ["brand.one", "brand.two"]
    assert after["instagram"][1] == {
        "id": "acc_two",
        "accountId": "17841400000000002",
        "username": "brand.two",
        "thumbnail": "https://example.com/t.jpg",
    }
    assert state["channels"] == after
    old = await post_image(
        client, {"platforms": '["instagram"]', "selectedInstagramAccounts": before["instagram"][0]["id"]}
    )
    assert_error(old, 400, "validation_failed", "selectedInstagramAccounts.0")
    new = await post_image(client, {"platforms": '["instagram"]', "selectedInstagramAccounts": '["acc_two"]'})
    assert new.status_code == 200
    profile = (await client.get(f"{API}/profiles", headers=HEADERS)).json()["data"][0]
    assert profile["instagramAccountId"] is None  # its account is gone; the others stay
    assert profile["youtubeChannelId"] == before["youtube"][0]["id"]
    assert (await channels(client, OTHER))["instagram"][0]["username"] == "emulator.studio"  # another key untouched

    r = await client.put(
        CONNECTIONS,
        json={
            "key": KEY,
            "profiles": [
                {"id": "brand", "name": "Brand", "instagramAccountId": "17841400000000002", "isDefault": True},
                {"name": "Empty"},
            ],
        },
    )
    assert r.status_code == 200, r.text
    profiles = (await client.get("/xenonflare/profiles", headers=HEADERS)).json()["data"]
    assert [(p["id"], p["name"], p["instagramAccountId"], p["isDefault"]) for p in profiles][0] == (
        "brand",
        "Brand",
        "acc_two",
        True,
    )
    assert profiles[1]["isDefault"] is False and profiles[1]["instagramAccountId"] is None
    clock.advance(1)
    ok = await post_image(
        client, {"platforms": '["instagram"]', "instagram": '{"profileId": "brand", "autoPublish": true}'}
    )
    assert ok.status_code == 200, ok.text
    for config, message in (
        ('{"profileId": "nope"}', "is not a profile of this API key"),
        (json.dumps({"profileId": profiles[1]["id"]}), "has no Instagram account"),
    ):
        body = assert_error(
            await post_image(client, {"platforms": '["instagram"]', "instagram": config}),
            400,
            "validation_failed",
            "instagram.profileId",
        )
        assert message in body["message"]

    r = await client.put(CONNECTIONS, json={"key": KEY, "plan": "free"})
    assert r.status_code == 200 and r.json()["plan"] == "free"
    for path in (f"{API}/profiles", "/xenonflare/profiles"):
        body = assert_error(await client.get(path, headers=HEADERS), 403, "plan_required")
        assert "Plus and Pro plans" in body["message"]
    refused = await post_image(client, {"platforms": '["instagram"]', "instagram": '{"profileId": "brand"}'})
    assert_error(refused, 403, "plan_required", "instagram.profileId")
    assert (await client.put(CONNECTIONS, json={"key": KEY, "plan": "plus"})).status_code == 200
    assert (await client.get(f"{API}/profiles", headers=HEADERS)).status_code == 200


@pytest.mark.parametrize(
    "body, field",
    [
        ({"key": "xf_short"}, "key"),
        ({"key": KEY, "plan": "enterprise"}, "plan"),
        ({"key": KEY, "channels": {"myspace": []}}, "channels"),
        ({"key": KEY, "channels": {"tiktok": [{"platformId": "1"}, {"platformId": "1"}]}}, "channels.tiktok.1"),
        ({"key": KEY, "channels": {"tiktok": [{"platformId": str(n)} for n in range(51)]}}, "channels.tiktok"),
        ({"key": KEY, "profiles": [{"name": "P", "tiktokAccountId": "not-connected"}]}, "profiles.0.tiktokAccountId"),
        ({"key": KEY, "profiles": [{"name": "A", "isDefault": True}, {"name": "B", "isDefault": True}]}, "profiles"),
        ({"key": KEY, "profiles": [{"id": "x", "name": "A"}, {"id": "x", "name": "B"}]}, "profiles.1.id"),
    ],
)
async def test_the_control_plane_refuses_what_it_cannot_keep(client, body, field):
    r = await client.put(CONNECTIONS, json=body)
    assert r.status_code == 400, r.text
    assert field in [e["field"] for e in r.json()["details"]["validation_errors"]] or field in r.json()["message"]
    assert KEY not in r.text
    assert (await channels(client))["tiktok"][0]["username"] == "emulator.studio"  # nothing kept


async def test_the_connections_endpoint_is_in_the_control_plane_spec_and_loopback_only(app, client):
    spec = (await client.get("/_emulator/openapi.json")).json()
    assert spec["paths"]["/xenonflare/connections"]["put"]["operationId"] == "setXenonflareConnections"
    outsider = httpx.ASGITransport(app=app, client=("203.0.113.5", 1234))
    async with httpx.AsyncClient(transport=outsider, base_url="http://127.0.0.1:8080") as remote:
        r = await remote.put(CONNECTIONS, json={"key": KEY, "plan": "free"})
    assert r.status_code == 403
    assert (await client.get(f"{API}/profiles", headers=HEADERS)).status_code == 200


async def test_a_reset_brings_the_seeded_accounts_back(client):
    seeded = await channels(client)
    await client.put(CONNECTIONS, json={"key": KEY, "channels": {"youtube": []}, "plan": "free"})
    assert (await channels(client))["youtube"] == []
    assert (await client.post("/_emulator/reset", json={"provider": "xenonflare"})).status_code == 200
    assert await channels(client) == seeded
    assert (await client.get(f"{API}/profiles", headers={"X-API-Key": OTHER_KEY})).status_code == 200


async def test_the_state_view_shows_a_keys_connections(client):
    await client.put(CONNECTIONS, json={"key": KEY, "plan": "plus"})
    [row] = (await client.get("/_emulator/state/xenonflare")).json()["tables"]["connections"]
    assert row["plan"] == "plus" and set(row["channels"]) == set(PLATFORMS) and KEY not in str(row)
