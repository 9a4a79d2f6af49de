"""Resumable chunked upload: GET/POST /api/v1/media/chunks, resuming, refusals, limits, finalizing with fileId."""

from __future__ import annotations

import hashlib
import uuid

import anyio
import pytest

from emulator.providers import xenonflare
from tests.test_xenonflare_support import (
    HEADERS,
    JPG,
    MOV,
    OTHER,
    PNG,
    VIDEO,
    XF,
    assert_error,
    chunk_status,
    post_image,
    post_video,
    send_chunk,
    upload_in_chunks,
)

BOTH_STORES = True  # every test here runs on the memory store and on Redis (conftest.py)

pytestmark = pytest.mark.anyio

CHUNK = 1024
# a real PNG padded to three chunks (PNG readers stop at IEND; the bytes after it are just data)
THREE_CHUNKS = PNG + bytes(range(256)) * ((3 * CHUNK - 100 - len(PNG)) // 256 + 1)
THREE_CHUNKS = THREE_CHUNKS[: 3 * CHUNK - 100]
PIECES = [THREE_CHUNKS[i : i + CHUNK] for i in range(0, len(THREE_CHUNKS), CHUNK)]


def new_id() -> str:
    return str(uuid.uuid4())


def truncated_chunk_body(file_id: str, index: int, total: int, data: bytes) -> tuple[bytes, str]:
    """A chunk request whose body stops mid-file, as when the connection drops: no closing boundary."""
    boundary = "xfboundary7MA4YWxkTrZu0gW"
    head = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in (("chunkIndex", index), ("totalChunks", total), ("fileId", file_id))
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="blob"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    return head.encode() + data[: len(data) // 2], f"multipart/form-data; boundary={boundary}"


async def test_status_of_an_unknown_file_id_says_start_from_zero(client):
    file_id = new_id()
    assert await chunk_status(client, file_id) == {"exists": False, "currentSize": 0, "fileId": file_id}


async def test_three_chunks_give_the_documented_answers_and_finalize_as_an_image(client, runtime):
    file_id = new_id()
    r0 = await send_chunk(client, file_id, 0, 3, PIECES[0])
    assert r0.status_code == 200
    assert r0.json() == {"success": True, "data": {"completed": False, "chunkIndex": 0}, "message": "Chunk received"}
    assert list(r0.json()) == ["success", "data", "message"]  # the docs' order
    assert await chunk_status(client, file_id) == {"exists": True, "currentSize": CHUNK, "fileId": file_id}
    r1 = await send_chunk(client, file_id, 1, 3, PIECES[1])
    assert r1.json()["data"] == {"completed": False, "chunkIndex": 1}
    r2 = await send_chunk(client, file_id, 2, 3, PIECES[2])
    assert r2.json() == {"success": True, "data": {"completed": True, "fileId": file_id}, "message": "Upload complete"}
    assert (await chunk_status(client, file_id))["currentSize"] == len(THREE_CHUNKS)

    done = await post_image(client, {"fileId": file_id, "platforms": '["instagram"]'}, data=None)
    assert done.status_code == 200, done.text
    media_id = done.json()["data"][0]["id"]
    assert (await client.get(f"{XF}/images/{media_id}", headers=HEADERS)).status_code == 200
    # the assembled file is the original, byte for byte, and the chunk blobs are gone
    media = runtime.store.get("xenonflare:media", media_id)
    blob = runtime.blobs.get(media.blob_name)
    assert blob.path.read_bytes() == THREE_CHUNKS and blob.md5 == hashlib.md5(THREE_CHUNKS).hexdigest()
    assert [name for name in runtime.blobs.index if "uploadChunk" in name] == []


async def test_an_upload_interrupted_after_chunk_two_resumes_from_current_size_and_finalizes(client):
    file_id = new_id()
    for index in (0, 1):
        assert (await send_chunk(client, file_id, index, 3, PIECES[index])).status_code == 200
    body, content_type = truncated_chunk_body(file_id, 2, 3, PIECES[2])
    cut = await client.post(f"{XF}/chunks", headers={**HEADERS, "Content-Type": content_type}, content=body)
    assert_error(cut, 400, "validation_failed", "body")  # the partial chunk is dropped whole

    status = await chunk_status(client, file_id)
    assert status == {"exists": True, "currentSize": 2 * CHUNK, "fileId": file_id}
    resume_at = status["currentSize"] // CHUNK
    assert resume_at == 2
    last = await send_chunk(client, file_id, resume_at, 3, THREE_CHUNKS[status["currentSize"] :])
    assert last.json()["data"] == {"completed": True, "fileId": file_id}
    done = await post_image(client, {"fileId": file_id, "platforms": '["pinterest"]'}, data=None)
    assert done.status_code == 200 and done.json()["data"][0]["platforms"] == ["pinterest"]


async def test_a_chunk_repeated_with_the_same_bytes_is_answered_again(client):
    # a client that never saw the answer retries: harmless
    file_id = new_id()
    await send_chunk(client, file_id, 0, 3, PIECES[0])
    again = await send_chunk(client, file_id, 0, 3, PIECES[0])
    assert again.json()["data"] == {"completed": False, "chunkIndex": 0}
    assert (await chunk_status(client, file_id))["currentSize"] == CHUNK
    for index in (1, 2):
        await send_chunk(client, file_id, index, 3, PIECES[index])
    last_again = await send_chunk(client, file_id, 2, 3, PIECES[2])
    assert last_again.json()["data"] == {"completed": True, "fileId": file_id}


async def test_a_chunk_repeated_with_different_bytes_is_400_and_keeps_the_first(client):
    file_id = new_id()
    await send_chunk(client, file_id, 0, 2, PIECES[0])
    r = await send_chunk(client, file_id, 0, 2, PIECES[1])
    body = assert_error(r, 400, "validation_failed", "chunkIndex")
    assert "already received with different bytes" in body["message"]
    assert (await chunk_status(client, file_id))["currentSize"] == CHUNK


@pytest.mark.parametrize("sent", [[1], [0, 2]], ids=["first-missing", "middle-missing"])
async def test_a_gap_is_400_naming_the_next_expected_chunk(client, sent):
    file_id = new_id()
    *before, gap = sent
    for index in before:
        await send_chunk(client, file_id, index, 3, PIECES[index])
    body = assert_error(await send_chunk(client, file_id, gap, 3, PIECES[gap]), 400, "validation_failed", "chunkIndex")
    expected = len(before)
    assert f"the next chunk expected is {expected} (currentSize {expected * CHUNK})" in body["message"]
    assert (await chunk_status(client, file_id))["currentSize"] == expected * CHUNK


@pytest.mark.parametrize("index, total", [(3, 3), (5, 1)])
async def test_chunk_index_at_or_past_total_chunks_is_400(client, index, total):
    body = assert_error(await send_chunk(client, new_id(), index, total, b"x"), 400, "validation_failed", "chunkIndex")
    assert f"less than totalChunks ({total})" in body["message"]


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"chunkIndex": "-1", "totalChunks": "3"}, "chunkIndex"),
        ({"chunkIndex": "one", "totalChunks": "3"}, "chunkIndex"),
        ({"chunkIndex": "0.5", "totalChunks": "3"}, "chunkIndex"),
        ({"chunkIndex": "0", "totalChunks": "0"}, "totalChunks"),
        ({"chunkIndex": "0", "totalChunks": ""}, "totalChunks"),
        ({"chunkIndex": "0"}, "totalChunks"),
        ({"totalChunks": "1"}, "chunkIndex"),
    ],
)
async def test_chunk_numbers_are_type_checked(client, fields, field):
    r = await client.post(
        f"{XF}/chunks",
        headers=HEADERS,
        files={"file": ("blob", b"abc", "application/octet-stream")},
        data={"fileId": new_id(), **fields},
    )
    assert_error(r, 400, "validation_failed", field)


async def test_file_id_and_file_are_required(client):
    no_id = await client.post(
        f"{XF}/chunks",
        headers=HEADERS,
        files={"file": ("blob", b"abc", "x/y")},
        data={"chunkIndex": "0", "totalChunks": "1"},
    )
    assert_error(no_id, 400, "validation_failed", "fileId")
    empty_id = await send_chunk(client, "", 0, 1, b"abc")
    assert_error(empty_id, 400, "validation_failed", "fileId")
    no_file = await client.post(
        f"{XF}/chunks",
        headers=HEADERS,
        files={"chunkIndex": (None, "0"), "totalChunks": (None, "1"), "fileId": (None, "f")},
    )
    assert_error(no_file, 400, "validation_failed", "file")
    text_file = await client.post(
        f"{XF}/chunks",
        headers=HEADERS,
        files={"chunkIndex": (None, "0"), "totalChunks": (None, "1"), "fileId": (None, "f"), "file": (None, "bytes?")},
    )
    assert_error(text_file, 400, "validation_failed", "file")


async def test_the_status_check_requires_file_id(client):
    assert_error(await client.get(f"{XF}/chunks", headers=HEADERS), 400, "validation_failed", "fileId")


async def test_an_empty_chunk_is_400(client):
    assert_error(await send_chunk(client, new_id(), 0, 2, b""), 400, "validation_failed", "file")


async def test_total_chunks_cannot_change_mid_upload(client):
    file_id = new_id()
    await send_chunk(client, file_id, 0, 3, PIECES[0])
    body = assert_error(await send_chunk(client, file_id, 1, 2, PIECES[1]), 400, "validation_failed", "totalChunks")
    assert "totalChunks=3" in body["message"]


async def test_a_chunk_past_the_5_gb_total_is_413_and_keeps_what_was_stored(client, monkeypatch):
    assert xenonflare.CHUNKED_MAX == 5 * 1024**3
    monkeypatch.setattr(xenonflare, "CHUNKED_MAX", 2 * CHUNK + 10)  # the same rule, at a testable size
    file_id = new_id()
    for index in (0, 1):
        assert (await send_chunk(client, file_id, index, 3, PIECES[index])).status_code == 200
    body = assert_error(await send_chunk(client, file_id, 2, 3, PIECES[2]), 413, "payload_too_large", "file")
    assert str(2 * CHUNK + 10) in body["message"]
    assert (await chunk_status(client, file_id))["currentSize"] == 2 * CHUNK


async def test_a_chunk_larger_than_the_request_limit_is_413_before_it_is_read(client):
    big = str(xenonflare.CHUNK_MAX + 2 * 1024 * 1024)

    async def body():
        yield b"--b\r\n"

    r = await client.post(
        f"{XF}/chunks",
        content=body(),
        headers={**HEADERS, "Content-Type": "multipart/form-data; boundary=b", "Content-Length": big},
    )
    assert_error(r, 413, "payload_too_large", "file")


async def test_file_ids_are_per_key(client):
    file_id = new_id()
    await send_chunk(client, file_id, 0, 1, JPG)
    assert await chunk_status(client, file_id, headers=OTHER) == {"exists": False, "currentSize": 0, "fileId": file_id}
    r = await post_image(client, {"fileId": file_id, "platforms": '["instagram"]'}, data=None, headers=OTHER)
    assert_error(r, 404, "not_found", "fileId")
    # the other key may use the same fileId for its own upload without touching this one
    assert (await send_chunk(client, file_id, 0, 2, PNG[:100], headers=OTHER)).json()["data"]["completed"] is False
    assert (await chunk_status(client, file_id))["currentSize"] == len(JPG)


# --- finalizing --------------------------------------------------------------------------------------------------


async def test_finalizing_an_unknown_file_id_is_404(client):
    r = await post_image(client, {"fileId": new_id(), "platforms": '["instagram"]'}, data=None)
    body = assert_error(r, 404, "not_found", "fileId")
    assert "POST /api/v1/media/chunks" in body["message"]


async def test_finalizing_an_incomplete_upload_is_400(client):
    file_id = new_id()
    await send_chunk(client, file_id, 0, 3, PIECES[0])
    r = await post_image(client, {"fileId": file_id, "platforms": '["instagram"]'}, data=None)
    body = assert_error(r, 400, "validation_failed", "fileId")
    assert "1 of 3 chunks received" in body["message"]


async def test_a_file_id_finalizes_once(client):
    file_id = new_id()
    await send_chunk(client, file_id, 0, 1, JPG)
    first = await post_image(client, {"fileId": file_id, "platforms": '["instagram"]'}, data=None)
    assert first.status_code == 200
    again = await post_image(client, {"fileId": file_id, "platforms": '["instagram"]'}, data=None)
    body = assert_error(again, 400, "validation_failed", "fileId")
    assert first.json()["data"][0]["id"] in body["message"]


async def test_a_first_chunk_smaller_than_the_file_header_is_still_recognised(client):
    file_id = new_id()
    for index, piece in enumerate([JPG[:2], JPG[2:4], JPG[4:]]):  # the JPEG marker FF D8 FF spans two chunks
        assert (await send_chunk(client, file_id, index, 3, piece)).status_code == 200
    r = await post_image(client, {"fileId": file_id, "platforms": '["linkedin"]'}, data=None)
    assert r.status_code == 200, r.text


async def test_a_chunked_video_is_refused_as_an_image_and_stays_usable_as_a_video(client):
    file_id = new_id()
    await upload_in_chunks(client, file_id, VIDEO, 40)
    as_image = await post_image(client, {"fileId": file_id, "platforms": '["instagram"]'}, data=None)
    body = assert_error(as_image, 415, "unsupported_media_type", "fileId")
    assert "video/mp4" in body["message"]
    as_video = await post_video(
        client, {"fileId": file_id, "platforms": '["youtube"]', "youtube": '{"title": "My video"}'}, data=None
    )
    assert as_video.status_code == 200, as_video.text
    assert as_video.json()["data"][0]["title"] == "Untitled Video"  # title is the media's; youtube.title the video's


async def test_a_chunked_mov_finalizes_as_a_video(client):
    file_id = new_id()
    await upload_in_chunks(client, file_id, MOV, 16)
    assert (await post_video(client, {"fileId": file_id, "platforms": '["tiktok"]'}, data=None)).status_code == 200


async def test_a_chunked_image_is_refused_as_a_video(client):
    file_id = new_id()
    await upload_in_chunks(client, file_id, JPG, 500)
    r = await post_video(client, {"fileId": file_id, "platforms": '["youtube"]'}, data=None)
    assert_error(r, 415, "unsupported_media_type", "fileId")


async def test_a_refused_finalize_leaves_the_chunks_in_place(client):
    file_id = new_id()
    await upload_in_chunks(client, file_id, JPG, 500)
    bad = await post_image(client, {"fileId": file_id, "platforms": '["youtube"]'}, data=None)
    assert_error(bad, 400, "validation_failed", "platforms.0")
    assert (await chunk_status(client, file_id))["currentSize"] == len(JPG)
    good = await post_image(client, {"fileId": file_id, "platforms": '["instagram"]'}, data=None)
    assert good.status_code == 200


async def test_two_concurrent_finalizes_of_one_file_id_make_one_media(client, runtime):
    file_id = new_id()
    await upload_in_chunks(client, file_id, THREE_CHUNKS, CHUNK)
    statuses: list[int] = []

    async def finalize() -> None:
        r = await post_image(client, {"fileId": file_id, "platforms": '["instagram"]'}, data=None)
        statuses.append(r.status_code)

    async with anyio.create_task_group() as group:
        group.start_soon(finalize)
        group.start_soon(finalize)
    assert sorted(statuses) == [200, 400]
    assert len(runtime.store.values("xenonflare:media")) == 1


async def test_chunks_cleared_from_storage_are_never_assembled_short(client, runtime):
    file_id = new_id()
    await upload_in_chunks(client, file_id, THREE_CHUNKS, CHUNK)
    runtime.blobs.clear("xenonflare/uploadChunk")
    r = await post_image(client, {"fileId": file_id, "platforms": '["instagram"]'}, data=None)
    assert_error(r, 404, "not_found", "fileId")


# --- the newer pages' paths, without /api/v1 ------------------------------------------------------------------------

ROOT = "/xenonflare/media"  # https://api.xenonflare.com/media/... as the newer pages write it


async def test_the_prefixless_paths_are_the_same_operations_on_the_same_state(client, runtime):
    file_id = new_id()
    # chunk 0 to the newer pages' path, chunk 1 to /api/v1, chunk 2 to the newer one again: one upload
    r = await client.post(
        f"{ROOT}/chunks",
        headers=HEADERS,
        files={"file": ("blob", PIECES[0], "application/octet-stream")},
        data={"chunkIndex": "0", "totalChunks": "3", "fileId": file_id},
    )
    assert r.status_code == 200 and r.json()["message"] == "Chunk received"
    assert (await send_chunk(client, file_id, 1, 3, PIECES[1])).status_code == 200
    status = await client.get(f"{ROOT}/chunks", params={"fileId": file_id}, headers=HEADERS)
    assert status.json() == {"success": True, "data": {"exists": True, "currentSize": 2 * CHUNK, "fileId": file_id}}
    assert await chunk_status(client, file_id) == status.json()["data"]
    r = await client.post(
        f"{ROOT}/chunks",
        headers=HEADERS,
        files={"file": ("blob", PIECES[2], "application/octet-stream")},
        data={"chunkIndex": "2", "totalChunks": "3", "fileId": file_id},
    )
    assert r.json() == {"success": True, "data": {"completed": True, "fileId": file_id}, "message": "Upload complete"}
    done = await post_image(client, {"fileId": file_id, "platforms": '["instagram"]'}, data=None, path=f"{ROOT}/images")
    assert done.status_code == 200 and done.json()["message"] == "Upload successful"
    media_id = done.json()["data"][0]["id"]
    assert (await client.get(f"{XF}/images/{media_id}", headers=HEADERS)).json()["data"]["id"] == media_id
    # finalized through one family, it is finalized for the other too
    again = await post_image(client, {"fileId": file_id, "platforms": '["instagram"]'}, data=None)
    assert_error(again, 400, "validation_failed", "fileId")
    video = await post_image(
        client, {"platforms": '["youtube"]'}, data=VIDEO, path=f"{ROOT}/videos", name="v.mp4", content_type="video/mp4"
    )
    assert video.status_code == 200 and video.json()["data"][0]["platforms"] == ["youtube"]


async def test_the_prefixless_paths_share_the_key_limits_and_refusals(client):
    assert_error(await client.get(f"{ROOT}/chunks", params={"fileId": "a"}), 401, "api_key_invalid")
    r = await post_image(client, {"platforms": '["instagram"]', "instagramCaptoin": "x"}, path=f"{ROOT}/images")
    assert_error(r, 400, "validation_failed", "instagramCaptoin")
    first = await post_image(client, {"platforms": '["instagram"]'}, path=f"{ROOT}/images")
    second = await post_image(client, {"platforms": '["instagram"]'})
    assert int(first.headers["x-ratelimit-remaining"]) - 1 == int(second.headers["x-ratelimit-remaining"])
    assert (await client.get(f"{ROOT}/images/65cbde4f2a1b3c4d5e6f7a8b", headers=HEADERS)).status_code == 404


async def test_the_served_spec_lists_both_families_and_says_the_prefixless_one_is_inferred(client):
    spec = (await client.get("/xenonflare/openapi.json")).json()
    for path, method, op_id in (
        ("/media/images", "post", "uploadImageUnprefixed"),
        ("/media/videos", "post", "uploadVideoUnprefixed"),
        ("/media/chunks", "get", "getChunkStatusUnprefixed"),
        ("/media/chunks", "post", "uploadChunkUnprefixed"),
    ):
        operation = spec["paths"][path][method]
        assert operation["operationId"] == op_id
        assert "docs.xenonflare.com/docs/api-v1/media" in operation["x-emulator-inferred"]
        assert spec["paths"]["/api/v1" + path][method]["operationId"] == op_id.removesuffix("Unprefixed")
    assert "x-emulator-path-aliases" not in spec
