"""Autoposting.ai clips: every bad input to init, presign and complete gets a precise 400/404/409 in the clips
envelope, and a refused complete leaves the upload completable (S3 CompleteMultipartUpload rules)."""

from __future__ import annotations

import pytest

from tests.test_autoposting_flow import (
    AP,
    AUTH,
    MIB,
    clips_error,
    complete,
    get_clip,
    ids,
    init,
    presign,
    put_part,
    sdk_parts,
    split,
    upload,
    video,
)

BOTH_STORES = True  # every test here runs on the memory store and on Redis (conftest.py)

pytestmark = pytest.mark.anyio

INIT = f"{AP}/clips/upload/init"
PRESIGN = f"{AP}/clips/upload/presign"
COMPLETE = f"{AP}/clips/upload/complete"
ABORT = f"{AP}/clips/upload/abort"
GOOD_INIT = {"brandId": "brand_01", "title": "t", "fileName": "a.mp4", "fileSize": 10, "mimeType": "video/mp4"}


# --- init --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        ({"brandId": None}, "brandId: is required"),
        ({"fileSize": None}, "fileSize: is required"),
        ({"fileSize": 0}, "fileSize: 0 is less than the minimum of 1"),
        ({"fileSize": "12"}, "fileSize: '12' is not of type 'integer'"),
        ({"fileSize": 5497558138881}, "fileSize: 5497558138881 is greater than the maximum of 5497558138880"),
        ({"title": ""}, "title: '' should be non-empty"),
        (
            {"mimeType": "image/png"},
            "mimeType: 'image/png' is not one of ['video/mp4', 'video/quicktime', "
            "'video/webm', 'video/x-matroska', 'video/x-msvideo', 'video/x-m4v']",
        ),
    ],
)
async def test_init_validation_names_the_field(client, change, message):
    body = {k: v for k, v in {**GOOD_INIT, **change}.items() if v is not None}
    r = await client.post(INIT, headers=AUTH, json=body)
    assert clips_error(r, 400, "validation_error") == message
    assert r.headers["x-ratelimit-limit"] == "100"


async def test_init_magic_brand_is_404(client):
    r = await client.post(INIT, headers=AUTH, json={**GOOD_INIT, "brandId": "brand_not_found"})
    assert clips_error(r, 404, "not_found") == "Brand brand_not_found not found or not owned by your org."


async def test_body_must_be_json(client):
    r = await client.post(INIT, headers={**AUTH, "Content-Type": "text/plain"}, content=b'{"a":1}')
    assert clips_error(r, 415, "unsupported_media_type") == "Content-Type must be application/json, got text/plain."
    r = await client.post(INIT, headers={**AUTH, "Content-Type": "application/json"}, content=b"{nope")
    assert clips_error(r, 400, "validation_error") == "Request body is not valid JSON at line 1 column 2."
    r = await client.post(INIT, headers={**AUTH, "Content-Type": "application/json"}, content=b"")
    assert clips_error(r, 400, "validation_error") == "Request body is required (a JSON object)."


async def test_json_body_over_1_mib_is_413(client):
    r = await client.post(
        INIT, headers={**AUTH, "Content-Type": "application/json"}, content=b'{"title":"' + b"a" * (2 * MIB) + b'"}'
    )
    assert (
        clips_error(r, 413, "payload_too_large")
        == f"Request body of {2 * MIB + 12} bytes exceeds the 1048576-byte limit."
    )


# --- presign -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "numbers, message",
    [
        ([0], "partNumbers.0: 0 is less than the minimum of 1"),
        ([10001], "partNumbers.0: 10001 is greater than the maximum of 10000"),
        ([1, 1], "partNumbers: [1, 1] has non-unique elements"),
        ([], "partNumbers: [] should be non-empty"),
        (["1"], "partNumbers.0: '1' is not of type 'integer'"),
    ],
)
async def test_presign_part_numbers_are_unique_and_1_to_10000(client, numbers, message):
    clip = await init(client, 10)
    r = await client.post(PRESIGN, headers=AUTH, json={**ids(clip), "partNumbers": numbers})
    assert clips_error(r, 400, "validation_error") == message


async def test_presign_accepts_part_10000(client):
    clip = await init(client, 10)
    urls = await presign(client, clip, [10000, 1])
    assert sorted(urls) == [1, 10000] and urls[10000].split("?")[0].endswith("/10000")


async def test_presign_needs_every_field(client):
    clip = await init(client, 10)
    body = {**ids(clip), "partNumbers": [1]}
    for name in ("clipId", "uploadId", "key", "partNumbers"):
        r = await client.post(PRESIGN, headers=AUTH, json={k: v for k, v in body.items() if k != name})
        assert clips_error(r, 400, "validation_error") == f"{name}: is required"


# --- wrong clipId / uploadId / key combinations (presign, complete, abort alike) ---------------------------------


@pytest.mark.parametrize(
    "path, extra",
    [(PRESIGN, {"partNumbers": [1]}), (COMPLETE, {"parts": [{"partNumber": 1, "etag": "x"}]}), (ABORT, {})],
)
async def test_wrong_combinations_are_named(client, path, extra):
    first, second = await init(client, 10), await init(client, 10)
    r = await client.post(path, headers=AUTH, json={**ids(first), "uploadId": second["uploadId"], **extra})
    assert clips_error(r, 404, "not_found") == (
        f"Upload {second['uploadId']} is not the multipart upload of clip {first['clipId']}: send the uploadId that "
        "POST /clips/upload/init returned for this clip."
    )
    r = await client.post(path, headers=AUTH, json={**ids(first), "key": second["key"], **extra})
    assert clips_error(r, 400, "validation_error") == (
        f"key: {second['key']!r} is not the object key of clip {first['clipId']}; expected {first['key']!r}."
    )
    r = await client.post(path, headers=AUTH, json={**ids(first), "clipId": "clip_nope", **extra})
    assert clips_error(r, 404, "not_found") == "Clip clip_nope not found or not owned by your org."
    # none of it touched the upload
    assert (await get_clip(client, first["clipId"])).json()["data"]["status"] == "uploading"


# --- complete: S3's rules, and the upload stays completable after each refusal -----------------------------------


@pytest.fixture
async def three_parts(client):
    """A 12 MiB clip uploaded in parts of 5, 5 and 2 MiB, not yet completed: (clip, etags, source)."""
    source = video(12 * MIB)
    clip, etags = await upload(client, source, [5 * MIB, 5 * MIB, 2 * MIB])
    return clip, etags, source


async def finish_and_check(client, clip, etags, source):
    """The refusals before changed nothing: the right complete succeeds and stores the source."""
    r = await complete(client, clip, sdk_parts(etags))
    assert r.status_code == 200, r.text
    url = (await get_clip(client, clip["clipId"])).json()["data"]["url"]
    assert (await client.get(url)).content == source


async def test_complete_with_no_parts(client, three_parts):
    clip, etags, source = three_parts
    assert clips_error(await complete(client, clip, []), 400, "validation_error") == "parts: [] should be non-empty"
    await finish_and_check(client, clip, etags, source)


async def test_complete_with_a_part_never_uploaded(client, three_parts):
    clip, etags, source = three_parts
    parts = sdk_parts(etags) + [{"partNumber": 4, "etag": etags[2]}]
    message = clips_error(await complete(client, clip, parts), 400, "validation_error")
    assert message == "parts.3: part 4 was not uploaded (uploaded parts: 1, 2, 3)."
    await finish_and_check(client, clip, etags, source)


async def test_complete_with_the_etag_of_another_part(client, three_parts):
    clip, etags, source = three_parts
    parts = sdk_parts([etags[0], etags[0], etags[2]])
    message = clips_error(await complete(client, clip, parts), 400, "validation_error")
    assert message == (
        f"parts.1: the ETag of part 2 does not match the uploaded part (sent {etags[0]}, stored {etags[1]})."
    )
    await finish_and_check(client, clip, etags, source)


@pytest.mark.parametrize(
    "order, message",
    [
        ([2, 1, 3], "parts.1: part 1 is listed after part 2; list each part once, in ascending partNumber order."),
        ([1, 1, 2, 3], "parts.1: part 1 is listed twice; list each part once, in ascending partNumber order."),
    ],
)
async def test_complete_parts_ascending_and_unique(client, three_parts, order, message):
    clip, etags, source = three_parts
    parts = [{"partNumber": n, "etag": etags[n - 1]} for n in order]
    assert clips_error(await complete(client, clip, parts), 400, "validation_error") == message
    await finish_and_check(client, clip, etags, source)


@pytest.mark.parametrize(
    "number, message",
    [
        (0, "parts.0.partNumber: 0 is less than the minimum of 1"),
        (10001, "parts.0.partNumber: 10001 is greater than the maximum of 10000"),
    ],
)
async def test_complete_part_numbers_0_and_10001(client, three_parts, number, message):
    clip, etags, source = three_parts
    r = await complete(client, clip, [{"partNumber": number, "etag": etags[0]}])
    assert clips_error(r, 400, "validation_error") == message
    await finish_and_check(client, clip, etags, source)


async def test_complete_needs_an_etag_in_either_spelling(client, three_parts):
    clip, etags, source = three_parts
    r = await complete(client, clip, [{"partNumber": 1}])
    assert clips_error(r, 400, "validation_error") == "parts.0: requires one of: eTag, etag"
    r = await complete(client, clip, [{"partNumber": 1, "eTag": etags[0], "etag": etags[1]}])
    assert clips_error(r, 400, "validation_error") == (
        "parts.0: part 1 has both eTag and etag, with different values; send one."
    )
    both_same = [{"partNumber": n, "eTag": e, "etag": e.strip('"')} for n, e in enumerate(etags, start=1)]
    assert (await complete(client, clip, both_same)).status_code == 200


async def test_complete_total_must_equal_file_size(client, three_parts):
    clip, etags, source = three_parts
    r = await complete(client, clip, sdk_parts(etags[:2]))
    assert clips_error(r, 400, "validation_error") == (
        f"parts: the listed parts total {10 * MIB} bytes, but fileSize was declared as {12 * MIB} bytes at init."
    )
    await finish_and_check(client, clip, etags, source)


async def test_every_part_but_the_last_is_at_least_5_mib(client):
    source = video(6 * MIB)
    clip, etags = await upload(client, source, [1 * MIB, 5 * MIB])
    message = clips_error(await complete(client, clip, sdk_parts(etags)), 400, "validation_error")
    assert message == (
        "parts.0: part 1 is 1048576 bytes; every part except the last must be at least 5 MiB (5242880 bytes)."
    )
    # fix it by re-uploading the parts at legal sizes: the same upload completes
    urls = await presign(client, clip, [1, 2])
    fixed = [await put_part(client, urls[n], chunk) for n, chunk in enumerate(split(source, [5 * MIB, MIB]), 1)]
    await finish_and_check(client, clip, fixed, source)


async def test_part_of_exactly_5_mib_then_a_tiny_last_part(client):
    source = video(5 * MIB + 1)
    clip, etags = await upload(client, source, [5 * MIB, 1])
    await finish_and_check(client, clip, etags, source)


async def test_complete_needs_clip_and_upload_ids(client, three_parts):
    clip, etags, source = three_parts
    for name in ("clipId", "uploadId", "parts"):
        body = {**ids(clip), "parts": sdk_parts(etags)}
        del body[name]
        r = await client.post(COMPLETE, headers=AUTH, json=body)
        assert clips_error(r, 400, "validation_error") == f"{name}: is required"
    await finish_and_check(client, clip, etags, source)
