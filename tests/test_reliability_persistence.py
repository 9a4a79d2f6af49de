"""With ``--data-dir``, what was completed survives a restart, and what was in progress can be finished after it.

Each test runs an app on a data directory, closes it (as ``serve`` does at shutdown), opens a new app on the same
directory and checks, through HTTP, that every provider answers exactly as before: same bytes, same ETags, same
records, uploads in progress still completable with the URLs issued before the restart. Also: the directory is
tidied at start, records naming anything but the emulator's own types are refused, one process at a time.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import httpx
import pytest

from emulator import Settings, create_app
from tests.test_reliability_support import (
    AP,
    PE,
    SF,
    XF,
    Stored,
    ap_asset,
    ap_clip,
    auth,
    index_consistent,
    md5,
    others_refused,
    payload,
    pe_image,
    pe_video,
    running,
    sf_asset,
    verify,
    xf_chunked_video,
    xf_image,
)

pytestmark = pytest.mark.anyio


async def _store_everything(c: httpx.AsyncClient) -> list[Stored]:
    return [
        await pe_video(c, 0, payload("mp4", 40_000, 1)),
        await pe_image(c, 1, payload("png", 30_000, 2)),
        await ap_clip(c, 0, payload("mp4", 50_000, 3)),
        await ap_asset(c, 1, payload("png", 20_000, 4)),
        await sf_asset(c, 0, payload("png", 25_000, 5)),
        await xf_image(c, 1, payload("jpg", 15_000, 6)),
        await xf_chunked_video(c, 0, payload("mp4", 45_000, 7), chunk=16_000, file_id="survivor"),
    ]


async def _views(c: httpx.AsyncClient, stored: list[Stored]) -> dict[str, object]:
    """What each record looks like through the API, to compare before and after a restart."""
    views: dict[str, object] = {}
    for item in stored:
        h = auth(item.provider, item.tenant)
        if item.provider == "posteverywhere":
            r = await c.post(f"{PE}/media/{item.id}/complete", headers=h)  # idempotent: reports the state
            views[item.id] = {k: v for k, v in r.json()["data"].items()}
        elif item.provider == "autoposting" and item.kind == "clip":
            views[item.id] = (await c.get(f"{AP}/clips/{item.id}", headers=h)).json()
        elif item.provider == "segmentflow":
            views[item.id] = (await c.get(f"{SF}/assets/{item.id}", headers=h)).json()
        elif item.provider == "xenonflare":
            kind = "images" if item.kind == "image" else "videos"
            views[item.id] = (await c.get(f"{XF}/{kind}/{item.id}", headers=h)).json()
    return views


async def test_completed_uploads_of_every_provider_survive_a_restart(tmp_path):
    async with running(tmp_path) as (c, runtime):
        stored = await _store_everything(c)
        post = await c.post(
            f"{PE}/posts",
            headers=auth("posteverywhere", 0),
            json={"content": "kept", "account_ids": [7], "media_ids": [stored[0].id]},
        )
        assert post.status_code == 201
        tagged = await c.patch(f"{SF}/assets/{stored[4].id}", headers=auth("segmentflow", 0), json={"tags": ["kept"]})
        assert tagged.status_code == 200
        before = await _views(c, stored)
        posts_before = runtime.store.values("posteverywhere:posts")

    async with running(tmp_path) as (c, runtime):
        for item in stored:
            await verify(c, item, runtime)
            await others_refused(c, item, other=9)
        assert await _views(c, stored) == before
        assert [p.id for p in runtime.store.values("posteverywhere:posts")] == [p.id for p in posts_before]
        assert (await c.get(f"{SF}/assets/{stored[4].id}", headers=auth("segmentflow", 0))).json()["asset"]["tags"] == [
            "kept"
        ]
        index_consistent(runtime)
        # the restarted emulator goes on where it stopped: a new asset lists before the old one
        newer = await sf_asset(c, 0, payload("png", 10_000, 8))
        listed = (await c.get(f"{SF}/assets", headers=auth("segmentflow", 0))).json()["assets"]
        assert [a["id"] for a in listed] == [newer.id, stored[4].id]


async def test_a_moved_data_directory_still_serves_its_bytes(tmp_path):
    async with running(tmp_path / "first") as (c, _):
        stored = [await pe_video(c, 0, payload("mp4", 20_000, 1)), await sf_asset(c, 2, payload("png", 9_000, 2))]
    shutil.move(tmp_path / "first", tmp_path / "second")  # e.g. a volume mounted elsewhere
    async with running(tmp_path / "second") as (c, runtime):
        for item in stored:
            await verify(c, item, runtime)


async def test_uploads_in_progress_can_be_finished_after_a_restart(tmp_path):
    video, image, clip_bytes = payload("mp4", 30_000, 1), payload("png", 12_000, 2), payload("mp4", 6 * 1024 * 1024, 3)
    first_part, second_part = clip_bytes[: 5 * 1024 * 1024], clip_bytes[5 * 1024 * 1024 :]
    chunks = [payload("mp4", 20_000, 4), b"tail" * 2_000]
    async with running(tmp_path) as (c, _):
        pe = (
            await c.post(
                f"{PE}/media/upload",
                headers=auth("posteverywhere", 0),
                json={"filename": "v.mp4", "content_type": "video/mp4", "size": len(video)},
            )
        ).json()["data"]
        sf = (
            await c.post(
                f"{SF}/assets/upload-url",
                headers=auth("segmentflow", 0),
                json={"filename": "a.png", "contentType": "image/png", "size": len(image)},
            )
        ).json()
        clip = (
            await c.post(
                f"{AP}/clips/upload/init",
                headers=auth("autoposting", 0),
                json={
                    "brandId": "b",
                    "title": "t",
                    "fileName": "c.mp4",
                    "fileSize": len(clip_bytes),
                    "mimeType": "video/mp4",
                },
            )
        ).json()["data"]
        ids = {"clipId": clip["clipId"], "uploadId": clip["uploadId"], "key": clip["key"]}
        urls = (
            await c.post(
                f"{AP}/clips/upload/presign", headers=auth("autoposting", 0), json={**ids, "partNumbers": [1, 2]}
            )
        ).json()["data"]["presignedUrls"]
        assert (await c.put(urls[0]["url"], content=first_part)).status_code == 200
        r = await c.post(
            f"{XF}/chunks",
            headers=auth("xenonflare", 0),
            data={"chunkIndex": "0", "totalChunks": "2", "fileId": "resumed"},
            files={"file": ("blob", chunks[0], "application/octet-stream")},
        )
        assert r.status_code == 200

    async with running(tmp_path) as (c, _):
        # URLs signed before the restart still verify (the secret is kept in the data directory)
        put = await c.put(pe["upload_url"], content=video, headers={"Content-Type": "video/mp4"})
        assert put.status_code == 200, put.text
        done = await c.post(f"{PE}/media/{pe['media_id']}/complete", headers=auth("posteverywhere", 0))
        assert done.json()["data"]["size"] == len(video)
        assert (await c.put(sf["uploadUrl"], content=image, headers={"Content-Type": "image/png"})).status_code == 200
        asset = await c.post(
            f"{SF}/assets",
            headers=auth("segmentflow", 0),
            json={"filename": "a.png", "s3Key": sf["key"], "contentType": "image/png", "size": len(image)},
        )
        assert asset.status_code == 200 and asset.json()["asset"]["width"] == 64
        # the part uploaded before the restart is still there, with its ETag
        second = await c.put(urls[1]["url"], content=second_part)
        parts = [{"partNumber": 1, "eTag": md5(first_part)}, {"partNumber": 2, "eTag": second.headers["etag"]}]
        done = await c.post(f"{AP}/clips/upload/complete", headers=auth("autoposting", 0), json={**ids, "parts": parts})
        assert done.status_code == 200, done.text
        got = (await c.get(f"{AP}/clips/{clip['clipId']}", headers=auth("autoposting", 0))).json()["data"]
        assert (await c.get(got["url"])).content == clip_bytes
        # the chunked upload resumes at currentSize
        status = await c.get(f"{XF}/chunks", headers=auth("xenonflare", 0), params={"fileId": "resumed"})
        assert status.json()["data"]["currentSize"] == len(chunks[0])
        r = await c.post(
            f"{XF}/chunks",
            headers=auth("xenonflare", 0),
            data={"chunkIndex": "1", "totalChunks": "2", "fileId": "resumed"},
            files={"file": ("blob", chunks[1], "application/octet-stream")},
        )
        assert r.json()["data"]["completed"] is True
        video_id = await c.post(
            f"{XF}/videos",
            headers=auth("xenonflare", 0),
            files=[("platforms", (None, '["youtube"]')), ("fileId", (None, "resumed"))],
        )
        assert video_id.status_code == 200, video_id.text


async def test_a_seeded_emulator_never_reissues_ids_after_a_restart(tmp_path):
    body = {"filename": "a.png", "content_type": "image/png", "size": 9}
    seen: list[str] = []
    for _ in range(3):
        async with running(tmp_path, seed=7) as (c, _):
            for _ in range(3):
                r = await c.post(f"{PE}/media/upload", headers=auth("posteverywhere", 0), json=body)
                seen.append(r.json()["data"]["media_id"])
    assert len(set(seen)) == len(seen)  # nothing stored is overwritten by a new upload with a repeated id
    async with running(tmp_path / "fresh", seed=7) as (c, _):  # the first run of a directory is as seeded
        r = await c.post(f"{PE}/media/upload", headers=auth("posteverywhere", 0), json=body)
        assert r.json()["data"]["media_id"] == seen[0]


async def test_start_removes_partial_uploads_and_bytes_without_a_record(tmp_path):
    async with running(tmp_path) as (c, runtime):
        kept = await pe_video(c, 0, payload("mp4", 20_000, 1))
        blob_path = next(iter(runtime.blobs.index.values())).path
    (tmp_path / ".tmp" / ".part-abandoned").write_bytes(b"half an upload")
    orphan = tmp_path / "ff" / ("f" * 64)
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"bytes whose record was never written")
    async with running(tmp_path) as (c, runtime):
        assert list((tmp_path / ".tmp").iterdir()) == []
        assert not orphan.exists()
        assert [b.path for b in runtime.blobs.index.values()] == [blob_path]
        await verify(c, kept, runtime)


async def test_a_truncated_blob_is_not_served_as_complete(tmp_path):
    async with running(tmp_path) as (c, runtime):
        kept = await sf_asset(c, 0, payload("png", 20_000, 1))
        blob = next(iter(runtime.blobs.index.values()))
    blob.path.write_bytes(blob.path.read_bytes()[:100])  # damaged outside the emulator
    async with running(tmp_path) as (c, runtime):
        assert runtime.blobs.index == {}  # its size no longer matches its record: not indexed as stored
        assert blob.path.exists() is False
        assert kept.read_url is not None
        r = await c.get(kept.read_url)
        assert r.status_code == 404 and "<Code>NoSuchKey</Code>" in r.text


@pytest.mark.parametrize(
    "tag",
    [
        "os:system",
        "builtins:eval",
        "subprocess:Popen",
        "emulator.__main__:main",
        "emulator.core.storage:os.system",
        "emulator.core.errors:EmulatorError.__init__",
    ],
)
async def test_records_naming_anything_but_the_emulators_own_types_are_refused(tmp_path, tag):
    async with running(tmp_path) as (c, _):
        await pe_image(c, 0, payload("png", 5_000, 1))
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:
        db.execute(
            "INSERT INTO records VALUES ('posteverywhere:media', 'evil', ?)",
            (json.dumps({"__type__": tag, "command": "touch pwned"}),),
        )
    with pytest.raises(ValueError, match="cannot be read back"):
        create_app(Settings(data_dir=tmp_path))
    assert not (Path.cwd() / "pwned").exists()


async def test_a_data_directory_serves_one_emulator_at_a_time(tmp_path):
    first = create_app(Settings(data_dir=tmp_path))
    try:
        with pytest.raises(ValueError, match="in use by another upload-emulator process"):
            create_app(Settings(data_dir=tmp_path))
    finally:
        first.state.runtime.close()
    create_app(Settings(data_dir=tmp_path)).state.runtime.close()  # free again once the first one closed


async def test_reset_forgets_persisted_state_too(tmp_path):
    async with running(tmp_path) as (c, _):
        stored = await pe_video(c, 0, payload("mp4", 20_000, 1))
        assert (await c.post("/_emulator/reset", json={})).status_code == 200
    async with running(tmp_path) as (c, runtime):
        assert runtime.store.namespaces() == [] and runtime.blobs.index == {}
        assert stored.read_url is not None
        assert (await c.get(stored.read_url)).status_code == 404


async def test_client_data_that_looks_like_a_stored_type_comes_back_as_plain_data(tmp_path):
    # a post's platform_content is free JSON: keys shaped like the store's own type tags must stay data
    sneaky = {
        "__type__": "emulator.core.storage:Blob",
        "__path__": "/etc/passwd",
        "__items__": [[1, 2]],
        "nested": {"__tuple__": [1], "text": "\ud800 lone surrogate", "n": [1, 2.5, None, True]},
    }
    async with running(tmp_path) as (c, runtime):
        body = json.dumps({"content": "\udfff", "account_ids": [1], "platform_content": sneaky})  # ASCII, escaped
        r = await c.post(
            f"{PE}/posts", content=body, headers={**auth("posteverywhere", 0), "Content-Type": "application/json"}
        )
        assert r.status_code == 201, r.text
        post_id = r.json()["data"]["id"]
    async with running(tmp_path) as (c, runtime):
        post = runtime.store.get("posteverywhere:posts", post_id)
        assert post is not None
        assert post.platform_content == sneaky and post.content == "\udfff"


async def test_files_of_other_shapes_in_the_data_directory_are_left_alone(tmp_path):
    # --data-dir may point at a directory that holds other things: only the store's own files are ever removed
    mine = {
        tmp_path / "db" / "schema": b"keep",
        tmp_path / "ab" / "notes": b"keep",
        tmp_path / ".tmp" / "user-file": b"keep",
        tmp_path / "ab" / ("a" * 64): b"keep, not in its folder",
    }
    for path, data in mine.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    async with running(tmp_path) as (c, runtime):
        await pe_video(c, 0, payload("mp4", 5_000, 1))
    async with running(tmp_path) as (c, runtime):
        assert len(runtime.blobs.index) == 1
    assert {path: path.read_bytes() for path in mine} == mine
