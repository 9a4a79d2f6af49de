"""Posts beyond create: list, get, edit, delete and schedule a draft — what the official clients call.

Inferred from @posteverywhere/sdk 1.4.2 and @posteverywhere/mcp 1.7.0 (see specs/posteverywhere/inferred.yaml);
tests/test_official_clients.py drives the MCP server's draft workflow through them.
"""

from __future__ import annotations

import pytest

from tests.helpers import AUTH, OTHER, PE, sample
from tests.test_posteverywhere_flow import complete, upload

BOTH_STORES = True  # every test here runs on the memory store and on Redis (conftest.py)

pytestmark = pytest.mark.anyio
NIL = "00000000-0000-4000-8000-000000000000"


async def create(client, headers=AUTH, **body) -> dict:
    r = await client.post(f"{PE}/posts", headers=headers, json={"content": "hello", **body})
    assert r.status_code == 201, r.text
    return r.json()["data"]


async def test_get_returns_the_post_with_destinations_and_media(client):
    media_id = (await upload(client, "image/png", sample("png"), "p.png"))["media_id"]
    await complete(client, media_id)
    post = await create(
        client,
        account_ids=[3, 4],
        media_ids=[media_id],
        scheduled_for="2030-01-01T09:00:00Z",
        platform_content={"x": {"content": "short"}},
    )
    r = await client.get(f"{PE}/posts/{post['id']}", headers=AUTH)
    assert r.status_code == 200 and "X-RateLimit-Limit" in r.headers
    got = r.json()["data"]
    assert got["id"] == got["post_id"] == post["id"] and got["status"] == got["post_status"] == "scheduled"
    assert [d["account_id"] for d in got["destinations"]] == [3, 4]
    assert {d["status"] for d in got["destinations"]} == {"queued"}
    assert (
        got["media"] == [{"id": media_id, "type": "image", "mime_type": "image/png", "url": got["media"][0]["url"]}]
        and got["media"][0]["url"]
    )
    assert got["platform_content"] == {"x": {"content": "short"}} and got["created_at"] == got["updated_at"]


async def test_list_filters_pages_and_keeps_keys_apart(client, clock):
    ids = []
    for status in ("draft", "scheduled", "draft"):
        body = {"draft": True} if status == "draft" else {"account_ids": [1], "scheduled_for": "2030-01-01T00:00:00Z"}
        ids.append((await create(client, **body))["id"])
        clock.advance(1)
    await create(client, headers=OTHER, draft=True)
    data = (await client.get(f"{PE}/posts", headers=AUTH)).json()["data"]
    assert [p["id"] for p in data["posts"]] == ids[::-1] and data["total"] == 3
    assert (data["limit"], data["offset"]) == (20, 0) and data["pagination"]["has_more"] is False
    drafts = (await client.get(f"{PE}/posts", params={"status": "draft", "limit": 1}, headers=AUTH)).json()["data"]
    assert [p["id"] for p in drafts["posts"]] == [ids[2]] and drafts["total"] == 2
    assert drafts["pagination"]["has_more"] is True
    published = (await client.get(f"{PE}/posts", params={"status": "published"}, headers=AUTH)).json()["data"]
    assert published["posts"] == [] and published["total"] == 0  # the emulator never publishes


async def test_update_edits_fields_and_merges_platform_content(client, clock):
    post = await create(client, draft=True, platform_content={"x": {"content": "a"}})
    clock.advance(5)
    r = await client.patch(
        f"{PE}/posts/{post['id']}",
        headers=AUTH,
        json={
            "content": "edited",
            "account_ids": [9],
            "platform_content": {"pinterest": {"settings": {"boardId": "b"}}},
            "scheduled_at": "2030-02-02T10:00:00Z",
        },
    )
    assert r.status_code == 200
    got = r.json()["data"]
    assert (got["content"], got["account_ids"], got["status"]) == ("edited", [9], "draft")
    assert got["scheduled_for"] == "2030-02-02T10:00:00Z"
    assert got["platform_content"] == {"x": {"content": "a"}, "pinterest": {"settings": {"boardId": "b"}}}
    assert got["updated_at"] > got["created_at"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"media": ["x"]}, "media"),
        ({"account_ids": []}, "account_ids"),
        ({"content": ""}, "content"),
        ({"media_ids": [NIL]}, "media_ids.0"),
        ({"scheduled_for": "tomorrow"}, "scheduled_for"),
    ],
)
async def test_update_refuses_bad_fields_and_changes_nothing(client, body, field):
    post = await create(client, draft=True)
    r = await client.patch(f"{PE}/posts/{post['id']}", headers=AUTH, json=body)
    assert r.status_code == 400
    assert r.json()["error"]["details"]["validation_errors"][0]["field"] == field
    assert (await client.get(f"{PE}/posts/{post['id']}", headers=AUTH)).json()["data"]["content"] == "hello"


async def test_a_publishing_post_cannot_be_edited_or_deleted(client):
    post = await create(client, account_ids=[1])
    assert post["status"] == "publishing"
    for method, body in (("PATCH", {"content": "x"}), ("DELETE", None)):
        r = await client.request(method, f"{PE}/posts/{post['id']}", headers=AUTH, json=body)
        assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    assert (await client.get(f"{PE}/posts/{post['id']}", headers=AUTH)).json()["data"]["content"] == "hello"


async def test_delete_then_everything_is_404(client):
    post = await create(client, draft=True)
    r = await client.delete(f"{PE}/posts/{post['id']}", headers=AUTH)
    assert r.status_code == 200 and r.json()["data"] == {"deleted": True, "id": post["id"]}
    for method, path, body in (
        ("GET", "", None),
        ("DELETE", "", None),
        ("PATCH", "", {"content": "x"}),
        ("POST", "/schedule", {"publish_now": True}),
    ):
        r = await client.request(method, f"{PE}/posts/{post['id']}{path}", headers=AUTH, json=body)
        assert r.status_code == 404, (method, path)


async def test_another_keys_post_is_not_found(client):
    post = await create(client, draft=True)
    for method, path, body in (
        ("GET", "", None),
        ("DELETE", "", None),
        ("PATCH", "", {"content": "x"}),
        ("POST", "/schedule", {"publish_now": True, "account_ids": [1]}),
    ):
        r = await client.request(method, f"{PE}/posts/{post['id']}{path}", headers=OTHER, json=body)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert (await client.get(f"{PE}/posts", headers=OTHER)).json()["data"]["total"] == 0


async def test_schedule_a_draft_for_later_or_now(client):
    later = await create(client, draft=True, account_ids=[5])
    r = await client.post(
        f"{PE}/posts/{later['id']}/schedule", headers=AUTH, json={"scheduled_for": "2030-03-03T12:00:00Z"}
    )
    assert r.status_code == 200
    data = r.json()["data"]
    assert (data["status"], data["scheduled_for"], data["publish_now"]) == ("scheduled", "2030-03-03T12:00:00Z", False)
    assert data["destinations"] == [{"account_id": 5, "platform": None, "status": "queued"}]
    again = await client.post(f"{PE}/posts/{later['id']}/schedule", headers=AUTH, json={"publish_now": True})
    assert again.status_code == 409  # only drafts
    now = await create(client, draft=True)
    r = await client.post(
        f"{PE}/posts/{now['id']}/schedule", headers=AUTH, json={"publish_now": True, "account_ids": [7, 8]}
    )
    data = r.json()["data"]
    assert (data["status"], data["scheduled_for"], len(data["destinations"])) == ("publishing", None, 2)


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "body"),
        ({"publish_now": False}, "body"),
        ({"publish_now": True, "scheduled_for": "2030-01-01T00:00:00Z"}, "body"),
        ({"publish_now": True}, "account_ids"),
        ({"publish_now": "yes"}, "publish_now"),
    ],
)
async def test_schedule_refuses_what_cannot_be_scheduled(client, body, field):
    draft = await create(client, draft=True)
    r = await client.post(f"{PE}/posts/{draft['id']}/schedule", headers=AUTH, json=body)
    assert r.status_code == 400
    assert field in [e["field"] for e in r.json()["error"]["details"]["validation_errors"]]
    if field == "body":
        assert r.json()["error"]["message"] == "body: send scheduled_for, or publish_now: true (one of them, not both)"
    assert (await client.get(f"{PE}/posts/{draft['id']}", headers=AUTH)).json()["data"]["status"] == "draft"


async def test_read_only_key_reads_posts_but_cannot_change_them(client):
    read_only = {"Authorization": "Bearer pe_live_00000000000000000000000000000403"}
    assert (await client.get(f"{PE}/posts", headers=read_only)).status_code == 200
    r = await client.delete(f"{PE}/posts/{NIL}", headers=read_only)
    assert r.status_code == 401 and "scope" in r.json()["error"]["message"]
