"""The media library the official clients read (GET/DELETE /v1/media…) and the undocumented forms they send.

Inferred from @posteverywhere/sdk 1.4.2 and @posteverywhere/mcp 1.7.0 (see specs/posteverywhere/inferred.yaml);
tests/test_official_clients.py runs the clients themselves.
"""

from __future__ import annotations

import asyncio

import pytest

from emulator import Settings
from tests.helpers import AUTH, MP4, OTHER, PDF, PE, sample
from tests.test_posteverywhere_flow import complete, upload

pytestmark = pytest.mark.anyio
STRICT_DOCS = [Settings(strict=True, seed=1234, strict_docs=True)]


async def sdk_presign(client, filename: str, content_type: str, size: int, headers=AUTH):
    """Step 1 as the official SDK's media.upload() sends it: the size as file_size."""
    return await client.post(
        f"{PE}/media/upload",
        headers=headers,
        json={"filename": filename, "content_type": content_type, "file_size": size},
    )


def journal_notes(runtime, operation: str) -> list[str]:
    return [n for e in runtime.journal.query(operation=operation) for n in e.notes]


async def test_list_is_newest_first_filtered_paged_and_per_key(client, clock):
    ids = []
    for name, content_type, payload in (
        ("a.png", "image/png", sample("png")),
        ("b.pdf", "application/pdf", PDF),
        ("c.jpg", "image/jpeg", sample("jpg")),
    ):
        ids.append((await upload(client, content_type, payload, name))["media_id"])
        clock.advance(1)
    await upload(client, "image/png", sample("png"), "other.png", headers=OTHER)
    r = await client.get(f"{PE}/media", headers=AUTH)
    assert r.status_code == 200 and "X-RateLimit-Remaining" in r.headers
    data = r.json()["data"]
    assert [m["id"] for m in data["media"]] == ids[::-1] and data["total"] == 3
    assert data["pagination"] == {"limit": 20, "offset": 0, "total": 3, "has_more": False}
    r = await client.get(f"{PE}/media", params={"type": "image", "limit": 1, "offset": 1}, headers=AUTH)
    data = r.json()["data"]
    assert [m["id"] for m in data["media"]] == [ids[0]] and data["total"] == 2
    assert data["pagination"]["has_more"] is False
    r = await client.get(f"{PE}/media", params={"type": "image", "limit": 1}, headers=AUTH)
    assert r.json()["data"]["pagination"]["has_more"] is True


@pytest.mark.parametrize(
    "query, field",
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"offset": -1}, "offset"),
        ({"type": "audio"}, "type"),
        ({"limit": "ten"}, "limit"),
    ],
)
async def test_list_refuses_bad_parameters_by_name(client, query, field):
    r = await client.get(f"{PE}/media", params=query, headers=AUTH)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "validation_error" and error["message"].startswith(f"{field}:")


async def test_get_follows_the_media_through_its_states(client, clock, runtime):
    runtime.settings.video_processing_seconds = 30
    r = await client.post(
        f"{PE}/media/upload", headers=AUTH, json={"filename": "clip.mp4", "content_type": "video/mp4", "size": len(MP4)}
    )
    media_id = r.json()["data"]["media_id"]
    item = (await client.get(f"{PE}/media/{media_id}", headers=AUTH)).json()["data"]
    assert (item["status"], item["upload_status"], item["url"], item["file_size"]) == (
        "uploading",
        "uploading",
        None,
        len(MP4),
    )
    await client.put(r.json()["data"]["upload_url"], content=MP4, headers={"Content-Type": "video/mp4"})
    await complete(client, media_id)
    item = (await client.get(f"{PE}/media/{media_id}", headers=AUTH)).json()["data"]
    assert (item["status"], item["media_status"], item["upload_status"]) == ("processing", "processing", "uploading")
    clock.advance(30)
    item = (await client.get(f"{PE}/media/{media_id}", headers=AUTH)).json()["data"]
    assert (item["status"], item["upload_status"], item["type"], item["media_type"]) == (
        "ready",
        "ready",
        "video",
        "video",
    )
    assert item["dimensions"] is None and item["orientation"] is None and item["thumbnail_url"] is None
    stored = await client.get(item["url"])
    assert stored.status_code == 200 and stored.content == MP4


async def test_get_reports_image_geometry(client):
    media_id = (await upload(client, "image/png", sample("png"), "wide.png"))["media_id"]
    await complete(client, media_id)
    item = (await client.get(f"{PE}/media/{media_id}", headers=AUTH)).json()["data"]
    assert item["dimensions"] == {"width": 64, "height": 48} and item["aspect_ratio"] == 1.3333
    assert item["orientation"] == "landscape" and item["filename"] == item["original_name"] == "wide.png"


async def test_another_keys_media_is_not_found_for_get_and_delete(client):
    media_id = (await upload(client, "image/png", sample("png"), "mine.png"))["media_id"]
    for method in ("GET", "DELETE"):
        r = await client.request(method, f"{PE}/media/{media_id}", headers=OTHER)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert (await client.get(f"{PE}/media/{media_id}", headers=AUTH)).status_code == 200


async def test_delete_removes_record_bytes_and_post_attachment(client, runtime):
    media_id = (await upload(client, "image/png", sample("png"), "gone.png"))["media_id"]
    await complete(client, media_id)
    url = (await client.get(f"{PE}/media/{media_id}", headers=AUTH)).json()["data"]["url"]
    post = (
        await client.post(
            f"{PE}/posts", headers=AUTH, json={"content": "x", "account_ids": [1], "media_ids": [media_id]}
        )
    ).json()["data"]
    r = await client.delete(f"{PE}/media/{media_id}", headers=AUTH)
    assert r.status_code == 200 and r.json()["data"] == {"deleted": True, "id": media_id}
    assert (await client.get(f"{PE}/media/{media_id}", headers=AUTH)).status_code == 404
    assert (await client.delete(f"{PE}/media/{media_id}", headers=AUTH)).status_code == 404
    assert (await complete(client, media_id)).status_code == 404
    assert (await client.get(url)).status_code == 404
    assert runtime.store.get("posteverywhere:posts", post["id"]).media_ids == []


async def test_read_only_key_may_read_but_not_delete(client):
    read_only = {"Authorization": "Bearer pe_live_00000000000000000000000000000403"}
    assert (await client.get(f"{PE}/media", headers=read_only)).status_code == 200
    r = await client.delete(f"{PE}/media/00000000-0000-4000-8000-000000000000", headers=read_only)
    assert r.status_code == 401 and "scope" in r.json()["error"]["message"]


async def test_create_post_answers_what_both_official_clients_read(client):
    r = await client.post(f"{PE}/posts", headers=AUTH, json={"content": "hello", "account_ids": [1, 2, 3]})
    data = r.json()["data"]
    assert r.status_code == 201 and data["post_id"] == data["id"] == data["post_group_id"]
    assert data["destinations"] == data["accounts_count"] == 3 and data["message"]


# --- undocumented forms of the official SDK ------------------------------------------------------------------------


async def test_sdk_file_size_is_accepted_and_journaled(client, runtime):
    r = await sdk_presign(client, "a.png", "image/png", 10)
    assert r.status_code == 201
    assert runtime.store.get("posteverywhere:media", r.json()["data"]["media_id"]).declared_size == 10
    [note] = journal_notes(runtime, "uploadMedia")
    assert note.startswith("undocumented form accepted: file_size instead of size")
    assert "@posteverywhere/sdk 1.4.2" in note


async def test_documented_size_wins_and_leaves_no_note(client, runtime):
    r = await client.post(
        f"{PE}/media/upload",
        headers=AUTH,
        json={"filename": "a.png", "content_type": "image/png", "size": 10, "file_size": 99},
    )
    assert r.status_code == 201
    assert runtime.store.get("posteverywhere:media", r.json()["data"]["media_id"]).declared_size == 10
    assert journal_notes(runtime, "uploadMedia") == []


async def test_file_size_is_checked_like_size(client):
    r = await sdk_presign(client, "a.png", "image/png", 30_000_000)
    assert r.status_code == 400
    assert r.json()["error"]["details"]["validation_errors"] == [
        {"field": "size", "message": "30000000 is greater than the maximum of 20971520"}
    ]


async def test_sdk_put_of_an_image_is_stored_and_journaled(client, runtime):
    png = sample("png")
    data = (await sdk_presign(client, "p.png", "image/png", len(png))).json()["data"]
    r = await client.put(data["upload_url"], content=png, headers={"Content-Type": "image/png"})
    assert r.status_code == 200 and r.json()["success"] is True
    assert (await complete(client, data["media_id"])).json()["data"]["status"] == "ready"
    [note] = journal_notes(runtime, "storeImageRaw")
    assert "PUT of the raw image" in note


async def test_sdk_put_of_an_image_is_still_checked(client, runtime):
    png = sample("png")
    data = (await sdk_presign(client, "p.png", "image/png", len(png))).json()["data"]
    r = await client.put(data["upload_url"], content=png, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 403 and r.json()["errors"][0]["code"] == 10000  # SignatureDoesNotMatch
    r = await client.put(data["upload_url"], content=PDF, headers={"Content-Type": "image/png"})
    assert r.status_code == 415 and r.json()["success"] is False
    r = await client.put(
        data["upload_url"].replace("X-Emulator-Signature=", "X-Emulator-Signature=0"),
        content=png,
        headers={"Content-Type": "image/png"},
    )
    assert r.status_code == 403
    assert runtime.store.get("posteverywhere:media", data["media_id"]).blob is None  # nothing kept
    # the PDF's PUT was accepted as a form and refused for its bytes: its note stays; refused signatures leave none
    assert len(journal_notes(runtime, "storeImageRaw")) == 1


@pytest.mark.parametrize("settings", STRICT_DOCS)
async def test_strict_docs_refuses_file_size(client, runtime):
    r = await sdk_presign(client, "a.png", "image/png", 10)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "validation_error" and "--strict-docs" in error["message"]
    assert error["details"]["validation_errors"] == [
        {"field": "size", "message": "is required; file_size is not a documented field"}
    ]
    assert runtime.store.values("posteverywhere:media") == []


@pytest.mark.parametrize("settings", STRICT_DOCS)
async def test_strict_docs_refuses_a_put_to_an_image_url(client, runtime):
    png = sample("png")
    data = (
        await client.post(
            f"{PE}/media/upload",
            headers=AUTH,
            json={"filename": "p.png", "content_type": "image/png", "size": len(png)},
        )
    ).json()["data"]
    r = await client.put(data["upload_url"], content=png, headers={"Content-Type": "image/png"})
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
    assert r.json()["success"] is False and "--strict-docs" in r.json()["errors"][0]["message"]
    assert runtime.store.get("posteverywhere:media", data["media_id"]).blob is None
    # the documented POST still works on the same URL
    r = await client.post(data["upload_url"], files={"file": ("p.png", png, "image/png")})
    assert r.status_code == 200


# --- MP4 by URL, as the official MCP server's upload_media_from_url describes it ----------------------------------


async def test_an_mp4_url_is_imported_and_journaled(client, runtime):
    r = await client.post(
        f"{PE}/media/upload-from-url", headers=AUTH, json={"url": "https://videos.example.com/launch/teaser.mp4"}
    )
    assert r.status_code == 201
    data = r.json()["data"]
    assert (data["type"], data["content_type"], data["media_status"], data["filename"]) == (
        "video",
        "video/mp4",
        "ready",
        "teaser.mp4",
    )
    stored = await client.get(data["url"])
    assert stored.status_code == 200 and stored.headers["content-type"] == "video/mp4"
    assert stored.content[4:8] == b"ftyp" and len(stored.content) == data["size"]
    [note] = journal_notes(runtime, "uploadMediaFromUrl")
    assert "MP4 URL" in note and "@posteverywhere/mcp 1.7.0" in note
    post = await client.post(
        f"{PE}/posts", headers=AUTH, json={"content": "teaser", "account_ids": [1], "media_ids": data["media_ids"]}
    )
    assert post.status_code == 201


@pytest.mark.parametrize("settings", [Settings(strict=True, seed=5, video_processing_seconds=20)])
async def test_an_mp4_url_imports_in_the_background_on_the_virtual_clock(client, clock):
    r = await client.post(
        f"{PE}/media/upload-from-url",
        headers=AUTH,
        json={"url": "https://videos.example.com/clip.mp4", "filename": "clip.mp4"},
    )
    data = r.json()["data"]
    assert data["media_status"] == "uploading" and "Poll GET /v1/media/" in data["next_step"]
    item = (await client.get(f"{PE}/media/{data['media_id']}", headers=AUTH)).json()["data"]
    assert item["media_status"] == "processing" and item["upload_status"] == "uploading"
    refused = await client.post(
        f"{PE}/posts", headers=AUTH, json={"content": "x", "account_ids": [1], "media_ids": [data["media_id"]]}
    )
    assert refused.status_code == 400 and "not ready" in refused.json()["error"]["message"]
    clock.advance(20)
    item = (await client.get(f"{PE}/media/{data['media_id']}", headers=AUTH)).json()["data"]
    assert item["media_status"] == "ready"


@pytest.mark.parametrize("settings", STRICT_DOCS)
async def test_strict_docs_answers_an_mp4_url_as_the_page_does(client, runtime):
    r = await client.post(
        f"{PE}/media/upload-from-url", headers=AUTH, json={"url": "https://videos.example.com/clip.mp4"}
    )
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    assert runtime.store.values("posteverywhere:media") == []


# --- races and order -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["object PUT", "image PUT", "image POST"])
async def test_media_deleted_while_its_bytes_stream_in_stays_deleted(client, runtime, how):
    payload, content_type = (MP4, "video/mp4") if how == "object PUT" else (sample("png"), "image/png")
    data = (
        await client.post(
            f"{PE}/media/upload",
            headers=AUTH,
            json={"filename": "race", "content_type": content_type, "size": len(payload)},
        )
    ).json()["data"]
    gate = asyncio.Event()
    boundary = "raceboundary"
    if how == "image POST":
        raw = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="r.png"\r\n'
                f"Content-Type: image/png\r\n\r\n"
            ).encode()
            + payload
            + f"\r\n--{boundary}--\r\n".encode()
        )
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    else:
        raw, headers = payload, {"Content-Type": content_type}

    async def body():
        yield raw[:16]
        await gate.wait()
        yield raw[16:]

    method = "POST" if how == "image POST" else "PUT"
    upload = asyncio.create_task(client.request(method, data["upload_url"], content=body(), headers=headers))
    await asyncio.sleep(0.1)
    deleted = await client.delete(f"{PE}/media/{data['media_id']}", headers=AUTH)
    assert deleted.status_code == 200
    gate.set()
    late = await upload
    assert late.status_code == 404
    assert (await client.get(f"{PE}/media/{data['media_id']}", headers=AUTH)).status_code == 404
    assert (await client.get(f"{PE}/media", headers=AUTH)).json()["data"]["total"] == 0
    assert not [
        p
        for p in runtime.blobs.root.rglob("*")
        if p.is_file() and ".tmp" not in p.parts and not p.name.endswith(".json")
    ]  # the late bytes were not kept


async def test_list_is_newest_first_even_on_a_frozen_clock(client):
    names = [f"{i}.png" for i in range(5)]
    for name in names:
        await client.post(
            f"{PE}/media/upload", headers=AUTH, json={"filename": name, "content_type": "image/png", "size": 10}
        )
    listed = (await client.get(f"{PE}/media", headers=AUTH)).json()["data"]["media"]
    assert [m["filename"] for m in listed] == names[::-1]


async def test_a_note_stays_when_the_mapped_request_is_refused_later(client, runtime):
    r = await sdk_presign(client, "big.png", "image/png", 30_000_000)
    assert r.status_code == 400
    [note] = journal_notes(runtime, "uploadMedia")
    assert "file_size instead of size" in note  # why the 400 names size, which the client never sent


async def test_a_raw_image_put_without_length_gets_411(client):
    data = (
        await client.post(
            f"{PE}/media/upload", headers=AUTH, json={"filename": "p.png", "content_type": "image/png", "size": 10}
        )
    ).json()["data"]

    async def body():
        yield sample("png")

    r = await client.put(
        data["upload_url"], content=body(), headers={"Content-Type": "image/png", "Transfer-Encoding": "identity"}
    )
    assert r.status_code == 411 and r.json()["success"] is False
