"""Step 3 (complete), posts and upload-from-url: whole flows for an image, a video and a PDF, and their refusals."""

from __future__ import annotations

import pytest

from emulator import Settings
from tests.helpers import AUTH, MP4, OTHER, PDF, PE, sample

BOTH_STORES = True  # every test here runs on the memory store and on Redis (conftest.py)
pytestmark = pytest.mark.anyio


async def upload(client, content_type: str, payload: bytes, filename: str = "f", headers=AUTH) -> dict:
    r = await client.post(
        f"{PE}/media/upload",
        headers=headers,
        json={"filename": filename, "content_type": content_type, "size": len(payload)},
    )
    data = r.json()["data"]
    method = data["upload_method"]
    if method["method"] == "POST":
        step2 = await client.post(data["upload_url"], files={method["field_name"]: (filename, payload, content_type)})
    else:
        step2 = await client.put(data["upload_url"], content=payload, headers=method["headers"])
    assert step2.status_code == 200, step2.text
    return data


async def complete(client, media_id: str, headers=AUTH):
    return await client.post(f"{PE}/media/{media_id}/complete", headers=headers)


@pytest.mark.parametrize(
    "ext, content_type",
    [("jpg", "image/jpeg"), ("png", "image/png"), ("gif", "image/gif"), ("webp", "image/webp"), ("heic", "image/heic")],
)
async def test_image_flow_reports_real_dimensions(client, ext, content_type):
    image = sample(ext)
    data = await upload(client, content_type, image, f"photo.{ext}")
    r = await complete(client, data["media_id"])
    assert r.status_code == 200
    out = r.json()["data"]
    assert out["media_id"] == data["media_id"] and out["media_ids"] == [data["media_id"]]
    assert out["status"] == "ready" and out["type"] == "image"
    assert (out["width"], out["height"]) == ((64, 64) if ext == "heic" else (64, 48))
    assert out["size"] == len(image) and out["content_type"] == content_type
    assert out["created_at"] == "2026-09-21T14:13:20.000Z"
    assert out["next_step"] == (
        f'Media is ready. Attach it to a post by passing "media_ids": ["{data["media_id"]}"] to POST /v1/posts.'
    )


async def test_video_flow_then_post(client):
    data = await upload(client, "video/mp4", MP4, "launch.mp4")
    r = await complete(client, data["media_id"])
    assert r.status_code == 200
    assert r.json()["data"]["type"] == "video" and r.json()["data"]["status"] == "ready"
    post = await client.post(
        f"{PE}/posts",
        headers=AUTH,
        json={"content": "Launch day", "account_ids": [1, 2], "media_ids": r.json()["data"]["media_ids"]},
    )
    assert post.status_code == 201
    assert post.json()["data"]["media_ids"] == [data["media_id"]]
    assert post.json()["data"]["status"] == "publishing"


async def test_pdf_flow(client):
    data = await upload(client, "application/pdf", PDF, "deck.pdf")
    r = await complete(client, data["media_id"])
    assert r.status_code == 200
    assert r.json()["data"]["type"] == "document" and r.json()["data"]["status"] == "ready"
    assert r.json()["data"]["width"] is None


async def test_complete_before_upload_is_not_ready(client):
    r = await client.post(
        f"{PE}/media/upload", headers=AUTH, json={"filename": "a.png", "content_type": "image/png", "size": 10}
    )
    media_id = r.json()["data"]["media_id"]
    r = await complete(client, media_id)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["message"] == "Upload not ready or file verification failed"
    assert error["code"] == "upload_not_ready"
    assert "step 2" in error["details"]["reason"]


async def test_complete_checks_the_declared_size(client):
    r = await client.post(
        f"{PE}/media/upload",
        headers=AUTH,
        json={"filename": "d.pdf", "content_type": "application/pdf", "size": len(PDF) + 1},
    )
    data = r.json()["data"]
    await client.put(data["upload_url"], content=PDF, headers={"Content-Type": "application/pdf"})
    r = await complete(client, data["media_id"])
    assert r.status_code == 400
    assert f"{len(PDF)} bytes but size was declared as {len(PDF) + 1}" in r.json()["error"]["details"]["reason"]


async def test_complete_checks_the_declared_type_by_content(client):
    data = await upload(client, "video/mp4", PDF, "fake.mp4")
    r = await complete(client, data["media_id"])
    assert r.status_code == 400
    assert "application/pdf" in r.json()["error"]["details"]["reason"]


async def test_complete_twice_reports_the_same_media(client):
    data = await upload(client, "application/pdf", PDF)
    first = await complete(client, data["media_id"])
    second = await complete(client, data["media_id"])
    assert first.json()["data"] == second.json()["data"]


async def test_unknown_and_foreign_media_are_404(client):
    r = await complete(client, "00000000-0000-4000-8000-000000000000")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    data = await upload(client, "application/pdf", PDF)
    r = await complete(client, data["media_id"], headers=OTHER)
    assert r.status_code == 404
    assert r.json()["error"]["message"] == f"Media {data['media_id']} not found."


async def test_media_id_must_be_a_uuid(client):
    r = await complete(client, "not-a-uuid")
    assert r.status_code == 400
    assert r.json()["error"]["details"]["validation_errors"][0]["field"] == "media_id"


@pytest.mark.parametrize("settings", [Settings(strict=True, video_processing_seconds=30)])
async def test_video_processes_on_the_virtual_clock(client, clock, settings):
    data = await upload(client, "video/mp4", MP4)
    r = await complete(client, data["media_id"])
    assert r.json()["data"]["status"] == "processing"
    assert 'once its status is "ready"' in r.json()["data"]["next_step"]
    post = await client.post(
        f"{PE}/posts", headers=AUTH, json={"content": "x", "account_ids": [1], "media_ids": [data["media_id"]]}
    )
    assert post.status_code == 400
    assert "is processing, not ready" in post.json()["error"]["message"]
    clock.advance(30)
    assert (await complete(client, data["media_id"])).json()["data"]["status"] == "ready"
    post = await client.post(
        f"{PE}/posts", headers=AUTH, json={"content": "x", "account_ids": [1], "media_ids": [data["media_id"]]}
    )
    assert post.status_code == 201


# --- posts ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["media", "media_id", "mediaId", "attachments", "url"])
async def test_posts_refuse_media_field_names_with_a_hint(client, field):
    r = await client.post(f"{PE}/posts", headers=AUTH, json={"content": "x", "account_ids": [1], field: ["abc"]})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "invalid_field_name"
    assert "did you mean media_ids?" in error["message"]
    assert error["details"]["hint"] == "did you mean media_ids?"
    assert error["details"]["field"] == field


async def test_posts_need_media_of_the_same_key_that_is_ready(client):
    mine = await upload(client, "application/pdf", PDF)
    await complete(client, mine["media_id"])
    theirs = await upload(client, "application/pdf", PDF, headers=OTHER)
    await complete(client, theirs["media_id"], headers=OTHER)
    pending = (
        await client.post(
            f"{PE}/media/upload", headers=AUTH, json={"filename": "p.png", "content_type": "image/png", "size": 3}
        )
    ).json()["data"]
    r = await client.post(
        f"{PE}/posts",
        headers=AUTH,
        json={
            "content": "x",
            "account_ids": [1],
            "media_ids": [mine["media_id"], theirs["media_id"], pending["media_id"]],
        },
    )
    assert r.status_code == 400
    problems = r.json()["error"]["details"]["validation_errors"]
    assert problems == [
        {"field": "media_ids.1", "message": f"media {theirs['media_id']} not found"},
        {"field": "media_ids.2", "message": f"media {pending['media_id']} is uploading, not ready"},
    ]


async def test_post_scheduled_and_draft_states(client):
    scheduled = await client.post(
        f"{PE}/posts",
        headers=AUTH,
        json={"content": "later", "account_ids": [3], "scheduled_at": "2026-12-01T09:00:00Z", "timezone": "UTC"},
    )
    assert scheduled.status_code == 201
    assert scheduled.json()["data"]["status"] == "scheduled"
    assert scheduled.json()["data"]["scheduled_for"] == "2026-12-01T09:00:00Z"
    draft = await client.post(f"{PE}/posts", headers=AUTH, json={"content": "d", "account_ids": [3], "draft": True})
    assert draft.json()["data"]["status"] == "draft"
    clash = await client.post(
        f"{PE}/posts",
        headers=AUTH,
        json={
            "content": "x",
            "account_ids": [3],
            "scheduled_at": "2026-12-01T09:00:00Z",
            "scheduled_for": "2026-12-02T09:00:00Z",
        },
    )
    assert clash.status_code == 400


@pytest.mark.parametrize(
    "body, field",
    [
        ({"account_ids": [1]}, "content"),
        ({"content": "x"}, "account_ids"),
        ({"content": "x", "account_ids": []}, "account_ids"),
        ({"content": "x", "account_ids": ["one"]}, "account_ids.0"),
        ({"content": "x", "account_ids": [1], "media_ids": ["nope"]}, "media_ids.0"),
        ({"content": "x", "account_ids": [1], "scheduled_for": "tomorrow"}, "scheduled_for"),
    ],
)
async def test_post_validation_names_the_field(client, body, field):
    r = await client.post(f"{PE}/posts", headers=AUTH, json=body)
    assert r.status_code == 400
    assert r.json()["error"]["details"]["validation_errors"][0]["field"] == field


# --- upload-from-url -----------------------------------------------------------------------------------------------


async def test_upload_from_url_returns_ready_media(client):
    r = await client.post(
        f"{PE}/media/upload-from-url", headers=AUTH, json={"url": "https://images.example.com/shots/product.png"}
    )
    assert r.status_code == 201
    data = r.json()["data"]
    assert data["media_status"] == "ready" and data["type"] == "image"
    assert data["filename"] == "product.png" and data["content_type"] == "image/png"
    assert data["source_url"] == "https://images.example.com/shots/product.png"
    assert data["media_ids"] == [data["media_id"]]
    fetched = await client.get(data["url"])
    assert fetched.status_code == 200 and fetched.content == sample("png") and data["size"] == len(sample("png"))
    post = await client.post(
        f"{PE}/posts", headers=AUTH, json={"content": "x", "account_ids": [1], "media_ids": data["media_ids"]}
    )
    assert post.status_code == 201


async def test_upload_from_url_keeps_a_given_filename(client):
    r = await client.post(
        f"{PE}/media/upload-from-url",
        headers=AUTH,
        json={"url": "https://cdn.example.org/a.webp", "filename": "hero.webp"},
    )
    assert r.json()["data"]["filename"] == "hero.webp"


@pytest.mark.parametrize(
    "url",
    [
        "http://images.example.com/a.png",
        "ftp://images.example.com/a.png",
        "https://localhost/a.png",
        "https://127.0.0.1/a.png",
        "https://10.0.0.8/a.png",
        "https://192.168.1.2/a.png",
        "https://172.16.0.1/a.png",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/a.png",
        "https://[fe80::1]/a.png",
        "https://intranet/a.png",
        "https://printer.local/a.png",
        "https://0.0.0.0/a.png",
        "not a url",
        "https://[::1/a.png",
        " HTTPS://[",
        "https:///a.png",
    ],
)
async def test_upload_from_url_refuses_non_public_urls(client, url):
    r = await client.post(f"{PE}/media/upload-from-url", headers=AUTH, json={"url": url})
    assert r.status_code == 400
    assert r.json()["error"]["details"]["validation_errors"][0]["field"] == "url"


async def test_upload_from_url_says_https_in_words_not_as_the_spec_pattern(client):
    r = await client.post(f"{PE}/media/upload-from-url", headers=AUTH, json={"url": "http://images.example.com/a.png"})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "url: must be an https:// URL"
    assert r.json()["error"]["details"]["validation_errors"] == [{"field": "url", "message": "must be an https:// URL"}]


@pytest.mark.parametrize("url", ["https://videos.example.com/clip.MOV", "https://videos.example.com/clip.webm"])
async def test_upload_from_url_refuses_video_with_415(client, url):
    r = await client.post(f"{PE}/media/upload-from-url", headers=AUTH, json={"url": url})
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    "sent, canonical",
    [
        ("IMAGE/JPEG", "image/jpeg"),
        ("image/jpeg; charset=binary", "image/jpeg"),
        ("Image/Png ;q=1", "image/png"),
        ('VIDEO/MP4; codecs="avc1.42E01E"', "video/mp4"),
        ("application/PDF", "application/pdf"),
    ],
)
async def test_step1_content_type_is_case_insensitive_and_takes_parameters(client, sent, canonical):
    payload = {"image/jpeg": sample("jpg"), "image/png": sample("png"), "video/mp4": MP4, "application/pdf": PDF}[
        canonical
    ]
    r = await client.post(
        f"{PE}/media/upload", headers=AUTH, json={"filename": "f", "content_type": sent, "size": len(payload)}
    )
    assert r.status_code == 201, r.text
    data = r.json()["data"]
    if data["upload_method"]["method"] == "PUT":  # the answer names the canonical form, and the URL is signed for it
        assert data["upload_method"] == {
            "method": "PUT",
            "content_type": canonical,
            "headers": {"Content-Type": canonical},
        }
        assert (
            await client.put(data["upload_url"], content=payload, headers={"Content-Type": canonical})
        ).status_code == 200
    else:
        assert (await client.post(data["upload_url"], files={"file": ("f", payload, canonical)})).status_code == 200
    done = await complete(client, data["media_id"])
    assert done.status_code == 200 and done.json()["data"]["content_type"] == canonical
    listed = (await client.get(f"{PE}/media/{data['media_id']}", headers=AUTH)).json()["data"]
    assert listed["mime_type"] == canonical


@pytest.mark.parametrize("sent", ["image/jpegx", "image/jpeg/", "text/jpeg; image/jpeg", "", ";image/jpeg"])
async def test_step1_other_types_are_still_refused(client, sent):
    r = await client.post(f"{PE}/media/upload", headers=AUTH, json={"filename": "f", "content_type": sent, "size": 1})
    assert r.status_code == 400 and r.json()["error"]["code"] == "validation_error"


def heif(major: bytes, *compatible: bytes) -> bytes:
    """The bundled HEIC's boxes after a ftyp box with these brands: a small file of each ISO/IEC 23008-12 kind."""
    original = sample("heic")
    rest = original[int.from_bytes(original[:4], "big") :]  # everything after the original ftyp box
    box = b"ftyp" + major + b"\0\0\0\0" + b"".join(compatible)
    return (len(box) + 4).to_bytes(4, "big") + box + rest


@pytest.mark.parametrize(
    "major, compatible, declared",
    [
        (b"heic", (b"mif1", b"heic"), "image/heic"),
        (b"heix", (b"mif1", b"heix"), "image/heic"),  # 10-bit HEIC
        (b"heim", (b"mif1", b"heim"), "image/heic"),  # multi-layer
        (b"heis", (b"mif1", b"heis"), "image/heic"),  # scalable
        (b"hevc", (b"msf1", b"hevc"), "image/heic"),  # HEVC image sequence
        (b"hevx", (b"msf1", b"hevx"), "image/heic"),
        (b"mif1", (b"mif1", b"miaf"), "image/heif"),  # generic HEIF / MIAF
        (b"msf1", (b"msf1",), "image/heif"),  # generic image sequence
        (b"miaf", (b"mif1", b"miaf"), "image/heif"),
        (b"mif1", (b"mif1", b"heic"), "image/heif"),  # the major brand is generic, a compatible one says HEVC
    ],
)
async def test_every_heif_brand_is_an_image(client, major, compatible, declared):
    payload = heif(major, *compatible)
    data = await upload(client, declared, payload, "photo.heic")
    r = await complete(client, data["media_id"])
    assert r.status_code == 200, r.text
    assert r.json()["data"]["status"] == "ready" and r.json()["data"]["type"] == "image"


@pytest.mark.parametrize(
    "major, compatible",
    [
        (b"avif", (b"mif1", b"avif")),
        (b"mif1", (b"mif1", b"avif")),
        (b"isom", (b"isom", b"mp42")),
        (b"abcd", (b"efgh",)),
    ],
)
async def test_isobmff_files_that_are_not_heif_are_refused_as_images(client, major, compatible):
    payload = heif(major, *compatible)
    data = (
        await client.post(
            f"{PE}/media/upload",
            headers=AUTH,
            json={"filename": "x.heic", "content_type": "image/heic", "size": len(payload)},
        )
    ).json()["data"]
    r = await client.post(data["upload_url"], files={"file": ("x.heic", payload, "image/heic")})
    assert r.status_code == 415 and r.json()["success"] is False
